"""A sync memo's ``aio``: the same entries as an async memo, awaited on the caller's loop.

Frameworks have sync and async halves (``lookup`` and ``alookup``); one sync
store serves both. ``aio`` coroutines run on the caller's event loop (``fn``
included), never block it, and hand each backend call to the store's own
loop thread; they share the store's entries, stats and single flight.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import taquba_memo
from taquba_memo import ClaimPolicy, JSONCodec, MemoBackend, StoreClosedError, _single_flight
from taquba_memo.adapter_kit import ForwardingBackend
from taquba_memo.sync import MemoStore

from ._flight_support import BlockingStep, wait_until_async

LOOP_THREAD = "taquba-memo-sync-loop"


class ThreadRecordingBackend(ForwardingBackend):
    """Records the name of the thread each get and put runs in."""

    def __init__(self, inner: MemoBackend) -> None:
        super().__init__(inner)
        self.threads: list[str] = []

    async def get(self, key: str) -> bytes | None:
        self.threads.append(threading.current_thread().name)
        return await super().get(key)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        self.threads.append(threading.current_thread().name)
        return await super().get_at_most(key, max_bytes)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self.threads.append(threading.current_thread().name)
        return await super().put(key, value, if_absent=if_absent)


@pytest.fixture
def store(backend: MemoBackend) -> Iterator[MemoStore]:
    with MemoStore(backend, "memo") as opened:
        yield opened


async def test_aio_from_a_running_loop_reads_and_writes_the_sync_memos_entry(
    store: MemoStore,
) -> None:
    memo = store.new_memo("run", 1)
    answer = await memo.aio.get_or_compute("answer", lambda: {"text": "hi"}, codec=JSONCodec())
    assert answer == {"text": "hi"}
    assert memo.get("answer") == b'{"text":"hi"}'
    memo.put("other", b"written by the sync half")
    assert await memo.aio.get("other") == b"written by the sync half"
    assert await memo.aio.get_or_compute("other", lambda: b"never paid") == (
        b"written by the sync half"
    )


def test_aio_is_an_async_memo_of_the_same_step(store: MemoStore) -> None:
    memo = store.new_memo("run", 7)
    assert isinstance(memo.aio, taquba_memo.Memo)
    assert (memo.aio.run_id, memo.aio.step_number) == ("run", 7)
    assert memo.aio is memo.aio


async def test_fn_runs_on_the_callers_loop_and_the_backend_on_the_stores_thread(
    backend: MemoBackend,
) -> None:
    recording = ThreadRecordingBackend(backend)
    caller_loop = asyncio.get_running_loop()
    seen_in_fn: list[object] = []

    async def fn() -> bytes:
        seen_in_fn.append(asyncio.get_running_loop())
        return b"paid"

    with MemoStore(recording, "memo") as store:
        assert await store.new_memo("run", 1).aio.get_or_compute("k", fn) == b"paid"
    assert seen_in_fn == [caller_loop]
    assert recording.threads
    assert set(recording.threads) == {LOOP_THREAD}


async def test_the_callers_loop_keeps_running_while_aio_waits(store: MemoStore) -> None:
    memo = store.new_memo("run", 1)
    fn_entered = asyncio.Event()
    release = asyncio.Event()

    async def slow_model_call() -> bytes:
        fn_entered.set()
        await release.wait()
        return b"answer"

    call = asyncio.ensure_future(memo.aio.get_or_compute("k", slow_model_call))
    await fn_entered.wait()  # only reachable if the loop was never blocked
    release.set()
    assert await call == b"answer"


async def test_a_sync_caller_and_an_aio_caller_of_one_entry_pay_once(store: MemoStore) -> None:
    memo = store.new_memo("run", 1)
    step = BlockingStep(b"paid once")
    sync_caller = asyncio.ensure_future(asyncio.to_thread(memo.get_or_compute, "k", step))
    await asyncio.to_thread(step.entered.wait, 60)
    aio_caller = asyncio.ensure_future(memo.aio.get_or_compute("k", lambda: b"paid twice"))
    await wait_until_async(lambda: aio_caller.done() or _followers() == 1)
    step.release.set()
    assert list(await asyncio.gather(sync_caller, aio_caller)) == [b"paid once", b"paid once"]
    assert step.calls == 1


def _followers() -> int:
    """How many callers follow a flight in this process right now."""
    return sum(_single_flight.followers(key) for key in list(_single_flight._flights))


async def test_aio_counts_in_the_stores_stats(store: MemoStore) -> None:
    memo = store.new_memo("run", 1)
    await memo.aio.get_or_compute("k", lambda: b"v")
    await memo.aio.get_or_compute("k", lambda: b"v")
    assert memo.get_or_compute("k", lambda: b"v") == b"v"
    snapshot = store.stats.snapshot()
    assert (snapshot.misses, snapshot.hits) == (1, 2)


async def test_aio_takes_the_stores_claims(store: MemoStore) -> None:
    memo = store.new_memo("run", 1)
    claim = ClaimPolicy(lease_s=30)
    assert await memo.aio.get_or_compute("k", lambda: b"v", claim=claim) == b"v"
    assert memo.get_or_compute("k", lambda: b"not paid", claim=claim) == b"v"


async def test_aio_inside_an_async_fn_of_the_sync_store_runs_where_it_is(
    store: MemoStore,
) -> None:
    memo = store.new_memo("run", 1)
    memo.put("inner", b"stored")

    async def fn() -> bytes:  # runs on the store's own loop
        found = await memo.aio.get("inner")
        assert found is not None
        return found + b" and read"

    assert await asyncio.to_thread(memo.get_or_compute, "outer", fn) == b"stored and read"


async def test_a_blocking_call_from_a_running_loop_works_as_before(store: MemoStore) -> None:
    memo = store.new_memo("run", 1)
    assert memo.get_or_compute("k", lambda: b"v") == b"v"  # blocks this loop while it waits
    assert await memo.aio.get("k") == b"v"


async def test_aio_of_a_closed_store_raises_store_closed(backend: MemoBackend) -> None:
    store = MemoStore(backend, "memo")
    memo = store.new_memo("run", 1)
    store.close()
    with pytest.raises(StoreClosedError):
        await memo.aio.get("k")
    with pytest.raises(StoreClosedError):
        await memo.aio.get_or_compute("k", lambda: b"never paid")


async def test_cancelling_an_aio_caller_keeps_paid_work_as_any_async_caller(
    store: MemoStore,
) -> None:
    memo = store.new_memo("run", 1)
    entered, release = asyncio.Event(), asyncio.Event()

    async def paid() -> bytes:
        entered.set()
        await release.wait()
        return b"paid"

    caller = asyncio.ensure_future(memo.aio.get_or_compute("k", paid))
    await entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await wait_until_async(lambda: memo.get("k") is not None)
    assert memo.get("k") == b"paid"


async def test_aio_lists_the_claims_prefix_through_the_stores_thread(store: MemoStore) -> None:
    """The lease engine under claims lists; listing crosses item by item, as reads do."""
    backend = store.new_memo("run", 1).aio.store.backend
    store.new_memo("run", 1).put("a", b"1")
    store.new_memo("run", 1).put("b", b"2")
    listed: AsyncIterator[str] = backend.list("memo/memos/")
    assert len([key async for key in listed]) == 2
