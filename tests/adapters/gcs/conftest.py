"""Fixtures for the GCS adapter tests: a client, a fresh bucket and a backend per test.

Every client comes from :func:`tests.builders.gcs_client`, with explicit
credentials: anonymous against the emulator, the server's bearer token against
a real endpoint. The terminal summary says which
``delete_many`` path (batch requests or one request per key) the tests ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from google.cloud import storage
from taquba_memo_conformance.servers import GCSServer
from taquba_memo_gcs import GCSBackend

from ... import builders
from .gcs_proxy import GCSProxy

DELETE_PATHS: Counter[str] = Counter()


def delete_path(backend: GCSBackend) -> str:
    return {True: "batch", False: "one request per key", None: "none"}[
        backend.batch_delete_supported
    ]


def record_delete_path(backend: GCSBackend, request: pytest.FixtureRequest) -> None:
    """Note which delete_many path a test ran (summary, and the junit properties)."""
    if backend.batch_delete_supported is not None:
        DELETE_PATHS[delete_path(backend)] += 1
        request.node.user_properties.append(("gcs_delete_path", delete_path(backend)))


@pytest.fixture(scope="session")
def gcs_client(gcs_server: GCSServer) -> Iterator[storage.Client]:
    client = builders.gcs_client(gcs_server)
    yield client
    client.close()


@pytest.fixture
def gcs_bucket(gcs_server: GCSServer) -> str:
    return gcs_server.new_bucket()


@pytest_asyncio.fixture
async def gcs_backend(
    gcs_client: storage.Client, gcs_bucket: str, request: pytest.FixtureRequest
) -> AsyncIterator[GCSBackend]:
    async with GCSBackend(gcs_client, gcs_bucket) as backend:
        yield backend
        record_delete_path(backend, request)


@pytest.fixture
def gcs_proxy(gcs_server: GCSServer) -> Iterator[GCSProxy]:
    """A batch-capable, fault-injecting proxy in front of the emulator."""
    if gcs_server.emulator is None:
        pytest.skip("the loopback proxy forwards plain HTTP to a local emulator only")
    proxy = GCSProxy(gcs_server.endpoint_url).start()
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_client(gcs_server: GCSServer, gcs_proxy: GCSProxy) -> Iterator[storage.Client]:
    client = builders.gcs_client(gcs_server, endpoint=gcs_proxy.endpoint_url)
    yield client
    client.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if DELETE_PATHS:
        ran = ", ".join(f"{path}: {count} test(s)" for path, count in sorted(DELETE_PATHS.items()))
        terminalreporter.write_line(f"taquba-memo-gcs delete_many paths exercised -- {ran}")
