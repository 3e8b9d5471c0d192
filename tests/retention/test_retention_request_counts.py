"""How many HTTP requests each adapter sends for get, put, clear and sweep.

Counted by a proxy on 127.0.0.1 between the adapter and its emulator; no
timing is involved, so the counts are exact. The targets: get and put send
one request; clearing N entries lists ceil(N/1000) pages and deletes in
ceil(N/B) batches (B the adapter's ``max_delete_batch``); a sweep on an
ordered listing reads the markers' pages only up to the first unexpired
marker, at most ceil(expired/1000)+1 pages; a sweep deletes the entries of R
expired runs of E entries in ceil(R*E/B) + ceil(R/B) requests (shared batches,
markers in batches too) and lists them in R listings (per-run) or
ceil(N/1000) pages (one scan of N entries). Where an emulator forces an
adapter off that path, the expected count says so and why.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable

import pytest
from taquba_memo import MemoBackend, MemoStore, SweepStrategy
from taquba_memo import _layout as layout

from .adapters import Adapter, Seen

pytestmark = pytest.mark.timeout(900)

# Every count below is per page or per batch: a page past the first is one more
# listing request with the last page's continuation, a batch one more delete of
# up to B keys. So one full page and a bit (1,001 entries, 1,100 markers: two
# pages each, the last a short one, and two S3 batches of 1000 and 1) proves
# the same rules as 2,500 did, with half the objects to write.
ENTRIES = 1_001
MARKERS = 1_100
EXPIRED = 30
ENTRIES_PER_EXPIRED = 2
PAGE = 1000
SETTLE_S = 0.5

# clear_memos_for_run of ENTRIES entries.
CLEAR_REQUESTS: dict[str, dict[str, int]] = {
    "obstore-s3": {"list": 2, "batch": 2},  # DeleteObjects, 1000 keys each
    "minio": {"list": 2, "batch": 2},
    "azure": {"list": 2, "batch": math.ceil(ENTRIES / 256)},  # Blob Batch, 256 each
    # obstore asks for no page size, so Azurite answers with its default of 5000 names.
    "obstore-azure": {"list": 1, "batch": math.ceil(ENTRIES / 256)},
    # fake-gcs-server has no batch endpoint: GCSBackend deletes one request per key
    # (it learned that at its first delete_many, see the GCS test below).
    "gcs": {"list": 2, "delete": ENTRIES},
    # obstore has no GCS batch delete at all; fake-gcs-server's XML listing is one page.
    "obstore-gcs": {"list": 1, "delete": ENTRIES},
}

# Sweeps over MARKERS markers: three cohorts of EXPIRED runs with
# ENTRIES_PER_EXPIRED entries each, swept one cohort at a time (per-run, then
# scan, then auto), and LIVE_ENTRIES entries of unexpired runs that a scan
# passes over ("live-" sorts before "old").
LIVE_RUNS = 10
LIVE_ENTRIES = 1_000
COHORTS: tuple[SweepStrategy, ...] = ("per-run", "scan", "auto")

# Keys per listing page: obstore asks Azure for no page size (Azurite answers
# 5000), and fake-gcs-server's XML listing for obstore is one page.
LIST_PAGE: dict[str, int] = {"obstore-azure": 5000, "obstore-gcs": 10**9}

# Adapters whose emulator takes no batch delete: every key is one DELETE
# (fake-gcs-server has no batch endpoint; obstore has no GCS batch delete).
SINGLE_DELETES = ("gcs", "obstore-gcs")

# A get of a missing entry. fake-gcs-server's 404 does not say whether the object
# or the bucket is missing, so GCSBackend asks for the bucket once (on GCS the
# message says "No such object" and no second request is sent). The SDK's own
# background bucket lookups are off on the adapter's client (no environment
# variable is set here), or they would add one more after every 404.
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
        memo = store.new_memo("run-1", 0)
        proxy = adapter.proxy

        async def requests_of(operation: Awaitable[object]) -> dict[str, int]:
            before = proxy.counts()
            await operation
            # An SDK's background requests land after the call returns: wait for them.
            await asyncio.sleep(SETTLE_S)
            return (proxy.counts() - before).by_kind

        # The first call of a fresh client too: no metadata lookup of its own.
        assert await requests_of(memo.put("answer", b"42")) == {"put": 1}
        assert await requests_of(memo.put("answer", b"43")) == {"put": 1}
        assert await requests_of(memo.get("answer")) == {"get": 1}
        expected = GET_MISS_REQUESTS.get(adapter.name, {"get": 1})
        assert await requests_of(memo.get("never-written")) == expected
        assert await requests_of(memo.get("never-written-2")) == expected
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


def cohort_run(cohort: int, index: int) -> str:
    return f"old{cohort}-{index:03d}"


def sweep_objects() -> list[str]:
    keys = [
        layout.terminal_marker_key("sweep", f"live-{i:05d}", 2_000_000_000_000 + i)
        for i in range(MARKERS - len(COHORTS) * EXPIRED)
    ]
    keys += [
        layout.memo_key("sweep", f"live-{i % LIVE_RUNS:05d}", 0, f"k{i}")
        for i in range(LIVE_ENTRIES)
    ]
    for cohort in range(len(COHORTS)):
        for i in range(EXPIRED):
            run_id = cohort_run(cohort, i)
            keys.append(layout.terminal_marker_key("sweep", run_id, cohort_cutoff(cohort) - 1))
            keys += [
                layout.memo_key("sweep", run_id, step, "answer")
                for step in range(ENTRIES_PER_EXPIRED)
            ]
    return keys


def cohort_cutoff(cohort: int) -> int:
    return 1_000_000_000_000 + 1000 * (cohort + 1)


def pages(adapter: Adapter, keys: int) -> int:
    return math.ceil(keys / LIST_PAGE.get(adapter.name, PAGE))


async def test_sweeps_delete_across_runs_in_shared_batches_with_either_strategy(
    adapter: Adapter,
) -> None:
    direct = adapter.direct()
    try:
        await fill(direct, sweep_objects())
    finally:
        await direct.aclose()

    backend = adapter.counted()
    batch = backend.capabilities.max_delete_batch
    async with MemoStore(backend, "sweep") as store:
        await warm_up(backend)
        for cohort, strategy in enumerate(COHORTS):
            markers_left = MARKERS - cohort * EXPIRED
            entries_left = LIVE_ENTRIES + (len(COHORTS) - cohort) * EXPIRED * ENTRIES_PER_EXPIRED
            seen = Seen(adapter.proxy)
            report = await store.sweep(cohort_cutoff(cohort), strategy=strategy)
            counts = seen.answered()

            assert_only_moto_races(adapter, seen)
            assert report.ok
            assert sorted(report.runs_cleared) == [cohort_run(cohort, i) for i in range(EXPIRED)]
            assert report.entries_deleted == EXPIRED * ENTRIES_PER_EXPIRED

            # The floor: ceil(R*E/B) + ceil(R/B) deletes, in shared batches.
            deletes = math.ceil(EXPIRED * ENTRIES_PER_EXPIRED / batch) + math.ceil(EXPIRED / batch)
            if adapter.name in SINGLE_DELETES:
                assert counts.get("delete") == EXPIRED * (ENTRIES_PER_EXPIRED + 1)
                assert "batch" not in counts
            else:
                assert counts.get("batch") == deletes == 2
                assert "delete" not in counts
            assert report.delete_requests == deletes

            # The listings: R of one run each, or one scan of ceil(N/1000) pages,
            # and auto picks the scan here, as min(R, ceil(N/1000)) wants.
            scan_pages = pages(adapter, entries_left)
            if strategy == "per-run":
                assert report.strategy == "per-run"
                assert counts["list"] == report.run_listings == EXPIRED
            else:
                assert report.strategy == "scan"
                assert report.scans == 1
                assert report.run_listings == 0
                assert counts["list"] == scan_pages == min(EXPIRED, scan_pages)

            # Markers: read up to the first unexpired one (one page), except that
            # auto reads on (up to 99 unexpired per expired marker) to learn
            # that at least 1% of all markers expired.
            if strategy == "auto":
                assert counts["list-markers"] == pages(adapter, markers_left)
                assert report.markers_listed == markers_left
            else:
                assert counts["list-markers"] == 1 <= math.ceil(EXPIRED / PAGE) + 1
            assert math.ceil(MARKERS / PAGE) > 1
            assert set(counts) <= {"list", "list-markers", "batch", "delete"}

        assert len(await store.list_terminal_markers()) == MARKERS - len(COHORTS) * EXPIRED
        assert len([k async for k in backend.list("sweep/memos/")]) == LIVE_ENTRIES


async def test_entries_with_sizes_and_times_come_from_the_listing_alone(
    adapter: Adapter,
) -> None:
    direct = adapter.direct()
    try:
        await fill(direct, [layout.memo_key("sizes", "run-1", step, "k") for step in range(3)])
        await direct.put(layout.memo_key("sizes", "run-1", 3, "big"), b"x" * 5000)
    finally:
        await direct.aclose()

    backend = adapter.counted()
    async with MemoStore(backend, "sizes") as store:
        await warm_up(backend)
        assert store.lists_metadata
        seen = Seen(adapter.proxy)
        entries = [entry async for entry in store.iter_entries(with_metadata=True)]
        counts = seen.answered()

    assert [entry.size for entry in entries] == [1, 1, 1, 5000]
    assert all(entry.last_modified is not None for entry in entries)
    assert counts == {"list": 1}  # no GET, no HEAD: the listing page carries it all


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
