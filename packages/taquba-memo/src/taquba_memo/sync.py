"""The synchronous API: MemoStore and Memo for Celery, RQ, Dramatiq and scripts.

Same names, arguments and behaviour as :class:`taquba_memo.MemoStore` and
:class:`taquba_memo.Memo`, without ``await``. Nothing is implemented twice:
each sync store owns one private event loop, running in its own daemon
thread, and every method runs the async core's coroutine there and waits
for it. Because that loop is never the caller's, the sync API also works
when called from a thread that is running an event loop (a notebook, an
async web handler), without deadlocking; it blocks that loop while it
waits, as any blocking call does.

Iterators stream: ``iter_terminal_markers`` pulls one item at a time from
the async iterator, so memory stays flat and stopping early stops the
listing.

Callbacks run in the calling thread: a sync ``fn`` given to
``get_or_compute`` and a sync ``on_run_done`` given to ``sweep`` are called
in the thread that called the method (so thread-locals such as database
connections behave as usual), while the storage I/O runs on the store's
loop. An async ``fn`` runs on the store's loop.

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

import asyncio
import inspect
import queue
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar, overload

from taquba_memo import _fork, urls
from taquba_memo import store as _core
from taquba_memo._closing import Closing
from taquba_memo._sweep import SweepReport, SweepStrategy
from taquba_memo.backend import MemoBackend
from taquba_memo.claims import ClaimPolicy
from taquba_memo.codecs import BytesCodec, Codec
from taquba_memo.errors import StoreClosedError
from taquba_memo.layout import TerminalMarker
from taquba_memo.memo import BoundMemo
from taquba_memo.stats import MemoStats
from taquba_memo.store import MemoEntry

__all__ = ["Memo", "MemoStore", "open_store"]

T = TypeVar("T")

_BYTES = BytesCodec()

# How long close() waits for the loop thread to finish its cleanup.
_JOIN_TIMEOUT_S = 30.0


class _LoopThread:
    """An event loop running forever in a daemon thread, until stopped.

    A forked child inherits the loop but not its thread: the first use there
    starts a fresh loop and thread, and leaves the inherited loop untouched.
    """

    def __init__(self) -> None:
        self._stopped = False
        self._start()

    def _start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._fork_generation = _fork.generation()
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop,), name="taquba-memo-sync-loop", daemon=True
        )
        self._thread.start()

    @property
    def _inherited(self) -> bool:
        return self._fork_generation != _fork.generation()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """This process's loop: after a fork, a fresh one started on first use."""
        if self._inherited and not self._stopped:
            with _fork.child_lock:
                if self._inherited:
                    _fork.detach_inherited_loop(self._loop)
                    self._start()
        return self._loop

    @property
    def stopped(self) -> bool:
        return self._stopped

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def run(self, coro: Coroutine[Any, Any, T], callbacks: _CallerThread | None = None) -> T:
        """Run ``coro`` on the loop and wait for it in the calling thread."""
        if self._stopped:
            coro.close()
            raise StoreClosedError("the store is closed")
        loop = self.loop
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a sync MemoStore was called from its own event loop (inside an async "
                "callback); that would deadlock. Use the async API there."
            )
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            if callbacks is not None:
                callbacks.serve_until(future)
            return future.result()
        except BaseException:
            future.cancel()  # interrupted while waiting: stop the work too
            if callbacks is not None and callbacks.interrupt is not None:
                raise callbacks.interrupt from None  # an async fn's, caught on the loop
            raise

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._inherited:
            # Never started in this process: nothing runs here to stop.
            _fork.detach_inherited_loop(self._loop)
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(_JOIN_TIMEOUT_S)

    def stop_soon(self) -> None:
        """Stop without waiting: for a store garbage-collected without close()."""
        if self._stopped:
            return
        if self._inherited:
            self.stop()
            return
        self._loop.call_soon_threadsafe(self.stop)


def _stop_unclosed(loop_thread: _LoopThread) -> None:
    # A store that was garbage-collected without close(): at least stop its thread.
    loop_thread.stop_soon()


class _CallerThread:
    """Lets coroutines on the store's loop call sync callbacks in the waiting thread.

    The waiting thread serves a queue of calls until the coroutine finishes;
    each call's result (or exception) goes back to the loop.

    Interrupts never wedge a call. When the waiting thread stops serving for
    any reason (a ``KeyboardInterrupt`` or ``SystemExit`` raised by the
    callback, a time limit raised into the thread, even between two of its
    bytecodes), every call it has not answered is cancelled on the loop: the
    computation waiting for it ends as a cancelled one does (nothing stored,
    its single flight landed, its claim released), and the interrupt reaches
    the caller. An async callback that raises ``KeyboardInterrupt`` or
    ``SystemExit`` on the store's loop is stopped there, so the loop lives
    on, and its exception is raised in the waiting thread instead.
    """

    _DONE = object()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._serving = True
        # Replies not yet answered; touched on the loop only.
        self._unanswered: set[asyncio.Future[Any]] = set()
        self.interrupt: BaseException | None = None
        """An interrupt an async callback raised on the loop, for the waiting thread."""

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """An async stand-in for ``fn``: it asks the waiting thread to call ``fn``."""

        async def call_in_caller_thread(*args: Any) -> Any:
            if not self._serving:
                # The waiting thread was interrupted: fn never runs.
                raise asyncio.CancelledError
            reply: asyncio.Future[Any] = self._loop.create_future()
            self._unanswered.add(reply)
            reply.add_done_callback(self._unanswered.discard)
            self._calls.put((reply, fn, args))
            result = await reply
            if inspect.isawaitable(result):
                try:
                    result = await result  # an async fn's coroutine runs here, on the loop
                except (KeyboardInterrupt, SystemExit) as exc:
                    # Left alone it would stop the store's loop for every caller.
                    self.interrupt = exc
                    raise asyncio.CancelledError from exc
            return result

        return call_in_caller_thread

    def serve_until(self, future: Any) -> None:
        future.add_done_callback(lambda _: self._calls.put(self._DONE))
        try:
            while (call := self._calls.get()) is not self._DONE:
                reply, fn, args = call
                try:
                    result = fn(*args)
                except Exception as exc:
                    self._loop.call_soon_threadsafe(_settle, reply, None, exc)
                else:
                    self._loop.call_soon_threadsafe(_settle, reply, result, None)
        finally:
            self._stop_serving()

    def _stop_serving(self) -> None:
        # Whatever stopped this thread, no call may wait for it any longer:
        # cancel the unanswered ones on the loop, which alone touches the set.
        self._serving = False
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._cancel_unanswered)

    def _cancel_unanswered(self) -> None:
        for reply in list(self._unanswered):
            reply.cancel()


def _settle(reply: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if reply.done():
        return  # the waiting coroutine was cancelled meanwhile
    if error is not None:
        reply.set_exception(error)
    else:
        reply.set_result(result)


class MemoStore(Closing):
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
    ) -> None:
        # Validate before starting a thread, so bad arguments leak nothing.
        core = _core.MemoStore(backend, prefix, max_value_bytes=max_value_bytes)
        self._adopt(core, _LoopThread())

    @classmethod
    def _from_core(cls, core: _core.MemoStore, loop_thread: _LoopThread) -> MemoStore:
        self = cls.__new__(cls)
        self._adopt(core, loop_thread)
        return self

    def _adopt(self, core: _core.MemoStore, loop_thread: _LoopThread) -> None:
        self._core = core
        self._loop_thread = loop_thread
        self._finalizer = weakref.finalize(self, _stop_unclosed, loop_thread)

    def _run(self, coro: Coroutine[Any, Any, T], callbacks: _CallerThread | None = None) -> T:
        return self._loop_thread.run(coro, callbacks)

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """Stream an async iterator of the core, one item per hop to the loop."""
        try:
            while True:
                found, item = self._run(_next_item(items))
                if not found:
                    return
                yield item
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None and not self._loop_thread.stopped:
                self._run(aclose())

    @property
    def backend(self) -> MemoBackend:
        return self._core.backend

    @property
    def prefix(self) -> str:
        """The normalised prefix (``"/a//b/"`` becomes ``"a/b"``)."""
        return self._core.prefix

    @property
    def max_value_bytes(self) -> int | None:
        """The largest value this store accepts, or None for no limit."""
        return self._core.max_value_bytes

    @property
    def lists_metadata(self) -> bool:
        """True when the backend's listing carries sizes (see the async store)."""
        return self._core.lists_metadata

    @property
    def stats(self) -> MemoStats:
        """What this store did (the async store's :class:`~taquba_memo.MemoStats`)."""
        return self._core.stats

    @property
    def closed(self) -> bool:
        return self._loop_thread.stopped

    def __repr__(self) -> str:
        backend = self._core._backend_object
        return f"taquba_memo.sync.MemoStore(prefix={self.prefix!r}, backend={backend!r})"

    def new_memo(self, run_id: str, step_number: int) -> Memo:
        """Return a :class:`Memo` bound to ``(run_id, step_number)``."""
        return Memo(self, run_id, step_number)

    def clear_memos_for_run(self, run_id: str) -> int:
        """Delete every memo entry of ``run_id``; return how many were deleted."""
        return self._run(self._core.clear_memos_for_run(run_id))

    def write_terminal_marker(self, run_id: str, terminal_at_ms: int) -> None:
        """Write the zero-byte terminal marker of ``run_id`` at ``terminal_at_ms``."""
        self._run(self._core.write_terminal_marker(run_id, terminal_at_ms))

    def iter_entries(
        self, run_id: str | None = None, *, with_metadata: bool = False
    ) -> Iterator[MemoEntry]:
        """Yield every object below ``<prefix>/memos/`` with its run and step, streaming."""
        return self._iterate(self._core.iter_entries(run_id, with_metadata=with_metadata))

    def iter_terminal_markers(self) -> Iterator[TerminalMarker]:
        """Yield every terminal marker, streaming."""
        return self._iterate(self._core.iter_terminal_markers())

    def list_terminal_markers(self) -> list[TerminalMarker]:
        """Return every terminal marker."""
        return self._run(self._core.list_terminal_markers())

    def iter_expired_terminal_markers(self, cutoff_ms: int) -> Iterator[TerminalMarker]:
        """Yield the markers with ``terminal_at_ms`` strictly below ``cutoff_ms``, streaming."""
        return self._iterate(self._core.iter_expired_terminal_markers(cutoff_ms))

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
        on_run_done: Callable[[TerminalMarker, int], object] | None = None,
        strategy: SweepStrategy = "auto",
        max_runs_in_memory: int = 100_000,
        record_run_ids: bool = True,
    ) -> SweepReport:
        """Clear the memos of every run whose marker is older than ``cutoff_ms``.

        See :meth:`taquba_memo.MemoStore.sweep`. ``on_run_done(marker,
        entries_deleted)`` is called in the calling thread after each run.
        """
        callbacks = None if on_run_done is None else _CallerThread(self._loop_thread.loop)
        work = self._core.sweep(
            cutoff_ms,
            concurrency=concurrency,
            dry_run=dry_run,
            on_run_done=None if callbacks is None else callbacks.wrap(on_run_done),  # type: ignore[arg-type]
            strategy=strategy,
            max_runs_in_memory=max_runs_in_memory,
            record_run_ids=record_run_ids,
        )
        return self._run(work) if callbacks is None else self._run(work, callbacks)

    def close(self) -> None:
        """Close the backend and stop the store's thread. Calling it twice is harmless."""
        if self._loop_thread.stopped:
            return
        try:
            self._run(self._core.aclose())
        finally:
            self._finalizer.detach()
            self._loop_thread.stop()


async def _next_item(items: AsyncIterator[T]) -> tuple[bool, Any]:
    try:
        return True, await items.__anext__()
    except StopAsyncIteration:
        return False, None


class Memo(BoundMemo[MemoStore]):
    """Synchronous :class:`taquba_memo.Memo`, scoped to one ``(run_id, step_number)``."""

    __slots__ = ("_core",)

    _repr_name = "taquba_memo.sync.Memo"

    def __init__(self, store: MemoStore, run_id: str, step_number: int) -> None:
        self._core = store._core.new_memo(run_id, step_number)
        super().__init__(store, self._core.run_id, self._core.step_number)

    def get(self, key: str) -> bytes | None:
        """Return the value an earlier attempt stored for ``key``, or None."""
        return self._store._run(self._core.get(key))

    def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        """Store ``value`` for ``key``; see :meth:`taquba_memo.Memo.put`."""
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
        codec: Codec[Any] = _BYTES,
        if_absent: bool | None = None,
        store_if_cancelled: bool = True,
        claim: ClaimPolicy | None = None,
    ) -> Any:
        """Return the stored value, or compute, store and return it.

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
        options: dict[str, Any] = {
            "codec": codec,
            "if_absent": if_absent,
            "store_if_cancelled": store_if_cancelled,
            "claim": claim,
        }
        if not callable(fn):
            # Checked here too: the stand-in below is always callable.
            return self._store._run(self._core.get_or_compute(key, fn, **options))
        callbacks = _CallerThread(self._store._loop_thread.loop)
        return self._store._run(
            self._core.get_or_compute(key, callbacks.wrap(fn), **options), callbacks
        )

    @overload
    def content_get(self, content: object, *, namespace: str | None = None) -> bytes | None: ...

    @overload
    def content_get(
        self, content: object, *, codec: Codec[T], namespace: str | None = None
    ) -> T | None: ...

    def content_get(
        self, content: object, *, codec: Codec[Any] = _BYTES, namespace: str | None = None
    ) -> Any:
        """Return the value stored for the input ``content``, or None."""
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
        codec: Codec[Any] = _BYTES,
        if_absent: bool = False,
        namespace: str | None = None,
    ) -> bool:
        """Store ``value`` for the input ``content``."""
        return self._store._run(
            self._core.content_put(
                content, value, codec=codec, if_absent=if_absent, namespace=namespace
            )
        )


def open_store(url: str, prefix: str = "", *, max_value_bytes: int | None = None) -> MemoStore:
    """Open a synchronous store by URL; see :func:`taquba_memo.open_store`.

    The backend is built on the store's own loop thread, so adapters that
    bind to the running loop when constructed work too.
    """
    loop_thread = _LoopThread()
    try:

        async def build() -> _core.MemoStore:
            return urls.open_store(url, prefix, max_value_bytes=max_value_bytes)

        core = loop_thread.run(build())
    except BaseException:
        loop_thread.stop()
        raise
    return MemoStore._from_core(core, loop_thread)
