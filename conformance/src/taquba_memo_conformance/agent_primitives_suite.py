"""AgentPrimitiveTests: the core's agent primitives keep their promises on this backend.

``use_memo`` and ``current_memo``, a sync memo's ``aio`` view,
``request_key``, occurrence keys, ``PydanticCodec`` and ``get_or_stream``,
each through the async API and the sync API (:mod:`taquba_memo.sync`), over
the backend under test. The tests of ``PydanticCodec`` and ``request_key``'s
models need pydantic (``taquba-memo[pydantic]``) and are skipped without it.

A sync test runs the sync API in a worker thread, as a Celery or RQ worker
does. Its backend stays on the test's event loop, where the ``backend``
fixture built it (some SDK clients bind to the loop of their first request):
the sync store's calls cross to that loop. Simulated workers have a backend
object each, as separate processes have, so the in-process single flight
never hides what the storage does. Tests whose promise rests on
``conditional_put`` (the first complete stream wins, claims) are skipped
without it, naming the capability.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any, TypeVar, cast

import pytest
from taquba_memo import (
    ClaimPolicy,
    JSONCodec,
    MemoBackend,
    MemoStore,
    PydanticCodec,
    content_key,
    current_memo,
    request_key,
    sync,
    use_memo,
)
from taquba_memo._aio import LoopThreadBackend

from taquba_memo_conformance.claims_suite import ClaimTests, _WorkerBackend
from taquba_memo_conformance.keyspace import KeySpace

__all__ = ["CHUNKS", "AgentPrimitiveTests", "ModelStream", "SyncModelStream", "in_a_sync_worker"]

CHUNKS = [b"The ", b"answer ", b"is ", b"42."]
USER = {"role": "user", "content": "What is the weather in Paris?"}


_Stream = TypeVar("_Stream", bound="_Chunks")


class _Chunks:
    """What both kinds of model stream share: the chunks, the pause, the failure, the counts."""

    def __init__(self, chunks: list[bytes] | None, fail_after: int | None) -> None:
        self.chunks = CHUNKS if chunks is None else chunks
        self.fail_after = fail_after
        self.paused_after: int | None = None
        self.calls = self.produced = 0
        self.closed = False
        self.gate: asyncio.Event | threading.Event = threading.Event()

    def pause_after(self: _Stream, count: int) -> _Stream:
        """Hold the stream before chunk ``count`` until :meth:`release`."""
        self.paused_after = count
        return self

    def release(self) -> None:
        self.gate.set()

    def produce(self, index: int) -> bytes:
        """Chunk ``index``, paid for; or the model's connection drops there."""
        if index == self.fail_after:
            raise RuntimeError("the model's connection dropped")
        self.produced += 1
        return self.chunks[index]


class ModelStream(_Chunks):
    """A model's streamed answer for ``get_or_stream``: counts its calls, pauses, or fails part-way.

    Calling it starts one stream of ``chunks`` (:data:`CHUNKS` by default);
    :meth:`pause_after` holds every stream before chunk ``count`` until
    :meth:`release`, ``fail_after`` raises before that chunk. ``calls``,
    ``produced`` and ``closed`` tell what was paid for.
    """

    def __init__(self, chunks: list[bytes] | None = None, *, fail_after: int | None = None) -> None:
        super().__init__(chunks, fail_after)
        self.started, self.gate = asyncio.Event(), asyncio.Event()

    def __call__(self) -> AsyncIterator[bytes]:
        self.calls += 1
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        self.started.set()
        try:
            for index in range(len(self.chunks)):
                if index == self.paused_after:
                    await cast(asyncio.Event, self.gate).wait()
                yield self.produce(index)
        finally:
            self.closed = True


class SyncModelStream(_Chunks):
    """:class:`ModelStream` for the sync API: an iterator, gated by a thread's event."""

    def __init__(self, *, fail_after: int | None = None) -> None:
        super().__init__(None, fail_after)

    def __call__(self) -> Iterator[bytes]:
        self.calls += 1
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        try:
            for index in range(len(self.chunks)):
                if index == self.paused_after:
                    cast(threading.Event, self.gate).wait(60)
                yield self.produce(index)
        finally:
            self.closed = True


class _CallerLoop:
    """The test's own event loop, as the loop a :class:`LoopThreadBackend` hands calls to."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @property
    def stopped(self) -> bool:
        return self.loop.is_closed()


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def _until(condition: Callable[[], bool], what: str, patience_s: float) -> None:
    """Wait, in a sync worker, until ``condition()``; polled, as the state signals nothing."""
    done = threading.Event()
    for _ in range(int(patience_s / 0.01)):
        if condition():
            return
        done.wait(0.01)
    pytest.fail(f"timed out waiting until {what}")


def _pydantic() -> ModuleType:
    """The suite's models; skips the test where pydantic is not installed."""
    pytest.importorskip("pydantic", reason="needs taquba-memo[pydantic]")
    from taquba_memo_conformance import agent_models

    return agent_models


def _sdk_request_and_its_plain_data() -> tuple[dict[str, Any], dict[str, Any]]:
    """A request holding an SDK message and a dataclass, and the same request as plain data."""
    models = _pydantic()
    sdk = {
        "model": "small-1",
        "messages": [USER, models.AssistantMessage(content="Sunny.")],
        "turns": [models.Turn(models.AssistantMessage(content="hi"), models.Usage(3, 1))],
    }
    plain = {
        "model": "small-1",
        "messages": [USER, {"role": "assistant", "content": "Sunny."}],
        "turns": [
            {
                "message": {"role": "assistant", "content": "hi"},
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            }
        ],
    }
    return sdk, plain


def in_a_sync_worker(
    test: Callable[[Any, sync.MemoStore], None],
) -> Callable[..., Coroutine[Any, Any, None]]:
    """Make ``test(self, store)``, written with the sync API, a test of the suite.

    It runs in a worker thread, as a Celery or RQ task does, with a sync
    store over the test's backend (:meth:`AgentPrimitiveTests.sync_store`).
    """

    async def in_a_worker_thread(
        self: AgentPrimitiveTests, backend: MemoBackend, space: KeySpace
    ) -> None:
        async with self.sync_store(backend, space) as store:
            await asyncio.to_thread(test, self, store)

    in_a_worker_thread.__name__ = test.__name__
    in_a_worker_thread.__qualname__ = test.__qualname__
    in_a_worker_thread.__doc__ = test.__doc__
    return in_a_worker_thread


class AgentPrimitiveTests(ClaimTests):
    """The agent primitives over this backend, async and sync (builds on the claims' helpers)."""

    # -- helpers --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def sync_store(
        self, backend: MemoBackend, space: KeySpace
    ) -> AsyncIterator[sync.MemoStore]:
        """A sync store over the backend, whose calls cross to this test's loop."""
        reached = LoopThreadBackend(backend, _CallerLoop(asyncio.get_running_loop()))
        store = sync.MemoStore(reached, space.root)
        try:
            yield store
        finally:
            await asyncio.to_thread(store.close)  # its last calls may still cross to this loop

    @contextlib.asynccontextmanager
    async def two_sync_workers(
        self, backend: MemoBackend, space: KeySpace
    ) -> AsyncIterator[tuple[sync.MemoStore, sync.MemoStore, _WorkerBackend]]:
        """Two sync workers' stores, each over its own backend object; the second one's too."""
        second = _WorkerBackend(backend)
        async with (
            self.sync_store(_WorkerBackend(backend), space) as first_worker,
            self.sync_store(second, space) as second_worker,
        ):
            yield first_worker, second_worker, second

    # -- use_memo and current_memo ------------------------------------------------------

    async def test_use_memo_gives_hooks_and_the_tasks_they_start_the_bound_memo(
        self, store: MemoStore
    ) -> None:
        calls = 0

        async def model_hook(prompt: str) -> bytes:
            memo = current_memo()
            assert memo is not None, "the hook runs inside use_memo"

            async def call_model() -> bytes:
                nonlocal calls
                calls += 1
                return prompt.upper().encode()

            return await memo.get_or_compute(prompt, call_model)

        assert current_memo() is None
        for _attempt in range(2):
            with use_memo(store.new_memo("run-1", 0)):
                assert await asyncio.ensure_future(model_hook("hello")) == b"HELLO"
            assert current_memo() is None
        assert calls == 1, "the retry replays the hook's entry"

    @in_a_sync_worker
    def test_sync_use_memo_gives_sync_and_async_hooks_the_bound_memo(
        self, store: sync.MemoStore
    ) -> None:
        calls: list[str] = []

        def call_model(prompt: str) -> bytes:
            calls.append(prompt)
            return b"answer"

        def model_hook(prompt: str) -> bytes:
            memo = sync.current_memo()
            assert memo is not None, "the hook runs inside sync.use_memo"
            return memo.get_or_compute(prompt, lambda: call_model(prompt))

        async def async_hook(prompt: str) -> bytes | None:
            memo = current_memo()  # the bound sync memo's aio view
            assert memo is not None
            return await memo.get(prompt)

        assert sync.current_memo() is None
        for _attempt in range(2):
            with sync.use_memo(store.new_memo("run-1", 0)):
                with ThreadPoolExecutor(1) as pool:  # an executor that copies the context
                    copied = contextvars.copy_context()
                    assert pool.submit(copied.run, model_hook, "hello").result() == b"answer"
                assert asyncio.run(async_hook("hello")) == b"answer"
            assert sync.current_memo() is None
        assert calls == ["hello"], "the retry replays the hook's entry"

    # -- a sync memo's aio view -------------------------------------------------------------

    async def test_aio_of_a_sync_memo_runs_on_the_callers_loop_and_shares_its_entries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        callers_loop = asyncio.get_running_loop()
        ran_on: list[asyncio.AbstractEventLoop] = []

        async def call_model() -> dict[str, str]:
            ran_on.append(asyncio.get_running_loop())
            return {"text": "paid once"}

        async with self.sync_store(backend, space) as store:
            memo = store.new_memo("run-1", 0)
            codec = JSONCodec()
            first = await memo.aio.get_or_compute("answer", call_model, codec=codec)
            again = await asyncio.gather(
                *(memo.aio.get_or_compute("answer", call_model, codec=codec) for _ in range(3))
            )
            assert await asyncio.to_thread(memo.get, "answer") == b'{"text":"paid once"}'
            await asyncio.to_thread(memo.put, "other", b"from the sync half")
            assert await memo.aio.get("other") == b"from the sync half"
        assert [first, *again] == [{"text": "paid once"}] * 4
        assert ran_on == [callers_loop]

    # -- request_key ----------------------------------------------------------------------

    async def test_request_key_finds_an_sdk_requests_entry_by_its_plain_data(
        self, store: MemoStore
    ) -> None:
        sdk_request, plain = _sdk_request_and_its_plain_data()
        assert request_key(sdk_request) == content_key(plain)
        await store.new_memo("run-1", 0).put(request_key(sdk_request), b"stored")
        assert await store.new_memo("run-1", 0).get(request_key(plain)) == b"stored"

    @in_a_sync_worker
    def test_sync_request_key_finds_an_sdk_requests_entry_by_its_plain_data(
        self, store: sync.MemoStore
    ) -> None:
        sdk_request, plain = _sdk_request_and_its_plain_data()
        store.new_memo("run-1", 0).put(request_key(sdk_request), b"stored")
        found = store.new_memo("run-1", 0).get_or_compute(request_key(plain), lambda: b"paid")
        assert found == b"stored"

    # -- occurrence keys ----------------------------------------------------------------

    async def test_occurrences_of_one_request_are_entries_of_their_own_replayed_in_order(
        self, store: MemoStore
    ) -> None:
        samples = iter([b"first sample", b"second sample"])

        async def attempt() -> list[bytes]:
            memo = store.new_memo("run-1", 0)  # one memo per attempt
            key = "same request"
            return [
                await memo.get_or_compute(memo.occurrence_key(key), lambda: next(samples))
                for _ in range(2)
            ]

        assert await attempt() == [b"first sample", b"second sample"]
        assert await attempt() == [b"first sample", b"second sample"], "the retry pays nothing"
        assert store.stats.computes == 2

    async def test_concurrent_different_requests_each_get_their_own_result(
        self, store: MemoStore
    ) -> None:
        requests = [f"request {n}" for n in range(4)]

        async def call(number: int) -> bytes:
            for _ in range(len(requests) - number):  # the later requests finish first
                await asyncio.sleep(0)
            return f"answer to {requests[number]}".encode()

        async def attempt() -> list[bytes]:
            memo = store.new_memo("run-1", 0)
            # Each key is taken as its call starts, in the caller, before anything is awaited.
            calls = [
                memo.get_or_compute(memo.occurrence_key(request), lambda n=n: call(n))  # type: ignore[misc]
                for n, request in enumerate(requests)
            ]
            return list(await asyncio.gather(*calls))

        expected = [f"answer to {request}".encode() for request in requests]
        assert await attempt() == expected
        assert await attempt() == expected
        assert store.stats.computes == len(requests)

    @in_a_sync_worker
    def test_sync_occurrences_are_entries_of_their_own_replayed_in_order(
        self, store: sync.MemoStore
    ) -> None:
        samples = iter([b"first sample", b"second sample"])
        requests = [f"request {n}" for n in range(4)]

        def attempt() -> tuple[list[bytes], list[bytes]]:
            memo = store.new_memo("run-1", 0)
            same = [
                memo.get_or_compute(memo.occurrence_key("same request"), lambda: next(samples))
                for _ in range(2)
            ]
            keys = [memo.occurrence_key(request) for request in requests]  # taken in order
            with ThreadPoolExecutor(len(requests)) as pool:
                answers = pool.map(
                    lambda key: memo.get_or_compute(key, lambda: f"answer to {key}".encode()),
                    keys,
                )
                return same, list(answers)

        expected = [f"answer to {request}#0".encode() for request in requests]
        assert attempt() == ([b"first sample", b"second sample"], expected)
        assert attempt() == ([b"first sample", b"second sample"], expected)
        assert store.stats.computes == 2 + len(requests)

    # -- PydanticCodec --------------------------------------------------------------------

    async def test_pydantic_codec_round_trips_and_a_value_that_no_longer_validates_is_a_miss(
        self, store: MemoStore
    ) -> None:
        models = _pydantic()
        memo = store.new_memo("run-1", 0)
        answer = models.Answer(model="m-1", text="hello")
        codec = PydanticCodec(models.Answer)
        assert await memo.get_or_compute("k", lambda: answer, codec=codec) == answer
        assert await memo.get("k") == b'{"model":"m-1","text":"hello"}'
        assert await memo.get_or_compute("k", lambda: None, codec=codec) == answer
        fresh = models.AnswerV2(model="m-2", text="new", tokens=3)
        newer = PydanticCodec(models.AnswerV2)
        assert await memo.get_or_compute("k", lambda: fresh, codec=newer) == fresh
        assert await memo.get("k") == fresh.model_dump_json().encode(), "the stale entry replaced"

    @in_a_sync_worker
    def test_sync_pydantic_codec_round_trips_and_a_stale_value_is_a_miss(
        self, store: sync.MemoStore
    ) -> None:
        models = _pydantic()
        memo = store.new_memo("run-1", 0)
        answer = models.Answer(model="m-1", text="sync")
        codec = PydanticCodec(models.Answer)
        assert memo.get_or_compute("k", lambda: answer, codec=codec) == answer
        assert memo.get_or_compute("k", lambda: None, codec=codec) == answer
        fresh = models.AnswerV2(model="m-2", text="new", tokens=3)
        newer = PydanticCodec(models.AnswerV2)
        assert memo.get_or_compute("k", lambda: fresh, codec=newer) == fresh

    # -- get_or_stream ------------------------------------------------------------------

    async def test_stream_on_a_miss_is_live_stored_once_complete_and_a_retry_replays_it(
        self, store: MemoStore
    ) -> None:
        memo = store.new_memo("run-1", 0)
        stream = ModelStream().pause_after(1)
        chunks = memo.get_or_stream("k", stream)
        assert await chunks.__anext__() == CHUNKS[0], "the first chunk arrives while fn streams"
        assert await memo.get("k") is None, "nothing is stored before the stream ends"
        stream.release()
        assert await _collect(chunks) == CHUNKS[1:]
        retry = ModelStream()
        assert await _collect(store.new_memo("run-1", 0).get_or_stream("k", retry)) == CHUNKS
        assert retry.calls == 0
        stats = store.stats.snapshot()
        counts = (stats.lookups, stats.hits, stats.misses, stats.computes, stats.puts)
        assert counts == (3, 1, 2, 1, 1), "two streams and the get in between, one stream paid"

    async def test_stream_raising_part_way_stores_nothing_and_the_caller_gets_the_error(
        self, store: MemoStore
    ) -> None:
        received: list[bytes] = []

        async def consume() -> None:
            async for chunk in store.new_memo("run-1", 0).get_or_stream(
                "k", ModelStream(fail_after=2)
            ):
                received.append(chunk)

        with pytest.raises(RuntimeError, match="connection dropped"):
            await consume()
        assert received == CHUNKS[:2]
        assert await store.new_memo("run-1", 0).get("k") is None
        retry = ModelStream()
        assert await _collect(store.new_memo("run-1", 0).get_or_stream("k", retry)) == CHUNKS
        assert retry.calls == 1, "the next call streams afresh"

    async def test_stream_a_caller_stopping_early_stores_nothing_and_closes_fns_stream(
        self, store: MemoStore
    ) -> None:
        stream = ModelStream().pause_after(1)
        chunks = store.new_memo("run-1", 0).get_or_stream("k", stream)
        assert await chunks.__anext__() == CHUNKS[0]
        await chunks.aclose()  # type: ignore[attr-defined]

        async def closed() -> bool:
            return stream.closed

        await self.wait_for(closed, "fn's stream is closed")
        assert stream.produced == 1, "the rest was never paid for"
        assert await store.new_memo("run-1", 0).get("k") is None

    async def test_stream_concurrent_consumers_share_one_call_of_fn(self, store: MemoStore) -> None:
        stream = ModelStream().pause_after(2)
        first = store.new_memo("run-1", 0).get_or_stream("k", stream)
        assert [await first.__anext__(), await first.__anext__()] == CHUNKS[:2]
        late = asyncio.ensure_future(
            _collect(store.new_memo("run-1", 0).get_or_stream("k", stream))
        )

        async def joined() -> bool:
            return bool(store.stats.shared == 1)

        await self.wait_for(joined, "the late consumer joins the stream")
        stream.release()
        assert await _collect(first) == CHUNKS[2:]
        assert await late == CHUNKS, "the late consumer gets the chunks so far, then the rest"
        assert stream.calls == 1

    async def test_stream_of_two_workers_at_once_the_first_complete_stream_wins(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        (first_worker, _), (second_worker, _) = (
            self.worker(backend, space),
            self.worker(backend, space),
        )
        slow = ModelStream([b"second"]).pause_after(0)
        later = asyncio.ensure_future(
            _collect(second_worker.new_memo("run-1", 0).get_or_stream("k", slow))
        )
        await asyncio.wait_for(slow.started.wait(), self.patience_s)
        first = first_worker.new_memo("run-1", 0).get_or_stream("k", ModelStream([b"first"]))
        assert await _collect(first) == [b"first"]
        slow.release()
        assert await later == [b"second"], "its caller got its own stream, which was not stored"
        assert second_worker.stats.if_absent_lost == 1
        retry = second_worker.new_memo("run-1", 0).get_or_stream("k", ModelStream())
        assert await _collect(retry) == [b"first"]

    async def test_stream_claim_makes_a_duplicate_worker_wait_and_replay(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        policy = ClaimPolicy(lease_s=self.claim_lease_s, poll_max_s=0.05)
        (first_worker, _), (duplicate, polled) = (
            self.worker(backend, space),
            self.worker(backend, space),
        )
        stream, second = ModelStream().pause_after(1), ModelStream()
        chunks = first_worker.new_memo("run-1", 0).get_or_stream("k", stream, claim=policy)
        assert await chunks.__anext__() == CHUNKS[0]  # the claim is held from here on
        waiting = asyncio.ensure_future(
            _collect(duplicate.new_memo("run-1", 0).get_or_stream("k", second, claim=policy))
        )

        async def duplicate_waits() -> bool:
            return polled.claim_listings >= 2 and not waiting.done()

        await self.wait_for(duplicate_waits, "the duplicate waits on the claim")
        stream.release()
        assert await _collect(chunks) == CHUNKS[1:]
        assert await asyncio.wait_for(waiting, self.patience_s) == CHUNKS
        assert second.calls == 0

    @in_a_sync_worker
    def test_sync_stream_on_a_miss_is_stored_once_complete_and_a_retry_replays_it(
        self, store: sync.MemoStore
    ) -> None:
        stream = SyncModelStream()
        chunks = store.new_memo("run-1", 0).get_or_stream("k", stream)
        assert next(chunks) == CHUNKS[0]
        assert store.new_memo("run-1", 0).get("k") is None, "nothing stored before the end"
        assert list(chunks) == CHUNKS[1:]
        retry = SyncModelStream()
        assert list(store.new_memo("run-1", 0).get_or_stream("k", retry)) == CHUNKS
        assert retry.calls == 0
        stats = store.stats.snapshot()
        counts = (stats.lookups, stats.hits, stats.misses, stats.computes, stats.puts)
        assert counts == (3, 1, 2, 1, 1), "two streams and the get in between, one paid"

    @in_a_sync_worker
    def test_sync_stream_raising_part_way_stores_nothing_and_the_caller_gets_the_error(
        self, store: sync.MemoStore
    ) -> None:
        received: list[bytes] = []
        chunks = store.new_memo("run-1", 0).get_or_stream("k", SyncModelStream(fail_after=2))
        with pytest.raises(RuntimeError, match="connection dropped"):
            received.extend(chunks)
        assert received == CHUNKS[:2]
        assert store.new_memo("run-1", 0).get("k") is None

    @in_a_sync_worker
    def test_sync_stream_a_caller_stopping_early_stores_nothing_and_closes_fns_stream(
        self, store: sync.MemoStore
    ) -> None:
        memo, stream = store.new_memo("run-1", 0), SyncModelStream().pause_after(1)
        chunks = memo.get_or_stream("k", stream)
        assert next(chunks) == CHUNKS[0]
        chunks.close()  # type: ignore[attr-defined]  # while the model is still streaming
        stream.release()
        _until(lambda: stream.closed, "fn's iterator is closed", self.patience_s)
        assert memo.get("k") is None

    @in_a_sync_worker
    def test_sync_stream_concurrent_consumers_share_one_call_of_fn(
        self, store: sync.MemoStore
    ) -> None:
        stream = SyncModelStream().pause_after(2)
        first = store.new_memo("run-1", 0).get_or_stream("k", stream)
        assert [next(first), next(first)] == CHUNKS[:2]
        with ThreadPoolExecutor(1) as pool:  # another thread of the worker
            late = pool.submit(lambda: list(store.new_memo("run-1", 0).get_or_stream("k", stream)))
            _until(lambda: store.stats.shared == 1, "the late consumer joins", self.patience_s)
            stream.release()
            assert list(first) == CHUNKS[2:]
            assert late.result() == CHUNKS
        assert stream.calls == 1

    async def test_sync_stream_of_two_workers_at_once_the_first_complete_stream_wins(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        async with self.two_sync_workers(backend, space) as (first_worker, second_worker, _):

            def workers() -> None:
                slow = SyncModelStream().pause_after(1)
                later = second_worker.new_memo("run-1", 0).get_or_stream("k", slow)
                assert next(later) == CHUNKS[0]
                first = first_worker.new_memo("run-1", 0).get_or_stream("k", lambda: iter([b"1st"]))
                assert list(first) == [b"1st"]
                slow.release()
                assert list(later) == CHUNKS[1:], "its caller got its own stream, not stored"
                assert second_worker.stats.if_absent_lost == 1
                retry = second_worker.new_memo("run-1", 0).get_or_stream("k", SyncModelStream())
                assert list(retry) == [b"1st"]

            await asyncio.to_thread(workers)

    async def test_sync_stream_claim_makes_a_duplicate_worker_wait_and_replay(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        policy = ClaimPolicy(lease_s=self.claim_lease_s, poll_max_s=0.05)
        async with self.two_sync_workers(backend, space) as (first_worker, duplicate, polled):

            def workers() -> None:
                stream, second = SyncModelStream().pause_after(1), SyncModelStream()
                chunks = first_worker.new_memo("run-1", 0).get_or_stream("k", stream, claim=policy)
                assert next(chunks) == CHUNKS[0]  # the claim is held from here on
                with ThreadPoolExecutor(1) as pool:  # the duplicate, in a process of its own
                    waiting = pool.submit(
                        lambda: list(
                            duplicate.new_memo("run-1", 0).get_or_stream("k", second, claim=policy)
                        )
                    )
                    _until(lambda: polled.claim_listings >= 2, "it waits", self.patience_s)
                    assert not waiting.done()
                    stream.release()
                    assert list(chunks) == CHUNKS[1:]
                    assert waiting.result(self.patience_s) == CHUNKS
                assert second.calls == 0

            await asyncio.to_thread(workers)
