"""A MemoBackend wrapper that records every call, so tests can prove what reached storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from taquba_memo import MemoBackend
from taquba_memo.adapter_kit import ForwardingBackend


class Recorder(ForwardingBackend):
    """Forwards to ``inner`` and records ``(operation, key or prefix)`` per key touched."""

    def __init__(self, inner: MemoBackend) -> None:
        super().__init__(inner)
        self.calls: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"Recorder({self.inner!r})"

    async def get(self, key: str) -> bytes | None:
        self._record("get", key)
        return await super().get(key)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self._record("put", key)
        return await super().put(key, value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        self._record("delete", key)
        await super().delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._record("delete_many", key)
        await super().delete_many(keys)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        self._record("list", prefix)
        async for key in super().list(prefix):
            yield key

    def _record(self, operation: str, key: str) -> None:
        self.calls.append((operation, key))
