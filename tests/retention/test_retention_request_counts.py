"""How many HTTP requests each adapter sends for get, put, clear and sweep (issue 8).

Counted by a proxy on 127.0.0.1 between the adapter and its emulator; no
timing is involved, so the counts are exact. The targets: get and put send
one request; clearing N entries lists ceil(N/1000) pages and deletes in
ceil(N/B) batches (B the adapter's ``max_delete_batch``); a sweep on an
ordered listing reads the markers' pages only up to the first unexpired
marker, at most ceil(expired/1000)+1 pages. Where an emulator forces an
adapter off that path, the expected count says so and why.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

import pytest
from taquba_memo import MemoBackend, MemoStore, layout

from .adapters import Adapter, Seen

pytestmark = pytest.mark.timeout(900)

ENTRIES = 2_500
MARKERS = 2_500
EXPIRED = 30
ENTRIES_PER_EXPIRED = 2
PAGE = 1000

# clear_memos_for_run of ENTRIES entries.
CLEAR_REQUESTS: dict[str, dict[str, int]] = {
    "obstore-s3": {"list": 3, "batch": 3},  # DeleteObjects, 1000 keys each
    "minio": {"list": 3, "batch": 3},
    "azure": {"list": 3, "batch": math.ceil(ENTRIES / 256)},  # Blob Batch, 256 each
    # obstore asks for no page size, so Azurite answers with its default of 5000 names.
    "obstore-azure": {"list": 1, "batch": math.ceil(ENTRIES / 256)},
    # fake-gcs-server has no batch endpoint: GCSBackend deletes one request per key
    # (it learned that at its first delete_many, see the GCS test below).
    "gcs": {"list": 3, "delete": ENTRIES},
    # obstore has no GCS batch delete at all; fake-gcs-server's XML listing is one page.
    "obstore-gcs": {"list": 1, "delete": ENTRIES},
}

# A sweep over MARKERS markers, EXPIRED of them expired with ENTRIES_PER_EXPIRED
# entries each: one page of markers (the first unexpired marker is on it), then
# per expired run one listing of its entries, their deletes and the marker's.
SWEEP_REQUESTS: dict[str, dict[str, int]] = {
    # obstore sends even a single delete as a one-key DeleteObjects / Blob Batch.
    "obstore-s3": {"list-markers": 1, "list": EXPIRED, "batch": 2 * EXPIRED},
    "obstore-azure": {"list-markers": 1, "list": EXPIRED, "batch": 2 * EXPIRED},
    "minio": {"list-markers": 1, "list": EXPIRED, "batch": EXPIRED, "delete": EXPIRED},
    "azure": {"list-markers": 1, "list": EXPIRED, "batch": EXPIRED, "delete": EXPIRED},
    "gcs": {
        "list-markers": 1,
        "list": EXPIRED,
        "delete": EXPIRED * (ENTRIES_PER_EXPIRED + 1),
    },
    "obstore-gcs": {
        "list-markers": 1,
        "list": EXPIRED,
        "delete": EXPIRED * (ENTRIES_PER_EXPIRED + 1),
    },
}

# A get of a missing entry. fake-gcs-server's 404 does not say whether the object
# or the bucket is missing, so GCSBackend asks for the bucket once (on GCS the
# message says "No such object" and no second request is sent).
GET_MISS_REQUESTS: dict[str, dict[str, int]] = {"gcs": {"get": 1, "other": 1}}


def assert_only_moto_races(adapter: Adapter, seen: Seen) -> None:
    """Server errors are allowed only where moto's listing races a delete (see Seen)."""
    errors = seen.server_errors()
    assert adapter.proxy.failures == []  # the proxy itself never failed a request
    if adapter.name not in ("obstore-s3", "minio") or adapter.s3_server != "moto":
        assert errors == []
    assert all(error.kind in ("list", "list-markers") for error in errors), errors


async def fill(backend: MemoBackend, keys: Iterable[str], value: bytes = b"v") -> None:
    semaphore = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with semaphore:
            await backend.put(key, b"" if "/terminals/" in key else value)

    await asyncio.gather(*(put(key) for key in keys))


async def warm_up(backend: MemoBackend) -> None:
    """First-use work (connections, GCSBackend learning that batches are refused)."""
    await backend.put("warm-up/key", b"x")
    await backend.get("warm-up/key")
    await backend.delete_many(["warm-up/key"])


async def test_get_and_put_send_one_request_each(adapter: Adapter) -> None:
    backend = adapter.counted()
    async with MemoStore(backend, "counts") as store:
        await warm_up(backend)
        memo = store.new_memo("run-1", 0)
        proxy = adapter.proxy

        before = proxy.counts()
        assert await memo.put("answer", b"42")
        assert (proxy.counts() - before).by_kind == {"put": 1}

        before = proxy.counts()
        assert await memo.put("answer", b"43")
        assert (proxy.counts() - before).by_kind == {"put": 1}

        before = proxy.counts()
        assert await memo.get("answer") == b"43"
        assert (proxy.counts() - before).by_kind == {"get": 1}

        before = proxy.counts()
        assert await memo.get("never-written") is None
        expected = GET_MISS_REQUESTS.get(adapter.name, {"get": 1})
        assert (proxy.counts() - before).by_kind == expected
        assert proxy.failures == []


async def test_clear_lists_the_run_once_and_deletes_in_batches(adapter: Adapter) -> None:
    direct = adapter.direct()
    try:
        await fill(
            direct,
            (layout.memo_key("clear", "big-run", i // 100, f"k{i}") for i in range(ENTRIES)),
        )
        await fill(direct, [layout.memo_key("clear", "big-run-2", 0, "neighbour")])
    finally:
        await direct.aclose()

    backend = adapter.counted()
    async with MemoStore(backend, "clear") as store:
        await warm_up(backend)
        seen = Seen(adapter.proxy)
        cleared = await store.clear_memos_for_run("big-run")
        counts = seen.answered()

        # First: a request the server failed or never answered explains a short count.
        assert_only_moto_races(adapter, seen)
        assert cleared == ENTRIES
        assert counts == CLEAR_REQUESTS[adapter.name]
        batch = backend.capabilities.max_delete_batch
        if "batch" in counts:  # the target, where the store takes batches
            assert counts["list"] <= math.ceil(ENTRIES / PAGE)
            assert counts["batch"] == math.ceil(ENTRIES / batch)
        # The neighbouring run "big-run-2" shares the prefix "big-run" but not "big-run/".
        assert await store.new_memo("big-run-2", 0).get("neighbour") == b"v"


async def test_sweep_lists_markers_only_up_to_the_first_unexpired_one(adapter: Adapter) -> None:
    keys = [
        layout.terminal_marker_key("sweep", f"live-{i:05d}", 2_000_000_000_000 + i)
        for i in range(MARKERS - EXPIRED)
    ]
    for i in range(EXPIRED):
        keys.append(layout.terminal_marker_key("sweep", f"old-{i:03d}", 1_000_000_000_000 + i))
        keys += [
            layout.memo_key("sweep", f"old-{i:03d}", step, "answer")
            for step in range(ENTRIES_PER_EXPIRED)
        ]
    direct = adapter.direct()
    try:
        await fill(direct, keys)
    finally:
        await direct.aclose()

    backend = adapter.counted()
    async with MemoStore(backend, "sweep") as store:
        await warm_up(backend)
        seen = Seen(adapter.proxy)
        report = await store.sweep(1_500_000_000_000)
        counts = seen.answered()

        assert_only_moto_races(adapter, seen)
        assert report.ok
        assert len(report.runs_cleared) == EXPIRED
        assert report.entries_deleted == EXPIRED * ENTRIES_PER_EXPIRED
        assert counts == SWEEP_REQUESTS[adapter.name]
        assert counts["list-markers"] <= math.ceil(EXPIRED / PAGE) + 1
        # Without the early stop the markers alone would take ceil(MARKERS/1000) pages.
        assert math.ceil(MARKERS / PAGE) > counts["list-markers"]
        remaining = await store.list_terminal_markers()
        assert len(remaining) == MARKERS - EXPIRED


@pytest.mark.parametrize("adapter", ["gcs"], indirect=True)
async def test_gcs_tries_one_batch_then_deletes_singly_where_batches_are_refused(
    adapter: Adapter,
) -> None:
    backend = adapter.counted()
    try:
        await fill(backend, ["a/1", "a/2", "a/3", "b/1", "b/2"])
        before = adapter.proxy.counts()
        await backend.delete_many(["a/1", "a/2", "a/3"])
        assert (adapter.proxy.counts() - before).by_kind == {"batch": 1, "delete": 3}

        before = adapter.proxy.counts()
        await backend.delete_many(["b/1", "b/2"])
        assert (adapter.proxy.counts() - before).by_kind == {"delete": 2}
    finally:
        await backend.aclose()
