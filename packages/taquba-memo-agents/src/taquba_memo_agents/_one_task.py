"""A framework's stream driven from one task of its own, for ``Memo.get_or_stream``.

``get_or_stream`` pulls each chunk in a task of its own (any consumer may be
the one that pulls). A framework's stream that sets a context variable
before a ``yield`` and resets it after (openai-agents' tracing spans,
OpenTelemetry's current span) then fails: the reset runs in another task's
context. :func:`in_one_task` runs the whole stream, from its first chunk to
its close, in one task, and hands its chunks over one at a time (at most
two ahead of the consumer: one that stops stops the stream soon after).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

__all__ = ["in_one_task"]

T = TypeVar("T")

_END = object()


async def in_one_task(open_stream: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
    """The chunks of ``open_stream()``, which is opened, read and closed in one task."""
    handover: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        # Whatever ends the stream (opening it, a chunk, closing it) ends in the handover:
        # a consumer waiting on it never waits forever.
        error: BaseException | None = None
        stream: AsyncIterator[T] | None = None
        try:
            stream = open_stream()
            async for chunk in stream:
                await handover.put((chunk, None))
        except asyncio.CancelledError:
            raise  # the consumer stopped reading: nobody waits for the end
        except BaseException as exc:  # the consumer raises it, whatever it is
            error = exc
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception as exc:
                    error = error or exc
        await handover.put((_END, error))

    task = asyncio.get_running_loop().create_task(pump())
    try:
        while True:
            chunk, error = await handover.get()
            if error is not None:
                raise error
            if chunk is _END:
                return
            yield chunk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
