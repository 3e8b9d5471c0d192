"""Memo.occurrence_key: identical requests in one attempt are distinct calls, replayed in order."""

from __future__ import annotations

import asyncio
import random

import pytest
from taquba_memo import InMemoryBackend, InvalidValueTypeError, MemoBackend, MemoStore, sync


def test_the_nth_occurrence_of_a_key_gets_its_own_entry_key() -> None:
    memo = MemoStore(InMemoryBackend()).new_memo("run", 1)
    assert [memo.occurrence_key("req") for _ in range(3)] == ["req#0", "req#1", "req#2"]
    assert memo.occurrence_key("other") == "other#0"
    assert memo.occurrence_key("req#0") == "req#0#0"  # never another key's occurrence


def test_a_key_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(InvalidValueTypeError):
        MemoStore(InMemoryBackend()).new_memo("run", 1).occurrence_key(b"req")  # type: ignore[arg-type]


async def test_two_identical_requests_in_one_attempt_are_two_entries_a_retry_replays_in_order(
    backend: MemoBackend,
) -> None:
    store = MemoStore(backend, "memo")
    samples = iter([b"first sample", b"second sample"])

    async def attempt() -> list[bytes]:
        memo = store.new_memo("run", 1)  # one memo per attempt
        return [
            await memo.get_or_compute(memo.occurrence_key("same request"), lambda: next(samples))
            for _ in range(2)
        ]

    assert await attempt() == [b"first sample", b"second sample"]
    assert await attempt() == [b"first sample", b"second sample"]  # no sample left to pay for
    assert store.stats.computes == 2


async def test_concurrent_different_requests_finishing_in_any_order_each_get_their_own_result(
    backend: MemoBackend,
) -> None:
    store = MemoStore(backend, "memo")
    requests = [f"request {n}" for n in range(8)]

    async def call(request: str) -> bytes:
        await asyncio.sleep(random.uniform(0, 0.01))  # finish in a random order
        return f"answer to {request}".encode()

    async def attempt() -> list[bytes]:
        memo = store.new_memo("run", 1)
        # Each key is taken as its call starts, in the caller, before anything is awaited.
        calls = [
            memo.get_or_compute(memo.occurrence_key(request), lambda r=request: call(r))  # type: ignore[misc]
            for request in requests
        ]
        return list(await asyncio.gather(*calls))

    expected = [f"answer to {request}".encode() for request in requests]
    assert await attempt() == expected
    assert await attempt() == expected
    assert store.stats.computes == len(requests)


def test_the_sync_api_counts_the_same_way() -> None:
    with sync.MemoStore(InMemoryBackend()) as store:
        memo = store.new_memo("run", 1)
        assert [memo.occurrence_key("req") for _ in range(2)] == ["req#0", "req#1"]
        assert store.new_memo("run", 1).occurrence_key("req") == "req#0"
