"""Shared fixtures for the core tests: each embedded backend, fresh per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend
from taquba_memo.adapter_kit import ForwardingBackend


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
