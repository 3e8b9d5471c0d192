"""Stats: the per-store counters, always on, with no dependency (``store.stats``).

:class:`MemoStats` counts what one store did: lookups, hits, misses,
computes, bytes, failures. It is kept whether or not OpenTelemetry is
installed or enabled; :mod:`taquba_memo._telemetry` updates it as each
operation goes, and nothing here imports OpenTelemetry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["MemoStats", "MemoStatsSnapshot"]


@dataclass(frozen=True)
class MemoStatsSnapshot:
    """The counters of one store at one moment (see :class:`MemoStats`)."""

    lookups: int = 0
    """Reads of an entry: ``Memo.get``, ``content_get`` and each ``get_or_compute`` call."""
    hits: int = 0
    """Lookups that found a value (for ``get_or_compute``: one that decoded)."""
    misses: int = 0
    """Lookups that found nothing, or a value that did not decode."""
    decode_errors: int = 0
    """Misses of ``get_or_compute`` whose stored value did not decode (also in ``misses``)."""
    shared: int = 0
    """``get_or_compute`` calls that waited for a concurrent call's computation
    in this process (single flight) instead of reading or paying."""
    computes: int = 0
    """Calls of ``fn`` by ``get_or_compute``: the paid work."""
    compute_seconds: float = 0.0
    """Seconds spent in those calls (``fn`` and encoding its result)."""
    if_absent_lost: int = 0
    """Computed results not stored because another writer's value was there
    first (the caller got the winner's value)."""
    puts: int = 0
    """Values written: ``Memo.put``, ``content_put`` and ``get_or_compute`` stores."""
    bytes_read: int = 0
    """Bytes of the values lookups found."""
    bytes_written: int = 0
    """Bytes of the values written."""
    failures: int = 0
    """Operations that raised (``fn``'s exceptions and storage failures)."""
    backend_errors: int = 0
    """Of those, the storage failures (:class:`~taquba_memo.BackendError`)."""

    @property
    def hit_ratio(self) -> float:
        """``hits / lookups``, or 0.0 before any lookup."""
        return self.hits / self.lookups if self.lookups else 0.0


class MemoStats:
    """What one store did since it was built (or :meth:`reset`): ``store.stats``.

    Thread-safe: any thread or event loop may update and read it. Each field
    of :class:`MemoStatsSnapshot` reads as an attribute here too
    (``store.stats.hits``); :meth:`snapshot` returns all of them at one
    moment. The sync store's ``stats`` is its async store's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, float] = dict.fromkeys(_FIELDS, 0)

    def add(self, **counts: float) -> None:
        """Add to counters by name (the library's own bookkeeping)."""
        with self._lock:
            for name, amount in counts.items():
                self._counts[name] += amount

    def snapshot(self) -> MemoStatsSnapshot:
        """All counters at one moment."""
        with self._lock:
            return MemoStatsSnapshot(**self._counts)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._counts = dict.fromkeys(_FIELDS, 0)

    def __getattr__(self, name: str) -> Any:
        if name in _FIELDS:
            return getattr(self.snapshot(), name)
        if name == "hit_ratio":
            return self.snapshot().hit_ratio
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"MemoStats({self.snapshot()})"


_FIELDS = tuple(field.name for field in fields(MemoStatsSnapshot))
