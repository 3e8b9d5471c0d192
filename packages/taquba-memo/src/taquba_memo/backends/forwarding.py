"""ForwardingBackend: a MemoBackend that passes every call to another one.

Subclass it to observe or adapt a backend without rewriting the protocol:
override the operations you care about and call ``super()``. Capabilities,
``repr``, closing and the optional ``after_fork`` hook go to the wrapped
backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from taquba_memo import _fork
from taquba_memo.backend import Capabilities, MemoBackend, MemoBackendBase

__all__ = ["ForwardingBackend"]


class ForwardingBackend(MemoBackendBase):
    """Every operation forwarded to ``inner``."""

    def __init__(self, inner: MemoBackend) -> None:
        self.inner = inner

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def __repr__(self) -> str:
        return repr(self.inner)

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        return await self.inner.put(key, value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self.inner.delete_many(keys)

    def list(self, prefix: str) -> AsyncIterator[str]:
        return self.inner.list(prefix)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def after_fork(self) -> None:
        _fork.after_fork(self.inner)
