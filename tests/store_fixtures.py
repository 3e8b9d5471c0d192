"""The ``store``, ``memo`` and ``sync_store`` fixtures: a MemoStore over the ``backend`` in scope.

A test that needs a store but does not care how it is built takes ``store``
(or ``memo``, the store's ``new_memo("run", 0)``; or ``sync_store``, the same
over :mod:`taquba_memo.sync`). The store is built over the ``backend`` fixture
nearest the test, so it runs on every backend a folder or module parametrizes
(``tests/core`` runs on the memory and the local backend); where no folder
defines one, ``backend`` is a fresh :class:`InMemoryBackend`. The store is
closed, and with it the backend, when the test ends.

The prefix is ``"memo"``; a test or module that needs another prefix or a
``max_value_bytes`` says so with the ``store`` marker::

    @pytest.mark.store(prefix="p", max_value_bytes=1024)
    async def test_reads_are_bounded(store: MemoStore) -> None: ...

A test of construction itself (arguments, wrappers, special backends) builds
its MemoStore by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from taquba_memo import InMemoryBackend, Memo, MemoBackend, MemoStore
from taquba_memo import sync as memo_sync

#: The prefix of a fixture store unless the ``store`` marker names another.
PREFIX = "memo"

STORE_MARKER = (
    "store(prefix='memo', max_value_bytes=None): options of the store fixtures' MemoStore"
)


def store_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``prefix`` and ``max_value_bytes`` from the nearest ``store`` marker, else the defaults."""
    marker = request.node.get_closest_marker("store")
    options: dict[str, Any] = {"prefix": PREFIX, "max_value_bytes": None}
    if marker is not None:
        unknown = set(marker.kwargs) - set(options)
        if marker.args or unknown:
            raise TypeError(f"the store marker takes prefix= and max_value_bytes= only: {marker}")
        options.update(marker.kwargs)
    return options


@pytest.fixture
def backend() -> MemoBackend:
    """A fresh in-memory backend; a folder or module that runs on other backends overrides it."""
    return InMemoryBackend()


@pytest.fixture
async def store(backend: MemoBackend, request: pytest.FixtureRequest) -> AsyncIterator[MemoStore]:
    """A MemoStore over the ``backend`` in scope, closed when the test ends."""
    options = store_options(request)
    opened = MemoStore(backend, options["prefix"], max_value_bytes=options["max_value_bytes"])
    yield opened
    await opened.aclose()


@pytest.fixture
def memo(store: MemoStore) -> Memo:
    """Step 0 of run ``"run"`` in the ``store`` fixture."""
    return store.new_memo("run", 0)


@pytest.fixture
def sync_store(
    backend: MemoBackend, request: pytest.FixtureRequest
) -> Iterator[memo_sync.MemoStore]:
    """The ``store`` fixture's twin over :mod:`taquba_memo.sync`, closed when the test ends."""
    options = store_options(request)
    with memo_sync.MemoStore(
        backend, options["prefix"], max_value_bytes=options["max_value_bytes"]
    ) as opened:
        yield opened
