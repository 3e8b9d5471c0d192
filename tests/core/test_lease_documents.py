"""What a claim and a sweep lease write stays byte for byte what older workers read.

Both are generations of one lease engine (:mod:`taquba_memo._lease`), but
each keeps its own document: a claim is compact JSON with sorted keys, a
sweep lease is ``json.dumps``'s default form in its field order. Older
Python workers parse them, and the key names are the layout's.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket

import pytest
from taquba_memo import ClaimPolicy, InMemoryBackend, MemoStore, SweepLease
from taquba_memo import _layout as layout

PREFIX = "memo"
ENTRY = layout.memo_key(PREFIX, "run", 1, "k")
HOST = re.escape(socket.gethostname().encode())
PID = str(os.getpid()).encode()


def claim_document(beat: int, released: bool) -> re.Pattern[bytes]:
    return re.compile(
        rb'\{"beat":%d,"host":"%s","lease_ms":3600000,"owner":"[0-9a-f]{32}","pid":%s,'
        rb'"released":%s\}' % (beat, HOST, PID, b"true" if released else b"false")
    )


async def test_a_claim_is_compact_sorted_json_under_its_padded_generation() -> None:
    backend = InMemoryBackend()
    memo = MemoStore(backend, PREFIX).new_memo("run", 1)
    documents: list[bytes | None] = []

    async def pay() -> bytes:
        documents.append(await backend.get(f"{ENTRY}.claim.0000000001"))
        raise RuntimeError("gave up")

    with pytest.raises(RuntimeError, match="gave up"):
        await memo.get_or_compute("k", pay, claim=ClaimPolicy(lease_s=3600.0))
    released = await backend.get(f"{ENTRY}.claim.0000000001")

    (held,) = documents
    assert claim_document(0, False).fullmatch(held or b""), held
    assert claim_document(0, True).fullmatch(released or b""), released


async def test_a_sweep_lease_is_default_json_in_its_field_order() -> None:
    backend = InMemoryBackend()
    async with SweepLease(MemoStore(backend, PREFIX), owner="sweeper-1"):
        held = await backend.get(f"{PREFIX}/sweeps/lease.0000000001")
    assert held is not None
    assert re.fullmatch(
        rb'\{"owner": "sweeper-1", "renewed_at_ms": [0-9]{13}, "lease_s": 60.0, '
        rb'"released": false\}',
        held,
    ), held
    assert [key async for key in backend.list(f"{PREFIX}/sweeps/")] == []


async def test_a_sweep_lease_renewal_writes_the_same_form() -> None:
    backend = InMemoryBackend()
    key = f"{PREFIX}/sweeps/lease.0000000001"
    async with SweepLease(MemoStore(backend, PREFIX), lease_s=0.3, owner="sweeper-1"):
        first = await backend.get(key)
        while (renewed := await backend.get(key)) == first:  # noqa: ASYNC110 - storage signals nothing
            await asyncio.sleep(0.01)
    assert renewed is not None
    assert re.fullmatch(
        rb'\{"owner": "sweeper-1", "renewed_at_ms": [0-9]{13}, "lease_s": 0.3, '
        rb'"released": false\}',
        renewed,
    ), renewed
