"""Claims: one payment per memo entry across processes, while the first worker lives.

``get_or_compute(..., claim=ClaimPolicy(lease_s=...))`` makes duplicate
workers of one step (a runtime's lease expired under a live worker, a
redelivery racing the original) wait for the computation already under way
in another process instead of paying for it again. Without a claim they
only agree on one answer (first-writer-wins); with one they also pay once.

How it works, on the generation lease of :mod:`taquba_memo._lease` (nothing
but create-if-absent, plain overwrite, list and delete):

* **Layout.** A claim is a small JSON object next to its entry,
  ``<entry key>.claim.<generation:010>`` (:func:`taquba_memo._layout.claim_key`).
  It lives below the run's prefix ``<prefix>/memos/<run_id>/``, so a run
  clear, a sweep, and a Rust worker's clear of the same run (which lists
  and deletes that prefix) all remove it. Entries and markers keep their
  layout byte for byte; Rust workers never read claims.
* **Claiming.** On a miss, the caller creates generation 1 with
  create-if-absent; it holds an owner id, the lease length and a heartbeat
  counter. The one creator that wins reads the entry once more (it may have
  landed meanwhile) and calls ``fn``. While ``fn`` runs it overwrites its
  own claim with the next counter every ``lease_s / 3``. When the entry is
  stored (first-writer-wins) it deletes every generation of the claim. When
  ``fn`` fails, or the caller is cancelled before ``fn`` started, it
  overwrites its claim as *released*, so a waiter takes over at once instead
  of waiting out the lease.
* **Waiting.** A caller that finds a live claim polls, with jittered
  backoff from 50 ms up to ``min(poll_max_s, lease_s / 4)``: it reads the
  entry (and returns it once it is there and decodes), lists
  ``<entry key>.claim.`` for the highest generation, and reads that claim.
* **Judging a lease by the waiter's own clock.** A waiter never compares
  timestamps written by another machine: it notes, on its own monotonic
  clock, when it last saw the claim's bytes change (a renewal bumps the
  counter), and holds the claim expired once they have not changed for the
  claimant's declared lease. Clock skew between workers therefore does not
  matter. What does matter: a claimant that cannot renew for a whole lease
  (a paused process, a stopped VM, an event loop blocked by a sync ``fn``
  that should run in ``asyncio.to_thread``, a storage outage) looks dead,
  and a waiter pays a second time; and a waiter that first sees a claim
  abandoned long ago still gives it one full lease, so a retry after a
  crash waits up to one lease before it takes over.
* **Takeover** of an expired or released claim is create-if-absent of the
  next generation: of any number of waiters exactly one wins, so one claim
  is never taken over twice. The losers go on waiting, for the winner.
* **Never a deadlock.** A wait ends when the entry appears, when the claim
  is released or deleted, or one lease after its last renewal. A stale
  claimant that wakes up later still stores with first-writer-wins and
  returns the winner's value, so the answers agree; its late renewals
  overwrite only its own, superseded generation.

The guarantee is one payment per entry while the claimant lives and renews;
when it dies mid-call, at most one more payment, by the one waiter that took
over. A waiter waits as long as the claimant renews: bound the whole step
with the runtime's own time limit. The conformance kit verifies all of this
for any backend that declares ``conditional_put``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from taquba_memo import _layout as layout
from taquba_memo._concurrency import keep_running
from taquba_memo._lease import HeldLease, Lease, Render
from taquba_memo.backend import MemoBackend
from taquba_memo.errors import (
    BackendError,
    InvalidArgumentError,
    InvalidValueTypeError,
    NotSupportedError,
)

__all__ = ["ClaimPolicy", "EntryClaims", "HeldClaim", "check_claim"]

logger = logging.getLogger("taquba_memo")

_FIRST_POLL_S = 0.05


@dataclass(frozen=True)
class ClaimPolicy:
    """How ``get_or_compute`` claims an entry before paying for it; see :mod:`taquba_memo._claims`.

    ``lease_s`` is how long a claim stays live without a renewal: the
    claimant renews it every ``lease_s / 3``, and a waiter takes over after
    it saw no renewal for the claimant's lease. Choose it well above the
    longest pause a live worker may have (a garbage collection, a slow
    storage request), and short enough that a retry after a crash does not
    wait long: the takeover comes within about one lease of the last
    renewal. ``poll_max_s`` caps the waiter's backoff between checks.
    """

    lease_s: float = 30.0
    poll_max_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("lease_s", "poll_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidValueTypeError(f"{name} must be a number, not {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise InvalidArgumentError(
                    f"{name} must be a positive, finite number of seconds, got {value!r}"
                )

    @property
    def renew_every_s(self) -> float:
        """How often the claimant renews its claim."""
        return self.lease_s / 3

    @property
    def poll_cap_s(self) -> float:
        """The longest a waiter sleeps between two checks."""
        return min(self.poll_max_s, self.lease_s / 4)


@dataclass(frozen=True)
class _SeenClaim:
    generation: int
    data: bytes
    lease_s: float
    released: bool


def check_claim(claim: object, backend: MemoBackend) -> None:
    """Refuse, before any I/O, a ``claim`` that is not a :class:`ClaimPolicy` or None, or any
    claim on a backend without ``conditional_put``."""
    if claim is not None and not isinstance(claim, ClaimPolicy):
        raise InvalidValueTypeError(
            f"claim must be a ClaimPolicy or None, not {type(claim).__name__}"
        )
    if claim is not None and not backend.capabilities.conditional_put:
        raise NotSupportedError(
            f"claims need conditional_put, which {type(backend).__name__} does not declare"
        )


def _claim_document(owner: str, lease_s: float) -> Render:
    """The claim's document: owner, host, pid, lease, heartbeat counter, released."""

    def render(beat: int, released: bool) -> bytes:
        document = {
            "owner": owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "lease_ms": round(lease_s * 1000),
            "beat": beat,
            "released": released,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    return render


def _read_claim(generation: int, data: bytes, default_lease_s: float) -> _SeenClaim:
    """What a waiter needs of a claim; a claim it cannot read is live for its own lease."""
    try:
        document = json.loads(data)
        lease_ms = document["lease_ms"]
        lease_s = lease_ms / 1000 if isinstance(lease_ms, int) and lease_ms > 0 else None
        released = document.get("released") is True
    except (ValueError, TypeError, KeyError, AttributeError):
        lease_s, released = None, False
    return _SeenClaim(generation, data, lease_s or default_lease_s, released)


class EntryClaims:
    """The claims of one memo entry, as one ``get_or_compute`` call sees them."""

    def __init__(
        self, backend: MemoBackend, entry_key: str, policy: ClaimPolicy, label: str
    ) -> None:
        self._lease = Lease(backend, layout.claims_prefix(entry_key), f"the claim on {label}")
        self._policy = policy
        self._label = label

    async def acquire(
        self, usable_entry: Callable[[], Awaitable[bytes | None]]
    ) -> HeldClaim | bytes:
        """Hold the claim (a :class:`HeldClaim`), or return the entry's bytes once they are stored.

        ``usable_entry()`` reads the entry and returns its bytes when they are
        a usable entry (within the store's bound, and they decode), else
        None; an unusable one is waited past, as if absent.
        """
        seen: tuple[int, bytes] | None = None
        seen_at = time.monotonic()
        delay = min(_FIRST_POLL_S, self._policy.poll_cap_s)
        while True:
            current = await self._newest()
            target: int | None = None
            if current is None:
                target = 1
            elif current.released:
                target = current.generation + 1
            elif seen != (current.generation, current.data):
                seen, seen_at = (current.generation, current.data), time.monotonic()
            elif (silent_s := time.monotonic() - seen_at) >= current.lease_s:
                logger.warning(
                    "the claim on %s (generation %d) was not renewed for %.1f s, over its "
                    "lease of %.1f s; taking over (its claimant died or paused)",
                    self._label,
                    current.generation,
                    silent_s,
                    current.lease_s,
                )
                target = current.generation + 1
            if target is not None:
                held = await self._create(target)
                if held is not None:
                    return held
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._policy.poll_cap_s)
            data = await usable_entry()
            if data is not None:
                return data

    async def _newest(self) -> _SeenClaim | None:
        """The newest generation of the claim, or None when there is none."""
        newest = await self._lease.newest()
        if newest is None:
            return None
        return _read_claim(newest.generation, newest.data, self._policy.lease_s)

    async def _create(self, generation: int) -> HeldClaim | None:
        import uuid  # only a claim needs it: every import would pay for it

        render = _claim_document(uuid.uuid4().hex, self._policy.lease_s)
        held = await self._lease.create(generation, render, self._policy.renew_every_s)
        if held is None:
            return None  # another caller created this generation first: judge its claim
        return HeldClaim(self, held)

    async def clear(self) -> None:
        """Delete every generation of the claim: the entry is stored, nobody needs them.

        A failure is logged, not raised (the value is safely stored; a run
        clear or a sweep removes leftovers).
        """
        try:
            await self._lease.delete_generations()
        except BackendError as exc:
            logger.warning("could not delete the claims on %s: %s", self._label, exc)


class HeldClaim:
    """A claim this caller created, renewed by a heartbeat task until it is finished or released."""

    def __init__(self, claims: EntryClaims, held: HeldLease) -> None:
        self._claims = claims
        self._held = held
        self.generation = held.generation

    async def finish(self) -> None:
        """The entry is stored: stop renewing and delete every generation of the claim."""
        await self._held.stop()
        await self._claims.clear()

    async def release(self) -> None:
        """No entry will come from this caller: mark the claim released, so a waiter
        takes over at once. A failure is logged; the claim then expires after its lease."""
        try:
            await self._held.release()
        except BackendError as exc:
            logger.warning(
                "could not release %s (%s); a waiter takes over when its lease runs out",
                self._held.lease.label,
                exc,
            )

    def release_soon(self) -> None:
        """:meth:`release` from a caller being cancelled: stop renewing now, release in
        the background (if the event loop ends first, the claim expires after its lease)."""
        self._held.stop_soon()
        keep_running(asyncio.ensure_future(self.release()))
