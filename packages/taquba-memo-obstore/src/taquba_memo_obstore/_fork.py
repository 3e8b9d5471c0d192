"""Whether obstore's runtime crossed a fork: then no obstore call can finish in the child.

obstore runs every request on one tokio runtime per process, started on the
first request and never stopped. A forked child inherits the runtime without
its threads, so any obstore call there (async or sync, on any store, even a
new one) waits forever (measured with obstore 0.12). A child whose parent
never made a request has no runtime yet and works normally. Just before each
``fork()``, the parent notes whether the runtime's worker threads are running
(their names, from ``/proc/self/task``); where that cannot be read, a runtime
is assumed, so the answer is an error rather than a hang.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["runtime_inherited"]

_RUNTIME_THREAD_NAME = "tokio-rt-worker"
_TASKS = Path("/proc/self/task")

_runtime_at_last_fork = False
_inherited = False


def _runtime_running() -> bool:
    try:
        tasks = list(_TASKS.iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            if (task / "comm").read_text().strip() == _RUNTIME_THREAD_NAME:
                return True
        except OSError:
            continue  # the thread ended meanwhile
    return False


def _before_fork() -> None:
    global _runtime_at_last_fork
    _runtime_at_last_fork = _inherited or _runtime_running()


def _in_child() -> None:
    global _inherited
    _inherited = _runtime_at_last_fork


def runtime_inherited() -> bool:
    """True in a forked child whose parent (or an ancestor) had started obstore's runtime."""
    return _inherited


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_in_child)
