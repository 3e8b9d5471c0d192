"""What a counting proxy keeps about the requests it saw: their records and counts, thread-safe."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECORDS_KEPT", "RequestCounts", "RequestLog", "RequestRecord"]

RECORDS_KEPT = 200_000


@dataclass(frozen=True)
class RequestRecord:
    """One request the proxy received, with the status it answered (None: no answer)."""

    method: str
    target: str
    kind: str
    status: int | None


@dataclass(frozen=True)
class RequestCounts:
    """Requests counted by kind and by method; subtract two to count what happened between."""

    by_kind: dict[str, int] = field(default_factory=dict)
    by_method: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def __getitem__(self, kind: str) -> int:
        return self.by_kind.get(kind, 0)

    @classmethod
    def of(cls, records: Iterable[RequestRecord]) -> RequestCounts:
        """Counts of ``records`` (for example only those answered below 500)."""
        by_kind: Counter[str] = Counter()
        by_method: Counter[str] = Counter()
        for record in records:
            by_kind[record.kind] += 1
            by_method[record.method] += 1
        return cls(dict(sorted(by_kind.items())), dict(by_method))

    def __sub__(self, earlier: RequestCounts) -> RequestCounts:
        return RequestCounts(
            by_kind=_minus(self.by_kind, earlier.by_kind),
            by_method=_minus(self.by_method, earlier.by_method),
        )


def _minus(later: dict[str, int], earlier: dict[str, int]) -> dict[str, int]:
    difference = Counter(later)
    difference.subtract(earlier)
    return {key: count for key, count in sorted(difference.items()) if count}


class RequestLog:
    """The records and counts of one proxy's requests, safe to read from any thread.

    A request is recorded as it arrives, its status noted before any byte of
    the answer reaches the client; only the most recent :data:`RECORDS_KEPT` are kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_kind: Counter[str] = Counter()
        self._by_method: Counter[str] = Counter()
        # Entries [method, target, kind, status], the status filled in when known.
        self._records: deque[list[Any]] = deque(maxlen=RECORDS_KEPT)
        self._failures: list[str] = []
        self._recorded = 0  # records ever appended, for mark() / records_since()

    def arrived(self, method: str, target: str, kind: str) -> list[Any]:
        """Count a request as it arrives; return its record entry (status to come)."""
        entry: list[Any] = [method, target, kind, None]
        with self._lock:
            self._by_kind[kind] += 1
            self._by_method[method] += 1
            self._records.append(entry)
            self._recorded += 1
        return entry

    def answered(self, entry: list[Any], status: int) -> None:
        """Note the status of a request, before the client can see the answer."""
        with self._lock:
            entry[3] = status

    def failed(self, method: str, target: str, error: BaseException) -> None:
        with self._lock:
            self._failures.append(f"{method} {target}: {error!r}")

    def counts(self) -> RequestCounts:
        with self._lock:
            return self._counts()

    def _counts(self) -> RequestCounts:
        return RequestCounts(dict(sorted(self._by_kind.items())), dict(self._by_method))

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return [RequestRecord(*entry) for entry in self._records]

    def failures(self) -> list[str]:
        with self._lock:
            return list(self._failures)

    def reset(self) -> RequestCounts:
        """Zero the counts, records and failures; return the counts as they were."""
        with self._lock:
            counts = self._counts()
            self._by_kind.clear()
            self._by_method.clear()
            self._records.clear()
            self._failures.clear()
            self._recorded = 0
            return counts

    def mark(self) -> int:
        with self._lock:
            return self._recorded

    def records_since(self, mark: int) -> list[RequestRecord]:
        with self._lock:
            newer = self._recorded - mark
            if newer > len(self._records):
                raise RuntimeError("more requests since the mark than the records keep")
            entries = list(self._records)[len(self._records) - newer :] if newer else []
            return [RequestRecord(*entry) for entry in entries]
