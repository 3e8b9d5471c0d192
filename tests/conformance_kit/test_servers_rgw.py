"""The kit's Ceph RGW: a single-node cluster of local processes on 127.0.0.1 only, with its own
keys, that checks signatures, and leaves no process and no directory behind when stopped."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from taquba_memo_conformance import servers
from taquba_memo_conformance.servers import S3Server, ServerUnavailableError

from .listening_sockets import LOOPBACK_V4, listening_addresses_of

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads processes and sockets from Linux /proc"
)


def cluster_processes(marker: str) -> dict[int, str]:
    """pid -> command name of every process whose arguments mention ``marker``."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in argument for argument in argv):
            found[int(entry.name)] = Path(argv[0].decode(errors="replace")).name
    return found


@pytest.fixture(scope="module")
def rgw_process() -> Iterator[S3Server]:
    try:
        server = servers.start_rgw_process()
    except ServerUnavailableError as error:
        pytest.skip(f"Ceph RGW is unavailable: {error}")
    yield server
    server.close()


def the_cluster(server: S3Server) -> tuple[str, dict[int, str]]:
    """The cluster's state directory and its processes (found by the config file they share)."""
    config_users = {
        pid: name
        for pid, name in cluster_processes("ceph.conf").items()
        if name in ("ceph-mon", "ceph-osd", "radosgw")
    }
    for pid in config_users:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        config = next(arg.decode() for arg in argv if arg.endswith(b"ceph.conf"))
        port = server.endpoint_url.rsplit(":", 1)[1]
        if f"127.0.0.1:{port}" in Path(config).read_text():
            directory = str(Path(config).parent)
            return directory, cluster_processes(directory)
    raise AssertionError(f"no Ceph process serves {server.endpoint_url}")


def test_rgw_runs_a_monitor_an_osd_and_a_gateway_on_loopback_only(rgw_process: S3Server) -> None:
    assert rgw_process.how == "process"
    assert rgw_process.emulator == "rgw"
    assert rgw_process.checks_signatures
    assert rgw_process.endpoint_url.startswith("http://127.0.0.1:")
    _, processes = the_cluster(rgw_process)
    assert {"ceph-mon", "ceph-osd", "radosgw"} <= set(processes.values())
    assert listening_addresses_of(set(processes)) == {LOOPBACK_V4}


def test_rgw_has_keys_of_its_own_and_refuses_a_wrong_secret(rgw_process: S3Server) -> None:
    assert rgw_process.access_key != servers.EMULATOR_ACCESS_KEY
    bucket = rgw_process.new_bucket()
    rgw_process.boto3_client().put_object(Bucket=bucket, Key="k", Body=b"v")
    wrong = boto3.session.Session(
        aws_access_key_id=rgw_process.access_key,
        aws_secret_access_key="wrong-secret",
        region_name=rgw_process.region,
    ).client("s3", endpoint_url=rgw_process.endpoint_url)
    with pytest.raises(ClientError) as refused:
        wrong.get_object(Bucket=bucket, Key="k")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_a_stopped_rgw_leaves_no_process_and_no_directory() -> None:
    try:
        server = servers.start_rgw_process()
    except ServerUnavailableError as error:
        pytest.skip(f"Ceph RGW is unavailable: {error}")
    directory, processes = the_cluster(server)
    port = int(server.endpoint_url.rsplit(":", 1)[1])
    server.close()
    assert cluster_processes(directory) == {}
    assert all(not Path(f"/proc/{pid}").exists() for pid in processes)  # reaped, not zombies
    assert not Path(directory).exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    server.close()  # stopping twice is harmless


def test_without_ceph_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "RGW_COMMANDS", ("no-such-ceph-daemon",))
    with pytest.raises(ServerUnavailableError) as raised:
        servers.start_rgw_process()
    message = str(raised.value)
    assert "no-such-ceph-daemon not found" in message
    assert "just system-deps" in message
    assert "TAQUBA_MEMO_RGW_ENDPOINT" in message


def test_an_rgw_endpoint_in_env_is_used_as_given(
    rgw_process: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAQUBA_MEMO_RGW_ENDPOINT", rgw_process.endpoint_url)
    monkeypatch.setenv("TAQUBA_MEMO_RGW_ACCESS_KEY", rgw_process.access_key)
    monkeypatch.setenv("TAQUBA_MEMO_RGW_SECRET_KEY", rgw_process.secret_key)
    given = servers.resolve_rgw_server()
    assert (given.how, given.emulator, given.endpoint_url) == (
        "env",
        "rgw",
        rgw_process.endpoint_url,
    )
    given.close()  # leaves the server alone
    assert given.boto3_client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
