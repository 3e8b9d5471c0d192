"""Streams through the memo: time to first chunk and total time, raw vs miss vs hit.

Run it with ``uv run python -m benchmarks.streaming`` (``--rounds``,
``--chunks``, ``--first-ms``, ``--gap-ms``). A fake model stream waits
``--first-ms`` before its first chunk and ``--gap-ms`` between chunks (64
bytes each), as a model's token stream does. One process measures, round by
round in rotating order so load on the machine falls on every configuration
alike:

- ``raw``: the fake stream consumed directly (the floor);
- ``miss``: ``Memo.get_or_stream`` on an empty entry: the lookup, the live
  stream, and storing the recording at its end;
- ``hit``: ``Memo.get_or_stream`` replaying the recording of an earlier round.

Each figure is the median over rounds, in milliseconds; ``x raw`` is the
ratio to the raw stream's figure. It prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend, MemoStore

from benchmarks.report import markdown_table

Consume = Callable[[int], AsyncIterator[bytes]]


def fake_stream(chunks: int, first_s: float, gap_s: float) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        await asyncio.sleep(first_s)
        for index in range(chunks):
            if index:
                await asyncio.sleep(gap_s)
            yield b"%063d\n" % index

    return stream


async def timed(chunks: AsyncIterator[bytes]) -> tuple[float, float]:
    """Seconds to the first chunk and to the end of the stream."""
    started = time.perf_counter()
    first: float | None = None
    async for _ in chunks:
        if first is None:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return (total if first is None else first), total


async def measure_backend(
    backend: MemoBackend, rounds: int, stream: Callable[[], AsyncIterator[bytes]]
) -> dict[str, tuple[float, float]]:
    store = MemoStore(backend, "bench")
    recorded = store.new_memo("hit", 0)
    await timed(recorded.get_or_stream("k", stream))  # the recording every hit replays

    def raw(round_number: int) -> AsyncIterator[bytes]:
        return stream()

    def miss(round_number: int) -> AsyncIterator[bytes]:
        return store.new_memo(f"miss-{round_number}", 0).get_or_stream("k", stream)

    def hit(round_number: int) -> AsyncIterator[bytes]:
        return store.new_memo("hit", 0).get_or_stream("k", stream)

    configurations: list[tuple[str, Consume]] = [("raw", raw), ("miss", miss), ("hit", hit)]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in configurations}
    for round_number in range(rounds):
        shift = round_number % len(configurations)
        for name, consume in configurations[shift:] + configurations[:shift]:
            times[name].append(await timed(consume(round_number)))
    return {
        name: (
            statistics.median(first for first, _ in found) * 1e3,
            statistics.median(total for _, total in found) * 1e3,
        )
        for name, found in times.items()
    }


async def measure(
    rounds: int, chunks: int, first_s: float, gap_s: float
) -> list[tuple[str, dict[str, tuple[float, float]]]]:
    stream = fake_stream(chunks, first_s, gap_s)
    with tempfile.TemporaryDirectory(prefix="taquba-memo-streams-") as scratch:
        backends: list[tuple[str, MemoBackend]] = [
            ("InMemoryBackend", InMemoryBackend()),
            ("LocalFileBackend", LocalFileBackend(Path(scratch))),
        ]
        return [
            (name, await measure_backend(backend, rounds, stream)) for name, backend in backends
        ]


def table(results: list[tuple[str, dict[str, tuple[float, float]]]]) -> str:
    header = ["backend", "stream", "first chunk ms", "x raw", "total ms", "x raw"]
    rows = []
    for name, figures in results:
        raw_first, raw_total = figures["raw"]
        for configuration, (first, total) in figures.items():
            first_ms, first_x = f"{first:.2f}", f"{first / raw_first:.2f}"
            total_ms, total_x = f"{total:.1f}", f"{total / raw_total:.2f}"
            rows.append([name, configuration, first_ms, first_x, total_ms, total_x])
    return "\n".join(markdown_table(header, rows, numbers=4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="streams per configuration")
    parser.add_argument("--chunks", type=int, default=50, help="chunks per stream")
    parser.add_argument("--first-ms", type=float, default=100.0, help="wait for the first chunk")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="wait between chunks")
    args = parser.parse_args()
    print(
        f"{args.chunks} chunks of 64 bytes, first after {args.first_ms:g} ms, then every "
        f"{args.gap_ms:g} ms; median of {args.rounds} rounds\n"
    )
    results = asyncio.run(measure(args.rounds, args.chunks, args.first_ms / 1e3, args.gap_ms / 1e3))
    print(table(results))


if __name__ == "__main__":
    main()
