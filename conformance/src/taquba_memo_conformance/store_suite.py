"""MemoStoreTests: the reference implementation's behaviour on top of the backend.

Every test of taquba-workflow 0.5.0's memo test module, the exact object
layout (so Rust and Python workers share a bucket), terminal markers, expiry
and sweeping, each through a :class:`~taquba_memo.MemoStore` over the
backend under test (the ``store`` fixture). The tests whose behaviour depends
on the object layout (``@in_every_layout``: markers, expiry, sweeps, run
clears, object names, content keys) run once per layout of the class's
``layouts``: ``"0.5"`` (taquba-workflow 0.5.0) and ``"0.10"`` (0.6.0 to
0.10.0: inverted marker names, step outputs cleared with their run, the
crate's MessagePack content keys).
"""

from __future__ import annotations

import pytest
from taquba_memo import EntryTooLargeError, Memo, MemoBackend, MemoStore, TerminalMarker

from taquba_memo_conformance._base import SuiteBase, in_every_layout
from taquba_memo_conformance.keyspace import KeySpace, byte_order, sha256_hex

__all__ = ["MemoStoreTests"]

U64_MAX = 2**64 - 1


def marker_name(layout: str, run_id: str, terminal_at_ms: int) -> str:
    """A marker's name as the crate's format strings write it (0.5.0, or 0.6.0 to 0.10.0)."""
    field = terminal_at_ms if layout == "0.5" else U64_MAX - terminal_at_ms
    return f"{field:020d}_{run_id}"


async def _assert_kept_apart(*writes: tuple[Memo, str, bytes]) -> None:
    """Put each ``(memo, user key, value)``, then read each back: every one kept its own value."""
    for memo, key, value in writes:
        await memo.put(key, value)
    for memo, key, value in writes:
        assert await memo.get(key) == value, f"{key!r} in {memo!r}"


class MemoStoreTests(SuiteBase):
    """MemoStore over this backend."""

    # -- MemoStore over this backend: the reference's tests ----------------------------

    async def test_store_get_returns_none_for_missing_key(self, store: MemoStore) -> None:
        memo = store.new_memo("run-1", 0)
        assert await memo.get("missing") is None

    async def test_store_put_then_get_round_trips(self, store: MemoStore) -> None:
        memo = store.new_memo("run-1", 0)
        await memo.put("k", b"hello")
        assert await memo.get("k") == b"hello"

    async def test_store_put_overwrites_prior_value(self, store: MemoStore) -> None:
        memo = store.new_memo("run-1", 0)
        await memo.put("k", b"first")
        await memo.put("k", b"second")
        assert await memo.get("k") == b"second"

    async def test_store_run_id_namespaces_are_isolated(self, store: MemoStore) -> None:
        in_run_a, in_run_b = store.new_memo("run-a", 0), store.new_memo("run-b", 0)
        await _assert_kept_apart((in_run_a, "k", b"value-a"), (in_run_b, "k", b"value-b"))

    async def test_store_step_number_namespaces_are_isolated(self, store: MemoStore) -> None:
        at_step_0, at_step_1 = store.new_memo("run-1", 0), store.new_memo("run-1", 1)
        await _assert_kept_apart((at_step_0, "k", b"step-0"), (at_step_1, "k", b"step-1"))

    async def test_store_distinct_user_keys_map_to_distinct_entries(self, store: MemoStore) -> None:
        memo = store.new_memo("run-1", 0)
        await _assert_kept_apart((memo, "k1", b"one"), (memo, "k2", b"two"))

    async def test_store_awkward_user_keys_round_trip(self, store: MemoStore) -> None:
        # User keys are hashed before they become a path segment, so "/",
        # spaces, non-ASCII and 10,000 characters are all fine.
        memo = store.new_memo("run-1", 0)
        for i, key in enumerate(["", "with/slash", "with spaces", "üñíçødé", "a" * 10_000]):
            expected = f"v{i}".encode()
            await memo.put(key, expected)
            assert await memo.get(key) == expected, f"user key #{i}"

    async def test_store_empty_value_round_trips(self, store: MemoStore) -> None:
        memo = store.new_memo("run-1", 0)
        await memo.put("k", b"")
        assert await memo.get("k") == b""

    async def test_store_instances_sharing_a_backing_store_see_the_same_entries(
        self, backend: MemoBackend, space: KeySpace, store: MemoStore
    ) -> None:
        # The storage is the source of truth, not any in-memory state.
        writer = store.new_memo("run-1", 0)
        reader = MemoStore(backend, space.root).new_memo("run-1", 0)
        await writer.put("k", b"shared")
        assert await reader.get("k") == b"shared"

    @in_every_layout
    async def test_store_clear_memos_for_run_removes_only_that_runs_entries(
        self, store: MemoStore
    ) -> None:
        in_run_a, in_run_a_step1 = store.new_memo("run-a", 0), store.new_memo("run-a", 1)
        in_run_b = store.new_memo("run-b", 0)
        await in_run_a.put("k", b"a-0")
        await in_run_a_step1.put("k", b"a-1")
        await in_run_b.put("k", b"b-0")
        assert await store.clear_memos_for_run("run-a") == 2
        assert await in_run_a.get("k") is None
        assert await in_run_a_step1.get("k") is None
        assert await in_run_b.get("k") == b"b-0"

    @in_every_layout
    async def test_store_clear_memos_for_run_returns_zero_when_nothing_to_delete(
        self, store: MemoStore
    ) -> None:
        assert await store.clear_memos_for_run("run-with-no-memos") == 0

    @in_every_layout
    async def test_store_clear_memos_for_run_does_not_match_run_id_as_prefix(
        self, store: MemoStore
    ) -> None:
        await store.new_memo("run", 0).put("k", b"short")
        await store.new_memo("run-suffix", 0).put("k", b"long")
        assert await store.clear_memos_for_run("run") == 1
        assert await store.new_memo("run-suffix", 0).get("k") == b"long"

    @in_every_layout
    async def test_store_write_terminal_marker_then_list_returns_it(self, store: MemoStore) -> None:
        await store.write_terminal_marker("run-1", 1_700_000_000_000)
        assert await store.list_terminal_markers() == [TerminalMarker("run-1", 1_700_000_000_000)]

    @in_every_layout
    async def test_store_list_terminal_markers_is_empty_when_none_written(
        self, store: MemoStore
    ) -> None:
        assert await store.list_terminal_markers() == []

    @in_every_layout
    async def test_store_list_terminal_markers_returns_all(self, store: MemoStore) -> None:
        await store.write_terminal_marker("run-a", 1_000)
        await store.write_terminal_marker("run-b", 2_000)
        await store.write_terminal_marker("run-c", 3_000)
        assert sorted(await store.list_terminal_markers()) == [
            TerminalMarker("run-a", 1_000),
            TerminalMarker("run-b", 2_000),
            TerminalMarker("run-c", 3_000),
        ]

    @in_every_layout
    async def test_store_delete_terminal_marker_removes_only_the_named_one(
        self, store: MemoStore
    ) -> None:
        await store.write_terminal_marker("run-a", 1_000)
        await store.write_terminal_marker("run-b", 2_000)
        await store.delete_terminal_marker(TerminalMarker("run-a", 1_000))
        assert await store.list_terminal_markers() == [TerminalMarker("run-b", 2_000)]

    @in_every_layout
    async def test_store_delete_terminal_marker_succeeds_on_missing(self, store: MemoStore) -> None:
        await store.delete_terminal_marker(TerminalMarker("nope", 1_000))

    @in_every_layout
    async def test_store_delete_terminal_marker_is_idempotent(self, store: MemoStore) -> None:
        # A second delete is the path a crash-and-retry sweeper takes.
        marker = TerminalMarker("run-1", 1_000)
        await store.write_terminal_marker(marker.run_id, marker.terminal_at_ms)
        await store.delete_terminal_marker(marker)
        await store.delete_terminal_marker(marker)
        assert await store.list_terminal_markers() == []

    @in_every_layout
    async def test_store_terminal_markers_and_memos_do_not_collide(self, store: MemoStore) -> None:
        await store.new_memo("run-1", 0).put("k", b"v")
        await store.write_terminal_marker("run-1", 1_000)
        # The memo survives terminal marking.
        assert await store.new_memo("run-1", 0).get("k") == b"v"
        # The marker survives memo writes, and clearing the run's memos.
        assert len(await store.list_terminal_markers()) == 1
        await store.clear_memos_for_run("run-1")
        assert await store.list_terminal_markers() == [TerminalMarker("run-1", 1_000)]
        # Run ids named like the layout's folders stay inside their run.
        await store.new_memo("terminals", 0).put("k", b"t")
        await store.new_memo("memos", 0).put("k", b"m")
        assert await store.list_terminal_markers() == [TerminalMarker("run-1", 1_000)]
        assert await store.new_memo("terminals", 0).get("k") == b"t"

    # -- MemoStore: layout, expiry and sweeping ------------------------------------

    @in_every_layout
    async def test_store_writes_the_reference_object_layout(
        self, backend: MemoBackend, space: KeySpace, store: MemoStore, layout: str
    ) -> None:
        # Byte-identical with taquba-workflow (0.5.0, or 0.6.0 to 0.10.0), so
        # Rust and Python workers can share a bucket. Spelled out here, not
        # taken from taquba_memo._layout, so the check is independent of it.
        await store.new_memo("run-1", 7).put("k", b"value")
        await store.write_terminal_marker("run-1", 1_700_000_000_000)
        memo_key = f"{space.root}/memos/run-1/7/{sha256_hex(b'k')}"
        name = {"0.5": "00000001700000000000", "0.10": "18446742373709551615"}[layout]
        marker_key = f"{space.root}/terminals/{name}_run-1"
        assert byte_order(await space.listed(backend, space.prefix)) == [memo_key, marker_key]
        assert await backend.get(memo_key) == b"value"
        assert await backend.get(marker_key) == b"", "a terminal marker has zero bytes"

    @in_every_layout
    async def test_store_reads_entries_written_in_the_reference_layout(
        self, backend: MemoBackend, space: KeySpace, store: MemoStore, layout: str
    ) -> None:
        # What a Rust worker wrote, as raw objects, is what a Python reader finds.
        await backend.put(f"{space.root}/memos/run-9/3/{sha256_hex('ключ'.encode())}", b"rust")
        name = {"0.5": "00000000000000004242", "0.10": "18446744073709547373"}[layout]
        await backend.put(f"{space.root}/terminals/{name}_run-9", b"")
        assert await store.new_memo("run-9", 3).get("ключ") == b"rust"
        assert await store.list_terminal_markers() == [TerminalMarker("run-9", 4242)]

    @in_every_layout
    async def test_store_lists_terminal_markers_chronologically(
        self, backend: MemoBackend, store: MemoStore, layout: str
    ) -> None:
        self.require(backend, "ordered_listing")
        for run_id, at in [("late", 100), ("early", 9), ("middle", 10)]:
            await store.write_terminal_marker(run_id, at)
        # Zero-padded timestamps: byte order is time order, inverted under 0.10.
        oldest_first = ["early", "middle", "late"]
        expected = oldest_first if layout == "0.5" else oldest_first[::-1]
        assert [m.run_id for m in await store.list_terminal_markers()] == expected

    @in_every_layout
    async def test_store_lists_expired_terminal_markers(self, store: MemoStore) -> None:
        for run_id, at in [("run-a", 1_000), ("run-b", 2_000), ("run-c", 3_000)]:
            await store.write_terminal_marker(run_id, at)
        assert await store.list_expired_terminal_markers(0) == []
        assert await store.list_expired_terminal_markers(1_000) == []
        assert await store.list_expired_terminal_markers(2_000) == [TerminalMarker("run-a", 1_000)]
        everything = await store.list_expired_terminal_markers(10**15)
        assert sorted(everything) == [
            TerminalMarker("run-a", 1_000),
            TerminalMarker("run-b", 2_000),
            TerminalMarker("run-c", 3_000),
        ]

    @in_every_layout
    async def test_store_sweep_clears_only_expired_runs(self, store: MemoStore) -> None:
        await store.new_memo("run-a", 0).put("k", b"a-0")
        await store.new_memo("run-a", 1).put("k", b"a-1")
        await store.new_memo("run-b", 0).put("k", b"b-0")
        await store.new_memo("run-c", 0).put("k", b"c-0")  # no marker: still running
        await store.write_terminal_marker("run-a", 1_000)
        await store.write_terminal_marker("run-b", 5_000)

        report = await store.sweep(2_000)

        assert report.ok
        assert report.runs_cleared == ["run-a"]
        assert report.entries_deleted == 2
        assert await store.new_memo("run-a", 0).get("k") is None
        assert await store.new_memo("run-a", 1).get("k") is None
        assert await store.new_memo("run-b", 0).get("k") == b"b-0"
        assert await store.new_memo("run-c", 0).get("k") == b"c-0"
        assert await store.list_terminal_markers() == [TerminalMarker("run-b", 5_000)]

    @in_every_layout
    async def test_store_sweep_dry_run_deletes_nothing(
        self, backend: MemoBackend, space: KeySpace, store: MemoStore
    ) -> None:
        await store.new_memo("run-a", 0).put("k", b"a-0")
        await store.write_terminal_marker("run-a", 1_000)
        before = byte_order(await space.listed(backend, space.prefix))

        report = await store.sweep(2_000, dry_run=True)

        assert (report.runs_cleared, report.entries_deleted) == (["run-a"], 0)
        assert byte_order(await space.listed(backend, space.prefix)) == before

    @in_every_layout
    async def test_store_run_clear_and_sweep_take_step_outputs_in_layout_010_only(
        self, backend: MemoBackend, space: KeySpace, store: MemoStore, layout: str
    ) -> None:
        # A Rust 0.10 runtime's step-output replay entries, planted as raw objects:
        # a run clear (and so a sweep) removes and counts them under 0.10 only.
        outputs = {
            run_id: [
                f"{space.root}/step-outputs/{run_id}/{step}/{sha256_hex(f'out-{step}'.encode())}"
                for step in (0, 1)
            ]
            for run_id in ("run-a", "run-b", "run-a-2")
        }
        for key in [key for keys in outputs.values() for key in keys]:
            await backend.put(key, b"output")
        for run_id in outputs:
            await store.new_memo(run_id, 0).put("k", b"memo")
        await backend.put(f"{space.root}/terminals/{marker_name(layout, 'run-b', 1_000)}", b"")
        in_010 = layout == "0.10"

        assert await store.clear_memos_for_run("run-a") == (3 if in_010 else 1)
        report = await store.sweep(2_000)

        assert (report.runs_cleared, report.entries_deleted) == (["run-b"], 3 if in_010 else 1)
        left = outputs["run-a-2"] if in_010 else [key for keys in outputs.values() for key in keys]
        memo = f"{space.root}/memos/run-a-2/0/{sha256_hex(b'k')}"
        assert byte_order(await space.listed(backend, space.prefix)) == byte_order([memo, *left])

    @in_every_layout
    async def test_store_content_entries_land_at_the_layouts_key(
        self, backend: MemoBackend, space: KeySpace, store: MemoStore, layout: str
    ) -> None:
        # 0.5: the user key is hex sha256 of the RFC 8785 JSON. 0.10: the crate's
        # "content:" + hex sha256(rmp_serde::to_vec_named(input)), bytes by hand
        # from the MessagePack spec for ContentInput { operation: "draft", payload: b"hello" }.
        value = {"operation": "draft", "payload": list(b"hello")}
        if layout == "0.5":
            user_key = sha256_hex(b'{"operation":"draft","payload":[104,101,108,108,111]}')
        else:
            packed = b"\x82\xa9operation\xa5draft\xa7payload\x95hello"
            user_key = "content:" + sha256_hex(packed)
        memo = store.new_memo("run-1", 2)
        await memo.content_put(value, b"stored")
        expected = f"{space.root}/memos/run-1/2/{sha256_hex(user_key.encode())}"
        assert byte_order(await space.listed(backend, space.prefix)) == [expected]
        assert await memo.content_get(value) == b"stored"

    # -- MemoStore with max_value_bytes: oversized entries ----------------------------

    async def test_store_get_of_an_entry_over_max_value_bytes_raises_entry_too_large(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # Written by another store (a larger bound, another language): read back refused.
        await MemoStore(backend, space.root).new_memo("run-1", 0).put("k", b"x" * 70_000)
        bounded = MemoStore(backend, space.root, max_value_bytes=1024).new_memo("run-1", 0)
        with pytest.raises(EntryTooLargeError):
            await bounded.get("k")
        await bounded.put("small", b"y" * 1024)
        assert await bounded.get("small") == b"y" * 1024, "an entry of exactly the bound is read"

    async def test_store_get_or_compute_recomputes_an_entry_over_max_value_bytes_and_replaces_it(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        await MemoStore(backend, space.root).new_memo("run-1", 0).put("k", b"x" * 70_000)
        bounded = MemoStore(backend, space.root, max_value_bytes=1024).new_memo("run-1", 0)
        calls = []

        def compute() -> bytes:
            calls.append(1)
            return b"recomputed"

        assert await bounded.get_or_compute("k", compute) == b"recomputed"
        assert await bounded.get_or_compute("k", compute) == b"recomputed"
        assert len(calls) == 1, "the replacement is read back on the next call"
        assert await bounded.get("k") == b"recomputed"

    async def test_store_put_if_absent_keeps_the_first_value(
        self, backend: MemoBackend, store: MemoStore
    ) -> None:
        self.require(backend, "conditional_put")
        memo = store.new_memo("run-1", 0)
        assert await memo.put("k", b"first", if_absent=True) is True
        assert await memo.put("k", b"second", if_absent=True) is False
        assert await memo.get("k") == b"first"
