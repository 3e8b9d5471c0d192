"""The generation lease under entry claims and the sweep lease: name, take, renew, release.

A lease is held by whoever created its newest generation, and needs nothing
but create-if-absent (``put(..., if_absent=True)``), plain overwrite, list,
get and delete; no compare-and-swap:

* **Generations.** Generation ``n`` of a lease is the object
  ``<listing prefix><n:010>`` (:func:`generation_key`). The newest listed
  generation is the lease; older ones are superseded leftovers. A user
  that must read generations another implementation wrote under other
  widths parses them with ``any_width`` and keeps the key it listed.
* **Taking** is create-if-absent of the next generation after the newest
  listed one (generation 1 when there is none), once that one is released
  or expired: of any number of contenders exactly one wins, so a lease is
  never taken twice; the losers judge the winner's document.
* **The document** is a small JSON object the user renders for each write
  (its fields are the user's: :mod:`taquba_memo._claims` and
  :mod:`taquba_memo._sweep_lease` keep theirs byte for byte, since older
  workers read them). Every user writes ``"released": false`` while it holds
  the lease and ``true`` once it gives it up. A reader holds at most
  64 KiB of it (:func:`~taquba_memo._bounded_read.read_document`): a
  planted larger object reads as junk, which every reader judges as not held.
* **Expiry and skew** are the user's judgment: claims hold a lease expired
  once its bytes have not changed for its lease on the waiter's own
  monotonic clock (skew cannot matter, but judging takes a whole lease); the
  sweep lease compares the holder's wall-clock renewal time with its own
  and allows ``skew_s`` of clock difference (it must decide at once).
* **Renewal.** From its creation until it is stopped, a :class:`HeldLease`
  overwrites its generation every ``renew_every_s`` with a fresh document
  (its ``beat`` counts the renewals). A renewal is never cut off mid-write:
  stopping waits for one in flight. A failed renewal is retried at the next
  beat; the first of a run of failures is logged as a warning naming the
  lease key, with the error (and so its chained cause) attached. A holder
  whose renewals fail for a whole lease looks dead and may be taken over.
* **Release.** The holder either overwrites its generation as released
  (``"released": true``: a contender takes over at once, without waiting out
  the lease) or deletes it; either way it stops renewing first, so no late
  renewal undoes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from taquba_memo._bounded_read import read_document
from taquba_memo.backend import MemoBackend

__all__ = ["GENERATION_WIDTH", "HeldLease", "Lease", "NewestGeneration", "Render"]

logger = logging.getLogger("taquba_memo")

GENERATION_WIDTH = 10
"""Digits of a generation in its key, zero-padded (``layout.CLAIM_GENERATION_WIDTH``)."""

# A generation deleted between the listing and its read is looked up again this often.
_READ_ATTEMPTS = 3

Render = Callable[[int, bool], bytes]
"""``render(beat, released)``: the document a holder writes, ``beat`` renewals after creation."""


@dataclass(frozen=True)
class NewestGeneration:
    """The newest generation of a lease, as read."""

    generation: int
    key: str
    data: bytes


class Lease:
    """The generations of one lease, listed under ``prefix`` on ``backend``.

    ``label`` names the lease in log messages ("the claim on ...", "the sweep
    lease"). With ``any_width``, a listed generation of any number of digits
    counts (the sweep lease's readers have always accepted them); otherwise
    only :data:`GENERATION_WIDTH` digits from 1 up do.
    """

    def __init__(
        self, backend: MemoBackend, prefix: str, label: str, *, any_width: bool = False
    ) -> None:
        self.backend = backend
        self.prefix = prefix
        self.label = label
        self._any_width = any_width

    def key(self, generation: int) -> str:
        """The key of ``generation``: the prefix and the zero-padded number."""
        return f"{self.prefix}{generation:0{GENERATION_WIDTH}d}"

    def parse(self, key: str) -> int | None:
        """The generation ``key`` names, or None when it names none of this lease's."""
        digits = key[len(self.prefix) :] if key.startswith(self.prefix) else ""
        if not (digits.isascii() and digits.isdigit()):
            return None
        if not self._any_width and (len(digits) != GENERATION_WIDTH or int(digits) < 1):
            return None
        return int(digits)

    async def generations(self) -> list[tuple[int, str]]:
        """Every listed generation with the key it was listed under, lowest first."""
        found = []
        async for key in self.backend.list(self.prefix):
            generation = self.parse(key)
            if generation is not None:
                found.append((generation, key))
        return sorted(found)

    async def read(self, key: str) -> bytes | None:
        """The document under ``key`` (junk past the bound), or None once it is gone."""
        return await read_document(self.backend, key)

    async def newest(self) -> NewestGeneration | None:
        """The newest generation and its document, or None when there is none.

        One deleted between the listing and its read is looked up again.
        """
        for _ in range(_READ_ATTEMPTS):
            generations = await self.generations()
            if not generations:
                return None
            generation, key = generations[-1]
            data = await self.read(key)
            if data is not None:
                return NewestGeneration(generation, key, data)
        return None

    async def create(
        self, generation: int, render: Render, renew_every_s: float
    ) -> HeldLease | None:
        """Create ``generation`` if absent and hold it (renewing it), or None if another did."""
        key = self.key(generation)
        if not await self.backend.put(key, render(0, False), if_absent=True):
            return None
        return HeldLease(self, generation, key, render, renew_every_s)

    async def delete_generations(self) -> None:
        """Delete every listed generation, by the keys they were listed under."""
        keys = [key for _generation, key in await self.generations()]
        if keys:
            await self.backend.delete_many(keys)


@dataclass(eq=False)
class HeldLease:
    """A generation this process created, renewed every ``renew_every_s`` until stopped."""

    lease: Lease
    generation: int
    key: str
    render: Render
    renew_every_s: float
    _beat: int = field(init=False, default=0)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _renewer: asyncio.Future[None] = field(init=False)

    def __post_init__(self) -> None:
        self._renewer = asyncio.ensure_future(self._renew_until_stopped())

    async def _renew_until_stopped(self) -> None:
        failing = False
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), self.renew_every_s)
                return  # stopped between renewals: a renewal is never cut off mid-write
            except asyncio.TimeoutError:
                pass
            self._beat += 1
            try:
                await self.lease.backend.put(self.key, self.render(self._beat, False))
            except Exception as exc:  # any failure: retry at the next beat, as for a 503
                if not failing:
                    logger.warning(
                        "could not renew %s at %r (%s); retrying every %.1f s, and it may be "
                        "taken over if no renewal lands within the lease",
                        self.lease.label,
                        self.key,
                        exc,
                        self.renew_every_s,
                        exc_info=exc,
                    )
                failing = True
            else:
                failing = False

    def stop_soon(self) -> None:
        """Renew no more, without waiting for a renewal in flight."""
        self._stop.set()

    async def stop(self) -> None:
        """Renew no more; a renewal in flight lands (or fails) first."""
        self._stop.set()
        await asyncio.gather(self._renewer, return_exceptions=True)

    async def release(self) -> None:
        """Stop renewing and overwrite the generation as released; raises what ``put`` raises."""
        await self.stop()
        await self.lease.backend.put(self.key, self.render(self._beat, True))

    async def delete(self) -> None:
        """Stop renewing and delete the generation; raises what ``delete`` raises."""
        await self.stop()
        await self.lease.backend.delete(self.key)
