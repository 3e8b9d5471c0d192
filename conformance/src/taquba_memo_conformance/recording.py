"""RecordingBackend: a MemoBackend wrapper that records each operation that reached storage, by key.

Wrap the backend a store is given and assert on what the store did to storage::

    backend = RecordingBackend(InMemoryBackend())
    await MemoStore(backend, "memo").new_memo("run", 0).get("k")
    assert backend.count("get") == 1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence

from taquba_memo import MemoBackend
from taquba_memo.adapter_kit import ForwardingBackend
from taquba_memo.backend import Capabilities

__all__ = ["RecordingBackend"]


class RecordingBackend(ForwardingBackend):
    """Forwards every call to ``inner`` and records ``(operation, key or prefix)`` in :attr:`calls`.

    ``delete_many`` records one ``("delete_many", key)`` per key, and the batch as
    a whole in :attr:`batches`; ``list`` records its prefix, and the keys it yields
    in :attr:`listed`. ``capabilities``, when given, replaces the wrapped backend's
    (a store over a backend that lacks one). ``get_at_most`` is recorded only where
    the wrapped backend offers it, as :class:`ForwardingBackend` forwards it; so is
    ``get_in_thread``, recorded as the ``get`` or ``get_at_most`` it stands for.
    """

    def __init__(self, inner: MemoBackend, *, capabilities: Capabilities | None = None) -> None:
        super().__init__(inner)
        self.calls: list[tuple[str, str]] = []
        self.batches: list[list[str]] = []
        self.listed: list[str] = []
        self._capabilities = capabilities

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities or self.inner.capabilities

    def count(self, operation: str) -> int:
        """How many records of ``operation`` (``get``, ``put``, ``list`` ...) there are."""
        return sum(1 for name, _ in self.calls if name == operation)

    def keys(self, operation: str) -> list[str]:
        """The keys (for ``list``, the prefixes) ``operation`` was recorded with, in order."""
        return [key for name, key in self.calls if name == operation]

    def counts(self) -> dict[str, int]:
        """The number of records of each operation."""
        return dict(Counter(name for name, _ in self.calls))

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.calls.clear()
        self.batches.clear()
        self.listed.clear()

    async def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return await super().get(key)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        self.calls.append(("get_at_most", key))
        return await super().get_at_most(key, max_bytes)

    def get_in_thread(self, key: str, max_bytes: int | None) -> bytes | None:
        # Recorded as the read it stands for, so both ways of reading count alike.
        self.calls.append(("get" if max_bytes is None else "get_at_most", key))
        return super().get_in_thread(key, max_bytes)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self.calls.append(("put", key))
        return await super().put(key, value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        await super().delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        batch = list(keys)
        self.batches.append(batch)
        self.calls.extend(("delete_many", key) for key in batch)
        await super().delete_many(keys)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        self.calls.append(("list", prefix))
        async for key in super().list(prefix):
            self.listed.append(key)
            yield key
