"""Single flight: concurrent callers in one process share one computation per key.

A flight is keyed by any hashable identity (get_or_compute uses the backend
object's id and the entry's object key). The first caller to join leads it;
the others follow, and wait on its outcome from any thread or event loop.
The entry is removed as soon as the flight lands, so a later caller starts
afresh.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Hashable

__all__ = [
    "ABANDONED",
    "Flight",
    "any_flying",
    "flying",
    "followers",
    "in_progress",
    "join",
    "land",
    "landings",
]

ABANDONED = None
"""The outcome of a flight whose leader was cancelled before it finished:
a follower then leads a flight of its own."""


class Flight:
    """One computation in progress. Its future carries the stored bytes, the
    computation's exception, or :data:`ABANDONED`; any thread or loop may wait on it."""

    __slots__ = ("fn_started", "followers", "outcome")

    def __init__(self) -> None:
        self.outcome: concurrent.futures.Future[bytes | None] = concurrent.futures.Future()
        self.followers = 0
        self.fn_started = False

    async def follow(self) -> bytes | None:
        """Wait for the outcome; a cancelled follower does not cancel the shared future."""
        return await asyncio.shield(asyncio.wrap_future(self.outcome))


_flights: dict[Hashable, Flight] = {}
_lock = threading.Lock()
_landings = 0


def join(key: Hashable) -> tuple[Flight, bool]:
    """Return the flight for ``key`` and whether the caller leads it."""
    with _lock:
        flight = _flights.get(key)
        if flight is not None:
            flight.followers += 1
            return flight, False
        flight = _flights[key] = Flight()
        return flight, True


def land(key: Hashable, flight: Flight) -> None:
    """Remove ``flight`` (and only it) from the table: later callers start afresh."""
    global _landings
    with _lock:
        if _flights.get(key) is flight:
            del _flights[key]
            _landings += 1


def landings() -> int:
    """How many flights have landed in this process: a read made while this did not
    change saw every flight's stored outcome (the entry is stored before its flight lands)."""
    return _landings


def flying(key: Hashable) -> bool:
    """Whether a flight for ``key`` is in progress (a hint: it may land any moment)."""
    return key in _flights


def any_flying() -> bool:
    """Whether any flight is in progress (a hint, read without the lock: a hit checks it)."""
    return bool(_flights)


def in_progress() -> int:
    """How many flights exist right now (for tests and debugging)."""
    with _lock:
        return len(_flights)


def followers(key: Hashable) -> int:
    """How many callers follow the flight of ``key`` right now; 0 without one."""
    with _lock:
        flight = _flights.get(key)
        return 0 if flight is None else flight.followers
