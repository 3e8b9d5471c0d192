"""The kit's real-server fixtures: each emulator starts from nothing on 127.0.0.1, hands out
fresh buckets, speaks its SDK with explicit credentials, and yields to an endpoint given in env."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taquba_memo_conformance import servers
from taquba_memo_conformance._azurite import _exclusive, cache_root, ensure_azurite
from taquba_memo_conformance._processes import ManagedProcess, ServerStartError, free_port
from taquba_memo_conformance.servers import AzureServer, GCSServer, S3Server
from taquba_memo_conformance.servers import _common as servers_common

from .listening_sockets import LOOPBACK_V4, listening_addresses

ENV_PREFIX = "TAQUBA_MEMO_"

Server = S3Server | GCSServer | AzureServer


@pytest.fixture(autouse=True)
def _no_inherited_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test decides itself which server settings are in the environment."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) and name not in ("TAQUBA_MEMO_CACHE",):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def s3_process() -> Iterator[S3Server]:
    server = servers.start_s3_process()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gcs_process() -> Iterator[GCSServer]:
    server = servers.start_gcs_process()
    yield server
    server.close()


@pytest.fixture(scope="module")
def azure_process() -> Iterator[AzureServer]:
    server = servers.start_azure_process()
    yield server
    server.close()


@pytest.fixture(params=["s3", "gcs", "azure"])
def any_process(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue(f"{request.param}_process")
    return server


def new_place(server: Server) -> str:
    """A fresh bucket (S3, GCS) or container (Azure)."""
    return server.new_container() if isinstance(server, AzureServer) else server.new_bucket()


def endpoint_of(server: Server) -> str:
    return server.blob_endpoint if isinstance(server, AzureServer) else server.endpoint_url


def port_of(server: Server) -> int:
    port = urllib.parse.urlsplit(endpoint_of(server)).port
    assert port is not None
    return port


# --------------------------------------------------------------------------- from scratch


EMULATOR_OF = {"s3": "moto", "gcs": "fake-gcs-server", "azure": "azurite"}


def test_each_emulator_starts_as_a_local_process(any_process: Server) -> None:
    assert any_process.how == "process"
    assert any_process.emulator in EMULATOR_OF.values()
    assert endpoint_of(any_process).startswith("http://127.0.0.1:")
    assert any_process.startup_seconds is not None


@pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux /proc/net/tcp"
)
def test_each_emulator_listens_on_loopback_only(any_process: Server) -> None:
    assert listening_addresses(port_of(any_process)) == {LOOPBACK_V4}


def test_new_bucket_gives_a_distinct_bucket_each_call(any_process: Server) -> None:
    names = {new_place(any_process) for _ in range(3)}
    assert len(names) == 3


def test_a_stopped_server_is_gone() -> None:
    server = servers.start_gcs_process()
    port = port_of(server)
    server.close()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    server.close()  # stopping twice is harmless


# --------------------------------------------------------------------------- raw SDK round trips


PAYLOAD = bytes(range(256)) * 5


def test_s3_round_trip_with_boto3(s3_process: S3Server) -> None:
    bucket, other = s3_process.new_bucket(), s3_process.new_bucket()
    client = s3_process.boto3_client()
    client.put_object(Bucket=bucket, Key="run/step 1", Body=PAYLOAD)
    assert client.get_object(Bucket=bucket, Key="run/step 1")["Body"].read() == PAYLOAD
    listed = client.list_objects_v2(Bucket=bucket, Prefix="run/")
    assert [item["Key"] for item in listed["Contents"]] == ["run/step 1"]
    assert client.list_objects_v2(Bucket=other).get("KeyCount") == 0


def test_s3_round_trip_with_a_client_built_from_the_attributes(s3_process: S3Server) -> None:
    """What an adapter does: build its own client from the five attributes, nothing else."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_process.endpoint_url,
        aws_access_key_id=s3_process.access_key,
        aws_secret_access_key=s3_process.secret_key,
        region_name=s3_process.region,
    )
    bucket = s3_process.new_bucket()
    client.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def gcs_upload(server: GCSServer, bucket: str, name: str, data: bytes) -> dict[str, Any]:
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    request = urllib.request.Request(
        f"{server.endpoint_url}/upload/storage/v1/b/{bucket}/o?{query}", data=data, method="POST"
    )
    request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request) as reply:
        uploaded: dict[str, Any] = json.loads(reply.read())
    return uploaded


def gcs_download(server: GCSServer, bucket: str, name: str) -> bytes:
    quoted = urllib.parse.quote(name, safe="")
    url = f"{server.endpoint_url}/storage/v1/b/{bucket}/o/{quoted}?alt=media"
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url) as reply:
        data: bytes = reply.read()
    return data


def test_gcs_round_trip_over_the_json_api(gcs_process: GCSServer) -> None:
    bucket, other = gcs_process.new_bucket(), gcs_process.new_bucket()
    uploaded = gcs_upload(gcs_process, bucket, "run/step 1", PAYLOAD)
    assert int(uploaded["size"]) == len(PAYLOAD)
    assert gcs_download(gcs_process, bucket, "run/step 1") == PAYLOAD
    listed = gcs_process.json_api("GET", f"/b/{bucket}/o", query="prefix=run%2F")
    assert [item["name"] for item in listed["items"]] == ["run/step 1"]
    assert gcs_process.json_api("GET", f"/b/{other}/o").get("items", []) == []


def test_gcs_buckets_are_addressed_by_path_not_host(gcs_process: GCSServer) -> None:
    """-public-host is set: the Host header 127.0.0.1:PORT is not taken for a bucket name."""
    bucket = gcs_process.new_bucket()
    gcs_upload(gcs_process, bucket, "k", b"v")
    url = f"{gcs_process.endpoint_url}/{bucket}/k"  # the XML-style download path
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url) as reply:
        assert reply.read() == b"v"


def test_azure_round_trip_with_azure_storage_blob(azure_process: AzureServer) -> None:
    container, other = azure_process.new_container(), azure_process.new_container()
    service = azure_process.blob_service_client()
    service.get_blob_client(container, "run/step 1").upload_blob(PAYLOAD)
    assert service.get_blob_client(container, "run/step 1").download_blob().readall() == PAYLOAD
    listed = service.get_container_client(container).list_blobs(name_starts_with="run/")
    assert [blob.name for blob in listed] == ["run/step 1"]
    assert list(service.get_container_client(other).list_blobs()) == []


def test_a_temporary_azure_container_is_deleted_with_its_blobs(azure_process: AzureServer) -> None:
    service = azure_process.blob_service_client()
    with azure_process.temporary_container() as container:
        service.get_blob_client(container, "k").upload_blob(b"v")
        assert service.get_container_client(container).exists()
    assert not service.get_container_client(container).exists()
    with azure_process.temporary_container() as container:
        service.delete_container(container)  # a test may delete it itself


def azurite_gc_sleeps(debug_log: Path, expected: int, timeout: float = 30.0) -> list[str]:
    """The "Sleep for <ms>ms" lines of Azurite's garbage collector, once ``expected`` are logged."""
    deadline = time.monotonic() + timeout
    while True:
        text = debug_log.read_text() if debug_log.exists() else ""
        sleeps = re.findall(r"markSweepLoop\(\) Sleep for (\d+)ms", text)
        if len(sleeps) >= expected or time.monotonic() > deadline:
            return sleeps
        time.sleep(0.2)


def test_the_kit_azurite_collects_garbage_once_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debug_log = tmp_path / "azurite-debug.log"
    monkeypatch.setenv(servers.AZURITE_DEBUG_LOG_ENV, str(debug_log))
    server = servers.start_azure_process()
    try:
        assert azurite_gc_sleeps(debug_log, 1) == ["86400000"]
    finally:
        server.close()


def test_the_azurite_garbage_collection_period_can_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debug_log = tmp_path / "azurite-debug.log"
    monkeypatch.setenv(servers.AZURITE_DEBUG_LOG_ENV, str(debug_log))
    monkeypatch.setenv(servers.AZURITE_GC_INTERVAL_ENV, "0.5")
    server = servers.start_azure_process()
    try:
        assert azurite_gc_sleeps(debug_log, 3)[:3] == ["500", "500", "500"]
    finally:
        server.close()


@pytest.mark.parametrize("value", ["0", "-5", "soon", "1e12"])
def test_a_bad_azurite_garbage_collection_period_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(servers.AZURITE_GC_INTERVAL_ENV, value)
    with pytest.raises(ServerStartError, match=servers.AZURITE_GC_INTERVAL_ENV):
        servers.start_azure_process()


def test_azure_round_trip_with_a_client_built_from_account_and_key(
    azure_process: AzureServer,
) -> None:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        account_url=azure_process.blob_endpoint,
        credential={
            "account_name": azure_process.account_name,
            "account_key": azure_process.account_key,
        },
    )
    container = azure_process.new_container()
    service.get_blob_client(container, "k").upload_blob(b"v")
    assert service.get_blob_client(container, "k").download_blob().readall() == b"v"


# --------------------------------------------------------------------------- env wins


def test_an_s3_endpoint_in_env_is_used_as_given(
    s3_process: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAQUBA_MEMO_SERVERS", "process")  # env outranks even a forced mode
    monkeypatch.setenv("TAQUBA_MEMO_S3_ENDPOINT", s3_process.endpoint_url)
    monkeypatch.setenv("TAQUBA_MEMO_S3_ACCESS_KEY", s3_process.access_key)
    monkeypatch.setenv("TAQUBA_MEMO_S3_SECRET_KEY", s3_process.secret_key)
    monkeypatch.setenv("TAQUBA_MEMO_S3_REGION", s3_process.region)
    monkeypatch.setenv("TAQUBA_MEMO_S3_EMULATOR", "moto")
    server = servers.resolve_s3_server()
    assert (server.how, server.endpoint_url, server.emulator) == (
        "env",
        s3_process.endpoint_url,
        "moto",
    )
    bucket = server.new_bucket()
    assert bucket in {b["Name"] for b in s3_process.boto3_client().list_buckets()["Buckets"]}
    server.close()  # leaves a server it did not start running
    assert s3_process.boto3_client().head_bucket(Bucket=bucket)


def test_a_gcs_endpoint_in_env_is_used_as_given(
    gcs_process: GCSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAQUBA_MEMO_GCS_ENDPOINT", gcs_process.endpoint_url + "/")
    monkeypatch.setenv("TAQUBA_MEMO_GCS_PROJECT", "from-env")
    server = servers.resolve_gcs_server()
    assert (server.how, server.endpoint_url, server.project, server.emulator) == (
        "env",
        gcs_process.endpoint_url,
        "from-env",
        None,
    )
    bucket = server.new_bucket()
    assert gcs_process.json_api("GET", f"/b/{bucket}")["name"] == bucket


def test_an_azure_connection_string_in_env_is_used_as_given(
    azure_process: AzureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAQUBA_MEMO_AZURE_CONNECTION_STRING", azure_process.connection_string)
    monkeypatch.setenv("TAQUBA_MEMO_AZURE_EMULATOR", "azurite")
    server = servers.resolve_azure_server()
    assert (server.how, server.blob_endpoint, server.account_name, server.account_key) == (
        "env",
        azure_process.blob_endpoint,
        azure_process.account_name,
        azure_process.account_key,
    )
    assert server.emulator == "azurite"
    container = server.new_container()
    assert azure_process.blob_service_client().get_container_client(container).exists()


def test_a_fixed_bucket_in_env_is_handed_out_instead_of_new_ones(
    gcs_process: GCSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = gcs_process.new_bucket()
    monkeypatch.setenv("TAQUBA_MEMO_GCS_ENDPOINT", gcs_process.endpoint_url)
    monkeypatch.setenv("TAQUBA_MEMO_GCS_BUCKET", shared)
    server = servers.resolve_gcs_server()
    assert server.new_bucket() == server.new_bucket() == shared


def test_an_s3_endpoint_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAQUBA_MEMO_S3_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ServerStartError, match="TAQUBA_MEMO_S3_ACCESS_KEY"):
        servers.resolve_s3_server()


def test_an_azure_connection_string_without_a_key_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "TAQUBA_MEMO_AZURE_CONNECTION_STRING",
        "BlobEndpoint=http://127.0.0.1:9/acct;SharedAccessSignature=sv=x&sig=y",
    )
    with pytest.raises(ServerStartError, match="AccountKey"):
        servers.resolve_azure_server()


def test_an_env_endpoint_on_loopback_that_does_not_answer_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAQUBA_MEMO_GCS_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServerStartError, match="does not answer"):
        servers.resolve_gcs_server()


def test_connection_string_values_may_contain_equals_signs() -> None:
    pairs = servers.parse_connection_string(servers.azurite_connection_string("http://h/a"))
    assert pairs["AccountKey"] == servers.AZURITE_ACCOUNT_KEY
    assert pairs["BlobEndpoint"] == "http://h/a"


def test_use_development_storage_means_azurite_at_its_default_address() -> None:
    server_env = {"TAQUBA_MEMO_AZURE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server_env.items():
            patch.setenv(name, value)
        patch.setattr(servers_common, "check_answers", lambda url, variable: None)
        server = servers.resolve_azure_server()
    assert server.blob_endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    assert server.account_key == servers.AZURITE_ACCOUNT_KEY


# --------------------------------------------------------------------------- Docker detection


@contextlib.contextmanager
def fake_docker_socket(reply: bytes | None) -> Iterator[str]:
    """A unix socket that answers every request with ``reply`` (None: accepts, never answers)."""
    directory = tempfile.mkdtemp(prefix="taquba-memo-docker-")
    path = os.path.join(directory, "docker.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)
            if reply is not None:
                with contextlib.suppress(OSError):
                    connection.settimeout(2)
                    connection.recv(65536)
                    connection.sendall(reply)
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for connection in held:
            connection.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(directory)


needs_unix_sockets = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="fakes a Docker engine on a unix socket"
)


def test_no_docker_socket_means_no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tempfile.gettempdir()}/taquba-memo-absent.sock")
    assert servers.docker_answers() is False


@needs_unix_sockets
def test_a_docker_socket_that_never_answers_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fake_docker_socket(None) as docker_host:
        monkeypatch.setenv("DOCKER_HOST", docker_host)
        assert servers.docker_answers(timeout=0.3) is False


@needs_unix_sockets
def test_a_docker_socket_that_answers_http_is_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_docker_socket(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK") as docker_host:
        monkeypatch.setenv("DOCKER_HOST", docker_host)
        assert servers.docker_answers() is True


def test_without_docker_the_fixture_starts_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tempfile.gettempdir()}/taquba-memo-absent.sock")
    server = servers.resolve_gcs_server()
    try:
        assert (server.how, server.emulator) == ("process", "fake-gcs-server")
    finally:
        server.close()


def test_a_forced_container_without_docker_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tempfile.gettempdir()}/taquba-memo-absent.sock")
    monkeypatch.setenv("TAQUBA_MEMO_SERVERS", "container")
    with pytest.raises(ServerStartError):
        servers.resolve_gcs_server()


@needs_unix_sockets
def test_a_docker_engine_that_cannot_run_the_image_falls_back_to_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with fake_docker_socket(broken) as docker_host:
        monkeypatch.setenv("DOCKER_HOST", docker_host)
        monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
        with pytest.warns(UserWarning, match="starts a local process instead"):
            server = servers.resolve_gcs_server()
    try:
        assert server.how == "process"
    finally:
        server.close()


# --------------------------------------------------------------------------- failures are explained


def test_a_server_that_exits_is_reported_with_its_output() -> None:
    process = ManagedProcess(
        "doomed",
        [
            sys.executable,
            "-c",
            "import sys; print('no such flag: -x', file=sys.stderr); sys.exit(3)",
        ],
    )
    with pytest.raises(ServerStartError, match=r"(?s)exit status 3.*no such flag: -x"):
        process.wait_until_http(f"http://127.0.0.1:{free_port()}/", timeout=30)
    assert not process.workdir.exists()  # stopped and cleaned up


def test_a_server_that_never_answers_is_stopped_after_the_timeout() -> None:
    process = ManagedProcess("silent", [sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(ServerStartError, match="did not answer within"):
        process.wait_until_http(f"http://127.0.0.1:{free_port()}/", timeout=1)
    assert process.exited()


def test_a_start_timeout_that_is_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAQUBA_MEMO_SERVER_START_TIMEOUT", "soon")
    with pytest.raises(ServerStartError, match="TAQUBA_MEMO_SERVER_START_TIMEOUT"):
        servers.start_gcs_process()


# --------------------------------------------------------------------------- Azurite from the kit


def test_azurite_is_installed_once_and_reused(azure_process: AzureServer) -> None:
    first, second = ensure_azurite(), ensure_azurite()
    assert first.directory == second.directory == cache_root() / "azurite-3.35.0"
    installed = json.loads((first.directory / "node_modules/azurite/package.json").read_text())
    assert installed["version"] == "3.35.0"
    assert first.blob_main.is_file()


def test_the_install_lock_keeps_a_second_process_out(tmp_path: Path) -> None:
    lock = tmp_path / "install.lock"
    holder = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from taquba_memo_conformance._azurite import _exclusive\n"
        "with _exclusive(Path(sys.argv[1]), 5):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as other:
        try:
            assert other.stdout is not None
            assert other.stdout.readline().strip() == "held"
            with pytest.raises(ServerStartError, match="held"), _exclusive(lock, 0.5):
                pass
        finally:
            assert other.stdin is not None
            other.stdin.close()
            other.wait(timeout=30)
    with _exclusive(lock, 5):  # free again once the holder is gone
        pass


def test_the_kit_pins_azurite_exactly() -> None:
    pins = Path(servers.__file__).parent.parent / "azurite"
    manifest = json.loads((pins / "package.json").read_text())
    lock = json.loads((pins / "package-lock.json").read_text())
    assert manifest["dependencies"] == {"azurite": "3.35.0"}
    assert lock["packages"]["node_modules/azurite"]["version"] == "3.35.0"
    # No registry address is written into the lock: npm uses whichever one is configured.
    assert all("resolved" not in entry for entry in lock["packages"].values())
