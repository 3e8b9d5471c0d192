"""ForwardingBackend: a MemoBackend that passes every call to another one.

Subclass it to observe or adapt a backend without rewriting the protocol:
override the operations you care about and call ``super()``. Capabilities,
``repr`` and closing go to the wrapped backend. Every optional member
(:data:`~taquba_memo.backend.OPTIONAL_MEMBERS`: ``list_with_metadata``,
``get_at_most``, ``after_fork``, ``list_after``, ``get_in_thread``) is forwarded when the wrapped
backend offers it, and only then: over one that lacks it, the wrapper lacks it too (a
subclass's override of it included), so the store falls back exactly as it
would on the wrapped backend. A subclass that changes values (compression,
encryption) narrows :attr:`ForwardingBackend.forwarded_members`, since the
wrapped backend's sizes and bounds are then not the wrapper's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, cast

from taquba_memo import _fork
from taquba_memo.backend import (
    OPTIONAL_MEMBERS,
    Capabilities,
    ListedObject,
    ListsAfter,
    ListsMetadata,
    MemoBackend,
    MemoBackendBase,
    ReadsBounded,
    ReadsInThread,
    member_name,
    offers,
)

__all__ = ["ForwardingBackend"]


class ForwardingBackend(MemoBackendBase):
    """Every operation forwarded to ``inner``; an optional member only when ``inner`` has it."""

    forwarded_members: ClassVar[tuple[type, ...]] = OPTIONAL_MEMBERS
    """The optional members this wrapper may offer, each only when ``inner`` offers it too."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ForwardingBackend:
        inner = args[0] if args else kwargs.get("inner")
        cls = _ORIGINS.get(cls, cls)  # type(wrapper)(other) decides afresh for ``other``
        withheld = frozenset(
            protocol
            for protocol in OPTIONAL_MEMBERS
            if protocol not in cls.forwarded_members or not offers(inner, protocol)
        )
        return super().__new__(_withholding(cls, withheld))

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

    # -- optional members: offered only when inner offers them ------------------

    def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        return cast(ListsMetadata, self.inner).list_with_metadata(prefix)

    def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        return cast(ListsAfter, self.inner).list_after(prefix, start_after)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        return await cast(ReadsBounded, self.inner).get_at_most(key, max_bytes)

    def get_in_thread(self, key: str, max_bytes: int | None) -> bytes | None:
        return cast(ReadsInThread, self.inner).get_in_thread(key, max_bytes)

    def after_fork(self) -> None:
        _fork.after_fork(self.inner)


_VARIANTS: dict[tuple[type[ForwardingBackend], frozenset[type]], type[ForwardingBackend]] = {}
_ORIGINS: dict[type[ForwardingBackend], type[ForwardingBackend]] = {}


def _withholding(
    cls: type[ForwardingBackend], withheld: frozenset[type]
) -> type[ForwardingBackend]:
    """``cls`` without the optional members ``withheld`` (``cls`` itself when there are none).

    A method set to None on the class is how a runtime-checkable protocol is
    told an object does not offer it. One variant per class and set, reused.
    """
    if not withheld:
        return cls
    variant = _VARIANTS.get((cls, withheld))
    if variant is None:
        blocked = {member_name(protocol): None for protocol in withheld}
        names = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        variant = type(cls.__name__, (cls,), {**blocked, **names})
        _VARIANTS[cls, withheld] = variant
        _ORIGINS[variant] = cls
    return variant
