"""The pytest plugin of taquba-memo-conformance (registered under ``pytest11``).

It is loaded automatically wherever the distribution is installed, and does
two things:

* ``--memo-backend=MODULE:FACTORY`` runs the whole conformance suite against
  the backend that factory returns, with no test file to write: the plugin
  adds the packaged module :mod:`taquba_memo_conformance.memo_backend_suite`
  to the paths pytest collects. Without other path arguments only the suite
  runs; paths given on the command line are collected as well.
* ``expected_failures`` of a :class:`MemoBackendConformance` subclass become
  strict xfail marks on that subclass's tests, at collection time.

The session fixtures of the local storage servers are a plugin of their own,
:mod:`taquba_memo_conformance.servers_plugin`, registered only when asked for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from taquba_memo_conformance.backend_factory import BackendFactory, resolve_factory

__all__ = ["FACTORY_KEY"]

FACTORY_KEY = pytest.StashKey[BackendFactory]()
"""Where the resolved ``--memo-backend`` factory is kept on ``config.stash``."""

SUITE_MODULE = Path(__file__).with_name("memo_backend_suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taquba-memo", "taquba-memo conformance")
    group.addoption(
        "--memo-backend",
        metavar="MODULE:FACTORY",
        default=None,
        help=(
            "run the taquba-memo conformance suite against the MemoBackend that "
            "FACTORY returns (sync or async; its parameters are fixtures)"
        ),
    )


_LOOP_SCOPE_OPTION = "asyncio_default_fixture_loop_scope"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    spec: str | None = config.getoption("memo_backend")
    if not spec:
        return
    # Every fixture and test of the suite names its loop scope, so the default
    # matters to no test here; setting it spares the user pytest-asyncio's
    # "unset" warning in a run that has no configuration of its own. pytest
    # has no public way to default another plugin's option, hence the cache.
    if config.getini(_LOOP_SCOPE_OPTION) is None:
        config._inicache[_LOOP_SCOPE_OPTION] = "function"
    config.stash[FACTORY_KEY] = resolve_factory(spec, config.invocation_params.dir)
    suite = str(SUITE_MODULE)
    if config.args_source is pytest.Config.ArgsSource.ARGS and config.args:
        if suite not in config.args:
            config.args.append(suite)
    else:
        # No paths given: run the suite, not the testpaths of the project.
        config.args = [suite]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = sys.modules.get("taquba_memo_conformance.suite")
    if suite is None:
        return  # no test class of the suite was imported, so none was collected
    base = suite.MemoBackendConformance
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or not issubclass(cls, base):
            continue
        expected: dict[str, str] = cls.expected_failures
        original = getattr(item, "originalname", item.name)
        reason = expected.get(item.name, expected.get(original))
        if reason is not None:
            item.add_marker(
                pytest.mark.xfail(reason=f"expected failure: {reason}", strict=True, run=True)
            )
