"""A sweep stopped midway (cancelled by its scheduler) leaves work the next sweep finishes.

The order is the guarantee: a run's memos are cleared before its marker is
deleted, so whatever moment the sweep stops at, no memo outlives its marker,
and the next sweep clears what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from taquba_memo import MemoStore
from taquba_memo.backends.memory import InMemoryBackend

RUNS = 24


class SlowDeletes(InMemoryBackend):
    """Deletes take a while, so a cancellation lands in the middle of a sweep."""

    async def delete_many(self, keys: Sequence[str]) -> None:
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
@pytest.mark.parametrize("stop_after_runs", [0, 1, 5, 17])
async def test_a_cancelled_sweep_leaves_no_memo_without_its_marker(stop_after_runs: int) -> None:
    store = MemoStore(SlowDeletes(), "p")
    for i in range(RUNS):
        await store.write_terminal_marker(f"run-{i:02d}", 1_000 + i)
        for step in range(3):
            await store.new_memo(f"run-{i:02d}", step).put("answer", b"42")

    finished = asyncio.Event()
    done: list[str] = []

    def progress(marker: object, _deleted: int) -> None:
        done.append(str(marker))
        if len(done) >= stop_after_runs:
            finished.set()

    sweep = asyncio.create_task(store.sweep(10_000, concurrency=4, on_run_done=progress))
    if stop_after_runs:
        await asyncio.wait_for(finished.wait(), timeout=30)
    sweep.cancel()
    try:
        await sweep
    except asyncio.CancelledError:
        pass
    else:
        pytest.fail("the sweep finished before it was cancelled")

    markers = {marker.run_id for marker in await store.list_terminal_markers()}
    assert await runs_with_memos(store) <= markers  # no memo outlived its marker
    assert len(markers) < RUNS or stop_after_runs == 0

    report = await store.sweep(10_000)
    assert report.ok
    assert await store.list_terminal_markers() == []
    assert await runs_with_memos(store) == set()
