"""A create-if-absent on S3 is one PutObject at every value size, so it stays exactly-once.

S3 servers need not enforce ``If-None-Match: *`` on CompleteMultipartUpload:
Ceph RGW 16 answers 200 and overwrites (measured). A conditional put that
split a large value into parts would let every concurrent creator win there.
So each S3 adapter must send a conditional put as a single PutObject carrying
the header, whatever the size; a counting proxy sees every request it sends,
and RGW, which enforces the header on PutObject atomically, picks one winner.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable

import pytest
from taquba_memo import MemoBackend
from taquba_memo_conformance.proxies import CountingProxy
from taquba_memo_conformance.servers import S3Server
from taquba_memo_obstore import ObstoreBackend

from ...builders import minio_backend, obstore_s3_store

pytestmark = pytest.mark.timeout(300)

MIB = 1024 * 1024
CREATORS = 4
# 20 MiB is past every multipart threshold of the SDKs (minio: 5 MiB parts;
# obstore: 10 MiB chunks for its multipart writer).
SIZES = [1, 6 * MIB, 20 * MIB]


ADAPTERS: dict[str, Callable[[S3Server, str, str], MemoBackend]] = {
    "minio": lambda server, bucket, endpoint: minio_backend(server, bucket, endpoint=endpoint),
    "obstore-s3": lambda server, bucket, endpoint: ObstoreBackend(
        obstore_s3_store(server, bucket, endpoint=endpoint)
    ),
}


# On RGW only: moto checks If-None-Match and stores the object in two steps, so
# concurrent creators of a value this large can both win there (measured: two
# winners of four at 6 MiB), which would hide what this test is about.
@pytest.mark.parametrize("s3_server", ["rgw"], indirect=True)
@pytest.mark.parametrize("size", SIZES, ids=[f"{size}B" for size in SIZES])
@pytest.mark.parametrize("adapter", list(ADAPTERS))
async def test_concurrent_creators_of_a_large_value_have_one_winner_in_single_puts(
    s3_server: S3Server, adapter: str, size: int
) -> None:
    bucket = s3_server.new_bucket()
    values = [bytes([creator + 1]) * size for creator in range(CREATORS)]
    with CountingProxy(s3_server.endpoint_url) as proxy:
        backends = [ADAPTERS[adapter](s3_server, bucket, proxy.url) for _ in range(CREATORS)]
        try:
            mark = proxy.mark()
            won = await asyncio.gather(
                *(
                    backend.put("memos/run/0/key", value, if_absent=True)
                    for backend, value in zip(backends, values, strict=True)
                )
            )
            sent = proxy.records_since(mark)
            assert won.count(True) == 1, won
            stored = await backends[0].get("memos/run/0/key")
            assert stored == values[won.index(True)]
        finally:
            for backend in backends:
                await backend.aclose()
    # Plain PutObjects only (a creator may send its again after a 409 conflict):
    # no part uploads, no CompleteMultipartUpload. One of them stored the value.
    assert {(record.method, urllib.parse.urlsplit(record.target).query) for record in sent} == {
        ("PUT", "")
    }
    assert len(sent) >= CREATORS
    assert [record.status for record in sent].count(200) == 1
