"""A layout "0.10" sweep: never a silent zero, and how ``auto`` finds the expired runs' entries.

Markers are planted as raw objects, named as the crate's format strings name
them: ``{prefix}/terminals/{terminal_at_ms:020}_{run_id}`` (0.5.0) and
``{prefix}/terminals/{u64::MAX - terminal_at_ms:020}_{run_id}`` (0.6.0 to 0.10.0).
"""

from __future__ import annotations

import logging

import pytest
from taquba_memo import MemoBackend, MemoStore

U64_MAX = 2**64 - 1
PREFIX = "wf"
CUTOFF = 1_700_000_000_000
YEAR = 365 * 86_400_000


def marker_key(layout: str, run_id: str, terminal_at_ms: int) -> str:
    field = terminal_at_ms if layout == "0.5" else U64_MAX - terminal_at_ms
    return f"{PREFIX}/terminals/{field:020}_{run_id}"


async def plant_markers(backend: MemoBackend, layout: str, runs: int, at: int) -> None:
    for i in range(runs):
        await backend.put(marker_key(layout, f"run-{i:05}", at + i), b"")


def layout_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "layout=" in r.getMessage()]


@pytest.mark.parametrize(("store_layout", "markers_layout"), [("0.10", "0.5"), ("0.5", "0.10")])
async def test_a_sweep_that_meets_only_the_other_layouts_markers_warns_once_naming_it(
    backend: MemoBackend,
    caplog: pytest.LogCaptureFixture,
    store_layout: str,
    markers_layout: str,
) -> None:
    """0.5 names sort before the cutoff's key of a 0.10 listing and are never listed:
    an empty answer there reads the first marker (one page) before it says zero."""
    await plant_markers(backend, markers_layout, 3, CUTOFF - YEAR)
    store = MemoStore(backend, PREFIX, layout=store_layout)
    with caplog.at_level(logging.WARNING, logger="taquba_memo"):
        report = await store.sweep(CUTOFF)
        dry_run = await store.sweep(CUTOFF, dry_run=True)
    assert report.runs_cleared_count == dry_run.runs_cleared_count == 0
    [warning] = layout_warnings(caplog)
    assert f"layout {markers_layout!r}" in warning
    assert f"layout={markers_layout!r}" in warning


async def test_a_010_sweep_with_nothing_expired_over_its_own_markers_is_quiet(
    backend: MemoBackend, caplog: pytest.LogCaptureFixture
) -> None:
    await plant_markers(backend, "0.10", 3, CUTOFF + 1)
    with caplog.at_level(logging.WARNING, logger="taquba_memo"):
        report = await MemoStore(backend, PREFIX, layout="0.10").sweep(CUTOFF)
    assert (report.runs_cleared_count, report.strategy) == (0, "none")
    assert layout_warnings(caplog) == []


async def test_auto_lists_a_small_expired_set_of_layout_010_per_run(backend: MemoBackend) -> None:
    """The expired markers are all the listing holds: under 1000 expired runs, one
    listing per run costs what the expired set costs, whatever the fleet's size."""
    await plant_markers(backend, "0.10", 30, CUTOFF - YEAR)
    await plant_markers(backend, "0.10", 5, CUTOFF)
    report = await MemoStore(backend, PREFIX, layout="0.10").sweep(CUTOFF)
    assert (report.runs_cleared_count, report.strategy, report.scans) == (30, "per-run", 0)


async def test_auto_scans_for_a_layout_010_chunk_of_a_thousand_expired_runs(
    backend: MemoBackend,
) -> None:
    await plant_markers(backend, "0.10", 1000, CUTOFF - YEAR)
    report = await MemoStore(backend, PREFIX, layout="0.10").sweep(CUTOFF)
    assert (report.runs_cleared_count, report.strategy, report.scans) == (1000, "scan", 1)
