"""The taquba-memo conformance suite against GCSBackend on a real GCS JSON-API server.

Each test gets a new bucket and a backend with a small listing page, so the
page-boundary tests cross several pages quickly. The suite runs twice, once
per ``delete_many`` path:

* ``TestGCSBackendConformance`` talks to the server directly. On
  fake-gcs-server, which refuses batch requests, deletes go one request per
  key (the fallback); on real GCS they go in batches.
* ``TestGCSBackendBatchPathConformance`` goes through a loopback proxy that
  answers batch requests the way GCS does, by running every part against the
  emulator: deletes go in batches of 100, the path real GCS takes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar
from urllib.parse import quote

import pytest
import pytest_asyncio
from google.cloud import storage
from taquba_memo import MemoBackend
from taquba_memo_conformance import MemoBackendConformance
from taquba_memo_conformance.servers import GCSServer
from taquba_memo_gcs import GCSBackend

from .conftest import record_delete_path
from .gcs_proxy import GCSProxy

LIST_PAGE_SIZE = 100


@contextlib.asynccontextmanager
async def suite_backend(
    client: storage.Client,
    bucket: str,
    request: pytest.FixtureRequest,
    batch_delete_supported: tuple[bool | None, ...],
) -> AsyncIterator[GCSBackend]:
    """A GCSBackend with the suite's small listing page; afterwards, it checks which delete
    path the backend found (``batch_delete_supported`` is one of those given) and records it."""
    async with GCSBackend(client, bucket, list_page_size=LIST_PAGE_SIZE) as backend:
        yield backend
    assert backend.batch_delete_supported in batch_delete_supported
    record_delete_path(backend, request)


class TestGCSBackendConformance(MemoBackendConformance):
    """Direct: the one-request-per-key delete path on fake-gcs-server, batches on GCS."""

    page_boundary_keys: ClassVar[int] = 2 * LIST_PAGE_SIZE + 51

    @pytest_asyncio.fixture
    async def backend(
        self,
        gcs_server: GCSServer,
        gcs_client: storage.Client,
        gcs_bucket: str,
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[MemoBackend]:
        self.server = gcs_server
        expected = None if gcs_server.emulator is None else False
        async with suite_backend(gcs_client, gcs_bucket, request, (expected, None)) as backend:
            yield backend

    @contextlib.asynccontextmanager
    async def undeletable(self, backend: MemoBackend, key: str) -> AsyncIterator[None]:
        """A temporary hold: GCS refuses to delete a held object (403) until it is released."""
        if self.server.emulator is not None:
            raise NotImplementedError(
                f"{self.server.emulator} ignores temporary holds (measured: a held object "
                "was deleted); TestGCSBackendBatchPathConformance provokes this failure"
            )
        assert isinstance(backend, GCSBackend)
        blob = backend._bucket.blob(backend._object_name(key))
        blob.temporary_hold = True
        blob.patch()
        try:
            yield
        finally:
            blob.temporary_hold = False
            blob.patch()


class TestGCSBackendBatchPathConformance(MemoBackendConformance):
    """Through the batch-serving proxy: the batch delete path, on the emulator."""

    page_boundary_keys: ClassVar[int] = 2 * LIST_PAGE_SIZE + 51

    @pytest_asyncio.fixture
    async def backend(
        self,
        proxied_client: storage.Client,
        gcs_proxy: GCSProxy,
        gcs_bucket: str,
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[MemoBackend]:
        self.proxy = gcs_proxy
        async with suite_backend(proxied_client, gcs_bucket, request, (True, None)) as backend:
            yield backend

    @contextlib.asynccontextmanager
    async def undeletable(self, backend: MemoBackend, key: str) -> AsyncIterator[None]:
        """The proxy answers 403 to every DELETE of ``key``, in a batch or alone."""
        assert isinstance(backend, GCSBackend)
        object_path = f"/o/{quote(backend._object_name(key), safe='')}?"
        fault = self.proxy.fail_next(403, times=10**6, method="DELETE", path_contains=object_path)
        try:
            yield
        finally:
            self.proxy.remove_fault(fault)
