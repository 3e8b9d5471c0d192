"""Ceph RGW, a real S3 server that checks every signature: from env, Ceph's image, or local daemons.

The local cluster is the kit's ``rgw/start_rgw.sh`` running ``ceph-mon``,
``ceph-osd`` (on memstore) and ``radosgw`` from Debian's packages.
"""

from __future__ import annotations

import uuid

from taquba_memo_conformance._containers import start_container
from taquba_memo_conformance._processes import (
    ServerStartError,
    ServerUnavailableError,
    free_port,
    start_timeout,
)
from taquba_memo_conformance.servers._common import (
    KIT_DIRECTORY,
    env_value,
    image,
    resolve,
    start_process,
    which,
)
from taquba_memo_conformance.servers.s3 import (
    S3Server,
    loopback_s3_server,
    s3_compatible_from_env,
)

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
_RGW_SCRIPT = KIT_DIRECTORY / "rgw" / "start_rgw.sh"


def resolve_rgw_server() -> S3Server:
    """Ceph RGW for this session: env, else Ceph's image, else local Ceph processes.

    Raises :class:`ServerUnavailableError` when none of the three can be had.
    """
    return resolve("Ceph RGW", rgw_server_from_env, start_rgw_container, start_rgw_process)


def rgw_server_from_env() -> S3Server | None:
    return s3_compatible_from_env("RGW", lambda: "rgw")


def _rgw_memstore_bytes() -> int:
    raw = env_value(RGW_MEMSTORE_BYTES_ENV)
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


def start_rgw_container() -> S3Server:
    """Ceph's image (``TAQUBA_MEMO_RGW_IMAGE``) running the kit's single-node cluster script."""
    keys = _rgw_credentials()
    running = start_container(
        image=image("TAQUBA_MEMO_RGW_IMAGE", RGW_IMAGE),
        entrypoint=["bash", "-c", _RGW_SCRIPT.read_text(), "start_rgw"],
        container_port=7480,
        command=lambda host, port, _published: _rgw_arguments("/tmp/rgw", host, port, keys),
        probe_path="/",
        timeout=start_timeout(),
    )
    return loopback_s3_server(running, keys, "rgw", "container", checks_signatures=True)


def start_rgw_process() -> S3Server:
    """A single-node Ceph cluster with RGW, as local processes on 127.0.0.1.

    The kit's ``rgw/start_rgw.sh`` runs ``ceph-mon``, ``ceph-osd`` (memstore,
    capped by ``TAQUBA_MEMO_RGW_MEMSTORE_BYTES``) and ``radosgw`` in the
    process's scratch directory, and creates an S3 user with fresh keys before
    the gateway answers. Stopping it stops all three and deletes the directory.
    """
    missing = [command for command in RGW_COMMANDS if which(command) is None]
    if missing:
        raise ServerUnavailableError(f"{', '.join(missing)} not found. {RGW_HINT}")
    bash = which("bash")
    if bash is None:
        raise ServerUnavailableError("the kit's RGW start script needs bash")
    keys = _rgw_credentials()
    started = start_process(
        "rgw",
        lambda port: [bash, str(_RGW_SCRIPT), *_rgw_arguments(".", "127.0.0.1", port, keys)],
        "/",
    )
    return loopback_s3_server(started, keys, "rgw", "process", checks_signatures=True)
