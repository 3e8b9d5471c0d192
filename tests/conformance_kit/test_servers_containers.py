"""The container path of the server fixtures: with a Docker engine answering, gcs_server runs
fake-gcs-server through testcontainers. `just containers-gcs` provides such an engine here."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from taquba_memo_conformance import servers
from taquba_memo_conformance.servers import GCSServer

from .listening_sockets import LOOPBACK_V4, listening_addresses

if os.environ.get("TAQUBA_MEMO_GCS_ENDPOINT"):
    pytest.skip(
        "TAQUBA_MEMO_GCS_ENDPOINT is set, so the fixture uses that endpoint, not a container",
        allow_module_level=True,
    )
if os.environ.get("TAQUBA_MEMO_SERVERS") == "process" or not servers.docker_answers():
    pytest.skip(
        "no Docker engine answers (DOCKER_HOST or the default socket); "
        "`just containers-gcs` starts one and runs these",
        allow_module_level=True,
    )


def gcs_image() -> str:
    return os.environ.get("TAQUBA_MEMO_GCS_IMAGE") or servers.FAKE_GCS_IMAGE


def containers_from(image: str) -> int:
    import docker

    client = docker.from_env(timeout=30)
    try:
        return len(client.containers.list(all=True, filters={"ancestor": image}))
    finally:
        client.close()


def test_the_gcs_fixture_runs_fake_gcs_server_in_a_container(gcs_server: GCSServer) -> None:
    assert (gcs_server.how, gcs_server.emulator) == ("container", "fake-gcs-server")
    assert gcs_server.endpoint_url.startswith("http://127.0.0.1:")
    assert containers_from(gcs_image()) >= 1
    print(f"{gcs_image()} answered {gcs_server.startup_seconds:.2f} s after docker create")


@pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux /proc/net/tcp"
)
def test_the_container_answers_on_loopback_only(gcs_server: GCSServer) -> None:
    port = urllib.parse.urlsplit(gcs_server.endpoint_url).port
    assert port is not None
    assert listening_addresses(port) == {LOOPBACK_V4}


def test_buckets_and_objects_round_trip_through_the_container(gcs_server: GCSServer) -> None:
    bucket, other = gcs_server.new_bucket(), gcs_server.new_bucket()
    assert bucket != other
    query = urllib.parse.urlencode({"uploadType": "media", "name": "run/step 1"})
    upload = urllib.request.Request(
        f"{gcs_server.endpoint_url}/upload/storage/v1/b/{bucket}/o?{query}",
        data=bytes(range(256)),
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(upload) as reply:
        reply.read()
    name = urllib.parse.quote("run/step 1", safe="")
    download = f"{gcs_server.endpoint_url}/storage/v1/b/{bucket}/o/{name}?alt=media"
    with opener.open(download) as reply:
        assert reply.read() == bytes(range(256))
    assert gcs_server.json_api("GET", f"/b/{other}/o").get("items", []) == []


def test_closing_a_container_server_removes_its_container() -> None:
    before = containers_from(gcs_image())
    server = servers.start_gcs_container()
    assert server.how == "container"
    assert containers_from(gcs_image()) == before + 1
    server.close()
    assert containers_from(gcs_image()) == before
