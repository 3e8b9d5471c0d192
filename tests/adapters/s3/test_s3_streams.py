"""Memo.get_or_stream on an S3 server: a stream is stored once complete and replayed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from taquba_memo import MemoStore
from taquba_memo._streams import unframe
from taquba_memo_conformance.servers import S3Server

from ...builders import minio_backend

CHUNKS = [b"The ", b"answer ", b"is ", b"42."]


async def test_a_stream_is_stored_when_complete_and_a_retry_replays_it(s3_server: S3Server) -> None:
    backend = minio_backend(s3_server, s3_server.new_bucket())
    calls = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal calls
        calls += 1
        for chunk in CHUNKS:
            yield chunk

    async with MemoStore(backend, "memo") as store:
        first = [chunk async for chunk in store.new_memo("run", 1).get_or_stream("k", stream)]
        retry = [chunk async for chunk in store.new_memo("run", 1).get_or_stream("k", stream)]
        assert first == retry == CHUNKS
        assert calls == 1
        assert unframe(await store.new_memo("run", 1).get("k") or b"") == CHUNKS
