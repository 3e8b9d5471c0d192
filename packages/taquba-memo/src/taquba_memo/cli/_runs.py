"""``taquba-memo runs``: runs and steps with entry counts, sizes, claims and last writes."""

from __future__ import annotations

import argparse
import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from taquba_memo import _layout as layout
from taquba_memo._concurrency import TaskWindow
from taquba_memo._exit_codes import ExitCode
from taquba_memo._iso_time import iso_utc
from taquba_memo._store import MemoStore
from taquba_memo.cli._empty_store import warn_if_empty
from taquba_memo.cli._output import Output, human_bytes, iso_time, plural

__all__ = ["cmd_runs"]


@dataclass
class _StepStats:
    entries: int = 0
    size: int = 0
    last_write: datetime.datetime | None = None
    claims: int = 0


@dataclass
class _RunStats:
    steps: dict[int, _StepStats] = field(default_factory=lambda: defaultdict(_StepStats))
    terminal_at_ms: int | None = None
    step_outputs: int = 0
    """Step-output replay entries of a Rust 0.10 runtime, counted apart from memo entries."""

    @property
    def last_write(self) -> datetime.datetime | None:
        times = [step.last_write for step in self.steps.values() if step.last_write is not None]
        return max(times, default=None)

    @property
    def entries(self) -> int:
        return sum(step.entries for step in self.steps.values())

    @property
    def size(self) -> int:
        return sum(step.size for step in self.steps.values())

    @property
    def claims(self) -> int:
        return sum(step.claims for step in self.steps.values())


@dataclass(frozen=True)
class _Counts:
    """The totals every ``runs`` ends with, per run or streamed alike."""

    runs: int
    steps: int
    entries: int
    size: int
    claims: int
    step_outputs: int

    def document(self, sizes: bool, listed_sizes: bool, unrecognized: int) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "steps": self.steps,
            "entries": self.entries,
            "bytes": self.size if sizes else None,
            "claims": self.claims,
            "step_outputs": self.step_outputs,
            "unrecognized_keys": unrecognized,
            "sizes_from": ("listing" if listed_sizes else "reads") if sizes else None,
        }

    def summary(self, sizes: bool, unrecognized: int, missing_sizes: int) -> str:
        summary = f"{plural(self.runs, 'run')}, {plural(self.steps, 'step')}, "
        summary += plural(self.entries, "entry", "entries")
        if sizes:
            summary += f", {human_bytes(self.size)}"
        if self.step_outputs:
            summary += f", and {plural(self.step_outputs, 'step output')} (layout 0.10)"
        if self.claims:
            summary += f" ({plural(self.claims, 'claim')} of computations in progress or abandoned)"
        if unrecognized:
            summary += f" ({plural(unrecognized, 'unrecognized key')} skipped)"
        if missing_sizes:
            summary += f" ({missing_sizes:,} entries vanished while being measured)"
        return summary


class _PerRun:
    """Every run's and step's figures: the document and the lines ``runs`` prints."""

    def __init__(self) -> None:
        self.runs: dict[str, _RunStats] = defaultdict(_RunStats)

    @property
    def run_count(self) -> int:
        return len(self.runs)

    def step(self, run_id: str, number: int) -> _StepStats:
        return self.runs[run_id].steps[number]

    def step_output(self, run_id: str) -> None:
        self.runs[run_id].step_outputs += 1

    def terminal(self, run_id: str, terminal_at_ms: int) -> None:
        stats = self.runs[run_id]
        stats.terminal_at_ms = max(stats.terminal_at_ms or 0, terminal_at_ms)

    def counts(self) -> _Counts:
        runs = self.runs.values()
        return _Counts(
            runs=len(runs),
            steps=sum(len(stats.steps) for stats in runs),
            entries=sum(stats.entries for stats in runs),
            size=sum(stats.size for stats in runs),
            claims=sum(stats.claims for stats in runs),
            step_outputs=sum(stats.step_outputs for stats in runs),
        )


class _Totals:
    """The summary's figures alone (``--summary-only``), streamed: one counter for every
    step, and the run ids seen, so memory holds a run's id and no document of it.

    Over an ordered listing a step's keys are contiguous, so a change of step
    counts it; over an unordered one the steps seen are kept too.
    """

    def __init__(self, ordered: bool) -> None:
        self.all = _StepStats()
        self.run_ids: set[str] = set()
        self.steps = 0
        self.step_outputs = 0
        self._last: tuple[str, int] | None = None
        self._seen: set[tuple[str, int]] | None = None if ordered else set()

    @property
    def run_count(self) -> int:
        return len(self.run_ids)

    def step(self, run_id: str, number: int) -> _StepStats:
        if (run_id, number) != self._last:
            self._last = (run_id, number)
            self.run_ids.add(run_id)
            if self._seen is None:
                self.steps += 1
            elif (run_id, number) not in self._seen:
                self._seen.add((run_id, number))
                self.steps += 1
        return self.all

    def step_output(self, run_id: str) -> None:
        self.run_ids.add(run_id)
        self.step_outputs += 1

    def terminal(self, run_id: str, terminal_at_ms: int) -> None:
        self.run_ids.add(run_id)

    def counts(self) -> _Counts:
        every = self.all
        return _Counts(
            len(self.run_ids),
            self.steps,
            every.entries,
            every.size,
            every.claims,
            self.step_outputs,
        )


async def cmd_runs(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    run_filter: str | None = args.run_id
    # With --summary-only nothing per run is printed (nor put in the --json document):
    # count as the listing streams by, instead of building a document per run.
    streamed = out.summary_only
    tally: _PerRun | _Totals = (
        _Totals(store.backend.capabilities.ordered_listing) if streamed else _PerRun()
    )
    unrecognized = 0
    missing_sizes = 0

    async def measure(key: str, step: _StepStats) -> None:
        nonlocal missing_sizes
        value = await store.backend.get(key)
        if value is None:
            missing_sizes += 1  # deleted since it was listed
        else:
            step.size += len(value)

    # Sizes and times come with the listing where it carries them; else sizes are read.
    listed_sizes = store.lists_metadata
    window = TaskWindow(args.concurrency)
    label = "reading entries" if args.sizes and not listed_sizes else "listing entries"
    with out.progress(label, unit="entries") as bar:
        out.partial = lambda: (
            {"entries_listed": bar.count, "runs_seen": tally.run_count},
            f"listed {plural(bar.count, 'entry', 'entries')} of {plural(tally.run_count, 'run')}",
        )
        try:
            async for entry in store.iter_entries(run_filter, with_metadata=listed_sizes):
                if entry.run_id is None or entry.step_number is None:
                    unrecognized += 1
                    continue
                step = tally.step(entry.run_id, entry.step_number)
                if entry.kind == "claim":
                    step.claims += 1  # of a computation in progress, or abandoned
                    continue
                step.entries += 1
                if entry.last_modified is not None and (
                    step.last_write is None or entry.last_modified > step.last_write
                ):
                    step.last_write = entry.last_modified
                if args.sizes and entry.size is not None:
                    step.size += entry.size
                elif args.sizes:
                    await window.submit(measure(entry.key, step))
                bar.advance()
            await window.drain()
        finally:
            window.cancel()
    step_outputs = layout.step_outputs_prefix(store.prefix)
    listing = (
        step_outputs
        if run_filter is None
        else layout.step_outputs_run_prefix(store.prefix, run_filter)
    )
    async for key in store.backend.list(listing):
        if not (isinstance(key, str) and key.startswith(listing)):
            continue  # a backend's stray, never counted (the store logs such listings)
        parsed = layout.parse_memo_entry_name(key[len(step_outputs) :])  # the same shape
        if parsed is not None:
            tally.step_output(parsed[0])
    async for marker in store.iter_terminal_markers():
        if run_filter is None or marker.run_id == run_filter:
            tally.terminal(marker.run_id, marker.terminal_at_ms)
    if not tally.run_count and not unrecognized:
        await warn_if_empty(store, args.url, out)
    sizes: bool = args.sizes
    counts = tally.counts()
    totals = counts.document(sizes, listed_sizes, unrecognized)
    summary = counts.summary(sizes, unrecognized, missing_sizes)
    if isinstance(tally, _Totals):
        out.result({"totals": totals}, [summary])
        return ExitCode.OK
    runs = tally.runs
    documents: list[dict[str, Any]] = [
        {
            "run_id": run_id,
            "steps": [
                {
                    "step": number,
                    "entries": step.entries,
                    "bytes": step.size if sizes else None,
                }
                for number, step in sorted(stats.steps.items())
            ],
            "entries": stats.entries,
            "bytes": stats.size if sizes else None,
            "claims": stats.claims,
            "step_outputs": stats.step_outputs,
            "terminal_at_ms": stats.terminal_at_ms,
            "terminal_at": None if stats.terminal_at_ms is None else iso_utc(stats.terminal_at_ms),
            "last_write_at": iso_time(stats.last_write),
        }
        for run_id, stats in sorted(runs.items())
    ]
    width = max([3, *(len(run_id) for run_id in runs)])

    def row(run: str, step: str, entries: int, size: int) -> str:
        text = f"{run:<{width}} {step:>6} {entries:>9,}"
        return text + (f" {human_bytes(size):>10}" if sizes else "")

    times = listed_sizes and any(stats.last_write is not None for stats in runs.values())
    lines = []
    if runs:
        lines.append(
            f"{'RUN':<{width}} {'STEP':>6} {'ENTRIES':>9}"
            + (f" {'SIZE':>10}" if sizes else "")
            + (f"  {'LAST WRITE':<24}" if times else "")
            + "  TERMINAL"
        )
    for run_id, stats in sorted(runs.items()):
        if stats.terminal_at_ms is None:
            terminal = "-"
        else:
            terminal = iso_utc(stats.terminal_at_ms) or str(stats.terminal_at_ms)
        last_write = f"  {iso_time(stats.last_write) or '-':<24}" if times else ""
        lines.append(f"{row(run_id, '', stats.entries, stats.size)}{last_write}  {terminal}")
        lines += [
            row("", str(number), step.entries, step.size)
            for number, step in sorted(stats.steps.items())
        ]
    lines.append(summary)
    out.result({"runs": documents, "totals": totals}, lines)
    return ExitCode.OK
