"""A sweep deletes every object by the exact name it was listed under, never a rebuilt one.

The marker parser accepts a leading ``+`` in the timestamp, as Rust's ``u64``
parse does, so ``+0000000000000000001_run`` is run ``run``'s marker at 1 ms.
Rebuilding its name from the parsed marker gives ``00000000000000000001_run``,
another object: deleting that one leaves the real marker behind forever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend, MemoStore, SweepStrategy

from ..core._cli_support import run_cli

PREFIX = "memo"
SIGNED = "+0000000000000000001_run-plus"
CANONICAL = "00000000000000000001_run-plus"


@pytest.fixture(params=["memory", "local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> MemoBackend:
    if request.param == "memory":
        return InMemoryBackend()
    return LocalFileBackend(tmp_path / "store")


async def keys_in(backend: MemoBackend) -> list[str]:
    return sorted([key async for key in backend.list("")])


async def store_with_a_signed_marker(backend: MemoBackend) -> MemoStore:
    """Run ``run-plus`` (two entries, its marker spelt with a ``+``) and run ``plain``."""
    store = MemoStore(backend, PREFIX)
    for run_id in ("run-plus", "plain"):
        memo = store.new_memo(run_id, 0)
        await memo.put("a", b"1")
        await memo.put("b", b"2")
    await backend.put(f"{PREFIX}/terminals/{SIGNED}", b"")
    await store.write_terminal_marker("plain", 2)
    return store


@pytest.mark.parametrize("strategy", ["auto", "per-run", "scan"])
async def test_every_strategy_deletes_a_signed_marker_under_its_listed_name(
    backend: MemoBackend, strategy: SweepStrategy
) -> None:
    store = await store_with_a_signed_marker(backend)

    report = await store.sweep(10, strategy=strategy)

    assert report.ok
    assert sorted(report.runs_cleared) == ["plain", "run-plus"]
    assert report.entries_deleted == 4
    assert await keys_in(backend) == []


async def test_both_spellings_of_one_marker_are_deleted_and_the_run_counted_once(
    backend: MemoBackend,
) -> None:
    store = await store_with_a_signed_marker(backend)
    await backend.put(f"{PREFIX}/terminals/{CANONICAL}", b"")

    report = await store.sweep(10)

    assert report.runs_cleared_count == 2
    assert await keys_in(backend) == []


async def test_the_dry_run_reports_what_the_sweep_then_does(backend: MemoBackend) -> None:
    store = await store_with_a_signed_marker(backend)

    dry = await store.sweep(10, dry_run=True)
    real = await store.sweep(10)

    assert sorted(dry.runs_cleared) == sorted(real.runs_cleared) == ["plain", "run-plus"]
    assert dry.markers_listed == real.markers_listed == 2
    assert (await store.sweep(10, dry_run=True)).runs_cleared == []


async def test_deleting_a_listed_marker_deletes_the_object_it_was_listed_as(
    backend: MemoBackend,
) -> None:
    store = await store_with_a_signed_marker(backend)

    for marker in await store.list_terminal_markers():
        await store.delete_terminal_marker(marker)

    assert not [key async for key in backend.list(f"{PREFIX}/terminals/")]


def test_the_markers_command_shows_a_signed_marker(tmp_path: Path) -> None:
    root = tmp_path / "store"
    asyncio.run(store_with_a_signed_marker(LocalFileBackend(root)))
    result = run_cli("--json", "--url", root.as_uri(), "--prefix", PREFIX, "markers")

    assert result.code == 0, result.stderr
    assert [(m["run_id"], m["terminal_at_ms"]) for m in result.json()["markers"]] == [
        ("run-plus", 1),
        ("plain", 2),
    ]
