"""A real kill: a step's first attempt runs in a child process, SIGKILLed after its last response.

:func:`attempts_with_a_kill` runs one clean run of ``step`` (run
``clean-run``), then the three attempts of run ``run-1``, step 1, as a queue
delivers them to workers that share nothing but the bucket (a directory):

1. a child process (forked, so that it starts with the SDK imported: a
   second or so instead of several) runs ``step``; once its last call
   returned it writes a marker file and waits, and the parent kills it with
   SIGKILL there, before it could acknowledge the step. The child uses only
   what it makes itself (its store, its SDK client); it has none of the
   parent's threads, and leaves with ``os._exit`` whatever happens, never
   back into pytest. Python 3.12 warns that forking a process with threads
   may deadlock the child on a lock one of them held: the parent's threads
   then are the fake server's, serving or waiting for a connection, whose
   locks the child never takes; the warning is silenced around the fork;
2. the retry and 3. a duplicate delivery run in this process.

``step`` is a function of the base URL of the fake server, sync or async:
a sync one runs with a sync memo bound by ``taquba_memo.sync.use_memo``, an
async one with an async memo bound by ``taquba_memo.use_memo``. Each
attempt has a new store on the same directory, as a new worker would.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import taquba_memo
from taquba_memo import LocalFileBackend
from taquba_memo import sync as memo_sync

if TYPE_CHECKING:
    from tests.agents.fake_openai import FakeOpenAI

__all__ = ["attempts_with_a_kill"]

NAMESPACE = "agents"
CHILD_TIMEOUT_S = 60.0


def run_attempt(step: Callable[[str], Any], base_url: str, directory: Path, run_id: str) -> Any:
    """``step`` as one attempt of (``run_id``, 1) by a worker with its own store."""
    if inspect.iscoroutinefunction(step):

        async def attempt() -> Any:
            store = taquba_memo.MemoStore(LocalFileBackend(directory), NAMESPACE)
            try:
                with taquba_memo.use_memo(store.new_memo(run_id, 1)):
                    return await step(base_url)
            finally:
                await store.aclose()

        return asyncio.run(attempt())
    with (
        memo_sync.MemoStore(LocalFileBackend(directory), NAMESPACE) as store,
        memo_sync.use_memo(store.new_memo(run_id, 1)),
    ):
        return step(base_url)


def attempts_with_a_kill(
    server: FakeOpenAI, directory: Path, step: Callable[[str], Any]
) -> tuple[int, int]:
    """(paid by one clean run, paid by the killed attempt, its retry and a duplicate)."""
    clean = run_attempt(step, server.base_url, directory, "clean-run")
    clean_paid = server.total_paid
    marker = directory.parent / "killed-attempt.json"
    with warnings.catch_warnings():  # 3.12+: "multi-threaded, fork may deadlock" (see above)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()  # the child has the SDK imported already: it starts at once
    if pid == 0:
        _child(step, server.base_url, directory, marker)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    ended, status = 0, 0
    while not marker.exists() and not ended and time.monotonic() < deadline:
        time.sleep(0.01)
        ended, status = os.waitpid(pid, os.WNOHANG)
    if not ended:  # still ours, unreaped: right after its last response, or stuck
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    assert marker.exists(), "the first attempt ended or hung before its last response"
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    killed = json.loads(marker.read_text())
    retried = [run_attempt(step, server.base_url, directory, "run-1") for _ in range(2)]
    assert [killed, *retried] == json.loads(json.dumps([clean, clean, clean]))
    return clean_paid, server.total_paid - clean_paid


def _child(step: Callable[[str], Any], base_url: str, directory: Path, marker: Path) -> None:
    """The first attempt, in the forked child: attempt, mark, wait for the kill; never returns."""
    try:
        result = run_attempt(step, base_url, directory, "run-1")
        marker.with_suffix(".tmp").write_text(json.dumps(result))
        os.replace(marker.with_suffix(".tmp"), marker)  # whole, or absent
        time.sleep(CHILD_TIMEOUT_S)  # killed here: the step is never acknowledged
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)  # never back into the test runner
