"""The README's demo: each LLM call paid once, its output in order wherever stdout goes."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT_S = 120
ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

# The whole transcript, parent and child lines interleaved as they happen.
TRANSCRIPT = [
    "Memo store: <root>/bucket (LocalFileBackend)",
    "",
    "Attempt 1 of step 3 in run agent-run-42:",
    "    call 1: LLM called, stored (plan the trip)",
    "    worker killed: lease expired before ack",
    "  -> redelivered (at-least-once)",
    "",
    "Attempt 2 of step 3 in run agent-run-42:",
    "    call 1: memo hit, skipped   (plan the trip)",
    "    call 2: LLM called, stored (find three hotels)",
    "    worker killed: lease expired before ack",
    "  -> redelivered (at-least-once)",
    "",
    "Attempt 3 of step 3 in run agent-run-42:",
    "    call 1: memo hit, skipped   (plan the trip)",
    "    call 2: memo hit, skipped   (find three hotels)",
    "    call 3: LLM called, stored (write the itinerary)",
    "    step finished and acknowledged",
    "",
    "3 attempts, 3 paid LLM calls (without the memo: 6).",
    "",
    "Run agent-run-42 finished; terminal marker written at <time>.",
    "Memo entries on disk: 3",
    "Retention sweep: cleared 1 run, deleted 3 entries and the marker.",
    "Objects left under the prefix: 0",
]


def run_demo(stdout: str, root: Path, tmp_path: Path) -> str:
    """The demo's stdout when it is a ``pipe``, a ``file`` or a ``terminal``."""
    argv = [sys.executable, "-m", "taquba_memo.demo", "--root", str(root)]
    # Python's default buffering for each kind of stdout, as a user's shell gets it.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    if stdout == "pipe":
        result = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout
    if stdout == "file":
        path = tmp_path / "demo.txt"
        with path.open("w") as file:
            code = subprocess.run(argv, env=env, stdout=file, timeout=TIMEOUT_S, check=False)
        assert code.returncode == 0
        return path.read_text()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=terminal)
    os.close(terminal)
    shown = bytearray()
    for _ in range(100_000):  # bounded: ends when every writer has closed the terminal
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO once the terminal has no writer left
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait(TIMEOUT_S) == 0
    return shown.decode().replace("\r\n", "\n")


@pytest.mark.parametrize("stdout", ["pipe", "file", "terminal"])
def test_the_demo_pays_each_call_once_and_prints_in_order(stdout: str, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shown = run_demo(stdout, root, tmp_path).replace(str(root), "<root>")
    lines = [re.sub(rf"at {ISO_UTC}\.$", "at <time>.", line) for line in shown.splitlines()]
    assert lines == TRANSCRIPT


def test_the_demo_prints_the_marker_time_as_iso_8601_utc(tmp_path: Path) -> None:
    shown = run_demo("pipe", tmp_path / "demo", tmp_path)
    assert re.search(rf"terminal marker written at {ISO_UTC}\.\n", shown)
    assert not re.search(r"\d{13} ms", shown)
