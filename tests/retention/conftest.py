"""Each adapter on its server, reachable directly and through a counting proxy.

The S3 adapters run twice: on moto, and on Ceph RGW (``minio-rgw``,
``obstore-s3-rgw``), a server that checks the signatures the proxy forwards.

The SDKs are imported by the builder that needs them: worker processes
(:mod:`tests.runtimes.backend_specs`) build one adapter and start faster.

An :class:`Adapter` builds backends on one bucket (or container) of its own:
``direct()`` talks to the emulator (to write test data quickly), and
``counted()`` talks through a :class:`CountingProxy` whose counts the tests
read. The proxy tells listings of terminal markers (``list-markers``) from
other listings (``list``).
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator

import pytest
from obstore.store import AzureStore, GCSStore, S3Store
from taquba_memo import MemoBackend
from taquba_memo_conformance.proxies import CountingProxy, GcsXmlProxy
from taquba_memo_conformance.servers import (
    AzureServer,
    GCSServer,
    S3Server,
    azurite_connection_string,
)
from taquba_memo_obstore import ObstoreBackend

from .adapters import Adapter, classify

ADAPTERS = [
    "obstore-s3",
    "minio",
    "obstore-s3-rgw",
    "minio-rgw",
    "gcs",
    "obstore-gcs",
    "azure",
    "obstore-azure",
]
# The parameter's suffix that puts an S3 adapter on RGW instead of moto.
_ON_RGW = "-rgw"

_OBSTORE_CLIENT = {"allow_http": True, "timeout": "60s", "connect_timeout": "5s"}


def _azurite_root(server: AzureServer) -> str:
    parts = urllib.parse.urlsplit(server.blob_endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _obstore_azure(container: str, endpoint: str) -> AzureStore:
    # use_emulator reads AZURITE_BLOB_STORAGE_URL when the store is built (an
    # explicit endpoint would send list offsets that Azurite ignores).
    previous = os.environ.get("AZURITE_BLOB_STORAGE_URL")
    os.environ["AZURITE_BLOB_STORAGE_URL"] = endpoint
    try:
        return AzureStore(container, use_emulator=True, client_options=_OBSTORE_CLIENT)  # type: ignore[arg-type]
    finally:
        if previous is None:
            del os.environ["AZURITE_BLOB_STORAGE_URL"]
        else:
            os.environ["AZURITE_BLOB_STORAGE_URL"] = previous


def _builder(
    name: str,
    s3: Callable[[], S3Server],
    gcs: Callable[[], GCSServer],
    azure: Callable[[], tuple[AzureServer, str]],
    xml_proxy: Callable[[], str],
    bucket: str | None = None,
) -> tuple[Callable[[str | None], MemoBackend], str]:
    """``(build(endpoint), upstream)`` for adapter ``name``, on ``bucket`` or a fresh one.

    ``azure()`` gives the server and a container of this test's own.
    """
    if name in ("obstore-s3", "minio"):
        server = s3()
        s3_bucket = bucket or server.new_bucket()
        if name == "minio":

            def build_minio(endpoint: str | None) -> MemoBackend:
                from taquba_memo_minio import MinioBackend

                return MinioBackend.connect(
                    urllib.parse.urlsplit(endpoint or server.endpoint_url).netloc,
                    s3_bucket,
                    access_key=server.access_key,
                    secret_key=server.secret_key,
                    secure=False,
                    region=server.region,
                )

            return build_minio, server.endpoint_url

        def build_s3(endpoint: str | None) -> MemoBackend:
            store = S3Store(
                s3_bucket,
                endpoint=endpoint or server.endpoint_url,
                access_key_id=server.access_key,
                secret_access_key=server.secret_key,
                region=server.region,
                virtual_hosted_style_request=False,
                client_options=_OBSTORE_CLIENT,  # type: ignore[arg-type]
            )
            return ObstoreBackend(store)

        return build_s3, server.endpoint_url
    if name in ("gcs", "obstore-gcs"):
        gcs_server = gcs()
        gcs_bucket = bucket or gcs_server.new_bucket()
        if name == "gcs":

            def build_gcs(endpoint: str | None) -> MemoBackend:
                from google.auth.credentials import AnonymousCredentials
                from google.cloud import storage
                from taquba_memo_gcs import GCSBackend

                client = storage.Client(
                    project=gcs_server.project,
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": endpoint or gcs_server.endpoint_url},
                )
                return GCSBackend(client, gcs_bucket)

            return build_gcs, gcs_server.endpoint_url
        upstream = xml_proxy()

        def build_obstore_gcs(endpoint: str | None) -> MemoBackend:
            key = {
                "gcs_base_url": endpoint or upstream,
                "disable_oauth": True,
                "client_email": "",
                "private_key": "",
                "private_key_id": "",
            }
            store = GCSStore(
                gcs_bucket,
                service_account_key=json.dumps(key),
                client_options=_OBSTORE_CLIENT,  # type: ignore[arg-type]
            )
            return ObstoreBackend(store)

        return build_obstore_gcs, upstream
    azure_server, container = azure()
    root = _azurite_root(azure_server)
    if name == "azure":

        def build_azure(endpoint: str | None) -> MemoBackend:
            from taquba_memo_azure import AzureBlobBackend

            blob_endpoint = f"{endpoint or root}/{azure_server.account_name}"
            return AzureBlobBackend.from_connection_string(
                azurite_connection_string(blob_endpoint), container
            )

        return build_azure, root

    def build_obstore_azure(endpoint: str | None) -> MemoBackend:
        return ObstoreBackend(_obstore_azure(container, endpoint or root))

    return build_obstore_azure, root


@pytest.fixture(scope="module")
def gcs_xml_proxy_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The kit's XML upload proxy: obstore writes GCS objects through the XML API."""
    gcs_server: GCSServer = request.getfixturevalue("gcs_server")
    if gcs_server.emulator != "fake-gcs-server":
        yield gcs_server.endpoint_url
        return
    with GcsXmlProxy(gcs_server.endpoint_url) as proxy:
        yield proxy.url


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """One adapter on a fresh bucket of its server, with a counting proxy in front."""
    name: str = request.param
    on_rgw = name.endswith(_ON_RGW)
    name = name.removesuffix(_ON_RGW)
    s3_fixture = "rgw_server" if on_rgw else "s3_server"
    with contextlib.ExitStack() as cleanup:

        def azure() -> tuple[AzureServer, str]:
            # A container of its own, deleted afterwards: blobs left in Azurite
            # slow its batch deletes down for every later test.
            server: AzureServer = request.getfixturevalue("azure_server")
            return server, cleanup.enter_context(server.temporary_container())

        build, upstream = _builder(
            name,
            lambda: request.getfixturevalue(s3_fixture),
            lambda: request.getfixturevalue("gcs_server"),
            azure,
            lambda: request.getfixturevalue("gcs_xml_proxy_url"),
        )
        with CountingProxy(upstream, classify=classify) as proxy:
            yield Adapter(name, build, proxy, "rgw" if on_rgw else "moto")
