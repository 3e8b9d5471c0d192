"""A store opened before a fork works in the child or refuses with ForkedProcessError; never hangs.

For every shipped backend, a fresh parent process opens a sync and an async
store, optionally uses them, and forks, with ``os.fork()`` (the child ending
with ``os._exit``, or with a normal exit that runs every finalizer, as a
gunicorn worker does) and with a ``multiprocessing`` fork-context Process.
The child puts, gets, computes and clears through both stores. Afterwards
the parent's own stores still work: the child never used the parent's
threads or connections, and nothing it inherited was finalized.

obstore is the one exception: its runtime does not survive a fork, so a
child forked after the parent made obstore requests gets ForkedProcessError
(naming the fix), while a child forked before any request works.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .backend_specs import OBSTORE, encode_spec
from .scenario import EXPECTED

REPO = Path(__file__).resolve().parents[2]
# The worker's own alarms end a hung child in 20 s; this ends a hung parent.
PARENT_TIMEOUT_S = 90


def run_fork_child(spec: dict[str, Any], how: str, used: str) -> dict[str, Any]:
    finished = subprocess.run(
        [sys.executable, "-m", "tests.runtimes.fork_child", encode_spec(spec), how, used],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PARENT_TIMEOUT_S,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    # Nothing inherited was finalized in the child: no "Unclosed client session", no
    # "Exception ignored in ... __del__" (it would close what the parent still uses).
    assert "Unclosed" not in finished.stderr, finished.stderr[-3000:]
    assert "Exception ignored" not in finished.stderr, finished.stderr[-3000:]
    report: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("how", ["os-fork", "os-fork-exit", "multiprocessing"])
@pytest.mark.parametrize("used", ["unused", "used"])
def test_store_opened_before_fork_works_in_child_or_refuses(
    backend_spec: dict[str, Any], how: str, used: str
) -> None:
    report = run_fork_child(backend_spec, how, used)

    assert report["child_exit"] == 0, report
    refuses = backend_spec["name"] in OBSTORE and used == "used"
    for api in ("sync", "async"):
        child = report["child"][api]
        if refuses:
            assert child["error"] == "ForkedProcessError"
            assert "worker_process_init" in child["message"]
            assert "spawn" in child["message"]
        else:
            assert child == EXPECTED, api
        assert report["parent_after"][api] == EXPECTED, api
