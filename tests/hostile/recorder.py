"""A MemoBackend wrapper that records every call, so tests can prove what reached storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from taquba_memo import Capabilities, MemoBackend, MemoBackendBase


class Recorder(MemoBackendBase):
    """Forwards to ``inner`` and records ``(operation, key or prefix)`` per key touched."""

    def __init__(self, inner: MemoBackend) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def __repr__(self) -> str:
        return f"Recorder({self.inner!r})"

    async def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self.calls.append(("put", key))
        return await self.inner.put(key, value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        await self.inner.delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        self.calls.extend(("delete_many", key) for key in keys)
        await self.inner.delete_many(keys)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        self.calls.append(("list", prefix))
        async for key in self.inner.list(prefix):
            yield key

    async def aclose(self) -> None:
        await self.inner.aclose()
