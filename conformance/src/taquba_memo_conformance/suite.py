"""MemoBackendConformance: the test class every MemoBackend must pass.

Subclass it in a test module and override the ``backend`` fixture::

    import pytest_asyncio
    from taquba_memo_conformance import MemoBackendConformance

    class TestMyBackend(MemoBackendConformance):
        @pytest_asyncio.fixture
        async def backend(self):
            async with MyBackend(...) as backend:
                yield backend

Every test then runs against that backend: the MemoBackend contract (reads,
writes, listing, deletes, conditional puts, input checks), the MemoStore
behaviour of the reference implementation over it, and a Hypothesis state
machine compared with a dict.

How the suite treats a backend:

* Every test writes below a fresh ``<namespace_root>/<12 hex>/`` prefix and
  deletes what it wrote when it ends, so a shared bucket is fine.
* Capabilities are verified, not trusted: a declared ``ordered_listing`` is
  checked across page boundaries, a declared ``conditional_put`` against
  concurrent creators. A test that needs a capability the backend does not
  declare is *skipped*, and the reason names the capability.
* ``expected_failures`` turns named tests into strict xfails for one
  subclass: the documented gap of one emulator, never a general excuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import random
import warnings
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from taquba_memo import (
    BackendError,
    Capabilities,
    DeleteManyError,
    InvalidValueType,
    ListedObject,
    MemoBackend,
    MemoStore,
    NotSupported,
    TerminalMarker,
)
from taquba_memo.backend import ListsMetadata, lists_metadata

from taquba_memo_conformance.exact_prefix import ExactPrefixTests
from taquba_memo_conformance.keyspace import (
    KeySpace,
    byte_order,
    collect,
    put_all,
    sha256_hex,
)
from taquba_memo_conformance.statemachine import run_backend_state_machine

__all__ = ["AWKWARD_KEYS", "CleanupWarning", "MemoBackendConformance"]

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

_ASYNC_TEST = pytest.mark.asyncio(loop_scope="function")


class CleanupWarning(UserWarning):
    """A test could not delete what it wrote below its key space."""


class MemoBackendConformance(ExactPrefixTests):
    """Base class of the conformance suite; subclass it and override ``backend``.

    Class attributes tune the suite for one backend. Hooks (methods that
    raise ``NotImplementedError`` here) let a subclass provoke situations the
    suite cannot provoke through the protocol alone; a test whose hook is
    missing is skipped, with the hook's name in the reason.
    """

    expected_failures: ClassVar[dict[str, str]] = {}
    """Test name -> reason. Each named test becomes a strict xfail for this
    subclass only: it must fail (an unexpected pass fails the run, so a fixed
    gap is noticed). A name may include a parameter id,
    ``"test_awkward_key_round_trips[emoji]"``. Use it only for a documented
    gap of a specific emulator, and say which in the reason."""

    namespace_root: ClassVar[str] = "taquba-memo-conformance"
    """Every test writes below ``<namespace_root>/<12 hex>/``. Change it if
    your credentials may only write below some other prefix."""

    page_boundary_keys: ClassVar[int] = 1001
    """How many keys the page-boundary listing tests write. It must exceed
    the backend's listing page size (1000 on S3 and GCS); an adapter whose
    page size is configurable should set a small one in its fixture rather
    than raise this number, which keeps the test fast on emulators."""

    write_concurrency: ClassVar[int] = 32
    metadata_clock_slack_s: ClassVar[float] = 120.0
    """How far a ``list_with_metadata`` time may be from this machine's clock
    around the write (the store's clock, and times kept to the second)."""
    """Most puts in flight when a test writes many keys. Bounded so that
    remote emulators are not flooded."""

    large_value_bytes: ClassVar[int] = 20 * 1024 * 1024 + 7
    """Size of the large-value test: above the multipart thresholds of the
    S3, GCS and Azure SDKs (8-16 MiB), and not a multiple of any part size."""

    concurrent_creators: ClassVar[int] = 16
    """How many tasks race to create one key with ``put(if_absent=True)``."""

    creation_races: ClassVar[int] = 3
    """How many keys are raced for, one after another."""

    max_keys_written: ClassVar[int] = 5000
    """Upper bound of keys one test writes. The over-batch ``delete_many``
    test writes ``max_delete_batch + 1`` keys and is skipped above this."""

    state_machine_settings: ClassVar[settings] = settings(
        max_examples=25,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    """Hypothesis settings of the state machine test. Modest by default so
    that remote emulators stay fast; raise ``max_examples`` for a soak run."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = sorted(
            name
            for name in cls.expected_failures
            if not name.split("[", 1)[0].startswith("test_")
            or not callable(getattr(cls, name.split("[", 1)[0], None))
        )
        if unknown:
            raise TypeError(
                f"{cls.__name__}.expected_failures names tests that do not exist: {unknown}"
            )

    # -- fixtures and hooks ---------------------------------------------------

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self, *args: Any, **kwargs: Any) -> AsyncIterator[MemoBackend]:
        """A fresh backend for one test; override it, and close the backend after.

        It exists so the suite never has to know how to build a backend:
        credentials, endpoints, buckets and temporary directories belong to
        the subclass, which may request any fixture it needs
        (``async def backend(self, tmp_path)``). The suite writes only
        below a unique prefix, so the backend may point at a shared bucket.
        Decorate the override with ``@pytest_asyncio.fixture``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override the `backend` fixture "
            "(an @pytest_asyncio.fixture that yields a MemoBackend)"
        )
        yield  # pragma: no cover  (makes this an async generator, like overrides)

    @pytest_asyncio.fixture(loop_scope="function")
    async def space(self, backend: MemoBackend) -> AsyncIterator[KeySpace]:
        """The unique prefix of one test; emptied when the test ends.

        Cleanup failures become a :class:`CleanupWarning` rather than an
        error, so that a broken backend reports its real failure first.
        """
        space = KeySpace.fresh(self.namespace_root)
        yield space
        try:
            await space.delete_everything(backend)
        except Exception as exc:
            warnings.warn(
                CleanupWarning(f"could not delete the keys below {space.prefix!r}: {exc!r}"),
                stacklevel=1,
            )

    def undeletable(self, backend: MemoBackend, key: str) -> AbstractAsyncContextManager[None]:
        """Hook: make deleting ``key`` fail until the returned context exits.

        It exists because partial ``delete_many`` failures cannot be caused
        through the protocol itself, yet reporting them is part of the
        contract (a sweep must not believe a run is gone when it is not).
        Implement it with whatever the store offers, for example a lease on
        an Azure blob, a hold on a GCS object, an immutable file on a local
        file system. The key exists when the hook is called. Without it,
        ``test_delete_many_reports_partial_failures`` is skipped.
        """
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------

    @staticmethod
    def require(backend: MemoBackend, capability: str) -> Capabilities:
        """Skip the test unless the backend declares ``capability``."""
        capabilities = backend.capabilities
        if not getattr(capabilities, capability):
            pytest.skip(f"{type(backend).__name__} does not declare capability {capability}")
        return capabilities

    # -- the protocol itself ------------------------------------------------------

    @_ASYNC_TEST
    async def test_backend_implements_the_protocol(self, backend: MemoBackend) -> None:
        assert isinstance(backend, MemoBackend)
        capabilities = backend.capabilities
        assert isinstance(capabilities, Capabilities)
        assert capabilities == backend.capabilities, "capabilities must be constant"
        assert isinstance(capabilities.max_delete_batch, int)
        assert capabilities.max_delete_batch >= 1

    @_ASYNC_TEST
    async def test_closing_twice_is_harmless(self, backend: MemoBackend) -> None:
        # No key space: nothing is written, and nothing is cleaned up after
        # the close. The fixture's own teardown then closes it once more.
        await backend.aclose()
        await backend.aclose()

    @_ASYNC_TEST
    async def test_async_with_returns_the_backend(self, backend: MemoBackend) -> None:
        # The protocol does not require a context manager (MemoBackendBase
        # gives one); a backend that offers it must return itself.
        if not hasattr(backend, "__aenter__"):
            pytest.skip(f"{type(backend).__name__} is not an async context manager (optional)")
        async with backend as entered:  # type: ignore[attr-defined]
            assert entered is backend

    # -- reads and writes ----------------------------------------------------------

    @_ASYNC_TEST
    async def test_get_of_a_missing_key_returns_none(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await backend.get(space.key("missing")) is None

    @_ASYNC_TEST
    async def test_put_returns_true_and_get_returns_the_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await backend.put(space.key("k"), b"hello") is True
        assert await backend.get(space.key("k")) == b"hello"

    @_ASYNC_TEST
    async def test_put_overwrites_an_existing_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await backend.put(space.key("k"), b"first") is True
        assert await backend.put(space.key("k"), b"second, and longer") is True
        assert await backend.get(space.key("k")) == b"second, and longer"
        assert await backend.put(space.key("k"), b"3") is True
        assert await backend.get(space.key("k")) == b"3", "a shorter value leaves no tail"

    @_ASYNC_TEST
    async def test_empty_value_round_trips(self, backend: MemoBackend, space: KeySpace) -> None:
        # Terminal markers are zero-byte objects: empty must read as b"", not None.
        assert await backend.put(space.key("empty"), b"") is True
        assert await backend.get(space.key("empty")) == b""
        assert await space.listed(backend, space.prefix) == [space.key("empty")]

    @_ASYNC_TEST
    async def test_every_byte_value_round_trips(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        every_byte = bytes(range(256))
        await backend.put(space.key("bytes"), every_byte)
        assert await backend.get(space.key("bytes")) == every_byte
        reversed_bytes = every_byte[::-1] * 3
        await backend.put(space.key("bytes"), reversed_bytes)
        assert await backend.get(space.key("bytes")) == reversed_bytes

    @_ASYNC_TEST
    async def test_large_value_round_trips(self, backend: MemoBackend, space: KeySpace) -> None:
        # Compared by hash: a 20 MiB assertion diff would drown the report.
        value = os.urandom(self.large_value_bytes)
        await backend.put(space.key("large"), value)
        stored = await backend.get(space.key("large"))
        assert stored is not None
        assert (len(stored), sha256_hex(stored)) == (len(value), sha256_hex(value))

    @pytest.mark.parametrize("name", list(AWKWARD_KEYS))
    @_ASYNC_TEST
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

    @_ASYNC_TEST
    async def test_a_str_value_is_refused_before_anything_is_written(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        with pytest.raises(InvalidValueType):
            await backend.put(space.key("k"), "text is not bytes")  # type: ignore[arg-type]
        assert await backend.get(space.key("k")) is None
        if backend.capabilities.conditional_put:
            with pytest.raises(InvalidValueType):
                await backend.put(space.key("k"), "text", if_absent=True)  # type: ignore[arg-type]
            assert await backend.get(space.key("k")) is None

    @_ASYNC_TEST
    async def test_a_non_str_key_is_refused_before_any_io(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        await backend.put(space.key("kept"), b"v")
        with pytest.raises(InvalidValueType):
            await backend.put(42, b"v")  # type: ignore[arg-type]
        with pytest.raises(InvalidValueType):
            await backend.put(space.key("kept").encode(), b"v")  # type: ignore[arg-type]
        with pytest.raises(InvalidValueType):
            await backend.get(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueType):
            await backend.delete(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueType):
            await backend.delete_many([space.key("kept"), 42])  # type: ignore[list-item]
        with pytest.raises(InvalidValueType):
            await collect(backend.list(42))  # type: ignore[arg-type]
        # The valid key in the refused delete_many was not deleted either.
        assert await backend.get(space.key("kept")) == b"v"
        assert await space.listed(backend, space.prefix) == [space.key("kept")]

    # -- listing -------------------------------------------------------------------

    @_ASYNC_TEST
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

    @_ASYNC_TEST
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

    @_ASYNC_TEST
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

    @_ASYNC_TEST
    async def test_list_returns_every_key_across_page_boundaries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        keys = [space.key("many", f"{i:05d}") for i in range(self.page_boundary_keys)]
        await put_all(backend, dict.fromkeys(keys, b""), concurrency=self.write_concurrency)
        listed = await space.listed(backend, space.key("many", ""))
        missing = sorted(set(keys) - set(listed))
        assert missing == [], f"{len(missing)} key(s) missing from the listing"
        assert len(listed) == len(keys), "the listing repeated keys"

    @_ASYNC_TEST
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

    @staticmethod
    def require_metadata_listing(backend: MemoBackend) -> ListsMetadata:
        """Skip the test unless the backend offers the optional ``list_with_metadata``."""
        if not lists_metadata(backend):
            pytest.skip(
                f"{type(backend).__name__} has no list_with_metadata (optional: "
                "its listing does not carry sizes)"
            )
        assert isinstance(backend, ListsMetadata)
        return backend

    @_ASYNC_TEST
    async def test_list_with_metadata_reports_the_true_size_and_time_of_each_key(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        listing = self.require_metadata_listing(backend)
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

    @_ASYNC_TEST
    async def test_list_with_metadata_matches_the_raw_prefix_and_can_stop_early(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        listing = self.require_metadata_listing(backend)
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

    @_ASYNC_TEST
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

    @_ASYNC_TEST
    async def test_delete_removes_the_key(self, backend: MemoBackend, space: KeySpace) -> None:
        await backend.put(space.key("k"), b"v")
        await backend.put(space.key("kept"), b"v")
        await backend.delete(space.key("k"))
        assert await backend.get(space.key("k")) is None
        assert await backend.get(space.key("kept")) == b"v"

    @_ASYNC_TEST
    async def test_delete_of_a_missing_key_succeeds(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        await backend.delete(space.key("never-written"))
        await backend.put(space.key("k"), b"v")
        await backend.delete(space.key("k"))
        await backend.delete(space.key("k"))  # the retry of a crashed sweeper
        assert await backend.get(space.key("k")) is None

    @_ASYNC_TEST
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

    @_ASYNC_TEST
    async def test_delete_many_of_no_keys_does_nothing(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        await backend.put(space.key("kept"), b"v")
        await backend.delete_many([])
        assert await backend.get(space.key("kept")) == b"v"

    @_ASYNC_TEST
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

    @_ASYNC_TEST
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

    @_ASYNC_TEST
    async def test_put_if_absent_writes_an_absent_key(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        assert await backend.put(space.key("k"), b"first", if_absent=True) is True
        assert await backend.get(space.key("k")) == b"first"
        assert await backend.put(space.key("empty"), b"", if_absent=True) is True
        assert await backend.get(space.key("empty")) == b""

    @_ASYNC_TEST
    async def test_put_if_absent_keeps_an_existing_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        await backend.put(space.key("k"), b"original")
        assert await backend.put(space.key("k"), b"intruder", if_absent=True) is False
        assert await backend.get(space.key("k")) == b"original"
        await backend.put(space.key("empty"), b"")
        assert await backend.put(space.key("empty"), b"intruder", if_absent=True) is False
        assert await backend.get(space.key("empty")) == b""

    @_ASYNC_TEST
    async def test_put_if_absent_of_a_large_value_is_still_conditional(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # SDKs switch to multipart or resumable uploads above a threshold,
        # and some stores drop the precondition on that path.
        self.require(backend, "conditional_put")
        value = os.urandom(self.large_value_bytes)
        await backend.put(space.key("small"), b"original")
        assert await backend.put(space.key("small"), value, if_absent=True) is False
        assert await backend.get(space.key("small")) == b"original"
        assert await backend.put(space.key("large"), value, if_absent=True) is True
        assert await backend.put(space.key("large"), b"intruder", if_absent=True) is False
        stored = await backend.get(space.key("large"))
        assert stored is not None
        assert (len(stored), sha256_hex(stored)) == (len(value), sha256_hex(value))

    @_ASYNC_TEST
    async def test_put_if_absent_after_a_delete_writes_again(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        assert await backend.put(space.key("k"), b"one", if_absent=True) is True
        await backend.delete(space.key("k"))
        assert await backend.put(space.key("k"), b"two", if_absent=True) is True
        assert await backend.get(space.key("k")) == b"two"

    @_ASYNC_TEST
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

    @_ASYNC_TEST
    async def test_put_if_absent_without_the_capability_raises_not_supported(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        if backend.capabilities.conditional_put:
            pytest.skip(
                f"{type(backend).__name__} declares capability conditional_put; "
                "this test is for backends without it"
            )
        with pytest.raises(NotSupported):
            await backend.put(space.key("k"), b"v", if_absent=True)
        assert await backend.get(space.key("k")) is None, "nothing was written"
        await backend.put(space.key("k"), b"original")
        with pytest.raises(NotSupported):
            await backend.put(space.key("k"), b"intruder", if_absent=True)
        assert await backend.get(space.key("k")) == b"original", "nothing was overwritten"

    # -- a random walk against a dict ------------------------------------------------

    @_ASYNC_TEST
    async def test_state_machine_agrees_with_a_dict(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # The machine runs on a worker thread and sends each call back to
        # this loop, where the backend lives (see statemachine.py).
        await asyncio.to_thread(
            run_backend_state_machine,
            backend,
            space.key("machine"),
            asyncio.get_running_loop(),
            self.state_machine_settings,
        )

    # -- MemoStore over this backend: the reference's tests ----------------------------

    @_ASYNC_TEST
    async def test_store_get_returns_none_for_missing_key(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        memo = MemoStore(backend, space.root).new_memo("run-1", 0)
        assert await memo.get("missing") is None

    @_ASYNC_TEST
    async def test_store_put_then_get_round_trips(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        memo = MemoStore(backend, space.root).new_memo("run-1", 0)
        await memo.put("k", b"hello")
        assert await memo.get("k") == b"hello"

    @_ASYNC_TEST
    async def test_store_put_overwrites_prior_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        memo = MemoStore(backend, space.root).new_memo("run-1", 0)
        await memo.put("k", b"first")
        await memo.put("k", b"second")
        assert await memo.get("k") == b"second"

    @_ASYNC_TEST
    async def test_store_run_id_namespaces_are_isolated(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        in_run_a, in_run_b = store.new_memo("run-a", 0), store.new_memo("run-b", 0)
        await in_run_a.put("k", b"value-a")
        await in_run_b.put("k", b"value-b")
        assert await in_run_a.get("k") == b"value-a"
        assert await in_run_b.get("k") == b"value-b"

    @_ASYNC_TEST
    async def test_store_step_number_namespaces_are_isolated(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        at_step_0, at_step_1 = store.new_memo("run-1", 0), store.new_memo("run-1", 1)
        await at_step_0.put("k", b"step-0")
        await at_step_1.put("k", b"step-1")
        assert await at_step_0.get("k") == b"step-0"
        assert await at_step_1.get("k") == b"step-1"

    @_ASYNC_TEST
    async def test_store_distinct_user_keys_map_to_distinct_entries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        memo = MemoStore(backend, space.root).new_memo("run-1", 0)
        await memo.put("k1", b"one")
        await memo.put("k2", b"two")
        assert await memo.get("k1") == b"one"
        assert await memo.get("k2") == b"two"

    @_ASYNC_TEST
    async def test_store_awkward_user_keys_round_trip(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # User keys are hashed before they become a path segment, so "/",
        # spaces, non-ASCII and 10,000 characters are all fine.
        memo = MemoStore(backend, space.root).new_memo("run-1", 0)
        for i, key in enumerate(["", "with/slash", "with spaces", "üñíçødé", "a" * 10_000]):
            expected = f"v{i}".encode()
            await memo.put(key, expected)
            assert await memo.get(key) == expected, f"user key #{i}"

    @_ASYNC_TEST
    async def test_store_empty_value_round_trips(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        memo = MemoStore(backend, space.root).new_memo("run-1", 0)
        await memo.put("k", b"")
        assert await memo.get("k") == b""

    @_ASYNC_TEST
    async def test_store_instances_sharing_a_backing_store_see_the_same_entries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # The storage is the source of truth, not any in-memory state.
        writer = MemoStore(backend, space.root).new_memo("run-1", 0)
        reader = MemoStore(backend, space.root).new_memo("run-1", 0)
        await writer.put("k", b"shared")
        assert await reader.get("k") == b"shared"

    @_ASYNC_TEST
    async def test_store_clear_memos_for_run_removes_only_that_runs_entries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        in_run_a, in_run_a_step1 = store.new_memo("run-a", 0), store.new_memo("run-a", 1)
        in_run_b = store.new_memo("run-b", 0)
        await in_run_a.put("k", b"a-0")
        await in_run_a_step1.put("k", b"a-1")
        await in_run_b.put("k", b"b-0")
        assert await store.clear_memos_for_run("run-a") == 2
        assert await in_run_a.get("k") is None
        assert await in_run_a_step1.get("k") is None
        assert await in_run_b.get("k") == b"b-0"

    @_ASYNC_TEST
    async def test_store_clear_memos_for_run_returns_zero_when_nothing_to_delete(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        assert await store.clear_memos_for_run("run-with-no-memos") == 0

    @_ASYNC_TEST
    async def test_store_clear_memos_for_run_does_not_match_run_id_as_prefix(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.new_memo("run", 0).put("k", b"short")
        await store.new_memo("run-suffix", 0).put("k", b"long")
        assert await store.clear_memos_for_run("run") == 1
        assert await store.new_memo("run-suffix", 0).get("k") == b"long"

    @_ASYNC_TEST
    async def test_store_write_terminal_marker_then_list_returns_it(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.write_terminal_marker("run-1", 1_700_000_000_000)
        assert await store.list_terminal_markers() == [TerminalMarker("run-1", 1_700_000_000_000)]

    @_ASYNC_TEST
    async def test_store_list_terminal_markers_is_empty_when_none_written(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        assert await MemoStore(backend, space.root).list_terminal_markers() == []

    @_ASYNC_TEST
    async def test_store_list_terminal_markers_returns_all(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.write_terminal_marker("run-a", 1_000)
        await store.write_terminal_marker("run-b", 2_000)
        await store.write_terminal_marker("run-c", 3_000)
        assert sorted(await store.list_terminal_markers()) == [
            TerminalMarker("run-a", 1_000),
            TerminalMarker("run-b", 2_000),
            TerminalMarker("run-c", 3_000),
        ]

    @_ASYNC_TEST
    async def test_store_delete_terminal_marker_removes_only_the_named_one(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.write_terminal_marker("run-a", 1_000)
        await store.write_terminal_marker("run-b", 2_000)
        await store.delete_terminal_marker(TerminalMarker("run-a", 1_000))
        assert await store.list_terminal_markers() == [TerminalMarker("run-b", 2_000)]

    @_ASYNC_TEST
    async def test_store_delete_terminal_marker_succeeds_on_missing(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.delete_terminal_marker(TerminalMarker("nope", 1_000))

    @_ASYNC_TEST
    async def test_store_delete_terminal_marker_is_idempotent(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # A second delete is the path a crash-and-retry sweeper takes.
        store = MemoStore(backend, space.root)
        marker = TerminalMarker("run-1", 1_000)
        await store.write_terminal_marker(marker.run_id, marker.terminal_at_ms)
        await store.delete_terminal_marker(marker)
        await store.delete_terminal_marker(marker)
        assert await store.list_terminal_markers() == []

    @_ASYNC_TEST
    async def test_store_terminal_markers_and_memos_do_not_collide(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.new_memo("run-1", 0).put("k", b"v")
        await store.write_terminal_marker("run-1", 1_000)
        # The memo survives terminal marking.
        assert await store.new_memo("run-1", 0).get("k") == b"v"
        # The marker survives memo writes, and clearing the run's memos.
        assert len(await store.list_terminal_markers()) == 1
        await store.clear_memos_for_run("run-1")
        assert await store.list_terminal_markers() == [TerminalMarker("run-1", 1_000)]
        # Run ids named like the layout's folders stay inside their run.
        await store.new_memo("terminals", 0).put("k", b"t")
        await store.new_memo("memos", 0).put("k", b"m")
        assert await store.list_terminal_markers() == [TerminalMarker("run-1", 1_000)]
        assert await store.new_memo("terminals", 0).get("k") == b"t"

    # -- MemoStore: layout, expiry and sweeping ------------------------------------

    @_ASYNC_TEST
    async def test_store_writes_the_reference_object_layout(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # Byte-identical with taquba-workflow 0.5.0, so Rust and Python
        # workers can share a bucket. Spelled out here, not taken from
        # taquba_memo.layout, so the check is independent of it.
        store = MemoStore(backend, space.root)
        await store.new_memo("run-1", 7).put("k", b"value")
        await store.write_terminal_marker("run-1", 1_700_000_000_000)
        memo_key = f"{space.root}/memos/run-1/7/{sha256_hex(b'k')}"
        marker_key = f"{space.root}/terminals/00000001700000000000_run-1"
        assert byte_order(await space.listed(backend, space.prefix)) == [memo_key, marker_key]
        assert await backend.get(memo_key) == b"value"
        assert await backend.get(marker_key) == b"", "a terminal marker has zero bytes"

    @_ASYNC_TEST
    async def test_store_reads_entries_written_in_the_reference_layout(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # What a Rust worker wrote, as raw objects, is what a Python reader finds.
        await backend.put(f"{space.root}/memos/run-9/3/{sha256_hex('ключ'.encode())}", b"rust")
        await backend.put(f"{space.root}/terminals/00000000000000004242_run-9", b"")
        store = MemoStore(backend, space.root)
        assert await store.new_memo("run-9", 3).get("ключ") == b"rust"
        assert await store.list_terminal_markers() == [TerminalMarker("run-9", 4242)]

    @_ASYNC_TEST
    async def test_store_lists_terminal_markers_chronologically(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "ordered_listing")
        store = MemoStore(backend, space.root)
        for run_id, at in [("late", 100), ("early", 9), ("middle", 10)]:
            await store.write_terminal_marker(run_id, at)
        # Zero-padded timestamps: byte order is time order.
        assert [m.run_id for m in await store.list_terminal_markers()] == [
            "early",
            "middle",
            "late",
        ]

    @_ASYNC_TEST
    async def test_store_lists_expired_terminal_markers(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        for run_id, at in [("run-a", 1_000), ("run-b", 2_000), ("run-c", 3_000)]:
            await store.write_terminal_marker(run_id, at)
        assert await store.list_expired_terminal_markers(0) == []
        assert await store.list_expired_terminal_markers(1_000) == []
        assert await store.list_expired_terminal_markers(2_000) == [TerminalMarker("run-a", 1_000)]
        everything = await store.list_expired_terminal_markers(10**15)
        assert sorted(everything) == [
            TerminalMarker("run-a", 1_000),
            TerminalMarker("run-b", 2_000),
            TerminalMarker("run-c", 3_000),
        ]

    @_ASYNC_TEST
    async def test_store_sweep_clears_only_expired_runs(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.new_memo("run-a", 0).put("k", b"a-0")
        await store.new_memo("run-a", 1).put("k", b"a-1")
        await store.new_memo("run-b", 0).put("k", b"b-0")
        await store.new_memo("run-c", 0).put("k", b"c-0")  # no marker: still running
        await store.write_terminal_marker("run-a", 1_000)
        await store.write_terminal_marker("run-b", 5_000)

        report = await store.sweep(2_000)

        assert report.ok
        assert report.runs_cleared == ["run-a"]
        assert report.entries_deleted == 2
        assert await store.new_memo("run-a", 0).get("k") is None
        assert await store.new_memo("run-a", 1).get("k") is None
        assert await store.new_memo("run-b", 0).get("k") == b"b-0"
        assert await store.new_memo("run-c", 0).get("k") == b"c-0"
        assert await store.list_terminal_markers() == [TerminalMarker("run-b", 5_000)]

    @_ASYNC_TEST
    async def test_store_sweep_dry_run_deletes_nothing(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        store = MemoStore(backend, space.root)
        await store.new_memo("run-a", 0).put("k", b"a-0")
        await store.write_terminal_marker("run-a", 1_000)
        before = byte_order(await space.listed(backend, space.prefix))

        report = await store.sweep(2_000, dry_run=True)

        assert (report.runs_cleared, report.entries_deleted) == (["run-a"], 0)
        assert byte_order(await space.listed(backend, space.prefix)) == before

    @_ASYNC_TEST
    async def test_store_put_if_absent_keeps_the_first_value(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require(backend, "conditional_put")
        memo = MemoStore(backend, space.root).new_memo("run-1", 0)
        assert await memo.put("k", b"first", if_absent=True) is True
        assert await memo.put("k", b"second", if_absent=True) is False
        assert await memo.get("k") == b"first"
