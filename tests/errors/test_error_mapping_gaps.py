"""Authentication failure, missing bucket or container, throttling: distinct, documented errors.

Every adapter maps these three to three distinct,
documented errors (:class:`~taquba_memo.AccessDeniedError`,
:class:`~taquba_memo.ContainerNotFoundError`, :class:`~taquba_memo.ThrottledError`),
proven against the real emulator where it can produce them. Most cells are
proven by the adapters' own tests; this module fills the cells they left
open, and checks that every adapter's README documents all three.

The adapters' own tests are under ``tests/adapters/``:

=============  ==========================  ======================  ==========================
adapter        authentication failure      missing bucket          throttling
=============  ==========================  ======================  ==========================
minio          minio (moto + auth)         minio                   minio (503 SlowDown)
gcs            gcs (proxy 401/403)*        gcs                     gcs (proxy 429)
azure          azure (wrong key)           azure                   **here** (503, 429)
obstore S3     **here** (moto + auth)      obstore                 **here** (503, 429)
obstore Azure  obstore (wrong key)         obstore                 **here** (503, 429)
obstore GCS    **here** (proxy 401/403)*   obstore (put)**         **here** (503, 429)
=============  ==========================  ======================  ==========================

\\* fake-gcs-server accepts any credential, so the refusal comes from the proxy.
\\** fake-gcs-server answers a read of a missing bucket with the same bare 404
as a missing object; only a write can tell them apart there.

Throttling is injected by the conformance kit's FaultProxy on every request,
so the adapter's retries run out and the last answer is what gets mapped.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.exceptions import HttpResponseError
from obstore.store import S3Store
from taquba_memo import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    MemoBackend,
    ThrottledError,
)
from taquba_memo_conformance.proxies import FaultProxy, GcsXmlProxy
from taquba_memo_conformance.servers import (
    AzureServer,
    GCSServer,
    S3Server,
    start_s3_process,
)
from taquba_memo_obstore import ObstoreBackend

from ..builders import (
    azure_backend,
    azurite_url,
    obstore_azurite_store,
    obstore_fake_gcs_store,
    obstore_s3_store,
)
from ..conftest import ReliabilityFigures
from ..server_needs import AZURITE_FOR_OBSTORE, FAKE_GCS_FOR_OBSTORE, PLAIN_HTTP_AZURE

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

SECTION = "error mapping"
ROOT = Path(__file__).resolve().parents[2]
WRONG_SECRET = "wrong-secret-never-shown-4f1b2c"

RETRY_ONCE: RetryConfig = {
    "max_retries": 1,
    "backoff": {
        "init_backoff": timedelta(milliseconds=20),
        "max_backoff": timedelta(milliseconds=50),
    },
    "retry_timeout": timedelta(seconds=10),
}
CLIENT: ClientConfig = {"allow_http": True, "timeout": "10s", "connect_timeout": "5s"}


def test_every_adapter_documents_the_three_errors() -> None:
    for adapter in ("obstore", "gcs", "azure", "minio"):
        readme = (ROOT / "packages" / f"taquba-memo-{adapter}" / "README.md").read_text()
        for error in ("AccessDeniedError", "ContainerNotFoundError", "ThrottledError"):
            assert error in readme, f"taquba-memo-{adapter}'s README does not document {error}"
    assert len({AccessDeniedError, ContainerNotFoundError, ThrottledError}) == 3
    assert not issubclass(AccessDeniedError, ContainerNotFoundError | ThrottledError)
    assert not issubclass(ContainerNotFoundError, AccessDeniedError | ThrottledError)
    assert ThrottledError("").transient, "throttling is worth retrying; the other two are not"
    assert not AccessDeniedError("").transient
    assert not ContainerNotFoundError("").transient


async def call(backend: MemoBackend, operation: str) -> object:
    if operation == "get":
        return await backend.get("k")
    if operation == "put":
        return await backend.put("k", b"v")
    if operation == "create":
        return await backend.put("created", b"v", if_absent=True)
    return [key async for key in backend.list("")]


async def expect(error: type[BackendError], backend: MemoBackend, operation: str) -> BackendError:
    with pytest.raises(error) as raised:
        await call(backend, operation)
    return raised.value


# -- throttling: AzureBlobBackend ------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(503, "ServerBusy"), (429, "TooManyRequests")])
async def test_azure_throttling_is_throttled_error(
    azure_server: AzureServer, status: int, code: str, reliability: ReliabilityFigures
) -> None:
    PLAIN_HTTP_AZURE.check(azure_server)
    container = azure_server.new_container()
    faults = {str(status): 1}
    with FaultProxy(azurite_url(azure_server), rate=1.0, faults=faults) as proxy:
        async with azure_backend(
            azure_server,
            container,
            endpoint=proxy.url,
            retry_total=2,
            initial_backoff=0.02,
            increment_base=0.05,
        ) as backend:
            for operation in ("get", "put", "create", "list"):
                error = await expect(ThrottledError, backend, operation)
                assert error.transient
                assert isinstance(error.__cause__, HttpResponseError)
                assert error.__cause__.status_code == status
                assert code in str(error)
                reliability.add(SECTION, "throttling_mapped_to_ThrottledError")


# -- obstore on S3: refused credentials on a moto that checks them, and throttling -------


@pytest.fixture(scope="module")
def signing_s3_server() -> Iterator[tuple[S3Server, str]]:
    """A moto server of its own with one bucket, then authentication switched on."""
    server = start_s3_process()
    try:
        bucket = server.new_bucket()
        request = urllib.request.Request(
            f"{server.endpoint_url}/moto-api/reset-auth",
            data=b"0",  # requests allowed without authentication from now on
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["status"] == "ok"
        yield server, bucket
    finally:
        server.close()


def s3_store(server: S3Server, bucket: str, endpoint: str | None = None, **keys: str) -> S3Store:
    return obstore_s3_store(
        server, bucket, endpoint=endpoint, client_options=CLIENT, retry_config=RETRY_ONCE, **keys
    )


@pytest.mark.parametrize(
    ("who", "access_key", "code"),
    [
        ("an unknown access key", "AKIAUNKNOWNUNKNOWN00", "InvalidAccessKeyId"),
        ("a wrong secret for a known key", "testing", "SignatureDoesNotMatch"),
    ],
)
async def test_obstore_s3_refused_credentials_are_access_denied(
    signing_s3_server: tuple[S3Server, str],
    who: str,
    access_key: str,
    code: str,
    reliability: ReliabilityFigures,
) -> None:
    server, bucket = signing_s3_server
    backend = ObstoreBackend(
        s3_store(server, bucket, access_key_id=access_key, secret_access_key=WRONG_SECRET)
    )
    for operation in ("get", "put", "create", "list"):
        error = await expect(AccessDeniedError, backend, operation)
        assert not error.transient
        assert code in str(error) or "403" in str(error), f"{who}: {error}"
        for text in (str(error), repr(error), repr(backend)):
            assert WRONG_SECRET not in text
        reliability.add(SECTION, "refused_credentials_mapped_to_AccessDeniedError")


# -- obstore throttling on S3, Azure and GCS; refused credentials on GCS ----------------


def obstore_backend(
    kind: str,
    endpoint: str,
    request: pytest.FixtureRequest,
) -> tuple[ObstoreBackend, str]:
    """An ObstoreBackend of ``kind`` whose requests go to ``endpoint`` (a proxy); and its name."""
    if kind == "S3":
        server: S3Server = request.getfixturevalue("s3_server")
        return ObstoreBackend(s3_store(server, server.new_bucket(), endpoint=endpoint)), "S3"
    if kind == "Azure":
        azure: AzureServer = request.getfixturevalue("azure_server")
        store = obstore_azurite_store(
            azure.new_container(), endpoint, client_options=CLIENT, retry_config=RETRY_ONCE
        )
        return ObstoreBackend(store), "Azure"
    gcs: GCSServer = request.getfixturevalue("gcs_server")
    store_gcs = obstore_fake_gcs_store(
        gcs.new_bucket(), endpoint, client_options=CLIENT, retry_config=RETRY_ONCE
    )
    return ObstoreBackend(store_gcs), "GCS"


def upstream_of(kind: str, request: pytest.FixtureRequest, stack: list[Any]) -> str:
    if kind == "S3":
        server: S3Server = request.getfixturevalue("s3_server")
        return server.endpoint_url
    if kind == "Azure":
        return azurite_url(AZURITE_FOR_OBSTORE.server(request))
    gcs = FAKE_GCS_FOR_OBSTORE.server(request)
    translator = GcsXmlProxy(gcs.endpoint_url).__enter__()
    stack.append(translator)
    return translator.url


@pytest.mark.parametrize("kind", ["S3", "Azure", "GCS"])
@pytest.mark.parametrize("status", [503, 429])
async def test_obstore_throttling_is_throttled_error(
    kind: str, status: int, request: pytest.FixtureRequest, reliability: ReliabilityFigures
) -> None:
    stack: list[Any] = []
    try:
        upstream = upstream_of(kind, request, stack)
        with FaultProxy(upstream) as proxy:
            backend, _ = obstore_backend(kind, proxy.url, request)
            proxy.configure(rate=1.0, faults={str(status): 1})
            for operation in ("get", "put", "create", "list"):
                error = await expect(ThrottledError, backend, operation)
                assert error.transient
                assert str(status) in str(error), str(error)
                reliability.add(SECTION, "throttling_mapped_to_ThrottledError")
    finally:
        for translator in stack:
            translator.__exit__(None, None, None)


@pytest.mark.parametrize("status", [401, 403])
async def test_obstore_gcs_refused_credentials_are_access_denied(
    status: int, request: pytest.FixtureRequest, reliability: ReliabilityFigures
) -> None:
    stack: list[Any] = []
    try:
        upstream = upstream_of("GCS", request, stack)
        with FaultProxy(upstream) as proxy:
            backend, _ = obstore_backend("GCS", proxy.url, request)
            proxy.configure(rate=1.0, faults={str(status): 1})
            for operation in ("get", "put", "create", "list"):
                error = await expect(AccessDeniedError, backend, operation)
                assert not error.transient
                reliability.add(SECTION, "refused_credentials_mapped_to_AccessDeniedError")
    finally:
        for translator in stack:
            translator.__exit__(None, None, None)
