"""Step functions and bounded waits for the tests of concurrent get_or_compute callers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

BOUND = 10_000  # iterations of a bounded wait; never a wall-clock assertion


class GatedStep:
    """An async step function that counts its calls and finishes only once released."""

    def __init__(self, result: Any = b"computed", *, error: Exception | None = None) -> None:
        self.calls = 0
        self.result = result
        self.error = error
        self._gate = asyncio.Event()

    def release(self) -> None:
        self._gate.set()

    async def __call__(self) -> Any:
        self.calls += 1
        await self._gate.wait()
        if self.error is not None:
            raise self.error
        return self.result


class BlockingStep:
    """A blocking step function for worker threads: says it entered, then waits for release."""

    def __init__(self, result: bytes) -> None:
        self.calls = 0
        self.result = result
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> bytes:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(60)
        return self.result


async def settle() -> None:
    """Let every runnable task reach its next real suspension point."""
    for _ in range(50):
        await asyncio.sleep(0)


async def start_in_turn(*calls: Awaitable[Any]) -> list[asyncio.Future[Any]]:
    """Start each call as a task, letting it settle before the next one starts."""
    tasks: list[asyncio.Future[Any]] = []
    for call in calls:
        tasks.append(asyncio.ensure_future(call))
        await settle()
    return tasks


def wait_until(condition: Callable[[], bool]) -> None:
    """Bounded wait for another thread to reach a state."""
    pause = threading.Event()
    for _ in range(BOUND):
        try:
            if condition():
                return
        except KeyError:  # the state it looks up does not exist yet
            pass
        pause.wait(0.001)
    raise AssertionError("condition not reached")


async def wait_until_async(condition: Callable[[], bool]) -> None:
    """Bounded wait, yielding to the event loop, until condition holds (the caller asserts)."""
    for _ in range(BOUND):
        if condition():
            return
        await asyncio.sleep(0.001)
