"""The sync API's engine: a private event loop in a daemon thread, and calls across to it.

One loop thread per store. Each sync store (:mod:`taquba_memo.sync`) owns
one :class:`LoopThread`: an event loop running forever in a daemon thread
of its own. A sync method hands the async core's coroutine to that loop
(``run_coroutine_threadsafe``) and blocks the calling thread on the future.
Because the loop is never the caller's, a caller that is itself running an
event loop (a notebook, an async web handler) does not deadlock; a
coroutine on the store's loop that calls the sync store again would, so
that raises ``RuntimeError`` instead.

Replies cross back through the caller. A sync callback (``get_or_compute``'s
``fn``, ``sweep``'s ``on_run_done``) must run in the calling thread, where
its thread-locals live, while the coroutine that calls it runs on the loop.
:class:`CallerThread` gives the coroutine an async stand-in: the stand-in
puts ``(reply future, fn, args)`` on a queue and awaits the reply; the
calling thread, instead of just blocking on the result, serves that queue
until the coroutine finishes, and settles each reply on the loop with
``call_soon_threadsafe``. An async callback's coroutine is awaited on the
loop.

Interrupts cross too, and never wedge a call. When the calling thread stops
serving (a ``KeyboardInterrupt`` or ``SystemExit``, a time limit raised into
it), it cancels the coroutine's future and every reply still unanswered, so
the core sees a cancelled computation (nothing stored, the single flight
landed, the claim released), and the interrupt propagates to the caller. An
async callback that raises ``KeyboardInterrupt`` or ``SystemExit`` on the
loop is turned into a cancellation there (so the loop, shared by every
caller of the store, lives on) and its exception is re-raised in the
calling thread.

Streams cross one item at a time: :meth:`LoopThread.iterate` pulls the next
item of an async iterator per hop, so memory stays flat and stopping early
closes the iterator on the loop.

A forked child inherits the loop but not its thread: the first use there
starts a fresh loop and thread, and leaves the inherited loop untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from taquba_memo import _fork
from taquba_memo.errors import StoreClosedError

__all__ = ["CallerThread", "LoopThread"]

T = TypeVar("T")

THREAD_NAME = "taquba-memo-sync-loop"

# How long stop() waits for the loop thread to finish its cleanup.
_JOIN_TIMEOUT_S = 30.0


class LoopThread:
    """An event loop running forever in a daemon thread, until stopped."""

    def __init__(self) -> None:
        self._stopped = False
        self._start()

    def _start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._fork_generation = _fork.generation()
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop,), name=THREAD_NAME, daemon=True
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

    def run(self, coro: Coroutine[Any, Any, T], callbacks: CallerThread | None = None) -> T:
        """Run ``coro`` on the loop and wait for it in the calling thread.

        With ``callbacks``, the calling thread serves its sync callbacks
        while it waits.
        """
        try:
            loop = self._admit()
        except BaseException:
            coro.close()
            raise
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

    def _admit(self) -> asyncio.AbstractEventLoop:
        """The loop, for a call from this thread; refused when stopped or on the loop itself."""
        if self._stopped:
            raise StoreClosedError("the store is closed")
        loop = self.loop
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a sync MemoStore was called from its own event loop (inside an async "
                "callback); that would deadlock. Use the async API there."
            )
        return loop

    def call_here(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the calling thread, with no hop to the loop: for blocking
        work that needs no loop. Refused exactly where :meth:`run` refuses a call."""
        self._admit()
        return fn(*args)

    def run_calling_back(
        self,
        fn: object,
        work: Callable[[Any], Coroutine[Any, Any, T]],
    ) -> T:
        """Run ``work(stand_in)``, where the async ``stand_in`` calls ``fn`` in this thread.

        A ``fn`` that is not callable (None, or an argument the core refuses
        with its typed error) is given to ``work`` as it is.
        """
        if not callable(fn):
            return self.run(work(fn))
        callbacks = CallerThread(self.loop)
        return self.run(work(callbacks.wrap(fn)), callbacks)

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """Stream an async iterator of the core, one item per hop to the loop."""
        try:
            while True:
                found, item = self.run(_next_item(items))
                if not found:
                    return
                yield item
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None and not self._stopped:
                self.run(aclose())

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


async def _next_item(items: AsyncIterator[T]) -> tuple[bool, Any]:
    try:
        return True, await items.__anext__()
    except StopAsyncIteration:
        return False, None


class CallerThread:
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
