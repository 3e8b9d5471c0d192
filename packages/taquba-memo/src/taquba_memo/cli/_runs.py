"""``taquba-memo runs``: runs and steps with entry counts, sizes, claims and last writes."""

from __future__ import annotations

import argparse
import contextlib
import datetime
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from taquba_memo import _layout as layout
from taquba_memo._concurrency import TaskWindow
from taquba_memo._exit_codes import ExitCode
from taquba_memo._iso_time import iso_utc
from taquba_memo._listing import itself, within_prefix
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
            vanished = plural(missing_sizes, "entry", "entries")
            summary += f" ({vanished} vanished while being measured)"
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

    async def count_runs(self, *listings: AsyncIterator[str]) -> None:
        for listing in listings:
            async for _run_id in listing:
                pass  # each listed item was tallied as it went by

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
    """The summary's figures alone (``--summary-only``), streamed: counters, and no run's
    id held where the backend lists in key order.

    Over an ordered listing a step's keys are contiguous, so a change of step
    counts it; and entries and step outputs are both listed by run, so merging
    the two listings meets each run once, in order. Only the runs of terminal
    markers (listed by time, not by run) are held, each until the merge meets
    it: the rest are the runs with a marker and nothing else. Over an unordered
    listing the steps and runs seen are kept instead.
    """

    def __init__(self, ordered: bool) -> None:
        self.all = _StepStats()
        self.run_count = 0
        self.steps = 0
        self.step_outputs = 0
        self._ordered = ordered
        self._marker_runs: set[str] = set()
        self._last: tuple[str, int] | None = None
        self._seen: set[tuple[str, int]] | None = None if ordered else set()

    def step(self, run_id: str, number: int) -> _StepStats:
        if (run_id, number) != self._last:
            self._last = (run_id, number)
            if self._seen is None:
                self.steps += 1
            elif (run_id, number) not in self._seen:
                self._seen.add((run_id, number))
                self.steps += 1
        return self.all

    def step_output(self, run_id: str) -> None:
        self.step_outputs += 1

    def terminal(self, run_id: str, terminal_at_ms: int) -> None:
        self._marker_runs.add(run_id)

    async def count_runs(self, *listings: AsyncIterator[str]) -> None:
        marker_runs = self._marker_runs
        runs = _distinct_in_key_order(*listings) if self._ordered else _distinct(*listings)
        async with contextlib.aclosing(runs):
            async for run_id in runs:
                self.run_count += 1
                marker_runs.discard(run_id)
        self.run_count += len(marker_runs)
        marker_runs.clear()

    def counts(self) -> _Counts:
        every = self.all
        return _Counts(
            self.run_count,
            self.steps,
            every.entries,
            every.size,
            every.claims,
            self.step_outputs,
        )


async def _distinct(*listings: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The distinct run ids of unordered listings: every id is kept."""
    seen: set[str] = set()
    for listing in listings:
        async for run_id in listing:
            if run_id not in seen:
                seen.add(run_id)
                yield run_id


async def _distinct_in_key_order(*listings: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The distinct run ids of listings in key order, merged: one id held per listing.

    A run's keys are ``<run>/...``, so key order is the order of ``run + "/"``
    (``"a-b"`` before ``"a"``), not of the ids themselves.
    """
    heads: list[tuple[str, AsyncIterator[str]]] = []
    for listing in listings:
        first = await anext(listing, None)
        if first is not None:
            heads.append((first, listing))
    while heads:
        least = min(run_id + "/" for run_id, _listing in heads)[:-1]
        yield least
        moved: list[tuple[str, AsyncIterator[str]]] = []
        for head, listing in heads:
            run_id: str | None = head
            while run_id == least:
                run_id = await anext(listing, None)
            if run_id is not None:
                moved.append((run_id, listing))
        heads = moved


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

    # Markers first: a streamed count holds their runs until the listings below meet them.
    async for marker in store.iter_terminal_markers():
        if run_filter is None or marker.run_id == run_filter:
            tally.terminal(marker.run_id, marker.terminal_at_ms)
    # Sizes and times come with the listing where it carries them; else sizes are read.
    listed_sizes = store.lists_metadata
    # A summary prints no write times: without sizes it needs no metadata (a stat a file).
    with_metadata = listed_sizes and (args.sizes or not streamed)
    window = TaskWindow(args.concurrency)

    async def entry_runs() -> AsyncGenerator[str, None]:
        """Each entry tallied as it is listed; its run's id, once per run in a row."""
        nonlocal unrecognized
        last_run: str | None = None
        async for entry in store.iter_entries(run_filter, with_metadata=with_metadata):
            if entry.run_id is None or entry.step_number is None:
                unrecognized += 1
                continue
            step = tally.step(entry.run_id, entry.step_number)
            if entry.run_id != last_run:
                last_run = entry.run_id
                yield last_run
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

    step_outputs = layout.step_outputs_prefix(store.prefix)

    async def step_output_runs() -> AsyncGenerator[str, None]:
        """Each step output (layout 0.10) tallied as it is listed; its run's id."""
        listing = (
            step_outputs
            if run_filter is None
            else layout.step_outputs_run_prefix(store.prefix, run_filter)
        )
        backend = store.backend
        # A backend's strays are never counted, and logged, as the store's own listings do.
        async for key in within_prefix(listing, backend.list(listing), itself, backend):
            parsed = layout.parse_memo_entry_name(key[len(step_outputs) :])  # the same shape
            if parsed is not None:
                tally.step_output(parsed[0])
                yield parsed[0]

    label = "reading entries" if args.sizes and not listed_sizes else "listing entries"
    with out.progress(label, unit="entries") as bar:
        out.partial = lambda: (
            {"entries_listed": bar.count, "runs_seen": tally.run_count},
            f"listed {plural(bar.count, 'entry', 'entries')} of {plural(tally.run_count, 'run')}",
        )
        try:
            async with (
                contextlib.aclosing(entry_runs()) as entries,
                contextlib.aclosing(step_output_runs()) as outputs,
            ):
                await tally.count_runs(entries, outputs)
            await window.drain()
        finally:
            window.cancel()
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
