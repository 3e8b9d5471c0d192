"""store.stats: what a store did, counted in process without OpenTelemetry (async and sync)."""

from __future__ import annotations

import threading

import pytest
from taquba_memo import InMemoryBackend, JSONCodec, Memo, MemoStats, MemoStore
from taquba_memo import sync as memo_sync


async def test_a_new_store_has_counted_nothing(store: MemoStore) -> None:
    stats = store.stats
    assert isinstance(stats, MemoStats)
    assert stats.snapshot().lookups == 0
    assert stats.hit_ratio == 0.0


async def test_get_or_compute_counts_hits_misses_and_paid_computes(
    store: MemoStore, memo: Memo
) -> None:
    for _ in range(3):
        await memo.get_or_compute("k", lambda: {"answer": 42}, codec=JSONCodec())
    stats = store.stats.snapshot()
    assert (stats.lookups, stats.hits, stats.misses, stats.computes) == (3, 2, 1, 1)
    assert stats.compute_seconds > 0
    assert stats.puts == 1
    assert stats.bytes_written == len(b'{"answer":42}')
    assert stats.bytes_read == 2 * stats.bytes_written
    assert stats.hit_ratio == pytest.approx(2 / 3)


async def test_get_and_put_count_lookups_and_bytes(store: MemoStore, memo: Memo) -> None:
    assert await memo.get("k") is None
    await memo.put("k", b"abc")
    assert await memo.get("k") == b"abc"
    stats = store.stats.snapshot()
    assert (stats.lookups, stats.hits, stats.misses, stats.computes) == (2, 1, 1, 0)
    assert (stats.puts, stats.bytes_written, stats.bytes_read) == (1, 3, 3)


async def test_a_failing_fn_counts_as_a_paid_compute_and_a_failure(store: MemoStore) -> None:

    def broken() -> bytes:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        await store.new_memo("run", 0).get_or_compute("k", broken)
    stats = store.stats.snapshot()
    assert (stats.computes, stats.failures, stats.backend_errors, stats.puts) == (1, 1, 0, 0)


async def test_reset_sets_every_counter_back_to_zero(store: MemoStore) -> None:
    await store.new_memo("run", 0).get_or_compute("k", lambda: b"v")
    store.stats.reset()
    assert store.stats.snapshot() == MemoStats().snapshot()


def test_the_sync_store_shares_its_async_stores_stats(sync_store: memo_sync.MemoStore) -> None:
    memo = sync_store.new_memo("run", 0)
    assert memo.get_or_compute("k", lambda: b"v") == b"v"
    assert memo.get_or_compute("k", lambda: b"v") == b"v"
    assert (sync_store.stats.hits, sync_store.stats.misses, sync_store.stats.computes) == (1, 1, 1)


def test_threads_counting_at_once_lose_no_update() -> None:
    stats = MemoStats()

    def count() -> None:
        for _ in range(2_000):
            stats.add(lookups=1, hits=1)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert (stats.lookups, stats.hits) == (16_000, 16_000)


async def test_stores_count_separately() -> None:
    backend = InMemoryBackend()
    first, second = MemoStore(backend), MemoStore(backend)
    await first.new_memo("run", 0).put("k", b"v")
    await second.new_memo("run", 0).get("k")
    assert (first.stats.puts, first.stats.lookups) == (1, 0)
    assert (second.stats.puts, second.stats.lookups) == (0, 1)
