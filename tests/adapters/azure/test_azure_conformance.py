"""The taquba-memo conformance suite against AzureBlobBackend on a real Azure Blob server.

Each test gets a new container (``azure_container``) and a backend with a small
listing page, so the page-boundary tests cross several pages quickly. Deletes
run through the async client's Blob Batch with the portable boundary
(``backend.delete_path == "batch"``), on Azurite as on Azure.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest_asyncio
from taquba_memo import MemoBackend
from taquba_memo_azure import AzureBlobBackend
from taquba_memo_conformance import MemoBackendConformance
from taquba_memo_conformance.exact_prefix import AZURE_BLOB_BACKSLASH_GAP
from taquba_memo_conformance.servers import AzureServer

LIST_PAGE_SIZE = 100


class TestAzureBlobBackendConformance(MemoBackendConformance):
    expected_failures: ClassVar[dict[str, str]] = AZURE_BLOB_BACKSLASH_GAP
    page_boundary_keys: ClassVar[int] = 2 * LIST_PAGE_SIZE + 51

    @pytest_asyncio.fixture
    async def backend(
        self, azure_server: AzureServer, azure_container: str
    ) -> AsyncIterator[MemoBackend]:
        async with AzureBlobBackend.from_connection_string(
            azure_server.connection_string, azure_container, list_page_size=LIST_PAGE_SIZE
        ) as backend:
            yield backend
        assert backend.delete_path == "batch"

    @contextlib.asynccontextmanager
    async def undeletable(self, backend: MemoBackend, key: str) -> AsyncIterator[None]:
        """An infinite lease: deleting the blob fails with 412 LeaseIdMissing until released."""
        assert isinstance(backend, AzureBlobBackend)
        blob = backend.container_client.get_blob_client(backend.base_path + key)
        lease = await blob.acquire_lease(lease_duration=-1)
        try:
            yield
        finally:
            await lease.release()
