"""BackendProtocolTests: the MemoBackend contract itself, operation by operation.

Reads and writes, awkward keys, bad input, listing and its order, deletes
and partial delete failures, and conditional puts. Capabilities are
verified, not trusted: a declared ``ordered_listing`` is checked across page
boundaries, a declared ``conditional_put`` against concurrent creators; a
test that needs an undeclared capability is skipped with its name. So are
the optional members (``taquba_memo.backend.OPTIONAL_MEMBERS``): each one a
backend offers is checked, and the checks of one it lacks are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import random

import pytest
from taquba_memo import (
    BackendError,
    DeleteManyError,
    EntryTooLargeError,
    InvalidArgumentError,
    InvalidValueTypeError,
    MemoBackend,
    NotSupportedError,
)
from taquba_memo.backend import (
    Capabilities,
    ListedObject,
    ListsMetadata,
    ReadsBounded,
    ReadsInThread,
    RebuildsAfterFork,
)

from taquba_memo_conformance._base import SuiteBase
from taquba_memo_conformance.keyspace import KeySpace, byte_order, collect, put_all, sha256_hex

__all__ = ["AWKWARD_KEYS", "ORDERING_KEYS", "BackendProtocolTests"]

# Keys object stores, SDKs and file systems disagree about. Every path
# segment stays <= 200 bytes (file systems cap a name at 255) and every key
# below ~900 bytes with the test's prefix (S3, GCS and Azure cap near 1024).
AWKWARD_KEYS: dict[str, str] = {
    "space": "with space/and  two",
    "emoji": "emoji-\U0001f600-\U0001f389",
    "cjk": "cjk-漢字-かな-한글",
    "percent-escape": "literal-%41-%2F-%",
    "plus": "a+b+c",
    "xml-special": "xml-<tag attr=\"v\">&amp;'q'",
    "long-ascii": "/".join(letter * 200 for letter in "abcd"),
    "long-multibyte": "/".join(["漢" * 66] * 3),
}

# Keys whose byte order trips up segment-wise or locale-aware sorting:
# "." and "-" sort before "/", digits compare as text, upper case first,
# and multi-byte characters after every ASCII one.
ORDERING_KEYS: tuple[str, ...] = (
    "10",
    "9",
    "A",
    "Z",
    "a b",
    "a-b",
    "a.b",
    "a/b",
    "a0",
    "~",
    "é",
    "漢",
    "\U0001f600",
)


async def _put_if_absent(
    backend: MemoBackend, key: str, value: bytes, *, created: bool, holds: bytes
) -> None:
    """``put(key, value, if_absent=True)`` answers ``created``, and ``key`` then holds ``holds``."""
    assert await backend.put(key, value, if_absent=True) is created
    assert await backend.get(key) == holds


class BackendProtocolTests(SuiteBase):
    """The contract of every MemoBackend operation."""

    # -- the protocol itself ------------------------------------------------------

    async def test_backend_implements_the_protocol(self, backend: MemoBackend) -> None:
        assert isinstance(backend, MemoBackend)
        capabilities = backend.capabilities
        assert isinstance(capabilities, Capabilities)
        assert capabilities == backend.capabilities, "capabilities must be constant"
        assert isinstance(capabilities.max_delete_batch, int)
        assert capabilities.max_delete_batch >= 1

    async def test_closing_twice_is_harmless(self, backend: MemoBackend) -> None:
        # No key space: nothing is written, and nothing is cleaned up after
        # the close. The fixture's own teardown then closes it once more.
        await backend.aclose()
        await backend.aclose()

    async def test_async_with_returns_the_backend(self, backend: MemoBackend) -> None:
        # The protocol does not require a context manager (MemoBackendBase
        # gives one); a backend that offers it must return itself.
        if not hasattr(backend, "__aenter__"):
            pytest.skip(f"{type(backend).__name__} is not an async context manager (optional)")
        async with backend as entered:  # type: ignore[attr-defined]
            assert entered is backend

    # -- reads and writes ----------------------------------------------------------

    async def test_get_of_a_missing_key_returns_none(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await backend.get(space.key("missing")) is None

    async def test_put_returns_true_and_get_returns_the_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await backend.put(space.key("k"), b"hello") is True
        assert await backend.get(space.key("k")) == b"hello"

    async def test_put_overwrites_an_existing_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await backend.put(space.key("k"), b"first") is True
        assert await backend.put(space.key("k"), b"second, and longer") is True
        assert await backend.get(space.key("k")) == b"second, and longer"
        assert await backend.put(space.key("k"), b"3") is True
        assert await backend.get(space.key("k")) == b"3", "a shorter value leaves no tail"

    async def test_empty_value_round_trips(self, backend: MemoBackend, space: KeySpace) -> None:
        # Terminal markers are zero-byte objects: empty must read as b"", not None.
        assert await backend.put(space.key("empty"), b"") is True
        assert await backend.get(space.key("empty")) == b""
        assert await space.listed(backend, space.prefix) == [space.key("empty")]

    async def test_every_byte_value_round_trips(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        every_byte = bytes(range(256))
        await backend.put(space.key("bytes"), every_byte)
        assert await backend.get(space.key("bytes")) == every_byte
        reversed_bytes = every_byte[::-1] * 3
        await backend.put(space.key("bytes"), reversed_bytes)
        assert await backend.get(space.key("bytes")) == reversed_bytes

    async def test_large_value_round_trips(self, backend: MemoBackend, space: KeySpace) -> None:
        # Compared by hash: a 20 MiB assertion diff would drown the report.
        value = os.urandom(self.large_value_bytes)
        await backend.put(space.key("large"), value)
        stored = await backend.get(space.key("large"))
        assert stored is not None
        assert (len(stored), sha256_hex(stored)) == (len(value), sha256_hex(value))

    @pytest.mark.parametrize("name", list(AWKWARD_KEYS))
    async def test_awkward_key_round_trips(
        self, backend: MemoBackend, space: KeySpace, name: str
    ) -> None:
        key = space.key(AWKWARD_KEYS[name])
        await backend.put(key, name.encode())
        assert await backend.get(key) == name.encode()
        # The listing must give back the key exactly as written: not
        # percent-encoded, not decoded, not normalised.
        assert await space.listed(backend, space.prefix) == [key]
        assert await space.listed(backend, key) == [key]
        assert await space.listed(backend, key[: len(key) - len(AWKWARD_KEYS[name]) // 2]) == [key]
        await backend.delete(key)
        assert await backend.get(key) is None
        assert await space.listed(backend, space.prefix) == []

    async def test_a_str_value_is_refused_before_anything_is_written(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        with pytest.raises(InvalidValueTypeError):
            await backend.put(space.key("k"), "text is not bytes")  # type: ignore[arg-type]
        assert await backend.get(space.key("k")) is None
        if backend.capabilities.conditional_put:
            with pytest.raises(InvalidValueTypeError):
                await backend.put(space.key("k"), "text", if_absent=True)  # type: ignore[arg-type]
            assert await backend.get(space.key("k")) is None

    async def test_a_non_str_key_is_refused_before_any_io(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        await backend.put(space.key("kept"), b"v")
        with pytest.raises(InvalidValueTypeError):
            await backend.put(42, b"v")  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            await backend.put(space.key("kept").encode(), b"v")  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            await backend.get(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            await backend.delete(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            await backend.delete_many([space.key("kept"), 42])  # type: ignore[list-item]
        with pytest.raises(InvalidValueTypeError):
            await collect(backend.list(42))  # type: ignore[arg-type]
        # The valid key in the refused delete_many was not deleted either.
        assert await backend.get(space.key("kept")) == b"v"
        assert await space.listed(backend, space.prefix) == [space.key("kept")]

    # -- listing -------------------------------------------------------------------

    async def test_list_matches_the_raw_string_prefix(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # Siblings that share characters but not segments. No key is the
        # "directory" of another, so a file-system backend can hold them all.
        keys = ["p/run/a", "p/run-suffix/b", "p/runner", "p/foo.bar", "p/foo/bar", "q/run/a"]
        await put_all(backend, {space.key(k): k.encode() for k in keys}, concurrency=8)
        expected = {
            "p/run": ["p/run-suffix/b", "p/run/a", "p/runner"],
            "p/run/": ["p/run/a"],
            "p/run-": ["p/run-suffix/b"],
            "p/runn": ["p/runner"],
            "p/foo": ["p/foo.bar", "p/foo/bar"],
            "p/foo/": ["p/foo/bar"],
            "p/foo.": ["p/foo.bar"],
            "p/": ["p/foo.bar", "p/foo/bar", "p/run-suffix/b", "p/run/a", "p/runner"],
            "p/nothing": [],
            "p/run/a/": [],
        }
        listed = {
            prefix: sorted(
                key.removeprefix(space.prefix)
                for key in await space.listed(backend, space.key(prefix))
            )
            for prefix in expected
        }
        assert listed == expected

    async def test_list_is_in_ascending_byte_order(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "ordered_listing")
        keys = [space.key("o", name) for name in ORDERING_KEYS]
        # Written in reverse, so insertion order is not byte order.
        await put_all(backend, dict.fromkeys(reversed(keys), b""), concurrency=1)
        assert await space.listed(backend, space.prefix) == byte_order(keys)
        assert await space.listed(backend, space.key("o", "a")) == byte_order(
            k for k in keys if k.startswith(space.key("o", "a"))
        )

    async def test_list_sees_writes_and_deletes(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await space.listed(backend, space.prefix) == []
        await backend.put(space.key("a"), b"1")
        await backend.put(space.key("b/c"), b"2")
        await backend.put(space.key("d"), b"3")
        assert byte_order(await space.listed(backend, space.prefix)) == [
            space.key("a"),
            space.key("b/c"),
            space.key("d"),
        ]
        await backend.delete(space.key("a"))
        assert byte_order(await space.listed(backend, space.prefix)) == [
            space.key("b/c"),
            space.key("d"),
        ]
        await backend.delete_many([space.key("b/c"), space.key("d")])
        assert await space.listed(backend, space.prefix) == []

    async def test_list_returns_every_key_across_page_boundaries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        keys = [space.key("many", f"{i:05d}") for i in range(self.page_boundary_keys)]
        await put_all(backend, dict.fromkeys(keys, b""), concurrency=self.write_concurrency)
        listed = await space.listed(backend, space.key("many", ""))
        missing = sorted(set(keys) - set(listed))
        assert missing == [], f"{len(missing)} key(s) missing from the listing"
        assert len(listed) == len(keys), "the listing repeated keys"

    async def test_list_is_ordered_across_page_boundaries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "ordered_listing")
        # Written in a scrambled order, so an unordered store cannot pass by accident.
        keys = [space.key("many", f"{i:05d}") for i in range(self.page_boundary_keys)]
        scrambled = random.Random(len(keys)).sample(keys, len(keys))
        await put_all(backend, dict.fromkeys(scrambled, b""), concurrency=self.write_concurrency)
        listed = await space.listed(backend, space.key("many", ""))
        assert listed == byte_order(keys)

    # -- the optional list_with_metadata ------------------------------------------

    async def test_list_with_metadata_reports_the_true_size_and_time_of_each_key(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        listing: ListsMetadata = self.require_member(backend, ListsMetadata)
        sizes = {"p/empty": 0, "p/one": 1, "p/kib": 1024, "p/big/70k": 70_000, "q/other": 3}
        values = {space.key(name): os.urandom(size) for name, size in sizes.items()}
        started = datetime.datetime.now(datetime.timezone.utc)
        await put_all(backend, values, concurrency=8)
        await backend.put(space.key("p/one"), b"now five")  # an overwrite changes the size
        values[space.key("p/one")] = b"now five"
        finished = datetime.datetime.now(datetime.timezone.utc)

        objects = [item async for item in listing.list_with_metadata(space.key("p", ""))]

        # The same keys as list(), in the same order, with the sizes written.
        assert [item.key for item in objects] == await space.listed(backend, space.key("p", ""))
        assert {item.key: item.size for item in objects} == {
            key: len(value) for key, value in values.items() if key.startswith(space.key("p", ""))
        }
        # Times are the store's, whose clock and second-granularity may differ.
        slack = datetime.timedelta(seconds=self.metadata_clock_slack_s)
        for item in objects:
            assert isinstance(item, ListedObject)
            if item.last_modified is not None:
                assert item.last_modified.tzinfo is not None, "last_modified must be aware"
                assert started - slack <= item.last_modified <= finished + slack, item

    async def test_list_with_metadata_matches_the_raw_prefix_and_can_stop_early(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        listing: ListsMetadata = self.require_member(backend, ListsMetadata)
        keys = ["p/run/a", "p/run-suffix/b", "p/runner", "p/rum"]
        await put_all(backend, {space.key(k): k.encode() for k in keys}, concurrency=8)
        objects = [item async for item in listing.list_with_metadata(space.key("p/run"))]
        assert sorted(item.key.removeprefix(space.prefix) for item in objects) == [
            "p/run-suffix/b",
            "p/run/a",
            "p/runner",
        ]
        stream = listing.list_with_metadata(space.key("p", ""))
        first = await anext(stream)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        assert first.key in {space.key(k) for k in keys}

    # -- the optional get_at_most ---------------------------------------------------

    async def bounded_reads_of_two_objects(
        self, backend: MemoBackend, space: KeySpace
    ) -> tuple[ReadsBounded, dict[str, bytes]]:
        """The backend as a ReadsBounded, and the two objects stored for it to read."""
        reader: ReadsBounded = self.require_member(backend, ReadsBounded)
        # 70,000 bytes: more than one 64 KiB chunk of a streamed read.
        values = {space.key("small"): b"abc", space.key("chunks"): os.urandom(70_000)}
        await put_all(backend, values, concurrency=8)
        return reader, values

    async def test_get_at_most_returns_an_object_of_exactly_the_bound_whole(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        reader, values = await self.bounded_reads_of_two_objects(backend, space)
        for key, value in values.items():
            assert await reader.get_at_most(key, len(value)) == value
            assert await reader.get_at_most(key, len(value) + 1) == value
            assert await reader.get_at_most(key, 10 * len(value)) == value

    async def test_get_at_most_refuses_an_object_one_byte_over_the_bound(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        reader, values = await self.bounded_reads_of_two_objects(backend, space)
        for key, value in values.items():
            with pytest.raises(EntryTooLargeError):
                await reader.get_at_most(key, len(value) - 1)
            with pytest.raises(EntryTooLargeError):
                await reader.get_at_most(key, 0)
            # The refusal leaves the backend usable, and the object as it was.
            assert await reader.get_at_most(key, len(value)) == value

    async def test_get_at_most_of_a_missing_key_returns_none(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        reader: ReadsBounded = self.require_member(backend, ReadsBounded)
        assert await reader.get_at_most(space.key("missing"), 0) is None
        assert await reader.get_at_most(space.key("missing"), 1024) is None

    async def test_get_at_most_of_an_empty_object_returns_empty_bytes(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        reader: ReadsBounded = self.require_member(backend, ReadsBounded)
        await backend.put(space.key("empty"), b"")
        assert await reader.get_at_most(space.key("empty"), 0) == b""
        assert await reader.get_at_most(space.key("empty"), 1024) == b""

    async def test_get_at_most_writes_and_deletes_nothing(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        reader: ReadsBounded = self.require_member(backend, ReadsBounded)
        values = {space.key("kept"): b"four", space.key("empty"): b""}
        await put_all(backend, values, concurrency=8)
        for key in [*values, space.key("missing")]:
            for max_bytes in (0, 3, 4, 5):
                with contextlib.suppress(EntryTooLargeError):
                    await reader.get_at_most(key, max_bytes)
        assert byte_order(await space.listed(backend, space.prefix)) == byte_order(values)
        for key, value in values.items():
            assert await backend.get(key) == value

    @pytest.mark.parametrize(
        ("max_bytes", "error"),
        [(-1, InvalidArgumentError), ("10", InvalidValueTypeError), (True, InvalidValueTypeError)],
        ids=["negative", "str", "bool"],
    )
    async def test_get_at_most_refuses_a_bad_bound_before_any_io(
        self, backend: MemoBackend, space: KeySpace, max_bytes: object, error: type[Exception]
    ) -> None:
        reader: ReadsBounded = self.require_member(backend, ReadsBounded)
        await backend.put(space.key("k"), b"v")
        with pytest.raises(error):
            await reader.get_at_most(space.key("k"), max_bytes)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            await reader.get_at_most(b"bytes-key", 10)  # type: ignore[arg-type]

    # -- the optional get_in_thread -------------------------------------------------

    async def test_get_in_thread_reads_what_get_and_get_at_most_read(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        reader: ReadsInThread = self.require_member(backend, ReadsInThread)
        values = {space.key("small"): b"abc", space.key("chunks"): os.urandom(70_000)}
        values[space.key("empty")] = b""
        await put_all(backend, values, concurrency=8)
        for key, value in values.items():
            # From another thread than the loop's, as the sync API calls it.
            assert await asyncio.to_thread(reader.get_in_thread, key, None) == value
            assert await asyncio.to_thread(reader.get_in_thread, key, len(value)) == value
            assert await backend.get(key) == value
            if value:
                with pytest.raises(EntryTooLargeError):
                    await asyncio.to_thread(reader.get_in_thread, key, len(value) - 1)
        assert await asyncio.to_thread(reader.get_in_thread, space.key("missing"), None) is None
        assert await asyncio.to_thread(reader.get_in_thread, space.key("missing"), 0) is None
        with pytest.raises(InvalidValueTypeError):
            reader.get_in_thread(b"bytes-key", None)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            reader.get_in_thread(space.key("empty"), -1)

    # -- the optional after_fork ------------------------------------------------------

    async def test_after_fork_is_idempotent_and_leaves_the_backend_working(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # Every store over the backend calls the hook, and it must never close
        # what it replaces (a forked child's parent still uses it): so calling
        # it where the backend was built, twice, loses nothing and breaks nothing.
        hook: RebuildsAfterFork = self.require_member(backend, RebuildsAfterFork)
        await backend.put(space.key("before"), b"kept")
        hook.after_fork()
        hook.after_fork()
        assert await backend.get(space.key("before")) == b"kept"
        await backend.put(space.key("after"), b"new")
        assert await backend.get(space.key("after")) == b"new"
        listed = await space.listed(backend, space.prefix)
        assert byte_order(listed) == byte_order([space.key("after"), space.key("before")])
        await backend.delete(space.key("after"))
        assert await backend.get(space.key("after")) is None

    async def test_list_can_stop_early(self, backend: MemoBackend, space: KeySpace) -> None:
        keys = [space.key("early", str(i)) for i in range(5)]
        await put_all(backend, dict.fromkeys(keys, b""), concurrency=8)
        listing = backend.list(space.key("early", ""))
        first_two = [await anext(listing), await anext(listing)]
        aclose = getattr(listing, "aclose", None)
        if aclose is not None:
            await aclose()
        assert set(first_two) <= set(keys)
        if backend.capabilities.ordered_listing:
            assert first_two == byte_order(keys)[:2]
        # Abandoning a listing leaves the backend fully usable.
        assert byte_order(await space.listed(backend, space.key("early", ""))) == byte_order(keys)
        assert await backend.get(keys[0]) == b""

    # -- deletes -------------------------------------------------------------------

    async def test_delete_removes_the_key(self, backend: MemoBackend, space: KeySpace) -> None:
        await backend.put(space.key("k"), b"v")
        await backend.put(space.key("kept"), b"v")
        await backend.delete(space.key("k"))
        assert await backend.get(space.key("k")) is None
        assert await backend.get(space.key("kept")) == b"v"

    async def test_delete_of_a_missing_key_succeeds(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        await backend.delete(space.key("never-written"))
        await backend.put(space.key("k"), b"v")
        await backend.delete(space.key("k"))
        await backend.delete(space.key("k"))  # the retry of a crashed sweeper
        assert await backend.get(space.key("k")) is None

    async def test_delete_many_removes_every_key_and_ignores_missing_ones(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        present = [space.key("d", str(i)) for i in range(5)]
        missing = [space.key("d", f"missing-{i}") for i in range(3)]
        await put_all(backend, dict.fromkeys(present, b"x"), concurrency=8)
        await backend.put(space.key("kept"), b"v")
        await backend.delete_many([missing[0], *present[:3], missing[1], *present[3:], missing[2]])
        assert await space.listed(backend, space.prefix) == [space.key("kept")]
        await backend.delete_many(missing)  # nothing there at all
        await backend.delete_many(present)  # deleted twice

    async def test_delete_many_of_no_keys_does_nothing(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        await backend.put(space.key("kept"), b"v")
        await backend.delete_many([])
        assert await backend.get(space.key("kept")) == b"v"

    async def test_delete_many_accepts_more_keys_than_max_delete_batch(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        batch = backend.capabilities.max_delete_batch
        count = batch + 1
        if count > self.max_keys_written:
            pytest.skip(
                f"capability max_delete_batch={batch} needs {count} keys, "
                f"above max_keys_written={self.max_keys_written}"
            )
        keys = [space.key("batch", f"{i:05d}") for i in range(count)]
        await put_all(backend, dict.fromkeys(keys, b""), concurrency=self.write_concurrency)
        await backend.delete_many([*keys, space.key("batch", "missing")])
        assert await space.listed(backend, space.prefix) == []

    async def test_delete_many_reports_partial_failures(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        held = space.key("held")
        others = [space.key("a"), space.key("b")]
        await put_all(backend, dict.fromkeys([held, *others], b"v"), concurrency=8)
        async with contextlib.AsyncExitStack() as hold:
            try:
                await hold.enter_async_context(self.undeletable(backend, held))
            except NotImplementedError as exc:
                detail = f" ({exc})" if str(exc) else ""
                pytest.skip(
                    f"{type(self).__name__} does not implement the `undeletable` hook{detail}, "
                    "so a partial delete_many failure cannot be provoked"
                )
            with pytest.raises(DeleteManyError) as raised:
                await backend.delete_many([others[0], held, space.key("missing"), others[1]])
            assert set(raised.value.failures) == {held}
            assert isinstance(raised.value.failures[held], BackendError)
            # Every other key was attempted, and is gone.
            assert await space.listed(backend, space.prefix) == [held]

    # -- conditional puts ----------------------------------------------------------

    async def test_put_if_absent_writes_an_absent_key(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        await _put_if_absent(backend, space.key("k"), b"first", created=True, holds=b"first")
        await _put_if_absent(backend, space.key("empty"), b"", created=True, holds=b"")

    async def test_put_if_absent_keeps_an_existing_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        await backend.put(space.key("k"), b"original")
        await _put_if_absent(backend, space.key("k"), b"intruder", created=False, holds=b"original")
        await backend.put(space.key("empty"), b"")
        await _put_if_absent(backend, space.key("empty"), b"intruder", created=False, holds=b"")

    async def test_put_if_absent_of_a_large_value_is_still_conditional(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # SDKs switch to multipart or resumable uploads above a threshold,
        # and some stores drop the precondition on that path.
        self.require(backend, "conditional_put")
        value = os.urandom(self.large_value_bytes)
        await backend.put(space.key("small"), b"original")
        await _put_if_absent(backend, space.key("small"), value, created=False, holds=b"original")
        assert await backend.put(space.key("large"), value, if_absent=True) is True
        assert await backend.put(space.key("large"), b"intruder", if_absent=True) is False
        stored = await backend.get(space.key("large"))
        assert stored is not None
        assert (len(stored), sha256_hex(stored)) == (len(value), sha256_hex(value))

    async def test_put_if_absent_after_a_delete_writes_again(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        assert await backend.put(space.key("k"), b"one", if_absent=True) is True
        await backend.delete(space.key("k"))
        await _put_if_absent(backend, space.key("k"), b"two", created=True, holds=b"two")

    async def test_concurrent_put_if_absent_has_exactly_one_winner(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        for race in range(self.creation_races):
            key = space.key(f"race-{race}")
            values = [f"creator {i}".encode() for i in range(self.concurrent_creators)]
            created = await asyncio.gather(
                *(backend.put(key, value, if_absent=True) for value in values)
            )
            winners = [value for value, won in zip(values, created, strict=True) if won]
            assert len(winners) == 1, f"race {race}: {len(winners)} creators won"
            assert await backend.get(key) == winners[0], "the stored value is the winner's"

    async def test_put_if_absent_without_the_capability_raises_not_supported(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        if backend.capabilities.conditional_put:
            pytest.skip(
                f"{type(backend).__name__} declares capability conditional_put; "
                "this test is for backends without it"
            )
        with pytest.raises(NotSupportedError):
            await backend.put(space.key("k"), b"v", if_absent=True)
        assert await backend.get(space.key("k")) is None, "nothing was written"
        await backend.put(space.key("k"), b"original")
        with pytest.raises(NotSupportedError):
            await backend.put(space.key("k"), b"intruder", if_absent=True)
        assert await backend.get(space.key("k")) == b"original", "nothing was overwritten"
