"""A closed async MemoStore refuses every operation with StoreClosedError, before any I/O.

The sync store always did; the async one answered ``put`` with True on the
embedded backends after ``aclose()``, so a use-after-close bug went unseen.
Memos handed out before the close are refused alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from taquba_memo import MemoBackend, MemoStore, StoreClosedError, TerminalMarker
from taquba_memo_conformance import RecordingBackend


async def drained(items: Any) -> list[Any]:
    return [item async for item in items]


OPERATIONS: dict[str, Callable[[MemoStore], Awaitable[Any]]] = {
    "put": lambda store: store.new_memo("run", 0).put("k", b"v"),
    "get": lambda store: store.new_memo("run", 0).get("k"),
    "get_or_compute": lambda store: store.new_memo("run", 0).get_or_compute("k", lambda: b"v"),
    "content_put": lambda store: store.new_memo("run", 0).content_put({"a": 1}, b"v"),
    "content_get": lambda store: store.new_memo("run", 0).content_get({"a": 1}),
    "clear_memos_for_run": lambda store: store.clear_memos_for_run("run"),
    "write_terminal_marker": lambda store: store.write_terminal_marker("run", 1),
    "list_terminal_markers": lambda store: store.list_terminal_markers(),
    "iter_terminal_markers": lambda store: drained(store.iter_terminal_markers()),
    "list_expired_terminal_markers": lambda store: store.list_expired_terminal_markers(10),
    "delete_terminal_marker": lambda store: store.delete_terminal_marker(TerminalMarker("run", 1)),
    "iter_entries": lambda store: drained(store.iter_entries()),
    "sweep": lambda store: store.sweep(10),
    "sweep dry_run": lambda store: store.sweep(10, dry_run=True),
}


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_every_operation_after_aclose_raises_store_closed_error_without_io(
    backend: MemoBackend, operation: str
) -> None:
    recording = RecordingBackend(backend)
    store = MemoStore(recording, "memo")
    await store.new_memo("run", 0).put("k", b"v")
    await store.aclose()
    recording.calls.clear()

    with pytest.raises(StoreClosedError):
        await OPERATIONS[operation](store)
    assert recording.calls == []


async def test_a_memo_handed_out_before_the_close_is_refused_too(backend: MemoBackend) -> None:
    async with MemoStore(backend, "memo") as store:
        memo = store.new_memo("run", 0)
        assert await memo.put("k", b"v")
    with pytest.raises(StoreClosedError):
        await memo.put("k", b"again")
    with pytest.raises(StoreClosedError):
        await memo.get_or_compute("k", lambda: b"v")


async def test_closing_twice_closes_the_backend_once(backend: MemoBackend) -> None:
    closes = 0

    class CountsCloses(RecordingBackend):
        async def aclose(self) -> None:
            nonlocal closes
            closes += 1
            await super().aclose()

    store = MemoStore(CountsCloses(backend), "memo")
    await store.aclose()
    await store.aclose()
    assert closes == 1
