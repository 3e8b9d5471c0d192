"""get_or_stream: record a stream of chunks as it is produced, and replay it on a retry.

This module holds the logic behind :meth:`taquba_memo.Memo.get_or_stream`
(the sync API drives the same code, see :func:`from_sync_iterator`).

Miss. ``fn()`` returns an async iterator of chunks (an async iterable, or an
awaitable of one, is accepted too: ``lambda: client.create(..., stream=True)``).
Each chunk reaches the caller as soon as ``fn`` produces it, after it was
encoded by the codec and decoded back (what a retry will replay), and is
recorded. Only when the stream ends is the recording stored, as one object,
with a create-if-absent where the backend declares ``conditional_put`` (an
overwrite elsewhere, with the same one-time warning as ``get_or_compute``; an
unusable object under the key is replaced by an overwrite), so the first
complete stream wins. The consumer sees the end of the stream only after the
recording is stored: once its loop ends, a retry replays. A failing store
raises to the consumers at the end of the stream, as ``get_or_compute`` does.

Hit. The stored recording is read (within ``max_value_bytes``), and every
chunk decoded before the first is handed out, then replayed in order without
calling ``fn``. A recording that cannot be read, is badly framed, or holds a
chunk the codec cannot decode is a miss, logged with its cause, and is
streamed afresh (counted as a decode error, as in ``get_or_compute``).

Failure. An exception from ``fn``'s stream (or a chunk the codec cannot
encode) reaches every consumer after the chunks produced before it; nothing
is stored, a claim is released, and the next call streams afresh.

Stopping early stores nothing. A consumer that stops before the end
(``break``, ``aclose()``, cancellation, a sync caller interrupted) leaves the
stream; when the last consumer has left, ``fn``'s iterator is closed
(``aclose()``: for a model's stream that ends the request, and its billing),
nothing is stored, and a claim is released. Draining the rest instead would
pay for output nobody reads, which is exactly what stopping a model's stream
early is for; and a later call never replays a partial stream, because only a
complete one is stored.

Single flight. Within one event loop, concurrent calls for the same entry
share one call of ``fn`` (every sync caller of one sync store shares its
loop). Every consumer is equal: a follower first receives the chunks already
produced, then the rest as they come, and the stream goes on as long as one
consumer reads it. Chunks are pulled from ``fn`` as fast as the fastest
consumer reads. Consumers on other event loops stream on their own; the
create-if-absent store makes them agree.

Claims. With ``claim=ClaimPolicy(...)``, on a miss the first caller claims
the entry (see :mod:`taquba_memo._claims`) and renews the claim while the
stream runs; a duplicate worker in another process waits for the recording
and replays it, or takes over once the claim is released (failure, early
stop, a recording too large to store) or was not renewed for a lease.

Bounded memory. On a store with ``max_value_bytes``, the bound holds for the
whole stored object. A stream whose recording would pass it is handed to its
consumers all the same but not stored (logged once per stream); from then on
the chunks every consumer has read are dropped, and a new call for the entry
streams on its own. Without the bound, a recording is held in memory until it
is stored.

Stats and telemetry. Each call counts one lookup, as ``get_or_compute`` does:
a hit, a miss (a decode error when the recording did not decode), or shared
(a follower). A stream paid for counts one compute (its seconds run from the
call of ``fn`` to the stream's end) and one put. The span
``taquba_memo.get_or_stream`` covers the lookup: the read, a claim's wait,
and ``fn`` up to its first chunk.

Stored format, version 1 (one object; integers are unsigned big-endian):

========  ==================================================================
4 bytes   magic ``b"TQMS"``
1 byte    version, ``1``
4 bytes   the number of chunks, ``n``
n times   4 bytes: the chunk's length; then the chunk, as the codec encoded it
========  ==================================================================

Nothing follows the last chunk; anything else is bad framing (a miss).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import struct
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from taquba_memo._claims import ClaimPolicy, EntryClaims, HeldClaim, check_claim
from taquba_memo._codecs import Codec, check_codec, decode_value, encode_value
from taquba_memo._compute import EntrySlot, _read_usable, _usable_entry, first_writer_wins
from taquba_memo._concurrency import keep_running
from taquba_memo._telemetry import monotonic
from taquba_memo.errors import DecodeError, EncodeError, InvalidValueTypeError

__all__ = ["StreamCodec", "frame", "from_sync_iterator", "get_or_stream", "unframe"]

logger = logging.getLogger("taquba_memo")

T = TypeVar("T")

MAGIC = b"TQMS"
VERSION = 1
_HEADER = struct.Struct(">4sBI")
_LENGTH = struct.Struct(">I")

# Streams in progress, by (event loop, backend object, object key).
_flights: dict[Hashable, _Flight[Any]] = {}


def frame(chunks: Sequence[bytes]) -> bytes:
    """The stored object of a recording: the framing above around the encoded chunks."""
    parts = [_HEADER.pack(MAGIC, VERSION, len(chunks))]
    for chunk in chunks:
        parts += (_LENGTH.pack(len(chunk)), chunk)
    return b"".join(parts)


def unframe(data: bytes) -> list[bytes]:
    """The encoded chunks of a stored recording; DecodeError when it is not one."""
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise DecodeError(
            f"a stream recording has a {_HEADER.size}-byte header; got {len(view)} bytes"
        )
    magic, version, count = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise DecodeError(f"not a stream recording (magic {bytes(magic)!r})")
    if version != VERSION:
        raise DecodeError(f"stream recording version {version}; this release reads {VERSION}")
    chunks: list[bytes] = []
    offset = _HEADER.size
    for index in range(count):
        if offset + _LENGTH.size > len(view):
            raise DecodeError(f"stream recording truncated at chunk {index} of {count}")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise DecodeError(f"stream recording truncated in chunk {index} of {count}")
        chunks.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != len(view):
        raise DecodeError(f"{len(view) - offset} bytes follow the last chunk of a stream recording")
    return chunks


class StreamCodec(Generic[T]):
    """A whole recording as one value: the list of chunks, each through ``chunk_codec``."""

    def __init__(self, chunk_codec: Codec[T]) -> None:
        self.chunk_codec = chunk_codec

    def encode(self, chunks: list[T], /) -> bytes:
        return frame([encode_value(self.chunk_codec, chunk) for chunk in chunks])

    def decode(self, data: bytes, /) -> list[T]:
        return [decode_value(self.chunk_codec, chunk) for chunk in unframe(data)]

    def __repr__(self) -> str:
        return f"StreamCodec({self.chunk_codec!r})"


def get_or_stream(
    slot: EntrySlot, fn: Callable[[], Any], codec: Codec[T], claim: ClaimPolicy | None
) -> AsyncIterator[T]:
    """See the module documentation; ``Memo.get_or_stream`` is the public face.

    Checks its arguments now, before any I/O; the stream starts on the first ``__anext__``.
    """
    if not callable(fn):
        raise InvalidValueTypeError(f"fn must be callable, not {type(fn).__name__}")
    check_codec(codec)
    check_claim(claim, slot.backend)
    agree = first_writer_wins(slot.backend, None)
    return _consume(slot, fn, codec, agree, claim)


async def _consume(
    slot: EntrySlot, fn: Callable[[], Any], codec: Codec[T], agree: bool, claim: ClaimPolicy | None
) -> AsyncIterator[T]:
    """One caller's view of the stream: the chunks so far, then the rest as they come."""
    loop = asyncio.get_running_loop()
    key = (id(loop), *slot.flight_key)
    flight: _Flight[T] | None = _flights.get(key)
    if flight is None:
        flight = _flights[key] = _Flight(key, slot, fn, codec, agree, claim)
    else:
        with slot.operation:
            slot.operation.shared()
    cursor = flight.join()
    try:
        while True:
            if cursor.index < flight.base + len(flight.chunks):
                chunk = flight.chunks[cursor.index - flight.base]
                cursor.index += 1
                flight.trim()
                yield chunk
            elif flight.finished:
                if flight.error is not None:
                    raise flight.error
                return
            else:
                await flight.advance()
    finally:
        flight.leave(cursor)


class _Cursor:
    """How far one consumer has read (an index into the whole stream)."""

    __slots__ = ("index",)

    def __init__(self) -> None:
        self.index = 0


@dataclass(eq=False)
class _Flight(Generic[T]):
    """One stream in progress in one event loop: its chunks, its recording, its consumers."""

    key: Hashable
    slot: EntrySlot
    fn: Callable[[], Any]
    codec: Codec[T]
    agree: bool
    claim: ClaimPolicy | None
    loop: asyncio.AbstractEventLoop = field(init=False, default_factory=asyncio.get_running_loop)
    chunks: list[T] = field(init=False, default_factory=list)
    # The index of chunks[0]: earlier ones were read by all and dropped.
    base: int = field(init=False, default=0)
    # None: too large to store, passed through.
    recording: list[bytes] | None = field(init=False, default_factory=list)
    recording_bytes: int = field(init=False, default=_HEADER.size)
    opened: bool = field(init=False, default=False)
    finished: bool = field(init=False, default=False)
    error: BaseException | None = field(init=False, default=None)
    cursors: list[_Cursor] = field(init=False, default_factory=list)
    pending: asyncio.Future[None] | None = field(init=False, default=None)
    source: AsyncIterator[T] | None = field(init=False, default=None)
    started: float | None = field(init=False, default=None)
    occupied: bool = field(init=False, default=False)
    held: HeldClaim | None = field(init=False, default=None)

    def join(self) -> _Cursor:
        cursor = _Cursor()
        cursor.index = self.base
        self.cursors.append(cursor)
        return cursor

    def land(self) -> None:
        """Later callers start a stream of their own."""
        if _flights.get(self.key) is self:
            del _flights[self.key]

    def trim(self) -> None:
        """Drop the chunks every consumer has read, once the recording is not kept."""
        if self.recording is not None or not self.cursors:
            return
        read_by_all = min(cursor.index for cursor in self.cursors) - self.base
        if read_by_all > 0:
            del self.chunks[:read_by_all]
            self.base += read_by_all

    async def advance(self) -> None:
        """Wait until the next chunk (or the end) is there, pulling it if nobody is."""
        if self.pending is None:
            self.pending = self.loop.create_task(self._step())
        await asyncio.shield(self.pending)

    def leave(self, cursor: _Cursor) -> None:
        self.cursors.remove(cursor)
        if self.cursors or self.finished:
            return
        # The last consumer stopped early: close fn's stream, store nothing.
        self.land()
        self.finished = True
        keep_running(self.loop.create_task(self._abandon()))

    async def _step(self) -> None:
        operation = self.slot.operation
        in_lookup = not self.opened  # the span's part: its exit counts a failure
        try:
            if in_lookup:
                self.opened = True
                with operation:
                    await self._open()
                    if self.source is not None:
                        await self._pull()
            else:
                await self._pull()
        except Exception as exc:
            await self._fail(exc, counted=in_lookup)
        finally:
            self.pending = None

    async def _open(self) -> None:
        slot = self.slot
        whole = StreamCodec(self.codec)
        usable, occupied = await _read_usable(slot, whole, first=True)
        if usable is None and self.claim is not None:
            claims = EntryClaims(slot.backend, slot.object_key, self.claim, slot.label)
            outcome = await claims.acquire(lambda: _usable_entry(slot, whole))
            if isinstance(outcome, bytes):
                usable = whole.decode(outcome), outcome  # the claimant stored it: paid once
            else:
                self.held = outcome
                usable, occupied = await _read_usable(slot, whole, first=False)
        if usable is not None:
            self.chunks = usable[0]
            await self._end()
            return
        self.occupied = occupied
        self.started = monotonic()
        self.source = await _open_source(self.fn)

    async def _pull(self) -> None:
        assert self.source is not None
        try:
            chunk = await self.source.__anext__()
        except StopAsyncIteration:
            await self._complete()
            return
        data, value = _encode_chunk(self.codec, chunk)
        self._record(data)
        self.chunks.append(value)

    def _record(self, data: bytes) -> None:
        if self.recording is None:
            return
        self.recording_bytes += _LENGTH.size + len(data)
        limit = self.slot.max_value_bytes
        if limit is not None and self.recording_bytes > limit:
            logger.warning(
                "the stream of %s passed max_value_bytes=%d at chunk %d; it is passed "
                "through without being stored, so a retry streams it again",
                self.slot.label,
                limit,
                len(self.recording),
            )
            self.recording = None
            self.land()
            return
        self.recording.append(data)

    async def _complete(self) -> None:
        """fn's stream ended: store the recording (first complete stream wins)."""
        slot = self.slot
        self._computed()
        if self.recording is not None:
            data = frame(self.recording)
            self.recording = []
            written = await slot.backend.put(
                slot.object_key, data, if_absent=self.agree and not self.occupied
            )
            slot.operation.wrote(data, written)
        await self._end()

    async def _end(self) -> None:
        self.finished = True
        self.land()
        held, self.held = self.held, None
        if held is None:
            return
        if self.recording is None:
            await held.release()  # nothing stored: a waiter takes over at once
        else:
            await held.finish()

    async def _fail(self, error: Exception, *, counted: bool) -> None:
        if not counted:
            self.slot.operation.failed(error)
        self.error = error
        self.finished = True
        self.land()
        self._computed()
        await self._close_source()
        held, self.held = self.held, None
        if held is not None:
            await held.release()

    async def _abandon(self) -> None:
        pending = self.pending
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        self._computed()
        await self._close_source()
        held, self.held = self.held, None
        if held is not None:
            await held.release()

    def _computed(self) -> None:
        started, self.started = self.started, None
        if started is not None:
            self.slot.operation.computed(monotonic() - started)

    async def _close_source(self) -> None:
        source, self.source = self.source, None
        aclose = getattr(source, "aclose", None)
        if aclose is None:
            return
        try:
            await aclose()
        except Exception as exc:
            logger.warning("closing the stream of %s failed: %r", self.slot.label, exc)


async def _open_source(fn: Callable[[], Any]) -> AsyncIterator[Any]:
    source = fn()
    if inspect.isawaitable(source):
        source = await source
    if not hasattr(source, "__anext__") and hasattr(source, "__aiter__"):
        source = source.__aiter__()
    if not hasattr(source, "__anext__"):
        raise InvalidValueTypeError(
            f"fn must return an async iterator of chunks, not {type(source).__name__} "
            "(the sync API's get_or_stream takes a sync one)"
        )
    return source  # type: ignore[no-any-return]


def _encode_chunk(codec: Codec[T], chunk: Any) -> tuple[bytes, T]:
    """The chunk as stored, and as a retry will replay it; errors say the stream was paid."""
    kind = type(chunk).__name__
    try:
        data = encode_value(codec, chunk)
        return data, decode_value(codec, data)
    except (EncodeError, DecodeError) as exc:
        raise EncodeError(
            f"fn's stream produced a {kind} chunk that {codec!r} cannot encode and decode "
            f"back ({exc}); the stream was paid but nothing is stored. Fix: a codec for "
            f"{kind}, or yield plain JSON types"
        ) from exc


_END = object()


def _sync_source(fn: Callable[[], Any]) -> Iterator[Any]:
    source = fn()
    try:
        return iter(source)
    except TypeError:
        raise InvalidValueTypeError(
            f"fn must return an iterator of chunks, not {type(source).__name__}"
        ) from None


def from_sync_iterator(fn: Callable[[], Any]) -> Callable[[], AsyncIterator[Any]]:
    """An async stand-in for a sync ``fn`` returning an iterator, for the sync API.

    ``fn`` and each ``next()`` run in a worker thread (``asyncio.to_thread``),
    never on the store's loop, so other consumers sharing the stream are not
    blocked. Closing waits for a ``next()`` in progress, then closes the
    iterator in a worker thread too.
    """

    async def stream() -> AsyncIterator[Any]:
        iterator: Iterator[Any] = await asyncio.to_thread(_sync_source, fn)
        lock = threading.Lock()

        def step() -> Any:
            with lock:
                return next(iterator, _END)

        def close() -> None:
            with lock:
                close_iterator = getattr(iterator, "close", None)
                if close_iterator is not None:
                    close_iterator()

        try:
            while (chunk := await asyncio.to_thread(step)) is not _END:
                yield chunk
        finally:
            # Not awaited: a next() still running in a thread finishes first.
            asyncio.get_running_loop().run_in_executor(None, close)

    return stream
