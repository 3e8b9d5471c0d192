"""A sync store on S3 serves both halves: ``memo.aio`` on the caller's loop, the same entries."""

from __future__ import annotations

import asyncio

import pytest
from taquba_memo import ClaimPolicy, JSONCodec
from taquba_memo.sync import MemoStore
from taquba_memo_conformance.servers import S3Server
from taquba_memo_obstore import ObstoreBackend

from ...builders import obstore_s3_store


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_aio_and_the_sync_half_share_one_entry_on_s3(s3_server: S3Server) -> None:
    backend = ObstoreBackend(obstore_s3_store(s3_server, s3_server.new_bucket()))
    calls = 0

    async def call_model() -> dict[str, str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return {"text": "paid once"}

    with MemoStore(backend, "agents") as store:
        memo = store.new_memo("run-1", 1)
        claim = ClaimPolicy(lease_s=30)
        first = await memo.aio.get_or_compute("answer", call_model, codec=JSONCodec(), claim=claim)
        retried = await asyncio.gather(
            *(memo.aio.get_or_compute("answer", call_model, codec=JSONCodec()) for _ in range(3))
        )
        assert memo.get("answer") == b'{"text":"paid once"}'
    assert [first, *retried] == [{"text": "paid once"}] * 4
    assert calls == 1
