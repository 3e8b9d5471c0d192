"""What the runtime tests share: where a worker keeps its memos, starting and awaiting workers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from taquba_memo_conformance._processes import ManagedProcess

__all__ = ["MEMO_TARGETS", "REPO", "MemoTarget", "start_ready", "wait_for"]

REPO = Path(__file__).resolve().parents[2]
#: Where the worker keeps its memos: local files, and S3 on each of these servers.
MEMO_TARGETS = ["local", "moto", "rgw"]
WORKER_READY_TIMEOUT_S = 60


@dataclass
class MemoTarget:
    url: str
    env: dict[str, str]


def start_ready(
    name: str, argv: list[str], env: dict[str, str], ready_line: str, count: int = 1
) -> ManagedProcess:
    """``argv`` run with the repository importable, returned once its log shows ``ready_line``
    ``count`` times (once per worker process)."""
    worker = ManagedProcess(name, argv, env={**os.environ, "PYTHONPATH": str(REPO), **env})
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while worker.output_tail(400).count(ready_line) < count:
        if worker.exited() or time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"{name} did not start" + worker.describe())
        time.sleep(0.1)
    return worker


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
