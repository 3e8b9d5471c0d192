"""taquba-memo's OpenTelemetry spans and metrics, printed to the console (docs/observability.md).

Run it with ``python docs/examples/otel_console.py`` where ``taquba-memo[otel]`` and
``opentelemetry-sdk`` are installed. The application sets the global providers;
the library needs no other wiring.
"""

from __future__ import annotations

import asyncio

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from taquba_memo import InMemoryBackend, MemoStore

tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(tracer_provider)
reader = PeriodicExportingMetricReader(ConsoleMetricExporter())
meter_provider = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(meter_provider)


async def main() -> None:
    store = MemoStore(InMemoryBackend(), "example")
    memo = store.new_memo("run-1", 0)
    with trace.get_tracer("my-agent").start_as_current_span("agent step"):
        for _attempt in range(2):  # the retry finds the memo: one span "miss", one "hit"
            await memo.get_or_compute("plan", lambda: b"an expensive answer")
    print(store.stats.snapshot())


asyncio.run(main())
meter_provider.shutdown()  # flushes the metrics to the console
