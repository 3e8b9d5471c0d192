"""A bucket in the layout of taquba-workflow 0.6.0 to 0.10.0, on every adapter and server.

The bucket is planted by the test with objects named exactly as the crate's
format strings name them (see tests/core/test_layout_010_store.py), never by
the code under test. A sweep and a run clear of a ``layout="0.10"`` store
remove exactly the expired runs' memos, step outputs and markers.

Then the cost of finding the expired markers, counted by the proxy: over N
markers of which M expired, a 0.10 sweep reads ceil(M/page) listing pages of
markers where the adapter offers ``list_after`` (and every marker's page
where it cannot start a listing after a key: Azure), while a 0.5 sweep's
``auto`` reads on past the cutoff, up to 99 unexpired markers per expired
one: ceil(min(N, 100*M)/page) pages.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from taquba_memo import MemoBackend, MemoStore
from taquba_memo.backend import lists_after

from ..core.test_layout_010_store import CUTOFF, DAY, PREFIX, U64_MAX, plant_run
from .adapters import Adapter, Seen
from .test_retention_request_counts import LIST_PAGE, PAGE, SETTLE_S, assert_only_moto_races, fill

pytestmark = pytest.mark.timeout(900)


async def all_keys(backend: MemoBackend) -> set[str]:
    return {key async for key in backend.list("")}


async def test_a_bucket_planted_in_the_010_form_is_swept_and_cleared_exactly(
    adapter: Adapter,
) -> None:
    direct = adapter.direct()
    try:
        planted = {
            "old-a": await plant_run(direct, "old-a", CUTOFF - 365 * DAY),
            "old-b": await plant_run(direct, "old-b", CUTOFF - 1, memos=1, step_outputs=4),
            "edge": await plant_run(direct, "edge", CUTOFF),  # at the cutoff: not expired
            "new": await plant_run(direct, "new", CUTOFF + DAY),
            "new-2": await plant_run(direct, "new-2", CUTOFF + DAY),  # "new" is its prefix
            "running": await plant_run(direct, "running", None),
        }
        async with MemoStore(adapter.counted(), PREFIX, layout="0.10") as store:
            report = await store.sweep(CUTOFF)
            assert report.ok
            assert sorted(report.runs_cleared) == ["old-a", "old-b"]
            assert report.entries_deleted == (3 + 2) + (1 + 4)  # memos and step outputs
            kept = set().union(*(keys for run, keys in planted.items() if run[:3] != "old"))
            assert await all_keys(direct) == kept

            assert await store.clear_memos_for_run("new") == 3 + 2
            new_marker = f"{PREFIX}/terminals/{U64_MAX - (CUTOFF + DAY):020}_new"
            assert await all_keys(direct) == kept - planted["new"] | {new_marker}
    finally:
        await direct.aclose()


# Just over one listing page of markers, few expired: the rule shows as 1 page against 2
# (BENCHMARKS.md has N=3,000 with M=30 and 1,000). The per-page rule needs no more.
MARKERS = 1_100
EXPIRED = (30,)
# moto, fake-gcs-server and Azurite; Ceph RGW pages as moto does. obstore's GCS and Azure
# listings are one page here whatever the layout, so they would show nothing.
COUNTED_ADAPTERS = ("obstore-s3", "minio", "gcs", "azure")


def marker_key(layout: str, index: int) -> str:
    """Marker ``index``, ended at an even ms: below ``cutoff(M)`` for every index < M."""
    at = CUTOFF + 2 * index
    field = at if layout == "0.5" else U64_MAX - at
    return f"{layout}/terminals/{field:020}_run-{index:05}"


def cutoff(expired: int) -> int:
    """An odd ms: no marker sits at exactly the cutoff (one would be listed with the expired)."""
    return CUTOFF + 2 * expired - 1


def marker_pages(adapter: Adapter, layout: str, expired: int) -> int:
    """Listing pages of markers a sweep of MARKERS markers, ``expired`` of them expired, reads."""
    page = LIST_PAGE.get(adapter.name, PAGE)
    if layout == "0.5":  # auto reads on up to 99 unexpired markers per expired one
        return math.ceil(min(MARKERS, 100 * expired) / page)
    if lists_after(adapter.direct()):
        return math.ceil(expired / page)
    return math.ceil(MARKERS / page)  # every marker listed, those before the cutoff's key skipped


@pytest.mark.parametrize("layout", ["0.5", "0.10"])
async def test_a_sweep_reads_the_marker_pages_of_its_layouts_rule(
    adapter: Adapter, layout: str
) -> None:
    if adapter.name not in COUNTED_ADAPTERS or adapter.s3_server != "moto":
        pytest.skip("counted on moto, fake-gcs-server and Azurite")
    keys = [marker_key(layout, index) for index in range(MARKERS)]
    direct = adapter.direct()
    try:
        await fill(direct, keys)
        backend = adapter.counted()
        async with MemoStore(backend, layout, layout=layout) as store:
            await backend.get(keys[0])  # first-use work (connections) out of the count
            for expired in EXPIRED:
                await fill(direct, keys[:expired])  # the markers the last sweep deleted
                seen = Seen(adapter.proxy)
                report = await store.sweep(cutoff(expired))
                await asyncio.sleep(SETTLE_S)
                assert_only_moto_races(adapter, seen)
                assert report.ok
                assert report.runs_cleared_count == expired
                listed = seen.answered().get("list-markers", 0)
                print(f"{adapter.name} layout {layout} N={MARKERS} M={expired}: {listed} pages")
                assert listed == marker_pages(adapter, layout, expired)
    finally:
        await direct.aclose()
