"""KeySpace: the unique prefix one conformance test writes under, and small helpers.

Every test of the suite writes below ``<namespace_root>/<uuid4 hex>/``, so a
bucket shared with other data, other test runs or other developers is safe:
nothing outside that prefix is read, written or deleted, and the prefix is
emptied when the test ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from taquba_memo import MemoBackend
from taquba_memo.adapter_kit import chunked

__all__ = ["KeySpace", "byte_order", "collect", "put_all", "sha256_hex"]


@dataclass(frozen=True)
class KeySpace:
    """The keys of one test: everything lives below ``root + "/"``."""

    root: str
    """``<namespace_root>/<uuid4 hex>``, without a trailing slash."""

    @classmethod
    def fresh(cls, namespace_root: str) -> KeySpace:
        """A new, never used key space below ``namespace_root``."""
        namespace = namespace_root.strip("/")
        # 48 random bits: unique enough, and short, so a failing test's diff
        # still tells two keys apart without -v.
        unique = uuid.uuid4().hex[:12]
        return cls(f"{namespace}/{unique}" if namespace else unique)

    @property
    def prefix(self) -> str:
        """``root + "/"``: the raw listing prefix of every key of the test."""
        return self.root + "/"

    def key(self, *parts: str) -> str:
        """``root/part/part...``: a key inside this space."""
        return "/".join((self.root, *parts))

    def show(self, key: str) -> str:
        """``key`` as a failure message shows it: ``…/`` stands for this space's prefix."""
        return "…/" + key[len(self.prefix) :] if key.startswith(self.prefix) else key

    async def listed(
        self, backend: MemoBackend, prefix: str, *, dialect: str | None = None
    ) -> list[str]:
        """Every key ``backend.list(prefix)`` yields, checked to start with ``prefix``.

        A key outside the prefix fails at once, naming the broken promise, so
        an over-matching backend is told so whichever test lists first.
        """
        keys = await collect(backend.list(prefix))
        for key in keys:
            if not (isinstance(key, str) and key.startswith(prefix)):
                because = f" ({dialect})" if dialect else ""
                raise AssertionError(
                    f"list({self.show(prefix)!r}) returned {self.show(key)!r}: "
                    f"list must match a raw string prefix, not a pattern{because}"
                )
        return keys

    async def delete_everything(self, backend: MemoBackend) -> None:
        """Delete every key below :attr:`prefix`, in batches the backend accepts."""
        keys = await collect(backend.list(self.prefix))
        batch = max(1, backend.capabilities.max_delete_batch)
        for chunk in chunked(keys, batch):
            await backend.delete_many(chunk)


async def collect(listing: AsyncIterator[str]) -> list[str]:
    """Every key of a listing, in the order the backend yielded them."""
    return [key async for key in listing]


def byte_order(keys: Iterable[str]) -> list[str]:
    """``keys`` in ascending byte order of their UTF-8 encoding (the object stores' order)."""
    return sorted(keys, key=lambda key: key.encode("utf-8"))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def put_all(backend: MemoBackend, items: Mapping[str, bytes], *, concurrency: int) -> None:
    """Write ``items`` with at most ``concurrency`` puts in flight.

    Bounded so that a remote emulator sees a steady stream of requests
    instead of a thousand connections at once.
    """
    semaphore = asyncio.Semaphore(concurrency)

    async def put_one(key: str, value: bytes) -> None:
        async with semaphore:
            await backend.put(key, value)

    await asyncio.gather(*(put_one(key, value) for key, value in items.items()))
