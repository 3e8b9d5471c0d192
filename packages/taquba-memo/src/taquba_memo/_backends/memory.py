"""InMemoryBackend: a dict-backed MemoBackend for tests, demos and caches.

Nothing is durable: values live as long as the object. It is the reference
model the conformance suite's state machines compare other backends with.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Sequence

from taquba_memo._bounded_read import check_max_bytes, entry_too_large
from taquba_memo._checks import check_flag, check_key, check_value
from taquba_memo._list_after import check_start_after
from taquba_memo.backend import Capabilities, ListedObject, MemoBackendBase

__all__ = ["InMemoryBackend"]


class InMemoryBackend(MemoBackendBase):
    """Keys and values in a dict; listing is ordered and conditional put atomic.

    Listing takes a snapshot of the matching keys when it starts, so
    concurrent writes never disturb an iteration in progress.
    """

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._capabilities = Capabilities(
            ordered_listing=True, conditional_put=True, max_delete_batch=1000
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def __repr__(self) -> str:
        return f"InMemoryBackend(keys={len(self._data)})"

    async def get(self, key: str) -> bytes | None:
        return self._data.get(check_key(key))

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """:meth:`get`, or ``EntryTooLargeError`` for a value over ``max_bytes``."""
        return InMemoryBackend.get_in_thread(self, key, check_max_bytes(max_bytes))

    def get_in_thread(self, key: str, max_bytes: int | None) -> bytes | None:
        """:meth:`get` (bounded as :meth:`get_at_most` when ``max_bytes`` is not None) in
        the calling thread: one lookup in the dict, safe beside the loop's writes."""
        key = check_key(key)
        if max_bytes is not None:
            max_bytes = check_max_bytes(max_bytes)
        value = self._data.get(key)
        if value is not None and max_bytes is not None and len(value) > max_bytes:
            raise entry_too_large(key, max_bytes, len(value))
        return value

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        key, value = check_key(key), check_value(value)
        check_flag(if_absent, "if_absent")
        # No await between the check and the write: atomic on the event loop.
        if if_absent and key in self._data:
            return False
        self._data[key] = value
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(check_key(key), None)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in [check_key(key) for key in keys]:
            self._data.pop(key, None)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        check_key(prefix)
        ordered = sorted(key for key in self._data if key.startswith(prefix))
        for key in ordered:
            yield key

    async def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        """:meth:`list` from the first key greater than ``start_after``."""
        check_key(prefix)
        check_start_after(start_after)
        ordered = sorted(key for key in self._data if key.startswith(prefix))
        # str order is UTF-8 byte order (see taquba_memo.adapter_kit.is_after).
        for key in ordered[bisect.bisect_right(ordered, start_after) :]:
            yield key

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`list` with each value's size; no write times are kept."""
        async for key in self.list(prefix):
            value = self._data.get(key)
            if value is not None:
                yield ListedObject(key, len(value))

    async def aclose(self) -> None:
        return None
