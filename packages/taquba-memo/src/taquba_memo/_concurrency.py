"""Bounded concurrency: chunks, a window of coroutines, a thread pool for blocking SDKs."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from taquba_memo import _fork
from taquba_memo.errors import BackendError, DeleteManyError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BlockingRunner",
    "TaskWindow",
    "chunked",
    "delete_each",
    "keep_running",
]

T = TypeVar("T")

DEFAULT_CONCURRENCY = 16

# Work left running with nobody awaiting it: the event loop holds tasks only weakly.
_in_background: set[asyncio.Future[Any]] = set()


def keep_running(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """Keep ``future`` alive until it ends, though nothing awaits it."""
    _in_background.add(future)
    future.add_done_callback(_in_background.discard)
    return future


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split ``items`` into lists of at most ``size`` elements, in order."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


async def delete_each(
    delete_one: Callable[[str], Awaitable[None]],
    keys: Sequence[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> None:
    """Delete ``keys`` one request each, at most ``concurrency`` at a time.

    ``delete_one`` must treat a missing key as success and raise
    :class:`BackendError` on failure. Every key is attempted; failures are
    collected and raised together as :class:`DeleteManyError`.
    """
    failures: dict[str, BackendError] = {}
    semaphore = asyncio.Semaphore(concurrency)

    async def attempt(key: str) -> None:
        async with semaphore:
            try:
                await delete_one(key)
            except BackendError as exc:
                failures[key] = exc

    await asyncio.gather(*(attempt(key) for key in dict.fromkeys(keys)))
    if failures:
        raise DeleteManyError(failures)


class TaskWindow:
    """At most ``limit`` coroutines in flight; the first error propagates.

    ``submit`` waits for a free slot, so a producer never runs ahead of the
    work by more than ``limit`` items and memory stays flat.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, work: Coroutine[Any, Any, None]) -> None:
        """Start ``work`` once fewer than ``limit`` coroutines are running."""
        try:
            while len(self._running) >= self._limit:
                done, self._running = await asyncio.wait(
                    self._running, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()
        except BaseException:
            # Cancelled, or an earlier task failed: ``work`` never starts. Close
            # it, or Python warns that it was never awaited.
            work.close()
            raise
        self._running.add(asyncio.ensure_future(work))

    async def drain(self) -> None:
        """Wait for everything submitted; raise the first error."""
        running, self._running = self._running, set()
        if running:
            await asyncio.gather(*running)

    def cancel(self) -> None:
        """Cancel everything still running."""
        for task in self._running:
            task.cancel()

    async def cancel_and_wait(self) -> None:
        """Cancel everything still running and wait until it has stopped; raise nothing."""
        running, self._running = self._running, set()
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


class BlockingRunner:
    """Runs a synchronous SDK's calls on a bounded thread pool.

    The pool size bounds how many requests are in flight at once, which also
    keeps the SDK's connection pool from being exhausted. The event loop is
    never blocked. Context variables are carried into the worker thread.

    Fork-safe: a forked child inherits the pool but none of its threads (the
    inherited pool would queue calls that no thread ever runs), so the first
    call in a child, or :meth:`after_fork`, starts a fresh pool there.
    """

    def __init__(
        self, max_workers: int = DEFAULT_CONCURRENCY, *, name: str = "taquba-memo"
    ) -> None:
        self.max_workers = max_workers
        self._name = name
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._fork_generation = _fork.generation()

    def after_fork(self) -> None:
        """In a forked child, replace the inherited pool by a fresh one (once)."""
        if self._fork_generation == _fork.generation():
            return
        with _fork.child_lock:
            if self._fork_generation != _fork.generation():
                # Never shut the inherited pool down: its locks may be held by
                # threads that do not exist here.
                _fork.keep_inherited(self._executor)
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix=self._name
                )
                self._fork_generation = _fork.generation()

    async def run(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Call ``fn(*args, **kwargs)`` on the pool and await its result."""
        self.after_fork()
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def iterate(self, items: Iterable[T], *, batch: int = 1000) -> AsyncIterator[T]:
        """Drain a blocking iterable (such as a paged listing) on the pool.

        Items are pulled ``batch`` at a time, so a consumer that stops early
        leaves later pages unrequested.
        """
        iterator = iter(items)
        while True:
            chunk = await self.run(lambda: list(itertools.islice(iterator, batch)))
            for item in chunk:
                yield item
            if len(chunk) < batch:
                return

    def close(self) -> None:
        """Stop the pool after the calls in flight finish."""
        if self._fork_generation != _fork.generation():
            return  # the inherited pool has no thread here to wait for
        self._executor.shutdown(wait=True)
