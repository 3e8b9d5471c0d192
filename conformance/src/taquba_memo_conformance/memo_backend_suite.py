"""The test module that ``pytest --memo-backend=MODULE:FACTORY`` collects.

The plugin adds this file to the paths pytest collects when the option is
given; it runs the whole conformance suite against the factory's backend.
It has no hooks (``undeletable``) and no ``expected_failures``: for those,
subclass :class:`~taquba_memo_conformance.MemoBackendConformance` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from taquba_memo import MemoBackend

from taquba_memo_conformance.backend_factory import build_backend, factory_fixture_names
from taquba_memo_conformance.plugin import FACTORY_KEY
from taquba_memo_conformance.suite import MemoBackendConformance


class TestMemoBackend(MemoBackendConformance):
    """The suite, against the backend ``--memo-backend`` names."""

    @pytest.fixture
    def memo_backend_factory_arguments(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        # Fixtures are resolved here, outside the event loop, so that a
        # factory may also ask for fixtures that run a loop of their own.
        factory = request.config.stash.get(FACTORY_KEY, None)
        if factory is None:
            pytest.skip("no --memo-backend=MODULE:FACTORY was given")
        return {name: request.getfixturevalue(name) for name in factory_fixture_names(factory)}

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(
        self, request: pytest.FixtureRequest, memo_backend_factory_arguments: dict[str, Any]
    ) -> AsyncIterator[MemoBackend]:
        factory = request.config.stash[FACTORY_KEY]
        backend = await build_backend(factory, memo_backend_factory_arguments)
        try:
            yield backend
        finally:
            await backend.aclose()
