"""``pytest --memo-backend=MODULE:FACTORY`` runs the whole suite with no test file."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

FACTORIES = """
from taquba_memo import InMemoryBackend, LocalFileBackend


def memory():
    return InMemoryBackend()


async def local_files(tmp_path):
    return LocalFileBackend(tmp_path / "store")


class Broken(InMemoryBackend):
    async def delete(self, key):
        if await self.get(key) is None:
            raise KeyError(key)
        await super().delete(key)


def broken():
    return Broken()


def not_a_backend():
    return {}


NOT_CALLABLE = 3
"""

# A project test that must not run: --memo-backend alone runs only the suite.
UNRELATED_TEST = """
def test_unrelated():
    raise AssertionError("the project's own tests were collected")
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project directory with backend factories and one unrelated test."""
    pytester.makeini(INI)
    pytester.makepyfile(my_backends=FACTORIES, test_unrelated=UNRELATED_TEST)
    return pytester


def suite_size(pytester: pytest.Pytester) -> int:
    """How many tests one subclass of the suite has."""
    recorder = pytester.inline_run("--collect-only", "--memo-backend=my_backends:memory")
    return len(recorder.getcalls("pytest_itemcollected"))


def test_a_sync_factory_runs_the_whole_suite_in_a_fresh_process(
    project: pytest.Pytester,
) -> None:
    # A subprocess: the plugin is found through its entry point, as for a user.
    result = project.runpytest_subprocess("--memo-backend=my_backends:memory", "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 55
    assert "test_unrelated" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*::TestMemoBackend::test_get_of_a_missing_key_returns_none PASSED*"]
    )


def test_an_async_factory_gets_the_fixtures_it_names(project: pytest.Pytester) -> None:
    result = project.runpytest("--memo-backend=my_backends:local_files", "-q")
    outcomes = result.parseoutcomes()
    report = result.stdout.str()[-8000:]
    assert outcomes.get("failed", 0) == 0, report
    assert outcomes.get("errors", 0) == 0, report
    assert outcomes["passed"] + outcomes["skipped"] == suite_size(project)


def test_a_broken_backend_fails_through_the_option(project: pytest.Pytester) -> None:
    result = project.runpytest("--memo-backend=my_backends:broken", "-k", "delete_of_a_missing_key")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_delete_of_a_missing_key_succeeds*KeyError*"])


def test_paths_given_with_the_option_are_collected_as_well(project: pytest.Pytester) -> None:
    result = project.runpytest(
        "--memo-backend=my_backends:memory",
        "test_unrelated.py",
        "-k",
        "unrelated or get_of_a_missing_key",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the project's own tests were collected*"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("my_backends", "*expected MODULE:FACTORY*"),
        ("no_such_module:make", "*cannot import no_such_module*"),
        ("my_backends:nothing", "*my_backends has no attribute nothing*"),
        ("my_backends:NOT_CALLABLE", "*NOT_CALLABLE is not callable*"),
    ],
)
def test_a_bad_factory_spec_is_a_usage_error(
    project: pytest.Pytester, spec: str, message: str
) -> None:
    result = project.runpytest(f"--memo-backend={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_factory_that_returns_no_backend_errors_with_its_name(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest(
        "--memo-backend=my_backends:not_a_backend", "-k", "get_of_a_missing_key"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*not_a_backend*returned dict, which does not implement MemoBackend*"]
    )


def test_without_the_option_the_plugin_adds_nothing(project: pytest.Pytester) -> None:
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_unrelated*"])
