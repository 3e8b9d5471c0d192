"""The current memo: the memo a step bound for the code it calls, in a context variable.

Framework hooks (a cache interface, a model wrapper, an HTTP transport) are
called without a run id; the step binds its memo around the call instead::

    with use_memo(memo):
        await agent.run(prompt)  # a hook inside calls current_memo()

One :class:`contextvars.ContextVar` holds the binding of either API, so the
two nest and restore each other: ``taquba_memo.use_memo`` binds an async
:class:`~taquba_memo.Memo`, ``taquba_memo.sync.use_memo`` a sync one. A
binding is what asyncio copies into every task and ``asyncio.to_thread``
call started inside the block (a plain ``threading.Thread`` starts with an
empty context, as with any context variable). Leaving the block restores
the binding that was current before it, whatever ends it (an exception,
``KeyboardInterrupt``, ``SystemExit``, a cancellation).

Each API reads the binding as its own kind. ``taquba_memo.current_memo()``
returns an async memo: the one bound, or the :attr:`~taquba_memo.sync.Memo.aio`
view of a bound sync memo (same entries, awaited on the caller's loop), so
an async hook always gets something it can await. ``taquba_memo.sync.current_memo()``
returns the sync memo bound; with an async memo bound it raises
:class:`~taquba_memo.InvalidValueTypeError` rather than returning None,
since a sync hook that silently skipped the memo would pay again on every
retry: bind a sync memo where sync hooks run (its ``aio`` serves the async
ones).
"""

from __future__ import annotations

import contextvars
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from taquba_memo._memo import Memo
from taquba_memo.errors import InvalidValueTypeError

__all__ = ["Binding", "SyncMemo", "current_memo", "current_sync_memo", "use_memo", "use_sync_memo"]

SyncMemoT = TypeVar("SyncMemoT")


class SyncMemo(Protocol):
    """What this module uses of a ``taquba_memo.sync.Memo``: its async view."""

    @property
    def aio(self) -> Memo: ...


SyncT = TypeVar("SyncT", bound=SyncMemo)


@dataclass(frozen=True)
class Binding(Generic[SyncMemoT]):
    """What ``use_memo`` bound: the async memo, and the sync memo it is the view of, if any."""

    aio: Memo
    sync: SyncMemoT | None


_current: contextvars.ContextVar[Binding[object] | None] = contextvars.ContextVar(
    "taquba_memo.current_memo", default=None
)


class _Using(AbstractContextManager[SyncMemoT]):
    """Binds ``binding`` for the ``with`` block, and restores the previous one after it."""

    __slots__ = ("_binding", "_given", "_token")

    def __init__(self, binding: Binding[object], given: SyncMemoT) -> None:
        self._binding = binding
        self._given = given
        self._token: contextvars.Token[Binding[object] | None] | None = None

    def __enter__(self) -> SyncMemoT:
        if self._token is not None:
            raise RuntimeError("this use_memo(...) block is already entered; call use_memo again")
        self._token = _current.set(self._binding)
        return self._given

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            _current.reset(token)
        except ValueError:
            # Left in another context than it was entered in (a generator resumed
            # elsewhere): restore the value rather than fail the block's exit.
            previous = token.old_value
            _current.set(None if previous is contextvars.Token.MISSING else previous)


def use_memo(memo: Memo) -> AbstractContextManager[Memo]:
    """Make ``memo`` the current memo for the ``with`` block (see :func:`current_memo`).

    A context variable carries it into every task and ``asyncio.to_thread``
    call started inside the block; leaving the block, however it ends,
    restores the memo that was current before (None outside any).
    ``memo`` must be a :class:`~taquba_memo.Memo`; a sync one is bound
    with ``taquba_memo.sync.use_memo``.
    """
    if not isinstance(memo, Memo):
        hint = (
            "; bind a sync memo with taquba_memo.sync.use_memo"
            if type(memo).__module__ == "taquba_memo.sync"
            else ""
        )
        raise InvalidValueTypeError(
            f"use_memo takes a taquba_memo.Memo, not {type(memo).__name__}{hint}"
        )
    return _Using(Binding(memo, None), memo)


def current_memo() -> Memo | None:
    """Return the memo bound by the innermost ``use_memo`` block of this context, or None.

    A bound sync memo is returned as its ``aio`` view, an async memo on the
    same entries, so an async hook always gets a memo it can await.
    """
    binding = _current.get()
    return None if binding is None else binding.aio


def use_sync_memo(memo: object, sync_memo_class: type[SyncT]) -> AbstractContextManager[SyncT]:
    """``taquba_memo.sync.use_memo``: binds ``memo``, a ``sync_memo_class``, and its ``aio``."""
    if not isinstance(memo, sync_memo_class):
        hint = "; bind an async one with taquba_memo.use_memo" if isinstance(memo, Memo) else ""
        raise InvalidValueTypeError(
            f"taquba_memo.sync.use_memo takes a sync Memo, not {type(memo).__name__}{hint}"
        )
    return _Using(Binding(memo.aio, memo), memo)


def current_sync_memo(sync_memo_class: type[SyncT]) -> SyncT | None:
    """``taquba_memo.sync.current_memo``: the sync memo bound; a bound async one is refused."""
    binding = _current.get()
    if binding is None:
        return None
    if not isinstance(binding.sync, sync_memo_class):
        raise InvalidValueTypeError(
            "the current memo is an async taquba_memo.Memo, bound by taquba_memo.use_memo; "
            "a sync hook needs a sync one: bind a taquba_memo.sync.Memo with "
            "taquba_memo.sync.use_memo (its .aio serves the async hooks)"
        )
    return binding.sync
