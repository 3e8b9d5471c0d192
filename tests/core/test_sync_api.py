"""taquba_memo.sync: the same MemoStore and Memo, without await, driving the async core."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
from pathlib import Path

import pytest
import taquba_memo
from taquba_memo import (
    InMemoryBackend,
    InvalidRunIdError,
    InvalidValueTypeError,
    JSONCodec,
    LocalFileBackend,
    StoreClosedError,
    TerminalMarker,
    content_key,
)
from taquba_memo.sync import Memo, MemoStore, open_store
from taquba_memo_conformance import RecordingBackend

from ._flight_support import BlockingStep, wait_until

LOOP_THREAD = "taquba-memo-sync-loop"


def loop_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == LOOP_THREAD)


@pytest.fixture
def store(sync_store: MemoStore) -> MemoStore:
    """In this module ``store`` is the sync one."""
    return sync_store


class TestSameBehaviour:
    def test_entries_round_trip(self, store: MemoStore) -> None:
        memo = store.new_memo("run", 3)
        assert isinstance(memo, Memo)
        assert (memo.run_id, memo.step_number, memo.store) == ("run", 3, store)
        assert memo.get("k") is None
        assert memo.put("k", b"v")
        assert memo.get("k") == b"v"
        assert not memo.put("k", b"w", if_absent=True)
        assert memo.get("k") == b"v"

    def test_put_takes_any_bytes_like_value_as_the_async_one_does(self, store: MemoStore) -> None:
        memo = store.new_memo("run", 0)
        assert memo.put("array", bytearray(b"array"))
        assert memo.put("view", memoryview(b"view"))
        assert (memo.get("array"), memo.get("view")) == (b"array", b"view")

    def test_bad_input_raises_the_same_typed_errors(self, store: MemoStore) -> None:
        with pytest.raises(InvalidRunIdError):
            store.new_memo("no spaces", 0)
        with pytest.raises(InvalidValueTypeError):
            store.new_memo("run", 0).put("k", "text")  # type: ignore[arg-type]

    def test_markers_clearing_and_sweeping(self, store: MemoStore) -> None:
        for run_id in ("old", "young"):
            store.new_memo(run_id, 0).put("k", b"v")
        store.write_terminal_marker("old", 1_000)
        store.write_terminal_marker("young", 9_000)
        assert store.list_terminal_markers() == [
            TerminalMarker("old", 1_000),
            TerminalMarker("young", 9_000),
        ]
        assert store.list_expired_terminal_markers(5_000) == [TerminalMarker("old", 1_000)]
        report = store.sweep(5_000)
        assert (report.runs_cleared, report.entries_deleted) == (["old"], 1)
        assert store.new_memo("old", 0).get("k") is None
        assert store.clear_memos_for_run("young") == 1
        store.delete_terminal_marker(TerminalMarker("young", 9_000))
        assert store.list_terminal_markers() == []

    def test_content_addressed_entries(self, store: MemoStore) -> None:
        memo = store.new_memo("run", 0)
        assert memo.content_put({"q": 1}, {"a": 2}, codec=JSONCodec())
        assert memo.content_get({"q": 1}, codec=JSONCodec()) == {"a": 2}
        assert memo.get(content_key({"q": 1})) == b'{"a":2}'


class TestGetOrCompute:
    def test_a_sync_function_runs_in_the_calling_thread(self, store: MemoStore) -> None:
        threads: list[str] = []

        def step() -> bytes:
            threads.append(threading.current_thread().name)
            return b"value"

        assert store.new_memo("run", 0).get_or_compute("k", step) == b"value"
        assert threads == [threading.current_thread().name]

    def test_an_async_function_runs_on_the_stores_loop(self, store: MemoStore) -> None:
        async def step() -> bytes:
            return threading.current_thread().name.encode()

        assert store.new_memo("run", 0).get_or_compute("k", step) == LOOP_THREAD.encode()

    def test_a_hit_does_not_compute(self, store: MemoStore) -> None:
        memo = store.new_memo("run", 0)
        memo.put("k", b"stored")
        assert memo.get_or_compute("k", pytest.fail) == b"stored"

    def test_exceptions_propagate_and_are_not_cached(self, store: MemoStore) -> None:
        memo = store.new_memo("run", 0)

        def fails() -> bytes:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            memo.get_or_compute("k", fails)
        assert memo.get_or_compute("k", lambda: b"yes") == b"yes"

    def test_codecs_and_if_absent(self, store: MemoStore) -> None:
        memo = store.new_memo("run", 0)
        assert memo.get_or_compute("k", lambda: [1, 2], codec=JSONCodec(), if_absent=True) == [
            1,
            2,
        ]
        assert memo.get("k") == b"[1,2]"

    def test_worker_threads_sharing_a_store_compute_once(self, store: MemoStore) -> None:
        step = BlockingStep(b"once")
        results: list[bytes] = []

        def worker() -> None:
            results.append(store.new_memo("run", 0).get_or_compute("k", step))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        threads[0].start()
        assert step.entered.wait(60)
        for thread in threads[1:]:
            thread.start()
        flight_key = (id(store.backend), taquba_memo._layout.memo_key("memo", "run", 0, "k"))
        wait_until(lambda: taquba_memo._single_flight.followers(flight_key) == 3)
        step.release.set()
        for thread in threads:
            thread.join(60)
        assert results == [b"once"] * 4
        assert step.calls == 1


class TestStreaming:
    def test_iterators_yield_lazily_and_stop_listing_when_the_consumer_stops(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        with MemoStore(backend, "memo") as store:
            for run in range(20):
                store.write_terminal_marker(f"run-{run}", run)
            markers = store.iter_terminal_markers()
            assert backend.listed == []  # nothing is listed before the first next()
            first_two = [next(markers), next(markers)]
            markers.close()  # type: ignore[attr-defined]
            assert [m.run_id for m in first_two] == ["run-0", "run-1"]
            assert len(backend.listed) == 2

    def test_expired_markers_stream_too(self, store: MemoStore) -> None:
        for run in range(5):
            store.write_terminal_marker(f"run-{run}", run * 10)
        assert [m.run_id for m in store.iter_expired_terminal_markers(25)] == [
            "run-0",
            "run-1",
            "run-2",
        ]

    def test_sweep_progress_callbacks_run_in_the_calling_thread(self, store: MemoStore) -> None:
        store.write_terminal_marker("a", 1)
        store.write_terminal_marker("b", 2)
        seen: list[tuple[str, str]] = []
        store.sweep(
            10, on_run_done=lambda m, _n: seen.append((m.run_id, threading.current_thread().name))
        )
        assert sorted(seen) == [
            ("a", threading.current_thread().name),
            ("b", threading.current_thread().name),
        ]

    def test_an_async_sweep_callback_runs_on_the_stores_loop(self, store: MemoStore) -> None:
        store.write_terminal_marker("a", 1)
        seen: list[tuple[str, int, str]] = []

        async def on_run_done(marker: TerminalMarker, entries_deleted: int) -> None:
            seen.append((marker.run_id, entries_deleted, threading.current_thread().name))

        store.sweep(10, on_run_done=on_run_done)
        assert seen == [("a", 0, LOOP_THREAD)]


class TestInsideARunningEventLoop:
    async def test_the_sync_api_works_from_a_coroutine_without_deadlocking(
        self, tmp_path: Path
    ) -> None:
        with MemoStore(LocalFileBackend(tmp_path), "memo") as store:
            memo = store.new_memo("run", 0)
            assert memo.get_or_compute("k", lambda: b"from a loop thread") == b"from a loop thread"
            assert memo.get("k") == b"from a loop thread"
            assert list(store.iter_terminal_markers()) == []

    def test_calling_the_store_from_its_own_loop_raises_instead_of_deadlocking(
        self, store: MemoStore
    ) -> None:
        memo = store.new_memo("run", 0)

        async def reenters() -> bytes:
            return memo.get("other") or b""

        with pytest.raises(RuntimeError, match="deadlock"):
            memo.get_or_compute("k", reenters)


class TestClosing:
    def test_close_closes_the_backend_and_stops_the_thread(self) -> None:
        closed: list[bool] = []

        class Closing(InMemoryBackend):
            async def aclose(self) -> None:
                closed.append(True)

        before = loop_threads()
        store = MemoStore(Closing(), "memo")
        assert loop_threads() == before + 1
        store.close()
        assert closed == [True]
        assert store.closed
        assert loop_threads() == before

    def test_close_twice_is_harmless(self) -> None:
        store = MemoStore(InMemoryBackend())
        store.close()
        store.close()

    def test_the_context_manager_closes(self) -> None:
        with MemoStore(InMemoryBackend()) as store:
            pass
        assert store.closed

    def test_a_closed_store_refuses_work_with_a_typed_error(self) -> None:
        store = MemoStore(InMemoryBackend())
        memo = store.new_memo("run", 0)
        store.close()
        with pytest.raises(StoreClosedError):
            memo.get("k")
        with pytest.raises(StoreClosedError):
            store.list_terminal_markers()

    def test_bad_constructor_arguments_start_no_thread(self) -> None:
        before = loop_threads()
        with pytest.raises(InvalidValueTypeError):
            MemoStore("not a backend")  # type: ignore[arg-type]
        assert loop_threads() == before

    def test_an_unclosed_store_that_is_collected_stops_its_thread(self) -> None:
        before = loop_threads()
        store = MemoStore(InMemoryBackend())
        store.new_memo("run", 0).put("k", b"v")
        del store
        gc.collect()
        wait_until(lambda: loop_threads() == before)


class TestOpenStore:
    def test_opens_a_local_directory_by_url(self, tmp_path: Path) -> None:
        with open_store(tmp_path.as_uri(), prefix="agents") as store:
            assert store.prefix == "agents"
            store.new_memo("run", 0).put("k", b"v")
        assert (tmp_path / "agents" / "memos" / "run" / "0").is_dir()

    def test_a_bad_url_fails_and_leaves_no_thread(self) -> None:
        before = loop_threads()
        with pytest.raises(taquba_memo.InvalidURLError):
            open_store("nonsense")
        assert loop_threads() == before

    async def test_works_from_inside_a_running_loop(self) -> None:
        with open_store("memory://") as store:
            assert store.new_memo("run", 0).get_or_compute("k", lambda: b"v") == b"v"
            asyncio.get_running_loop()  # still ours, untouched


class SoftTimeLimitExceeded(Exception):
    """What Celery's soft time limit raises in the worker thread (not an OSError,
    which asyncio's own wake-up code would swallow)."""


def time_limit(signum: int, frame: object) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")


class TestInterruptedCallers:
    """A task time limit raises in the waiting thread, as Celery's soft_time_limit does."""

    def test_an_interrupted_caller_still_stores_the_async_result_it_paid_for(
        self, store: MemoStore
    ) -> None:
        memo = store.new_memo("run", 1)
        release = threading.Event()
        calls = 0
        main_thread = threading.main_thread().ident
        assert main_thread is not None

        async def slow_model() -> bytes:
            nonlocal calls
            calls += 1
            signal.pthread_kill(main_thread, signal.SIGALRM)  # the limit hits mid-call
            await asyncio.to_thread(release.wait, 30)
            return b"billed"

        previous = signal.signal(signal.SIGALRM, time_limit)
        try:
            with pytest.raises(SoftTimeLimitExceeded):
                memo.get_or_compute("k", slow_model)
        finally:
            signal.signal(signal.SIGALRM, previous)
        release.set()
        assert memo.get_or_compute("k", lambda: b"paid again") == b"billed"
        assert memo.get("k") == b"billed"
        assert calls == 1

    def test_opting_out_cancels_the_async_fn_with_the_caller(self, store: MemoStore) -> None:
        memo = store.new_memo("run", 1)
        main_thread = threading.main_thread().ident
        assert main_thread is not None
        cancelled = threading.Event()

        async def slow_model() -> bytes:
            signal.pthread_kill(main_thread, signal.SIGALRM)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return b"never"

        previous = signal.signal(signal.SIGALRM, time_limit)
        try:
            with pytest.raises(SoftTimeLimitExceeded):
                memo.get_or_compute("k", slow_model, store_if_cancelled=False)
        finally:
            signal.signal(signal.SIGALRM, previous)
        assert cancelled.wait(10)
        assert memo.get("k") is None
