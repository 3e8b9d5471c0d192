"""Fixtures for the runtime tests: every shipped backend as a spec a fresh process can build,
where a worker keeps its memos, and the Redis broker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from taquba_memo_conformance.proxies import GcsXmlProxy
from taquba_memo_conformance.servers import AzureServer, GCSServer, S3Server
from taquba_memo_conformance.servers_plugin import S3_SERVER_FIXTURES

from .backend_specs import EMBEDDED, SERVER_BACKED, portable_server
from .redis_server import RedisServer, redis_server  # noqa: F401  (the fixture)
from .workers import MEMO_TARGETS, MemoTarget


def backend_spec_for(
    name: str, request: pytest.FixtureRequest, root: Path, cleanup: contextlib.ExitStack
) -> dict[str, Any]:
    """The spec of backend ``name``, starting the emulator it needs (the kit's fixtures)."""
    spec: dict[str, Any] = {"name": name, "root": str(root)}
    # One bucket per spec, so that every process built from it shares the data.
    if name.removesuffix("-rgw") in ("obstore-s3", "minio"):
        # "-rgw": the same adapter on Ceph RGW, which checks every signature.
        fixture = "rgw_server" if name.endswith("-rgw") else "s3_server"
        s3: S3Server = request.getfixturevalue(fixture)
        spec["s3"] = portable_server(s3)
        spec["bucket"] = s3.new_bucket()
    elif name in ("gcs", "obstore-gcs"):
        gcs: GCSServer = request.getfixturevalue("gcs_server")
        spec["gcs"] = portable_server(gcs)
        spec["bucket"] = gcs.new_bucket()
        if name == "obstore-gcs":
            # obstore writes GCS objects through the XML API, which fake-gcs-server lacks.
            spec["xml_proxy"] = gcs.endpoint_url
            if gcs.emulator == "fake-gcs-server":
                spec["xml_proxy"] = cleanup.enter_context(GcsXmlProxy(gcs.endpoint_url)).url
    elif name in ("azure", "obstore-azure"):
        azure: AzureServer = request.getfixturevalue("azure_server")
        container = cleanup.enter_context(azure.temporary_container())
        spec["azure"] = (portable_server(azure), container)
    return spec


@pytest.fixture(params=EMBEDDED + SERVER_BACKED)
def backend_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """One shipped backend (embedded, or an adapter on its emulator), as a spec."""
    with contextlib.ExitStack() as cleanup:
        yield backend_spec_for(request.param, request, tmp_path, cleanup)


@pytest.fixture(params=MEMO_TARGETS)
def memo_target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MemoTarget:
    """Where the worker keeps its memos: a local directory, or a fresh bucket on an S3 server."""
    if request.param == "local":
        return MemoTarget(f"file://{tmp_path / 'memos'}", {})
    server: S3Server = request.getfixturevalue(S3_SERVER_FIXTURES[request.param])
    bucket = server.new_bucket()
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = f"s3://{bucket}?endpoint={server.endpoint_url}&region={server.region}&allow_http=true"
    return MemoTarget(url, env)


@pytest.fixture
def broker(redis_server: RedisServer) -> str:  # noqa: F811
    """The Redis URL, emptied before each test so no earlier message is delivered."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url
