"""Claims of get_or_compute in one process: the API, the layout, and what a call costs.

The cross-process guarantees are in the conformance kit (``ClaimTests``,
run on the embedded backends by ``tests/conformance_kit``) and in
``tests/runtimes/test_duplicate_workers.py`` with real processes.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from taquba_memo import (
    ClaimPolicy,
    InMemoryBackend,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueTypeError,
    MemoBackend,
    MemoStore,
    NotSupportedError,
)
from taquba_memo import _layout as layout
from taquba_memo import sync as memo_sync
from taquba_memo.backend import Capabilities
from taquba_memo_conformance import RecordingBackend

ENTRY = layout.memo_key("memo", "run", 1, "k")
LONG_LEASE = ClaimPolicy(lease_s=3600.0)


class TestClaimPolicy:
    @pytest.mark.parametrize("lease_s", [0, -1.0, float("inf"), float("nan")])
    def test_a_lease_must_be_a_positive_finite_number_of_seconds(self, lease_s: float) -> None:
        with pytest.raises(InvalidArgumentError, match="lease_s"):
            ClaimPolicy(lease_s=lease_s)

    @pytest.mark.parametrize("value", ["30", True, None])
    def test_a_lease_that_is_not_a_number_is_a_type_error(self, value: object) -> None:
        with pytest.raises(InvalidValueTypeError, match="lease_s"):
            ClaimPolicy(lease_s=value)  # type: ignore[arg-type]

    def test_renewals_and_polls_are_fractions_of_the_lease(self) -> None:
        policy = ClaimPolicy(lease_s=6.0, poll_max_s=1.0)
        assert policy.renew_every_s == 2.0
        assert policy.poll_cap_s == 1.0
        assert ClaimPolicy(lease_s=2.0).poll_cap_s == 0.5


class TestLayout:
    def test_a_claim_is_named_after_its_entry_with_a_zero_padded_generation(self) -> None:
        assert layout.claim_key(ENTRY, 1) == f"{ENTRY}.claim.0000000001"
        assert layout.claims_prefix(ENTRY) == f"{ENTRY}.claim."
        assert layout.parse_claim_generation(ENTRY, f"{ENTRY}.claim.0000000042") == 42

    def test_claims_sit_below_the_run_prefix_that_clears_delete(self) -> None:
        assert layout.claim_key(ENTRY, 7).startswith(layout.memos_run_prefix("memo", "run"))

    @pytest.mark.parametrize("generation", [0, layout.MAX_CLAIM_GENERATION + 1])
    def test_generations_outside_the_range_are_refused(self, generation: int) -> None:
        with pytest.raises(InvalidArgumentError):
            layout.claim_key(ENTRY, generation)

    def test_only_an_entry_key_has_claims(self) -> None:
        with pytest.raises(InvalidKeyError):
            layout.claims_prefix("memo/memos/run/1")

    def test_listing_names_are_entries_or_claims_never_both(self) -> None:
        digest = ENTRY.rsplit("/", 1)[1]
        claim = f"run/1/{digest}.claim.0000000003"
        assert layout.parse_memo_claim_name(claim) == ("run", 1, 3)
        assert layout.parse_memo_entry_name(claim) is None
        assert layout.parse_memo_claim_name(f"run/1/{digest}") is None
        for stray in (
            f"run/1/{digest}.claim.3",
            f"run/1/{digest}.claim.0000000000",
            f"run/1/{digest}.claim.000000000x",
            f"run/01/{digest}.claim.0000000003",
            f"run/1/{digest[:-1]}.claim.0000000003",
        ):
            assert layout.parse_memo_claim_name(stray) is None, stray
            assert layout.parse_claim_generation(ENTRY, "memo/memos/" + stray) is None, stray


def no_conditional_put(inner: MemoBackend) -> RecordingBackend:
    return RecordingBackend(
        inner,
        capabilities=Capabilities(
            ordered_listing=True, conditional_put=False, max_delete_batch=1000
        ),
    )


class TestArguments:
    async def test_claims_need_conditional_put_and_say_so_before_any_work(self) -> None:
        backend = no_conditional_put(InMemoryBackend())
        paid = []

        def pay() -> bytes:
            paid.append(1)
            return b"x"

        memo = MemoStore(backend, "memo").new_memo("run", 1)
        with pytest.raises(NotSupportedError, match="conditional_put"):
            await memo.get_or_compute("k", pay, claim=LONG_LEASE)
        assert paid == []
        assert backend.calls == []

    async def test_claim_must_be_a_claim_policy(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        memo = MemoStore(backend, "memo").new_memo("run", 1)
        with pytest.raises(InvalidValueTypeError, match="ClaimPolicy"):
            await memo.get_or_compute("k", lambda: b"x", claim=30)  # type: ignore[call-overload]
        assert backend.calls == []


class TestOneCaller:
    async def test_a_miss_claims_pays_stores_and_leaves_no_claim_behind(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        memo = MemoStore(backend, "memo").new_memo("run", 1)
        assert await memo.get_or_compute("k", lambda: b"answer", claim=LONG_LEASE) == b"answer"
        claims, claim = layout.claims_prefix(ENTRY), layout.claim_key(ENTRY, 1)
        assert backend.calls == [
            ("get", ENTRY),  # a miss
            ("list", claims),  # nobody holds a claim
            ("put", claim),  # generation 1, create-if-absent
            ("get", ENTRY),  # still a miss: pay
            ("put", ENTRY),
            ("list", claims),  # the entry is stored: delete every generation
            ("delete_many", claim),
        ]
        assert [key async for key in backend.list("memo/")] == [ENTRY]

    async def test_a_hit_costs_one_read_and_no_claim(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        memo = MemoStore(backend, "memo").new_memo("run", 1)
        await memo.put("k", b"earlier")
        backend.calls.clear()
        assert await memo.get_or_compute("k", lambda: b"again", claim=LONG_LEASE) == b"earlier"
        assert backend.calls == [("get", ENTRY)]

    async def test_a_failed_call_releases_its_claim_and_a_retry_takes_over_at_once(
        self, backend: MemoBackend, store: MemoStore
    ) -> None:
        memo = store.new_memo("run", 1)

        def refuse() -> bytes:
            raise RuntimeError("model overloaded")

        with pytest.raises(RuntimeError, match="model overloaded"):
            await memo.get_or_compute("k", refuse, claim=LONG_LEASE)
        released = await backend.get(layout.claim_key(ENTRY, 1))
        assert released is not None
        assert json.loads(released)["released"] is True
        # The lease is an hour: only the release lets the retry in without waiting.
        retry = memo.get_or_compute("k", lambda: b"second try", claim=LONG_LEASE)
        assert await asyncio.wait_for(retry, 30) == b"second try"
        assert [key async for key in backend.list("memo/")] == [ENTRY]

    async def test_iter_entries_tells_entries_claims_and_strays_apart(
        self, backend: MemoBackend, store: MemoStore
    ) -> None:
        await store.new_memo("run", 1).put("k", b"v")
        await backend.put(layout.claim_key(ENTRY, 2), b"{}")
        await backend.put("memo/memos/run/1/stray", b"")
        listed = [(e.kind, e.run_id, e.step_number) async for e in store.iter_entries()]
        assert sorted(listed, key=str) == [
            ("claim", "run", 1),
            ("entry", "run", 1),
            ("unrecognized", None, None),
        ]


def test_the_sync_api_takes_the_same_claim(sync_store: memo_sync.MemoStore) -> None:
    memo = sync_store.new_memo("run", 1)
    assert memo.get_or_compute("k", lambda: b"sync", claim=LONG_LEASE) == b"sync"
    assert [entry.kind for entry in sync_store.iter_entries()] == ["entry"]
