"""SweepLease: one sweeper of a store at a time, on create-if-absent like claims.

Two overlapping sweeps are safe (nothing is deleted twice, no memo outlives
its marker) but each would report the other's work as its own: S3's
DeleteObjects, GCS and Azure report a key that is already gone as deleted,
so no pass can tell which deletes were its own. A lease makes the report
honest instead: the second sweeper finds it held and does nothing.

* **Layout.** ``<prefix>/sweeps/lease.<generation:010>``, a small JSON
  document (owner, lease length, the holder's wall-clock time of its last
  renewal, released or not), outside ``memos/`` and ``terminals/``.
* **Taking it** is create-if-absent of the next generation after the
  highest listed one, once that one is released or stale; of any number of
  sweepers exactly one wins. The winner deletes the older generations.
* **Holding it.** The holder overwrites its generation every ``lease_s / 3``
  and deletes it when the pass ends (finished, failed, cancelled or
  interrupted by a signal).
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
``NotSupported`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from taquba_memo import layout
from taquba_memo._bounded_read import read_document
from taquba_memo.errors import InvalidArgumentError, InvalidValueType, MemoError, NotSupported

__all__ = ["SweepLease", "SweepLeaseHeld", "SweepLeaseHolder"]

if TYPE_CHECKING:
    from taquba_memo.store import MemoStore


@dataclass(frozen=True)
class SweepLeaseHolder:
    """Who holds the lease, as its document says."""

    owner: str
    renewed_at_ms: int
    lease_s: float


class SweepLeaseHeld(MemoError):
    """Another sweeper holds the store's sweep lease; this one did nothing."""

    def __init__(self, holder: SweepLeaseHolder) -> None:
        self.holder = holder
        super().__init__(
            f"another sweep holds the lease ({holder.owner}, renewed at "
            f"{holder.renewed_at_ms} ms, lease {holder.lease_s:g} s): nothing done"
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SweepLease:
    """``async with SweepLease(store):`` around a sweep; raises :class:`SweepLeaseHeld`."""

    def __init__(
        self,
        store: MemoStore,
        *,
        lease_s: float = 60.0,
        skew_s: float = 30.0,
        max_lease_s: float = 600.0,
        owner: str | None = None,
    ) -> None:
        for name, value in (("lease_s", lease_s), ("skew_s", skew_s), ("max_lease_s", max_lease_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidValueType(f"{name} must be a number, not {type(value).__name__}")
            if not (math.isfinite(value) and value >= 0):
                raise InvalidArgumentError(f"{name} must be a finite non-negative number")
        if lease_s == 0:
            raise InvalidArgumentError("lease_s must be positive")
        if lease_s > max_lease_s:
            raise InvalidArgumentError(f"lease_s {lease_s:g} exceeds max_lease_s {max_lease_s:g}")
        self._store = store
        self._lease_s = float(lease_s)
        self._skew_s = float(skew_s)
        self._max_lease_s = float(max_lease_s)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._generation: int | None = None
        self._renewer: asyncio.Task[None] | None = None

    def _document(self, *, released: bool = False) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "renewed_at_ms": _now_ms(),
                "lease_s": self._lease_s,
                "released": released,
            }
        ).encode()

    async def _generations(self) -> list[tuple[int, str]]:
        """Every listed generation with the key it was listed under, lowest first."""
        prefix = layout.sweep_leases_prefix(self._store.prefix)
        found = []
        async for key in self._store.backend.list(prefix):
            suffix = key[len(prefix) :]
            if suffix.isascii() and suffix.isdigit():
                found.append((int(suffix), key))
        return sorted(found)

    def _key(self, generation: int) -> str:
        return layout.sweep_lease_key(self._store.prefix, generation)

    async def acquire(self) -> None:
        """Take the lease, or raise :class:`SweepLeaseHeld` naming who holds it."""
        backend = self._store.backend
        if not backend.capabilities.conditional_put:
            raise NotSupported("a sweep lease needs a backend with conditional_put")
        generations = await self._generations()
        highest = generations[-1][0] if generations else 0
        if highest:
            data = await read_document(backend, generations[-1][1])
            holder = self._live_holder(data)
            if holder is not None:
                raise SweepLeaseHeld(holder)
        if not await backend.put(self._key(highest + 1), self._document(), if_absent=True):
            data = await read_document(backend, self._key(highest + 1))
            holder = self._live_holder(data)
            raise SweepLeaseHeld(holder or SweepLeaseHolder("another sweeper", _now_ms(), 0))
        self._generation = highest + 1
        stale = [key for _generation, key in generations]
        if stale:
            await backend.delete_many(stale)
        self._renewer = asyncio.ensure_future(self._renew())

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

    async def _renew(self) -> None:
        assert self._generation is not None
        while True:
            await asyncio.sleep(self._lease_s / 3)
            with contextlib.suppress(MemoError):  # a missed renewal; the next may pass
                await self._store.backend.put(self._key(self._generation), self._document())

    async def release(self) -> None:
        """Stop renewing and delete the lease (if held)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._generation is not None:
            generation, self._generation = self._generation, None
            await self._store.backend.delete(self._key(generation))

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
