"""Fixtures for the MinIO adapter tests: a client, a fresh bucket and backends, on the s3_server.

Every client comes from :func:`tests.builders.minio_client`, with the server's
credentials explicitly. A client without them would send unsigned requests;
one left to find its own could probe cloud metadata addresses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from minio import Minio
from taquba_memo_conformance.servers import S3Server
from taquba_memo_minio import MinioBackend

from ... import builders
from ...conftest import parametrize_s3_servers
from .s3_proxy import S3Proxy

BackendFactory = Callable[..., MinioBackend]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_s3_servers(metafunc)


def endpoint_of(server: S3Server) -> tuple[str, bool]:
    """``host:port`` and whether to use TLS, from the server's endpoint URL."""
    parts = urlsplit(server.endpoint_url)
    return parts.netloc, parts.scheme == "https"


def deny_policy(bucket: str, action: str, object_name: str) -> str:
    """A bucket policy that denies ``action`` on one object to everyone."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": action,
                    "Resource": f"arn:aws:s3:::{bucket}/{object_name}",
                }
            ],
        }
    )


@pytest.fixture(scope="session")
def minio_client(s3_server: S3Server) -> Iterator[Minio]:
    client = builders.minio_client(s3_server)
    yield client
    client._http.clear()


@pytest.fixture
def minio_bucket(s3_server: S3Server, minio_client: Minio) -> Iterator[str]:
    """A new, empty bucket for one test (the server's fixed one if it hands out one)."""
    name = s3_server.new_bucket()
    yield name
    if not s3_server.fixed_bucket:
        with contextlib.suppress(Exception):
            minio_client.remove_bucket(name)


@pytest.fixture
def own_minio_bucket(s3_server: S3Server, minio_bucket: str) -> str:
    """``minio_bucket``, for tests that change bucket-wide settings such as its policy."""
    if s3_server.fixed_bucket:
        pytest.skip("needs a bucket of its own, but TAQUBA_MEMO_S3_BUCKET hands out a shared one")
    return minio_bucket


@pytest.fixture
def policy_bucket(s3_server: S3Server, own_minio_bucket: str) -> str:
    """A bucket of this test's own whose policy binds the test's credentials."""
    if s3_server.emulator == "minio":
        pytest.skip("MinIO exempts its root credentials, which the tests use, from bucket policies")
    return own_minio_bucket


@pytest_asyncio.fixture
async def make_backend(minio_client: Minio, minio_bucket: str) -> AsyncIterator[BackendFactory]:
    """Build MinioBackends on this test's bucket; every one is closed at teardown."""

    def build(base_path: str = "", **options: Any) -> MinioBackend:
        client = options.pop("client", minio_client)
        bucket = options.pop("bucket", minio_bucket)
        return MinioBackend(client, bucket, base_path=base_path, **options)

    async with builders.closed_at_exit(build) as make:
        yield make


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[S3Proxy]:
    """A recording, fault-injecting proxy in front of the server."""
    if urlsplit(s3_server.endpoint_url).scheme != "http":
        pytest.skip("the loopback proxy forwards plain HTTP only")
    proxy = S3Proxy(s3_server.endpoint_url).start()
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_client(s3_server: S3Server, s3_proxy: S3Proxy) -> Iterator[Minio]:
    """A client that talks to the server through ``s3_proxy``; fast retries."""
    from taquba_memo_minio import default_retry

    retry = default_retry(total=3)
    retry.backoff_factor = 0.01
    client = builders.minio_client(s3_server, endpoint=s3_proxy.url, retry=retry)
    yield client
    client._http.clear()
