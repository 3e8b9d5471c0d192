"""Three attempts of one step, as a queue delivers them, for the framework tests.

The first attempt is abandoned right after its last model response (the
worker dies before it acknowledges the step: ``Abandoned`` is raised where
the kill would land), the second is the retry, the third a duplicate
delivery. Each attempt gets a new memo of the same run and step, as a new
worker would. Together they must pay what one clean run (on a run of its
own) pays.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import taquba_memo
from taquba_memo import LocalFileBackend, MemoBackend, MemoStore
from taquba_memo import sync as memo_sync

from tests.agents.fake_openai import FakeOpenAI

__all__ = [
    "Abandoned",
    "attempts_async",
    "attempts_sync",
    "backend",
    "duplicate_workers_async",
    "duplicate_workers_sync",
    "error_then_retries",
    "per_attempt",
]

T = TypeVar("T")


class Abandoned(Exception):
    """The worker died right after the step's last model response."""


@pytest.fixture
def backend(tmp_path: Path) -> MemoBackend:
    """The real file system."""
    return LocalFileBackend(tmp_path / "memo")


def per_attempt(store: memo_sync.MemoStore, step: Callable[[], T], attempts: int = 2) -> list[T]:
    """``step``'s result in each of ``attempts`` attempts of one step (run-1, step 1), in order."""
    results = []
    for _ in range(attempts):
        with memo_sync.use_memo(store.new_memo("run-1", 1)):
            results.append(step())
    return results


def duplicate_workers_sync(directory: Path, step: Callable[[], T], count: int = 2) -> list[T]:
    """``step``'s results in ``count`` workers running it at once, each an attempt of (run-1, 1).

    Each worker is a thread with its own store on ``directory``: workers that
    share nothing but the bucket (one store would let them share its
    in-process flights instead).
    """
    results: list[T] = []

    def worker() -> None:
        with (
            memo_sync.MemoStore(LocalFileBackend(directory), "agents") as store,
            memo_sync.use_memo(store.new_memo("run-1", 1)),
        ):
            results.append(step())

    workers = [threading.Thread(target=worker) for _ in range(count)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return results


def attempts_sync(
    store: memo_sync.MemoStore, server: FakeOpenAI, step: Callable[[], Any]
) -> tuple[int, int]:
    """(paid by one clean run, paid by three attempts of another run); results must agree.

    ``step`` runs with the attempt's memo bound by ``taquba_memo.sync.use_memo``.
    """

    def attempt(run_id: str, abandon: bool) -> Any:
        with memo_sync.use_memo(store.new_memo(run_id, 1)):
            result = step()
        if abandon:
            raise Abandoned
        return result

    return _three_attempts(server, attempt)


async def attempts_async(
    store: MemoStore | memo_sync.MemoStore,
    server: FakeOpenAI,
    step: Callable[[], Awaitable[Any]],
) -> tuple[int, int]:
    """The async twin of :func:`attempts_sync`; a sync store's memo is bound with its sync
    ``use_memo``, so the async hooks get its ``aio``."""

    async def attempt(run_id: str) -> Any:
        memo = store.new_memo(run_id, 1)
        binding = (
            memo_sync.use_memo(memo)
            if isinstance(memo, memo_sync.Memo)
            else taquba_memo.use_memo(memo)
        )
        with binding:
            return await step()

    clean = await attempt("clean-run")
    clean_paid = server.total_paid
    await attempt("run")  # abandoned right after its last response: its result is lost
    results = [await attempt("run"), await attempt("run")]
    assert results == [clean, clean]
    return clean_paid, server.total_paid - clean_paid


def _three_attempts(server: FakeOpenAI, attempt: Callable[[str, bool], Any]) -> tuple[int, int]:
    clean = attempt("clean-run", False)
    clean_paid = server.total_paid
    results = []
    for n in range(3):
        try:
            results.append(attempt("run", n == 0))
        except Abandoned:
            continue
    assert results == [clean, clean]
    return clean_paid, server.total_paid - clean_paid


async def duplicate_workers_async(
    shared: Path, step_on: Callable[[FakeOpenAI], Callable[[], Awaitable[T]]]
) -> tuple[list[T], int]:
    """(each of two duplicate workers' results, paid in all): the same step at once, in two
    stores on the ``shared`` directory (workers that share nothing but the bucket), against a
    slow server so that the second starts while the first is paying."""
    with FakeOpenAI(answer_delay_s=0.5, chunk_delay_s=0.05) as server:
        step = step_on(server)
        stores = [MemoStore(LocalFileBackend(shared), "agents") for _ in range(2)]

        async def worker(store: MemoStore) -> T:
            with taquba_memo.use_memo(store.new_memo("run-1", 1)):
                return await step()

        try:
            return list(await asyncio.gather(*map(worker, stores))), server.total_paid
        finally:
            for opened in stores:
                await opened.aclose()


async def error_then_retries(
    store: memo_sync.MemoStore,
    server: FakeOpenAI,
    ask: Callable[[], Awaitable[T]],
    error: type[BaseException],
    answer: T,
) -> None:
    """A first attempt whose model call gets a 500 raises ``error``; the next two attempts
    answer ``answer``, asked once more and then replayed: the error was never stored."""
    server.fail_next(1, status=500)
    with memo_sync.use_memo(store.new_memo("run-1", 1)), pytest.raises(error):
        await ask()
    for _ in range(2):
        with memo_sync.use_memo(store.new_memo("run-1", 1)):
            assert await ask() == answer
    assert sum(server.received.values()) == 2
    assert server.total_paid == 1
