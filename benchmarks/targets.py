"""What the benchmark measures: each adapter on its local server, and the raw SDK beside it.

A :class:`Target` builds the adapter's backend against any endpoint (the
server itself for timings, a :class:`CountingProxy` in front of it for
request counts) and offers the raw SDK's get and put of one object, built on
the same client settings as the adapter, for the side-by-side timings.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import obstore
from taquba_memo import MemoBackend
from taquba_memo._backends.local import LocalFileBackend
from taquba_memo_azure import AzureBlobBackend
from taquba_memo_conformance.proxies import Classifier, CountingProxy, GcsXmlProxy, classify_request
from taquba_memo_conformance.servers import (
    AzureServer,
    GCSServer,
    S3Server,
    resolve_azure_server,
    resolve_gcs_server,
    resolve_rgw_server,
    resolve_s3_server,
)
from taquba_memo_gcs import GCSBackend
from taquba_memo_minio import MinioBackend
from taquba_memo_obstore import ObstoreBackend

from tests.builders import BackendBuilder, azurite_url, builder_for

__all__ = ["RawSDK", "Servers", "Target", "classify_bench", "make_targets", "servers"]

# A raw SDK call: ``get(object_name)`` and ``put(object_name, data)``; sync or async.
RawGet = Callable[[str], Any]
RawPut = Callable[[str, bytes], Any]


def classify_bench(method: str, target: str) -> str:
    """:func:`classify_request`, with listings of terminal markers told apart from the rest."""
    kind = classify_request(method, target)
    if kind == "list" and "terminals" in urllib.parse.unquote(target):
        return "list-markers"
    return kind


# Why the Azurite targets clear fewer entries than the others.
_AZURITE_CLEAR_NOTE = (
    "clear of 2,500 entries only: Azurite (in-memory, one node thread) spends CPU "
    "growing with every blob the server holds (in any container) on every delete; "
    "10,000 took 9 minutes in one run here, and 14 Blob Batch requests ran into the "
    "SDK's 60 s read timeout"
)


@dataclass
class Servers:
    s3: S3Server
    gcs: GCSServer
    azure: AzureServer
    #: Ceph RGW, when an RGW target is wanted.
    rgw: S3Server | None = None


#: The targets on Ceph RGW; the server is started only when one of them is wanted.
RGW_TARGETS = ("obstore (S3, RGW)", "minio (RGW)")


@contextmanager
def servers(*, rgw: bool) -> Iterator[Servers]:
    """moto, fake-gcs-server and Azurite (and Ceph RGW if ``rgw``) as the kit starts them."""
    with ExitStack() as stack:
        s3 = resolve_s3_server()
        stack.callback(s3.close)
        gcs = resolve_gcs_server()
        stack.callback(gcs.close)
        azure = resolve_azure_server()
        stack.callback(azure.close)
        rgw_server = resolve_rgw_server() if rgw else None
        if rgw_server is not None:
            stack.callback(rgw_server.close)
        yield Servers(s3, gcs, azure, rgw_server)


@dataclass
class RawSDK:
    """The SDK's own get and put of one object name; ``blocking`` when the SDK is synchronous."""

    get: RawGet
    put: RawPut
    blocking: bool
    describe: str
    close: Callable[[], Awaitable[None] | None] = lambda: None


@dataclass
class Target:
    """One adapter on one server.

    ``backend(endpoint)`` builds a fresh backend on this target's bucket with
    the server's address replaced by ``endpoint`` (a proxy's); ``None`` means
    the server itself. ``raw(backend)`` calls the SDK on that backend's own
    client. ``proxy_upstream`` is what a counting proxy forwards to.
    """

    name: str
    server: str
    backend: Callable[[str | None], MemoBackend]
    raw: Callable[[MemoBackend], RawSDK] | None
    proxy_upstream: str | None
    notes: list[str] = field(default_factory=list)
    max_clear_entries: int | None = None
    """A smaller clear for a target whose emulator path is too slow for the full one."""

    @property
    def server_group(self) -> str:
        """Targets that share a server (and its bucket) are counted one after the other."""
        return self.server.split(" ")[0]

    @contextmanager
    def counting_proxy(self, classify: Classifier = classify_bench) -> Iterator[CountingProxy]:
        assert self.proxy_upstream is not None, f"{self.name} speaks no HTTP"
        with CountingProxy(self.proxy_upstream, classify=classify) as proxy:
            yield proxy


def _obstore_raw(backend: MemoBackend) -> RawSDK:
    store = cast(ObstoreBackend, backend).store

    async def get(name: str) -> bytes:
        result = await obstore.get_async(store, name)
        return bytes(await result.bytes_async())

    async def put(name: str, data: bytes) -> None:
        await obstore.put_async(store, name, data)

    return RawSDK(get, put, blocking=False, describe="obstore.get_async / put_async")


def _minio_raw(backend: MemoBackend) -> RawSDK:
    minio_backend = cast(MinioBackend, backend)
    client, bucket = minio_backend.client, minio_backend.bucket

    def get(name: str) -> bytes:
        response = client.get_object(bucket, name)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def put(name: str, data: bytes) -> None:
        client.put_object(bucket, name, io.BytesIO(data), len(data))

    return RawSDK(get, put, blocking=True, describe="Minio.get_object / put_object")


def _gcs_raw(backend: MemoBackend) -> RawSDK:
    # GCSBackend keeps its Bucket private; the benchmark borrows it to call
    # the SDK on the very same client.
    bucket = cast(GCSBackend, backend)._bucket

    def get(name: str) -> bytes:
        return bytes(bucket.blob(name).download_as_bytes())

    def put(name: str, data: bytes) -> None:
        bucket.blob(name).upload_from_string(data, content_type="application/octet-stream")

    return RawSDK(get, put, blocking=True, describe="Blob.download_as_bytes / upload_from_string")


def _azure_raw(backend: MemoBackend) -> RawSDK:
    client = cast(AzureBlobBackend, backend).container_client

    async def get(name: str) -> bytes:
        downloader = await client.download_blob(name)
        return await downloader.readall()

    async def put(name: str, data: bytes) -> None:
        await client.upload_blob(name, data, overwrite=True)

    return RawSDK(get, put, blocking=False, describe="aio download_blob / upload_blob")


def _local_raw(backend: MemoBackend) -> RawSDK:
    root = cast(LocalFileBackend, backend).root

    def get(name: str) -> bytes:
        return (root / name).read_bytes()

    def put(name: str, data: bytes) -> None:
        # The durable write LocalFileBackend does: staging file, fsync, rename, fsync dir.
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f"{path.name}#{time.monotonic_ns()}")
        with open(staging, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    return RawSDK(get, put, blocking=True, describe="Path.read_bytes / staging write+fsync+rename")


def make_targets(srv: Servers, workdir: str, stack: ExitStack) -> list[Target]:
    """Every adapter on its local server; helpers they need are closed by ``stack``.

    Targets on one server share its bucket (each writes under a prefix of its
    own), so the sweep's markers are written once per server.
    """
    s3, gcs, azure = srv.s3, srv.gcs, srv.azure
    s3_bucket, gcs_bucket = s3.new_bucket(), gcs.new_bucket()
    container = azure.new_container()
    # obstore writes GCS objects through the XML API, which fake-gcs-server
    # refuses; the kit's XML-to-JSON upload proxy sits in front of it.
    xml_proxy = stack.enter_context(GcsXmlProxy(gcs.endpoint_url))
    local_root = tempfile.mkdtemp(prefix="local-", dir=workdir)

    def adapter(name: str, s3_server: S3Server = s3, bucket: str | None = None) -> BackendBuilder:
        build, _ = builder_for(
            name,
            lambda: s3_server,
            lambda: gcs,
            lambda: (azure, container),
            lambda: xml_proxy.url,
            bucket,
        )
        return build

    def local(_endpoint: str | None) -> MemoBackend:
        return LocalFileBackend(local_root)

    obstore_s3, minio = adapter("obstore-s3", bucket=s3_bucket), adapter("minio", bucket=s3_bucket)
    gcs_sdk, obstore_gcs = (
        adapter("gcs", bucket=gcs_bucket),
        adapter("obstore-gcs", bucket=gcs_bucket),
    )
    azure_sdk, obstore_azure = adapter("azure"), adapter("obstore-azure")
    azurite = azurite_url(azure)
    moto = f"{s3.emulator} S3"
    return [
        Target("obstore (S3)", moto, obstore_s3, _obstore_raw, s3.endpoint_url),
        Target("minio", moto, minio, _minio_raw, s3.endpoint_url),
        Target("gcs", "fake-gcs-server", gcs_sdk, _gcs_raw, gcs.endpoint_url),
        Target(
            "obstore (GCS)",
            "fake-gcs-server + XML proxy",
            obstore_gcs,
            _obstore_raw,
            xml_proxy.url,
            notes=[
                "fake-gcs-server refuses obstore's XML-API uploads, so the kit's XML-to-JSON "
                "upload proxy (Python) sits in front of it in every measurement",
                "its clear is of 2,500 entries only: every delete is one request on this path "
                "(obstore has no GCS batch delete), and 10,000 took over 10 minutes here",
            ],
            max_clear_entries=2_500,
        ),
        Target(
            "azure",
            "Azurite",
            azure_sdk,
            _azure_raw,
            azurite,
            notes=[_AZURITE_CLEAR_NOTE],
            max_clear_entries=2_500,
        ),
        Target(
            "obstore (Azure)",
            "Azurite",
            obstore_azure,
            _obstore_raw,
            azurite,
            notes=[_AZURITE_CLEAR_NOTE],
            max_clear_entries=2_500,
        ),
        Target("LocalFileBackend", "local disk", local, _local_raw, None),
        *_rgw_targets(srv.rgw, adapter),
    ]


def _rgw_targets(rgw: S3Server | None, adapter: Callable[..., BackendBuilder]) -> list[Target]:
    """Both S3 adapters on Ceph RGW (a bucket of their own), when the server was started."""
    if rgw is None:
        return []
    bucket = rgw.new_bucket()
    obstore_s3 = adapter("obstore-s3", s3_server=rgw, bucket=bucket)
    minio = adapter("minio", s3_server=rgw, bucket=bucket)
    server = "Ceph RGW 16 (memstore)"
    return [
        Target(RGW_TARGETS[0], server, obstore_s3, _obstore_raw, rgw.endpoint_url),
        Target(RGW_TARGETS[1], server, minio, _minio_raw, rgw.endpoint_url),
    ]


async def settle(seconds: float = 0.3) -> None:
    """Let an SDK's background requests (google-cloud-storage's bucket metadata) land."""
    await asyncio.sleep(seconds)
