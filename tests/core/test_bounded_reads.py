"""A store with max_value_bytes reads no entry past that bound, on any backend.

Every read of an entry (``Memo.get``, each read of ``get_or_compute`` and a
claim's wait) goes through the backend's ``get_at_most`` where it has one,
and through ``get`` and a size check where it has not. An oversized entry is
:class:`EntryTooLargeError` for ``Memo.get`` and a logged miss for
``get_or_compute``, which recomputes it and replaces it with an overwrite; a
foreign object under the key is a miss too.
"""

from __future__ import annotations

import logging

import pytest
from taquba_memo import (
    ClaimPolicy,
    EntryTooLargeError,
    ForeignObjectError,
    InMemoryBackend,
    MemoBackend,
    MemoStore,
    ValueTooLargeError,
    sync,
)
from taquba_memo._layout import memo_key
from taquba_memo.adapter_kit import ForwardingBackend
from taquba_memo.backend import reads_bounded
from taquba_memo_conformance import RecordingBackend

from .conftest import SixOperationsOnly

BOUND = 16
OVERSIZED = b"x" * (BOUND + 1)


class LosesTheCreateTo(ForwardingBackend):
    """Another writer stores ``winner`` just before each create-if-absent of this one."""

    def __init__(self, inner: MemoBackend, winner: bytes) -> None:
        super().__init__(inner)
        self.winner = winner

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        if if_absent:
            await self.inner.put(key, self.winner)
        return await super().put(key, value, if_absent=if_absent)


class ForeignUntilOverwritten(ForwardingBackend):
    """Reads of ``key`` raise ForeignObjectError (a symlink, a FIFO) until it is overwritten."""

    def __init__(self, inner: MemoBackend, key: str) -> None:
        super().__init__(inner)
        self.foreign_key: str | None = key

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        if key == self.foreign_key:
            raise ForeignObjectError(f"{key!r} is a symbolic link")
        return await super().get_at_most(key, max_bytes)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        if key == self.foreign_key and not if_absent:
            self.foreign_key = None
        return await super().put(key, value, if_absent=if_absent)


def bounded_memo(backend: MemoBackend, bound: int | None = BOUND) -> tuple[MemoStore, str]:
    """A memo of a store with ``max_value_bytes=bound``, and the object key of its entry ``k``."""
    return MemoStore(backend, "p", max_value_bytes=bound), memo_key("p", "run", 1, "k")


class TestMemoGet:
    async def test_an_entry_over_max_value_bytes_raises_entry_too_large(
        self, backend: MemoBackend
    ) -> None:
        store, key = bounded_memo(backend)
        await backend.put(key, OVERSIZED)
        with pytest.raises(EntryTooLargeError) as raised:
            await store.new_memo("run", 1).get("k")
        assert isinstance(raised.value, ValueTooLargeError)
        assert str(BOUND) in str(raised.value)

    async def test_an_entry_of_exactly_max_value_bytes_is_read(self, backend: MemoBackend) -> None:
        store, key = bounded_memo(backend)
        await backend.put(key, b"y" * BOUND)
        assert await store.new_memo("run", 1).get("k") == b"y" * BOUND

    async def test_without_max_value_bytes_any_size_is_read_with_get(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        store, key = bounded_memo(backend, None)
        await backend.inner.put(key, OVERSIZED * 100)
        assert await store.new_memo("run", 1).get("k") == OVERSIZED * 100
        assert backend.count("get") == 1
        assert backend.count("get_at_most") == 0

    async def test_the_store_reads_through_get_at_most_where_the_backend_has_it(self) -> None:
        backend = RecordingBackend(InMemoryBackend())
        store, key = bounded_memo(backend)
        await backend.inner.put(key, b"small")
        assert await store.new_memo("run", 1).get("k") == b"small"
        assert backend.calls == [("get_at_most", key)]

    async def test_a_backend_without_get_at_most_is_read_whole_then_refused(self) -> None:
        backend = SixOperationsOnly()
        assert not reads_bounded(backend)
        store, key = bounded_memo(backend)
        await backend.put(key, OVERSIZED)
        with pytest.raises(EntryTooLargeError):
            await store.new_memo("run", 1).get("k")
        await backend.put(key, b"small")
        assert await store.new_memo("run", 1).get("k") == b"small"

    async def test_content_get_is_bounded_too(self, backend: MemoBackend) -> None:
        store = MemoStore(backend, "p", max_value_bytes=BOUND)
        memo = store.new_memo("run", 1)
        await MemoStore(backend, "p").new_memo("run", 1).content_put({"q": 1}, OVERSIZED)
        with pytest.raises(EntryTooLargeError):
            await memo.content_get({"q": 1})


class TestGetOrCompute:
    async def test_an_oversized_entry_is_a_logged_miss_recomputed_and_replaced(
        self, backend: MemoBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        store, key = bounded_memo(backend)
        await backend.put(key, OVERSIZED)
        memo = store.new_memo("run", 1)
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await memo.get_or_compute("k", lambda: b"fresh") == b"fresh"
        # Replaced by an overwrite: a create-if-absent would have failed for ever.
        assert await backend.get(key) == b"fresh"
        assert await memo.get_or_compute("k", lambda: b"not paid again") == b"fresh"
        (record,) = [r for r in caplog.records if "cannot be read as a value" in r.message]
        assert record.levelno == logging.WARNING
        assert f"over the bound {BOUND}" in record.message
        assert f"{BOUND + 1} bytes" in record.message, "the entry's size is logged"

    async def test_an_oversized_entry_on_a_backend_without_get_at_most_is_recomputed(
        self,
    ) -> None:
        backend = SixOperationsOnly()
        store, key = bounded_memo(backend)
        await backend.put(key, OVERSIZED)
        assert await store.new_memo("run", 1).get_or_compute("k", lambda: b"fresh") == b"fresh"
        assert await backend.get(key) == b"fresh"

    async def test_an_oversized_entry_under_a_claim_is_recomputed_once_and_replaced(
        self,
    ) -> None:
        backend = RecordingBackend(InMemoryBackend())
        store, key = bounded_memo(backend)
        await backend.inner.put(key, OVERSIZED)
        paid = []

        def fn() -> bytes:
            paid.append(1)
            return b"fresh"

        memo = store.new_memo("run", 1)
        claim = ClaimPolicy(lease_s=5)
        assert await memo.get_or_compute("k", fn, claim=claim) == b"fresh"
        assert await memo.get_or_compute("k", fn, claim=claim) == b"fresh"
        assert paid == [1]
        assert await backend.inner.get(key) == b"fresh"
        # Every read of the entry went through the bounded read.
        assert [name for name, read in backend.calls if read == key and "get" in name] == [
            "get_at_most"
        ] * 3

    async def test_a_winner_over_the_bound_after_a_lost_create_returns_this_callers_value(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend = LosesTheCreateTo(InMemoryBackend(), winner=OVERSIZED)
        store, key = bounded_memo(backend)
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            value = await store.new_memo("run", 1).get_or_compute("k", lambda: b"mine")
        assert value == b"mine"
        assert "written first with a value that cannot be read" in caplog.text
        assert await backend.inner.get(key) == OVERSIZED, "the winner is left as it was"

    async def test_a_foreign_object_under_the_key_is_a_miss_replaced_by_an_overwrite(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        _, key = bounded_memo(InMemoryBackend())
        backend = ForeignUntilOverwritten(InMemoryBackend(), key)
        store = MemoStore(backend, "p", max_value_bytes=BOUND)
        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            assert await store.new_memo("run", 1).get_or_compute("k", lambda: b"ok") == b"ok"
        assert "symbolic link" in caplog.text
        assert backend.foreign_key is None, "stored with an overwrite"
        assert await backend.inner.get(key) == b"ok"


class TestForwardingBackend:
    def test_forwards_get_at_most_only_when_the_wrapped_backend_has_it(self) -> None:
        assert reads_bounded(ForwardingBackend(InMemoryBackend()))
        assert not reads_bounded(ForwardingBackend(SixOperationsOnly()))
        # A subclass's override (calling super()) follows the same rule.
        assert reads_bounded(RecordingBackend(InMemoryBackend()))
        assert not reads_bounded(RecordingBackend(SixOperationsOnly()))
        wrapped = RecordingBackend(SixOperationsOnly())
        assert isinstance(wrapped, RecordingBackend)
        assert type(wrapped).__name__ == "RecordingBackend"

    async def test_forwarded_get_at_most_answers_as_the_wrapped_one(self) -> None:
        inner = InMemoryBackend()
        await inner.put("k", b"four")
        wrapped = ForwardingBackend(inner)
        assert await wrapped.get_at_most("k", 4) == b"four"
        with pytest.raises(EntryTooLargeError):
            await wrapped.get_at_most("k", 3)


class TestSyncApi:
    def test_sync_get_raises_and_get_or_compute_recomputes(self) -> None:
        backend = InMemoryBackend()
        sync.MemoStore(backend, "p").new_memo("run", 1).put("k", OVERSIZED)
        with sync.MemoStore(backend, "p", max_value_bytes=BOUND) as store:
            memo = store.new_memo("run", 1)
            with pytest.raises(EntryTooLargeError):
                memo.get("k")
            assert memo.get_or_compute("k", lambda: b"fresh") == b"fresh"
            assert memo.get("k") == b"fresh"
