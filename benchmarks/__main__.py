"""Run the benchmark: ``python -m benchmarks`` (``just bench`` starts it).

Starts moto, fake-gcs-server and Azurite on 127.0.0.1 through the conformance
kit, measures every adapter (requests per operation through a counting proxy,
side-by-side timings direct to the server, peak memory), writes the raw
numbers to ``benchmarks/last_run.json`` and the tables into BENCHMARKS.md.
``--quick`` shrinks every size for a smoke run (its results are not written
to BENCHMARKS.md unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from taquba_memo import MemoStore
from taquba_memo import _layout as layout
from taquba_memo._backends.local import LocalFileBackend
from taquba_memo._backends.memory import InMemoryBackend

from benchmarks import measure, report
from benchmarks.targets import RGW_TARGETS, Target, make_targets, servers

ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("obstore", "google-cloud-storage", "azure-storage-blob", "minio", "moto")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def machine() -> dict[str, Any]:
    cpu_model = platform.processor() or "unknown"
    memory_gib = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gib = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    versions = []
    for package in _PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    versions += ["fake-gcs-server 1.54.0", "Azurite 3.35.0"]
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": ", ".join(versions),
        "load_before": measure.load_average(),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000, help="entries cleared")
    parser.add_argument("--markers", type=int, default=10_000, help="markers in the sweep")
    parser.add_argument("--expired", type=int, default=100, help="expired markers in the sweep")
    parser.add_argument("--entries-per-expired", type=int, default=10)
    parser.add_argument("--memory-markers", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=300, help="timed rounds for get/put")
    parser.add_argument("--clear-reps", type=int, default=3, help="repetitions of the clear timing")
    parser.add_argument(
        "--only",
        default="",
        help=(
            "comma-separated target names (default: all but the RGW ones; RGW's are "
            f"{', '.join(repr(name) for name in RGW_TARGETS)}, or 'rgw' for both). The "
            "results are merged into the last run's, whose other targets are kept"
        ),
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--skip-counts", action="store_true", help="only the timings and the memory"
    )
    parser.add_argument(
        "--skip-timings",
        action="store_true",
        help="only the request counts; the last run's timings and memory are kept",
    )
    parser.add_argument("--out", type=Path, default=None, help="markdown file to update")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "last_run.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.entries, args.markers, args.expired = 1_500, 1_200, 30
        args.entries_per_expired, args.memory_markers = 3, 5_000
        args.pairs, args.clear_reps = 50, 1
    elif args.out is None:
        args.out = ROOT / "BENCHMARKS.md"
    return args


async def count_requests(
    target: Target, args: argparse.Namespace, *, write_live_markers: bool
) -> dict[str, Any]:
    """Requests per operation on one adapter; ``write_live_markers`` once per server."""
    slug = _slug(target.name)
    direct = target.backend(None)
    entries = min(args.entries, target.max_clear_entries or args.entries)
    result: dict[str, Any] = {
        "server": target.server,
        "notes": target.notes,
        "max_delete_batch": direct.capabilities.max_delete_batch,
        "ordered_listing": direct.capabilities.ordered_listing,
    }
    plan = measure.SweepLayout("sweep", args.markers, args.expired, args.entries_per_expired)
    try:
        with target.counting_proxy() as proxy:
            measure.log(f"{target.name}: requests per get/put")
            result["get_put_requests"] = await measure.count_get_put(
                proxy, target.backend(proxy.url), slug, repetitions=5
            )
            measure.log(f"{target.name}: writing {entries:,} entries, then clearing them")
            await measure.fill_run(direct, slug, "clear-run", entries)
            result["clear_requests"] = await measure.count_clear(
                proxy, target.backend(proxy.url), slug, "clear-run", entries
            )
            measure.log(f"{target.name}: clear {result['clear_requests']}")
            measure.log(f"{target.name}: writing the sweep's markers (live: {write_live_markers})")
            await measure.fill_sweep(direct, plan, live=write_live_markers)
            result["sweep_requests"] = await measure.count_sweep(
                proxy, target.backend(proxy.url), plan
            )
            measure.log(f"{target.name}: sweep {result['sweep_requests']}")
    finally:
        await direct.aclose()
    return result


async def count_group(
    targets: list[Target], args: argparse.Namespace, results: dict[str, Any]
) -> None:
    """The targets of one server, one after the other (the first writes the live markers)."""
    for index, target in enumerate(targets):
        counted = await count_requests(target, args, write_live_markers=index == 0)
        results["targets"].setdefault(target.name, {}).update(counted)


async def time_target(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Get/put against the raw SDK, and the streaming marker listing's memory."""
    result: dict[str, Any] = {"server": target.server, "notes": target.notes}
    direct = target.backend(None)
    try:
        if target.raw is not None:
            measure.log(f"{target.name}: timing get/put against the raw SDK")
            result["timing"] = await measure.time_get_put(
                direct, target.raw(direct), _slug(target.name), pairs=args.pairs
            )
            measure.log(
                f"{target.name}: get {result['timing']['get']['ours_over_raw']:.3f}, "
                f"put {result['timing']['put']['ours_over_raw']:.3f}"
            )
        if target.proxy_upstream is not None:
            store = MemoStore(direct, "sweep")
            memory = await measure.peak_memory_iterating(store)
            result["memory_iter"] = {"backend": target.name, "mode": "iter", **memory}
    finally:
        await direct.aclose()
    return result


async def bench_memory(count: int, workdir: str) -> list[dict[str, Any]]:
    """Peak memory over ``count`` markers on InMemoryBackend and LocalFileBackend."""
    rows: list[dict[str, Any]] = []
    memory_backend = InMemoryBackend()
    local_backend = LocalFileBackend(
        tempfile.mkdtemp(prefix="markers-", dir=workdir), durable=False
    )

    def names(n: int) -> Iterator[tuple[str, bytes]]:
        for i in range(n):
            yield layout.terminal_marker_key("m", f"run-{i:07d}", 1_700_000_000_000 + i), b""

    for backend, label in (
        (memory_backend, "InMemoryBackend"),
        (local_backend, "LocalFileBackend"),
    ):
        measure.log(f"memory: writing {count:,} markers to {label}")
        for size in sorted({count // 10, count}):
            await measure.fill(backend, names(size), concurrency=16)
            store = MemoStore(backend, "m")
            for mode in ("iter", "list"):
                row = await measure.peak_memory_iterating(store, materialize=mode == "list")
                rows.append({"backend": label, "mode": mode, **row})
                measure.log(f"memory: {rows[-1]}")
    return rows


def merge_into_last_run(partial: dict[str, Any], path: Path) -> dict[str, Any]:
    """The last full run's results with ``partial``'s targets added or replaced.

    Each target measured now says so in its notes (when, and with which sizes),
    so the tables never pass a partial run off as the full one.
    """
    try:
        merged: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return partial
    params = partial["params"]
    when = (
        f"measured in a separate run of {partial['started']} ({partial['seconds'] / 60:.1f} min; "
        f"clear of {params['entries']:,} entries, sweep over {params['markers']:,} markers with "
        f"{params['expired']} expired, {params['pairs']} timed rounds; load average "
        f"{partial['machine']['load_before']} before, {partial['machine']['load_after']} after)"
    )
    for name, target in partial["targets"].items():
        target["notes"] = [*target.get("notes", []), when]
        merged["targets"][name] = target
    names = {row["backend"] for row in partial["memory"]}
    merged["memory"] = [row for row in merged["memory"] if row["backend"] not in names]
    merged["memory"] += partial["memory"]
    return merged


def merge_counts_into_last_run(counted: dict[str, Any], path: Path) -> dict[str, Any]:
    """The last run's timings and memory, with ``counted``'s request counts in place of its own.

    The result says which run each part comes from, so the tables never pass
    counts and timings of different runs off as one.
    """
    merged: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for name, target in counted["targets"].items():
        merged["targets"].setdefault(name, {}).update(target)
    run = {
        "started": counted["started"],
        "seconds": counted["seconds"],
        "params": counted["params"],
        "machine": counted["machine"],
        "targets": sorted(counted["targets"]),
    }
    # Counts-only runs of other targets since the last full run are kept beside this one.
    merged["counts_runs"] = [
        *(r for r in merged.get("counts_runs", []) if set(r["targets"]) - set(run["targets"])),
        run,
    ]
    return merged


async def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    results: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "params": {
            "entries": args.entries,
            "markers": args.markers,
            "expired": args.expired,
            "entries_per_expired": args.entries_per_expired,
            "memory_markers": args.memory_markers,
            "pairs": args.pairs,
            "clear_reps": args.clear_reps,
            "count_repetitions": 5,
            "value_bytes": len(measure.VALUE),
        },
        "targets": {},
        "memory": [],
    }
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if "rgw" in only:
        only = (only - {"rgw"}) | set(RGW_TARGETS)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="taquba-bench-") as workdir:
        want_rgw = bool(only & set(RGW_TARGETS))
        measure.log(
            "starting moto, fake-gcs-server and Azurite" + (" and Ceph RGW" if want_rgw else "")
        )
        srv = stack.enter_context(servers(rgw=want_rgw))
        targets = [
            t
            for t in make_targets(srv, workdir, stack)
            if (t.name in only if only else t.name not in RGW_TARGETS)
        ]
        for target in targets:  # the report lists the targets in this order
            results["targets"][target.name] = {}
        groups: dict[str, list[Target]] = {}
        for target in targets:
            if target.proxy_upstream is not None:
                groups.setdefault(target.server_group, []).append(target)
        # Counts do not depend on timing, so the servers are counted side by side.
        if not args.skip_counts:
            measure.log(f"counting requests on {len(groups)} servers at once")
            await asyncio.gather(*(count_group(group, args, results) for group in groups.values()))
        # Timings run one target at a time.
        for target in [] if args.skip_timings else targets:
            timed = await time_target(target, args)
            results["targets"].setdefault(target.name, {}).update(timed)
        for target in [] if args.skip_timings else targets:
            if target.server.startswith("moto") and target.raw is not None:
                reps = args.clear_reps if target.name == "obstore (S3)" else 1
                measure.log(
                    f"{target.name}: clear of {args.entries:,} entries vs reference, {reps} reps"
                )
                backend = target.backend(None)
                try:
                    timing = await measure.time_clear_vs_reference(
                        backend, _slug(target.name), args.entries, reps
                    )
                finally:
                    await backend.aclose()
                results["targets"][target.name]["clear_timing"] = timing
                measure.log(f"{target.name}: speedup {timing['speedup']:.1f}x")
        # The marker-memory rows of the embedded backends belong to full runs.
        if not only and not args.skip_timings:
            results["memory"] = await bench_memory(args.memory_markers, workdir)
        results["memory"] += [
            {**result["memory_iter"], "backend": f"{name} ({result['server']})"}
            for name, result in results["targets"].items()
            if "memory_iter" in result
        ]
    results["seconds"] = time.monotonic() - started
    results["machine"]["load_after"] = measure.load_average()
    if args.skip_timings:
        results = merge_counts_into_last_run(results, args.json)
    elif only:
        results = merge_into_last_run(results, args.json)
    args.json.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    measure.log(f"raw results in {args.json}")
    if args.out is not None:
        report.write_section(args.out, report.render(results))
        measure.log(f"tables written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
