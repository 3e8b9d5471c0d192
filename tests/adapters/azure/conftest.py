"""Fixtures for the Azure adapter tests: a fresh container per test on the azure_server.

Backends come from :func:`tests.builders.azure_backend` (the server's connection string).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from taquba_memo_azure import AzureBlobBackend
from taquba_memo_conformance.servers import AzureServer

from ...builders import azure_backend, closed_at_exit

BackendFactory = Callable[..., AzureBlobBackend]


@pytest.fixture
def azure_container(azure_server: AzureServer) -> Iterator[str]:
    """A new, empty container for one test, deleted afterwards (unless the server fixes one)."""
    with azure_server.temporary_container() as name:
        yield name


@pytest.fixture
def own_azure_container(azure_server: AzureServer, azure_container: str) -> str:
    """``azure_container``, for tests that look at every blob in it and so need it empty."""
    if azure_server.fixed_container:
        pytest.skip(
            "needs a container of its own, but TAQUBA_MEMO_AZURE_CONTAINER hands out a shared one"
        )
    return azure_container


@pytest_asyncio.fixture
async def make_backend(
    azure_server: AzureServer, own_azure_container: str
) -> AsyncIterator[BackendFactory]:
    """Build AzureBlobBackends on this test's own container; every one is closed at teardown."""

    def build(base_path: str = "", **options: Any) -> AzureBlobBackend:
        container = options.pop("container", own_azure_container)
        return azure_backend(azure_server, container, base_path=base_path, **options)

    async with closed_at_exit(build) as make:
        yield make
