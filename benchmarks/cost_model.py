"""Cost model for fleets: requests and dollars a month for memo traffic and retention.

``python -m benchmarks.cost_model`` (``just cost-model``; ``just bench`` runs it
too) counts the requests one day of a fleet sends, at three small fleet sizes,
through a counting wrapper over the in-memory backend that pages listings as
S3, GCS and Azure do (1,000 keys a page, 1,000-key delete batches as on S3).
The request-count tests (tests/retention/test_retention_request_counts.py)
assert the same per-operation counts through a counting HTTP proxy on every
adapter, so the wrapper counts what a store would be sent. The counts are
checked to be linear in the fleet size, then projected to 10^4, 10^6 and 10^8
runs a day and priced with the clouds' published request prices.

The fleet: every run ends the day it starts, records ``ENTRIES_PER_RUN`` memo
entries (each a miss: one GET, then one PUT) and a terminal marker, and is kept
``RETENTION_DAYS`` days; one sweep a day clears the runs that expired. Run ids
are random, so their entries are spread over the whole memo prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taquba_memo import InMemoryBackend, MemoStore
from taquba_memo import _layout as layout
from taquba_memo.adapter_kit import ForwardingBackend

ENTRIES_PER_RUN = 4
RETENTION_DAYS = 7
PAGE = 1000
SIZES = (50, 200, 800)  # runs a day, counted for real
FLEETS = (10**4, 10**6, 10**8)  # runs a day, projected
DAY_MS = 24 * 3600 * 1000
OUT = Path(__file__).with_name("cost_model.json")
CHART = Path(__file__).with_name("cost_model.png")

# Request prices in USD per 1,000 requests, as the providers published them
# in 2025 (re-check before relying on them): "Amazon S3 pricing" (S3 Standard,
# us-east-1), "Cloud Storage pricing" (Standard storage, Class A and B
# operations), "Azure Blob Storage pricing" (block blob, Hot, LRS, East US).
# DELETE is free on all three. S3's multi-object delete is a POST and priced
# here as one (conservative); GCS and Azure bill each batched delete as a delete.
PRICES: dict[str, dict[str, float]] = {
    "S3": {"get": 0.0004, "put": 0.005, "list": 0.005, "delete": 0.0, "batch_delete": 0.005},
    "GCS": {"get": 0.0004, "put": 0.005, "list": 0.005, "delete": 0.0, "batch_delete": 0.0},
    "Azure": {"get": 0.00044, "put": 0.0055, "list": 0.0055, "delete": 0.0, "batch_delete": 0.0},
}


class PagedCounter(ForwardingBackend):
    """Counts requests as an object store would see them: listings by the page."""

    def __init__(self, inner: InMemoryBackend) -> None:
        super().__init__(inner)
        self.requests: Counter[str] = Counter()

    async def get(self, key: str) -> bytes | None:
        self.requests["get"] += 1
        return await super().get(key)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self.requests["put"] += 1
        return await super().put(key, value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        self.requests["delete"] += 1
        await super().delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        self.requests["batch_delete"] += math.ceil(len(keys) / PAGE)
        await super().delete_many(keys)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        self.requests["list"] += 1  # the first page, even when empty
        listed = 0
        async for key in super().list(prefix):
            if listed and listed % PAGE == 0:
                self.requests["list"] += 1
            listed += 1
            yield key


async def reference_sweep(store: MemoStore, cutoff_ms: int) -> int:
    """taquba-workflow 0.5.0's sweep: read every marker; per expired run, list, delete each key.

    One request at a time, as memo.rs sends them; returns the entries deleted.
    """
    backend = store.backend
    deleted = 0
    terminals = layout.terminals_prefix(store.prefix)
    expired = []
    async for key in backend.list(terminals):  # the reference reads every marker page
        marker = layout.parse_terminal_marker_name(key[len(terminals) :])
        if marker is not None and marker.terminal_at_ms < cutoff_ms:
            expired.append(marker)
    for marker in expired:
        async for key in backend.list(layout.memos_run_prefix(store.prefix, marker.run_id)):
            await backend.delete(key)
            deleted += 1
        await store.delete_terminal_marker(marker)
    return deleted


@dataclass(frozen=True)
class Day:
    """Requests of one day: the fleet's memo traffic, and one sweep by each method."""

    runs: int
    traffic: dict[str, int]
    sweeps: dict[str, dict[str, int]]


async def count_day(runs_per_day: int) -> Day:
    """Fill RETENTION_DAYS + 1 days of runs, then sweep the day that expired, four ways."""
    sweeps: dict[str, dict[str, int]] = {}
    traffic: dict[str, int] = {}
    for method in ("reference", "per-run", "scan", "auto"):
        backend = PagedCounter(InMemoryBackend())
        store = MemoStore(backend, "memo")
        for day in range(RETENTION_DAYS + 1):
            for _ in range(runs_per_day):
                memo = store.new_memo(uuid.uuid4().hex, 0)
                for entry in range(ENTRIES_PER_RUN):
                    if await memo.get(f"call-{entry}") is None:
                        await memo.put(f"call-{entry}", b"answer")
                await store.write_terminal_marker(memo.run_id, day * DAY_MS)
            if day == 0:
                traffic = dict(backend.requests)
        backend.requests.clear()
        cutoff = DAY_MS  # only day 0 expired
        if method == "reference":
            await reference_sweep(store, cutoff)
        else:
            report = await store.sweep(cutoff, strategy=method)  # type: ignore[arg-type]
            assert report.ok, report
            assert report.runs_cleared_count == runs_per_day, report
        left = [key async for key in backend.inner.list("memo/memos/")]
        assert len(left) == RETENTION_DAYS * runs_per_day * ENTRIES_PER_RUN
        sweeps[method] = dict(backend.requests)
    return Day(runs_per_day, traffic, sweeps)


def per_run(days: list[Day], pick: Any) -> float:
    """The per-run rate of a count, checked to be linear across the measured sizes."""
    rates: list[float] = [pick(day) / day.runs for day in days]
    largest = rates[-1]
    for rate in rates:
        # Page rounding makes small fleets cost a little more per run; nothing else may.
        assert rate <= largest * 1.25 + 2 / days[0].runs, (rates, "not linear")
    return largest


def dollars(requests: dict[str, float], cloud: str) -> float:
    prices = PRICES[cloud]
    return sum(count / 1000 * prices[kind] for kind, count in requests.items())


def model(days: list[Day]) -> dict[str, Any]:
    kinds = ("get", "put", "list", "delete", "batch_delete")
    traffic = {k: per_run(days, lambda d, k=k: d.traffic.get(k, 0)) for k in kinds}
    sweeps = {
        method: {k: per_run(days, lambda d, m=method, k=k: d.sweeps[m].get(k, 0)) for k in kinds}
        for method in days[0].sweeps
    }
    rows = []
    for fleet in FLEETS:
        row: dict[str, Any] = {"runs_per_day": fleet}
        month = 30 * fleet
        row["traffic_requests"] = {k: v * month for k, v in traffic.items()}
        row["sweep_requests"] = {
            m: {k: v * month for k, v in counts.items()} for m, counts in sweeps.items()
        }
        row["dollars"] = {
            cloud: {
                "traffic": dollars(row["traffic_requests"], cloud),
                **{m: dollars(row["sweep_requests"][m], cloud) for m in sweeps},
            }
            for cloud in PRICES
        }
        rows.append(row)
    return {
        "entries_per_run": ENTRIES_PER_RUN,
        "retention_days": RETENTION_DAYS,
        "measured": [
            {"runs_per_day": d.runs, "traffic": d.traffic, "sweeps": d.sweeps} for d in days
        ],
        "per_run": {"traffic": traffic, "sweeps": sweeps},
        "fleets": rows,
        "prices_usd_per_1000": PRICES,
    }


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fleets = [row["runs_per_day"] for row in result["fleets"]]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    styles = {"reference": "o-", "per-run": "s--", "scan": "^--", "auto": "D-"}
    for method, style in styles.items():
        totals = [sum(row["sweep_requests"][method].values()) for row in result["fleets"]]
        ax.loglog(fleets, totals, style, label=f"sweep: {method}")
    traffic = [sum(row["traffic_requests"].values()) for row in result["fleets"]]
    ax.loglog(fleets, traffic, "k:", label="memo traffic (GET + PUT)")
    ax.set_xlabel("runs a day")
    ax.set_ylabel("requests a month")
    ax.set_title(
        f"Requests a month ({result['entries_per_run']} entries a run, "
        f"{result['retention_days']}-day retention)"
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| runs a day | method | LIST | DELETE (single) | batch DELETE | S3 $/month | "
        "GCS $/month | Azure $/month |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["fleets"]:
        for method, counts in row["sweep_requests"].items():
            lines.append(
                f"| {row['runs_per_day']:.0e} | {method} | {counts['list']:,.0f} | "
                f"{counts['delete']:,.0f} | {counts['batch_delete']:,.0f} | "
                + " | ".join(f"{row['dollars'][c][method]:,.2f}" for c in PRICES)
                + " |"
            )
        t = row["traffic_requests"]
        lines.append(
            f"| {row['runs_per_day']:.0e} | memo traffic | GET {t['get']:,.0f} | "
            f"PUT {t['put']:,.0f} | | "
            + " | ".join(f"{row['dollars'][c]['traffic']:,.2f}" for c in PRICES)
            + " |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG")
    args = parser.parse_args(argv)
    days = [asyncio.run(count_day(size)) for size in SIZES]
    result = model(days)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_chart:
        chart(result, CHART)
    print(markdown(result))


if __name__ == "__main__":
    main()
