"""The fault profile: every adapter, through the fault-injecting proxy, loses nothing acknowledged.

Each adapter is configured as its documentation says to: a short per-request
timeout (1 s, below the proxy's 1.5 s stalls) and four retries with a short
backoff. A fifth of its requests is then faulted (500, 503, 429, reset,
stall, or applied with the answer lost) while the workload of
:mod:`tests.faults.fault_workload` runs, then every request, operation by
operation, until retries run out. Reads that check what was stored go
straight to the server, never through the proxy.

Adapters and servers: MinioBackend on moto and on Ceph RGW, GCSBackend on
fake-gcs-server, AzureBlobBackend on Azurite, and ObstoreBackend on all of them
(S3 on moto and RGW, Azure on Azurite, GCS on fake-gcs-server behind the kit's
XML-upload proxy). RGW checks every signature, so there the proxy's forwarding
is proved transparent as well.
Figures go to ``.reliability/figures.json`` under ``faults: <adapter>``.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from taquba_memo_conformance.proxies import FaultProxy, GcsXmlProxy
from taquba_memo_conformance.servers import S3Server
from taquba_memo_gcs import DEFAULT_GCS_RETRY, GCSBackend
from taquba_memo_minio import default_retry
from taquba_memo_obstore import ObstoreBackend

from ..builders import (
    azure_backend,
    azurite_url,
    gcs_client,
    minio_backend,
    obstore_azurite_store,
    obstore_fake_gcs_store,
    obstore_s3_store,
)
from ..conftest import ReliabilityFigures
from ..server_needs import (
    AZURITE_FOR_OBSTORE,
    FAKE_GCS_FOR_OBSTORE,
    LOCAL_GCS_EMULATOR,
    PLAIN_HTTP_AZURE,
)
from .fault_workload import CLIENT_TIMEOUT_S, STALL_S, Target, run_fault_profile

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

RETRIES = 4
OBSTORE_RETRY: RetryConfig = {
    "max_retries": RETRIES,
    "backoff": {
        "init_backoff": timedelta(milliseconds=50),
        "max_backoff": timedelta(milliseconds=400),
        "base": 2,
    },
    "retry_timeout": timedelta(seconds=15),
}
OBSTORE_CLIENT: ClientConfig = {
    "allow_http": True,
    "timeout": f"{CLIENT_TIMEOUT_S}s",
    "connect_timeout": f"{CLIENT_TIMEOUT_S}s",
}

TargetFactory = Callable[[pytest.FixtureRequest], contextlib.AbstractAsyncContextManager[Target]]


def fault_proxy(upstream_url: str, name: str) -> FaultProxy:
    return FaultProxy(upstream_url, seed=zlib.crc32(name.encode()), stall_seconds=STALL_S).start()


# -- one factory per adapter ----------------------------------------------------------


@contextlib.asynccontextmanager
async def minio_target(
    request: pytest.FixtureRequest, server_fixture: str = "s3_server", name: str = "minio"
) -> AsyncIterator[Target]:
    server: S3Server = request.getfixturevalue(server_fixture)
    bucket = server.new_bucket()
    proxy = fault_proxy(server.endpoint_url, name)
    retry = default_retry(total=RETRIES).new(backoff_factor=0.05)
    faulty = minio_backend(
        server,
        bucket,
        endpoint=proxy.url,
        connect_timeout=CLIENT_TIMEOUT_S,
        read_timeout=CLIENT_TIMEOUT_S,
        retries=retry,
    )
    direct = minio_backend(server, bucket)
    try:
        yield Target(name, faulty, direct, proxy, {"server": server.emulator or "env"})
    finally:
        await faulty.aclose()
        await direct.aclose()
        proxy.close()


@contextlib.asynccontextmanager
async def gcs_target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    server = LOCAL_GCS_EMULATOR.server(request)
    bucket = server.new_bucket()
    proxy = fault_proxy(server.endpoint_url, "gcs")
    faulty_client, direct_client = gcs_client(server, endpoint=proxy.url), gcs_client(server)
    # google's retries are bounded by a deadline, not a count: 3 s of 0.05-0.4 s backoffs.
    retry = DEFAULT_GCS_RETRY.with_timeout(3.0).with_delay(initial=0.05, maximum=0.4)
    faulty = GCSBackend(faulty_client, bucket, retry=retry, timeout=CLIENT_TIMEOUT_S)
    direct = GCSBackend(direct_client, bucket)
    try:
        yield Target("gcs", faulty, direct, proxy, {"server": server.emulator})
    finally:
        await faulty.aclose()
        await direct.aclose()
        faulty_client.close()
        direct_client.close()
        proxy.close()


@contextlib.asynccontextmanager
async def azure_target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    server = PLAIN_HTTP_AZURE.server(request)
    with server.temporary_container() as container:
        proxy = fault_proxy(azurite_url(server), "azure")
        faulty = azure_backend(
            server,
            container,
            endpoint=proxy.url,
            retry_total=RETRIES,
            initial_backoff=0.05,
            increment_base=0.2,
            random_jitter_range=0.05,
            connection_timeout=CLIENT_TIMEOUT_S,
            read_timeout=CLIENT_TIMEOUT_S,
        )
        direct = azure_backend(server, container)
        try:
            yield Target("azure", faulty, direct, proxy, {"server": server.emulator or "env"})
        finally:
            await faulty.aclose()
            await direct.aclose()
            proxy.close()


@contextlib.asynccontextmanager
async def obstore_s3_target(
    request: pytest.FixtureRequest, server_fixture: str = "s3_server", name: str = "obstore S3"
) -> AsyncIterator[Target]:
    server: S3Server = request.getfixturevalue(server_fixture)
    bucket = server.new_bucket()
    # The moto target's seed is named as it was before RGW joined.
    proxy = fault_proxy(server.endpoint_url, "obstore-s3" if name == "obstore S3" else name)
    faulty = ObstoreBackend(
        obstore_s3_store(
            server,
            bucket,
            endpoint=proxy.url,
            client_options=OBSTORE_CLIENT,
            retry_config=OBSTORE_RETRY,
        )
    )
    direct = ObstoreBackend(obstore_s3_store(server, bucket))
    try:
        yield Target(name, faulty, direct, proxy, {"server": server.emulator or "env"})
    finally:
        proxy.close()


@contextlib.asynccontextmanager
async def obstore_azure_target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    server = AZURITE_FOR_OBSTORE.server(request)
    with server.temporary_container() as container:
        azurite = azurite_url(server)
        proxy = fault_proxy(azurite, "obstore-azure")
        direct = ObstoreBackend(obstore_azurite_store(container, azurite))
        faulty = ObstoreBackend(
            obstore_azurite_store(
                container, proxy.url, client_options=OBSTORE_CLIENT, retry_config=OBSTORE_RETRY
            )
        )
        try:
            yield Target("obstore Azure", faulty, direct, proxy, {"server": "azurite"})
        finally:
            proxy.close()


@contextlib.asynccontextmanager
async def obstore_gcs_target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    server = FAKE_GCS_FOR_OBSTORE.server(request)
    bucket = server.new_bucket()
    with GcsXmlProxy(server.endpoint_url) as translator:
        proxy = fault_proxy(translator.url, "obstore-gcs")
        faulty = ObstoreBackend(
            obstore_fake_gcs_store(
                bucket, proxy.url, client_options=OBSTORE_CLIENT, retry_config=OBSTORE_RETRY
            )
        )
        direct = ObstoreBackend(obstore_fake_gcs_store(bucket, translator.url))
        try:
            notes = {"server": "fake-gcs-server behind the XML-upload proxy"}
            yield Target("obstore GCS", faulty, direct, proxy, notes)
        finally:
            proxy.close()


TARGETS: dict[str, TargetFactory] = {
    "minio": minio_target,
    "gcs": gcs_target,
    "azure": azure_target,
    "obstore S3": obstore_s3_target,
    "minio on RGW": functools.partial(
        minio_target, server_fixture="rgw_server", name="minio on RGW"
    ),
    "obstore S3 on RGW": functools.partial(
        obstore_s3_target, server_fixture="rgw_server", name="obstore S3 on RGW"
    ),
    "obstore Azure": obstore_azure_target,
    "obstore GCS": obstore_gcs_target,
}


@pytest.mark.parametrize(
    "name", list(TARGETS), ids=[name.replace("RGW", "rgw") for name in TARGETS]
)
async def test_nothing_acknowledged_is_lost_and_no_answer_is_wrong_under_faults(
    name: str, request: pytest.FixtureRequest, reliability: ReliabilityFigures
) -> None:
    async with TARGETS[name](request) as target:
        await run_fault_profile(target, reliability, seed=zlib.crc32(name.encode()))
