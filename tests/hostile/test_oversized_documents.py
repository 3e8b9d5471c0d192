"""A planted huge claim or sweep-lease document is never read whole.

Claims and the sweep lease are small JSON documents that any co-tenant of the
bucket can overwrite. A reader holds at most 64 KiB of one; a larger object
reads as unreadable junk: a claim is then live for the waiter's own lease (as
any claim it cannot parse), and a sweep lease is abandoned.
"""

from __future__ import annotations

import asyncio

from taquba_memo import ClaimPolicy, InMemoryBackend, MemoStore
from taquba_memo._bounded_read import DOCUMENT_MAX_BYTES
from taquba_memo._layout import claim_key, memo_key, sweep_lease_key
from taquba_memo._sweep_lease import SweepLease
from taquba_memo_conformance import RecordingBackend

HUGE = b"{" * (DOCUMENT_MAX_BYTES + 1)


def whole_reads(backend: RecordingBackend, key: str) -> int:
    return sum(1 for name, read in backend.calls if name == "get" and read == key)


async def test_a_huge_sweep_lease_is_abandoned_without_being_read_whole() -> None:
    backend = RecordingBackend(InMemoryBackend())
    store = MemoStore(backend, "memo")
    planted = sweep_lease_key("memo", 1)
    await backend.put(planted, HUGE)

    async with SweepLease(store):  # taken: the planted document holds nothing
        pass

    assert whole_reads(backend, planted) == 0
    assert backend.count("get_at_most") >= 1


async def test_a_huge_claim_is_waited_out_for_one_lease_without_being_read_whole() -> None:
    backend = RecordingBackend(InMemoryBackend())
    memo = MemoStore(backend, "memo").new_memo("run-1", 0)
    planted = claim_key(memo_key("memo", "run-1", 0, "answer"), 1)
    await backend.put(planted, HUGE)

    answer = await asyncio.wait_for(
        memo.get_or_compute("answer", lambda: b"paid", claim=ClaimPolicy(lease_s=0.3)), 30
    )

    assert answer == b"paid"
    assert whole_reads(backend, planted) == 0
