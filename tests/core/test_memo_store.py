"""MemoStore and Memo beyond the reference: validation, batching, sweeping."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence

import pytest
from taquba_memo import (
    BackendError,
    DeleteManyError,
    InMemoryBackend,
    InvalidArgumentError,
    InvalidRunIdError,
    InvalidStepNumberError,
    InvalidTerminalTimeError,
    InvalidValueTypeError,
    Memo,
    MemoBackend,
    MemoStore,
    NotSupportedError,
    TerminalMarker,
    ValueTooLargeError,
)
from taquba_memo.backend import Capabilities
from taquba_memo_conformance import RecordingBackend


async def all_keys(backend: MemoBackend) -> list[str]:
    return [key async for key in backend.list("")]


class TestBadInputTouchesNothing:
    @pytest.mark.parametrize("run_id", ["", "a/b", "..", "x" * 129, "run 1"])
    async def test_invalid_run_ids_fail_when_the_memo_is_built(
        self, store: MemoStore, run_id: str
    ) -> None:
        with pytest.raises(InvalidRunIdError):
            store.new_memo(run_id, 0)

    async def test_out_of_range_steps_fail_when_the_memo_is_built(self, store: MemoStore) -> None:
        with pytest.raises(InvalidStepNumberError):
            store.new_memo("run", 2**32)
        with pytest.raises(InvalidStepNumberError):
            store.new_memo("run", -1)

    async def test_a_str_value_is_a_type_error_and_nothing_is_written(
        self, backend: MemoBackend, memo: Memo
    ) -> None:
        with pytest.raises(InvalidValueTypeError):
            await memo.put("k", "text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await memo.put("k", None)  # type: ignore[arg-type]
        assert await all_keys(backend) == []

    async def test_bytes_like_values_are_stored_as_bytes(self, memo: Memo) -> None:
        await memo.put("a", bytearray(b"array"))
        await memo.put("b", memoryview(b"view"))
        assert await memo.get("a") == b"array"
        assert await memo.get("b") == b"view"

    async def test_clear_with_an_empty_run_id_deletes_nothing(
        self, backend: MemoBackend, store: MemoStore
    ) -> None:
        await store.new_memo("run", 0).put("k", b"v")
        with pytest.raises(InvalidRunIdError):
            await store.clear_memos_for_run("")
        assert len(await all_keys(backend)) == 1

    async def test_invalid_timestamps_write_nothing(
        self, backend: MemoBackend, store: MemoStore
    ) -> None:
        with pytest.raises(InvalidTerminalTimeError):
            await store.write_terminal_marker("run", -5)
        with pytest.raises(InvalidTerminalTimeError):
            await store.sweep(2**64)
        assert await all_keys(backend) == []

    async def test_values_over_max_value_bytes_are_refused_before_upload(self) -> None:
        recording = RecordingBackend(InMemoryBackend())
        memo = MemoStore(recording, "memo", max_value_bytes=4).new_memo("run", 0)
        await memo.put("small", b"1234")
        with pytest.raises(ValueTooLargeError, match="max_value_bytes=4"):
            await memo.put("big", b"12345")
        assert recording.count("put") == 1

    def test_the_backend_must_implement_the_protocol(self) -> None:
        with pytest.raises(InvalidValueTypeError):
            MemoStore(object(), "memo")  # type: ignore[arg-type]

    def test_max_value_bytes_must_be_a_non_negative_int(self) -> None:
        with pytest.raises(InvalidArgumentError):
            MemoStore(InMemoryBackend(), max_value_bytes=-1)


class TestRequestsPerOperation:
    async def test_get_and_put_are_one_request_each(self) -> None:
        recording = RecordingBackend(InMemoryBackend())
        memo = MemoStore(recording, "memo").new_memo("run", 0)
        await memo.put("k", b"v")
        await memo.get("k")
        assert [name for name, _ in recording.calls] == ["put", "get"]

    async def test_clear_lists_once_and_deletes_in_batches_of_max_delete_batch(self) -> None:
        inner = InMemoryBackend()
        recording = RecordingBackend(
            inner, capabilities=Capabilities(True, True, max_delete_batch=100)
        )
        store = MemoStore(recording, "memo")
        for step in range(3):
            memo = store.new_memo("run", step)
            for i in range(101):
                await memo.put(f"k{i}", b"v")
        recording.clear()

        assert await store.clear_memos_for_run("run") == 303
        assert recording.count("list") == 1
        assert sorted(len(keys) for keys in recording.batches) == [3, 100, 100, 100]
        assert recording.count("delete") == 0
        assert await all_keys(inner) == []


class FlakyDeletes(InMemoryBackend):
    """Refuses to delete chosen keys, as a store with a per-key failure would."""

    def __init__(self) -> None:
        super().__init__()
        self.undeletable: set[str] = set()

    async def delete(self, key: str) -> None:
        if key in self.undeletable:
            raise BackendError(f"refused {key}")
        await super().delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        failures: dict[str, BackendError] = {
            key: BackendError(f"refused {key}") for key in keys if key in self.undeletable
        }
        await super().delete_many([key for key in keys if key not in failures])
        if failures:
            raise DeleteManyError(failures)


class TestClearing:
    async def test_a_failed_delete_is_logged_and_the_rest_still_goes(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend = FlakyDeletes()
        store = MemoStore(backend, "memo")
        for key in ("a", "b", "c"):
            await store.new_memo("run", 0).put(key, b"v")
        stuck = (await all_keys(backend))[1]
        backend.undeletable.add(stuck)

        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await store.clear_memos_for_run("run") == 2
        assert await all_keys(backend) == [stuck]
        assert stuck in caplog.text

    async def test_a_listing_failure_raises(self) -> None:
        class BrokenList(InMemoryBackend):
            async def list(self, prefix: str):  # type: ignore[no-untyped-def]
                raise BackendError("listing failed")
                yield  # pragma: no cover

        with pytest.raises(BackendError, match="listing failed"):
            await MemoStore(BrokenList(), "memo").clear_memos_for_run("run")


class TestRetention:
    async def test_expired_markers_are_strictly_below_the_cutoff(self, store: MemoStore) -> None:
        for run, ts in [("a", 999), ("b", 1000), ("c", 1001)]:
            await store.write_terminal_marker(run, ts)
        assert await store.list_expired_terminal_markers(1000) == [TerminalMarker("a", 999)]

    async def test_ordered_listing_stops_at_the_first_unexpired_marker(self) -> None:
        recording = RecordingBackend(InMemoryBackend())
        store = MemoStore(recording, "memo")
        for ts in range(100):
            await store.write_terminal_marker(f"run-{ts}", ts)

        expired = await store.list_expired_terminal_markers(10)

        assert [m.terminal_at_ms for m in expired] == list(range(10))
        assert len(recording.listed) == 11

    async def test_unordered_backends_scan_every_marker(self) -> None:
        recording = RecordingBackend(
            InMemoryBackend(), capabilities=Capabilities(False, True, 1000)
        )
        store = MemoStore(recording, "memo")
        for ts in range(20):
            await store.write_terminal_marker(f"run-{ts}", ts)
        assert len(await store.list_expired_terminal_markers(5)) == 5
        assert len(recording.listed) == 20

    async def test_unparseable_objects_under_terminals_are_skipped_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend = InMemoryBackend()
        store = MemoStore(backend, "memo")
        await backend.put("memo/terminals/not-a-marker", b"")
        await backend.put("memo/terminals/00000000000000000001_", b"")
        await backend.put("memo/terminals/nested/00000000000000000001_r", b"")
        await store.write_terminal_marker("run", 5)
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await store.list_terminal_markers() == [TerminalMarker("run", 5)]
        assert "not-a-marker" in caplog.text

    async def test_sweep_clears_expired_runs_then_deletes_their_markers(
        self, store: MemoStore
    ) -> None:
        for run, ts in [("old", 1), ("older", 0), ("young", 50)]:
            await store.new_memo(run, 0).put("k", b"v")
            await store.new_memo(run, 1).put("k", b"v")
            await store.write_terminal_marker(run, ts)
        await store.new_memo("running", 0).put("k", b"v")

        report = await store.sweep(10)

        assert sorted(report.runs_cleared) == ["old", "older"]
        assert report.entries_deleted == 4
        assert report.ok
        assert await store.list_terminal_markers() == [TerminalMarker("young", 50)]
        assert await store.new_memo("young", 0).get("k") == b"v"
        assert await store.new_memo("running", 0).get("k") == b"v"
        assert await store.new_memo("old", 1).get("k") is None

    async def test_a_dry_run_deletes_nothing(self, backend: MemoBackend, store: MemoStore) -> None:
        await store.new_memo("old", 0).put("k", b"v")
        await store.write_terminal_marker("old", 1)
        before = await all_keys(backend)

        report = await store.sweep(10, dry_run=True)

        assert report.runs_cleared == ["old"]
        assert report.dry_run
        assert await all_keys(backend) == before

    async def test_a_run_that_fails_to_clear_keeps_its_marker(self) -> None:
        backend = FlakyDeletes()
        store = MemoStore(backend, "memo")
        await store.new_memo("stuck", 0).put("k", b"v")
        await store.new_memo("fine", 0).put("k", b"v")
        await store.write_terminal_marker("stuck", 1)
        await store.write_terminal_marker("fine", 2)
        backend.undeletable.update(
            key for key in await all_keys(backend) if key.startswith("memo/memos/stuck/")
        )

        report = await store.sweep(10)

        assert report.runs_cleared == ["fine"]
        assert [f.marker for f in report.failures] == [TerminalMarker("stuck", 1)]
        assert not report.ok
        assert await store.list_terminal_markers() == [TerminalMarker("stuck", 1)]

        backend.undeletable.clear()
        again = await store.sweep(10)
        assert again.runs_cleared == ["stuck"]
        assert await all_keys(backend) == []

    async def test_a_sweep_interrupted_after_clearing_is_finished_by_the_next(self) -> None:
        backend = InMemoryBackend()
        store = MemoStore(backend, "memo")
        await store.new_memo("old", 0).put("k", b"v")
        await store.write_terminal_marker("old", 1)
        # The crash window: memos cleared, marker not yet deleted.
        await store.clear_memos_for_run("old")

        report = await store.sweep(10)

        assert report.runs_cleared == ["old"]
        assert await all_keys(backend) == []

    async def test_sweep_lists_at_most_concurrency_runs_at_once(self) -> None:
        running = 0
        peak = 0

        class SlowLists(InMemoryBackend):
            async def list(self, prefix: str):  # type: ignore[no-untyped-def]
                nonlocal running, peak
                if "/memos/" in prefix:
                    running += 1
                    peak = max(peak, running)
                    await asyncio.sleep(0.01)
                    running -= 1
                async for key in super().list(prefix):
                    yield key

        store = MemoStore(SlowLists(), "memo")
        for i in range(12):
            await store.write_terminal_marker(f"run-{i}", i)
        report = await store.sweep(100, concurrency=3, strategy="per-run")
        assert len(report.runs_cleared) == 12
        assert peak == 3

    async def test_sweep_reports_progress_per_run(self, store: MemoStore) -> None:
        await store.new_memo("a", 0).put("k", b"v")
        await store.write_terminal_marker("a", 1)
        seen: list[tuple[str, int]] = []
        await store.sweep(10, on_run_done=lambda marker, n: seen.append((marker.run_id, n)))
        assert seen == [("a", 1)]


class TestConditionalPut:
    async def test_first_writer_wins_with_if_absent(self, memo: Memo) -> None:
        assert await memo.put("k", b"first", if_absent=True) is True
        assert await memo.put("k", b"second", if_absent=True) is False
        assert await memo.get("k") == b"first"

    async def test_a_backend_without_conditional_put_refuses(self) -> None:
        class NoConditional(InMemoryBackend):
            @property
            def capabilities(self) -> Capabilities:
                return Capabilities(True, False, 1000)

            async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
                if if_absent:
                    raise NotSupportedError("conditional put")
                return await super().put(key, value)

        memo = MemoStore(NoConditional(), "memo").new_memo("run", 0)
        with pytest.raises(NotSupportedError):
            await memo.put("k", b"v", if_absent=True)


async def test_the_rust_layout_is_what_lands_in_the_backend() -> None:
    backend = InMemoryBackend()
    store = MemoStore(backend, "/tenant//memo/")
    await store.new_memo("run-1", 7).put("prompt", b"answer")
    await store.write_terminal_marker("run-1", 1_700_000_000_000)
    digest = hashlib.sha256(b"prompt").hexdigest()
    assert await all_keys(backend) == [
        f"tenant/memo/memos/run-1/7/{digest}",
        "tenant/memo/terminals/00000001700000000000_run-1",
    ]
    assert await backend.get("tenant/memo/terminals/00000001700000000000_run-1") == b""


async def test_closing_the_store_closes_the_backend() -> None:
    closed = False

    class Tracks(InMemoryBackend):
        async def aclose(self) -> None:
            nonlocal closed
            closed = True

    async with MemoStore(Tracks(), "memo") as store:
        assert repr(store) == "MemoStore(prefix='memo', backend=InMemoryBackend(keys=0))"
    assert closed


async def test_a_run_with_two_expired_markers_is_cleared_and_counted_once(
    store: MemoStore,
) -> None:
    memo = store.new_memo("twice", 0)
    for key in ("a", "b", "c"):
        await memo.put(key, b"v")
    await store.write_terminal_marker("twice", 1)
    await store.write_terminal_marker("twice", 2)

    report = await store.sweep(10, concurrency=4)

    assert report.entries_deleted == 3
    assert report.runs_cleared == ["twice"]
    assert await store.list_terminal_markers() == []
