"""SuiteBase: the settings, fixtures and hooks that every part of the conformance suite shares.

The suite is split by concern (the protocol, exact prefixes, MemoStore on
top, the state machine); each part is a mixin of this base, and
:class:`~taquba_memo_conformance.MemoBackendConformance` combines them. A
subclass overrides the ``backend`` fixture and, optionally, hooks and
settings here.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, TypeVar

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from taquba_memo import MemoBackend, MemoStore
from taquba_memo.backend import Capabilities, member_name, offers

from taquba_memo_conformance.keyspace import KeySpace

__all__ = ["CleanupWarning", "SuiteBase", "in_every_layout"]

_Test = TypeVar("_Test", bound=Callable[..., Any])
IN_EVERY_LAYOUT = "_taquba_memo_in_every_layout"


def in_every_layout(test: _Test) -> _Test:
    """Mark a test whose behaviour depends on the object layout: it runs once per
    entry of the class's ``layouts``, with the ``layout`` fixture set to it."""
    setattr(test, IN_EVERY_LAYOUT, True)
    return test


class CleanupWarning(UserWarning):
    """A test could not delete what it wrote below its key space."""


class SuiteBase:
    """Settings, fixtures and hooks of the suite; see ``MemoBackendConformance``."""

    # One mark for every test of the suite, in pytest-asyncio's strict and auto modes.
    pytestmark = pytest.mark.asyncio(loop_scope="function")

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
    """Most puts in flight when a test writes many keys. Bounded so that
    remote emulators are not flooded."""

    metadata_clock_slack_s: ClassVar[float] = 120.0
    """How far a ``list_with_metadata`` time may be from this machine's clock
    around the write (the store's clock, and times kept to the second)."""

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

    layouts: ClassVar[tuple[str, ...]] = ("0.5", "0.10")
    """The object layouts (``MemoStore(layout=...)``) the layout-dependent
    MemoStore tests run in: markers, expiry, sweeps, run clears, the object
    names and content keys, each once per layout (``[layout-0.5]``,
    ``[layout-0.10]``). The other tests write memo entries only, named alike
    in both layouts, and run once, in ``"0.5"``. Set ``("0.5",)`` if your
    fleet will never share a bucket with taquba-workflow 0.6.0 to 0.10.0."""

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

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run each test marked :func:`in_every_layout` once per entry of ``layouts``."""
        if getattr(metafunc.function, IN_EVERY_LAYOUT, False):
            ids = [f"layout-{value}" for value in self.layouts]
            metafunc.parametrize("layout", self.layouts, ids=ids)

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

    @pytest.fixture
    def layout(self) -> str:
        """The store's object layout: ``"0.5"``, or each of ``layouts`` for a test
        marked :func:`in_every_layout`."""
        return "0.5"

    @pytest.fixture
    def store(self, backend: MemoBackend, space: KeySpace, layout: str) -> MemoStore:
        """A MemoStore over the test's backend, with the test's key space as its prefix."""
        return MemoStore(backend, space.root, layout=layout)

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

    @staticmethod
    def require_member(backend: MemoBackend, protocol: type) -> Any:
        """Skip the test unless the backend offers the optional member ``protocol``; return it.

        ``protocol`` is one of ``taquba_memo.backend.OPTIONAL_MEMBERS`` (its
        docstring says what the core does for a backend without it). Annotate
        the result with it: ``reader: ReadsBounded = self.require_member(...)``.
        """
        if not offers(backend, protocol):
            pytest.skip(
                f"{type(backend).__name__} does not offer the optional {member_name(protocol)} "
                f"(taquba_memo.backend.{protocol.__name__})"
            )
        return backend
