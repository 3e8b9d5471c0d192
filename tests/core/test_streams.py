"""Memo.get_or_stream: a stream is recorded as it goes, stored once complete, and replayed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from taquba_memo import (
    ClaimPolicy,
    InMemoryBackend,
    InvalidValueTypeError,
    JSONCodec,
    LocalFileBackend,
    MemoBackend,
    MemoStore,
    NotSupportedError,
    sync,
)
from taquba_memo._streams import MAGIC, frame, unframe
from taquba_memo.adapter_kit import ForwardingBackend
from taquba_memo.backend import Capabilities
from taquba_memo_conformance import RecordingBackend
from taquba_memo_conformance.agent_primitives_suite import CHUNKS, ModelStream

from ._flight_support import settle


def new_store(backend: MemoBackend, *, max_value_bytes: int | None = None) -> MemoStore:
    return MemoStore(backend, "memo", max_value_bytes=max_value_bytes)


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


class TestMissThenHit:
    async def test_a_miss_streams_fn_and_stores_the_recording_when_it_ends(
        self, backend: MemoBackend
    ) -> None:
        memo = new_store(backend).new_memo("run", 1)
        stream = ModelStream()
        assert await collect(memo.get_or_stream("k", stream)) == CHUNKS
        assert stream.calls == 1
        assert unframe(await memo.get("k") or b"") == CHUNKS

    async def test_a_retry_replays_the_same_chunks_in_order_without_calling_fn(
        self, backend: MemoBackend
    ) -> None:
        store = new_store(backend)
        await collect(store.new_memo("run", 1).get_or_stream("k", ModelStream()))
        retry = ModelStream()
        assert await collect(store.new_memo("run", 1).get_or_stream("k", retry)) == CHUNKS
        assert retry.calls == 0

    async def test_chunks_reach_the_caller_as_fn_produces_them(self, backend: MemoBackend) -> None:
        memo = new_store(backend).new_memo("run", 1)
        stream = ModelStream().pause_after(1)
        chunks = memo.get_or_stream("k", stream)
        assert await chunks.__anext__() == CHUNKS[0]  # while fn is still paused
        assert await memo.get("k") is None  # nothing stored before the stream ends
        stream.release()
        assert await collect(chunks) == CHUNKS[1:]
        assert unframe(await memo.get("k") or b"") == CHUNKS

    async def test_chunks_go_through_the_codec_and_come_back_as_a_retry_sees_them(
        self, backend: MemoBackend
    ) -> None:
        store = new_store(backend)

        async def events() -> AsyncIterator[object]:
            yield {"delta": "hi", "ids": (1, 2)}
            yield {"delta": "!", "ids": ()}

        expected = [{"delta": "hi", "ids": [1, 2]}, {"delta": "!", "ids": []}]
        first = store.new_memo("run", 1).get_or_stream("k", events, codec=JSONCodec())
        assert [chunk async for chunk in first] == expected
        again = store.new_memo("run", 1).get_or_stream("k", events, codec=JSONCodec())
        assert [chunk async for chunk in again] == expected

    async def test_fn_may_return_an_awaitable_of_a_stream_as_sdk_clients_do(self) -> None:
        memo = new_store(InMemoryBackend()).new_memo("run", 1)
        stream = ModelStream()

        async def create() -> AsyncIterator[bytes]:
            return stream()

        # The annotation names the plain case; an awaitable is accepted at run time.
        assert await collect(memo.get_or_stream("k", create)) == CHUNKS  # type: ignore[arg-type]

    async def test_an_empty_stream_is_recorded_and_replayed_as_empty(self) -> None:
        store = new_store(InMemoryBackend())
        assert await collect(store.new_memo("run", 1).get_or_stream("k", ModelStream([]))) == []
        retry = ModelStream()
        assert await collect(store.new_memo("run", 1).get_or_stream("k", retry)) == []
        assert retry.calls == 0


class TestTheStoredFormat:
    def test_a_recording_is_a_versioned_frame_of_the_encoded_chunks(self) -> None:
        data = frame([b"ab", b""])
        assert data == MAGIC + b"\x01" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x02ab\x00\x00\x00\x00"
        assert unframe(data) == [b"ab", b""]

    @pytest.mark.parametrize(
        "stored",
        [
            b"plain value",
            MAGIC + b"\x02\x00\x00\x00\x00",  # a version this release cannot read
            frame([b"abc"])[:-1],  # truncated
            frame([b"abc"]) + b"x",  # trailing bytes
        ],
        ids=["not-a-recording", "future-version", "truncated", "trailing-bytes"],
    )
    async def test_bad_framing_is_a_miss_logged_and_streamed_afresh(
        self, backend: MemoBackend, stored: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = new_store(backend)
        memo = store.new_memo("run", 1)
        await memo.put("k", stored)
        stream = ModelStream()
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await collect(memo.get_or_stream("k", stream)) == CHUNKS
        assert stream.calls == 1
        assert "does not decode" in caplog.text
        assert unframe(await memo.get("k") or b"") == CHUNKS  # replaced by the complete stream
        assert store.stats.decode_errors == 1

    async def test_a_chunk_the_codec_cannot_decode_is_a_miss(self, backend: MemoBackend) -> None:
        memo = new_store(backend).new_memo("run", 1)
        await memo.put("k", frame([b'"fine"', b"{not json"]))

        async def events() -> AsyncIterator[str]:
            yield "fresh"

        chunks = memo.get_or_stream("k", events, codec=JSONCodec())
        assert [chunk async for chunk in chunks] == ["fresh"]


class TestFailuresAndEarlyStops:
    async def test_a_stream_that_raises_part_way_stores_nothing_and_the_caller_gets_the_error(
        self, backend: MemoBackend
    ) -> None:
        store = new_store(backend)
        memo = store.new_memo("run", 1)
        received: list[bytes] = []

        async def consume() -> None:
            async for chunk in memo.get_or_stream("k", ModelStream(fail_after=2)):
                received.append(chunk)

        with pytest.raises(RuntimeError, match="connection dropped"):
            await consume()
        assert received == CHUNKS[:2]
        assert await memo.get("k") is None
        retry = ModelStream()
        assert await collect(store.new_memo("run", 1).get_or_stream("k", retry)) == CHUNKS
        assert retry.calls == 1
        assert store.stats.failures == 1

    async def test_a_caller_that_stops_early_stores_nothing_and_closes_fns_stream(
        self, backend: MemoBackend
    ) -> None:
        memo = new_store(backend).new_memo("run", 1)
        stream = ModelStream()
        chunks = memo.get_or_stream("k", stream)
        async for _ in chunks:
            break
        await chunks.aclose()  # type: ignore[attr-defined]
        await settle()
        assert stream.closed
        assert stream.produced < len(CHUNKS)  # the rest was never paid for
        assert await memo.get("k") is None

    async def test_a_cancelled_caller_stores_nothing_and_the_next_call_streams_afresh(
        self, backend: MemoBackend
    ) -> None:
        store = new_store(backend)
        stream = ModelStream().pause_after(1)
        task = asyncio.ensure_future(collect(store.new_memo("run", 1).get_or_stream("k", stream)))
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert stream.closed
        assert await store.new_memo("run", 1).get("k") is None
        assert await collect(store.new_memo("run", 1).get_or_stream("k", ModelStream())) == CHUNKS

    async def test_a_recording_over_max_value_bytes_is_streamed_but_not_stored_logged_once(
        self, backend: MemoBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        memo = new_store(backend, max_value_bytes=30).new_memo("run", 1)
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await collect(memo.get_or_stream("k", ModelStream())) == CHUNKS
        assert await memo.get("k") is None
        assert caplog.text.count("max_value_bytes=30") == 1

    async def test_bad_arguments_are_refused_when_called_before_any_io(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        memo = new_store(backend).new_memo("run", 1)
        with pytest.raises(InvalidValueTypeError):
            memo.get_or_stream("k", "not callable")  # type: ignore[call-overload]
        with pytest.raises(InvalidValueTypeError):
            memo.get_or_stream("k", ModelStream(), codec=object())  # type: ignore[call-overload]
        with pytest.raises(InvalidValueTypeError):
            memo.get_or_stream(b"k", ModelStream())  # type: ignore[call-overload]
        without = RecordingBackend(
            InMemoryBackend(),
            capabilities=Capabilities(
                ordered_listing=True, conditional_put=False, max_delete_batch=1000
            ),
        )
        with pytest.raises(NotSupportedError):
            new_store(without).new_memo("run", 1).get_or_stream(
                "k", ModelStream(), claim=ClaimPolicy()
            )
        assert backend.calls == []

    async def test_fn_returning_something_else_than_a_stream_is_a_type_error(self) -> None:
        memo = new_store(InMemoryBackend()).new_memo("run", 1)
        with pytest.raises(InvalidValueTypeError, match="async iterator"):
            await collect(memo.get_or_stream("k", lambda: [b"a"]))  # type: ignore[arg-type,return-value]


class TestConcurrentCallers:
    async def test_concurrent_callers_share_one_call_and_a_late_one_gets_the_chunks_so_far(
        self, backend: MemoBackend
    ) -> None:
        store = new_store(backend)
        stream = ModelStream().pause_after(2)
        first = store.new_memo("run", 1).get_or_stream("k", stream)
        assert [await first.__anext__(), await first.__anext__()] == CHUNKS[:2]
        late = asyncio.ensure_future(collect(store.new_memo("run", 1).get_or_stream("k", stream)))
        await settle()
        stream.release()
        assert await collect(first) == CHUNKS[2:]
        assert await late == CHUNKS
        assert stream.calls == 1
        assert store.stats.shared == 1

    async def test_the_stream_goes_on_for_the_others_when_one_caller_stops(
        self, backend: MemoBackend
    ) -> None:
        store = new_store(backend)
        stream = ModelStream().pause_after(1)
        leaving = store.new_memo("run", 1).get_or_stream("k", stream)
        assert await leaving.__anext__() == CHUNKS[0]
        staying = asyncio.ensure_future(
            collect(store.new_memo("run", 1).get_or_stream("k", stream))
        )
        await settle()
        await leaving.aclose()  # type: ignore[attr-defined]
        stream.release()
        assert await staying == CHUNKS
        assert unframe(await store.new_memo("run", 1).get("k") or b"") == CHUNKS

    async def test_a_duplicate_worker_with_a_claim_waits_and_replays(self, tmp_path: Path) -> None:
        # Two backend objects over one directory: two workers, as in two processes.
        policy = ClaimPolicy(lease_s=30, poll_max_s=0.05)
        first_worker = new_store(LocalFileBackend(tmp_path)).new_memo("run", 1)
        duplicate = new_store(LocalFileBackend(tmp_path)).new_memo("run", 1)
        stream, second = ModelStream().pause_after(2), ModelStream()
        chunks = first_worker.get_or_stream("k", stream, claim=policy)
        assert await chunks.__anext__() == CHUNKS[0]
        waiting = asyncio.ensure_future(collect(duplicate.get_or_stream("k", second, claim=policy)))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        stream.release()
        assert await collect(chunks) == CHUNKS[1:]
        assert await asyncio.wait_for(waiting, 30) == CHUNKS
        assert second.calls == 0


class TestStats:
    async def test_streams_count_as_lookups_like_get_or_compute(self) -> None:
        store = new_store(InMemoryBackend())
        await collect(store.new_memo("run", 1).get_or_stream("k", ModelStream()))
        await collect(store.new_memo("run", 1).get_or_stream("k", ModelStream()))
        stats = store.stats.snapshot()
        assert (stats.lookups, stats.hits, stats.misses, stats.computes, stats.puts) == (
            2,
            1,
            1,
            1,
            1,
        )


class TestTheSyncAPI:
    @pytest.fixture
    def store(self, backend: MemoBackend) -> Iterator[sync.MemoStore]:
        with sync.MemoStore(backend, "memo") as store:
            yield store

    def test_a_miss_streams_and_records_and_a_retry_replays(self, store: sync.MemoStore) -> None:
        calls: list[int] = []

        def chunks() -> Iterator[bytes]:
            calls.append(1)
            yield from CHUNKS

        assert list(store.new_memo("run", 1).get_or_stream("k", chunks)) == CHUNKS
        assert list(store.new_memo("run", 1).get_or_stream("k", chunks)) == CHUNKS
        assert len(calls) == 1

    def test_a_caller_that_breaks_early_stores_nothing(self, store: sync.MemoStore) -> None:
        closed: list[bool] = []

        def chunks() -> Iterator[bytes]:
            try:
                yield from CHUNKS
            finally:
                closed.append(True)

        stream = store.new_memo("run", 1).get_or_stream("k", chunks)
        assert next(stream) == CHUNKS[0]
        stream.close()  # type: ignore[attr-defined]
        assert store.new_memo("run", 1).get("k") is None
        replayed = list(store.new_memo("run", 1).get_or_stream("k", lambda: iter(CHUNKS)))
        assert replayed == CHUNKS

    def test_an_error_part_way_reaches_the_caller_and_stores_nothing(
        self, store: sync.MemoStore
    ) -> None:
        def chunks() -> Iterator[bytes]:
            yield CHUNKS[0]
            raise RuntimeError("the model's connection dropped")

        received: list[bytes] = []

        def consume() -> None:
            received.extend(store.new_memo("run", 1).get_or_stream("k", chunks))

        with pytest.raises(RuntimeError, match="connection dropped"):
            consume()
        assert received == CHUNKS[:1]
        assert store.new_memo("run", 1).get("k") is None

    def test_a_codec_and_a_claim_work_the_same(self, store: sync.MemoStore) -> None:
        memo = store.new_memo("run", 1)
        policy = ClaimPolicy(lease_s=30)
        events = [{"delta": "a"}, {"delta": "b"}]
        assert (
            list(memo.get_or_stream("k", lambda: iter(events), codec=JSONCodec(), claim=policy))
            == events
        )
        replay = memo.get_or_stream("k", lambda: iter([]), codec=JSONCodec(), claim=policy)
        assert list(replay) == events

    def test_bad_arguments_are_refused_when_called(self, store: sync.MemoStore) -> None:
        with pytest.raises(InvalidValueTypeError):
            store.new_memo("run", 1).get_or_stream("k", "not callable")  # type: ignore[call-overload]


async def test_of_two_workers_streaming_one_entry_at_once_the_first_complete_stream_wins() -> None:
    shared = InMemoryBackend()
    first_store = new_store(ForwardingBackend(shared))
    second_store = new_store(ForwardingBackend(shared))
    slow = ModelStream([b"second"]).pause_after(0)
    later = asyncio.ensure_future(collect(second_store.new_memo("run", 1).get_or_stream("k", slow)))
    await settle()
    assert await collect(
        first_store.new_memo("run", 1).get_or_stream("k", ModelStream([b"first"]))
    ) == [b"first"]
    slow.release()
    assert await later == [b"second"]  # its caller got its own stream, which was not stored
    assert second_store.stats.if_absent_lost == 1
    retry = second_store.new_memo("run", 1).get_or_stream("k", ModelStream())
    assert await collect(retry) == [b"first"]
