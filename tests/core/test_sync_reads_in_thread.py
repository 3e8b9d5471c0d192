"""The sync API reads in the calling thread where the backend reads without a loop.

On a backend that offers ``get_in_thread`` (local files, memory), a sync
``Memo.get`` and a hit of ``Memo.get_or_compute`` make no round trip to the
store's loop thread; every other call, a miss included, still does. Each test
counts the round trips (``run_coroutine_threadsafe``, the one way onto the
loop) and holds the shortcut to what the same calls do over a backend that
lacks the member: the same values, errors and stats, and the same backend
requests but one: a ``get_or_compute`` that misses reads once in the thread and
once more on the loop (a local read, no network).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from taquba_memo import (
    EntryTooLargeError,
    ForeignObjectError,
    InMemoryBackend,
    InvalidValueTypeError,
    JSONCodec,
    LocalFileBackend,
    MemoBackend,
    StoreClosedError,
)
from taquba_memo.backend import reads_in_thread
from taquba_memo.sync import MemoStore
from taquba_memo_conformance import RecordingBackend

from .conftest import SixOperationsOnly


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every coroutine a sync call hands to a store's loop, in order."""
    handed: list[object] = []
    real = asyncio.run_coroutine_threadsafe

    def counting(coro: Any, loop: asyncio.AbstractEventLoop) -> Any:
        handed.append(coro)
        return real(coro, loop)

    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", counting)
    return handed


IN_THREAD: dict[str, Callable[[Path], MemoBackend]] = {
    "memory": lambda tmp: InMemoryBackend(),
    "local": lambda tmp: LocalFileBackend(tmp / "store"),
}


@pytest.fixture(params=sorted(IN_THREAD))
def in_thread_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoStore]:
    with MemoStore(IN_THREAD[request.param](tmp_path), "app") as store:
        yield store


class TestNoRoundTrip:
    def test_a_get_reads_in_the_calling_thread(
        self, in_thread_store: MemoStore, round_trips: list[object]
    ) -> None:
        memo = in_thread_store.new_memo("run", 0)
        memo.put("k", b"value")
        round_trips.clear()
        assert memo.get("k") == b"value"
        assert memo.get("missing") is None
        assert round_trips == []

    def test_a_hit_reads_in_the_calling_thread_and_a_miss_goes_to_the_loop(
        self, in_thread_store: MemoStore, round_trips: list[object]
    ) -> None:
        memo = in_thread_store.new_memo("run", 0)
        paid: list[bytes] = []

        def pay(value: bytes) -> Callable[[], bytes]:
            return lambda: paid.append(value) or value  # type: ignore[func-returns-value]

        round_trips.clear()
        assert memo.get_or_compute("k", pay(b"v")) == b"v"
        assert len(round_trips) == 1  # the miss: computed and stored through the loop
        assert memo.get_or_compute("k", pay(b"other")) == b"v"
        assert paid == [b"v"]
        assert len(round_trips) == 1  # the hit: none
        # A value that does not decode is a miss: the loop recomputes (and overwrites) it.
        assert memo.get_or_compute("k", lambda: [1], codec=JSONCodec(), if_absent=False) == [1]
        assert len(round_trips) == 2

    def test_a_subclass_that_changes_get_loses_the_shortcut_and_keeps_its_change(
        self, tmp_path: Path
    ) -> None:
        class Upper(LocalFileBackend):
            async def get(self, key: str) -> bytes | None:
                value = await super().get(key)
                return None if value is None else value.upper()

        class UpperInThreadToo(Upper):
            def get_in_thread(self, key: str, max_bytes: int | None) -> bytes | None:
                value = LocalFileBackend.get_in_thread(self, key, max_bytes)
                return None if value is None else value.upper()

        assert reads_in_thread(LocalFileBackend(tmp_path / "a"))
        assert not reads_in_thread(Upper(tmp_path / "b"))
        assert reads_in_thread(UpperInThreadToo(tmp_path / "c"))
        for backend in (Upper(tmp_path / "b"), UpperInThreadToo(tmp_path / "c")):
            with MemoStore(backend, "app") as store:
                memo = store.new_memo("run", 0)
                memo.put("k", b"value")
                assert memo.get("k") == b"VALUE"
                assert memo.get_or_compute("k", lambda: b"paid again") == b"VALUE"

    def test_a_mixin_that_changes_get_withdraws_the_shortcut_too(self, tmp_path: Path) -> None:
        class Upper:
            async def get(self, key: str) -> bytes | None:
                value = await super().get(key)  # type: ignore[misc]
                return None if value is None else bytes(value).upper()

        class UpperFiles(Upper, LocalFileBackend):
            pass

        assert not reads_in_thread(UpperFiles(tmp_path / "store"))
        with MemoStore(UpperFiles(tmp_path / "store"), "app") as store:
            memo = store.new_memo("run", 0)
            memo.put("k", b"value")
            assert memo.get("k") == b"VALUE"

    @pytest.mark.parametrize("backend_class", [InMemoryBackend, LocalFileBackend])
    async def test_a_withdrawn_shortcut_leaves_the_backends_own_reads_whole(
        self, backend_class: type[MemoBackend], tmp_path: Path
    ) -> None:
        class Counting(backend_class):  # type: ignore[valid-type,misc]
            async def get(self, key: str) -> bytes | None:
                return cast(bytes | None, await super().get(key))

        backend = Counting(tmp_path / "store") if backend_class is LocalFileBackend else Counting()
        large = os.urandom(200 * 1024)  # past the size a local file is read inline
        await backend.put("k", large)
        assert not reads_in_thread(backend)
        assert await backend.get("k") == large
        assert await backend.get_at_most("k", len(large)) == large
        with pytest.raises(EntryTooLargeError):
            await backend.get_at_most("k", 1024)

    def test_a_backend_without_the_member_still_crosses_to_the_loop(
        self, round_trips: list[object]
    ) -> None:
        with MemoStore(SixOperationsOnly(), "app") as store:
            memo = store.new_memo("run", 0)
            memo.put("k", b"value")
            round_trips.clear()
            assert memo.get("k") == b"value"
            assert memo.get_or_compute("k", bytes) == b"value"
            assert len(round_trips) == 2


def _seed(backend: MemoBackend) -> None:
    with MemoStore(backend, "app") as store:
        memo = store.new_memo("run", 0)
        memo.put("bytes", b"value")
        memo.put("json", b'{"a": 1}')
        memo.put("large", b"x" * 100)


def _calls(store: MemoStore) -> list[object]:
    """A mix of hits, misses, undecodable and oversized entries: each call's outcome."""
    memo = store.new_memo("run", 0)
    outcomes: list[object] = []
    calls: list[Callable[[], object]] = [
        lambda: memo.get("bytes"),
        lambda: memo.get("missing"),
        lambda: memo.get("large"),
        lambda: memo.get_or_compute("bytes", lambda: b"unused"),
        lambda: memo.get_or_compute("json", lambda: {"b": 2}, codec=JSONCodec()),
        lambda: memo.get_or_compute("bytes", lambda: "recomputed", codec=JSONCodec()),
        lambda: memo.get_or_compute("large", lambda: b"small"),
        lambda: memo.get_or_compute("new", lambda: b"paid"),
        lambda: memo.get_or_compute("new", lambda: b"unused"),
        lambda: memo.get(7),  # type: ignore[arg-type]
        lambda: memo.get_or_compute("bytes", "not callable"),  # type: ignore[call-overload]
        lambda: memo.get_or_compute("bytes", bytes, if_absent="yes"),  # type: ignore[call-overload]
    ]
    for call in calls:
        try:
            outcomes.append(call())
        except Exception as exc:
            outcomes.append(type(exc))
    return outcomes


class TestSameBehaviour:
    def test_values_errors_stats_and_requests_match_the_loop_path(self) -> None:
        results = {}
        for name, inner in (("in thread", InMemoryBackend()), ("loop", SixOperationsOnly())):
            recording = RecordingBackend(inner)
            _seed(recording)
            recording.clear()
            with MemoStore(recording, "app", max_value_bytes=50) as store:
                outcomes = _calls(store)
                # Every counter but the seconds fn took, which no two runs share.
                stats = dataclasses.replace(store.stats.snapshot(), compute_seconds=0.0)
                results[name] = (outcomes, stats, recording.counts())
        assert results["in thread"][0] == results["loop"][0]
        assert results["in thread"][1] == results["loop"][1]
        in_thread_requests, loop_requests = results["in thread"][2], results["loop"][2]
        # The loop path reads a bounded store's entries with get (no get_at_most there).
        # A get_or_compute that misses reads in the thread, then again on the loop: one
        # more local read for each of the 3 misses (undecodable, too large, absent).
        assert in_thread_requests.pop("get_at_most") == loop_requests.pop("get") + 3
        assert in_thread_requests == loop_requests
        outcomes = results["in thread"][0]
        assert outcomes[:3] == [b"value", None, EntryTooLargeError]
        assert outcomes[-3:] == [InvalidValueTypeError] * 3

    def test_a_closed_store_refuses_without_a_round_trip(
        self, in_thread_store: MemoStore, round_trips: list[object]
    ) -> None:
        memo = in_thread_store.new_memo("run", 0)
        in_thread_store.close()
        round_trips.clear()
        with pytest.raises(StoreClosedError):
            memo.get("k")
        with pytest.raises(StoreClosedError):
            memo.get_or_compute("k", bytes)
        assert round_trips == []

    def test_a_link_planted_at_an_entry_is_refused_in_the_calling_thread(
        self, tmp_path: Path, round_trips: list[object]
    ) -> None:
        with MemoStore(LocalFileBackend(tmp_path / "store"), "app") as store:
            memo = store.new_memo("run", 0)
            memo.put("k", b"value")
            entry = next(path for path in (tmp_path / "store").rglob("*") if path.is_file())
            (tmp_path / "secret").write_bytes(b"secret")
            entry.unlink()
            os.symlink(tmp_path / "secret", entry)
            round_trips.clear()
            with pytest.raises(ForeignObjectError):
                memo.get("k")
            assert round_trips == []
            # get_or_compute treats it as a miss, on the loop, as without the shortcut.
            assert memo.get_or_compute("k", lambda: b"recomputed") == b"recomputed"
            assert (tmp_path / "secret").read_bytes() == b"secret"
