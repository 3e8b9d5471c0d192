"""The kit's Ceph RGW: a single-node cluster of local processes on 127.0.0.1 only, with its own
keys, that checks signatures, and leaves no process and no directory behind when stopped.

A cluster's processes are found by the process group its start script leads
(``S3Server.process_id``) and its state by that script's directory, never by
scanning every Ceph process on the machine: another user's or another run's
cluster may be running, with a configuration this test cannot read.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.exceptions import ClientError
from taquba_memo_conformance import servers
from taquba_memo_conformance._processes import ManagedProcess
from taquba_memo_conformance.servers import S3Server, ServerStartError, ServerUnavailableError

from .listening_sockets import LOOPBACK_V4, listening_addresses_of

T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads processes and sockets from Linux /proc"
)


def each_process(read: Callable[[Path], T]) -> Iterator[tuple[int, T]]:
    """(pid, ``read(/proc/<pid>)``) for every process, skipping those that exit meanwhile."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), read(entry)
            except OSError:
                continue


def cluster_processes(marker: str) -> dict[int, str]:
    """pid -> command name of every process whose arguments mention ``marker``."""
    found: dict[int, str] = {}
    for pid, argv in each_process(lambda entry: (entry / "cmdline").read_bytes().split(b"\0")):
        if any(marker.encode() in argument for argument in argv):
            found[pid] = Path(argv[0].decode(errors="replace")).name
    return found


def process_group(leader: int) -> dict[int, str]:
    """pid -> command name of every live process in the process group ``leader`` leads."""
    found: dict[int, str] = {}
    for pid, stat in each_process(lambda entry: (entry / "stat").read_text()):
        # "pid (comm) state ppid pgrp ...": the name may hold spaces and parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == leader and state != "Z":
            found[pid] = name
    return found


def start_or_skip() -> S3Server:
    try:
        return servers.start_rgw_process()
    except ServerUnavailableError as error:
        pytest.skip(f"Ceph RGW is unavailable: {error}")


@pytest.fixture(scope="module")
def rgw_process() -> Iterator[S3Server]:
    server = start_or_skip()
    try:
        yield server
    finally:
        server.close()


def the_cluster(server: S3Server) -> tuple[Path, dict[int, str]]:
    """The cluster's state directory and its processes, found from the script the kit started."""
    leader = server.process_id
    assert leader is not None, f"{server} was not started by the kit as a process"
    directory = Path(f"/proc/{leader}/cwd").resolve()  # the script keeps its state in "."
    port = server.endpoint_url.rsplit(":", 1)[1]
    config = (directory / "ceph.conf").read_text()
    assert f"127.0.0.1:{port}" in config, f"{directory}/ceph.conf does not serve port {port}"
    return directory, process_group(leader)


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
    server = start_or_skip()
    try:
        directory, processes = the_cluster(server)
        port = int(server.endpoint_url.rsplit(":", 1)[1])
    finally:
        server.close()
    assert cluster_processes(str(directory)) == {}
    assert server.process_id is not None
    assert process_group(server.process_id) == {}
    assert all(not Path(f"/proc/{pid}").exists() for pid in processes)  # reaped, not zombies
    assert not directory.exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    server.close()  # stopping twice is harmless


def test_another_cluster_on_the_machine_is_left_out_of_the_checks() -> None:
    """A cluster started before ours (another run's, say), whose configuration we cannot read."""
    with contextlib.ExitStack() as clusters:
        other = start_or_skip()
        clusters.callback(other.close)
        other_directory, other_processes = the_cluster(other)
        mine = start_or_skip()
        clusters.callback(mine.close)
        # As another user's cluster would be, or a crashed run's whose files were cleaned away.
        hidden = other_directory / "ceph.conf.hidden"
        (other_directory / "ceph.conf").rename(hidden)
        try:
            directory, processes = the_cluster(mine)
            assert listening_addresses_of(set(processes)) == {LOOPBACK_V4}
        finally:
            hidden.rename(other_directory / "ceph.conf")
        assert directory != other_directory
        assert {"ceph-mon", "ceph-osd", "radosgw"} <= set(processes.values())
        assert {"ceph-mon", "ceph-osd", "radosgw"} <= set(other_processes.values())
        assert not set(processes) & set(other_processes)
        other.close()
        assert the_cluster(mine)[1] == processes, "stopping the other cluster left ours alone"


def test_a_cluster_that_fails_to_start_leaves_no_daemon_and_no_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The S3 user cannot be created after the monitor and the OSD run: both are stopped."""
    start_or_skip().close()  # Ceph is here, and starts
    failing = tmp_path / "bin" / "radosgw-admin"
    failing.parent.mkdir()
    failing.write_text("#!/bin/sh\necho 'radosgw-admin: refused for this test' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("PATH", f"{failing.parent}:{os.environ['PATH']}")
    started: list[ManagedProcess] = []

    class Recorded(ManagedProcess):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(servers._common, "ManagedProcess", Recorded)
    with pytest.raises(ServerStartError, match="refused for this test"):
        servers.start_rgw_process()
    assert started, "the start script ran"
    for attempt in started:
        assert process_group(attempt.pid) == {}, "a daemon outlived its failed cluster"
        assert not attempt.workdir.exists()


def test_without_ceph_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.rgw, "RGW_COMMANDS", ("no-such-ceph-daemon",))
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
