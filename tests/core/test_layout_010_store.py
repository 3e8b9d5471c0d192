"""A store of layout "0.10" shares a bucket with taquba-workflow 0.6.0 to 0.10.0.

Every bucket here is planted by the test itself with objects named exactly
as the crate's format strings name them (memo.rs 0.10.0), never by the code
under test:

* ``{prefix}/memos/{run_id}/{step_number}/{hex sha256(key)}``
* ``{prefix}/step-outputs/{run_id}/{step_number}/{hex sha256(step_payload)}``
* ``{prefix}/terminals/{u64::MAX - terminal_at_ms:020}_{run_id}``
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from taquba_memo import (
    InMemoryBackend,
    InvalidArgumentError,
    InvalidValueTypeError,
    MemoBackend,
    MemoStore,
    TerminalMarker,
    open_store,
)
from taquba_memo import sync as memo_sync
from taquba_memo.adapter_kit import ForwardingBackend

from .test_messagepack_content_keys import CRATE_INPUT_BYTES, ContentInput

U64_MAX = 2**64 - 1
PREFIX = "wf"
CUTOFF = 1_700_000_000_000
DAY = 86_400_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def plant_run(
    backend: MemoBackend,
    run_id: str,
    terminal_at_ms: int | None,
    *,
    memos: int = 3,
    step_outputs: int = 2,
) -> set[str]:
    """Write one run as a Rust 0.10 worker would; return every key written."""
    keys = {f"{PREFIX}/memos/{run_id}/{i % 2}/{sha(f'key-{i}'.encode())}" for i in range(memos)}
    keys |= {
        f"{PREFIX}/step-outputs/{run_id}/{i}/{sha(f'payload-{i}'.encode())}"
        for i in range(step_outputs)
    }
    for key in keys:
        await backend.put(key, b"v")
    if terminal_at_ms is not None:
        marker = f"{PREFIX}/terminals/{U64_MAX - terminal_at_ms:020}_{run_id}"
        await backend.put(marker, b"")
        keys.add(marker)
    return keys


async def all_keys(backend: MemoBackend) -> set[str]:
    return {key async for key in backend.list("")}


@pytest.fixture
async def planted(backend: MemoBackend) -> dict[str, set[str]]:
    """Two runs ended before the cutoff, one exactly at it, one after, one still running."""
    return {
        "old-a": await plant_run(backend, "old-a", CUTOFF - 365 * DAY),
        "old-b": await plant_run(backend, "old-b", CUTOFF - 1, memos=1, step_outputs=4),
        "edge": await plant_run(backend, "edge", CUTOFF),
        "new": await plant_run(backend, "new", CUTOFF + DAY),
        "running": await plant_run(backend, "running", None),
    }


@pytest.mark.parametrize("strategy", ["auto", "per-run", "scan"])
async def test_a_sweep_clears_exactly_the_runs_that_ended_before_the_cutoff(
    backend: MemoBackend, planted: dict[str, set[str]], strategy: Any
) -> None:
    store = MemoStore(backend, PREFIX, layout="0.10")
    report = await store.sweep(CUTOFF, strategy=strategy)
    assert report.ok
    assert sorted(report.runs_cleared) == ["old-a", "old-b"]
    assert report.entries_deleted == (3 + 2) + (1 + 4)  # memos and step outputs, as Rust counts
    kept = planted["edge"] | planted["new"] | planted["running"]
    assert await all_keys(backend) == kept


async def test_a_dry_run_names_the_expired_runs_and_deletes_nothing(
    backend: MemoBackend, planted: dict[str, set[str]]
) -> None:
    store = MemoStore(backend, PREFIX, layout="0.10")
    report = await store.sweep(CUTOFF, dry_run=True)
    assert sorted(report.runs_cleared) == ["old-a", "old-b"]
    assert await all_keys(backend) == set().union(*planted.values())


async def test_markers_are_read_with_their_real_dates(
    backend: MemoBackend, planted: dict[str, set[str]]
) -> None:
    store = MemoStore(backend, PREFIX, layout="0.10")
    assert sorted(await store.list_terminal_markers()) == [
        TerminalMarker("old-a", CUTOFF - 365 * DAY),
        TerminalMarker("old-b", CUTOFF - 1),
        TerminalMarker("edge", CUTOFF),
        TerminalMarker("new", CUTOFF + DAY),
    ]


async def test_the_expired_listing_keeps_the_crates_strict_cutoff(backend: MemoBackend) -> None:
    """The crate's own test: markers at 1000, 2000 and 3000 against cutoffs 2000, 1000, 3001."""
    store = MemoStore(backend, PREFIX, layout="0.10")
    for run_id, at in [("run-old", 1_000), ("run-edge", 2_000), ("run-new", 3_000)]:
        await store.write_terminal_marker(run_id, at)
    assert await store.list_expired_terminal_markers(2_000) == [TerminalMarker("run-old", 1_000)]
    assert await store.list_expired_terminal_markers(1_000) == []
    assert len(await store.list_expired_terminal_markers(3_001)) == 3


async def test_a_written_marker_has_the_crates_name(backend: MemoBackend) -> None:
    store = MemoStore(backend, PREFIX, layout="0.10")
    await store.write_terminal_marker("run-1", 1_700_000_000_000)
    assert await all_keys(backend) == {f"{PREFIX}/terminals/18446742373709551615_run-1"}
    await store.delete_terminal_marker(TerminalMarker("run-1", 1_700_000_000_000))
    assert await all_keys(backend) == set()


async def test_a_run_clear_removes_memos_and_step_outputs_and_counts_both(
    backend: MemoBackend,
) -> None:
    cleared = await plant_run(backend, "run", None, memos=3, step_outputs=2)
    neighbour = await plant_run(backend, "run-suffix", None)
    store = MemoStore(backend, PREFIX, layout="0.10")
    assert await store.clear_memos_for_run("run") == 5
    assert await all_keys(backend) == neighbour
    assert cleared.isdisjoint(await all_keys(backend))


async def test_the_05_layout_leaves_step_outputs_alone(backend: MemoBackend) -> None:
    """Layout "0.5" is unchanged: its clears never knew step outputs."""
    await plant_run(backend, "run", None, memos=3, step_outputs=2)
    assert await MemoStore(backend, PREFIX).clear_memos_for_run("run") == 3


class ListsAfterByFiltering(ForwardingBackend):
    """Offers ``list_after`` over any backend by filtering its listing, and records each call.

    Only to see that the store asks for the listing after the cutoff's key:
    a real ``list_after`` skips the keys on the server.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> ListsAfterByFiltering:
        # Offered even when the wrapped backend lacks it (ForwardingBackend would withhold it).
        return object.__new__(cls)

    def __init__(self, inner: MemoBackend) -> None:
        super().__init__(inner)
        self.starts: list[tuple[str, str]] = []

    async def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        self.starts.append((prefix, start_after))
        async for key in self.inner.list(prefix):
            if key > start_after:
                yield key


async def test_the_expired_listing_starts_after_the_cutoffs_key_where_the_store_can(
    backend: MemoBackend, planted: dict[str, set[str]]
) -> None:
    wrapper = ListsAfterByFiltering(backend)
    store = MemoStore(wrapper, PREFIX, layout="0.10")
    report = await store.sweep(CUTOFF)
    assert wrapper.starts == [
        (f"{PREFIX}/terminals/", f"{PREFIX}/terminals/{U64_MAX - CUTOFF:020}")
    ]
    assert sorted(report.runs_cleared) == ["old-a", "old-b"]


async def test_content_entries_land_where_the_crate_puts_them(backend: MemoBackend) -> None:
    memo = MemoStore(backend, PREFIX, layout="0.10").new_memo("run-1", 4)
    await memo.content_put(ContentInput("draft", list(b"hello")), b"value")
    user_key = "content:" + sha(CRATE_INPUT_BYTES)
    assert await all_keys(backend) == {f"{PREFIX}/memos/run-1/4/{sha(user_key.encode())}"}
    assert await memo.content_get({"operation": "draft", "payload": list(b"hello")}) == b"value"


async def test_a_namespace_is_refused_under_010_since_the_crate_has_none(
    backend: MemoBackend,
) -> None:
    memo = MemoStore(backend, PREFIX, layout="0.10").new_memo("run-1", 0)
    with pytest.raises(InvalidArgumentError, match="namespace"):
        await memo.content_get({"a": 1}, namespace="v2")
    with pytest.raises(InvalidArgumentError, match="namespace"):
        await memo.content_put({"a": 1}, b"x", namespace="v2")
    assert await all_keys(backend) == set()


@pytest.mark.parametrize(("store_layout", "other"), [("0.5", "0.10"), ("0.10", "0.5")])
async def test_markers_of_the_other_layout_are_skipped_with_one_warning(
    backend: MemoBackend, caplog: pytest.LogCaptureFixture, store_layout: str, other: str
) -> None:
    """Read in the wrong layout, a marker would date tens of thousands of years away."""
    writer = MemoStore(backend, PREFIX, layout=other)
    await writer.write_terminal_marker("a", CUTOFF)
    await writer.write_terminal_marker("b", CUTOFF + 1)
    store = MemoStore(backend, PREFIX, layout=store_layout)
    with caplog.at_level(logging.WARNING, logger="taquba_memo"):
        assert await store.list_terminal_markers() == []
        assert await store.list_terminal_markers() == []
        report = await store.sweep(U64_MAX)
    assert report.runs_cleared == []
    warnings = [r.getMessage() for r in caplog.records if "layout" in r.getMessage()]
    assert len(warnings) == 1
    assert f"layout {other!r}" in warnings[0]
    assert f"layout={other!r}" in warnings[0]


def test_the_layout_is_validated_before_any_io() -> None:
    with pytest.raises(InvalidArgumentError, match=r"0\.5"):
        MemoStore(InMemoryBackend(), layout="0.6")
    with pytest.raises(InvalidValueTypeError):
        MemoStore(InMemoryBackend(), layout=0.10)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        open_store("memory://", layout="0.9")
    with pytest.raises(InvalidArgumentError):
        memo_sync.MemoStore(InMemoryBackend(), layout="")


def test_the_layout_is_a_property_of_both_stores() -> None:
    assert MemoStore(InMemoryBackend()).layout == "0.5"
    assert MemoStore(InMemoryBackend(), layout="0.10").layout == "0.10"
    with memo_sync.open_store("memory://", layout="0.10") as store:
        assert store.layout == "0.10"
        store.write_terminal_marker("r", 5)
        assert store.list_terminal_markers() == [TerminalMarker("r", 5)]
        assert store.list_expired_terminal_markers(6) == [TerminalMarker("r", 5)]
        assert store.list_expired_terminal_markers(5) == []
