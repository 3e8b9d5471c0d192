"""The taquba-memo conformance suite against MinioBackend on the session's S3 server (moto).

Each test gets a new bucket. Partial ``delete_many`` failures are provoked the
way a store operator would: a bucket policy that denies ``s3:DeleteObject`` on
the held key, which moto enforces per key in DeleteObjects, as S3 does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest_asyncio
from minio import Minio
from taquba_memo import MemoBackend
from taquba_memo_conformance import MemoBackendConformance
from taquba_memo_conformance.servers import S3Server
from taquba_memo_minio import MinioBackend

from .conftest import deny_policy


class TestMinioBackendConformance(MemoBackendConformance):
    @pytest_asyncio.fixture
    async def backend(
        self, s3_server: S3Server, minio_client: Minio, minio_bucket: str
    ) -> AsyncIterator[MemoBackend]:
        self.fixed_bucket = bool(s3_server.fixed_bucket)
        self.root_exempt = s3_server.emulator == "minio"
        async with MinioBackend(minio_client, minio_bucket) as backend:
            assert backend.capabilities.conditional_put, "minio 7.2.x sends If-None-Match"
            yield backend

    @asynccontextmanager
    async def undeletable(self, backend: MemoBackend, key: str) -> AsyncIterator[None]:
        """A bucket policy denying s3:DeleteObject on the key, removed afterwards."""
        if self.fixed_bucket:
            raise NotImplementedError("a shared bucket's policy is not this test's to replace")
        if self.root_exempt:
            raise NotImplementedError("MinIO exempts root credentials from bucket policies")
        assert isinstance(backend, MinioBackend)
        client, bucket = backend.client, backend.bucket
        policy = deny_policy(bucket, "s3:DeleteObject", key)
        await asyncio.to_thread(client.set_bucket_policy, bucket, policy)
        try:
            yield
        finally:
            await asyncio.to_thread(client.delete_bucket_policy, bucket)
