"""The measurements: requests per operation, side-by-side timings, peak memory.

Every function takes what it measures as arguments and returns plain data
(dicts of numbers), so the runner can print it and the report can render it.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from taquba_memo import MemoBackend, MemoStore
from taquba_memo import _layout as layout
from taquba_memo_conformance.proxies import CountingProxy, RequestCounts, RequestRecord

from benchmarks.targets import RawSDK, settle

__all__ = [
    "SweepLayout",
    "answered",
    "count_clear",
    "count_get_put",
    "count_sweep",
    "fill",
    "fill_run",
    "fill_sweep",
    "load_average",
    "log",
    "peak_memory_iterating",
    "reference_clear",
    "time_clear_vs_reference",
    "time_get_put",
]

VALUE = bytes(range(256)) * 4  # 1 KiB, a typical memoised answer


def log(message: str) -> None:
    """One progress line on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or '?' where the system has none."""
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "?"


async def fill(
    backend: MemoBackend, items: Iterable[tuple[str, bytes]], *, concurrency: int = 32
) -> int:
    """Write every ``(key, value)`` with up to ``concurrency`` puts in flight; return the count."""
    semaphore = asyncio.Semaphore(concurrency)
    written = 0

    async def put(key: str, value: bytes) -> None:
        nonlocal written
        async with semaphore:
            await backend.put(key, value)
            written += 1

    await asyncio.gather(*(put(key, value) for key, value in items))
    return written


def run_entries(prefix: str, run_id: str, entries: int, per_step: int = 100) -> list[str]:
    """Object keys of ``entries`` memo entries of one run, ``per_step`` per step."""
    return [
        layout.memo_key(prefix, run_id, index // per_step, f"key-{index}")
        for index in range(entries)
    ]


async def fill_run(backend: MemoBackend, prefix: str, run_id: str, entries: int) -> None:
    keys = run_entries(prefix, run_id, entries)
    await fill(backend, ((key, b"v") for key in keys))


# -- 1. requests per operation -------------------------------------------------


def _per_op(counts: RequestCounts, repetitions: int) -> dict[str, float]:
    return {kind: count / repetitions for kind, count in counts.by_kind.items()}


def answered(records: list[RequestRecord]) -> RequestCounts:
    """Requests the server answered below 500 (see :func:`_server_errors`)."""
    return RequestCounts.of(r for r in records if r.status is not None and r.status < 500)


def _server_errors(records: list[RequestRecord]) -> dict[str, int]:
    """Requests answered 5xx (or not at all), by kind: the client sends them again.

    moto answers 500 (a KeyError inside moto) to a listing that races a delete
    in the same bucket; these are counted apart from the adapter's requests.
    """
    return RequestCounts.of(r for r in records if r.status is None or r.status >= 500).by_kind


async def count_get_put(
    proxy: CountingProxy, backend: MemoBackend, prefix: str, *, repetitions: int = 5
) -> dict[str, dict[str, float]]:
    """Requests per Memo.put (new key, overwrite) and Memo.get (hit, miss), by kind."""
    async with MemoStore(backend, prefix) as store:
        memo = store.new_memo("count-run", 0)
        await memo.put("warm-up", VALUE)  # first-use work (connections, SDK metadata) not counted
        await memo.get("warm-up")
        await settle(1.0)
        operations: dict[str, Callable[[int], Awaitable[object]]] = {
            "put (new key)": lambda i: memo.put(f"new-{i}", VALUE),
            "put (overwrite)": lambda i: memo.put(f"new-{i}", VALUE),
            "get (hit)": lambda i: memo.get(f"new-{i}"),
            "get (miss)": lambda i: memo.get(f"missing-{i}"),
        }
        result: dict[str, dict[str, float]] = {}
        for name, operation in operations.items():
            mark = proxy.mark()
            for index in range(repetitions):
                await operation(index)
            await settle(0.5)  # background requests an SDK sends after the call returned
            result[name] = _per_op(RequestCounts.of(proxy.records_since(mark)), repetitions)
    return result


async def count_clear(
    proxy: CountingProxy, backend: MemoBackend, prefix: str, run_id: str, entries: int
) -> dict[str, Any]:
    """Requests of one clear_memos_for_run over ``entries`` entries (already written)."""
    async with MemoStore(backend, prefix) as store:
        mark = proxy.mark()
        started = time.perf_counter()
        deleted = await store.clear_memos_for_run(run_id)
        seconds = time.perf_counter() - started
        await settle(0.5)
        records = proxy.records_since(mark)
    counts = answered(records)
    return {
        "entries": entries,
        "deleted": deleted,
        "requests": counts.by_kind,
        "total": counts.total,
        "server_errors": _server_errors(records),
        "seconds_through_proxy": seconds,
    }


class SweepLayout:
    """The sweep's objects: ``live`` markers that stay, ``expired`` ones with their entries."""

    LIVE_FROM = 2_000_000_000_000
    EXPIRED_FROM = 1_000_000_000_000
    CUTOFF = 1_500_000_000_000

    def __init__(self, prefix: str, markers: int, expired: int, entries_per_expired: int) -> None:
        self.prefix = prefix
        self.markers = markers
        self.expired = expired
        self.entries_per_expired = entries_per_expired

    def live_markers(self) -> list[str]:
        return [
            layout.terminal_marker_key(self.prefix, f"live-{i:06d}", self.LIVE_FROM + i)
            for i in range(self.markers - self.expired)
        ]

    def expired_objects(self) -> list[str]:
        keys: list[str] = []
        for i in range(self.expired):
            run_id = f"old-{i:05d}"
            keys.append(layout.terminal_marker_key(self.prefix, run_id, self.EXPIRED_FROM + i))
            keys.extend(
                layout.memo_key(self.prefix, run_id, step, "answer")
                for step in range(self.entries_per_expired)
            )
        return keys


async def fill_sweep(backend: MemoBackend, plan: SweepLayout, *, live: bool) -> None:
    keys = plan.expired_objects() + (plan.live_markers() if live else [])
    await fill(backend, ((key, b"" if "/terminals/" in key else b"v") for key in keys))


async def count_sweep(
    proxy: CountingProxy, backend: MemoBackend, plan: SweepLayout
) -> dict[str, Any]:
    """Requests of one sweep whose cutoff expires ``plan.expired`` of ``plan.markers``."""
    async with MemoStore(backend, plan.prefix) as store:
        mark = proxy.mark()
        started = time.perf_counter()
        report = await store.sweep(plan.CUTOFF)
        seconds = time.perf_counter() - started
        await settle(0.5)
        records = proxy.records_since(mark)
    counts = answered(records)
    return {
        "server_errors": _server_errors(records),
        "markers": plan.markers,
        "expired": plan.expired,
        "runs_cleared": len(report.runs_cleared),
        "entries_deleted": report.entries_deleted,
        "strategy": report.strategy,
        "failures": len(report.failures),
        "requests": counts.by_kind,
        "total": counts.total,
        "seconds_through_proxy": seconds,
    }


# -- 2. side-by-side timings -----------------------------------------------------


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p10_ms": ordered[len(ordered) // 10] * 1000,
        "p90_ms": ordered[(len(ordered) * 9) // 10] * 1000,
        "n": len(ordered),
    }


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    result = function(*args)
    if asyncio.iscoroutine(result):
        return await result
    return result


async def time_get_put(
    backend: MemoBackend, raw: RawSDK, prefix: str, *, pairs: int, warmup: int = 20
) -> dict[str, Any]:
    """Per-call latency of Memo.get/put against the raw SDK's, interleaved call by call.

    Variants per operation: ``ours`` (the Memo API), ``backend`` (the adapter
    alone, without the Memo layer's key hashing), ``raw`` (the SDK's call as
    its users make it: awaited for an async SDK, called directly for a
    blocking one) and, for a blocking SDK, ``raw in a thread``
    (``asyncio.to_thread``, what async code must do with it). The order of
    the variants rotates every round, so drift on a noisy machine spreads
    evenly. Ratios are of medians; ``block_ratios`` are the same ratio over
    five consecutive blocks, to show the noise.
    """
    store = MemoStore(backend, prefix)
    memo = store.new_memo("timing-run", 7)
    user_key = "timed-entry"
    name = layout.memo_key(prefix, "timing-run", 7, user_key)
    await memo.put(user_key, VALUE)

    variants: dict[str, dict[str, Callable[[], Awaitable[Any]]]] = {
        "get": {
            "ours": lambda: memo.get(user_key),
            "backend": lambda: backend.get(name),
            "raw": lambda: _call(raw.get, name),
        },
        "put": {
            "ours": lambda: memo.put(user_key, VALUE),
            "backend": lambda: backend.put(name, VALUE),
            "raw": lambda: _call(raw.put, name, VALUE),
        },
    }
    if raw.blocking:
        variants["get"]["raw in a thread"] = lambda: asyncio.to_thread(raw.get, name)
        variants["put"]["raw in a thread"] = lambda: asyncio.to_thread(raw.put, name, VALUE)

    result: dict[str, Any] = {"raw_sdk": raw.describe, "blocking_sdk": raw.blocking}
    for operation, calls in variants.items():
        names = list(calls)
        samples: dict[str, list[float]] = {variant: [] for variant in names}
        for round_number in range(warmup + pairs):
            shift = round_number % len(names)
            for variant in names[shift:] + names[:shift]:
                started = time.perf_counter()
                await calls[variant]()
                elapsed = time.perf_counter() - started
                if round_number >= warmup:
                    samples[variant].append(elapsed)
        summary = {variant: _summary(values) for variant, values in samples.items()}
        raw_median = summary["raw"]["median_ms"]
        blocks = 5
        size = pairs // blocks
        block_ratios = [
            statistics.median(samples["ours"][b * size : (b + 1) * size])
            / statistics.median(samples["raw"][b * size : (b + 1) * size])
            for b in range(blocks)
        ]
        result[operation] = {
            "latency": summary,
            "ours_over_raw": summary["ours"]["median_ms"] / raw_median,
            "backend_over_raw": summary["backend"]["median_ms"] / raw_median,
            "block_ratios": block_ratios,
        }
        if "raw in a thread" in summary:
            result[operation]["ours_over_raw_in_thread"] = (
                summary["ours"]["median_ms"] / summary["raw in a thread"]["median_ms"]
            )
    await _call(raw.close)
    return result


async def reference_clear(backend: MemoBackend, prefix: str, run_id: str) -> int:
    """memo.rs's clear_memos_for_run: one listing, then one DELETE per entry, in sequence."""
    deleted = 0
    async for key in backend.list(layout.memos_run_prefix(prefix, run_id)):
        await backend.delete(key)
        deleted += 1
    return deleted


async def time_clear_vs_reference(
    backend: MemoBackend, prefix: str, entries: int, repetitions: int
) -> dict[str, Any]:
    """Seconds to clear ``entries`` entries: ours against the reference, alternating."""
    store = MemoStore(backend, prefix)
    seconds: dict[str, list[float]] = {"ours": [], "reference": []}
    for repetition in range(repetitions):
        order = ["ours", "reference"] if repetition % 2 == 0 else ["reference", "ours"]
        for variant in order:
            run_id = f"timed-clear-{variant}-{repetition}"
            await fill_run(backend, prefix, run_id, entries)
            started = time.perf_counter()
            if variant == "ours":
                deleted = await store.clear_memos_for_run(run_id)
            else:
                deleted = await reference_clear(backend, prefix, run_id)
            seconds[variant].append(time.perf_counter() - started)
            assert deleted == entries, f"{variant} deleted {deleted} of {entries}"
    ours, reference = statistics.median(seconds["ours"]), statistics.median(seconds["reference"])
    return {
        "entries": entries,
        "repetitions": repetitions,
        "seconds": seconds,
        "ours_median_s": ours,
        "reference_median_s": reference,
        "speedup": reference / ours,
    }


# -- 3. peak memory ----------------------------------------------------------------


async def peak_memory_iterating(store: MemoStore, *, materialize: bool = False) -> dict[str, Any]:
    """Peak Python memory (tracemalloc) while going through every terminal marker.

    ``materialize`` measures ``list_terminal_markers`` (all markers in one
    list) instead of streaming with ``iter_terminal_markers``, for contrast.
    Allocations outside Python (obstore's Rust side) are not seen.
    """
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        if materialize:
            count = len(await store.list_terminal_markers())
        else:
            count = 0
            async for _marker in store.iter_terminal_markers():
                count += 1
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    return {
        "markers": count,
        "peak_bytes": peak,
        "peak_mib": peak / 2**20,
        "bytes_per_marker": peak / count if count else math.nan,
        "seconds_traced": seconds,
    }
