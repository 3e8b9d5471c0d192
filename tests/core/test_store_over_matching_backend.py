"""MemoStore never acts on a key outside the prefix it listed, whatever the backend yields.

The backend here lists like an unescaped SQL ``LIKE prefix || '%'`` under a
case-insensitive collation (MySQL's default), and also yields a non-str key:
the natural first version of a database-backed backend. Through the store,
no path that lists (run clears, sweeps, marker listings, entry listings, the
CLI) deletes, counts or reports anything of another run or prefix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from taquba_memo import InMemoryBackend, MemoStore, TerminalMarker, cli
from taquba_memo.cli import _command


class LikeListingBackend(InMemoryBackend):
    """Correct but for ``list``: SQL LIKE without escaping, case-insensitive."""

    def __repr__(self) -> str:
        return "LikeListingBackend()"

    async def list(self, prefix: str) -> AsyncIterator[str]:
        like = "".join("." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in prefix)
        pattern = re.compile(like, re.IGNORECASE | re.DOTALL)
        for key in sorted(self._data):
            if pattern.match(key):
                yield key
        yield 42  # type: ignore[misc]  # a driver returning a row id instead of a key


RUNS = ("job_1", "jobX1", "job-1", "JOB_1")


async def fill(store: MemoStore, *, expired: str) -> None:
    for run_id in RUNS:
        for step in (0, 1):
            await store.new_memo(run_id, step).put("k", run_id.encode())
        await store.write_terminal_marker(run_id, 1_000 if run_id == expired else 9_000)


async def entries_of(store: MemoStore, run_id: str) -> list[bytes | None]:
    return [await store.new_memo(run_id, step).get("k") for step in (0, 1)]


@pytest.fixture
def backend() -> LikeListingBackend:
    return LikeListingBackend()


async def test_a_run_clear_deletes_only_that_run(store: MemoStore) -> None:
    await fill(store, expired="job_1")

    assert await store.clear_memos_for_run("job_1") == 2

    assert await entries_of(store, "job_1") == [None, None]
    for run_id in RUNS[1:]:
        assert await entries_of(store, run_id) == [run_id.encode()] * 2


async def test_a_sweep_clears_and_reports_only_the_expired_run(store: MemoStore) -> None:
    await fill(store, expired="job_1")

    report = await store.sweep(5_000)

    assert (report.runs_cleared, report.entries_deleted, report.failures) == (["job_1"], 2, [])
    for run_id in RUNS[1:]:
        assert await entries_of(store, run_id) == [run_id.encode()] * 2
    assert sorted(m.run_id for m in await store.list_terminal_markers()) == sorted(RUNS[1:])


async def test_marker_and_entry_listings_stay_inside_the_store_prefix(
    backend: LikeListingBackend,
) -> None:
    # "tenant_a" matches "tenantXa" and "TENANT_A" under LIKE and the collation.
    mine = MemoStore(backend, "tenant_a")
    for prefix in ("tenantXa", "TENANT_A", "tenant_a"):
        other = MemoStore(backend, prefix)
        await other.new_memo(f"run-{prefix}", 0).put("k", b"v")
        await other.write_terminal_marker(f"run-{prefix}", 1_000)

    assert await mine.list_terminal_markers() == [TerminalMarker("run-tenant_a", 1_000)]
    assert await mine.list_expired_terminal_markers(5_000) == [
        TerminalMarker("run-tenant_a", 1_000)
    ]
    assert [(e.run_id, e.step_number) async for e in mine.iter_entries()] == [("run-tenant_a", 0)]
    report = await mine.sweep(5_000)
    assert (report.runs_cleared, report.entries_deleted) == (["run-tenant_a"], 1)
    assert len(backend._data) == 4, "the other tenants' entries and markers are all kept"


async def test_a_listing_outside_the_prefix_is_logged_naming_the_backend(
    store: MemoStore, caplog: pytest.LogCaptureFixture
) -> None:
    await fill(store, expired="job_1")

    with caplog.at_level(logging.WARNING, logger="taquba_memo"):
        await store.clear_memos_for_run("job_1")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # The first stray, then the count: 3 runs x 2 steps, and the non-str key.
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("LikeListingBackend() listed 'memo/memos/JOB_1/0/")
    assert "list must match a raw string prefix, not a pattern" in warnings[0]
    assert warnings[1] == (
        "LikeListingBackend() listed 7 keys outside prefix 'memo/memos/job_1/'; all were ignored"
    )


def test_the_cli_counts_and_clears_only_the_named_run(
    backend: LikeListingBackend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = MemoStore(backend, "memo")
    asyncio.run(fill(store, expired="job_1"))
    monkeypatch.setattr(_command, "open_backend", lambda _url: backend)

    def run(*argv: str) -> Any:
        assert cli.main(["--url", "memory://", "--prefix", "memo", "--json", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    assert [run["run_id"] for run in run("runs", "job_1")["runs"]] == ["job_1"]
    assert run("runs")["totals"]["runs"] == len(RUNS)
    assert run("clear", "job_1")["entries_deleted"] == 2
    for run_id in RUNS[1:]:
        assert asyncio.run(entries_of(store, run_id)) == [run_id.encode()] * 2
