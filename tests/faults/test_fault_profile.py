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
import zlib
from collections.abc import Awaitable, Callable
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

TargetFactory = Callable[[pytest.FixtureRequest, contextlib.AsyncExitStack], Awaitable[Target]]


def fault_proxy(stack: contextlib.AsyncExitStack, upstream_url: str, name: str) -> FaultProxy:
    """A fault proxy seeded by ``name``, in front of ``upstream_url`` until ``stack`` ends."""
    proxy = FaultProxy(upstream_url, seed=zlib.crc32(name.encode()), stall_seconds=STALL_S)
    return stack.enter_context(proxy)


# -- one factory per adapter: what it builds, ``stack`` closes ----------------------------


S3TargetBuilder = Callable[[S3Server, str, contextlib.AsyncExitStack, str], Awaitable[Target]]


def on_s3(build: S3TargetBuilder, server_fixture: str, name: str) -> TargetFactory:
    """The target ``build`` makes, called ``name``, on a new bucket of ``server_fixture``."""

    async def factory(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Target:
        server: S3Server = request.getfixturevalue(server_fixture)
        return await build(server, server.new_bucket(), stack, name)

    return factory


async def minio_target(
    server: S3Server, bucket: str, stack: contextlib.AsyncExitStack, name: str
) -> Target:
    proxy = fault_proxy(stack, server.endpoint_url, name)
    retry = default_retry(total=RETRIES).new(backoff_factor=0.05)
    faulty = minio_backend(
        server,
        bucket,
        endpoint=proxy.url,
        connect_timeout=CLIENT_TIMEOUT_S,
        read_timeout=CLIENT_TIMEOUT_S,
        retry=retry,
    )
    direct = minio_backend(server, bucket)
    for backend in (faulty, direct):
        await stack.enter_async_context(backend)
    return Target(name, faulty, direct, proxy, {"server": server.emulator or "env"})


async def gcs_target(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Target:
    server = LOCAL_GCS_EMULATOR.server(request)
    bucket = server.new_bucket()
    proxy = fault_proxy(stack, server.endpoint_url, "gcs")
    faulty_client, direct_client = gcs_client(server, endpoint=proxy.url), gcs_client(server)
    for client in (faulty_client, direct_client):
        stack.callback(client.close)
    # google's retries are bounded by a deadline, not a count: 3 s of 0.05-0.4 s backoffs.
    retry = DEFAULT_GCS_RETRY.with_timeout(3.0).with_delay(initial=0.05, maximum=0.4)
    faulty = GCSBackend(faulty_client, bucket, retry=retry, timeout=CLIENT_TIMEOUT_S)
    direct = GCSBackend(direct_client, bucket)
    for backend in (faulty, direct):
        await stack.enter_async_context(backend)
    return Target("gcs", faulty, direct, proxy, {"server": server.emulator})


async def azure_target(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Target:
    server = PLAIN_HTTP_AZURE.server(request)
    container = stack.enter_context(server.temporary_container())
    proxy = fault_proxy(stack, azurite_url(server), "azure")
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
    for backend in (faulty, direct):
        await stack.enter_async_context(backend)
    return Target("azure", faulty, direct, proxy, {"server": server.emulator or "env"})


async def obstore_s3_target(
    server: S3Server, bucket: str, stack: contextlib.AsyncExitStack, name: str
) -> Target:
    # The moto target's seed is named as it was before RGW joined.
    seed_name = "obstore-s3" if name == "obstore S3" else name
    proxy = fault_proxy(stack, server.endpoint_url, seed_name)
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
    return Target(name, faulty, direct, proxy, {"server": server.emulator or "env"})


async def obstore_azure_target(
    request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack
) -> Target:
    server = AZURITE_FOR_OBSTORE.server(request)
    container = stack.enter_context(server.temporary_container())
    azurite = azurite_url(server)
    proxy = fault_proxy(stack, azurite, "obstore-azure")
    direct = ObstoreBackend(obstore_azurite_store(container, azurite))
    faulty = ObstoreBackend(
        obstore_azurite_store(
            container, proxy.url, client_options=OBSTORE_CLIENT, retry_config=OBSTORE_RETRY
        )
    )
    return Target("obstore Azure", faulty, direct, proxy, {"server": "azurite"})


async def obstore_gcs_target(
    request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack
) -> Target:
    server = FAKE_GCS_FOR_OBSTORE.server(request)
    bucket = server.new_bucket()
    translator = stack.enter_context(GcsXmlProxy(server.endpoint_url))
    proxy = fault_proxy(stack, translator.url, "obstore-gcs")
    faulty = ObstoreBackend(
        obstore_fake_gcs_store(
            bucket, proxy.url, client_options=OBSTORE_CLIENT, retry_config=OBSTORE_RETRY
        )
    )
    direct = ObstoreBackend(obstore_fake_gcs_store(bucket, translator.url))
    notes = {"server": "fake-gcs-server behind the XML-upload proxy"}
    return Target("obstore GCS", faulty, direct, proxy, notes)


TARGETS: dict[str, TargetFactory] = {
    "minio": on_s3(minio_target, "s3_server", "minio"),
    "gcs": gcs_target,
    "azure": azure_target,
    "obstore S3": on_s3(obstore_s3_target, "s3_server", "obstore S3"),
    "minio on RGW": on_s3(minio_target, "rgw_server", "minio on RGW"),
    "obstore S3 on RGW": on_s3(obstore_s3_target, "rgw_server", "obstore S3 on RGW"),
    "obstore Azure": obstore_azure_target,
    "obstore GCS": obstore_gcs_target,
}


@pytest.mark.parametrize(
    "name", list(TARGETS), ids=[name.replace("RGW", "rgw") for name in TARGETS]
)
async def test_nothing_acknowledged_is_lost_and_no_answer_is_wrong_under_faults(
    name: str, request: pytest.FixtureRequest, reliability: ReliabilityFigures
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        target = await TARGETS[name](request, stack)
        await run_fault_profile(target, reliability, seed=zlib.crc32(name.encode()))
