"""get_or_compute: read a memo entry, or compute it once, store it and return it.

This module holds the logic behind :meth:`taquba_memo.Memo.get_or_compute`
(the sync API drives the same coroutine):

1. Read the entry (:func:`~taquba_memo._bounded_read.read_object`: with
   ``max_value_bytes`` never more than that bound of it where the backend
   offers ``get_at_most``). A value
   that decodes is returned. A value that fails to decode is a miss: a
   corrupt object, one written with another codec, or one a codec's hook
   refuses (an ``object_hook`` raising ``KeyError`` after a schema change).
   Whatever the codec raised is logged as the cause. So is an entry that
   cannot be read as a value: one over ``max_value_bytes``
   (:class:`~taquba_memo.EntryTooLargeError`, its size and the bound
   logged) or a foreign object under its key
   (:class:`~taquba_memo.ForeignObjectError`); both are misses too.
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
raises :class:`~taquba_memo.NotSupportedError` before any work where it is not
available; ``if_absent=False`` chooses overwrite. When step 1 found an
undecodable, oversized or foreign value, that value is replaced by an
overwrite (a create would fail forever), so first-writer-wins covers entries
that were absent, not ones that were unusable. A winner read after a lost
create that is unusable is logged, and this caller's value returned.

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
failed (:mod:`taquba_memo._single_flight` keeps the table). A hit never
joins a flight: the caller reads the entry in its own task and returns it;
only a miss (or a call that finds a flight under way) joins one, and its
leader reuses that first read unless a flight landed meanwhile. The
bookkeeping entry is removed as soon as the flight lands. Across
processes, the first-writer-wins store makes duplicates agree, and claims
(below) make them pay once. ``fn`` must not itself call ``get_or_compute``
for the same entry: it would wait for itself.

Claims (``claim=ClaimPolicy(...)``, opt-in, needs ``conditional_put``): on a
miss the flight's leader claims the entry before paying (or waits for the
process that holds the claim, and returns what it stores), reads the entry
once more, pays, stores, and deletes the claim; a failure or a cancellation
before ``fn`` started releases it. :mod:`taquba_memo._claims` has the protocol.
This module sees entries only through an :class:`EntrySlot`, which ``Memo``
builds; it knows nothing of stores, runs or steps.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from taquba_memo import _single_flight
from taquba_memo._bounded_read import read_object
from taquba_memo._claims import ClaimPolicy, EntryClaims, check_claim
from taquba_memo._codecs import Codec, check_codec, decode_value, encode_value
from taquba_memo._concurrency import keep_running
from taquba_memo._telemetry import Operation, monotonic
from taquba_memo.backend import MemoBackend, ReadsInThread
from taquba_memo.errors import (
    DecodeError,
    EncodeError,
    EntryTooLargeError,
    ForeignObjectError,
    InvalidValueTypeError,
    NotSupportedError,
    ValueTooLargeError,
)

__all__ = ["EntrySlot", "check_call", "get_or_compute", "stored_in_thread"]

logger = logging.getLogger("taquba_memo")

T = TypeVar("T")

# Backend classes already warned about falling back to overwrite.
_warned_overwrite: set[str] = set()
# What a read raises for an object that is there but is no value: a miss for get_or_compute.
_UNREADABLE = (EntryTooLargeError, ForeignObjectError)


@dataclass(slots=True)
class EntrySlot:
    """Everything get_or_compute needs to know of one memo entry, and nothing more.

    ``Memo`` builds it (the layout names ``object_key``), one a call; this
    module reads and writes the entry through ``backend`` and knows nothing
    of stores, runs or steps.
    """

    backend: MemoBackend
    object_key: str
    """The entry's full key in ``backend``."""
    max_value_bytes: int | None
    """The store's limit on a value's size, or None."""
    describe: Callable[[], str]
    """How log messages name the entry (see :attr:`label`); called only when one is written."""
    operation: Operation
    """This call's span, metrics and stats: what it found, paid and stored."""

    @property
    def label(self) -> str:
        """How log messages name the entry, for example ``memo entry 'k' of run r step 3``."""
        return self.describe()

    @property
    def flight_key(self) -> tuple[int, str]:
        """The entry's identity for single flight: the same backend object and object key.

        A backend that reaches another from a different event loop (a sync
        memo's ``aio`` view) names it as ``flies_as``: both share flights.
        """
        return id(getattr(self.backend, "flies_as", self.backend)), self.object_key


def first_writer_wins(backend: MemoBackend, if_absent: bool | None) -> bool:
    """Resolve ``if_absent``: True/False as asked; None means wherever the backend can.

    Raises :class:`~taquba_memo.NotSupportedError` for ``True`` on a backend without
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
        raise NotSupportedError(
            f"if_absent needs conditional_put, which {type(backend).__name__} does not declare"
        )
    return bool(if_absent)


async def get_or_compute(
    slot: EntrySlot,
    fn: Callable[[], Any],
    codec: Codec[T],
    if_absent: bool | None,
    store_if_cancelled: bool = True,
    claim: ClaimPolicy | None = None,
) -> T:
    """See the module documentation; ``Memo.get_or_compute`` is the public face."""
    check_call(slot, fn, codec, if_absent, store_if_cancelled, claim)
    with slot.operation:
        # A hit needs none of the machinery below, which protects paid work.
        landings = _single_flight.landings()
        # A flight in progress is followed without a read of our own (the key is
        # looked up only while some flight is in progress: a hit is most calls).
        flying = _single_flight.any_flying() and _single_flight.flying(slot.flight_key)
        first_read = _UNREAD if flying else await _read_entry(slot)
        if isinstance(first_read, bytes):
            try:
                value = decode_value(codec, first_read)
            except DecodeError:
                pass  # a miss: the leader logs and counts it
            else:
                slot.operation.read(first_read)
                return value
        agree = first_writer_wins(slot.backend, if_absent)
        while True:
            flight, leading = _single_flight.join(slot.flight_key)
            if leading:
                # A flight that landed since the first read may have stored the entry.
                seen = first_read if _single_flight.landings() == landings else _UNREAD
                first_read = _UNREAD
                computation = asyncio.ensure_future(
                    _compute(slot, flight, fn, codec, agree, claim, seen)
                )
                try:
                    value, _ = await asyncio.shield(computation)
                except asyncio.CancelledError:
                    _leave(flight, computation, store_if_cancelled)
                    raise
                return value
            outcome = await flight.follow()
            if outcome is _single_flight.ABANDONED:
                continue
            try:
                value = decode_value(codec, outcome)
            except DecodeError:
                continue  # written with another codec: lead a flight of our own
            slot.operation.shared()
            return value


def check_call(
    slot: EntrySlot,
    fn: Callable[[], Any],
    codec: Codec[T],
    if_absent: bool | None,
    store_if_cancelled: bool,
    claim: ClaimPolicy | None,
) -> None:
    """Refuse bad arguments before any I/O, a hit's too: a mistake shows on the first call."""
    if not callable(fn):
        raise InvalidValueTypeError(f"fn must be callable, not {type(fn).__name__}")
    check_codec(codec)
    if not isinstance(store_if_cancelled, bool):
        raise InvalidValueTypeError("store_if_cancelled must be a bool")
    if claim is not None:
        check_claim(claim, slot.backend)
    if if_absent:
        first_writer_wins(slot.backend, if_absent)  # refuses a backend that cannot


def stored_in_thread(slot: EntrySlot, codec: Codec[T]) -> tuple[bool, T | None]:
    """:func:`get_or_compute`'s hit in the calling thread, where ``slot.backend`` offers
    ``get_in_thread``: ``(True, value)`` for a stored entry that decodes, counted as
    the loop's hit is. Anything else (absent, unreadable, undecodable, an error) is
    ``(False, None)`` with nothing counted: :func:`get_or_compute` then runs, reads
    again and handles it, so a miss behaves as it would without this path. Call
    :func:`check_call` first, as :func:`get_or_compute` does."""
    try:
        data = cast(ReadsInThread, slot.backend).get_in_thread(
            slot.object_key, slot.max_value_bytes
        )
        if data is None:
            return False, None
        value = decode_value(codec, data)
    except Exception:
        return False, None
    with slot.operation:
        slot.operation.read(data)
    return True, value


def _leave(
    flight: _single_flight.Flight, computation: asyncio.Future[Any], store_if_cancelled: bool
) -> None:
    """The leader was cancelled. Work not yet paid for stops; paid work is finished
    and stored (followers keep waiting for it) unless the caller opted out."""
    if computation.done():
        return
    if flight.fn_started and store_if_cancelled:
        keep_running(computation).add_done_callback(_finish_detached)
    else:
        computation.cancel()


def _finish_detached(computation: asyncio.Future[Any]) -> None:
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
    slot: EntrySlot,
    flight: _single_flight.Flight,
    fn: Callable[[], Any],
    codec: Codec[T],
    agree: bool,
    claim: ClaimPolicy | None,
    first_read: _Read,
) -> tuple[T, bytes]:
    """Run one flight's work and publish its outcome to the followers."""
    try:
        value, data = await _lead(slot, fn, codec, agree, flight, claim, first_read)
    except Exception as exc:
        _single_flight.land(slot.flight_key, flight)
        flight.outcome.set_exception(exc)
        raise
    except BaseException:
        # Cancelled or interrupted: a follower takes over.
        _single_flight.land(slot.flight_key, flight)
        flight.outcome.set_result(_single_flight.ABANDONED)
        raise
    _single_flight.land(slot.flight_key, flight)
    flight.outcome.set_result(data)
    return value, data


async def _lead(
    slot: EntrySlot,
    fn: Callable[[], Any],
    codec: Codec[T],
    agree: bool,
    flight: _single_flight.Flight,
    claim: ClaimPolicy | None,
    first_read: _Read,
) -> tuple[T, bytes]:
    usable, occupied = await _read_usable(slot, codec, first=True, already=first_read)
    if usable is not None:
        return usable
    if claim is None:
        return await _pay(slot, fn, codec, agree and not occupied, flight)
    claims = EntryClaims(slot.backend, slot.object_key, claim, slot.label)
    outcome = await claims.acquire(lambda: _usable_entry(slot, codec))
    if isinstance(outcome, bytes):
        return decode_value(codec, outcome), outcome  # the claimant stored it: paid once
    held = outcome
    try:
        # The entry may have landed between the first read and the claim.
        usable, occupied = await _read_usable(slot, codec, first=False)
        if usable is not None:
            value, data = usable
        else:
            value, data = await _pay(slot, fn, codec, agree and not occupied, flight)
    except Exception:
        await held.release()
        raise
    except BaseException:
        held.release_soon()
        raise
    await held.finish()
    return value, data


class _Unread:
    """The entry was not read yet (or must be read again)."""


_UNREAD = _Unread()

_Found = bytes | EntryTooLargeError | ForeignObjectError | None
"""What a read of the entry found: its bytes, why it is no value, or None (absent)."""

_Read = _Found | _Unread
"""What the first read found, or _UNREAD."""


async def _read_entry(slot: EntrySlot) -> _Found:
    """Read the entry; an object that is no value is returned as its error, not raised."""
    try:
        return await read_object(slot.backend, slot.object_key, slot.max_value_bytes)
    except _UNREADABLE as exc:
        return exc


async def _read_usable(
    slot: EntrySlot, codec: Codec[T], *, first: bool, already: _Read = _UNREAD
) -> tuple[tuple[T, bytes] | None, bool]:
    """The entry's value and bytes if usable (read within the bound, and decode), else None;
    and whether something unusable occupies the key (it is then replaced by an overwrite).

    ``already`` is what a read just made found (the entry is then not read again).
    The first read of a call logs why an entry is unusable and counts the lookup.
    """
    stored = await _read_entry(slot) if isinstance(already, _Unread) else already
    if isinstance(stored, _UNREADABLE):
        exc = stored
        if first:
            logger.warning("%s cannot be read as a value (%s); recomputing", slot.label, exc)
            slot.operation.read(None)
        return None, True
    if stored is None:
        if first:
            slot.operation.read(None)
        return None, False
    try:
        value = decode_value(codec, stored)
    except DecodeError as exc:  # a miss
        if first:
            logger.warning("%s does not decode with %r (%s); recomputing", slot.label, codec, exc)
            slot.operation.undecodable(stored)
        return None, True
    if first:
        slot.operation.read(stored)
    return (value, stored), True


async def _usable_entry(slot: EntrySlot, codec: Codec[T]) -> bytes | None:
    """The entry's bytes once they are stored and usable, for a claim's waiter."""
    usable, _ = await _read_usable(slot, codec, first=False)
    return None if usable is None else usable[1]


async def _pay(
    slot: EntrySlot,
    fn: Callable[[], Any],
    codec: Codec[T],
    if_absent: bool,
    flight: _single_flight.Flight,
) -> tuple[T, bytes]:
    """Call ``fn``, store its encoded result, and return what the entry now holds.

    ``if_absent`` is False to replace an unusable entry (a create would
    fail forever) and where the caller chose overwrite.
    """
    backend = slot.backend
    flight.fn_started = True  # from here on the work is paid for
    started = monotonic()
    try:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        data, value = _encode_paid_result(slot, codec, result)
    finally:
        slot.operation.computed(monotonic() - started)
    written = await backend.put(slot.object_key, data, if_absent=if_absent)
    slot.operation.wrote(data, written)
    if written:
        return value, data
    try:
        winner = await read_object(backend, slot.object_key, slot.max_value_bytes)
    except _UNREADABLE as exc:
        logger.warning(
            "%s was written first with a value that cannot be read (%s); returning this "
            "caller's value",
            slot.label,
            exc,
        )
        return value, data
    if winner is None:
        return value, data  # the winner was already swept: ours is as good
    try:
        return decode_value(codec, winner), winner
    except DecodeError as exc:
        logger.warning(
            "%s was written first with a value %r cannot decode (%s); returning this "
            "caller's value",
            slot.label,
            codec,
            exc,
        )
        return value, data


def _encode_paid_result(slot: EntrySlot, codec: Codec[T], result: Any) -> tuple[bytes, T]:
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
    limit = slot.max_value_bytes
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
