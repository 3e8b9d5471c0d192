"""Occurrence keys that a failed call gives back: the integrations' shared numbering.

``Memo.occurrence_key`` numbers identical requests within one attempt, so
sampling the same request twice pays twice and the retry replays both in
order. A call that fails (an HTTP 500, a stream stopped early) stores
nothing; if its number were spent, the caller's immediate retry of that call
would take the next number, and the step's retry, counting from 0 again,
would find nothing under the first and pay again. So a number taken here is
*pending* until :meth:`settle`: the next call with the same key in the same
context (the same task or thread, where calls run one after another) takes
the pending number back instead of a new one. Calls in other tasks see their
own copy of the context, so concurrent identical calls still get their own
numbers.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

__all__ = ["acomputed", "asettled", "computed", "settle", "settled", "take"]

T = TypeVar("T")

# (id of the memo, request key) -> (the memo, its pending occurrence key). The memo
# is held so that its id cannot be reused while an entry names it. Replaced, never
# mutated, so that contexts copied into other tasks do not share changes.
_Pending = Mapping[tuple[int, str], tuple[Any, str]]
_pending: contextvars.ContextVar[_Pending] = contextvars.ContextVar(
    "taquba_memo_agents.pending_occurrences", default=MappingProxyType({})
)


def take(memo: Any, key: str) -> str:
    """The occurrence key for this call: a failed call's in this context, else the next one."""
    pending = _pending.get()
    held = pending.get((id(memo), key))
    if held is not None and held[0] is memo:
        return held[1]
    occurrence: str = memo.occurrence_key(key)
    _pending.set({**pending, (id(memo), key): (memo, occurrence)})
    return occurrence


def settle(memo: Any, key: str) -> None:
    """The call with ``key`` stored or replayed its result: its number is spent."""
    pending = _pending.get()
    if (id(memo), key) in pending:
        _pending.set({k: v for k, v in pending.items() if k != (id(memo), key)})


def settled(memo: Any, key: str, start: Callable[[str], T]) -> T:
    """``start`` this call's occurrence of ``key``; its number is spent once ``start``
    returns (an exception leaves it pending for the next such call in this context)."""
    result = start(take(memo, key))
    settle(memo, key)
    return result


async def asettled(memo: Any, key: str, start: Callable[[str], Awaitable[T]]) -> T:
    """:func:`settled` for a ``start`` that is awaited."""
    result = await start(take(memo, key))
    settle(memo, key)
    return result


def computed(memo: Any, key: str, call: Callable[[], T], **options: Any) -> T:
    """A sync memo's ``get_or_compute`` of this occurrence of ``key``, :func:`settled`."""
    result: T = settled(
        memo, key, lambda occurrence: memo.get_or_compute(occurrence, call, **options)
    )
    return result


async def acomputed(memo: Any, key: str, call: Callable[[], Any], **options: Any) -> Any:
    """An async memo's ``get_or_compute`` of this occurrence of ``key``, :func:`asettled`."""
    return await asettled(
        memo, key, lambda occurrence: memo.get_or_compute(occurrence, call, **options)
    )
