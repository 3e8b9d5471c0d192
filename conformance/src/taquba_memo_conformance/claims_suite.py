"""ClaimTests: get_or_compute's claims keep their promises on this backend.

Claims (``get_or_compute(..., claim=ClaimPolicy(...))``) are built on
``conditional_put``, so every backend that declares it gets these tests;
the others skip them, naming the capability. Each simulated worker has a
MemoStore over its own wrapper of the backend under test: one backend
object per worker, as separate processes have, so the in-process single
flight never hides a claim. The promises:

* duplicates started together pay once, while the claimant renews its claim
  for longer than one lease;
* when the claimant stops renewing (a paused or dead process), exactly one
  waiter takes over within a few leases, and the claimant that wakes up
  later returns the taker's value;
* a claimant whose ``fn`` fails or is cancelled hands over at once, without
  the waiters sitting out the lease;
* claims live below the run's prefix as ``<entry key>.claim.<generation>``,
  ``iter_entries`` tells them from entries, and a run clear and a sweep
  delete them.

Times are in lease units (``claim_lease_s``); bounds are generous timeouts
that fail a hung test, never measurements.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import ClassVar

import pytest
from taquba_memo import ClaimPolicy, MemoBackend, MemoStore
from taquba_memo import _layout as layout
from taquba_memo.adapter_kit import ForwardingBackend

from taquba_memo_conformance._base import SuiteBase
from taquba_memo_conformance.keyspace import KeySpace

__all__ = ["ClaimTests"]

_CLAIM = ".claim."


class _WorkerBackend(ForwardingBackend):
    """One simulated worker's own backend object; it can pause the worker's claim renewals.

    While ``paused`` is set, every write of a claim that is not its creation
    hangs until ``resume`` is set: the renewals of a stopped process.
    """

    def __init__(self, inner: MemoBackend) -> None:
        super().__init__(inner)
        self.paused = False
        self.resume = asyncio.Event()
        self.claim_listings = 0

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        if self.paused and _CLAIM in key and not if_absent:
            await self.resume.wait()
        return await super().put(key, value, if_absent=if_absent)

    def list(self, prefix: str) -> AsyncIterator[str]:
        if prefix.endswith(_CLAIM):
            self.claim_listings += 1
        return super().list(prefix)

    async def aclose(self) -> None:
        return  # the backend under test is closed by its fixture, once


class ClaimTests(SuiteBase):
    """Claims over this backend (needs ``conditional_put``)."""

    claim_lease_s: ClassVar[float] = 1.0
    """The lease of the claim tests. Renewals come every third of it, so it
    must exceed three times the backend's slowest put under load."""

    # -- helpers --------------------------------------------------------------------

    def policy(self) -> ClaimPolicy:
        return ClaimPolicy(lease_s=self.claim_lease_s)

    @property
    def patience_s(self) -> float:
        """How long a test waits for something the claims promise to happen."""
        return 20 * self.claim_lease_s + 30

    @staticmethod
    def worker(backend: MemoBackend, space: KeySpace) -> tuple[MemoStore, _WorkerBackend]:
        own = _WorkerBackend(backend)
        return MemoStore(own, space.root), own

    @staticmethod
    def paying(
        paid: Counter[str],
        name: str,
        answer: bytes,
        *,
        takes_s: float = 0.0,
        until: asyncio.Event | None = None,
    ) -> Callable[[], Awaitable[bytes]]:
        async def call() -> bytes:
            paid[name] += 1
            if until is not None:
                await until.wait()
            await asyncio.sleep(takes_s)
            return answer

        return call

    async def claim_keys(self, backend: MemoBackend, space: KeySpace, run_id: str) -> list[str]:
        keys = await space.listed(backend, layout.memos_run_prefix(space.root, run_id))
        return sorted(key for key in keys if _CLAIM in key)

    async def wait_for(self, condition: Callable[[], Awaitable[bool]], what: str) -> None:
        async def poll() -> None:
            # Polled: the condition is the backend's state, which signals nothing.
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        try:
            await asyncio.wait_for(poll(), self.patience_s)
        except asyncio.TimeoutError:
            pytest.fail(f"timed out waiting until {what}")

    async def start_claimant(
        self,
        backend: MemoBackend,
        space: KeySpace,
        fn: Callable[[], Awaitable[bytes]],
        policy: ClaimPolicy,
        *,
        store_if_cancelled: bool = True,
    ) -> tuple[asyncio.Task[bytes], _WorkerBackend]:
        """A worker that holds the claim of run-1/0/"k" once this returns."""
        store, own = self.worker(backend, space)
        task = asyncio.ensure_future(
            store.new_memo("run-1", 0).get_or_compute(
                "k", fn, claim=policy, store_if_cancelled=store_if_cancelled
            )
        )

        async def claimed() -> bool:
            if task.done():
                pytest.fail(f"the claimant finished before the test looked: {task!r}")
            return bool(await self.claim_keys(backend, space, "run-1"))

        await self.wait_for(claimed, "the first worker's claim exists")
        return task, own

    def waiters(
        self,
        backend: MemoBackend,
        space: KeySpace,
        paid: Counter[str],
        count: int,
        policy: ClaimPolicy,
    ) -> tuple[list[asyncio.Task[bytes]], list[_WorkerBackend]]:
        tasks, owns = [], []
        for number in range(count):
            store, own = self.worker(backend, space)
            fn = self.paying(paid, f"waiter-{number}", f"waiter-{number}".encode())
            tasks.append(
                asyncio.ensure_future(
                    store.new_memo("run-1", 0).get_or_compute("k", fn, claim=policy)
                )
            )
            owns.append(own)
        return tasks, owns

    async def finished(self, tasks: Sequence[asyncio.Future[bytes]], what: str) -> list[bytes]:
        try:
            return list(await asyncio.wait_for(asyncio.gather(*tasks), self.patience_s))
        except asyncio.TimeoutError:
            pytest.fail(f"timed out waiting for {what}: a claim wait did not end")

    # -- the promises ---------------------------------------------------------------

    @pytest.mark.parametrize("workers", [2, 8])
    async def test_claim_duplicates_started_together_pay_once(
        self, backend: MemoBackend, space: KeySpace, workers: int
    ) -> None:
        self.require(backend, "conditional_put")
        paid: Counter[str] = Counter()
        # The work outlasts two leases: only renewals keep the waiters waiting.
        calls = []
        for number in range(workers):
            store, _ = self.worker(backend, space)
            fn = self.paying(
                paid,
                f"worker-{number}",
                f"answer-{number}".encode(),
                takes_s=2.5 * self.claim_lease_s,
            )
            calls.append(store.new_memo("run-1", 0).get_or_compute("k", fn, claim=self.policy()))
        answers = await self.finished([asyncio.ensure_future(call) for call in calls], "workers")

        assert sum(paid.values()) == 1, f"paid {dict(paid)}"
        (payer,) = paid
        assert answers == [f"answer-{payer.split('-')[1]}".encode()] * workers
        assert await self.claim_keys(backend, space, "run-1") == [], "claims left behind"

    async def test_claim_one_waiter_takes_over_a_claim_no_longer_renewed(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        paid: Counter[str] = Counter()
        wake = asyncio.Event()
        stale = self.paying(paid, "claimant", b"stale", until=wake)
        claimant, claimant_backend = await self.start_claimant(backend, space, stale, self.policy())
        claimant_backend.paused = True  # its renewals stop landing: it looks dead
        waiters, _ = self.waiters(backend, space, paid, 4, self.policy())
        answers = await self.finished(waiters, "the takeover")

        taker = [name for name in paid if name != "claimant"]
        assert len(taker) == 1, f"paid {dict(paid)}"
        assert paid[taker[0]] == 1, f"paid {dict(paid)}"
        assert answers == [taker[0].encode()] * 4
        # The claimant wakes up, finishes its paid call, and agrees with the taker.
        claimant_backend.resume.set()
        wake.set()
        assert await asyncio.wait_for(claimant, self.patience_s) == taker[0].encode()
        assert sum(paid.values()) == 2
        assert await self.claim_keys(backend, space, "run-1") == [], "claims left behind"

    @pytest.mark.parametrize("how", ["fn-raises", "cancelled"])
    async def test_claim_a_claimant_that_gives_up_hands_over_without_the_lease(
        self, backend: MemoBackend, space: KeySpace, how: str
    ) -> None:
        self.require(backend, "conditional_put")
        paid: Counter[str] = Counter()
        # A lease no test waits out: the handover must come from the release.
        policy = ClaimPolicy(lease_s=3600.0, poll_max_s=self.claim_lease_s / 4)
        give_up = asyncio.Event()

        async def failing() -> bytes:
            paid["claimant"] += 1
            await give_up.wait()
            raise RuntimeError("the model refused")

        claimant, _ = await self.start_claimant(
            backend, space, failing, policy, store_if_cancelled=False
        )
        waiters, owns = self.waiters(backend, space, paid, 3, policy)

        async def all_waiting() -> bool:
            return all(own.claim_listings >= 2 for own in owns)

        await self.wait_for(all_waiting, "every duplicate waits on the claim")
        if how == "fn-raises":
            give_up.set()
            with pytest.raises(RuntimeError, match="the model refused"):
                await claimant
        else:
            claimant.cancel()
            with pytest.raises(asyncio.CancelledError):
                await claimant
        answers = await self.finished(waiters, "the handover")

        taker = [name for name in paid if name != "claimant"]
        assert len(taker) == 1, f"paid {dict(paid)}"
        assert answers == [taker[0].encode()] * 3

    async def test_claims_live_below_the_run_and_a_clear_and_a_sweep_delete_them(
        self, backend: MemoBackend, space: KeySpace, store: MemoStore
    ) -> None:
        self.require(backend, "conditional_put")
        paid: Counter[str] = Counter()
        for clear_with in ("clear", "sweep"):
            done = asyncio.Event()
            fn = self.paying(paid, clear_with, b"value", until=done)
            claimant, claimant_backend = await self.start_claimant(
                backend, space, fn, self.policy()
            )
            claimant_backend.paused = True  # no renewal re-creates the claim after the clear
            entry_key = layout.memo_key(space.root, "run-1", 0, "k")
            assert await self.claim_keys(backend, space, "run-1") == [
                f"{entry_key}.claim.0000000001"
            ]
            listed = [entry async for entry in store.iter_entries("run-1")]
            assert [(e.kind, e.run_id, e.step_number) for e in listed] == [("claim", "run-1", 0)]

            if clear_with == "clear":
                assert await store.clear_memos_for_run("run-1") == 1
            else:
                await store.write_terminal_marker("run-1", 1_000)
                report = await store.sweep(2_000)
                assert report.runs_cleared == ["run-1"]
            assert await self.claim_keys(backend, space, "run-1") == []
            claimant_backend.resume.set()
            done.set()
            assert await asyncio.wait_for(claimant, self.patience_s) == b"value"
            assert await store.clear_memos_for_run("run-1") == 1  # the entry, nothing else
        assert paid == {"clear": 1, "sweep": 1}

    async def test_claim_generations_are_created_once_each(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # A takeover is the create-if-absent of the next generation: of many
        # waiters racing for one, exactly one wins, so no claim is taken over twice.
        self.require(backend, "conditional_put")
        entry_key = layout.memo_key(space.root, "run-1", 0, "k")
        for generation in itertools.islice(itertools.count(1), 3):
            key = layout.claim_key(entry_key, generation)
            won = await asyncio.gather(
                *(backend.put(key, b"{}", if_absent=True) for _ in range(self.concurrent_creators))
            )
            assert won.count(True) == 1, f"generation {generation}: {won.count(True)} winners"
