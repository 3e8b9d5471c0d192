"""iter_terminal_markers streams: its memory does not grow with the number of markers.

Peaks are measured with tracemalloc and compared as ratios between 2,000 and
20,000 markers, never against wall-clock time or absolute sizes.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator, Sequence

from taquba_memo import MemoStore
from taquba_memo import _layout as layout
from taquba_memo._backends.memory import InMemoryBackend
from taquba_memo.backend import Capabilities, MemoBackendBase

SMALL, LARGE = 2_000, 20_000


class GeneratedMarkers(MemoBackendBase):
    """A read-only bucket of ``count`` terminal markers, listed in pages of 1000.

    The names are made as each page is asked for, as a cloud listing hands
    them out, so whatever memory grows with the count is the caller's.
    """

    def __init__(self, count: int) -> None:
        self._count = count

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ordered_listing=True, conditional_put=False, max_delete_batch=1000)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        for start in range(0, self._count, 1000):
            page = [
                layout.terminal_marker_key("p", f"run-{i:07d}", 1_700_000_000_000 + i)
                for i in range(start, min(start + 1000, self._count))
            ]
            for key in page:
                if key.startswith(prefix):
                    yield key

    async def get(self, key: str) -> bytes | None:
        return b"" if key.startswith("p/terminals/") else None

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def delete_many(self, keys: Sequence[str]) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def peak_bytes(store: MemoStore, *, streaming: bool) -> int:
    """Peak Python allocation while going through every marker once."""
    gc.collect()
    tracemalloc.start()
    try:
        if streaming:
            seen = 0
            async for _marker in store.iter_terminal_markers():
                seen += 1
        else:
            seen = len(await store.list_terminal_markers())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen > 0
    return peak


async def test_streaming_markers_from_a_paged_listing_keeps_memory_flat() -> None:
    small = await peak_bytes(MemoStore(GeneratedMarkers(SMALL), "p"), streaming=True)
    large = await peak_bytes(MemoStore(GeneratedMarkers(LARGE), "p"), streaming=True)
    # Ten times the markers, about the same peak: one page at a time.
    assert large < 1.5 * small

    # The measurement does see growth where there is some: a list of every marker.
    small_list = await peak_bytes(MemoStore(GeneratedMarkers(SMALL), "p"), streaming=False)
    large_list = await peak_bytes(MemoStore(GeneratedMarkers(LARGE), "p"), streaming=False)
    assert large_list > 5 * small_list


async def _in_memory_store(count: int) -> MemoStore:
    backend = InMemoryBackend()
    store = MemoStore(backend, "m")
    for i in range(count):
        await store.write_terminal_marker(f"run-{i:07d}", 1_700_000_000_000 + i)
    return store


async def test_streaming_markers_from_memory_costs_a_fraction_of_listing_them() -> None:
    small, large = await _in_memory_store(SMALL), await _in_memory_store(LARGE)
    stream_growth = await peak_bytes(large, streaming=True) - await peak_bytes(
        small, streaming=True
    )
    list_growth = await peak_bytes(large, streaming=False) - await peak_bytes(
        small, streaming=False
    )
    # InMemoryBackend snapshots the matching key references (8 bytes each) when a
    # listing starts; markers themselves are made one at a time and dropped.
    # Materialising them costs some 200 bytes per marker.
    assert stream_growth < list_growth / 10
