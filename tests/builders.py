"""Adapter-on-server factories: each shipped adapter built against the kit's local servers.

One place says how each adapter reaches its emulator (credentials, path-style
S3, obstore's emulator switches, the Azurite connection string), for the tests
and the benchmarks alike; the tests build no SDK client or store of their own
for a server (``minio_client``, ``gcs_client``, ``obstore_*_store``). Every
factory takes the kit's server object, the bucket or container, and optionally
``endpoint``: a proxy's address to use instead of the server's own. Options
beyond those are passed on to the adapter or the obstore store as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from taquba_memo import MemoBackend
from taquba_memo_conformance.servers import (
    AzureServer,
    GCSServer,
    S3Server,
    parse_connection_string,
)

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import storage
    from minio import Minio
    from obstore.store import AzureStore, GCSStore, S3Store
    from taquba_memo_azure import AzureBlobBackend
    from taquba_memo_gcs import GCSBackend
    from taquba_memo_minio import MinioBackend

__all__ = [
    "OBSTORE_CLIENT",
    "SERVER_ADAPTERS",
    "BackendBuilder",
    "builder_for",
    "closed_at_exit",
    "azure_backend",
    "azure_connection_string",
    "azurite_url",
    "gcs_backend",
    "gcs_client",
    "gcs_credentials",
    "minio_backend",
    "minio_client",
    "netloc",
    "obstore_azurite_store",
    "obstore_fake_gcs_store",
    "obstore_s3_store",
]

Backend = TypeVar("Backend", bound=MemoBackend)

#: obstore's HTTP client settings for a loopback emulator: plain HTTP, bounded waits.
OBSTORE_CLIENT: dict[str, Any] = {"allow_http": True, "timeout": "120s", "connect_timeout": "5s"}


def netloc(url: str) -> str:
    """``host:port`` of ``url``, for clients that take no URL (minio)."""
    return urllib.parse.urlsplit(url).netloc


def azurite_url(server: AzureServer) -> str:
    """``http://host:port`` of an Azurite blob endpoint (without the account's path)."""
    parts = urllib.parse.urlsplit(server.blob_endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@contextlib.asynccontextmanager
async def closed_at_exit(
    build: Callable[..., Backend],
) -> AsyncIterator[Callable[..., Backend]]:
    """``build``, remembering every backend it makes, each closed when the block exits."""
    made: list[Backend] = []

    def make(*args: Any, **options: Any) -> Backend:
        backend = build(*args, **options)
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made:
            await backend.aclose()


# -- S3 (moto, Ceph RGW) -------------------------------------------------------------


def obstore_s3_store(
    server: S3Server, bucket: str, *, endpoint: str | None = None, **options: Any
) -> S3Store:
    """A path-style S3Store on ``bucket`` with the server's keys (``client_options`` default
    :data:`OBSTORE_CLIENT`; ``secret_access_key``, ``retry_config`` ... may be given)."""
    from obstore.store import S3Store

    settings: dict[str, Any] = {
        "endpoint": endpoint or server.endpoint_url,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        "region": server.region,
        "virtual_hosted_style_request": False,
        "client_options": OBSTORE_CLIENT,
        **options,
    }
    return S3Store(bucket, **settings)


def minio_client(
    server: S3Server,
    *,
    endpoint: str | None = None,
    secret_key: str | None = None,
    connections: int = 16,
    **http_options: Any,
) -> Minio:
    """A Minio client with the server's keys (``secret_key`` replaces its secret), talking to
    the server or to a proxy at ``endpoint``, over TLS when that URL is https; ``http_options``
    (timeouts, ``retry``) go to :func:`taquba_memo_minio.make_http_client`."""
    from minio import Minio
    from taquba_memo_minio import make_http_client

    parts = urllib.parse.urlsplit(endpoint or server.endpoint_url)
    return Minio(
        parts.netloc,
        access_key=server.access_key,
        secret_key=secret_key or server.secret_key,
        secure=parts.scheme == "https",
        region=server.region,
        http_client=make_http_client(connections, **http_options),
    )


def minio_backend(
    server: S3Server, bucket: str, *, endpoint: str | None = None, **options: Any
) -> MinioBackend:
    """``MinioBackend.connect`` on ``bucket`` over plain HTTP with the server's keys."""
    from taquba_memo_minio import MinioBackend

    settings: dict[str, Any] = {
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "secure": False,
        "region": server.region,
        **options,
    }
    return MinioBackend.connect(netloc(endpoint or server.endpoint_url), bucket, **settings)


# -- GCS (fake-gcs-server) -------------------------------------------------------------


def gcs_credentials(server: GCSServer) -> Credentials:
    """Explicit credentials for ``server``: its bearer token on a real endpoint, else anonymous
    (the emulator); a client left to find its own could probe the metadata server."""
    from google.auth.credentials import AnonymousCredentials
    from google.oauth2.credentials import Credentials as TokenCredentials

    if server.access_token:
        return TokenCredentials(token=server.access_token)  # type: ignore[no-untyped-call]
    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def gcs_client(
    server: GCSServer, *, endpoint: str | None = None, credentials: Credentials | None = None
) -> storage.Client:
    """A google-cloud-storage client on the server, or a proxy at ``endpoint``
    (:func:`gcs_credentials` unless ``credentials``)."""
    from google.cloud import storage

    return storage.Client(
        project=server.project,
        credentials=credentials or gcs_credentials(server),
        client_options={"api_endpoint": endpoint or server.endpoint_url},
    )


def gcs_backend(
    server: GCSServer, bucket: str, *, endpoint: str | None = None, **options: Any
) -> GCSBackend:
    """A GCSBackend on ``bucket`` over an anonymous client of its own (left open by aclose()
    like every client handed to GCSBackend: the SDK client holds only a pooled session)."""
    from taquba_memo_gcs import GCSBackend

    return GCSBackend(gcs_client(server, endpoint=endpoint), bucket, **options)


def obstore_fake_gcs_store(bucket: str, base_url: str, **options: Any) -> GCSStore:
    """A GCSStore for fake-gcs-server at ``base_url`` (in practice the kit's GcsXmlProxy).

    The emulator checks no token; obstore needs some key, so an empty one with
    OAuth off, unless ``service_account_key`` fields are given in ``key``.
    """
    from obstore.store import GCSStore

    key = {
        "gcs_base_url": base_url,
        "disable_oauth": True,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
        **options.pop("key", {}),
    }
    settings: dict[str, Any] = {"client_options": OBSTORE_CLIENT, **options}
    return GCSStore(bucket, service_account_key=json.dumps(key), **settings)


# -- Azure (Azurite) ---------------------------------------------------------------------


def azure_connection_string(server: AzureServer, endpoint: str | None = None) -> str:
    """The server's connection string, its ``BlobEndpoint`` moved to ``endpoint`` if given."""
    if endpoint is None:
        return server.connection_string
    parts = parse_connection_string(server.connection_string)
    blob = urllib.parse.urlsplit(server.blob_endpoint)
    parts["BlobEndpoint"] = f"{endpoint}{blob.path}"
    return ";".join(f"{key}={value}" for key, value in parts.items()) + ";"


def azure_backend(
    server: AzureServer, container: str, *, endpoint: str | None = None, **options: Any
) -> AzureBlobBackend:
    """``AzureBlobBackend.from_connection_string`` on ``container``, through ``endpoint``."""
    from taquba_memo_azure import AzureBlobBackend

    connection = azure_connection_string(server, endpoint)
    return AzureBlobBackend.from_connection_string(connection, container, **options)


def obstore_azurite_store(container: str, url: str, **options: Any) -> AzureStore:
    """An AzureStore in obstore's emulator mode, for Azurite at ``url`` (``http://host:port``).

    An explicit endpoint would make obstore send list offsets (``startFrom``)
    that Azurite ignores; in emulator mode obstore filters itself. It reads
    the address from ``AZURITE_BLOB_STORAGE_URL`` when the store is built, so
    the variable is set for that moment only.
    """
    from obstore.store import AzureStore

    previous = os.environ.get("AZURITE_BLOB_STORAGE_URL")
    os.environ["AZURITE_BLOB_STORAGE_URL"] = url
    try:
        settings: dict[str, Any] = {"client_options": OBSTORE_CLIENT, **options}
        return AzureStore(container, use_emulator=True, **settings)
    finally:
        if previous is None:
            del os.environ["AZURITE_BLOB_STORAGE_URL"]
        else:
            os.environ["AZURITE_BLOB_STORAGE_URL"] = previous


# -- by name ---------------------------------------------------------------------------

#: The adapters on servers, by the name tests and worker processes use for them.
SERVER_ADAPTERS = ("obstore-s3", "minio", "gcs", "obstore-gcs", "azure", "obstore-azure")

BackendBuilder = Callable[[str | None], MemoBackend]


def builder_for(
    name: str,
    s3: Callable[[], S3Server],
    gcs: Callable[[], GCSServer],
    azure: Callable[[], tuple[AzureServer, str]],
    xml_proxy: Callable[[], str],
    bucket: str | None = None,
) -> tuple[BackendBuilder, str]:
    """``(build(endpoint), upstream)`` for adapter ``name`` (one of :data:`SERVER_ADAPTERS`).

    ``build(None)`` talks to the server, ``build(url)`` to a proxy at ``url``
    in front of ``upstream``. The S3 and GCS adapters work on ``bucket`` or a
    fresh one; ``azure()`` gives the server and a container of the caller's
    own; ``xml_proxy()`` is the address of the kit's GcsXmlProxy on the GCS
    emulator (obstore's GCS uploads need it). Each callable is called only
    for the adapter that needs it, and each SDK is imported only then.
    """
    build: BackendBuilder
    if name in ("obstore-s3", "minio"):
        s3_server = s3()
        s3_bucket = bucket or s3_server.new_bucket()
        upstream = s3_server.endpoint_url
        if name == "minio":
            build = lambda endpoint: minio_backend(s3_server, s3_bucket, endpoint=endpoint)  # noqa: E731
        else:
            build = lambda endpoint: _obstore(  # noqa: E731
                obstore_s3_store(s3_server, s3_bucket, endpoint=endpoint)
            )
    elif name in ("gcs", "obstore-gcs"):
        gcs_server = gcs()
        gcs_bucket = bucket or gcs_server.new_bucket()
        if name == "gcs":
            upstream = gcs_server.endpoint_url
            build = lambda endpoint: gcs_backend(gcs_server, gcs_bucket, endpoint=endpoint)  # noqa: E731
        else:
            upstream = xml_proxy()
            build = lambda endpoint: _obstore(  # noqa: E731
                obstore_fake_gcs_store(gcs_bucket, endpoint or upstream)
            )
    elif name in ("azure", "obstore-azure"):
        azure_server, container = azure()
        upstream = azurite_url(azure_server)
        if name == "azure":
            build = lambda endpoint: azure_backend(azure_server, container, endpoint=endpoint)  # noqa: E731
        else:
            build = lambda endpoint: _obstore(  # noqa: E731
                obstore_azurite_store(container, endpoint or upstream)
            )
    else:
        raise ValueError(f"no adapter on a server is called {name!r}; see SERVER_ADAPTERS")
    return build, upstream


def _obstore(store: Any) -> MemoBackend:
    from taquba_memo_obstore import ObstoreBackend

    return ObstoreBackend(store)
