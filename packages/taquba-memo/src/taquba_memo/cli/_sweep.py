"""``taquba-memo sweep``: clear the runs whose terminal marker is older than a duration."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from taquba_memo import _layout as layout
from taquba_memo._exit_codes import ExitCode
from taquba_memo._iso_time import iso_utc
from taquba_memo._layout import TerminalMarker
from taquba_memo._store import MemoStore
from taquba_memo._sweep_lease import SweepLease, SweepLeaseHeldError
from taquba_memo.cli._empty_store import warn_if_empty
from taquba_memo.cli._observed import ObservedBackend
from taquba_memo.cli._output import Output, plural
from taquba_memo.errors import AccessDeniedError, BackendError

__all__ = ["cmd_sweep"]


async def cmd_sweep(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    now_ms = time.time_ns() // 1_000_000
    cutoff_ms = max(0, now_ms - args.older_than)
    cutoff_text = iso_utc(cutoff_ms) or str(cutoff_ms)
    backend = store.backend
    assert isinstance(backend, ObservedBackend)
    cleared: dict[str, None] = {}  # in the order this pass deleted their markers
    markers_deleted = 0
    # No total: counting the expired markers first would list them twice.
    label = "dry run" if args.dry_run else "sweeping"
    with out.progress(label, unit="runs cleared") as bar:
        backend.on_change = lambda: bar.note(
            f"{backend.markers_listed:,} markers listed, {backend.deleted:,} keys deleted"
        )

        def run_done(marker: TerminalMarker, _deleted: int) -> None:
            nonlocal markers_deleted
            markers_deleted += 1
            if marker.run_id not in cleared:
                cleared[marker.run_id] = None
                bar.advance()

        def partial() -> tuple[dict[str, Any], str]:
            document = {
                "cutoff_ms": cutoff_ms,
                "cutoff": iso_utc(cutoff_ms),
                "dry_run": args.dry_run,
                "runs_cleared_count": len(cleared),
                "entries_deleted": backend.deleted - markers_deleted,
            }
            if not out.summary_only:
                document["runs_cleared"] = sorted(cleared)
            return document, (
                f"swept {plural(len(cleared), 'run')} with markers older than {cutoff_text}"
            )

        out.partial = partial
        out.resumable = True
        leased = not (args.dry_run or args.no_lease) and backend.capabilities.conditional_put
        lease = SweepLease(store) if leased else None
        try:
            if lease is not None:
                await _take_lease(lease, store)
            report = await store.sweep(
                cutoff_ms, concurrency=args.concurrency, dry_run=args.dry_run, on_run_done=run_done
            )
        except SweepLeaseHeldError as held:
            skipped, summary = partial()
            holder = held.holder
            skipped["skipped"] = str(held)
            skipped["lease_holder"] = {
                "owner": holder.owner,
                "renewed_at_ms": holder.renewed_at_ms,
            }
            out.result(skipped, [f"{summary}: skipped, {held}"])
            return ExitCode.OK
        finally:
            if lease is not None:
                try:
                    await asyncio.shield(lease.release())
                except BackendError as exc:  # it goes stale by itself
                    out.warn(f"could not release the sweep lease ({exc}); it expires in 90 s")
    if report.markers_listed == 0:
        await warn_if_empty(store, args.url, out)
    failures = [
        {
            "run_id": failure.marker.run_id,
            "terminal_at_ms": failure.marker.terminal_at_ms,
            "error": str(failure.error),
            "error_type": type(failure.error).__name__,
        }
        for failure in report.failures
    ]
    runs = sorted(report.runs_cleared)
    document: dict[str, Any] = {
        "cutoff_ms": report.cutoff_ms,
        "cutoff": iso_utc(report.cutoff_ms),
        "dry_run": report.dry_run,
        "runs_cleared_count": report.runs_cleared_count or len(runs),
        "entries_deleted": report.entries_deleted,
        "failures": failures,
        "strategy": report.strategy,
        "requests": {
            "markers_listed": report.markers_listed,
            "scans": report.scans,
            "run_listings": report.run_listings,
            "delete_requests": report.delete_requests,
        },
    }
    if not out.summary_only:
        document["runs_cleared"] = runs
    if args.dry_run:
        lines = [f"would clear {run_id}" for run_id in runs]
        lines.append(
            f"dry run: {plural(len(runs), 'run')} with markers older than "
            f"{cutoff_text} would be cleared"
        )
    else:
        lines = [f"cleared {run_id}" for run_id in runs]
        lines += [f"FAILED {f['run_id']}: {f['error']}" for f in failures]
        lines.append(
            f"swept {plural(len(runs), 'run')} with markers older than "
            f"{cutoff_text}: {plural(report.entries_deleted, 'entry', 'entries')} deleted, "
            f"{len(failures)} failed"
        )
    out.result(document, lines)
    return ExitCode.INCOMPLETE if failures else ExitCode.OK


async def _take_lease(lease: SweepLease, store: MemoStore) -> None:
    try:
        await lease.acquire()
    except AccessDeniedError as exc:
        raise AccessDeniedError(
            f"access denied while taking the sweep lease ({exc}); the sweeper needs "
            f"permission to create, overwrite and delete objects under "
            f"{layout.sweep_leases_prefix(store.prefix)!r}, or run with --no-lease"
        ) from exc
