"""Bounded reads: the checks, the error and the buffer every ``get_at_most`` shares."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import cast

from taquba_memo.backend import MemoBackend, ReadsBounded, reads_bounded
from taquba_memo.errors import EntryTooLargeError, InvalidArgumentError, InvalidValueTypeError

__all__ = [
    "READ_CHUNK_BYTES",
    "BoundedBuffer",
    "check_max_bytes",
    "entry_too_large",
    "read_at_most",
    "read_document",
    "read_object",
]

READ_CHUNK_BYTES = 64 * 1024
"""The chunk a bounded read takes at a time: what it may hold past its bound."""

DOCUMENT_MAX_BYTES = 64 * 1024
"""The most of a claim or sweep lease document a reader holds: they are under 200 bytes."""

OVERSIZED_DOCUMENT = b"<over the document bound>"
"""What :func:`read_document` returns for a document past its bound: unreadable, as junk is."""


async def read_object(backend: MemoBackend, key: str, max_bytes: int | None) -> bytes | None:
    """Read ``key``; with ``max_bytes``, :class:`EntryTooLargeError` for a larger object.

    A backend that offers ``get_at_most`` (:func:`~taquba_memo.backend.reads_bounded`)
    then never holds more than the bound (plus a chunk) of it in memory; on
    one that does not, the whole object is read first, so memory is not
    bounded there. Without ``max_bytes`` it is a plain ``get``.
    """
    if max_bytes is None:
        return await backend.get(key)
    if reads_bounded(backend):
        return await cast(ReadsBounded, backend).get_at_most(key, max_bytes)
    data = await backend.get(key)
    if data is not None and len(data) > max_bytes:
        raise entry_too_large(key, max_bytes, len(data))
    return data


async def read_document(backend: MemoBackend, key: str) -> bytes | None:
    """Read a small JSON document (a claim, a sweep lease) that anyone may have replaced.

    A planted object larger than :data:`DOCUMENT_MAX_BYTES` is never held in
    memory: it reads as :data:`OVERSIZED_DOCUMENT`, which no parser accepts.
    """
    try:
        return await read_object(backend, key, DOCUMENT_MAX_BYTES)
    except EntryTooLargeError:
        return OVERSIZED_DOCUMENT


def check_max_bytes(max_bytes: object) -> int:
    """Refuse a bound that is not a non-negative int, before any I/O."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise InvalidValueTypeError(f"max_bytes must be an int, not {type(max_bytes).__name__}")
    if max_bytes < 0:
        raise InvalidArgumentError(f"max_bytes must be non-negative, not {max_bytes}")
    return max_bytes


def entry_too_large(key: str, max_bytes: int, size: int | None = None) -> EntryTooLargeError:
    """The error for ``key`` holding more than ``max_bytes`` (``size`` when the store said it)."""
    held = f"{size} bytes" if size is not None else f"more than {max_bytes} bytes"
    return EntryTooLargeError(f"the object under {key!r} holds {held}, over the bound {max_bytes}")


class BoundedBuffer:
    """A write-only buffer that raises :class:`EntryTooLargeError` once past ``max_bytes``.

    Hand it to an SDK that writes a download into a file object, or
    :meth:`write` chunks into it: it never holds more than ``max_bytes`` plus
    the chunk that crossed the bound.
    """

    def __init__(self, key: str, max_bytes: int, size: int | None = None) -> None:
        self._key = key
        self._max_bytes = max_bytes
        self._size = size
        self._data = bytearray()

    def write(self, chunk: bytes | bytearray | memoryview) -> int:
        if len(self._data) + len(chunk) > self._max_bytes:
            self._data = bytearray()  # released before the error travels up
            raise entry_too_large(self._key, self._max_bytes, self._size)
        self._data += chunk
        return len(chunk)

    def getvalue(self) -> bytes:
        return bytes(self._data)


async def read_at_most(
    chunks: AsyncIterable[bytes | bytearray | memoryview], key: str, max_bytes: int
) -> bytes:
    """Join ``chunks``, or raise :class:`EntryTooLargeError` at the one that crosses ``max_bytes``.

    The caller closes the stream (and its connection) when this raises.
    """
    buffer = BoundedBuffer(key, max_bytes)
    async for chunk in chunks:
        buffer.write(chunk)
    return buffer.getvalue()
