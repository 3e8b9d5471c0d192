"""Memo.get_or_compute: the stored value, or compute once, store and return it."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any

import pytest
from taquba_memo import (
    BackendError,
    EncodeError,
    InMemoryBackend,
    InvalidValueTypeError,
    JSONCodec,
    Memo,
    MemoBackend,
    MemoStore,
    NotSupportedError,
    ValueTooLargeError,
    _single_flight,
)
from taquba_memo._layout import memo_key
from taquba_memo.backend import Capabilities
from taquba_memo_conformance import RecordingBackend

from ._flight_support import (
    BlockingStep,
    GatedStep,
    settle,
    start_in_turn,
    wait_until,
    wait_until_async,
)

WITHOUT_CONDITIONAL_PUT = Capabilities(
    ordered_listing=True, conditional_put=False, max_delete_batch=1000
)


def backend_without_conditional_put(class_name: str) -> RecordingBackend:
    """A backend of a class of its own (the core warns once per class) that cannot put-if-absent."""
    backend_class: type[RecordingBackend] = type(class_name, (RecordingBackend,), {})
    return backend_class(InMemoryBackend(), capabilities=WITHOUT_CONDITIONAL_PUT)


class Calls:
    """A step function that counts its calls."""

    def __init__(self, result: Any = b"computed") -> None:
        self.count = 0
        self.result = result

    def __call__(self) -> Any:
        self.count += 1
        return self.result


def new_memo(backend: MemoBackend | None = None, run_id: str = "run") -> Memo:
    return MemoStore(backend or InMemoryBackend(), "memo").new_memo(run_id, 1)


class TestHitsAndMisses:
    async def test_a_miss_computes_stores_and_returns(self, backend: MemoBackend) -> None:
        memo = new_memo(backend)
        fn = Calls(b"answer")
        assert await memo.get_or_compute("k", fn) == b"answer"
        assert await memo.get("k") == b"answer"
        assert fn.count == 1

    async def test_a_hit_returns_the_stored_value_without_computing(
        self, backend: MemoBackend
    ) -> None:
        memo = new_memo(backend)
        await memo.put("k", b"earlier attempt")
        fn = Calls()
        assert await memo.get_or_compute("k", fn) == b"earlier attempt"
        assert fn.count == 0

    async def test_a_hit_is_one_read_in_the_callers_own_task(self) -> None:
        """A hit needs none of the machinery that protects paid work: no task, no flight."""
        backend = RecordingBackend(InMemoryBackend())
        memo = new_memo(backend)
        await memo.put("k", b"earlier attempt")
        backend.clear()
        loop = asyncio.get_running_loop()
        tasks: list[object] = []

        def counting_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            tasks.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting_factory)
        try:
            assert await memo.get_or_compute("k", Calls()) == b"earlier attempt"
        finally:
            loop.set_task_factory(None)
        assert tasks == []
        assert backend.counts() == {"get": 1}
        assert _single_flight.in_progress() == 0

    async def test_a_miss_reads_the_entry_once_before_paying(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        memo = new_memo(backend)
        assert await memo.get_or_compute("k", Calls(b"answer")) == b"answer"
        assert backend.counts() == {"get": 1, "put": 1}

    async def test_async_functions_are_awaited(self) -> None:
        memo = new_memo()

        async def fn() -> bytes:
            await asyncio.sleep(0)
            return b"async"

        assert await memo.get_or_compute("k", fn) == b"async"

    async def test_a_retry_finds_what_the_first_attempt_computed(
        self, backend: MemoBackend
    ) -> None:
        first, retry = new_memo(backend), new_memo(backend)
        await first.get_or_compute("k", Calls(b"once"))
        fn = Calls(b"twice")
        assert await retry.get_or_compute("k", fn) == b"once"
        assert fn.count == 0

    async def test_codecs_turn_values_into_bytes(self, backend: MemoBackend) -> None:
        memo = new_memo(backend)
        value = await memo.get_or_compute("k", Calls({"tokens": 3}), codec=JSONCodec())
        assert value == {"tokens": 3}
        assert await memo.get("k") == b'{"tokens":3}'

    async def test_the_first_call_returns_what_a_retry_will_read(self) -> None:
        memo = new_memo()
        first = await memo.get_or_compute("k", Calls((1, 2)), codec=JSONCodec())
        retry = await memo.get_or_compute("k", Calls(), codec=JSONCodec())
        assert first == retry == [1, 2]

    async def test_keys_runs_and_steps_are_separate_entries(self, store: MemoStore) -> None:
        fn = Calls()
        await store.new_memo("run", 1).get_or_compute("a", fn)
        await store.new_memo("run", 1).get_or_compute("b", fn)
        await store.new_memo("run", 2).get_or_compute("a", fn)
        await store.new_memo("other", 1).get_or_compute("a", fn)
        assert fn.count == 4


class TestFailuresAreNeverCached:
    async def test_an_exception_propagates_and_nothing_is_stored(
        self, backend: MemoBackend
    ) -> None:
        memo = new_memo(backend)

        def fails() -> bytes:
            raise RuntimeError("model timed out")

        with pytest.raises(RuntimeError, match="model timed out"):
            await memo.get_or_compute("k", fails)
        assert await memo.get("k") is None
        assert await memo.get_or_compute("k", Calls(b"second try")) == b"second try"

    async def test_a_result_the_codec_cannot_encode_is_not_stored(self) -> None:
        memo = new_memo()
        with pytest.raises(EncodeError):
            await memo.get_or_compute("k", Calls({"a set": {1}}), codec=JSONCodec())
        assert await memo.get("k") is None

    async def test_an_unencodable_result_says_it_was_paid_and_names_the_fix(self) -> None:
        class ChatCompletion:  # what an SDK returns: not JSON as it is
            pass

        with pytest.raises(EncodeError) as caught:
            await new_memo().get_or_compute("k", Calls(ChatCompletion()), codec=JSONCodec())
        message = str(caught.value)
        assert "ChatCompletion" in message
        assert "paid" in message
        assert "PickleCodec" in message
        assert "pydantic" in message
        assert isinstance(caught.value.__cause__, EncodeError)

    async def test_a_result_over_max_value_bytes_is_not_stored(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        memo = MemoStore(backend, "memo", max_value_bytes=4).new_memo("run", 1)
        with pytest.raises(ValueTooLargeError, match=r"paid.*smaller value"):
            await memo.get_or_compute("k", Calls(b"too large"))
        assert backend.count("put") == 0
        assert await memo.get("k") is None

    async def test_a_codec_without_encode_and_decode_is_refused_before_any_io(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        fn = Calls()
        with pytest.raises(InvalidValueTypeError, match="codec"):
            await new_memo(backend).get_or_compute("k", fn, codec=object())  # type: ignore[call-overload]
        assert fn.count == 0
        assert backend.calls == []


class TestUndecodableValuesAreMisses:
    async def test_a_value_that_does_not_decode_is_recomputed_and_replaced(
        self, backend: MemoBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        memo = new_memo(backend)
        await memo.put("k", b"\xff not json")
        fn = Calls({"fresh": True})
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            value = await memo.get_or_compute("k", fn, codec=JSONCodec())
        assert value == {"fresh": True}
        assert fn.count == 1
        assert await memo.get("k") == b'{"fresh":true}'
        assert "does not decode" in caplog.text

    @pytest.mark.parametrize("raised", [KeyError, TypeError, ValueError, AttributeError])
    async def test_a_value_an_object_hook_refuses_is_a_miss_logged_with_its_cause(
        self, raised: type[Exception], caplog: pytest.LogCaptureFixture
    ) -> None:
        def current_schema(fields: dict[str, Any]) -> Any:
            if "model" not in fields:
                raise raised("model")
            return fields

        memo = new_memo()
        await memo.put("k", b'{"old_field":1}')  # written before a deploy changed the schema
        codec = JSONCodec(object_hook=current_schema)
        fn = Calls({"model": "m-2"})
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await memo.get_or_compute("k", fn, codec=codec) == {"model": "m-2"}
        assert fn.count == 1
        assert await memo.get("k") == b'{"model":"m-2"}'
        assert f"object_hook refused the stored JSON: {raised.__name__}" in caplog.text
        assert "UTF-8" not in caplog.text
        retry = Calls()
        assert await memo.get_or_compute("k", retry, codec=codec) == {"model": "m-2"}
        assert retry.count == 0

    async def test_any_exception_from_a_users_codec_while_decoding_is_a_miss(self) -> None:
        class Strict:
            def encode(self, value: int, /) -> bytes:
                return str(value).encode()

            def decode(self, data: bytes, /) -> int:
                return int(data)  # ValueError on anything else: a bug, but still a miss

        memo = new_memo()
        await memo.put("k", b"not a number")
        assert await memo.get_or_compute("k", Calls(7), codec=Strict()) == 7
        assert await memo.get("k") == b"7"

    async def test_with_if_absent_the_undecodable_value_is_overwritten(self) -> None:
        memo = new_memo()
        await memo.put("k", b"\xff not json")
        value = await memo.get_or_compute("k", Calls([1]), codec=JSONCodec(), if_absent=True)
        assert value == [1]
        assert await memo.get("k") == b"[1]"


class TestFirstWriterWins:
    async def test_a_writer_that_lost_returns_the_winners_value(self) -> None:
        backend = InMemoryBackend()
        memo, other_worker = new_memo(backend), new_memo(backend)

        async def slow_step() -> bytes:
            # Another worker finishes the same step while this one computes.
            await other_worker.put("k", b"winner", if_absent=True)
            return b"loser"

        assert await memo.get_or_compute("k", slow_step, if_absent=True) == b"winner"
        assert await memo.get("k") == b"winner"

    async def test_by_default_duplicates_agree_on_the_first_writers_value(self) -> None:
        backend = InMemoryBackend()
        # Another worker process: the same storage through another backend object.
        memo, other_worker = new_memo(backend), new_memo(RecordingBackend(backend))

        async def slow_step() -> bytes:
            await other_worker.get_or_compute("k", Calls(b"first"))
            return b"second"

        assert await memo.get_or_compute("k", slow_step) == b"first"
        assert await memo.get("k") == b"first"

    async def test_if_absent_false_chooses_overwrite_as_put_does_in_the_reference(self) -> None:
        backend = InMemoryBackend()
        memo, other_worker = new_memo(backend), new_memo(backend)

        async def slow_step() -> bytes:
            await other_worker.put("k", b"other")
            return b"mine"

        assert await memo.get_or_compute("k", slow_step, if_absent=False) == b"mine"
        assert await memo.get("k") == b"mine"

    async def test_without_conditional_put_the_default_overwrites_and_warns_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend = backend_without_conditional_put(class_name="OverwriteOnlyBackend")
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await new_memo(backend).get_or_compute("a", Calls(b"1")) == b"1"
            assert await new_memo(backend).get_or_compute("b", Calls(b"2")) == b"2"
        warnings = [r for r in caplog.records if "does not declare conditional_put" in r.message]
        assert len(warnings) == 1
        assert "OverwriteOnlyBackend" in warnings[0].message
        assert "latest writer wins" in warnings[0].message

    async def test_choosing_overwrite_explicitly_does_not_warn(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend = backend_without_conditional_put(class_name="QuietOverwriteBackend")
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            await new_memo(backend).get_or_compute("a", Calls(), if_absent=False)
        assert "conditional_put" not in caplog.text

    async def test_if_absent_needs_conditional_put_and_fails_before_any_work(self) -> None:
        backend = RecordingBackend(InMemoryBackend(), capabilities=WITHOUT_CONDITIONAL_PUT)
        fn = Calls()
        with pytest.raises(NotSupportedError):
            await new_memo(backend).get_or_compute("k", fn, if_absent=True)
        assert fn.count == 0
        assert backend.calls == []

    async def test_if_absent_is_refused_on_a_hit_too_so_the_mistake_shows_on_the_first_call(
        self,
    ) -> None:
        backend = backend_without_conditional_put(class_name="HitOnlyBackend")
        await new_memo(backend).put("k", b"stored")
        with pytest.raises(NotSupportedError):
            await new_memo(backend).get_or_compute("k", Calls(), if_absent=True)

    async def test_the_overwrite_warning_comes_with_the_first_miss_not_with_hits(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend = backend_without_conditional_put(class_name="HitsThenMissBackend")
        await new_memo(backend).put("k", b"stored")
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await new_memo(backend).get_or_compute("k", Calls()) == b"stored"
            assert "conditional_put" not in caplog.text  # a hit writes nothing
            await new_memo(backend).get_or_compute("other", Calls())
        assert "HitsThenMissBackend does not declare conditional_put" in caplog.text


class TestBadInput:
    async def test_a_non_str_key_fails_before_any_io(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        with pytest.raises(InvalidValueTypeError):
            await new_memo(backend).get_or_compute(b"k", Calls())  # type: ignore[call-overload]
        assert backend.calls == []

    async def test_fn_must_be_callable(self) -> None:
        with pytest.raises(InvalidValueTypeError):
            await new_memo().get_or_compute("k", b"not a function")  # type: ignore[call-overload]


class TestConcurrentCallersComputeOnce:
    async def test_concurrent_tasks_share_one_computation(self) -> None:
        memo = new_memo()
        step = GatedStep(b"shared")
        tasks = [asyncio.ensure_future(memo.get_or_compute("k", step)) for _ in range(8)]
        await settle()
        step.release()
        assert await asyncio.gather(*tasks) == [b"shared"] * 8
        assert step.calls == 1
        assert _single_flight.in_progress() == 0

    async def test_followers_receive_the_leaders_exception_and_nothing_is_kept(self) -> None:
        memo = new_memo()
        step = GatedStep(error=RuntimeError("upstream down"))
        tasks = [asyncio.ensure_future(memo.get_or_compute("k", step)) for _ in range(3)]
        await settle()
        step.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert _single_flight.in_progress() == 0
        assert await memo.get_or_compute("k", Calls(b"recovered")) == b"recovered"

    @pytest.mark.parametrize(
        "cancelled",
        [
            pytest.param("leader", id="a follower of a cancelled leader waits for its computation"),
            pytest.param("follower", id="a cancelled follower does not disturb the leader"),
        ],
    )
    async def test_cancelling_one_caller_leaves_the_other_the_one_computation(
        self, cancelled: str
    ) -> None:
        memo = new_memo()
        step = GatedStep(b"paid once")
        leader, follower = await start_in_turn(
            memo.get_or_compute("k", step), memo.get_or_compute("k", step)
        )
        gone, survivor = (leader, follower) if cancelled == "leader" else (follower, leader)
        gone.cancel()
        await settle()
        step.release()
        assert await survivor == b"paid once"
        assert gone.cancelled()
        assert step.calls == 1
        assert _single_flight.in_progress() == 0

    async def test_a_leader_cancelled_before_fn_started_hands_over_to_a_follower(
        self,
    ) -> None:
        backend = InMemoryBackend()
        slow_reads = asyncio.Event()

        class SlowReads(RecordingBackend):
            async def get(self, key: str) -> bytes | None:
                await slow_reads.wait()
                return await super().get(key)

        memo = new_memo(SlowReads(backend))
        fn = Calls(b"computed by the follower")
        leader, follower = await start_in_turn(
            memo.get_or_compute("k", fn), memo.get_or_compute("k", fn)
        )
        leader.cancel()  # still reading: nothing was paid, so nothing runs on
        await settle()
        slow_reads.set()
        assert await follower == b"computed by the follower"
        assert fn.count == 1

    async def test_followers_decode_with_their_own_codec(self) -> None:
        memo = new_memo()
        step = GatedStep({"n": 1})
        leader, raw = await start_in_turn(
            memo.get_or_compute("k", step, codec=JSONCodec()),
            memo.get_or_compute("k", Calls()),
        )
        step.release()
        assert await leader == {"n": 1}
        assert await raw == b'{"n":1}'

    async def test_separate_backends_never_share_a_flight(self) -> None:
        step = GatedStep(b"x")
        # Same prefix, run, step and key, but two different buckets.
        tasks = [
            asyncio.ensure_future(new_memo(InMemoryBackend()).get_or_compute("k", step))
            for _ in range(2)
        ]
        await settle()
        step.release()
        await asyncio.gather(*tasks)
        assert step.calls == 2

    def test_threads_with_their_own_event_loops_share_one_computation(self) -> None:
        backend = InMemoryBackend()
        memo = new_memo(backend)
        flight_key = (id(backend), memo_key("memo", "run", 1, "k"))
        step = BlockingStep(b"once")
        results: dict[str, bytes] = {}

        def worker(name: str) -> None:
            results[name] = asyncio.run(memo.get_or_compute("k", step))

        leader = threading.Thread(target=worker, args=("leader",))
        leader.start()
        assert step.entered.wait(60)
        follower = threading.Thread(target=worker, args=("follower",))
        follower.start()
        wait_until(lambda: _single_flight.followers(flight_key) == 1)
        step.release.set()
        leader.join(60)
        follower.join(60)
        assert results == {"leader": b"once", "follower": b"once"}
        assert step.calls == 1
        assert _single_flight.in_progress() == 0


class TestStorageFailures:
    async def test_a_failing_read_propagates_and_computes_nothing(self) -> None:
        class Unreadable(InMemoryBackend):
            async def get(self, key: str) -> bytes | None:
                raise BackendError("read failed")

        fn = Calls()
        with pytest.raises(BackendError):
            await new_memo(Unreadable()).get_or_compute("k", fn)
        assert fn.count == 0
        assert _single_flight.in_progress() == 0


class TestPaidWorkSurvivesCancellation:
    if sys.version_info >= (3, 11):  # asyncio.timeout is new in 3.11

        async def test_a_timed_out_caller_still_stores_the_result_it_paid_for(self) -> None:
            memo = new_memo()
            slow_model = GatedStep(b"billed answer")
            with pytest.raises(asyncio.TimeoutError):
                async with asyncio.timeout(0.05):
                    await memo.get_or_compute("k", slow_model)
            slow_model.release()
            retry = Calls()
            assert await memo.get_or_compute("k", retry) == b"billed answer"
            assert await memo.get("k") == b"billed answer"
            assert (slow_model.calls, retry.count) == (1, 0)
            assert _single_flight.in_progress() == 0

    async def test_a_retry_during_the_orphaned_computation_waits_for_it(self) -> None:
        memo = new_memo()
        slow_model = GatedStep(b"billed answer")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(memo.get_or_compute("k", slow_model), 0.05)
        (retry,) = await start_in_turn(memo.get_or_compute("k", slow_model))
        slow_model.release()
        assert await retry == b"billed answer"
        assert slow_model.calls == 1

    async def test_store_if_cancelled_false_cancels_fn_with_its_caller(self) -> None:
        memo = new_memo()
        cancelled = asyncio.Event()

        async def slow_model() -> bytes:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return b"never"

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                memo.get_or_compute("k", slow_model, store_if_cancelled=False), 0.05
            )
        await asyncio.wait_for(cancelled.wait(), 10)
        assert await memo.get("k") is None
        assert _single_flight.in_progress() == 0

    async def test_a_failure_of_an_orphaned_computation_is_logged_and_not_stored(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        memo = new_memo()
        failing_model = GatedStep(error=RuntimeError("model overloaded"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(memo.get_or_compute("k", failing_model), 0.05)
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            failing_model.release()
            await wait_until_async(
                lambda: _single_flight.in_progress() == 0 and "model overloaded" in caplog.text
            )
        assert "model overloaded" in caplog.text
        assert await memo.get("k") is None

    def test_a_thread_whose_leader_timed_out_hands_its_result_to_another_thread(self) -> None:
        memo = new_memo()
        calls = 0
        release = threading.Event()
        leader_timed_out = threading.Event()
        results: dict[str, object] = {}

        async def slow_model() -> bytes:
            nonlocal calls
            calls += 1
            await asyncio.to_thread(release.wait, 30)
            return b"billed once"

        async def leader_worker() -> None:
            try:
                await asyncio.wait_for(memo.get_or_compute("k", slow_model), 0.05)
            except asyncio.TimeoutError:
                leader_timed_out.set()
            # The worker's loop lives on (a long-running worker), so the computation finishes.
            await wait_until_async(lambda: _single_flight.in_progress() == 0)

        async def follower_worker() -> None:
            leader_timed_out.wait(30)
            results["follower"] = await memo.get_or_compute("k", slow_model)

        threads = [
            threading.Thread(target=asyncio.run, args=(leader_worker(),)),
            threading.Thread(target=asyncio.run, args=(follower_worker(),)),
        ]
        for thread in threads:
            thread.start()
        assert leader_timed_out.wait(30)
        release.set()
        for thread in threads:
            thread.join(30)
        assert results == {"follower": b"billed once"}
        assert calls == 1
