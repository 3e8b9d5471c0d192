"""The cost of being observable: Memo get/put with OpenTelemetry off, without a provider, on an SDK.

Run it with ``uv run python -m benchmarks.otel_overhead`` (``--rounds``,
``--block`` for the sizes). One process measures, block by block in rotating
order so load on the machine falls on every configuration alike:

- ``backend``: the backend's own get/put, no memo layer (the floor);
- ``otel off``: ``Memo.get``/``put`` with ``set_otel_enabled(False)`` (stats only);
- ``no provider``: the ``otel`` extra installed, no provider set (the default
  for a library user who does not configure OpenTelemetry);
- ``sdk``: a global SDK tracer provider with a SimpleSpanProcessor into an
  in-memory exporter, and a meter provider with an in-memory reader.

The global providers can be set once per process, so ``no provider`` is
measured first (against ``backend`` and ``otel off``), then the providers are
set and ``sdk`` is measured (against the same two again). Each figure is the
median over rounds of one block's mean time per get+put pair. It prints a
Markdown table; BENCHMARKS.md holds a run of it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend, MemoStore
from taquba_memo import set_otel_enabled as set_otel

from benchmarks.report import markdown_table

Pair = Callable[[int], Awaitable[None]]


def pairs(store: MemoStore) -> tuple[Pair, Pair]:
    """One get+put through the backend, and one through a Memo."""
    backend = store.backend
    memo = store.new_memo("bench", 0)
    value = b"x" * 256

    async def raw(index: int) -> None:
        key = f"raw/{index % 64}"
        await backend.put(key, value)
        await backend.get(key)

    async def memoized(index: int) -> None:
        key = f"k{index % 64}"
        await memo.put(key, value)
        await memo.get(key)

    return raw, memoized


async def block_time(pair: Pair, block: int, before: Callable[[], None]) -> float:
    before()
    started = time.perf_counter()
    for index in range(block):
        await pair(index)
    return (time.perf_counter() - started) / block


async def phase(store: MemoStore, instrumented: str, rounds: int, block: int) -> dict[str, float]:
    """Median microseconds per pair of ``backend``, ``otel off`` and ``instrumented``."""
    raw, memoized = pairs(store)
    configurations: list[tuple[str, Pair, Callable[[], None]]] = [
        ("backend", raw, lambda: set_otel(False)),
        ("otel off", memoized, lambda: set_otel(False)),
        (instrumented, memoized, lambda: set_otel(True)),
    ]
    for _name, pair, before in configurations:  # warm-up: imports, caches, files
        await block_time(pair, block, before)
    times: dict[str, list[float]] = {name: [] for name, _pair, _before in configurations}
    for round_number in range(rounds):
        shift = round_number % len(configurations)
        for name, pair, before in configurations[shift:] + configurations[:shift]:
            times[name].append(await block_time(pair, block, before))
    return {name: statistics.median(found) * 1e6 for name, found in times.items()}


def install_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


async def measure(rounds: int, block: int) -> list[tuple[str, dict[str, float]]]:
    results: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="taquba-memo-otel-") as scratch:
        backends: list[tuple[str, MemoBackend]] = [
            ("InMemoryBackend", InMemoryBackend()),
            ("LocalFileBackend", LocalFileBackend(Path(scratch))),
        ]
        stores = [(name, MemoStore(backend, "bench")) for name, backend in backends]
        for name, store in stores:
            results.append((name, await phase(store, "no provider", rounds, block)))
        install_sdk()
        for name, store in stores:
            results.append((name, await phase(store, "sdk", rounds, block)))
    return results


def table(results: list[tuple[str, dict[str, float]]]) -> str:
    header = ["backend", "configuration", "us per get+put", "vs otel off", "vs backend"]
    rows = []
    for name, figures in results:
        off, floor = figures["otel off"], figures["backend"]
        for configuration, micros in figures.items():
            vs_off, vs_floor = (micros / off - 1) * 100, (micros / floor - 1) * 100
            rows.append(
                [name, configuration, f"{micros:.1f}", f"{vs_off:+.1f}%", f"{vs_floor:+.1f}%"]
            )
    return "\n".join(markdown_table(header, rows, numbers=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="blocks per configuration")
    parser.add_argument("--block", type=int, default=200, help="get+put pairs per block")
    args = parser.parse_args()
    print(table(asyncio.run(measure(args.rounds, args.block))))


if __name__ == "__main__":
    main()
