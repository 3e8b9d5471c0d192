"""A framework's stream runs in one task of its own, and whatever ends it reaches the consumer.

Each read must end by itself: a consumer still waiting after ``BOUND_S`` (a
stream that ended without saying so) fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator

import pytest
from taquba_memo_agents._one_task import in_one_task

BOUND_S = 5.0
SPAN: contextvars.ContextVar[str] = contextvars.ContextVar("span", default="")


async def read_all(stream: AsyncIterator[int]) -> list[int]:
    """Every chunk of ``stream``, or its error; a read left waiting fails the test."""

    async def read() -> list[int]:
        return [chunk async for chunk in stream]

    reading = asyncio.ensure_future(read())
    await asyncio.wait({reading}, timeout=BOUND_S)
    if not reading.done():
        reading.cancel()
        pytest.fail("the consumer was left waiting for a stream that had ended")
    return reading.result()


async def test_a_stream_that_resets_a_context_variable_across_yields_is_read_whole() -> None:
    async def spans() -> AsyncIterator[int]:
        for chunk in range(3):
            token = SPAN.set(f"span {chunk}")
            yield chunk
            SPAN.reset(token)  # fails in any task but the one that set it

    assert await read_all(in_one_task(spans)) == [0, 1, 2]


async def test_a_stream_that_cannot_be_opened_raises_in_the_consumer() -> None:
    def refuses() -> AsyncIterator[int]:
        raise TypeError("unexpected keyword argument 'tracing'")

    with pytest.raises(TypeError, match="tracing"):
        await read_all(in_one_task(refuses))


async def test_a_chunk_that_raises_ends_the_stream_with_its_error() -> None:
    async def breaks() -> AsyncIterator[int]:
        yield 1
        raise ConnectionError("reset by peer")

    with pytest.raises(ConnectionError, match="reset"):
        await read_all(in_one_task(breaks))


async def test_a_close_that_raises_after_the_last_chunk_reaches_the_consumer() -> None:
    class ClosesBadly:
        def __init__(self) -> None:
            self.chunks = iter([1, 2])

        def __aiter__(self) -> ClosesBadly:
            return self

        async def __anext__(self) -> int:
            try:
                return next(self.chunks)
            except StopIteration:
                raise StopAsyncIteration from None

        async def aclose(self) -> None:
            raise OSError("close failed")

    with pytest.raises(OSError, match="close failed"):
        await read_all(in_one_task(ClosesBadly))


async def test_a_consumer_that_stops_early_closes_the_stream() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            chunk = 0
            while True:
                yield chunk
                chunk += 1
        finally:
            closed.set()

    stream = in_one_task(endless)
    assert await asyncio.wait_for(stream.__anext__(), BOUND_S) == 0
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(closed.wait(), BOUND_S)
