"""The OpenTelemetry SDK as an application configures it, with an in-memory exporter and reader.

The global tracer and meter providers can be set once per process, so they
are set on first use and kept; each test clears what was recorded before it,
and turns the library's OpenTelemetry on for its duration only (it is off
after, so later tests in the process record nothing). A module uses the
fixture by importing ``captured_telemetry`` and asking for ``otel``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from taquba_memo import _telemetry, set_otel_enabled

_EXPORTER = InMemorySpanExporter()
# Delta: each collection holds what was recorded since the previous one.
_READER = InMemoryMetricReader(
    preferred_temporality={
        Counter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
    }
)
_installed = False


def install_global_providers() -> None:
    """Set the global providers, as an application does once at start-up."""
    global _installed
    if _installed:
        return
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    _installed = True


@dataclass
class Telemetry:
    """What the library recorded during one test."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, oldest first; only those called ``name`` if given."""
        finished = list(self.exporter.get_finished_spans())
        return [span for span in finished if name is None or span.name == name]

    def points(self) -> list[tuple[str, dict[str, Any], Any]]:
        """Every data point recorded since the previous call: (metric, attributes, point)."""
        data = self.reader.get_metrics_data()
        found: list[tuple[str, dict[str, Any], Any]] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                if scope.scope.name != _telemetry.INSTRUMENTATION_NAME:
                    continue
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        found.append((metric.name, dict(point.attributes or {}), point))
        return found


def total(points: list[tuple[str, dict[str, Any], Any]], metric: str, **attributes: Any) -> float:
    """The sum of ``metric``'s points whose attributes include ``attributes``
    (dots in attribute names are written as double underscores)."""
    wanted = {name.replace("__", "."): value for name, value in attributes.items()}
    amount: float = 0
    for name, found, point in points:
        if name == metric and wanted.items() <= found.items():
            amount += point.count if isinstance(point, HistogramDataPoint) else point.value
    return amount


@pytest.fixture(name="otel")
def captured_telemetry() -> Iterator[Telemetry]:
    install_global_providers()
    _EXPORTER.clear()
    _READER.get_metrics_data()  # what earlier tests recorded
    set_otel_enabled(True)
    try:
        yield Telemetry(_EXPORTER, _READER)
    finally:
        set_otel_enabled(False)  # the providers stay set: later tests record nothing
