"""Telemetry (private): the OpenTelemetry spans and metrics of each memo operation.

Each operation updates its store's :class:`~taquba_memo._stats.MemoStats`
(always, see :mod:`taquba_memo._stats`) and, when enabled, OpenTelemetry.
OpenTelemetry is used through ``opentelemetry-api`` only (the ``otel``
extra): it is imported on the first memo operation, and spans and metrics
are recorded only while the application has set a global tracer or meter
provider, so without one (or without the package) an operation pays two
provider look-ups and nothing else. ``TAQUBA_MEMO_OTEL=off`` in the
environment, or :func:`set_otel_enabled` ``(False)``, turns it off.

Run ids and steps go on spans only; metric attributes are the backend kind,
the operation, the outcome and the error kind (bounded sets). No key, value,
prefix, URL or credential is ever an attribute.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any, Protocol

from taquba_memo._stats import MemoStats
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    DeleteManyError,
    ThrottledError,
)

__all__ = ["Operation", "StoreTelemetry", "set_otel_enabled"]

OTEL_SWITCH = "TAQUBA_MEMO_OTEL"
"""The environment variable that turns OpenTelemetry off: ``off``, ``0``, ``false`` or ``no``."""

INSTRUMENTATION_NAME = "taquba_memo"


# -- OpenTelemetry ----------------------------------------------------------------


class _Otel:
    """The tracer and instruments, made once the API is imported."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace

        self.trace = trace
        self.metrics = metrics
        self._metrics_state: Any = None
        try:
            from opentelemetry.metrics import _internal

            self._metrics_state = _internal
        except ImportError:  # pragma: no cover - another API version: the getter decides
            pass
        self.idle_tracers: tuple[type, ...] = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        idle_meters: list[type] = [metrics.NoOpMeterProvider]
        try:
            from opentelemetry.metrics._internal import _ProxyMeterProvider

            idle_meters.append(_ProxyMeterProvider)
        except ImportError:  # pragma: no cover - another API version: record through the proxy
            pass
        self.idle_meters = tuple(idle_meters)
        # Proxies: they follow a provider set later.
        self.tracer = trace.get_tracer(INSTRUMENTATION_NAME)
        meter = metrics.get_meter(INSTRUMENTATION_NAME)

        def counter(name: str, unit: str, description: str) -> metrics.Counter:
            return meter.create_counter(f"taquba_memo.{name}", unit=unit, description=description)

        self.lookups = counter("lookups", "{lookup}", "Memo entry reads by outcome")
        self.compute_duration = meter.create_histogram(
            "taquba_memo.compute.duration",
            unit="s",
            description="Time get_or_compute spent paying for a miss (fn and encoding)",
        )
        self.bytes_read = counter("bytes_read", "By", "Bytes of memo values read")
        self.bytes_written = counter("bytes_written", "By", "Bytes of memo values written")
        self.backend_errors = counter("backend.errors", "{error}", "Storage failures by kind")
        self.runs_cleared = counter("runs_cleared", "{run}", "Runs whose memos were cleared")
        self.entries_deleted = counter(
            "entries_deleted", "{entry}", "Memo entries deleted by run clears and sweeps"
        )

    # The public getters cost microseconds (each reads os.environ); a provider
    # never set is seen from the API's own global, which stays None until then.
    def idle(self) -> bool:
        """No provider was ever set: the one check an operation pays then."""
        return (
            getattr(self.trace, "_TRACER_PROVIDER", _UNKNOWN) is None
            and getattr(self._metrics_state, "_METER_PROVIDER", _UNKNOWN) is None
            and not _PROVIDER_ENV[0]
            and not _PROVIDER_ENV[1]
        )

    def tracing(self) -> bool:
        if getattr(self.trace, "_TRACER_PROVIDER", _UNKNOWN) is None and not _PROVIDER_ENV[0]:
            return False
        return not isinstance(self.trace.get_tracer_provider(), self.idle_tracers)

    def metering(self) -> bool:
        state = self._metrics_state
        if getattr(state, "_METER_PROVIDER", _UNKNOWN) is None and not _PROVIDER_ENV[1]:
            return False
        return not isinstance(self.metrics.get_meter_provider(), self.idle_meters)


_UNKNOWN = object()
# OTEL_PYTHON_{TRACER,METER}_PROVIDER name a provider the getters load on first use.
_PROVIDER_ENV = (
    "OTEL_PYTHON_TRACER_PROVIDER" in os.environ,
    "OTEL_PYTHON_METER_PROVIDER" in os.environ,
)


_otel: _Otel | None = None
_otel_state = "unresolved"  # "unresolved", "on" or "off"
_otel_lock = threading.Lock()


def _switched_off_by_env() -> bool:
    return os.environ.get(OTEL_SWITCH, "").strip().lower() in ("off", "0", "false", "no")


def set_otel_enabled(enabled: bool) -> None:
    """Turn OpenTelemetry spans and metrics on or off for every store in this process.

    On is the default wherever ``opentelemetry-api`` is installed, unless
    ``TAQUBA_MEMO_OTEL=off``; this call overrides the environment. Stats
    (``store.stats``) are kept either way.
    """
    global _otel_state
    if not isinstance(enabled, bool):
        raise TypeError("enabled must be a bool")
    with _otel_lock:
        _otel_state = "on" if enabled else "off"


def _active_otel() -> _Otel | None:
    global _otel, _otel_state
    if _otel_state == "unresolved":
        with _otel_lock:
            if _otel_state == "unresolved":
                _otel_state = "off" if _switched_off_by_env() else "on"
    if _otel_state == "off":
        return None
    if _otel is None:
        with _otel_lock:
            if _otel is None:
                try:
                    _otel = _Otel()
                except ImportError:  # the otel extra is not installed
                    _otel_state = "off"
                    return None
    return _otel


def error_kind(error: BaseException) -> str:
    """A storage failure's kind, for the ``error.kind`` metric attribute."""
    if isinstance(error, ThrottledError):
        return "throttled"
    if isinstance(error, AccessDeniedError):
        return "access_denied"
    if isinstance(error, ContainerNotFoundError):
        return "not_found"
    if isinstance(error, DeleteManyError):
        return "partial_delete"
    if isinstance(error, BackendError) and error.transient:
        return "transient"
    return "other"


def backend_kind(backend: object) -> str:
    """A short, stable name of the kind of backend: ``gcs``, ``azure``, ``InMemoryBackend``."""
    package = type(backend).__module__.split(".", 1)[0]
    if package.startswith("taquba_memo_"):
        return package[len("taquba_memo_") :]
    return type(backend).__name__


def _bucket_of(backend: object) -> str | None:
    for name in ("bucket_name", "bucket", "container_name"):
        try:
            value = getattr(backend, name, None)
        except Exception:
            continue
        if isinstance(value, str):
            return value
    return None


class StoreTelemetry:
    """One store's stats and the attributes its spans and metrics carry."""

    __slots__ = ("kind", "metric_attributes", "span_attributes", "stats")

    def __init__(self, backend: object) -> None:
        self.stats = MemoStats()
        self.kind = backend_kind(backend)
        self.metric_attributes: dict[str, str] = {"taquba_memo.backend": self.kind}
        self.span_attributes: dict[str, str] = dict(self.metric_attributes)
        bucket = _bucket_of(backend)
        if bucket is not None:
            self.span_attributes["taquba_memo.bucket"] = bucket

    def operation(self, name: str, run_id: str | None = None, step: int | None = None) -> Operation:
        """A context manager around one operation: its span, metrics and stats."""
        return Operation(self, name, run_id, step)

    def run_cleared(self, run_id: str, entries_deleted: int, operation: str) -> None:
        """A run's memos were cleared (by ``clear_memos_for_run`` or a sweep)."""
        otel = _active_otel()
        if otel is None:
            return
        if otel.metering():
            attributes = {**self.metric_attributes, "taquba_memo.operation": operation}
            otel.runs_cleared.add(1, attributes)
            otel.entries_deleted.add(entries_deleted, attributes)
        if operation == "sweep" and otel.tracing():
            span = otel.tracer.start_span(
                "taquba_memo.sweep.run",
                attributes={
                    **self.span_attributes,
                    "taquba_memo.run_id": run_id,
                    "taquba_memo.entries_deleted": entries_deleted,
                },
            )
            span.end()


class _SweepOutcome(Protocol):
    """What a span reads of a :class:`~taquba_memo.SweepReport`."""

    strategy: str
    dry_run: bool
    runs_cleared_count: int
    entries_deleted: int
    failures: list[Any]


class Operation:
    """One memo operation in progress; records what it found as it goes.

    Its span (when tracing) is current inside the ``with`` block, so the
    SDK's own HTTP spans nest under it. Span attributes are set when the
    block ends, so a computation that outlives its caller only adds metrics.
    """

    __slots__ = (
        "_metering_otel",
        "_otel",
        "_span",
        "_token",
        "_tracing",
        "attributes",
        "name",
        "store",
    )

    def __init__(
        self, store: StoreTelemetry, name: str, run_id: str | None, step: int | None
    ) -> None:
        self.store = store
        self.name = name
        self.attributes: dict[str, Any] = {}
        if run_id is not None:
            self.attributes["taquba_memo.run_id"] = run_id
        if step is not None:
            self.attributes["taquba_memo.step"] = step
        self._otel: _Otel | None = None
        self._metering_otel: _Otel | None = None
        self._tracing = False
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Operation:
        otel = self._otel = _active_otel()
        if otel is None or otel.idle():
            return self
        if otel.metering():
            self._metering_otel = otel
        if otel.tracing():
            self._tracing = True
            self._span = otel.tracer.start_span(
                f"taquba_memo.{self.name}", attributes=self.store.span_attributes
            )
            context = otel.trace.set_span_in_context(self._span)
            from opentelemetry import context as otel_context

            self._token = otel_context.attach(context)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and isinstance(exc, Exception):
            self.failed(exc)
        if not self._tracing:
            return
        from opentelemetry import context as otel_context

        otel_context.detach(self._token)
        span = self._span
        span.set_attributes(self.attributes)
        if exc is not None:
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(self._otel.trace.Status(self._otel.trace.StatusCode.ERROR))  # type: ignore[union-attr]
        span.end()

    # -- what the operation found ------------------------------------------------

    def _metering(self) -> _Otel | None:
        return self._metering_otel

    def _lookup(self, outcome: str) -> None:
        self.attributes["taquba_memo.outcome"] = outcome
        otel = self._metering()
        if otel is not None:
            otel.lookups.add(1, {**self.store.metric_attributes, "taquba_memo.outcome": outcome})

    def read(self, data: bytes | None) -> None:
        """A lookup returned ``data`` (None: absent)."""
        if data is None:
            self.store.stats.add(lookups=1, misses=1)
            self._lookup("miss")
            return
        self.store.stats.add(lookups=1, hits=1, bytes_read=len(data))
        self.attributes["taquba_memo.value_size"] = len(data)
        self._lookup("hit")
        otel = self._metering()
        if otel is not None:
            otel.bytes_read.add(len(data), self.store.metric_attributes)

    def undecodable(self, data: bytes) -> None:
        """A lookup found ``data``, which did not decode: a miss."""
        self.store.stats.add(lookups=1, misses=1, decode_errors=1, bytes_read=len(data))
        self._lookup("decode_error")

    def shared(self) -> None:
        """The call got a concurrent call's result (single flight)."""
        self.store.stats.add(lookups=1, shared=1)
        self._lookup("shared")

    def computed(self, seconds: float) -> None:
        """``fn`` was paid for, taking ``seconds``."""
        self.store.stats.add(computes=1, compute_seconds=seconds)
        self.attributes["taquba_memo.computed"] = True
        otel = self._metering()
        if otel is not None:
            otel.compute_duration.record(seconds, self.store.metric_attributes)

    def wrote(self, data: bytes, stored: bool) -> None:
        """A value was offered to the backend; ``stored`` is False when another write won."""
        if not stored:
            self.store.stats.add(if_absent_lost=1)
            self.attributes["taquba_memo.if_absent_lost"] = True
            return
        self.store.stats.add(puts=1, bytes_written=len(data))
        self.attributes["taquba_memo.value_size"] = len(data)
        otel = self._metering()
        if otel is not None:
            otel.bytes_written.add(len(data), self.store.metric_attributes)

    def cleared(self, run_id: str, entries_deleted: int, failures: int) -> None:
        """``clear_memos_for_run`` deleted ``entries_deleted``; ``failures`` keys failed."""
        self.attributes["taquba_memo.entries_deleted"] = entries_deleted
        self.attributes["taquba_memo.delete_failures"] = failures
        self.store.run_cleared(run_id, entries_deleted, "clear_run")

    def swept(self, report: _SweepOutcome) -> None:
        """A sweep ended with ``report`` (its runs were counted as each was cleared)."""
        self.attributes.update(
            {
                "taquba_memo.sweep.strategy": report.strategy,
                "taquba_memo.sweep.dry_run": report.dry_run,
                "taquba_memo.runs_cleared": report.runs_cleared_count,
                "taquba_memo.entries_deleted": report.entries_deleted,
                "taquba_memo.sweep.failures": len(report.failures),
            }
        )

    def failed(self, error: Exception) -> None:
        """The operation raised ``error``."""
        if not isinstance(error, BackendError):
            self.store.stats.add(failures=1)
            return
        self.store.stats.add(failures=1, backend_errors=1)
        otel = self._metering()
        if otel is not None:
            otel.backend_errors.add(
                1,
                {
                    **self.store.metric_attributes,
                    "taquba_memo.operation": self.name,
                    "error.kind": error_kind(error),
                },
            )


def monotonic() -> float:
    """The clock compute durations are measured with."""
    return time.perf_counter()
