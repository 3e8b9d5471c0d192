"""ForwardingBackend: a MemoBackend that passes every call to another one.

Subclass it to observe or adapt a backend without rewriting the protocol:
override the operations you care about and call ``super()``. Capabilities,
``repr``, closing and the optional ``after_fork`` hook go to the wrapped
backend. The optional bounded read ``get_at_most`` is forwarded when the
wrapped backend offers it, and only then: over one that does not,
:func:`~taquba_memo.backend.reads_bounded` is False for the wrapper too (a
subclass's override of ``get_at_most`` included), so a store reads with
``get`` as it would through the wrapped backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from taquba_memo import _fork
from taquba_memo.backend import Capabilities, MemoBackend, MemoBackendBase, reads_bounded

__all__ = ["ForwardingBackend"]


class ForwardingBackend(MemoBackendBase):
    """Every operation forwarded to ``inner``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ForwardingBackend:
        inner = args[0] if args else kwargs.get("inner")
        if reads_bounded(inner):
            return super().__new__(cls)
        return super().__new__(_without_bounded_read(cls))

    def __init__(self, inner: MemoBackend) -> None:
        self.inner = inner

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def __repr__(self) -> str:
        return repr(self.inner)

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """The wrapped backend's bounded read; offered only when it has one."""
        return await self.inner.get_at_most(key, max_bytes)  # type: ignore[attr-defined,no-any-return]

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


_WITHOUT_BOUNDED_READ: dict[type[ForwardingBackend], type[ForwardingBackend]] = {}


def _without_bounded_read(cls: type[ForwardingBackend]) -> type[ForwardingBackend]:
    """``cls`` with ``get_at_most`` blocked, for a wrapped backend that has none.

    A method set to None on the class is how a runtime-checkable protocol is
    told an object does not offer it.
    """
    variant = _WITHOUT_BOUNDED_READ.get(cls)
    if variant is None:
        names = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        variant = type(cls.__name__, (cls,), {"get_at_most": None, **names})
        _WITHOUT_BOUNDED_READ[cls] = variant
    return variant
