"""The synchronous API: MemoStore and Memo for Celery, RQ, Dramatiq and scripts.

Same names, arguments and behaviour as :class:`taquba_memo.MemoStore` and
:class:`taquba_memo.Memo`, without ``await``. Nothing is implemented twice:
each sync store owns one private event loop, running in its own daemon
thread, and every method runs the async core's coroutine there and waits
for it. One shortcut: on a backend that reads without a loop (it offers
``get_in_thread``: local files, memory), ``Memo.get`` and a hit of
``Memo.get_or_compute`` read in the calling thread, through the same core
code and stats, since the round trip would cost more than the read; a miss
goes to the loop as everything else does. Because that loop is never the
caller's, the sync API also works when called from a thread that is running
an event loop (a notebook, an async web handler), without deadlocking; it
blocks that loop while it waits, as any blocking call does. The machinery,
and how replies and interrupts cross between the threads, is
:mod:`taquba_memo._loop_thread`.

The mirror is written out, so type checkers and IDEs see real signatures,
and a test holds it to the async API member by member: names, kinds,
parameters, defaults, annotations (``AsyncIterator`` becomes ``Iterator``,
the async classes their sync twins) and the docstring's summary.

Iterators stream: ``iter_terminal_markers`` pulls one item at a time from
the async iterator, so memory stays flat and stopping early stops the
listing.

Callbacks run in the calling thread: a sync ``fn`` given to
``get_or_compute`` and a sync ``on_run_done`` given to ``sweep`` are called
in the thread that called the method (so thread-locals such as database
connections behave as usual), while the storage I/O runs on the store's
loop. An async callback runs on the store's loop.

A store is one thread; share it between the threads of a worker rather than
opening one per task. Close it with :meth:`MemoStore.close` or a ``with``
block: that closes the backend and stops the thread. Calling the store
from inside one of its own async callbacks raises ``RuntimeError`` instead
of deadlocking.

    from taquba_memo.sync import open_store

    with open_store("file:///var/lib/memo", prefix="agents") as store:
        memo = store.new_memo(run_id, step)
        answer = memo.get_or_compute("answer", lambda: call_model(prompt))
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar, overload

from taquba_memo import Memo as AsyncMemo
from taquba_memo import MemoEntry, SweepReport, SweepStrategy, TerminalMarker
from taquba_memo import MemoStore as AsyncMemoStore
from taquba_memo import _current as current
from taquba_memo import _streams as streams
from taquba_memo import _urls as urls
from taquba_memo._aio import AioHost
from taquba_memo._claims import ClaimPolicy
from taquba_memo._closing import Closing
from taquba_memo._codecs import Codec
from taquba_memo._loop_thread import LoopThread
from taquba_memo._memo import BYTES, BoundMemo
from taquba_memo._store_settings import StoreSettings
from taquba_memo.backend import MemoBackend, reads_in_thread

__all__ = ["Memo", "MemoStore", "current_memo", "open_store", "use_memo"]

T = TypeVar("T")


class MemoStore(StoreSettings, Closing):
    """Synchronous :class:`taquba_memo.MemoStore`: same constructor, same methods.

    See the async class for what each method does. Each instance runs one
    event-loop thread until :meth:`close`.
    """

    def __init__(
        self,
        backend: MemoBackend,
        prefix: str = "",
        *,
        max_value_bytes: int | None = None,
        layout: str = "0.5",
    ) -> None:
        # Validate before starting a thread, so bad arguments leak nothing.
        core = AsyncMemoStore(backend, prefix, max_value_bytes=max_value_bytes, layout=layout)
        self._adopt(core, LoopThread())

    @classmethod
    def _from_core(cls, core: AsyncMemoStore, loop_thread: LoopThread) -> MemoStore:
        self = cls.__new__(cls)
        self._adopt(core, loop_thread)
        return self

    def _adopt(self, core: AsyncMemoStore, loop_thread: LoopThread) -> None:
        self._show_settings_of(core)
        self._core = core
        self._loop_thread = loop_thread
        self._aio_host = AioHost(core, loop_thread)
        # A backend that reads without a loop (local files, a dict) serves get and a
        # get_or_compute hit in the caller's thread: no round trip to the loop.
        self._reads_in_thread = reads_in_thread(core.backend)
        # A store garbage-collected without close() at least stops its thread.
        self._finalizer = weakref.finalize(self, loop_thread.stop_soon)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop_thread.run(coro)

    @property
    def backend(self) -> MemoBackend:
        return self._core.backend

    @property
    def lists_metadata(self) -> bool:
        """True when the backend's listing carries sizes (``iter_entries(with_metadata=True)``
        then reads nothing)."""
        return self._core.lists_metadata

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the sync store alone has it)."""
        return self._loop_thread.stopped

    def __repr__(self) -> str:
        backend = self._core._backend_object
        return f"taquba_memo.sync.MemoStore(prefix={self.prefix!r}, backend={backend!r})"

    def new_memo(self, run_id: str, step_number: int) -> Memo:
        """Return a :class:`Memo` bound to ``(run_id, step_number)``."""
        return Memo(self, run_id, step_number)

    def iter_entries(
        self, run_id: str | None = None, *, with_metadata: bool = False
    ) -> Iterator[MemoEntry]:
        """Yield every object below ``<prefix>/memos/`` (of one run, if given), streaming."""
        return self._loop_thread.iterate(
            self._core.iter_entries(run_id, with_metadata=with_metadata)
        )

    def clear_memos_for_run(self, run_id: str) -> int:
        """Delete every memo entry of ``run_id`` and return how many were deleted."""
        return self._run(self._core.clear_memos_for_run(run_id))

    def write_terminal_marker(self, run_id: str, terminal_at_ms: int) -> None:
        """Write the zero-byte terminal marker of ``run_id`` at ``terminal_at_ms``."""
        self._run(self._core.write_terminal_marker(run_id, terminal_at_ms))

    def iter_terminal_markers(self) -> Iterator[TerminalMarker]:
        """Yield every terminal marker, streaming: memory stays flat."""
        return self._loop_thread.iterate(self._core.iter_terminal_markers())

    def list_terminal_markers(self) -> list[TerminalMarker]:
        """Return every terminal marker (see :meth:`iter_terminal_markers`)."""
        return self._run(self._core.list_terminal_markers())

    def iter_expired_terminal_markers(self, cutoff_ms: int) -> Iterator[TerminalMarker]:
        """Yield the markers with ``terminal_at_ms`` strictly below ``cutoff_ms``."""
        return self._loop_thread.iterate(self._core.iter_expired_terminal_markers(cutoff_ms))

    def list_expired_terminal_markers(self, cutoff_ms: int) -> list[TerminalMarker]:
        """Return the markers with ``terminal_at_ms`` strictly below ``cutoff_ms``."""
        return self._run(self._core.list_expired_terminal_markers(cutoff_ms))

    def delete_terminal_marker(self, marker: TerminalMarker) -> None:
        """Delete ``marker``; a marker that is already gone is success."""
        self._run(self._core.delete_terminal_marker(marker))

    def sweep(
        self,
        cutoff_ms: int,
        *,
        concurrency: int = 8,
        dry_run: bool = False,
        on_run_done: Callable[[TerminalMarker, int], Awaitable[None] | None] | None = None,
        strategy: SweepStrategy = "auto",
        max_runs_in_memory: int = 100_000,
        record_run_ids: bool = True,
        lease: bool = False,
    ) -> SweepReport:
        """Clear the memos of every run whose marker is older than ``cutoff_ms``.

        See :meth:`taquba_memo.MemoStore.sweep`. A sync ``on_run_done(marker,
        entries_deleted)`` is called in the calling thread after each run;
        an async one runs on the store's loop.
        """

        def work(
            on_run_done: Callable[..., Awaitable[Any]] | None,
        ) -> Coroutine[Any, Any, SweepReport]:
            return self._core.sweep(
                cutoff_ms,
                concurrency=concurrency,
                dry_run=dry_run,
                on_run_done=on_run_done,
                strategy=strategy,
                max_runs_in_memory=max_runs_in_memory,
                record_run_ids=record_run_ids,
                lease=lease,
            )

        return self._loop_thread.run_calling_back(on_run_done, work)

    def close(self) -> None:
        """Close the backend; every later operation raises :class:`StoreClosedError`.

        It also stops the store's thread. Calling it twice is harmless.
        """
        if self._loop_thread.stopped:
            return
        try:
            self._run(self._core.aclose())
        finally:
            self._finalizer.detach()
            self._loop_thread.stop()


class Memo(BoundMemo[MemoStore]):
    """Synchronous :class:`taquba_memo.Memo`, scoped to one ``(run_id, step_number)``."""

    __slots__ = ("_aio", "_core")

    _repr_name = "taquba_memo.sync.Memo"

    def __init__(self, store: MemoStore, run_id: str, step_number: int) -> None:
        self._core: AsyncMemo = store._core.new_memo(run_id, step_number)
        self._aio: AsyncMemo | None = None
        super().__init__(store, self._core.run_id, self._core.step_number)

    @property
    def aio(self) -> AsyncMemo:
        """This memo's entries as a :class:`taquba_memo.Memo`, awaited on the caller's loop.

        For the async half of a framework that also has a sync one: the
        same store, entries, stats and single flight (a sync call and an
        ``aio`` call for one entry pay once). Its coroutines never block
        the caller's loop: each backend call runs on this store's thread and
        is awaited there, while ``fn``, spans and cancellation behave as on
        any async memo. In async code use ``aio``; the blocking methods
        block the running loop (see ``docs/sync.md``).
        """
        if self._aio is None:
            self._aio = AsyncMemo(self._store._aio_host, self._run_id, self._step_number)
        return self._aio

    def get(self, key: str) -> bytes | None:
        """Return the value an earlier attempt stored for ``key``, or None.

        See :meth:`taquba_memo.Memo.get`.
        """
        store = self._store
        if store._reads_in_thread:
            return store._loop_thread.call_here(self._core._get_in_thread, key)
        return store._run(self._core.get(key))

    def put(
        self, key: str, value: bytes | bytearray | memoryview, *, if_absent: bool = False
    ) -> bool:
        """Store ``value`` (any bytes-like object) for ``key`` and return True.

        See :meth:`taquba_memo.Memo.put`.
        """
        return self._store._run(self._core.put(key, value, if_absent=if_absent))

    @overload
    def get_or_compute(
        self,
        key: str,
        fn: Callable[[], bytes | Awaitable[bytes]],
        *,
        if_absent: bool | None = None,
        store_if_cancelled: bool = True,
        claim: ClaimPolicy | None = None,
    ) -> bytes: ...

    @overload
    def get_or_compute(
        self,
        key: str,
        fn: Callable[[], T | Awaitable[T]],
        *,
        codec: Codec[T],
        if_absent: bool | None = None,
        store_if_cancelled: bool = True,
        claim: ClaimPolicy | None = None,
    ) -> T: ...

    def get_or_compute(
        self,
        key: str,
        fn: Callable[[], Any],
        *,
        codec: Codec[Any] = BYTES,
        if_absent: bool | None = None,
        store_if_cancelled: bool = True,
        claim: ClaimPolicy | None = None,
    ) -> Any:
        """Return the value stored for ``key``, or compute, store and return it.

        Same semantics as :meth:`taquba_memo.Memo.get_or_compute`. A sync
        ``fn`` runs in the calling thread; an async one on the store's loop.
        When the waiting thread is interrupted (a task time limit raising in
        it, ``KeyboardInterrupt``), the call is cancelled as an async caller
        is: an async ``fn`` that has started runs on in the store's thread
        and its result is stored, unless ``store_if_cancelled=False``. A sync
        ``fn`` runs in the interrupted thread itself, so the interruption is
        its own exception and nothing is stored. Either way the interrupt
        (``KeyboardInterrupt``, ``SystemExit``, a time limit's exception)
        reaches the caller, a claim is released, and the next call for the
        key computes again: an interrupt never leaves the entry waiting.

        With ``claim``, the claim's heartbeat runs on the store's loop, so it
        goes on renewing while a sync ``fn`` blocks the calling thread.
        """
        store = self._store
        if store._reads_in_thread:
            found, value = store._loop_thread.call_here(
                self._core._stored_in_thread, key, fn, codec, if_absent, store_if_cancelled, claim
            )
            if found:
                return value

        def work(fn: Callable[[], Any]) -> Coroutine[Any, Any, Any]:
            return self._core.get_or_compute(
                key,
                fn,
                codec=codec,
                if_absent=if_absent,
                store_if_cancelled=store_if_cancelled,
                claim=claim,
            )

        return store._loop_thread.run_calling_back(fn, work)

    def occurrence_key(self, key: str) -> str:
        """Return the entry key of this call's occurrence of ``key``: ``f"{key}#{n}"``.

        See :meth:`taquba_memo.Memo.occurrence_key`; the counts are safe to
        share between threads.
        """
        return self._core.occurrence_key(key)

    @overload
    def get_or_stream(
        self,
        key: str,
        fn: Callable[[], Iterator[bytes]],
        *,
        claim: ClaimPolicy | None = None,
    ) -> Iterator[bytes]: ...

    @overload
    def get_or_stream(
        self,
        key: str,
        fn: Callable[[], Iterator[T]],
        *,
        codec: Codec[T],
        claim: ClaimPolicy | None = None,
    ) -> Iterator[T]: ...

    def get_or_stream(
        self,
        key: str,
        fn: Callable[[], Iterator[Any]],
        *,
        codec: Codec[Any] = BYTES,
        claim: ClaimPolicy | None = None,
    ) -> Iterator[Any]:
        """Replay the stream of chunks recorded for ``key``, or stream ``fn()`` live and record it.

        Same semantics as :meth:`taquba_memo.Memo.get_or_stream`, with a sync
        ``fn`` returning an iterator (any iterable). ``fn`` and each of the
        iterator's ``next()`` calls run in a worker thread of the store's
        loop (``asyncio.to_thread``), not in the calling thread, so callers
        in other threads can share the stream. Chunks cross one at a time;
        stopping early (``break``, ``close()``, an interrupt) stores nothing
        and closes ``fn``'s iterator once no caller reads it.
        """
        source = streams.from_sync_iterator(fn) if callable(fn) else fn
        chunks = self._core.get_or_stream(key, source, codec=codec, claim=claim)
        return self._store._loop_thread.iterate(chunks)

    @overload
    def content_get(self, content: object, *, namespace: str | None = None) -> bytes | None: ...

    @overload
    def content_get(
        self, content: object, *, codec: Codec[T], namespace: str | None = None
    ) -> T | None: ...

    def content_get(
        self, content: object, *, codec: Codec[Any] = BYTES, namespace: str | None = None
    ) -> Any:
        """Return the value stored for the input ``content``, or None.

        See :meth:`taquba_memo.Memo.content_get`.
        """
        return self._store._run(self._core.content_get(content, codec=codec, namespace=namespace))

    @overload
    def content_put(
        self,
        content: object,
        value: bytes,
        *,
        if_absent: bool = False,
        namespace: str | None = None,
    ) -> bool: ...

    @overload
    def content_put(
        self,
        content: object,
        value: T,
        *,
        codec: Codec[T],
        if_absent: bool = False,
        namespace: str | None = None,
    ) -> bool: ...

    def content_put(
        self,
        content: object,
        value: Any,
        *,
        codec: Codec[Any] = BYTES,
        if_absent: bool = False,
        namespace: str | None = None,
    ) -> bool:
        """Store ``value`` for the input ``content``; see :meth:`put` and :meth:`content_get`.

        See :meth:`taquba_memo.Memo.content_put`.
        """
        return self._store._run(
            self._core.content_put(
                content, value, codec=codec, if_absent=if_absent, namespace=namespace
            )
        )


def open_store(
    url: str, prefix: str = "", *, max_value_bytes: int | None = None, layout: str = "0.5"
) -> MemoStore:
    """Return a :class:`MemoStore` on the backend ``url`` names.

    The synchronous :func:`taquba_memo.open_store`. The backend is built on
    the store's own loop thread, so adapters that bind to the running loop
    when constructed work too.
    """
    loop_thread = LoopThread()
    try:

        async def build() -> AsyncMemoStore:
            return urls.open_store(url, prefix, max_value_bytes=max_value_bytes, layout=layout)

        core = loop_thread.run(build())
    except BaseException:
        loop_thread.stop()
        raise
    return MemoStore._from_core(core, loop_thread)


def use_memo(memo: Memo) -> AbstractContextManager[Memo]:
    """Make ``memo`` the current memo for the ``with`` block (see :func:`current_memo`).

    The sync :func:`taquba_memo.use_memo`, for a :class:`Memo` of this
    module. One binding serves both APIs: inside the block
    ``taquba_memo.current_memo()`` returns ``memo.aio``, for the async
    hooks of the same step.
    """
    return current.use_sync_memo(memo, Memo)


def current_memo() -> Memo | None:
    """Return the memo bound by the innermost ``use_memo`` block of this context, or None.

    With an async memo bound (by ``taquba_memo.use_memo``) it raises
    :class:`~taquba_memo.InvalidValueTypeError`: a sync hook cannot use one
    without blocking its loop, and skipping the memo would pay again on
    every retry. Bind the step's memo with this module's ``use_memo``
    where sync hooks run; its ``aio`` serves the async ones.
    """
    return current.current_sync_memo(Memo)
