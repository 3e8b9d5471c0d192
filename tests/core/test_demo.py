"""The README's demo runs and shows each LLM call paid for once."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_pays_each_call_once_and_sweeps_the_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taquba_memo.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3 attempts, 3 paid LLM calls (without the memo: 6)." in result.stdout
    assert "memo hit, skipped" in result.stdout
    assert "Objects left under the prefix: 0" in result.stdout
