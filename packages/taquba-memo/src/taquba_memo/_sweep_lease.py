"""SweepLease: one sweeper of a store at a time, on the generation lease claims use.

Two overlapping sweeps are safe (nothing is deleted twice, no memo outlives
its marker) but each would report the other's work as its own: S3's
DeleteObjects, GCS and Azure report a key that is already gone as deleted,
so no pass can tell which deletes were its own. A lease makes the report
honest instead: the second sweeper finds it held and does nothing.

The mechanism is :mod:`taquba_memo._lease`'s; what is the sweep lease's own:

* **Layout.** ``<prefix>/sweeps/lease.<generation:010>``, a small JSON
  document (owner, lease length, the holder's wall-clock time of its last
  renewal, released or not), outside ``memos/`` and ``terminals/``. A
  generation listed under any number of digits counts, by the name listed.
* **Taking it** is create-if-absent of the next generation after the
  highest listed one, once that one is released or stale; of any number of
  sweepers exactly one wins. The winner deletes the older generations.
* **Holding it.** The holder overwrites its generation every ``lease_s / 3``
  and deletes it when the pass ends (finished, failed, cancelled or
  interrupted by a signal). A failed renewal is logged and retried.
* **Stale** means not renewed for ``lease_s`` plus ``skew_s`` by the reader's
  wall clock. The reader bounds what a document can claim: a ``lease_s``
  that is not a finite number in ``0..max_lease_s`` counts as the reader's
  ``max_lease_s``, and a renewal time more than ``skew_s`` in the reader's
  future cannot be judged, so the lease is stale. No document can block
  sweeps for longer than ``max_lease_s + skew_s``. Unlike entry claims,
  which wait a whole lease to judge a claimant on their own monotonic clock,
  a second sweeper must decide at once, so this compares clocks: keep
  workers' clocks within ``skew_s`` (NTP does). A sweeper killed with
  SIGKILL leaves a lease that blocks sweeps for up to ``lease_s + skew_s``.

Needs ``conditional_put``; :meth:`SweepLease.acquire` raises
``NotSupportedError`` otherwise.

``MemoStore.sweep(lease=True)`` holds it around the sweep with
:func:`held_sweep_lease`; the CLI's ``taquba-memo sweep`` takes it itself,
to word its own messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol

from taquba_memo import _layout as layout
from taquba_memo._lease import HeldLease, Lease
from taquba_memo.backend import MemoBackend
from taquba_memo.errors import (
    InvalidArgumentError,
    InvalidValueTypeError,
    NotSupportedError,
    SweepLeaseHeldError,
    SweepLeaseHolder,
)

__all__ = [
    "SweepLease",
    "SweepLeaseHeldError",
    "SweepLeaseHolder",
    "held_sweep_lease",
]

logger = logging.getLogger("taquba_memo")


class LeasedStore(Protocol):
    """What a sweep lease needs of a store (a :class:`~taquba_memo.MemoStore` has it)."""

    @property
    def backend(self) -> MemoBackend: ...

    @property
    def prefix(self) -> str: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SweepLease:
    """``async with SweepLease(store):`` around a sweep; raises :class:`SweepLeaseHeldError`.

    Entering takes the lease (or raises, naming its holder, before anything
    is deleted); leaving, however the block ends, stops renewing and deletes
    it. ``lease_s`` is renewed every third of it; ``skew_s`` is the clock
    difference allowed between sweepers; ``max_lease_s`` caps the lease any
    other sweeper's document can claim.
    """

    def __init__(
        self,
        store: LeasedStore,
        *,
        lease_s: float = 60.0,
        skew_s: float = 30.0,
        max_lease_s: float = 600.0,
        owner: str | None = None,
    ) -> None:
        for name, value in (("lease_s", lease_s), ("skew_s", skew_s), ("max_lease_s", max_lease_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidValueTypeError(f"{name} must be a number, not {type(value).__name__}")
            if not (math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"{name} must be a finite non-negative number")
        if lease_s == 0:
            raise InvalidArgumentError("lease_s must be positive")
        if lease_s > max_lease_s:
            raise InvalidArgumentError(f"lease_s {lease_s:g} exceeds max_lease_s {max_lease_s:g}")
        self._lease = Lease(
            store.backend,
            layout.sweep_leases_prefix(store.prefix),
            "the sweep lease",
            any_width=True,
        )
        self._lease_s = float(lease_s)
        self._skew_s = float(skew_s)
        self._max_lease_s = float(max_lease_s)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._held: HeldLease | None = None

    @property
    def stale_after_s(self) -> float:
        """How long a lease this sweeper left behind blocks other sweepers: ``lease_s + skew_s``."""
        return self._lease_s + self._skew_s

    @property
    def held(self) -> bool:
        """Whether this sweeper holds the lease (between taking and releasing it)."""
        return self._held is not None

    def _document(self, _beat: int, released: bool) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "renewed_at_ms": _now_ms(),
                "lease_s": self._lease_s,
                "released": released,
            }
        ).encode()

    async def acquire(self) -> None:
        """Take the lease, or raise :class:`SweepLeaseHeldError` naming who holds it."""
        if not self._lease.backend.capabilities.conditional_put:
            raise NotSupportedError("a sweep lease needs a backend with conditional_put")
        generations = await self._lease.generations()
        highest = generations[-1][0] if generations else 0
        if highest:
            holder = self._live_holder(await self._lease.read(generations[-1][1]))
            if holder is not None:
                raise SweepLeaseHeldError(holder)
        held = await self._lease.create(highest + 1, self._document, self._lease_s / 3)
        if held is None:
            holder = self._live_holder(await self._lease.read(self._lease.key(highest + 1)))
            raise SweepLeaseHeldError(holder or SweepLeaseHolder("another sweeper", _now_ms(), 0))
        self._held = held
        stale = [key for _generation, key in generations]
        try:
            if stale:
                await self._lease.backend.delete_many(stale)
        except BaseException:
            # Not held after all: no ``async with`` exit would stop the renewals.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.release())
            raise

    def _live_holder(self, data: bytes | None) -> SweepLeaseHolder | None:
        if data is None:
            return None  # released and deleted meanwhile
        try:
            document = json.loads(data)
            holder = SweepLeaseHolder(
                str(document["owner"]), int(document["renewed_at_ms"]), float(document["lease_s"])
            )
            released = document.get("released", False)
        except (ValueError, KeyError, TypeError, OverflowError):
            return None  # unreadable: treat as abandoned
        if released is not False:
            return None  # released, or a flag no sweeper writes
        # The reader's bounds, not the holder's word: no document blocks sweeps for good.
        lease_s = holder.lease_s
        if not (math.isfinite(lease_s) and 0 <= lease_s <= self._max_lease_s):
            lease_s = self._max_lease_s
        now_ms = _now_ms()
        if holder.renewed_at_ms > now_ms + self._skew_s * 1000:
            return None  # renewed in the future beyond the skew: its age is unknowable
        expires_ms = holder.renewed_at_ms + (lease_s + self._skew_s) * 1000
        return None if now_ms > expires_ms else holder

    async def release(self) -> None:
        """Stop renewing and delete the lease (if held); raises what the delete raises."""
        if self._held is not None:
            held, self._held = self._held, None
            await held.delete()

    async def __aenter__(self) -> SweepLease:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.shield(self.release())


@contextlib.asynccontextmanager
async def held_sweep_lease(store: LeasedStore) -> AsyncIterator[SweepLease]:
    """The sweep lease, held around the block; raises :class:`SweepLeaseHeldError` on entry.

    As ``async with SweepLease(store)``, except that a failed release is
    logged, not raised: the lease goes stale by itself, and what the caller
    needs is the block's own outcome (a sweep's report, or what ended it).
    """
    lease = SweepLease(store)
    await lease.acquire()
    try:
        yield lease
    finally:
        try:
            await asyncio.shield(lease.release())
        except Exception as exc:
            logger.warning(
                "could not release the sweep lease of %r (%s); it goes stale within %.0f s",
                store.prefix,
                exc,
                lease.stale_after_s,
                exc_info=exc,
            )
