"""Retention sweeps side by side: ours, the previous release's and the reference's, on S3 servers.

``python -m benchmarks.sweep_compare`` (``just bench`` runs it) writes 10,000
terminal markers, 1,000 and then 9,000 of them expired (each expired run with
``--entries`` memo entries), and sweeps them five ways through the obstore S3
adapter, on moto and on Ceph RGW:

- ``auto``, ``per-run`` and ``scan``: :meth:`MemoStore.sweep` with that strategy;
- ``previous``: the sweep of taquba-memo before cross-run batching, rebuilt
  from the public API: for each expired marker (8 runs at once) list the run,
  delete its entries in that run's own batches, then delete its marker;
- ``reference``: taquba-workflow 0.5.0 (``memo.rs``): read every marker page,
  then one run after another list it, DELETE each entry, DELETE its marker.

Each method sweeps the fleet through a counting proxy (the requests, by kind);
``auto``, ``previous`` and ``reference`` sweep it once more direct to the
server (the time). The expired runs are written again before every sweep, and
the methods run in rotating order. After every
sweep the expired runs must be gone and every live marker kept. The raw
numbers go to ``benchmarks/sweep_compare.json``, the tables into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from taquba_memo import MemoBackend, MemoStore, TerminalMarker
from taquba_memo.adapter_kit import TaskWindow
from taquba_memo_conformance.proxies import CountingProxy
from taquba_memo_conformance.servers import S3Server, resolve_rgw_server, resolve_s3_server

from benchmarks import measure, report
from benchmarks.cost_model import reference_sweep
from benchmarks.targets import classify_bench, settle
from tests.builders import BackendBuilder, builder_for

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("auto", "per-run", "scan", "previous", "reference")
TIMED = ("auto", "previous", "reference")  # ours, the previous release's, the reference's
PREVIOUS_CONCURRENCY = 8  # the previous release's default sweep concurrency


async def previous_sweep(store: MemoStore, cutoff_ms: int) -> int:
    """The sweep before cross-run batching: per expired marker, clear its run, then the marker."""
    deleted = 0

    async def sweep_one(marker: TerminalMarker) -> None:
        nonlocal deleted
        cleared = await store.clear_memos_for_run(marker.run_id)
        await store.delete_terminal_marker(marker)
        deleted += cleared

    window = TaskWindow(PREVIOUS_CONCURRENCY)
    try:
        async for marker in store.iter_expired_terminal_markers(cutoff_ms):
            await window.submit(sweep_one(marker))
    finally:
        await window.drain()
    return deleted


async def _sweep(method: str, store: MemoStore, cutoff_ms: int) -> tuple[int, str]:
    """``(entries deleted, strategy that ran)`` of one sweep by ``method``."""
    if method == "previous":
        return await previous_sweep(store, cutoff_ms), "per-run, a batch per run"
    if method == "reference":
        return await reference_sweep(store, cutoff_ms), "per-run, a DELETE per key"
    result = await store.sweep(cutoff_ms, strategy=method)  # type: ignore[arg-type]
    assert result.ok, result.failures
    return result.entries_deleted, result.strategy


async def _left(backend: MemoBackend, plan: measure.SweepLayout) -> tuple[int, int]:
    """``(objects of expired runs left, live markers left)`` after a sweep."""
    expired = live = 0
    async for key in backend.list(f"{plan.prefix}/"):
        if "/terminals/" in key and "_live-" in key:
            live += 1
        elif "old-" in key:
            expired += 1
    return expired, live


async def _one_sweep(
    method: str,
    build: BackendBuilder,
    plan: measure.SweepLayout,
    proxy: CountingProxy | None,
) -> dict[str, Any]:
    """Write the expired runs, sweep them by ``method`` (through ``proxy`` if given), check."""
    direct = build(None)
    try:
        await measure.fill(
            direct,
            ((key, b"" if "/terminals/" in key else b"v") for key in plan.expired_objects()),
            concurrency=64,
        )
        backend = build(proxy.url) if proxy is not None else direct
        store = MemoStore(backend, plan.prefix)
        mark = proxy.mark() if proxy is not None else 0
        started = time.perf_counter()
        deleted, strategy = await _sweep(method, store, plan.CUTOFF)
        seconds = time.perf_counter() - started
        result: dict[str, Any] = {"deleted": deleted, "strategy": strategy, "seconds": seconds}
        if proxy is not None:
            await settle(0.3)
            records = proxy.records_since(mark)
            answered = measure.answered(records)
            result["requests"] = answered.by_kind
            result["total"] = answered.total
            result["server_errors"] = len(records) - answered.total
            await backend.aclose()
        expired_left, live_left = await _left(direct, plan)
        assert expired_left == 0, f"{method} left {expired_left} objects of expired runs"
        assert live_left == plan.markers - plan.expired, f"{method} kept {live_left} live markers"
        assert deleted == plan.expired * plan.entries_per_expired, (method, deleted)
        return result
    finally:
        await direct.aclose()


async def compare_on(
    server_name: str,
    server: S3Server,
    args: argparse.Namespace,
    on_row: Callable[[dict[str, Any]], None],
) -> None:
    """Every method on both fleets of one server: requests, then time; ``on_row`` gets each."""
    build, upstream = builder_for(
        "obstore-s3", lambda: server, _unused, _unused, _unused, server.new_bucket()
    )
    methods = [method for method in METHODS if method in args.methods]
    for round_number, expired in enumerate(args.expired):
        plan = measure.SweepLayout(f"sweep-{expired}", args.markers, expired, args.entries)
        direct = build(None)
        try:
            measure.log(f"{server_name}: {plan.markers - expired:,} live markers")
            await measure.fill(direct, ((key, b"") for key in plan.live_markers()), concurrency=64)
        finally:
            await direct.aclose()
        shift = round_number % len(methods)
        for method in methods[shift:] + methods[:shift]:
            with CountingProxy(upstream, classify=classify_bench) as proxy:
                counted = await _one_sweep(method, build, plan, proxy)
            timed = await _one_sweep(method, build, plan, None) if method in args.timed else None
            row = {
                "server": server_name,
                "markers": plan.markers,
                "expired": expired,
                "entries_per_run": plan.entries_per_expired,
                "method": method,
                "strategy": counted["strategy"],
                "requests": counted["requests"],
                "total": counted["total"],
                "server_errors": counted["server_errors"],
                "seconds": None if timed is None else timed["seconds"],
                "seconds_through_proxy": counted["seconds"],
            }
            measure.log(f"{server_name}, {expired:,} expired: {row}")
            on_row(row)


def _unused() -> Any:
    raise AssertionError("only the S3 server is used")


def render(result: dict[str, Any]) -> str:
    """The markdown tables of one run."""
    params = result["params"]
    begin, end = report.markers("sweep")
    runs = "; ".join(
        f"{run['servers']} ({run['methods']}) {run['started']}, "
        f"{run.get('seconds', 0) / 60:.1f} min, load average {run['load_before']} before and "
        f"{run.get('load_after', '?')} after"
        for run in result["runs"]
    )
    lines = [
        begin,
        "",
        f"{params['markers']:,} markers, {params['entries']} entries per expired run, obstore "
        f"S3 adapter. Runs: {runs}. Requests: through the counting proxy, answered below 500 "
        "(5xx apart: moto's listings racing deletes, sent again by the client). obstore "
        "sends even a single delete as a one-key DeleteObjects, so the reference's DELETE per "
        "key shows as `batch`. Seconds direct: the same fleet written again and swept "
        "straight to the server; through the proxy: the sweep that was counted. Ratios are "
        "to `auto` in the same column.",
        "",
    ]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in result["rows"]:
        groups.setdefault((row["server"], row["expired"]), []).append(row)
    for (server, expired), rows in groups.items():
        ours = next((row for row in rows if row["method"] == "auto"), {})
        lines += [
            f"**{server}, {expired:,} of {params['markers']:,} markers expired**",
            "",
            "| method | ran | list-markers | list | batch | delete | total requests "
            "| 5xx | seconds direct | seconds through the proxy |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in sorted(rows, key=lambda r: METHODS.index(r["method"])):
            kinds = row["requests"]
            cells = [kinds.get(kind, 0) for kind in ("list-markers", "list", "batch", "delete")]
            lines.append(
                f"| {row['method']} | {row['strategy']} | "
                + " | ".join(f"{cell:,}" for cell in cells)
                + f" | {row['total']:,} | {row['server_errors']} | {_seconds(row, ours)} |"
            )
        lines.append("")
    return "\n".join([*lines, end])


def _seconds(row: dict[str, Any], ours: dict[str, Any]) -> str:
    """Both times of ``row``, each with its ratio to ``auto``'s ('-' where not measured)."""
    cells = []
    for key in ("seconds", "seconds_through_proxy"):
        if row.get(key) is None:
            cells.append("-")
        elif ours.get(key) is None:
            cells.append(f"{row[key]:.2f}")
        else:
            cells.append(f"{row[key]:.2f} ({row[key] / ours[key]:.1f}x)")
    return " | ".join(cells)


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = set(names) - set(METHODS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown methods {sorted(unknown)}; known: {METHODS}")
    return names


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_compare", description=__doc__)
    parser.add_argument("--markers", type=int, default=10_000)
    parser.add_argument(
        "--expired", type=lambda s: [int(n) for n in s.split(",")], default=[1_000, 9_000]
    )
    parser.add_argument("--entries", type=int, default=2, help="entries per expired run")
    parser.add_argument("--servers", default="moto,rgw", help="moto, rgw or both")
    parser.add_argument(
        "--methods", type=_names, default=list(METHODS), help="the methods to run, comma-separated"
    )
    parser.add_argument(
        "--timed",
        type=_names,
        default=list(TIMED),
        help="the methods also swept direct to the server ('' for none)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add to the rows of the last run (same server, fleet and method replaced)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "sweep_compare.json")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.monotonic()
    run: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": measure.load_average(),
        "servers": args.servers,
        "expired": args.expired,
        "methods": ", ".join(args.methods),
    }
    result: dict[str, Any] = {"params": {"markers": args.markers, "entries": args.entries}}
    if args.merge:
        last = json.loads(args.json.read_text(encoding="utf-8"))
        assert last["params"] == result["params"], "merge only runs of the same sizes"
        result.update(last)
    result.setdefault("runs", []).append(run)
    result.setdefault("rows", [])

    def on_row(row: dict[str, Any]) -> None:
        # Saved row by row, so that an interrupted run keeps what it measured.
        same = ("server", "expired", "method")
        result["rows"] = [
            kept for kept in result["rows"] if any(kept[k] != row[k] for k in same)
        ] + [row]
        run["seconds"] = time.monotonic() - started
        run["load_after"] = measure.load_average()
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        report.write_section(args.out, render(result), name="sweep")

    wanted = set(args.servers.split(","))
    starters: dict[str, Callable[[], S3Server]] = {
        "moto": resolve_s3_server,
        "rgw": resolve_rgw_server,
    }
    names = {"moto": "moto", "rgw": "Ceph RGW"}
    with ExitStack() as stack:
        for key in ("moto", "rgw"):
            if key not in wanted:
                continue
            measure.log(f"starting {names[key]}")
            server = starters[key]()
            stack.callback(server.close)
            await compare_on(names[key], server, args, on_row)
    measure.log(f"raw results in {args.json}, tables in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
