"""Shared fixtures for the core tests: each embedded backend, fresh per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend
from taquba_memo.adapter_kit import ForwardingBackend
from taquba_memo.backend import Capabilities


class RecordingBackend(ForwardingBackend):
    """Wraps a backend and records each call, to count requests per operation."""

    def __init__(self, inner: MemoBackend, *, capabilities: Capabilities | None = None) -> None:
        super().__init__(inner)
        self.calls: list[tuple[str, object]] = []
        self.listed: list[str] = []
        self._capabilities = capabilities or inner.capabilities

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)

    async def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return await super().get(key)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """Recorded and forwarded; offered only over a backend that has it."""
        self.calls.append(("get_at_most", key))
        return await super().get_at_most(key, max_bytes)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self.calls.append(("put", key))
        return await super().put(key, value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        await super().delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        self.calls.append(("delete_many", list(keys)))
        await super().delete_many(keys)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        self.calls.append(("list", prefix))
        async for key in super().list(prefix):
            self.listed.append(key)
            yield key


class SixOperationsOnly(ForwardingBackend):
    """An InMemoryBackend behind the six operations only: none of its optional members."""

    forwarded_members = ()

    def __init__(self) -> None:
        super().__init__(InMemoryBackend())


@pytest.fixture(params=["memory", "local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> MemoBackend:
    if request.param == "memory":
        return InMemoryBackend()
    return LocalFileBackend(tmp_path / "store")
