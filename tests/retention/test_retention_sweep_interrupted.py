"""A sweep stopped midway (cancelled by its scheduler) leaves work the next sweep finishes.

The order is the guarantee: a marker is deleted only after every batch that
held its run's memos succeeded, so whatever moment the sweep stops at (here:
while its 1st, 6th or 17th delete request is in flight, with either strategy),
no memo outlives its marker, and the next sweep clears what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from taquba_memo import MemoStore, SweepStrategy
from taquba_memo._backends.memory import InMemoryBackend
from taquba_memo.backend import Capabilities

RUNS = 24


class SlowDeletes(InMemoryBackend):
    """Deletes in batches of 5 that take a while, so a cancellation lands mid-sweep."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.called = asyncio.Event()
        self.stop_after: int | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ordered_listing=True, conditional_put=True, max_delete_batch=5)

    async def delete_many(self, keys: Sequence[str]) -> None:
        self.calls += 1
        if self.calls == self.stop_after:
            self.called.set()
        await asyncio.sleep(0.01)
        await super().delete_many(keys)


async def runs_with_memos(store: MemoStore) -> set[str]:
    runs = set()
    async for key in store.backend.list("p/memos/"):
        runs.add(key.split("/")[2])
    return runs


# Nothing may be left half-made, such as a run's sweep created and never awaited.
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("strategy", ["per-run", "scan"])
@pytest.mark.parametrize("stop_at_delete", [0, 1, 6, 17])
async def test_a_cancelled_sweep_leaves_no_memo_without_its_marker(
    strategy: SweepStrategy, stop_at_delete: int
) -> None:
    backend = SlowDeletes()
    store = MemoStore(backend, "p")
    for i in range(RUNS):
        await store.write_terminal_marker(f"run-{i:02d}", 1_000 + i)
        for step in range(3):
            await store.new_memo(f"run-{i:02d}", step).put("answer", b"42")
    # 72 entries and 24 markers in batches of 5: 15 + 5 delete requests.

    backend.stop_after = stop_at_delete
    sweep = asyncio.create_task(store.sweep(10_000, concurrency=4, strategy=strategy))
    if stop_at_delete:
        await asyncio.wait_for(backend.called.wait(), timeout=30)
    sweep.cancel()
    try:
        await sweep
    except asyncio.CancelledError:
        pass
    else:
        pytest.fail("the sweep finished before it was cancelled")

    markers = {marker.run_id for marker in await store.list_terminal_markers()}
    assert await runs_with_memos(store) <= markers  # no memo outlived its marker
    if stop_at_delete == 17:
        assert len(markers) < RUNS  # some marker batches had been sent

    report = await store.sweep(10_000, strategy=strategy)
    assert report.ok
    assert await store.list_terminal_markers() == []
    assert await runs_with_memos(store) == set()
