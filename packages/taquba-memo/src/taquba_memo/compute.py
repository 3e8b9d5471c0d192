"""get_or_compute: read a memo entry, or compute it once, store it and return it.

This module holds the logic behind :meth:`taquba_memo.Memo.get_or_compute`
(the sync API drives the same coroutine):

1. Read the entry. A value that decodes is returned. A value that fails to
   decode is a miss: a corrupt object, one written with another codec, or
   one a codec's hook refuses (an ``object_hook`` raising ``KeyError`` after
   a schema change). Whatever the codec raised is logged as the cause.
2. Call ``fn`` (sync or async) and encode its result. An exception from
   ``fn`` or from encoding propagates and nothing is stored: exceptions are
   never cached. A codec without ``encode``/``decode`` is refused before any
   I/O; a result the codec cannot encode, or one over ``max_value_bytes``,
   can only be found after ``fn`` was paid, so that error says so and names
   the fix.
3. Store the bytes and return ``codec.decode(encoded)``, so the caller gets
   exactly what a later retry will read back (JSON turns tuples into lists on
   the first call too, not only on the retry).

Agreement by default. ``if_absent=None`` (the default) stores with a
create-if-absent wherever the backend declares ``conditional_put``: the first
writer wins, and a writer that lost returns the winner's stored value, so
duplicate workers of one step end with one answer. On a backend without
``conditional_put`` the store is an overwrite (the latest writer wins, as
``Memo.put`` does, matching the reference's ``put``), and a warning says so
once per backend class. ``if_absent=True`` demands first-writer-wins and
raises :class:`~taquba_memo.NotSupported` before any work where it is not
available; ``if_absent=False`` chooses overwrite. When step 1 found an
undecodable value, that value is replaced by an overwrite (a create would
fail forever), so first-writer-wins covers entries that were absent, not
ones that were corrupt.

Paid work survives cancellation. The leader's work runs as its own task; the
leader only waits for it. If the leader is cancelled (``asyncio.timeout``,
``wait_for``, a sync caller interrupted by a time limit) before ``fn`` has
started, the work stops and a follower, if any, takes over. Once ``fn`` has
started it runs on, its result is stored, and every follower (and a retry in
this process that arrives meanwhile) waits for it instead of paying again;
a failure is logged. ``store_if_cancelled=False`` cancels ``fn`` with its
caller instead. The work lives as long as its event loop: ``asyncio.run``
ending cancels it (the sync API's loop lives as long as the store).

Single flight: within one process, concurrent calls for the same entry (same
backend object, prefix, run, step and key) share one computation, across
tasks, threads and event loops. The followers decode the leader's stored
bytes with their own codec, and receive the leader's exception if it
failed. The bookkeeping entry is removed as soon as the flight lands. Across
processes, the first-writer-wins store makes duplicates agree, and claims
(below) make them pay once. ``fn`` must not itself call ``get_or_compute``
for the same entry: it would wait for itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taquba_memo import layout
from taquba_memo.codecs import Codec, decode_value, encode_value
from taquba_memo.errors import (
    DecodeError,
    EncodeError,
    InvalidValueType,
    NotSupported,
    ValueTooLargeError,
)

if TYPE_CHECKING:
    from taquba_memo.backend import MemoBackend
    from taquba_memo.store import Memo

__all__ = ["get_or_compute"]

logger = logging.getLogger("taquba_memo")

T = TypeVar("T")

# The outcome a computation publishes when it was cancelled before it finished.
_ABANDONED = None

_FlightKey = tuple[int, str]


class _Flight:
    """One computation in progress. Its future carries the stored bytes, the
    computation's exception, or ``_ABANDONED``; any thread or loop may wait on it."""

    __slots__ = ("fn_started", "followers", "outcome")

    def __init__(self) -> None:
        self.outcome: concurrent.futures.Future[bytes | None] = concurrent.futures.Future()
        self.followers = 0
        self.fn_started = False


_flights: dict[_FlightKey, _Flight] = {}
_flights_lock = threading.Lock()
# Computations whose caller was cancelled run on; strong references keep them alive.
_detached: set[asyncio.Future[Any]] = set()
# Backend classes already warned about falling back to overwrite.
_warned_overwrite: set[str] = set()


def _join(key: _FlightKey) -> tuple[_Flight, bool]:
    """Return the flight for ``key`` and whether the caller leads it."""
    with _flights_lock:
        flight = _flights.get(key)
        if flight is not None:
            flight.followers += 1
            return flight, False
        flight = _flights[key] = _Flight()
        return flight, True


def _land(key: _FlightKey, flight: _Flight) -> None:
    with _flights_lock:
        if _flights.get(key) is flight:
            del _flights[key]


def flights_in_progress() -> int:
    """How many single-flight entries exist right now (for tests and debugging)."""
    with _flights_lock:
        return len(_flights)


def first_writer_wins(backend: MemoBackend, if_absent: bool | None) -> bool:
    """Resolve ``if_absent``: True/False as asked; None means wherever the backend can.

    Raises :class:`~taquba_memo.NotSupported` for ``True`` on a backend without
    ``conditional_put``. For ``None`` on such a backend the store is an
    overwrite, and a warning says so once per backend class.
    """
    conditional = backend.capabilities.conditional_put
    if if_absent is None:
        if not conditional:
            name = type(backend).__name__
            if name not in _warned_overwrite:
                _warned_overwrite.add(name)
                logger.warning(
                    "%s does not declare conditional_put: get_or_compute stores with an "
                    "overwrite there, so duplicate workers of one step can end with different "
                    "answers (the latest writer wins). Use a backend with conditional writes "
                    "for first-writer-wins, or pass if_absent=False to choose overwrite "
                    "explicitly and silence this warning",
                    name,
                )
        return conditional
    if if_absent and not conditional:
        raise NotSupported(
            f"if_absent needs conditional_put, which {type(backend).__name__} does not declare"
        )
    return bool(if_absent)


async def get_or_compute(
    memo: Memo,
    key: str,
    fn: Callable[[], Any],
    codec: Codec[T],
    if_absent: bool | None,
    store_if_cancelled: bool = True,
) -> T:
    """See the module documentation; ``Memo.get_or_compute`` is the public face."""
    store = memo.store
    backend = store.backend
    # Builds (and so validates) the object key before any I/O.
    object_key = layout.memo_key(store.prefix, memo.run_id, memo.step_number, key)
    if not callable(fn):
        raise InvalidValueType(f"fn must be callable, not {type(fn).__name__}")
    if not (callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
        raise InvalidValueType(
            f"codec must have encode() and decode() methods, {type(codec).__name__} has not"
        )
    if not isinstance(store_if_cancelled, bool):
        raise InvalidValueType("store_if_cancelled must be a bool")
    agree = first_writer_wins(backend, if_absent)
    flight_key = (id(backend), object_key)
    while True:
        flight, leading = _join(flight_key)
        if leading:
            computation = asyncio.ensure_future(
                _compute(flight_key, flight, memo, key, fn, codec, agree)
            )
            try:
                value, _ = await asyncio.shield(computation)
            except asyncio.CancelledError:
                _leave(flight, computation, store_if_cancelled)
                raise
            return value
        outcome = await _follow(flight)
        if outcome is _ABANDONED:
            continue
        try:
            return decode_value(codec, outcome)
        except DecodeError:
            continue  # written with another codec: lead a flight of our own


def _leave(flight: _Flight, computation: asyncio.Future[Any], store_if_cancelled: bool) -> None:
    """The leader was cancelled. Work not yet paid for stops; paid work is finished
    and stored (followers keep waiting for it) unless the caller opted out."""
    if computation.done():
        return
    if flight.fn_started and store_if_cancelled:
        _detached.add(computation)
        computation.add_done_callback(_finish_detached)
    else:
        computation.cancel()


def _finish_detached(computation: asyncio.Future[Any]) -> None:
    _detached.discard(computation)
    if computation.cancelled():
        return
    error = computation.exception()  # retrieved here: nobody else awaits it
    if error is not None:
        logger.warning(
            "a computation left running by a cancelled get_or_compute failed; nothing "
            "was stored: %r",
            error,
        )


async def _compute(
    flight_key: _FlightKey,
    flight: _Flight,
    memo: Memo,
    key: str,
    fn: Callable[[], Any],
    codec: Codec[T],
    agree: bool,
) -> tuple[T, bytes]:
    """Run one flight's work and publish its outcome to the followers."""
    try:
        value, data = await _lead(memo, key, fn, codec, agree, flight)
    except Exception as exc:
        _land(flight_key, flight)
        flight.outcome.set_exception(exc)
        raise
    except BaseException:
        # Cancelled or interrupted: a follower takes over.
        _land(flight_key, flight)
        flight.outcome.set_result(_ABANDONED)
        raise
    _land(flight_key, flight)
    flight.outcome.set_result(data)
    return value, data


async def _follow(flight: _Flight) -> bytes | None:
    # shield: a cancelled follower must not cancel the shared future.
    return await asyncio.shield(asyncio.wrap_future(flight.outcome))


async def _lead(
    memo: Memo, key: str, fn: Callable[[], Any], codec: Codec[T], agree: bool, flight: _Flight
) -> tuple[T, bytes]:
    stored = await memo.get(key)
    corrupt = False
    if stored is not None:
        try:
            return decode_value(codec, stored), stored
        except DecodeError as exc:
            corrupt = True
            logger.warning(
                "memo entry %r of run %s step %d does not decode with %r (%s); recomputing",
                key,
                memo.run_id,
                memo.step_number,
                codec,
                exc,
            )
    flight.fn_started = True  # from here on the work is paid for
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    data, value = _encode_paid_result(memo, codec, result)
    written = await memo.put(key, data, if_absent=agree and not corrupt)
    if written:
        return value, data
    winner = await memo.get(key)
    if winner is None:
        return value, data  # the winner was already swept: ours is as good
    try:
        return decode_value(codec, winner), winner
    except DecodeError as exc:
        logger.warning(
            "memo entry %r of run %s step %d was written first with a value %r cannot "
            "decode (%s); returning this caller's value",
            key,
            memo.run_id,
            memo.step_number,
            codec,
            exc,
        )
        return value, data


def _encode_paid_result(memo: Memo, codec: Codec[T], result: Any) -> tuple[bytes, T]:
    """Encode ``fn``'s result and decode it back (what every later read will see).

    Runs after ``fn`` was paid, so each error says the work will be paid again
    on every retry, and how to fix it.
    """
    kind = type(result).__name__
    try:
        data = encode_value(codec, result)
    except EncodeError as exc:
        raise EncodeError(
            f"fn returned a {kind} that {codec!r} cannot encode ({exc}); the call was paid "
            f"but nothing was stored, so every retry pays again. Fix: a codec for {kind} "
            "(JSONCodec(default=...), or the pydantic codec recipe in the README), "
            "PickleCodec() for Python-only values, or return plain JSON types"
        ) from exc
    limit = memo.store.max_value_bytes
    if limit is not None and len(data) > limit:
        raise ValueTooLargeError(
            f"fn's result encodes to {len(data)} bytes, over max_value_bytes={limit}; the "
            "call was paid but nothing was stored, so every retry pays again. Fix: return "
            "a smaller value (store a reference to large data instead), or raise "
            "max_value_bytes"
        )
    try:
        value = decode_value(codec, data)
    except DecodeError as exc:
        raise EncodeError(
            f"{codec!r} cannot decode what it just encoded from a {kind} ({exc}); the call "
            "was paid but nothing was stored. Fix the codec so decode(encode(v)) works"
        ) from exc
    return data, value
