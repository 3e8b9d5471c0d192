"""The ``taquba-memo`` command: inspect and clean a memo store from a shell.

    taquba-memo --url URL [--prefix P] [--json] COMMAND ...

    runs [RUN_ID] [--sizes]    runs and steps with entry counts (and sizes, claims)
    markers [RUN_ID]           terminal markers, oldest first
    clear RUN_ID               delete every memo entry of one run
    sweep --older-than 7d      clear runs whose marker is older than that
          [--dry-run] [--no-lease] [--all-ended]

``--url`` defaults to ``$TAQUBA_MEMO_URL`` and ``--prefix`` to
``$TAQUBA_MEMO_PREFIX`` (else ``""``). ``--json`` prints one JSON document on
stdout instead of text, errors included. ``--summary-only`` prints the
summary without the per-run lines (for cron mail and CI logs). Long
operations draw a progress line on stderr when stderr is a terminal (never
with ``--json`` or ``--no-progress``), and every command ends with a
summary, also when SIGINT or SIGTERM stops it: it stops at a safe point
(delete batches already sent finish, markers not yet sent stay for the next
pass), prints what it did and exits 130 or 143. A second signal stops it at
once. Also runnable as ``python -m taquba_memo``.

Sizes: where the backend's listing carries sizes (S3, GCS and Azure through
every shipped adapter, and local files), ``runs --sizes`` takes them from the
listing and reads nothing, and ``runs`` shows each run's last write time.
Elsewhere ``runs --sizes`` reads every entry (``--concurrency`` at a time, 16
by default) to measure it, which downloads the whole store.

Exit codes: :class:`taquba_memo._exit_codes.ExitCode`, listed by ``--help``
and in docs/cli.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import re
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO, TypeVar

from taquba_memo import __version__, layout
from taquba_memo._concurrency import TaskWindow
from taquba_memo._exit_codes import ExitCode, exit_codes_help
from taquba_memo._iso_time import iso_utc as _iso
from taquba_memo._iso_time import iso_utc_moment
from taquba_memo._progress import Progress
from taquba_memo._redact import redact_url
from taquba_memo.backend import ListedObject, ListsMetadata, MemoBackend, lists_metadata
from taquba_memo.backends.forwarding import ForwardingBackend
from taquba_memo.backends.local import LocalFileBackend
from taquba_memo.errors import (
    AccessDeniedError,
    AdapterNotInstalledError,
    BackendError,
    ContainerNotFoundError,
    DeleteManyError,
    InvalidConfigurationError,
    InvalidURLError,
    MemoError,
)
from taquba_memo.layout import TerminalMarker
from taquba_memo.store import MemoStore
from taquba_memo.sweep_lease import SweepLease, SweepLeaseHeld
from taquba_memo.urls import open_backend

__all__ = ["entry_point", "main"]

_T = TypeVar("_T")

_EXIT_FOR_SIGNAL = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}

URL_VARIABLE = "TAQUBA_MEMO_URL"
PREFIX_VARIABLE = "TAQUBA_MEMO_PREFIX"

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_DURATION_OPTIONS = ("--older-than",)
_DELETE_PERMISSIONS = (
    "permission to delete objects under the prefix (S3: s3:DeleteObject; "
    "GCS: storage.objects.delete; Azure: a Storage Blob Data Contributor role "
    "or a SAS with the d permission)"
)
_LIST_PERMISSIONS = (
    "permission to list objects under the prefix (S3: s3:ListBucket; "
    "GCS: storage.objects.list; Azure: a Storage Blob Data Reader role "
    "or a SAS with the l permission)"
)
_PERMISSIONS = {"listing": _LIST_PERMISSIONS, "deleting": _DELETE_PERMISSIONS}
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


# -- errors and exit codes, in one place ----------------------------------------


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an error that ended a command."""
    if isinstance(error, AdapterNotInstalledError):
        return ExitCode.ADAPTER_MISSING
    if isinstance(error, (InvalidURLError, InvalidConfigurationError)):
        return ExitCode.BAD_URL  # a client that cannot be built: what the URL or options say
    if isinstance(error, AccessDeniedError):
        return ExitCode.ACCESS_DENIED
    if isinstance(error, ContainerNotFoundError):
        return ExitCode.CONTAINER_NOT_FOUND
    if isinstance(error, BackendError):
        return ExitCode.BACKEND_ERROR
    return ExitCode.USAGE  # any other MemoError is a bad argument (run id, prefix, ...)


def _hint_for(error: BaseException) -> str | None:
    if isinstance(error, AccessDeniedError):
        return (
            "check the credentials in the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, "
            "AZURE_STORAGE_*) and their permissions on this bucket"
        )
    if isinstance(error, ContainerNotFoundError):
        return "check the bucket, container or directory in --url"
    return None


class UsageError(MemoError, ValueError):
    """A command line that argparse refused (exit 2)."""


# -- arguments -------------------------------------------------------------------


def parse_duration_ms(text: str) -> int:
    """``7d``, ``12h``, ``1d12h``, ``90m``, ``30s``, ``500ms``, ``2w`` -> milliseconds."""
    if text.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: a duration cannot be negative (for example 7d)"
        )
    position, total = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w), "
            "for example 7d or 1d12h"
        )
    return total


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _join_dash_values(argv: Sequence[str]) -> list[str]:
    """``--older-than -1d`` -> ``--older-than=-1d``: a value, not an unknown option."""
    joined: list[str] = []
    index = 0
    while index < len(argv):
        item = argv[index]
        following = argv[index + 1] if index + 1 < len(argv) else None
        if item in _DURATION_OPTIONS and following is not None and following.startswith("-"):
            joined.append(f"{item}={following}")
            index += 2
            continue
        joined.append(item)
        index += 1
    return joined


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before and after the command: the copies on
    # each subcommand default to SUPPRESS so they never overwrite a value.
    def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
        def default(value: object) -> object:
            return value if top else argparse.SUPPRESS

        parser.add_argument(
            "--url",
            default=default(os.environ.get(URL_VARIABLE)),
            help=f"store URL: file:///path, memory://, s3://bucket/base, ... (${URL_VARIABLE})",
        )
        parser.add_argument(
            "--prefix",
            default=default(os.environ.get(PREFIX_VARIABLE, "")),
            help=f"the MemoStore prefix inside the store (${PREFIX_VARIABLE}, default '')",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            default=default(False),
            help="print one JSON document on stdout",
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            default=default(False),
            help="never draw progress (it is drawn only when stderr is a terminal)",
        )
        parser.add_argument(
            "--summary-only",
            action="store_true",
            default=default(False),
            help="print only the summary, not one line per run or marker (for cron and CI)",
        )

    parser = _Parser(
        prog="taquba-memo",
        description="Inspect and clean a taquba-memo store.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # one exit code a line
    )
    parser.add_argument("--version", action="version", version=f"taquba-memo {__version__}")
    add_global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = commands.add_parser("runs", help="list runs and steps with entry counts")
    runs.add_argument("run_id", nargs="?", help="show only this run")
    runs.add_argument(
        "--sizes",
        action="store_true",
        help="also show sizes: from the listing where it carries them, else by reading every entry",
    )
    runs.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        help="entries read at once for --sizes (default 16)",
    )

    markers = commands.add_parser("markers", help="list terminal markers, oldest first")
    markers.add_argument("run_id", nargs="?", help="show only this run's markers")

    clear = commands.add_parser("clear", help="delete every memo entry of one run")
    clear.add_argument("run_id")

    sweep = commands.add_parser(
        "sweep", help="clear runs whose terminal marker is older than a duration"
    )
    sweep.add_argument(
        "--older-than",
        required=True,
        type=parse_duration_ms,
        metavar="DURATION",
        help="for example 7d, 12h, 1d12h, 30m",
    )
    sweep.add_argument("--dry-run", action="store_true", help="list the runs that would be cleared")
    sweep.add_argument(
        "--no-lease",
        action="store_true",
        help="sweep without taking the store's sweep lease (taken by default where the "
        "backend has conditional writes, so that a second sweeper does nothing)",
    )
    sweep.add_argument(
        "--all-ended",
        action="store_true",
        help="confirm a zero --older-than (0s), which clears every run that has a marker",
    )
    sweep.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        help="runs cleared at once (default 8)",
    )

    for sub in (runs, markers, clear, sweep):
        add_global_options(sub, top=False)
    return parser


# -- output ------------------------------------------------------------------------


@dataclass
class Output:
    """Where results, progress and errors go."""

    json_mode: bool
    progress_enabled: bool
    stdout: TextIO
    stderr: TextIO
    summary_only: bool = False
    warnings: list[str] = field(default_factory=list)
    partial: Callable[[], tuple[dict[str, Any], str]] = lambda: ({}, "nothing done yet")
    """What the command has done so far: a document and a summary line, for an interruption."""
    resumable: bool = False
    """An interrupted run of the command leaves work that the next one finishes."""

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.stderr.write(f"taquba-memo: warning: {text}\n")
        self.stderr.flush()

    def progress(self, label: str, *, total: int | None = None, unit: str = "") -> Progress:
        return Progress(
            label, stream=self.stderr, enabled=self.progress_enabled, total=total, unit=unit
        )

    def result(self, document: dict[str, Any], lines: Sequence[str]) -> None:
        """Print the command's document (``--json``) or its lines, the summary last."""
        if self.json_mode:
            if self.warnings:
                document = {**document, "warnings": self.warnings}
            json.dump(document, self.stdout, indent=2)
            self.stdout.write("\n")
        else:
            for line in lines[-1:] if self.summary_only else lines:
                self.stdout.write(line + "\n")
        self.stdout.flush()

    def stopped(self, reason: str, code: int, error: BaseException | None = None) -> None:
        """The summary of an interrupted command (and the error that stopped it, if any)."""
        document, summary = self.partial()
        document = {**document, "interrupted": reason, "exit_code": code}
        if error is not None:
            document["error"] = {"type": type(error).__name__, "message": str(error)}
        else:
            rest = "; the next pass finishes the rest" if self.resumable else ""
            summary = f"{summary} (interrupted by {reason}{rest})"
        self.result(document, [summary])
        if error is not None:
            self._error_lines(error)

    def error(self, error: BaseException, code: int) -> None:
        self._error_lines(error)
        if self.json_mode:
            message = str(error) or type(error).__name__
            document: dict[str, Any] = {
                "error": {"type": type(error).__name__, "message": message},
                "exit_code": code,
            }
            if self.warnings:
                document["warnings"] = self.warnings
            json.dump(document, self.stdout)
            self.stdout.write("\n")
            self.stdout.flush()

    def _error_lines(self, error: BaseException) -> None:
        message = str(error) or type(error).__name__
        self.stderr.write(f"taquba-memo: error: {message}\n")
        hint = _hint_for(error)
        if hint:
            self.stderr.write(f"taquba-memo: hint: {hint}\n")
        self.stderr.flush()


def _iso_time(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else iso_utc_moment(moment)


def _human_bytes(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


# -- a backend wrapper that reports deletes, for progress -------------------------


class _ObservedBackend(ForwardingBackend):
    """Counts what is listed and deleted, for progress, and stops at the first denied
    listing or delete (a sweep would otherwise record it as one failed run after another)."""

    def __init__(self, inner: MemoBackend, prefix: str) -> None:
        super().__init__(inner)
        self._terminals = layout.terminals_prefix(prefix)
        self.attempted = 0
        self.deleted = 0
        self.markers_listed = 0
        self.denied: AccessDeniedError | None = None
        self.on_change: Callable[[], None] = lambda: None
        self.on_denied: Callable[[AccessDeniedError, str], None] = lambda _error, _doing: None

    def list(self, prefix: str) -> AsyncIterator[str]:
        return self._watched(super().list(prefix), counted=prefix.startswith(self._terminals))

    async def _watched(self, listing: AsyncIterator[_T], *, counted: bool) -> AsyncIterator[_T]:
        try:
            async for key in listing:
                if counted:
                    self.markers_listed += 1
                    self.on_change()
                yield key
        except AccessDeniedError as exc:
            self._deny(exc, "listing")
            raise

    async def delete_many(self, keys: Sequence[str]) -> None:
        self.attempted += len(keys)
        try:
            await super().delete_many(keys)
        except DeleteManyError as exc:
            self._count(len(keys) - len(exc.failures))
            denied = [e for e in exc.failures.values() if isinstance(e, AccessDeniedError)]
            if denied:
                self._deny(denied[0], "deleting")
            raise
        except AccessDeniedError as exc:
            self._deny(exc, "deleting")
            raise
        self._count(len(keys))

    def _deny(self, error: AccessDeniedError, doing: str) -> None:
        # A denial fails every later call alike: stop once, instead of once per key.
        if self.denied is None:
            self.denied = error
            self.on_denied(error, doing)

    def _count(self, deleted: int) -> None:
        self.deleted += deleted
        self.on_change()


# -- commands ------------------------------------------------------------------------


class _ObservedListing(_ObservedBackend):
    """:class:`_ObservedBackend` over a backend that also lists with sizes."""

    def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        inner = self.inner
        assert isinstance(inner, ListsMetadata)
        return self._watched(inner.list_with_metadata(prefix), counted=False)


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


async def cmd_runs(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    run_filter: str | None = args.run_id
    runs: dict[str, _RunStats] = defaultdict(_RunStats)
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
            {"entries_listed": bar.count, "runs_seen": len(runs)},
            f"listed {_plural(bar.count, 'entry', 'entries')} of {_plural(len(runs), 'run')}",
        )
        try:
            async for entry in store.iter_entries(run_filter, with_metadata=listed_sizes):
                if entry.run_id is None or entry.step_number is None:
                    unrecognized += 1
                    continue
                step = runs[entry.run_id].steps[entry.step_number]
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
    async for marker in store.iter_terminal_markers():
        if run_filter is None or marker.run_id == run_filter:
            stats = runs[marker.run_id]
            stats.terminal_at_ms = max(stats.terminal_at_ms or 0, marker.terminal_at_ms)
    if not runs and not unrecognized:
        await _warn_if_empty(store, args, out)

    sizes: bool = args.sizes
    total_steps = sum(len(stats.steps) for stats in runs.values())
    total_entries = sum(stats.entries for stats in runs.values())
    total_bytes = sum(stats.size for stats in runs.values())
    total_claims = sum(stats.claims for stats in runs.values())
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
            "terminal_at_ms": stats.terminal_at_ms,
            "terminal_at": None if stats.terminal_at_ms is None else _iso(stats.terminal_at_ms),
            "last_write_at": _iso_time(stats.last_write),
        }
        for run_id, stats in sorted(runs.items())
    ]
    totals = {
        "runs": len(runs),
        "steps": total_steps,
        "entries": total_entries,
        "bytes": total_bytes if sizes else None,
        "claims": total_claims,
        "unrecognized_keys": unrecognized,
        "sizes_from": ("listing" if listed_sizes else "reads") if sizes else None,
    }

    width = max([3, *(len(run_id) for run_id in runs)])

    def row(run: str, step: str, entries: int, size: int) -> str:
        text = f"{run:<{width}} {step:>6} {entries:>9,}"
        return text + (f" {_human_bytes(size):>10}" if sizes else "")

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
            terminal = _iso(stats.terminal_at_ms) or str(stats.terminal_at_ms)
        last_write = f"  {_iso_time(stats.last_write) or '-':<24}" if times else ""
        lines.append(f"{row(run_id, '', stats.entries, stats.size)}{last_write}  {terminal}")
        lines += [
            row("", str(number), step.entries, step.size)
            for number, step in sorted(stats.steps.items())
        ]
    summary = (
        f"{_plural(len(runs), 'run')}, {_plural(total_steps, 'step')}, "
        f"{_plural(total_entries, 'entry', 'entries')}"
    )
    if sizes:
        summary += f", {_human_bytes(total_bytes)}"
    if total_claims:
        summary += f" ({_plural(total_claims, 'claim')} of computations in progress or abandoned)"
    if unrecognized:
        summary += f" ({_plural(unrecognized, 'unrecognized key')} skipped)"
    if missing_sizes:
        summary += f" ({missing_sizes:,} entries vanished while being measured)"
    lines.append(summary)
    out.result({"runs": documents, "totals": totals}, lines)
    return ExitCode.OK


async def cmd_markers(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    found: list[TerminalMarker] = []
    with out.progress("listing markers", unit="markers") as bar:
        out.partial = lambda: (
            {"markers_listed": bar.count},
            _plural(bar.count, "marker") + " listed",
        )
        async for marker in store.iter_terminal_markers():
            if args.run_id is None or marker.run_id == args.run_id:
                found.append(marker)
            bar.advance()
    found.sort()
    if not found:
        await _warn_if_empty(store, args, out)
    documents = [
        {
            "run_id": marker.run_id,
            "terminal_at_ms": marker.terminal_at_ms,
            "terminal_at": _iso(marker.terminal_at_ms),
        }
        for marker in found
    ]
    lines = [
        f"{doc['terminal_at'] or '-':<26} {doc['terminal_at_ms']:>15}  {doc['run_id']}"
        for doc in documents
    ]
    lines.append(_plural(len(found), "marker"))
    out.result({"markers": documents, "count": len(found)}, lines)
    return ExitCode.OK


async def cmd_clear(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    run_id = layout.validate_run_id(args.run_id)
    backend = store.backend
    assert isinstance(backend, _ObservedBackend)
    with out.progress(f"clearing {run_id}", unit="entries deleted") as bar:
        backend.on_change = lambda: bar.set(backend.deleted)
        out.partial = lambda: (
            {"run_id": run_id, "entries_deleted": backend.deleted},
            f"run {run_id}: {_plural(backend.deleted, 'entry', 'entries')} deleted",
        )
        out.resumable = True
        deleted = await store.clear_memos_for_run(run_id)
    failed = backend.attempted - deleted
    if not deleted and not failed:
        await _warn_if_empty(store, args, out)
    lines = [f"run {run_id}: {_plural(deleted, 'entry', 'entries')} deleted"]
    if failed:
        lines.append(f"{failed:,} entries could not be deleted; run the command again")
    out.result({"run_id": run_id, "entries_deleted": deleted, "entries_failed": failed}, lines)
    return ExitCode.INCOMPLETE if failed else ExitCode.OK


async def cmd_sweep(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    now_ms = time.time_ns() // 1_000_000
    cutoff_ms = max(0, now_ms - args.older_than)
    cutoff_text = _iso(cutoff_ms) or str(cutoff_ms)
    backend = store.backend
    assert isinstance(backend, _ObservedBackend)
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
                "cutoff": _iso(cutoff_ms),
                "dry_run": args.dry_run,
                "runs_cleared_count": len(cleared),
                "entries_deleted": backend.deleted - markers_deleted,
            }
            if not out.summary_only:
                document["runs_cleared"] = sorted(cleared)
            return document, (
                f"swept {_plural(len(cleared), 'run')} with markers older than {cutoff_text}"
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
        except SweepLeaseHeld as held:
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
        await _warn_if_empty(store, args, out)
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
        "cutoff": _iso(report.cutoff_ms),
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
            f"dry run: {_plural(len(runs), 'run')} with markers older than "
            f"{cutoff_text} would be cleared"
        )
    else:
        lines = [f"cleared {run_id}" for run_id in runs]
        lines += [f"FAILED {f['run_id']}: {f['error']}" for f in failures]
        lines.append(
            f"swept {_plural(len(runs), 'run')} with markers older than "
            f"{cutoff_text}: {report.entries_deleted:,} entries deleted, "
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


async def _warn_if_empty(store: MemoStore, args: argparse.Namespace, out: Output) -> None:
    """Warn when the prefix holds no memo and no marker at all: a typo in --url or --prefix?"""
    for prefix in (layout.memos_prefix(store.prefix), layout.terminals_prefix(store.prefix)):
        async for _key in store.backend.list(prefix):
            return
    out.warn(
        f"{redact_url(args.url)} holds no memo entry and no terminal marker under prefix "
        f"{store.prefix!r}: check --url and --prefix"
    )


_COMMANDS = {
    "runs": cmd_runs,
    "markers": cmd_markers,
    "clear": cmd_clear,
    "sweep": cmd_sweep,
}


class _Stop:
    """SIGINT and SIGTERM (or a denied delete) cancel the command once; a second signal kills."""

    def __init__(self, command: asyncio.Future[int]) -> None:
        self._command = command
        self._loop = asyncio.get_running_loop()
        self.signal: signal.Signals | None = None
        self.denied: AccessDeniedError | None = None
        self.denied_doing = ""
        self._installed: list[signal.Signals] = []
        for signum in _EXIT_FOR_SIGNAL:
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
                self._loop.add_signal_handler(signum, self._on_signal, signum)
                self._installed.append(signum)

    def _on_signal(self, signum: signal.Signals) -> None:
        if self.signal is None:
            self.signal = signum
        self.uninstall()  # the next signal has its default effect: stop at once
        self._command.cancel()

    def deny(self, error: AccessDeniedError, doing: str) -> None:
        if self.denied is None:
            self.denied, self.denied_doing = error, doing
            self._command.cancel()

    def uninstall(self) -> None:
        for signum in self._installed:
            self._loop.remove_signal_handler(signum)
        self._installed.clear()


async def _run_command(args: argparse.Namespace, out: Output) -> int:
    layout.normalize_prefix(args.prefix)  # a bad prefix fails before the adapter opens
    inner = open_backend(args.url)
    if isinstance(inner, LocalFileBackend) and not inner.root.is_dir():
        # The local twin of a missing bucket; reading never creates the directory.
        raise ContainerNotFoundError(f"the directory {inner.root} does not exist")
    wrap = _ObservedListing if lists_metadata(inner) else _ObservedBackend
    backend = wrap(inner, args.prefix)
    async with MemoStore(backend, args.prefix) as store:
        command = asyncio.ensure_future(_COMMANDS[args.command](store, args, out))
        stop = _Stop(command)
        backend.on_denied = stop.deny
        try:
            return await command
        except asyncio.CancelledError:
            if stop.denied is not None:
                doing = stop.denied_doing
                error = AccessDeniedError(
                    f"access denied while {doing} ({stop.denied}); the command needs "
                    + _PERMISSIONS[doing]
                )
                out.stopped("access denied", ExitCode.ACCESS_DENIED, error)
                return ExitCode.ACCESS_DENIED
            if stop.signal is None:
                raise
            code = _EXIT_FOR_SIGNAL[stop.signal]
            out.stopped(stop.signal.name, code)
            return code
        finally:
            stop.uninstall()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    raw = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that a usage error is JSON too.
    out = Output(
        json_mode="--json" in raw, progress_enabled=False, stdout=sys.stdout, stderr=sys.stderr
    )
    parser = build_parser()
    try:
        args = parser.parse_args(_join_dash_values(raw))
        if not args.url:
            raise UsageError(f"--url is required (or set {URL_VARIABLE})")
        if (
            args.command == "sweep"
            and args.older_than == 0
            and not (args.all_ended or args.dry_run)
        ):
            raise UsageError(
                "--older-than 0 clears every run that has a terminal marker; "
                "add --all-ended to confirm (or --dry-run to look first)"
            )
    except UsageError as exc:
        out.stderr.write(parser.format_usage())
        out.error(exc, ExitCode.USAGE)
        return ExitCode.USAGE
    out.summary_only = args.summary_only
    out.progress_enabled = not args.json and not args.no_progress and sys.stderr.isatty()
    try:
        return asyncio.run(_run_command(args, out))
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the command started
        out.stopped(signal.SIGINT.name, ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except MemoError as exc:
        code = exit_code_for(exc)
        out.error(exc, code)
        return code
    except BrokenPipeError:
        # The reader (for example `head`) went away: stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK


def entry_point() -> NoReturn:
    """The console script and ``python -m taquba_memo``: :func:`main`, then exit at once.

    Once the command has finished and its output is flushed, the process
    leaves with ``os._exit`` instead of tearing the interpreter down. Adapters
    built on a Rust async runtime (obstore 0.12) keep worker threads that can
    race interpreter finalization and abort the process (SIGABRT) after the
    work succeeded; measured on 1 exit in 4 against a local S3 emulator.
    Skipping the teardown makes the exit code the command's own.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
            stream.flush()
    os._exit(code)
