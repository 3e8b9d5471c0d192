"""A sync memo's async view (``memo.aio``): the same entries, awaited on the caller's loop.

A sync store owns its backend on its private loop thread
(:mod:`taquba_memo._loop_thread`), where adapters that bind to a loop were
built. ``memo.aio`` is a plain :class:`~taquba_memo.Memo` over a host whose
backend is :class:`LoopThreadBackend`: every backend call is handed to the
store's loop thread and awaited with ``asyncio.wrap_future``, so the
caller's loop is never blocked and nothing deadlocks when it is called from
inside a running loop. Everything above the backend runs on the caller's
loop, as for any async memo: ``fn`` and its context variables, the span,
the cancellation rules, a claim's heartbeat. The view shares the store's
stats and telemetry, and its single flight (a sync caller and an ``aio``
caller of one entry share one computation): it names the store's backend
as the one it flies as.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from taquba_memo._backends.forwarding import ForwardingBackend
from taquba_memo._loop_thread import LoopThread, _next_item
from taquba_memo._store_settings import StoreSettings
from taquba_memo.backend import (
    ListedObject,
    ListsAfter,
    ListsMetadata,
    MemoBackend,
    ReadsBounded,
)
from taquba_memo.errors import StoreClosedError

if TYPE_CHECKING:
    from taquba_memo._store import MemoStore

__all__ = ["AioHost", "LoopOwner", "LoopThreadBackend"]

T = TypeVar("T")


class LoopOwner(Protocol):
    """Where a :class:`LoopThreadBackend` runs its calls: a :class:`LoopThread`, or another."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def stopped(self) -> bool: ...


class LoopThreadBackend(ForwardingBackend):
    """``inner``, owned by a sync store's loop thread, called from any other event loop.

    Each call runs on the loop thread (any :class:`LoopOwner`'s loop) and is awaited with
    ``asyncio.wrap_future``; cancelling the caller cancels it there. Closing
    it closes nothing: the sync store owns ``inner``. ``after_fork`` is not
    forwarded, since the store's own backend check rebuilds ``inner``.
    """

    forwarded_members = (ListsMetadata, ReadsBounded, ListsAfter)

    def __init__(self, inner: MemoBackend, loop_thread: LoopOwner) -> None:
        super().__init__(inner)
        self._loop_thread = loop_thread

    @property
    def flies_as(self) -> MemoBackend:
        """The backend whose single flights this one shares (see ``EntrySlot.flight_key``)."""
        return self.inner

    async def _on_loop_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop_thread.stopped:
            coro.close()
            raise StoreClosedError("the store is closed")
        loop = self._loop_thread.loop
        if asyncio.get_running_loop() is loop:
            return await coro  # already there (an async fn of the sync store's own calls)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _items(self, start: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        async def started() -> AsyncIterator[T]:
            return start()

        items = await self._on_loop_thread(started())
        try:
            while True:
                found, item = await self._on_loop_thread(_next_item(items))
                if not found:
                    return
                yield item
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None and not self._loop_thread.stopped:
                await self._on_loop_thread(aclose())

    async def get(self, key: str) -> bytes | None:
        return await self._on_loop_thread(self.inner.get(key))

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        return await self._on_loop_thread(self.inner.put(key, value, if_absent=if_absent))

    async def delete(self, key: str) -> None:
        await self._on_loop_thread(self.inner.delete(key))

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._on_loop_thread(self.inner.delete_many(keys))

    def list(self, prefix: str) -> AsyncIterator[str]:
        return self._items(lambda: self.inner.list(prefix))

    async def aclose(self) -> None:
        return None  # the sync store closes its backend

    def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        return self._items(lambda: cast(ListsMetadata, self.inner).list_with_metadata(prefix))

    def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        return self._items(lambda: cast(ListsAfter, self.inner).list_after(prefix, start_after))

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        return await self._on_loop_thread(
            cast(ReadsBounded, self.inner).get_at_most(key, max_bytes)
        )


class AioHost(StoreSettings):
    """What an ``aio`` memo knows of its sync store (a :class:`~taquba_memo._memo.MemoHost`)."""

    __slots__ = ("_core", "_loop_thread", "_reached")

    def __init__(self, core: MemoStore, loop_thread: LoopThread) -> None:
        self._show_settings_of(core)
        self._core = core
        self._loop_thread = loop_thread
        self._reached: LoopThreadBackend | None = None

    @property
    def backend(self) -> MemoBackend:
        """The store's backend reached through its loop thread; refused once the store is closed."""
        inner = self._core.backend  # refuses a closed store; rebuilds after a fork
        reached = self._reached
        if reached is None or reached.inner is not inner:
            reached = self._reached = LoopThreadBackend(inner, self._loop_thread)
        return reached
