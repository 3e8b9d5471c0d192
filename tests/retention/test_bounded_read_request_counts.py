"""A bounded read (get_at_most) sends the requests get sends, for every adapter.

Counted by the proxy between the adapter and its emulator, as in
test_retention_request_counts: an object over the bound costs the one
request its get would, refused from the answer's size or cut short at the
bound, never a second request to ask for the size first. Where the
answer's body was cut short, the adapter closed that connection instead of
reading the rest of it.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable

import pytest
from taquba_memo import EntryTooLargeError, MemoStore
from taquba_memo.backend import ReadsBounded, reads_bounded

from .adapters import Adapter
from .test_retention_request_counts import GET_MISS_REQUESTS, SETTLE_S

pytestmark = pytest.mark.timeout(300)

BIG = 300 * 1024  # several 64 KiB chunks: a read that streams must stop within them
BOUND = 1024

# Azure's get of an empty blob sends two requests (its ranged first request answers
# 416, then the SDK asks again without a range); get_at_most takes the 416 as the answer.
GET_EMPTY_REQUESTS: dict[str, dict[str, int]] = {"azure": {"get": 2}}


async def test_get_at_most_sends_the_requests_get_sends(adapter: Adapter) -> None:
    writer = adapter.direct()
    values = {"bounded/big": b"b" * BIG, "bounded/small": b"s" * BOUND, "bounded/empty": b""}
    for key, value in values.items():
        await writer.put(key, value)
    async with MemoStore(writer) as unbounded:  # closes the writer too
        await unbounded.new_memo("run-1", 0).put("too-big", b"x" * BIG)
    backend = adapter.counted()
    assert reads_bounded(backend), f"{adapter.name} offers get_at_most"
    assert isinstance(backend, ReadsBounded)
    proxy = adapter.proxy

    async def requests_of(
        operation: Awaitable[object], *, too_large: bool = False
    ) -> dict[str, int]:
        before = proxy.counts()
        if too_large:
            with pytest.raises(EntryTooLargeError):
                await operation
        else:
            await operation
        await asyncio.sleep(SETTLE_S)  # an SDK's background requests land after the call
        return (proxy.counts() - before).by_kind

    one_get = {"get": 1}
    miss = GET_MISS_REQUESTS.get(adapter.name, one_get)
    try:
        await backend.get("bounded/small")  # first-use work (connections) out of the count
        assert await requests_of(backend.get_at_most("bounded/small", BOUND)) == one_get
        assert (
            await requests_of(backend.get_at_most("bounded/big", BOUND), too_large=True) == one_get
        )
        assert await requests_of(backend.get_at_most("bounded/big", 0), too_large=True) == one_get
        assert await requests_of(backend.get_at_most("bounded/never-written", BOUND)) == miss
        empty = await requests_of(backend.get_at_most("bounded/empty", BOUND))
        assert empty == one_get
        assert await requests_of(backend.get("bounded/empty")) == GET_EMPTY_REQUESTS.get(
            adapter.name, one_get
        )
        # What a store with max_value_bytes sends for an oversized entry: the same one request.
        async with MemoStore(backend, max_value_bytes=BOUND) as store:
            assert (
                await requests_of(store.new_memo("run-1", 0).get("too-big"), too_large=True)
                == one_get
            )
        # The only requests cut short are reads of oversized objects whose client closed
        # the connection instead of reading on (the proxy notes it could not finish them).
        cut_short = [urllib.parse.unquote(failure) for failure in proxy.failures]
        assert all(
            failure.startswith("GET ") and ("bounded/big" in failure or "/run-1/0/" in failure)
            for failure in cut_short
        ), cut_short
    finally:
        await backend.aclose()
