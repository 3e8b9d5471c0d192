"""A retention sweep killed with kill -9 at random points, then run again, finishes the work.

Each scenario fills a LocalFileBackend with expired runs (marker below the
cutoff), unexpired runs (marker at or after it, some with ids that extend an
expired run's id) and live runs (no marker). Sweeper processes are then
started and killed with SIGKILL at random moments until one finishes on its
own. After every kill:

* every entry of an unexpired or live run is there, whole and unchanged;
* an expired run whose marker is gone has no entries left (memos are cleared
  before the marker is deleted, so a kill never strands memos without one);
* what is left of an expired run is whole;
* a listing yields only entries and markers, never a staging file.

When the last pass has finished, every expired run is gone, marker and all,
and nothing else was touched. Both strategies are killed: one listing per
expired run, and one scan of every run's memos (which also passes over the
unexpired and live runs it must spare). ``TAQUBA_MEMO_SOAK=1`` runs many more
scenarios.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from taquba_memo import LocalFileBackend, MemoStore
from taquba_memo import _layout as layout

from ..conftest import ReliabilityFigures
from .crash_worker import Entry, decode_value, encode_value

SOAK = os.environ.get("TAQUBA_MEMO_SOAK") == "1"
SCENARIOS = 30 if SOAK else 4
MAX_KILLED_PASSES = 60  # then one pass is left to finish, so the loop is bounded
PREFIX = "sweep/memo"
CUTOFF_MS = 1_800_000_000_000
STEPS = (0, 3)
KEYS_PER_STEP = 30
SECTION = "crash: sweeps killed"
WORKER = Path(__file__).with_name("crash_worker.py")
READY_TIMEOUT_S = 60.0
PASS_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Scenario:
    expired: dict[str, int]  # run id -> terminal_at_ms below the cutoff
    unexpired: dict[str, int]  # run id -> terminal_at_ms at or after the cutoff
    live: list[str]  # runs without a marker

    @property
    def runs(self) -> list[str]:
        return [*self.expired, *self.unexpired, *self.live]

    def entries(self, run_id: str) -> list[Entry]:
        return [Entry(run_id, step, f"key-{k}") for step in STEPS for k in range(KEYS_PER_STEP)]

    def marker_key(self, run_id: str) -> str:
        at = {**self.expired, **self.unexpired}[run_id]
        return layout.terminal_marker_key(PREFIX, run_id, at)


def make_scenario(rng: random.Random) -> Scenario:
    expired = {f"done-{i}": CUTOFF_MS - 1 - rng.randrange(10**9) for i in range(24)}
    unexpired = {f"recent-{i}": CUTOFF_MS + rng.randrange(10**9) for i in range(8)}
    unexpired["recent-at-cutoff"] = CUTOFF_MS  # strictly below expires; equal does not
    for i in range(0, 24, 6):  # ids that start with an expired run's id
        unexpired[f"done-{i}-retry"] = CUTOFF_MS + 1 + i
    return Scenario(expired, unexpired, [f"live-{i}" for i in range(4)])


async def fill(store: MemoStore, scenario: Scenario) -> None:
    for run_id in scenario.runs:
        for entry in scenario.entries(run_id):
            value = encode_value(entry.user_key, 1, 64)
            await store.new_memo(entry.run_id, entry.step).put(entry.user_key, value)
    for run_id, at in {**scenario.expired, **scenario.unexpired}.items():
        await store.write_terminal_marker(run_id, at)


@dataclass
class Snapshot:
    markers: set[str]
    entries: dict[str, int]  # run id -> entries present


async def check(backend: LocalFileBackend, scenario: Scenario, context: str) -> Snapshot:
    """The invariants that hold after any kill; returns what is left."""
    listed = {key async for key in backend.list("")}
    known = {entry.path(PREFIX) for run in scenario.runs for entry in scenario.entries(run)}
    known |= {scenario.marker_key(run) for run in [*scenario.expired, *scenario.unexpired]}
    assert listed <= known, f"{context}: listed what is no entry or marker: {listed - known}"
    snapshot = Snapshot(markers=set(), entries={})
    for run_id in scenario.runs:
        present = 0
        for entry in scenario.entries(run_id):
            data = await backend.get(entry.path(PREFIX))
            if data is not None:
                assert decode_value(entry.user_key, data) == 1, f"{context}: {entry} changed"
                present += 1
        snapshot.entries[run_id] = present
        has_marker = run_id not in scenario.live and scenario.marker_key(run_id) in listed
        if has_marker:
            snapshot.markers.add(run_id)
        if run_id in scenario.expired:
            assert has_marker or present == 0, (
                f"{context}: the marker of expired run {run_id} is gone "
                f"but {present} of its entries are left"
            )
        else:
            assert present == len(scenario.entries(run_id)), (
                f"{context}: run {run_id} is not expired but lost "
                f"{len(scenario.entries(run_id)) - present} entries"
            )
            assert has_marker == (run_id in scenario.unexpired), f"{context}: marker of {run_id}"
    return snapshot


def sigkill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL our own ``process`` by its pid, unless it has already ended."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it ended; not reaped yet
            os.kill(process.pid, signal.SIGKILL)


async def sweep_pass(
    root: Path, strategy: str, kill_after_s: float | None
) -> tuple[bool, dict[str, Any]]:
    """Run one sweeper process; kill it after ``kill_after_s``. True if it finished by itself."""
    config = {
        "root": str(root),
        "prefix": PREFIX,
        "cutoff_ms": CUTOFF_MS,
        "concurrency": 4,
        "strategy": strategy,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), "sweeper", json.dumps(config), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        ready = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)
        assert ready == b"ready\n", f"the sweeper did not start: {ready!r}"
        if kill_after_s is not None:
            await asyncio.sleep(kill_after_s)
            sigkill(process)
        output = await asyncio.wait_for(process.stdout.read(), PASS_TIMEOUT_S)
        code = await asyncio.wait_for(process.wait(), PASS_TIMEOUT_S)
    finally:
        if process.returncode is None:
            sigkill(process)
            await process.wait()
    if code == -signal.SIGKILL:
        return False, {}
    assert code == 0, f"the sweeper failed with exit code {code}"
    return True, json.loads(output)


@pytest.mark.parametrize("strategy", ["per-run", "scan"])
async def test_a_killed_sweep_run_again_finishes_and_spares_unexpired_runs(
    strategy: str, tmp_path: Path, reliability: ReliabilityFigures
) -> None:
    rng = random.Random(f"112526-{strategy}")
    section = f"{SECTION} ({strategy})"
    reliability.note(section, "scenarios", SCENARIOS)
    for number in range(SCENARIOS):
        root = tmp_path / f"scenario-{number}"
        backend = LocalFileBackend(root, durable=False)
        scenario = make_scenario(rng)
        await fill(MemoStore(backend, PREFIX), scenario)
        before = await check(backend, scenario, f"scenario {number} before sweeping")
        finished, passes = False, 0
        report: dict[str, Any] = {}
        while not finished:
            passes += 1
            kill_after = None if passes > MAX_KILLED_PASSES else rng.uniform(0.0, 0.12)
            finished, report = await sweep_pass(root, strategy, kill_after)
            after = await check(backend, scenario, f"scenario {number}, pass {passes}")
            if not finished:
                reliability.add(section, "sweeps_killed")
                if after != before and after.markers & set(scenario.expired):
                    reliability.add(section, "sweeps_killed_mid_work")
            before = after
        reliability.add(section, "scenarios_finished")
        reliability.add(section, "sweep_passes", passes)
        assert report["failures"] == []
        assert set(report["runs_cleared"]) <= set(scenario.expired)
        assert not before.markers & set(scenario.expired), "expired markers left after finishing"
        assert all(before.entries[run] == 0 for run in scenario.expired)
        reliability.add(section, "expired_runs_cleared", len(scenario.expired))
        reliability.add(
            section,
            "unexpired_entries_verified_after_every_kill",
            passes * sum(len(scenario.entries(r)) for r in [*scenario.unexpired, *scenario.live]),
        )
