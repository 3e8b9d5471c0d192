"""The sweep's two strategies: shared delete batches, their request floors, failures, memory.

Counted on backends that record every call (no HTTP: the adapters' counts
are in test_retention_request_counts.py). With R expired runs of E entries
and batches of B keys, a sweep sends ceil(R*E/B) + ceil(R/B) delete_many
calls, and lists R run prefixes (per-run) or ``memos/`` once (scan).
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import AsyncIterator, Sequence

import pytest
from taquba_memo import (
    BackendError,
    InvalidArgumentError,
    MemoStore,
    SweepReport,
    SweepStrategy,
    TerminalMarker,
)
from taquba_memo import _layout as layout
from taquba_memo._backends.memory import InMemoryBackend
from taquba_memo.backend import Capabilities, MemoBackendBase

BATCH = 10


class Recording(InMemoryBackend):
    """InMemoryBackend with batches of ``BATCH`` keys that records listings and deletes."""

    def __init__(self, *, ordered: bool = True) -> None:
        super().__init__()
        self.ordered = ordered
        self.listed: list[str] = []
        self.delete_calls: list[list[str]] = []
        self.refuse_batches_with: set[str] = set()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ordered_listing=self.ordered, conditional_put=True, max_delete_batch=BATCH
        )

    async def list(self, prefix: str) -> AsyncIterator[str]:
        self.listed.append(prefix)
        async for key in super().list(prefix):
            yield key

    async def delete_many(self, keys: Sequence[str]) -> None:
        self.delete_calls.append(list(keys))
        if self.refuse_batches_with & set(keys):
            raise BackendError("this batch failed as a whole")
        await super().delete_many(keys)

    def memo_listings(self) -> Sequence[str]:
        return [prefix for prefix in self.listed if "/memos/" in prefix]


@pytest.fixture
def backend() -> Recording:
    return Recording()


pytestmark = pytest.mark.store(prefix="p")


async def fleet(
    store: MemoStore, expired: int, entries: int, *, live: int = 0, live_entries: int = 1
) -> None:
    """``expired`` runs with markers at 1..expired, ``live`` runs without one."""
    for i in range(expired):
        for step in range(entries):
            await store.new_memo(f"old-{i:04d}", step).put("k", b"v")
        await store.write_terminal_marker(f"old-{i:04d}", 1 + i)
    for i in range(live):
        for step in range(live_entries):
            await store.new_memo(f"live-{i:04d}", step).put("k", b"v")


async def memo_runs(backend: InMemoryBackend) -> set[str]:
    """The runs that have entries, listed without being recorded."""
    return {key.split("/")[2] async for key in InMemoryBackend.list(backend, "p/memos/")}


@pytest.mark.parametrize("strategy", ["per-run", "scan"])
@pytest.mark.parametrize(("expired", "entries"), [(1, 1), (37, 3), (20, 10), (4, 25)])
async def test_deletes_are_shared_batches_at_the_floor(
    strategy: SweepStrategy, expired: int, entries: int, backend: Recording, store: MemoStore
) -> None:
    await fleet(store, expired, entries, live=3)

    report = await store.sweep(10**6, strategy=strategy)

    floor = math.ceil(expired * entries / BATCH) + math.ceil(expired / BATCH)
    assert len(backend.delete_calls) == report.delete_requests == floor
    assert report.entries_deleted == expired * entries
    assert report.runs_cleared_count == expired
    assert await memo_runs(backend) == {"live-0000", "live-0001", "live-0002"}
    assert await store.list_terminal_markers() == []
    if strategy == "per-run":
        assert len(backend.memo_listings()) == report.run_listings == expired
    else:
        assert list(backend.memo_listings()) == ["p/memos/"]
        assert report.scans == 1


@pytest.mark.parametrize("strategy", ["per-run", "scan"])
async def test_a_failed_batch_fails_only_the_runs_whose_keys_it_held(
    strategy: SweepStrategy, backend: Recording, store: MemoStore
) -> None:
    await fleet(store, 12, 4)  # 48 entries: five batches of 10 keys or fewer
    doomed = layout.memo_key("p", "old-0005", 2, "k")
    backend.refuse_batches_with.add(doomed)

    report = await store.sweep(10**6, strategy=strategy)

    failed_batch = next(keys for keys in backend.delete_calls if doomed in keys)
    touched = {key.split("/")[2] for key in failed_batch}
    assert {failure.marker.run_id for failure in report.failures} == touched
    assert sorted(report.runs_cleared) == sorted({f"old-{i:04d}" for i in range(12)} - touched)
    # Never a memo without its marker: the runs of the failed batch keep theirs.
    markers = {marker.run_id for marker in await store.list_terminal_markers()}
    assert markers == touched
    assert await memo_runs(backend) <= markers

    backend.refuse_batches_with.clear()
    again = await store.sweep(10**6, strategy=strategy)
    assert again.ok
    assert sorted(again.runs_cleared) == sorted(touched)
    assert await memo_runs(backend) == set()


async def test_a_failed_marker_batch_keeps_those_markers_for_the_next_pass(
    backend: Recording, store: MemoStore
) -> None:
    await fleet(store, 15, 1)
    backend.refuse_batches_with.add(layout.terminal_marker_key("p", "old-0012", 13))

    report = await store.sweep(10**6)

    kept = {marker.run_id for marker in await store.list_terminal_markers()}
    assert {failure.marker.run_id for failure in report.failures} == kept
    assert "old-0012" in kept
    assert report.runs_cleared_count == 15 - len(kept)
    assert await memo_runs(backend) == set()  # a marker without memos is only work left over


async def test_auto_scans_when_most_runs_expired(backend: Recording, store: MemoStore) -> None:
    await fleet(store, 30, 2, live=5)
    for i in range(5):
        await store.write_terminal_marker(f"live-{i:04d}", 10**9)

    report = await store.sweep(10**6)

    assert report.strategy == "scan"
    assert backend.memo_listings() == ["p/memos/"]
    assert report.runs_cleared_count == 30
    assert await memo_runs(backend) == {f"live-{i:04d}" for i in range(5)}


async def test_auto_lists_per_run_when_few_runs_expired(
    backend: Recording, store: MemoStore
) -> None:
    await fleet(store, 2, 1)
    for i in range(300):  # 2 expired of 302 markers: under 1%
        await store.write_terminal_marker(f"live-{i:04d}", 10**9 + i)

    report = await store.sweep(10**6)

    assert report.strategy == "per-run"
    assert sorted(backend.memo_listings()) == ["p/memos/old-0000/", "p/memos/old-0001/"]
    # It read on past the cutoff to learn the share, no further than 99 per expired.
    assert report.markers_listed == 2 + 99 * 2 + 1


async def test_auto_stops_a_scan_at_its_budget_and_lists_the_runs_it_had_not_reached(
    backend: Recording, store: MemoStore
) -> None:
    await fleet(store, 3, 2)  # old-0000..old-0002
    for i in range(4000):  # live entries between "old-" and "zz-" in byte order
        await store.new_memo("pending", i).put("k", b"v")
    await store.new_memo("zz-late", 0).put("k", b"v")
    await store.write_terminal_marker("zz-late", 10)

    report = await store.sweep(10**6)

    # Four expired runs: a budget of 4 pages (4,000 keys), spent before "zz-late".
    assert report.strategy == "scan, then per-run"
    assert list(backend.memo_listings()) == ["p/memos/", "p/memos/zz-late/"]
    assert report.runs_cleared_count == 4
    assert await memo_runs(backend) == {"pending"}


async def test_an_explicit_scan_on_an_unordered_backend_reads_the_whole_prefix() -> None:
    backend = Recording(ordered=False)
    store = MemoStore(backend, "p")
    await fleet(store, 5, 2, live=4)

    assert (await store.sweep(10**6)).strategy == "per-run"  # auto never scans unordered
    await fleet(store, 5, 2)
    backend.listed.clear()
    report = await store.sweep(10**6, strategy="scan")

    assert report.strategy == "scan"
    assert backend.memo_listings() == ["p/memos/"]
    assert report.memo_keys_listed == 5 * 2 + 4
    assert await memo_runs(backend) == {f"live-{i:04d}" for i in range(4)}


async def test_a_scan_deletes_everything_under_an_expired_run_as_clear_does(
    backend: Recording, store: MemoStore
) -> None:
    await fleet(store, 1, 1)
    await backend.put("p/memos/old-0000/0/" + "a" * 64 + ".claim.1", b"")
    await backend.put("p/memos/old-0000-retry/0/" + "a" * 64, b"v")  # another run
    await backend.put("p/memos/old-0000", b"stray")  # not under the run's prefix

    report = await store.sweep(10**6, strategy="scan")

    assert report.entries_deleted == 2
    assert sorted([k async for k in backend.list("p/memos/")]) == [
        "p/memos/old-0000",
        "p/memos/old-0000-retry/0/" + "a" * 64,
    ]


@pytest.mark.parametrize("strategy", ["scan", "auto"])
async def test_a_scan_finds_a_run_whose_keys_sort_after_a_longer_ids_keys(
    strategy: SweepStrategy, backend: Recording, store: MemoStore
) -> None:
    # "a/..." sorts after "a-b/..." ("/" > "-"): the scan must not stop at "a-b".
    for run_id in ("a", "a-b"):
        await store.new_memo(run_id, 0).put("k", b"v")
        await store.write_terminal_marker(run_id, 1)

    report = await store.sweep(10, strategy=strategy)

    assert report.entries_deleted == 2
    assert await memo_runs(backend) == set()


async def test_a_run_with_several_expired_markers_is_cleared_once(store: MemoStore) -> None:
    await fleet(store, 1, 3)
    await store.write_terminal_marker("old-0000", 7)
    seen: list[tuple[TerminalMarker, int]] = []

    report = await store.sweep(10**6, on_run_done=lambda m, n: seen.append((m, n)))

    assert report.runs_cleared == ["old-0000"]
    assert sorted(seen) == [(TerminalMarker("old-0000", 1), 3), (TerminalMarker("old-0000", 7), 0)]
    assert await store.list_terminal_markers() == []


async def test_bad_strategy_and_chunk_size_are_refused_before_any_io(
    backend: Recording, store: MemoStore
) -> None:
    with pytest.raises(InvalidArgumentError, match="strategy"):
        await store.sweep(1, strategy="everything")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="max_runs_in_memory"):
        await store.sweep(1, max_runs_in_memory=0)
    assert backend.listed == []


class GeneratedFleet(MemoBackendBase):
    """``runs`` expired runs of one entry each, listed as they are asked for.

    Nothing is stored but one byte per run (deleted or not), so whatever
    memory grows with the fleet is the sweep's.
    """

    def __init__(self, runs: int) -> None:
        self._runs = runs
        self._deleted = bytearray(runs)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ordered_listing=True, conditional_put=False, max_delete_batch=100)

    @staticmethod
    def _entry(i: int) -> str:
        return layout.memo_key("p", f"run-{i:07d}", 0, "k")

    async def list(self, prefix: str) -> AsyncIterator[str]:
        if prefix.startswith("p/terminals/"):
            for i in range(self._runs):
                yield layout.terminal_marker_key("p", f"run-{i:07d}", 1 + i)
        elif prefix == "p/memos/":
            for i in range(self._runs):
                if not self._deleted[i]:
                    yield self._entry(i)
        else:
            i = int(prefix.split("/")[2][len("run-") :])
            if not self._deleted[i]:
                yield self._entry(i)

    async def get(self, key: str) -> bytes | None:
        return None

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            if key.startswith("p/memos/"):
                self._deleted[int(key.split("/")[2][len("run-") :])] = 1

    async def aclose(self) -> None:
        return None


async def sweep_peak(runs: int, strategy: SweepStrategy, chunk: int) -> tuple[int, SweepReport]:
    store = MemoStore(GeneratedFleet(runs), "p")
    gc.collect()
    tracemalloc.start()
    try:
        report = await store.sweep(
            10**9, strategy=strategy, max_runs_in_memory=chunk, record_run_ids=False
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.runs_cleared_count == runs
    assert report.entries_deleted == runs
    return peak, report


@pytest.mark.parametrize("strategy", ["per-run", "scan"])
async def test_memory_is_bounded_by_the_chunk_not_the_fleet(strategy: SweepStrategy) -> None:
    small, _ = await sweep_peak(2_000, strategy, chunk=500)
    large, report = await sweep_peak(20_000, strategy, chunk=500)
    # Ten times the expired runs, about the same peak: one chunk of runs, and
    # ``concurrency`` batches of 100 keys in flight.
    assert large < 1.5 * small
    if strategy == "scan":
        assert report.scans == 40  # one scan per chunk: memory traded for listings

    # The measurement sees growth where there is some: one chunk for every run.
    whole_small, _ = await sweep_peak(2_000, strategy, chunk=10**6)
    whole_large, _ = await sweep_peak(20_000, strategy, chunk=10**6)
    assert whole_large > 5 * whole_small
