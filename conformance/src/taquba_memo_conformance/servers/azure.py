"""Azurite, the Azure Blob emulator: from a connection string in env, its image, or npm azurite."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from taquba_memo_conformance._containers import start_container
from taquba_memo_conformance._processes import ServerStartError, StartedServer, start_timeout
from taquba_memo_conformance.servers import _common as common

AzureEmulator = Literal["azurite"]

# Azurite's account key is its documented public development key.
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

# The image for the container path; TAQUBA_MEMO_AZURE_IMAGE replaces it.
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
_AZURITE_LAUNCHER = common.KIT_DIRECTORY / "azurite" / "launch.js"


@dataclass
class AzureServer(common.ServerRecord[AzureEmulator]):
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
            common.require_modules("blob_service_client()", "azure.storage.blob")
            from azure.storage.blob import BlobServiceClient

            self._client = BlobServiceClient.from_connection_string(self.connection_string)
        return self._client

    def new_container(self) -> str:
        """Create a fresh, uniquely named, empty blob container and return its name."""
        if self.fixed_container:
            return self.fixed_container
        name = common.unique_name()
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


def resolve_azure_server() -> AzureServer:
    """The Azure Blob server for this session: env, else a container, else an Azurite process."""
    return common.resolve(
        "Azure", azure_server_from_env, start_azure_container, start_azure_process
    )


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
    connection_string = common.env_value("TAQUBA_MEMO_AZURE_CONNECTION_STRING")
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
        emulator=common.emulator_env("TAQUBA_MEMO_AZURE_EMULATOR", ("azurite",)),
        how="env",
        fixed_container=common.env_value("TAQUBA_MEMO_AZURE_CONTAINER"),
    )
    common.check_answers(blob_endpoint + "?comp=list", "TAQUBA_MEMO_AZURE_CONNECTION_STRING")
    return server


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
        image=common.image("TAQUBA_MEMO_AZURE_IMAGE", AZURITE_IMAGE),
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


def _azurite_server(started: StartedServer, how: common.How) -> AzureServer:
    blob_endpoint = f"http://127.0.0.1:{started.host_port}/{AZURITE_ACCOUNT_NAME}"
    return AzureServer(
        connection_string=azurite_connection_string(blob_endpoint),
        blob_endpoint=blob_endpoint,
        account_name=AZURITE_ACCOUNT_NAME,
        account_key=AZURITE_ACCOUNT_KEY,
        emulator="azurite",
        **common.started_fields(started, how),
    )


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

    started = common.start_process(
        "azurite",
        argv,
        f"/{AZURITE_ACCOUNT_NAME}?comp=list",
    )
    return _azurite_server(started, "process")
