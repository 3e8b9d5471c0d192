"""MemoStore: memo entries and terminal markers under one prefix of a backend.

The layout is that of taquba-workflow 0.5.0, or with ``layout="0.10"`` that
of 0.6.0 to 0.10.0 (:mod:`taquba_memo._layout`). :meth:`MemoStore.new_memo`
hands out :class:`~taquba_memo._memo.Memo` views bound to one
``(run_id, step_number)``; a step reads what an earlier attempt recorded
and skips the work. Retention is
built from terminal markers: when a run ends, write its marker; later,
:meth:`MemoStore.sweep` clears the memos of runs whose marker is older than
a cutoff, then deletes the marker.

Readers must tolerate absence: a sweep may remove an entry at any time, and
a reader that finds nothing simply re-executes the step.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from taquba_memo import _fork, _run_clear, _sweep
from taquba_memo import _layout as layout
from taquba_memo._checks import check_flag
from taquba_memo._closing import AsyncClosing
from taquba_memo._layout import Layout, TerminalMarker, normalize_prefix, validate_layout
from taquba_memo._listing import MemoEntry, itself, key_of, keys_after, memo_entry, within_prefix
from taquba_memo._memo import Memo
from taquba_memo._store_settings import StoreSettings
from taquba_memo._sweep import SweepReport, SweepStrategy
from taquba_memo._sweep_lease import held_sweep_lease
from taquba_memo._telemetry import StoreTelemetry
from taquba_memo.backend import (
    ListedObject,
    ListsAfter,
    ListsMetadata,
    MemoBackend,
    lists_metadata,
)
from taquba_memo.errors import (
    ForkedProcessError,
    InvalidArgumentError,
    InvalidValueTypeError,
    StoreClosedError,
)

__all__ = ["MemoStore"]

logger = logging.getLogger("taquba_memo")


class MemoStore(StoreSettings, AsyncClosing):
    """Memo entries and terminal markers under one prefix of a backend.

    Memo entries live under ``<prefix>/memos/`` and terminal markers under
    ``<prefix>/terminals/``; the prefix should not be shared with anything
    else in the bucket. Any number of ``MemoStore`` objects, in any number of
    processes or languages, may use the same backend and prefix: the storage
    is the source of truth, and nothing is cached.

    ``max_value_bytes`` optionally refuses larger values before any upload,
    and larger entries on every read without holding more than the bound of
    them in memory (where the backend offers ``get_at_most``).
    Closing the store (``aclose`` or ``async with``) closes the backend.

    ``layout`` is the object layout shared with Rust workers: ``"0.5"`` (the
    default) for taquba-workflow 0.5.0, ``"0.10"`` for 0.6.0 to 0.10.0
    (terminal markers newest first, step outputs cleared with a run's memos,
    the crate's MessagePack content keys). Markers written in the other
    layout are skipped with a warning, never read as a far-future date.
    """

    def __init__(
        self,
        backend: MemoBackend,
        prefix: str = "",
        *,
        max_value_bytes: int | None = None,
        layout: str = "0.5",
    ) -> None:
        if not isinstance(backend, MemoBackend):
            raise InvalidValueTypeError(
                f"backend must implement MemoBackend, got {type(backend).__name__}"
            )
        if max_value_bytes is not None:
            if isinstance(max_value_bytes, bool) or not isinstance(max_value_bytes, int):
                raise InvalidValueTypeError(
                    f"max_value_bytes must be an int or None, not {type(max_value_bytes).__name__}"
                )
            if max_value_bytes < 0:
                raise InvalidArgumentError(
                    f"max_value_bytes must be 0 or more, not {max_value_bytes}"
                )
        self._layout = validate_layout(layout)
        self._warned_layouts: set[Layout] = set()
        self._backend_object = backend
        self._fork_generation = _fork.generation()
        self._prefix = normalize_prefix(prefix)
        self._max_value_bytes = max_value_bytes
        self._telemetry = StoreTelemetry(backend)
        self._closed = False
        self._deletion_view = _run_clear.StoreView(
            backend=self._checked_backend,
            prefix=self._prefix,
            telemetry=self._telemetry,
            listed=self._listed,
            marker_names=self._iter_marker_names,
            expired_markers=self.iter_expired_terminal_markers,
            layout=self._layout,
        )

    @property
    def _backend(self) -> MemoBackend:
        return self._checked_backend()

    def _checked_backend(self) -> MemoBackend:
        # Every operation starts here, so a closed store refuses it before any I/O.
        if self._closed:
            raise StoreClosedError("the store is closed")
        # The first use in a forked child lets the backend rebuild what the
        # fork broke (or refuse with ForkedProcessError), before any I/O.
        if self._fork_generation != _fork.generation():
            _fork.after_fork(self._backend_object)
            self._fork_generation = _fork.generation()
        return self._backend_object

    @property
    def backend(self) -> MemoBackend:
        return self._backend

    def __repr__(self) -> str:
        layout_part = "" if self._layout is layout.DEFAULT_LAYOUT else f", layout={self.layout!r}"
        return f"MemoStore(prefix={self._prefix!r}, backend={self._backend_object!r}{layout_part})"

    def new_memo(self, run_id: str, step_number: int) -> Memo:
        """Return a :class:`Memo` bound to ``(run_id, step_number)``."""
        return Memo(self, run_id, step_number)

    # -- listing -----------------------------------------------------------

    async def _listed(self, prefix: str) -> AsyncIterator[str]:
        """The backend's listing of ``prefix``, without any key outside it.

        The store acts only on keys it asked for: a backend whose ``list``
        over-matches (an unescaped SQL ``LIKE``, a glob, a case-insensitive
        collation) must not turn into deleting another run's data. Strays
        are dropped and logged as the backend bug they are.
        """
        async for key in within_prefix(prefix, self._backend.list(prefix), itself, self._backend):
            yield key

    async def _listed_objects(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`_listed` with sizes: the backend's ``list_with_metadata``, strays dropped.

        Only for a backend that :func:`~taquba_memo.backend.lists_metadata`.
        """
        backend = self._backend
        assert isinstance(backend, ListsMetadata)
        async for item in within_prefix(
            prefix, backend.list_with_metadata(prefix), key_of, backend
        ):
            yield item

    @property
    def lists_metadata(self) -> bool:
        """True when the backend's listing carries sizes (``iter_entries(with_metadata=True)``
        then reads nothing)."""
        return lists_metadata(self._backend_object)

    async def iter_entries(
        self, run_id: str | None = None, *, with_metadata: bool = False
    ) -> AsyncIterator[MemoEntry]:
        """Yield every object below ``<prefix>/memos/`` (of one run, if given), streaming.

        Each memo entry comes with its run and step; so does a claim of
        ``get_or_compute`` (``kind="claim"``); an object there that is
        neither (written by something else) comes with ``None`` for both and
        ``kind="unrecognized"``. Order is the backend's listing order. With ``with_metadata``, on
        a backend whose listing carries them (:attr:`lists_metadata`), each
        entry also has its ``size`` and ``last_modified`` from the same
        listing pages; elsewhere they stay None.
        """
        check_flag(with_metadata, "with_metadata")
        memos = layout.memos_prefix(self._prefix)
        listing = memos if run_id is None else layout.memos_run_prefix(self._prefix, run_id)
        if with_metadata and self.lists_metadata:
            async for item in self._listed_objects(listing):
                yield memo_entry(item.key, memos, item.size, item.last_modified)
        else:
            async for key in self._listed(listing):
                yield memo_entry(key, memos, None, None)

    # -- clearing and sweeping ---------------------------------------------

    async def clear_memos_for_run(self, run_id: str) -> int:
        """Delete every memo entry of ``run_id`` and return how many were deleted.

        Under layout ``"0.10"`` the run's step outputs
        (``<prefix>/step-outputs/<run_id>/``) are deleted and counted too.

        The run's prefix is listed once, page by page, and the keys are
        deleted with ``delete_many`` in batches of the backend's
        ``max_delete_batch``. As in the reference, a key that fails to delete
        is logged and does not stop the sweep; the count excludes it. A
        failure to list raises :class:`BackendError`.
        """
        with self._telemetry.operation("clear_run", run_id) as operation:
            outcome = await _run_clear.clear_run(self._deletion_view, run_id)
            operation.cleared(run_id, outcome.deleted, len(outcome.failures))
        return outcome.deleted

    # -- terminal markers --------------------------------------------------

    async def write_terminal_marker(self, run_id: str, terminal_at_ms: int) -> None:
        """Write the zero-byte terminal marker of ``run_id`` at ``terminal_at_ms``.

        Idempotent: writing the same marker twice leaves one marker.
        """
        key = self._layout.marker_key(self._prefix, run_id, terminal_at_ms)
        with self._telemetry.operation("write_terminal_marker", run_id):
            await self._backend.put(key, b"")

    async def iter_terminal_markers(self) -> AsyncIterator[TerminalMarker]:
        """Yield every terminal marker, streaming: memory stays flat.

        Markers come in chronological order on a backend with
        ``ordered_listing`` (newest first under layout ``"0.10"``), in the
        backend's order otherwise. Objects under
        the terminals prefix whose names do not parse are skipped with a
        warning.
        """
        async for _name, marker in self._iter_marker_names():
            if marker is not None:
                yield marker

    async def _iter_marker_names(
        self, after: str | None = None
    ) -> AsyncIterator[tuple[str, TerminalMarker | None]]:
        """Every marker name, parsed in this store's layout; only keys past ``after`` if given.

        A name in the other layout yields None (and a warning, once): read in
        this one it would be a date tens of thousands of years away.
        """
        terminals = layout.terminals_prefix(self._prefix)
        async for key in self._marker_keys(terminals, after):
            name = key[len(terminals) :]
            written_in = layout.detect_marker_layout(name)
            if written_in is not None and written_in is not self._layout:
                self._warn_other_layout(written_in, key)
                yield name, None
                continue
            marker = None if "/" in name else self._layout.parse_marker_name(name)
            if marker is None:
                logger.warning("unparseable terminal marker %r; skipping", key)
            yield name, marker

    def _marker_keys(self, terminals: str, after: str | None) -> AsyncIterator[str]:
        if after is None:
            return self._listed(terminals)
        backend = self._backend
        if isinstance(backend, ListsAfter):  # the optional member, offered
            return within_prefix(terminals, backend.list_after(terminals, after), itself, backend)
        return keys_after(self._listed(terminals), after)

    async def _warn_if_first_marker_is_05(self) -> None:
        """Warn (once) when the first marker listed is in layout ``"0.5"``: one page.

        ``"0.5"`` names sort before every inverted one, hence before the
        cutoff's key: an inverted expired listing never sees them, and its
        empty answer would otherwise be a silent zero.
        """
        terminals = layout.terminals_prefix(self._prefix)
        async for key in self._listed(terminals):
            if layout.detect_marker_layout(key[len(terminals) :]) is Layout.V0_5:
                self._warn_other_layout(Layout.V0_5, key)
            return

    def _warn_other_layout(self, written_in: Layout, key: str) -> None:
        if written_in in self._warned_layouts:
            return
        self._warned_layouts.add(written_in)
        logger.warning(
            "terminal marker %r is written in layout %r, but this store uses layout %r: "
            "skipping such markers (open the store with layout=%r to read and sweep them)",
            key,
            written_in.value,
            self._layout.value,
            written_in.value,
        )

    async def list_terminal_markers(self) -> list[TerminalMarker]:
        """Return every terminal marker (see :meth:`iter_terminal_markers`).

        Callers that need chronological order on any backend should sort:
        ``sorted(markers)`` orders by ``terminal_at_ms``.
        """
        return [marker async for marker in self.iter_terminal_markers()]

    async def iter_expired_terminal_markers(self, cutoff_ms: int) -> AsyncIterator[TerminalMarker]:
        """Yield the markers with ``terminal_at_ms`` strictly below ``cutoff_ms``.

        With ``ordered_listing`` the listing stops at the first marker that
        has not expired, so the cost grows with the expired set rather than
        with all markers. Otherwise every marker is listed and filtered.
        Under layout ``"0.10"`` (newest first) the listing starts after the
        cutoff's key instead, on the server where the backend offers
        ``list_after``; elsewhere the keys before it are listed and skipped.
        When it finds none, the first marker of the plain listing (one page)
        is read: a ``"0.5"`` one, which sorts before the cutoff's key and is
        never listed here, is warned about once, naming the layout.
        """
        cutoff_ms = layout.validate_terminal_at_ms(cutoff_ms)
        start = self._layout.expired_listing_start(self._prefix, cutoff_ms)
        if start is not None:
            expired = 0
            async for _name, marker in self._iter_marker_names(after=start):
                # The marker at exactly the cutoff sorts after ``start`` too.
                if marker is not None and marker.terminal_at_ms < cutoff_ms:
                    expired += 1
                    yield marker
            if not expired:
                await self._warn_if_first_marker_is_05()
            return
        ordered = self._backend.capabilities.ordered_listing
        async for name, marker in self._iter_marker_names():
            if marker is None:
                continue
            if marker.terminal_at_ms < cutoff_ms:
                yield marker
            elif ordered and name[:1].isdigit():
                # Zero-padded names sort numerically; everything after is younger.
                return

    async def list_expired_terminal_markers(self, cutoff_ms: int) -> list[TerminalMarker]:
        """Return the markers with ``terminal_at_ms`` strictly below ``cutoff_ms``."""
        return [marker async for marker in self.iter_expired_terminal_markers(cutoff_ms)]

    async def delete_terminal_marker(self, marker: TerminalMarker) -> None:
        """Delete ``marker``; a marker that is already gone is success."""
        if not isinstance(marker, TerminalMarker):
            raise InvalidValueTypeError(
                f"marker must be a TerminalMarker, not {type(marker).__name__}"
            )
        key = self._layout.listed_marker_key(self._prefix, marker)
        with self._telemetry.operation("delete_terminal_marker", marker.run_id):
            await self._backend.delete(key)

    async def sweep(
        self,
        cutoff_ms: int,
        *,
        concurrency: int = 8,
        dry_run: bool = False,
        on_run_done: Callable[[TerminalMarker, int], Awaitable[None] | None] | None = None,
        strategy: SweepStrategy = "auto",
        max_runs_in_memory: int = 100_000,
        record_run_ids: bool = True,
        lease: bool = False,
    ) -> SweepReport:
        """Clear the memos of every run whose marker is older than ``cutoff_ms``.

        Under layout ``"0.10"`` a run's step outputs are cleared with its
        memos, and the expired markers are listed from the cutoff's key on.

        The entries of many expired runs share ``delete_many`` batches of the
        backend's ``max_delete_batch`` keys, and markers are deleted in
        batches too: R expired runs of E entries cost ceil(R*E/B) + ceil(R/B)
        delete requests. A marker is deleted only after its run's listing is
        complete and every batch holding one of its entries succeeded, so a
        crash at any point leaves work that the next sweep finishes, never
        memos without a marker. A run that fails to clear keeps its marker
        and is reported in ``failures``; a failed batch fails only the runs
        whose keys it held.

        ``strategy`` says how the entries are found: ``"per-run"`` lists each
        expired run's prefix (R listings); ``"scan"`` lists ``<prefix>/memos/``
        once per ``max_runs_in_memory`` expired runs and keeps their keys
        (ceil(N/1000) pages for N entries; on an ordered listing it stops past
        the last expired run). ``"auto"`` (the default) scans on an ordered
        backend when at least 1% of the markers expired, for at most as many
        pages as the per-run listings would take, then lists the runs the
        scan had not reached one by one; otherwise it lists per run. Under
        layout ``"0.10"`` the share is unknown (only the expired markers are
        listed): ``auto`` scans, with that budget, a chunk of at least 1000
        expired runs, and lists fewer per run. The
        report says which ran and what it listed. Up to ``concurrency``
        listings and ``concurrency`` delete batches are in flight at once;
        memory is bounded by ``max_runs_in_memory`` runs plus the batches,
        and by nothing else with ``record_run_ids=False`` (the report then
        counts cleared runs in ``runs_cleared_count`` without their ids).
        With ``dry_run`` nothing is listed or deleted; the report lists the
        runs that would be cleared. ``on_run_done(marker, entries_deleted)``
        is called after each marker is deleted (for progress reporting).

        With ``lease``, several workers can run the sweep on a schedule and
        only one sweeps at a time: the store's sweep lease
        (:mod:`taquba_memo._sweep_lease`, the one ``taquba-memo sweep``
        takes) is taken before anything is listed, renewed while the sweep
        runs, and released when it ends, however it ends. When another
        sweeper holds it, :class:`~taquba_memo.errors.SweepLeaseHeldError`
        is raised and nothing is deleted. It needs a backend with
        ``conditional_put`` (``NotSupportedError`` otherwise). A release that
        fails is logged; that lease goes stale within 90 s.
        """
        cutoff_ms = layout.validate_terminal_at_ms(cutoff_ms)
        check_flag(dry_run, "dry_run")
        check_flag(record_run_ids, "record_run_ids")
        check_flag(lease, "lease")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError("concurrency must be a positive int")
        if strategy not in ("auto", "per-run", "scan"):
            raise InvalidArgumentError(
                f"strategy must be 'auto', 'per-run' or 'scan', not {strategy!r}"
            )
        if (
            isinstance(max_runs_in_memory, bool)
            or not isinstance(max_runs_in_memory, int)
            or max_runs_in_memory < 1
        ):
            raise InvalidArgumentError("max_runs_in_memory must be a positive int")
        with self._telemetry.operation("sweep") as operation:
            report = SweepReport(cutoff_ms=cutoff_ms, dry_run=dry_run)
            async with held_sweep_lease(self) if lease else contextlib.nullcontext():
                await _sweep.Sweep(
                    self._deletion_view,
                    report,
                    concurrency=concurrency,
                    strategy=strategy,
                    max_runs_in_memory=max_runs_in_memory,
                    record_run_ids=record_run_ids,
                    on_run_done=on_run_done,
                ).run()
            operation.swept(report)
        return report

    # -- lifecycle ----------------------------------------------------------

    async def aclose(self) -> None:
        """Close the backend; every later operation raises :class:`StoreClosedError`."""
        if self._closed:
            return
        try:
            backend = self._backend
        except ForkedProcessError:
            return  # the backend cannot run in this process, so it holds nothing here
        finally:
            self._closed = True
        await backend.aclose()
