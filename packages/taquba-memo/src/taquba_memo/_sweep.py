"""The deletion engine: one run's entries cleared, or a sweep of every expired run.

:class:`Sweep` (and :func:`~taquba_memo._run_clear.clear_run`) see the store only
through a :class:`~taquba_memo._run_clear.StoreView`; each ``delete_many`` of
theirs goes through :func:`~taquba_memo._run_clear.delete_keys`.

A sweep has two ways to find an expired run's entries:

* **per-run**: one listing of ``<prefix>/memos/<run_id>/`` per expired run;
* **scan**: one listing of ``<prefix>/memos/`` for a whole chunk of expired
  runs, keeping the keys whose run is in the chunk (on an ordered listing it
  stops past the last of them).

Under layout ``"0.10"`` a run also owns ``<prefix>/step-outputs/<run_id>/``:
each expired run's step outputs are listed on their own before its memos
are found, and the expired markers come from the listing that starts after
the cutoff's key (markers are newest first there).

Either way the keys of many runs go into shared ``delete_many`` batches of
``max_delete_batch`` keys, and markers are deleted in batches too. The
crash-safety rule: a marker is submitted for deletion only once its run's
listing is complete and every batch that held one of its keys succeeded.
A failed batch fails only the runs whose keys it held; they keep their
markers for the next pass.

Memory is bounded by the chunk (``max_runs_in_memory`` expired runs and
their markers), the open batch (``max_delete_batch`` keys) and the batches in
flight (``concurrency`` of them), whatever the fleet's size; the report's
list of cleared run ids grows with it unless ``record_run_ids`` is off.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from taquba_memo import _layout as layout
from taquba_memo._concurrency import TaskWindow
from taquba_memo._layout import TerminalMarker
from taquba_memo._run_clear import StoreView, delete_keys
from taquba_memo.errors import BackendError, DeleteManyError

__all__ = [
    "PAGE_KEYS",
    "SCAN_MIN_EXPIRED_FRACTION",
    "SCAN_MIN_EXPIRED_RUNS",
    "Sweep",
    "SweepFailure",
    "SweepReport",
    "SweepStrategy",
]

logger = logging.getLogger("taquba_memo")

SweepStrategy = Literal["auto", "per-run", "scan"]

PAGE_KEYS = 1000
"""Keys per listing page on S3 and GCS (Azure's pages hold up to 5000)."""

SCAN_MIN_EXPIRED_FRACTION = 0.01
"""``auto`` tries a scan when at least this share of all markers has expired."""

SCAN_MIN_EXPIRED_RUNS = PAGE_KEYS
"""Under layout ``"0.10"``, where the listing holds the expired markers only
(so the share above is unknown), ``auto`` tries a scan for a chunk of at
least this many expired runs, and lists fewer per run."""

RunDone = Callable[[TerminalMarker, int], Awaitable[None] | None]


async def _call_run_done(on_run_done: RunDone | None, marker: TerminalMarker, deleted: int) -> None:
    if on_run_done is not None:
        result = on_run_done(marker, deleted)
        if inspect.isawaitable(result):
            await result


@dataclass(frozen=True)
class SweepFailure:
    """A run the sweep could not finish; its marker was kept for the next pass."""

    marker: TerminalMarker
    error: BackendError


@dataclass
class SweepReport:
    """What one :meth:`MemoStore.sweep` pass did, and what it cost."""

    cutoff_ms: int
    dry_run: bool = False
    runs_cleared: list[str] = field(default_factory=list)
    """Runs whose memos were cleared and whose marker was deleted (or, in a
    dry run, would have been); left empty by ``sweep(record_run_ids=False)``."""
    runs_cleared_count: int = 0
    """How many runs were cleared, whether or not their ids are recorded."""
    entries_deleted: int = 0
    """Memo entries deleted, with step outputs under layout ``"0.10"`` (as the crate counts)."""
    failures: list[SweepFailure] = field(default_factory=list)
    strategy: str = "none"
    """What ran: ``"per-run"``, ``"scan"``, ``"scan, then per-run"`` (a scan
    that stopped at its budget, the runs it had not passed then listed one
    by one), several of them joined by ``" + "`` over chunks, ``"dry-run"``,
    or ``"none"`` when nothing had expired."""
    markers_listed: int = 0
    """Terminal markers the marker listing returned."""
    scans: int = 0
    """Listings of the whole ``<prefix>/memos/``."""
    run_listings: int = 0
    """Listings of one run's ``<prefix>/memos/<run_id>/`` (or, under layout ``"0.10"``,
    of its ``<prefix>/step-outputs/<run_id>/``)."""
    memo_keys_listed: int = 0
    """Keys those listings returned (about 1000 a page on S3 and GCS)."""
    delete_requests: int = 0
    """``delete_many`` calls, of entries and of markers."""

    @property
    def ok(self) -> bool:
        """True when every expired run was cleared."""
        return not self.failures


@dataclass(eq=False, slots=True)
class _Run:
    """One expired run while the sweep works on it."""

    run_id: str
    markers: list[tuple[TerminalMarker, str]] = field(default_factory=list)
    """Its expired markers, each with the key it was listed under (deleted as listed)."""
    listed: bool = False  # every key of the run has been seen
    unflushed: int = 0  # its keys in the open batch
    in_flight: int = 0  # submitted batches holding its keys
    deleted: int = 0
    failures: dict[str, BackendError] = field(default_factory=dict)
    listing_error: BackendError | None = None
    settled: bool = False
    reported: bool = False


@dataclass
class _Chunk:
    runs: dict[str, _Run]
    few_expired: bool
    """Under ``SCAN_MIN_EXPIRED_FRACTION`` of all markers expired (as ``auto`` counted them)."""


class Sweep:
    """One sweep pass over ``store`` that fills ``report`` (a dry run if it says so).

    The arguments are validated by the caller (:meth:`taquba_memo.MemoStore.sweep`).
    """

    def __init__(
        self,
        store: StoreView,
        report: SweepReport,
        *,
        concurrency: int,
        strategy: SweepStrategy,
        max_runs_in_memory: int,
        record_run_ids: bool,
        on_run_done: RunDone | None,
    ) -> None:
        self._store = store
        self._record_run_ids = record_run_ids
        self._backend = store.backend()
        capabilities = self._backend.capabilities
        self._batch_size = capabilities.max_delete_batch
        self._ordered = capabilities.ordered_listing
        self._report = report
        self._strategy = strategy
        self._max_runs = max_runs_in_memory
        self._on_run_done = on_run_done
        self._concurrency = concurrency
        self._deletes = TaskWindow(concurrency)
        self._open_batch: list[tuple[str, _Run]] = []
        self._ready: list[tuple[TerminalMarker, str, _Run]] = []
        self._strategies_used: list[str] = []

    # -- finding expired runs ------------------------------------------------

    async def _chunks(self) -> AsyncGenerator[_Chunk, None]:
        """Expired runs, ``max_runs_in_memory`` at a time, each with its expired markers.

        On an ordered listing ``auto`` reads on past the cutoff, up to 99
        unexpired markers per expired one (at most a tenth of a page per
        expired run), to learn whether at least 1% of all markers expired.
        """
        cutoff = self._report.cutoff_ms
        runs: dict[str, _Run] = {}
        expired = 0
        unexpired_budget: int | None = None
        few_expired = False
        count_on = self._strategy == "auto" and self._ordered
        terminals = layout.terminals_prefix(self._store.prefix)
        inverted = self._store.layout.inverted
        markers = self._expired_marker_names() if inverted else self._store.marker_names()
        async for name, marker in markers:
            if marker is None:
                continue
            self._report.markers_listed += 1
            if marker.terminal_at_ms < cutoff:
                expired += 1
                run = runs.get(marker.run_id)
                if run is None:
                    run = runs[marker.run_id] = _Run(marker.run_id)
                run.markers.append((marker, terminals + name))
                if len(runs) >= self._max_runs:
                    yield _Chunk(runs, few_expired=False)
                    runs = {}
                continue
            if not (self._ordered and name[:1].isdigit()):
                continue
            # Zero-padded names sort numerically: every later marker is younger.
            if not count_on:
                break
            if expired == 0:
                break  # nothing expired
            if unexpired_budget is None:
                unexpired_budget = max(1, round(expired * (1 / SCAN_MIN_EXPIRED_FRACTION - 1)))
            unexpired_budget -= 1
            if unexpired_budget < 0:
                few_expired = True
                break
        if runs:
            yield _Chunk(runs, few_expired=few_expired)

    async def _expired_marker_names(self) -> AsyncIterator[tuple[str, TerminalMarker | None]]:
        """The expired markers of an inverted layout, each with the name it was listed under."""
        async for marker in self._store.expired_markers(self._report.cutoff_ms):
            yield marker.name, marker

    # -- the batches ----------------------------------------------------------

    async def _add_key(self, key: str, run: _Run) -> None:
        run.unflushed += 1
        self._open_batch.append((key, run))
        if len(self._open_batch) >= self._batch_size:
            await self._flush_entries()

    async def _flush_entries(self) -> None:
        batch, self._open_batch = self._open_batch, []
        if not batch:
            return
        runs = list(dict.fromkeys(run for _key, run in batch))
        for _key, run in batch:
            run.unflushed -= 1
        for run in runs:
            run.in_flight += 1
        await self._deletes.submit(self._delete_entries(batch, runs))

    async def _delete_entries(self, batch: list[tuple[str, _Run]], runs: list[_Run]) -> None:
        failures = await self._delete_many([key for key, _run in batch])
        for key, run in batch:
            error = failures.get(key)
            if error is None:
                run.deleted += 1
                self._report.entries_deleted += 1
            else:
                run.failures[key] = error
        if failures:
            # One line per batch, not per key: a denial fails every key alike.
            first_key, first_error = next(iter(failures.items()))
            logger.warning(
                "failed to delete memo entry %r (and %d more of a batch of %d): %s",
                first_key, len(failures) - 1, len(batch), first_error,
            )  # fmt: skip
        for run in runs:
            run.in_flight -= 1
            self._settle(run)

    async def _delete_many(self, keys: list[str]) -> dict[str, BackendError]:
        self._report.delete_requests += 1
        return await delete_keys(self._backend, keys)

    def _settle(self, run: _Run) -> None:
        """Once a run is fully listed and its batches are done, queue or fail its markers."""
        if run.settled or not run.listed or run.unflushed or run.in_flight:
            return
        run.settled = True
        error: BackendError | None = run.listing_error
        if error is None and run.failures:
            error = DeleteManyError(run.failures)
            error.__cause__ = next(iter(run.failures.values()))
        if error is not None:
            for marker, _key in run.markers:
                self._report.failures.append(SweepFailure(marker, error))
            return
        self._ready.extend((marker, key, run) for marker, key in run.markers)

    async def _flush_markers(self, *, all_of_them: bool) -> None:
        while len(self._ready) >= self._batch_size or (all_of_them and self._ready):
            batch = self._ready[: self._batch_size]
            del self._ready[: self._batch_size]
            await self._deletes.submit(self._delete_markers(batch))

    async def _delete_markers(self, batch: list[tuple[TerminalMarker, str, _Run]]) -> None:
        failures = await self._delete_many([key for _marker, key, _run in batch])
        for marker, key, run in batch:
            error = failures.get(key)
            if error is not None:
                self._report.failures.append(SweepFailure(marker, error))
                continue
            await self._run_done(marker, run)

    async def _run_done(self, marker: TerminalMarker, run: _Run) -> None:
        first = not run.reported
        if first:
            run.reported = True
            self._report.runs_cleared_count += 1
            self._store.telemetry.run_cleared(run.run_id, run.deleted, "sweep")
            if self._record_run_ids:
                self._report.runs_cleared.append(run.run_id)
        await _call_run_done(self._on_run_done, marker, run.deleted if first else 0)

    # -- listing ---------------------------------------------------------------

    async def _list_step_outputs(self, run: _Run) -> None:
        """Layout ``"0.10"``: queue the run's step outputs; its memos are found after."""
        self._report.run_listings += 1
        try:
            async for key in self._store.listed(
                layout.step_outputs_run_prefix(self._store.prefix, run.run_id)
            ):
                self._report.memo_keys_listed += 1
                await self._add_key(key, run)
        except BackendError as exc:
            run.listing_error = exc

    async def _list_run(self, run: _Run, after: str | None) -> None:
        """The per-run listing; on an ordered listing, keys up to ``after`` were seen already."""
        self._report.run_listings += 1
        try:
            async for key in self._store.listed(
                layout.memos_run_prefix(self._store.prefix, run.run_id)
            ):
                self._report.memo_keys_listed += 1
                if after is None or key > after:
                    await self._add_key(key, run)
        except BackendError as exc:
            run.listing_error = exc
        run.listed = True
        self._settle(run)
        await self._flush_markers(all_of_them=False)

    async def _scan(self, runs: dict[str, _Run], budget_keys: int | None) -> dict[_Run, str | None]:
        """One listing of ``memos/`` for ``runs``; return the runs it did not see whole.

        Each is mapped to the last key the (ordered) scan had seen, or None.
        """
        self._report.scans += 1
        memos = layout.memos_prefix(self._store.prefix)
        # A run's keys lie in [run + "/", run + "0"): past the last such end, none
        # is ours. ("a/" sorts after "a-b/", so the end is not the largest id's.)
        end = max(run_id + "0" for run_id in runs) if self._ordered else None
        listed = 0
        position: str | None = None
        complete = False
        try:
            async for key in self._store.listed(memos):
                listed += 1
                self._report.memo_keys_listed += 1
                name = key[len(memos) :]
                if end is not None and name >= end:
                    complete = True
                    break
                run_id, slash, _rest = name.partition("/")
                run = runs.get(run_id)
                if run is not None and slash:
                    await self._add_key(key, run)
                position = key
                if budget_keys is not None and listed >= budget_keys:
                    break
            else:
                complete = True
        except BackendError as exc:
            logger.warning(
                "scanning %s failed (%s); listing the remaining runs one by one", memos, exc
            )
        unseen: dict[_Run, str | None] = {}
        for run in runs.values():
            passed = complete or (
                self._ordered and position is not None and memos + run.run_id + "0" <= position
            )
            if passed:
                run.listed = True
                self._settle(run)
            else:
                unseen[run] = position if self._ordered else None
        await self._flush_markers(all_of_them=False)
        return unseen

    def _choose(self, chunk: _Chunk) -> tuple[str, int | None]:
        """``(strategy, scan budget in keys)`` for one chunk of expired runs."""
        if self._strategy == "scan":
            return "scan", None
        if self._strategy == "per-run" or not self._ordered or len(chunk.runs) < 2:
            return "per-run", None
        if chunk.few_expired:
            return "per-run", None
        if self._store.layout.inverted and len(chunk.runs) < SCAN_MIN_EXPIRED_RUNS:
            # Per-run costs what the expired set costs, as the listing did; a
            # scan of a small chunk could at best save that little, at worst double it.
            return "per-run", None
        # Scan, but for no more pages than the per-run listings would take.
        return "scan", len(chunk.runs) * PAGE_KEYS

    async def _dry_run(self) -> None:
        """List the expired markers and report the runs a sweep would clear; delete nothing."""
        self._report.strategy = "dry-run"
        seen: set[str] = set()
        async for marker in self._store.expired_markers(self._report.cutoff_ms):
            self._report.markers_listed += 1
            if marker.run_id not in seen:
                seen.add(marker.run_id)
                self._report.runs_cleared_count += 1
                if self._record_run_ids:
                    self._report.runs_cleared.append(marker.run_id)
            await _call_run_done(self._on_run_done, marker, 0)

    async def run(self) -> None:
        if self._report.dry_run:
            await self._dry_run()
            return
        listings = TaskWindow(self._concurrency)
        try:
            async with contextlib.aclosing(self._chunks()) as chunks:
                async for chunk in chunks:
                    if self._store.layout.inverted:
                        for run in chunk.runs.values():
                            await listings.submit(self._list_step_outputs(run))
                        await listings.drain()
                    strategy, budget = self._choose(chunk)
                    if strategy == "scan":
                        unseen = await self._scan(chunk.runs, budget)
                        if unseen:
                            strategy = "scan, then per-run"
                    else:
                        unseen = dict.fromkeys(chunk.runs.values())
                    if strategy not in self._strategies_used:
                        self._strategies_used.append(strategy)
                    for run, after in unseen.items():
                        await listings.submit(self._list_run(run, after))
                    await listings.drain()
            await self._flush_entries()
            await self._deletes.drain()
            await self._flush_markers(all_of_them=True)
        finally:
            # Cancelled or failed: stop listing; batches already sent finish,
            # and markers not yet sent stay for the next pass.
            await listings.cancel_and_wait()
            await self._deletes.drain()
            self._report.strategy = " + ".join(self._strategies_used) or "none"
