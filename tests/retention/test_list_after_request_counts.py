"""list_after costs the listing pages of the keys after the start, not of every key.

Counted by the proxy between each adapter and its emulator, as in
test_retention_request_counts: over N keys of which M sort after the start
key, ``list_after`` sends ceil(M/page) listing requests where ``list`` sends
ceil(N/page). That is what a listing of the expired terminal markers of
layout 0.10 (newest first, the expired ones after the cutoff's key) costs.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from taquba_memo.backend import ListsAfter, lists_after

from .adapters import Adapter
from .test_retention_request_counts import LIST_PAGE, PAGE, SETTLE_S, fill

pytestmark = pytest.mark.timeout(900)

KEYS = 3_000
AFTER = (30, 1_001)

# Adapters whose store cannot start a listing after a key: they do not offer it.
NOT_OFFERED: dict[str, str] = {
    "azure": "Azure's List Blobs takes no start key (marker is an opaque continuation)",
    "obstore-azure": "object_store filters an Azure listing itself, after listing it all",
}


async def test_list_after_sends_the_pages_of_the_keys_after_the_start(adapter: Adapter) -> None:
    if adapter.name in NOT_OFFERED:
        backend = adapter.direct()
        assert not lists_after(backend), NOT_OFFERED[adapter.name]
        await backend.aclose()
        return
    keys = [f"after/{i:05d}" for i in range(KEYS)]
    direct = adapter.direct()
    try:
        await fill(direct, keys)
    finally:
        await direct.aclose()
    backend = adapter.counted()
    try:
        assert isinstance(backend, ListsAfter), f"{adapter.name} offers list_after"
        page = LIST_PAGE.get(adapter.name, PAGE)
        proxy = adapter.proxy
        await backend.get(keys[0])  # first-use work (connections) out of the count

        async def listing_requests(start_after: str | None) -> tuple[list[str], int]:
            before = proxy.counts()
            if start_after is None:
                listed = [key async for key in backend.list("after/")]
            else:
                listed = [key async for key in backend.list_after("after/", start_after)]
            await asyncio.sleep(SETTLE_S)
            counts = (proxy.counts() - before).by_kind
            assert set(counts) <= {"list"}, counts
            return listed, counts.get("list", 0)

        listed, everything = await listing_requests(None)
        assert listed == keys
        assert everything == math.ceil(KEYS / page)
        for after in AFTER:
            listed, requests = await listing_requests(keys[KEYS - after - 1])
            assert listed == keys[KEYS - after :]
            assert requests == math.ceil(after / page)
        assert proxy.failures == []
    finally:
        await backend.aclose()
