"""The suite catches broken backends: each bug fails the tests that name it.

Every case runs the conformance suite in a separate pytest session (pytester)
against one backend from broken_backends.py and inspects the outcome of each
test, so we know the suite fails for the right reason and not by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

BROKEN_BACKENDS = Path(__file__).with_name("broken_backends.py")

# Tests a broken backend still passes: the failures are targeted, and the
# session itself worked.
UNAFFECTED = {
    "test_backend_implements_the_protocol",
    "test_get_of_a_missing_key_returns_none",
    "test_put_overwrites_an_existing_value",
}

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


def suite_module(backend_class: str, class_body: str = "") -> str:
    """A test module that runs the suite against ``broken_backends.<backend_class>``."""
    return f"""
import contextlib

import pytest_asyncio
from hypothesis import Phase, settings

import broken_backends
from taquba_memo_conformance import MemoBackendConformance


class TestBackend(MemoBackendConformance):
    # Deterministic, so "the state machine finds it" is a stable claim. Not
    # shrunk: whether it fails is all these tests ask, and shrinking a failure
    # took minutes (Hypothesis gives up after five).
    state_machine_settings = settings(
        MemoBackendConformance.state_machine_settings,
        derandomize=True,
        database=None,
        phases=[phase for phase in Phase if phase is not Phase.shrink],
    )
{class_body}
    @pytest_asyncio.fixture
    async def backend(self):
        async with broken_backends.{backend_class}() as backend:
            yield backend

    @contextlib.asynccontextmanager
    async def undeletable(self, backend, key):
        with backend.hold(key):
            yield
"""


@dataclass
class Outcomes:
    """Each test's outcome in one pytester session, by test name."""

    passed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    xfailed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def outcomes_of(recorder: pytest.HookRecorder) -> Outcomes:
    outcomes = Outcomes()
    for report in recorder.getreports("pytest_runtest_logreport"):
        name = report.nodeid.split("::")[-1]
        if report.failed:
            outcomes.failed.add(name)
        elif report.skipped and hasattr(report, "wasxfail"):
            outcomes.xfailed[name] = report.wasxfail
        elif report.skipped:
            assert isinstance(report.longrepr, tuple)
            outcomes.skipped[name] = report.longrepr[2]
        elif report.when == "call":
            outcomes.passed.add(name)
    failed_collection = [r for r in recorder.getreports("pytest_collectreport") if r.failed]
    assert not failed_collection, failed_collection
    return outcomes


def run_suite(
    pytester: pytest.Pytester, backend_class: str, *args: str, class_body: str = ""
) -> Outcomes:
    pytester.makeini(INI)
    pytester.makepyfile(
        broken_backends=BROKEN_BACKENDS.read_text(),
        test_suite=suite_module(backend_class, class_body),
    )
    return outcomes_of(pytester.inline_run(*args))


def _decoys(*cases: str) -> set[str]:
    return {f"test_list_matches_an_exact_prefix_not_a_pattern[{case}]" for case in cases}


BUGS: dict[str, set[str]] = {
    "UnorderedListing": {
        "test_list_is_in_ascending_byte_order",
        "test_list_is_ordered_across_page_boundaries",
        "test_store_lists_terminal_markers_chronologically[layout-0.5]",
        "test_store_lists_terminal_markers_chronologically[layout-0.10]",
        "test_state_machine_agrees_with_a_dict",
    },
    "LeakyPrefix": {
        "test_list_matches_the_raw_string_prefix",
        "test_state_machine_agrees_with_a_dict",
    },
    "SegmentPrefix": {
        "test_list_matches_the_raw_string_prefix",
        "test_state_machine_agrees_with_a_dict",
    },
    "DeleteOfMissingRaises": {
        "test_delete_of_a_missing_key_succeeds",
        "test_delete_many_removes_every_key_and_ignores_missing_ones",
        "test_store_delete_terminal_marker_succeeds_on_missing[layout-0.5]",
        "test_store_delete_terminal_marker_succeeds_on_missing[layout-0.10]",
        "test_store_delete_terminal_marker_is_idempotent[layout-0.5]",
        "test_store_delete_terminal_marker_is_idempotent[layout-0.10]",
    },
    "OverwritesUnderIfAbsent": {
        "test_put_if_absent_keeps_an_existing_value",
        "test_concurrent_put_if_absent_has_exactly_one_winner",
        "test_store_put_if_absent_keeps_the_first_value",
        "test_state_machine_agrees_with_a_dict",
        # The last complete stream would replace the first, which callers were already given.
        "test_stream_of_two_workers_at_once_the_first_complete_stream_wins",
        "test_sync_stream_of_two_workers_at_once_the_first_complete_stream_wins",
    },
    "UnconditionalMultipart": {
        "test_put_if_absent_of_a_large_value_is_still_conditional",
    },
    "CheckThenSetIfAbsent": {
        "test_concurrent_put_if_absent_has_exactly_one_winner",
        # Claims rest on an atomic create: with check-then-set, every duplicate pays.
        "test_claim_generations_are_created_once_each",
        "test_claim_duplicates_started_together_pay_once[8]",
    },
    "DropsKeyAtPageBoundary": {
        "test_list_returns_every_key_across_page_boundaries",
        "test_list_is_ordered_across_page_boundaries",
    },
    "SwallowsDeleteFailures": {
        "test_delete_many_reports_partial_failures",
    },
    "StaleListedSizes": {
        "test_list_with_metadata_reports_the_true_size_and_time_of_each_key",
    },
    "GetAtMostIgnoresTheBound": {
        "test_get_at_most_refuses_an_object_one_byte_over_the_bound",
    },
    "ListAfterIncludesTheStart": {
        "test_list_after_yields_exactly_the_keys_greater_than_the_start",
        "test_list_after_crosses_page_boundaries",
        "test_list_after_matches_an_exact_prefix_not_a_pattern",
    },
    "AfterForkClosesTheClient": {
        "test_after_fork_is_idempotent_and_leaves_the_backend_working",
    },
    "IfAbsentWithoutCapability": {
        "test_put_if_absent_without_the_capability_raises_not_supported",
        "test_state_machine_agrees_with_a_dict",
    },
    "EncodesStrValues": {
        "test_a_str_value_is_refused_before_anything_is_written",
    },
    "EmptyValueReadsAsNone": {
        "test_empty_value_round_trips",
        "test_store_empty_value_round_trips",
        "test_store_writes_the_reference_object_layout[layout-0.5]",
        "test_store_writes_the_reference_object_layout[layout-0.10]",
        "test_put_if_absent_writes_an_absent_key",
    },
    "SqlLikeListing": {
        *_decoys("sql-like-underscore", "sql-like-percent", "case-insensitive", "case-folding"),
        "test_list_is_in_ascending_byte_order",
    },
    "SqlGlobListing": {
        *_decoys("glob-star", "glob-question-mark", "glob-brackets", "regex-class-quantifier"),
    },
    "RedisMatchListing": {
        *_decoys("glob-star", "glob-question-mark", "glob-brackets", "regex-class-quantifier"),
    },
    "RegexListing": {
        *_decoys("regex-dot-plus", "regex-group", "regex-class-quantifier", "glob-star"),
        "test_state_machine_agrees_with_a_dict",
    },
    "CaseInsensitiveListing": {
        *_decoys("case-insensitive", "case-folding"),
    },
    "NormalisesUnicode": {
        *_decoys("unicode-normalisation"),
    },
    "TrimsTrailingWhitespace": {
        *_decoys("trailing-space-ending-the-key"),
    },
    "StripsLeadingSpaces": {
        *_decoys("leading-space-of-a-name"),
    },
    "PercentEncodedListing": {
        f"test_awkward_key_round_trips[{name}]"
        for name in ("space", "emoji", "cjk", "percent-escape", "xml-special", "long-multibyte")
    },
}


@pytest.mark.parametrize(("backend_class", "must_fail"), BUGS.items(), ids=list(BUGS))
def test_a_broken_backend_fails_the_tests_that_name_its_bug(
    pytester: pytest.Pytester, backend_class: str, must_fail: set[str]
) -> None:
    # The claim tests wait out real leases; run them only where they name the bug
    # (the correct base runs them all, below).
    claims = any("claim" in name for name in must_fail)
    outcomes = run_suite(pytester, backend_class, *(() if claims else ("-k", "not claim")))
    assert must_fail <= outcomes.failed
    assert outcomes.passed >= UNAFFECTED


@pytest.mark.parametrize("asyncio_mode", ["strict", "auto"])
def test_the_correct_base_of_the_broken_backends_passes_in_either_asyncio_mode(
    pytester: pytest.Pytester, asyncio_mode: str
) -> None:
    outcomes = run_suite(pytester, "HoldableBackend", "-o", f"asyncio_mode={asyncio_mode}")
    assert outcomes.failed == set()
    assert "test_delete_many_reports_partial_failures" in outcomes.passed
    assert "test_state_machine_agrees_with_a_dict" in outcomes.passed
    assert "test_after_fork_is_idempotent_and_leaves_the_backend_working" in outcomes.passed
    assert set(outcomes.skipped) == {
        "test_put_if_absent_without_the_capability_raises_not_supported"
    }


def test_a_capability_a_backend_lacks_is_a_skip_that_names_it(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(pytester, "NoConditionalPut")
    assert outcomes.failed == set()
    assert "test_put_if_absent_without_the_capability_raises_not_supported" in outcomes.passed
    assert outcomes.skipped == {
        "test_list_is_in_ascending_byte_order": (
            "Skipped: NoConditionalPut does not declare capability ordered_listing"
        ),
        "test_list_is_ordered_across_page_boundaries": (
            "Skipped: NoConditionalPut does not declare capability ordered_listing"
        ),
        **dict.fromkeys(
            [
                "test_store_lists_terminal_markers_chronologically[layout-0.5]",
                "test_store_lists_terminal_markers_chronologically[layout-0.10]",
            ],
            "Skipped: NoConditionalPut does not declare capability ordered_listing",
        ),
        **dict.fromkeys(
            [
                "test_claim_duplicates_started_together_pay_once[2]",
                "test_claim_duplicates_started_together_pay_once[8]",
                "test_claim_one_waiter_takes_over_a_claim_no_longer_renewed",
                "test_claim_a_claimant_that_gives_up_hands_over_without_the_lease[fn-raises]",
                "test_claim_a_claimant_that_gives_up_hands_over_without_the_lease[cancelled]",
                "test_claims_live_below_the_run_and_a_clear_and_a_sweep_delete_them",
                "test_claim_generations_are_created_once_each",
                "test_put_if_absent_writes_an_absent_key",
                "test_put_if_absent_keeps_an_existing_value",
                "test_put_if_absent_after_a_delete_writes_again",
                "test_put_if_absent_of_a_large_value_is_still_conditional",
                "test_concurrent_put_if_absent_has_exactly_one_winner",
                "test_store_put_if_absent_keeps_the_first_value",
                "test_stream_of_two_workers_at_once_the_first_complete_stream_wins",
                "test_stream_claim_makes_a_duplicate_worker_wait_and_replay",
                "test_sync_stream_of_two_workers_at_once_the_first_complete_stream_wins",
                "test_sync_stream_claim_makes_a_duplicate_worker_wait_and_replay",
            ],
            "Skipped: NoConditionalPut does not declare capability conditional_put",
        ),
    }


def test_a_missing_hook_is_a_skip_that_names_it(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_suite="""
import pytest_asyncio
from taquba_memo import InMemoryBackend
from taquba_memo_conformance import MemoBackendConformance

class TestWithoutHooks(MemoBackendConformance):
    @pytest_asyncio.fixture
    async def backend(self):
        yield InMemoryBackend()
"""
    )
    outcomes = outcomes_of(pytester.inline_run("-k", "partial_failures or reference_object_layout"))
    assert outcomes.passed == {
        "test_store_writes_the_reference_object_layout[layout-0.5]",
        "test_store_writes_the_reference_object_layout[layout-0.10]",
    }
    assert outcomes.skipped == {
        "test_delete_many_reports_partial_failures": (
            "Skipped: TestWithoutHooks does not implement the `undeletable` hook, "
            "so a partial delete_many failure cannot be provoked"
        )
    }


def test_a_subclass_without_a_backend_fixture_errors_with_instructions(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_suite="""
from taquba_memo_conformance import MemoBackendConformance

class TestForgotTheFixture(MemoBackendConformance):
    pass
"""
    )
    result = pytester.runpytest("-k", "test_get_of_a_missing_key_returns_none")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*TestForgotTheFixture must override the `backend` fixture*"])


# -- expected_failures -----------------------------------------------------------------

RACE = "test_concurrent_put_if_absent_has_exactly_one_winner"


def test_expected_failures_turn_a_failing_test_into_an_xfail_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    outcomes = run_suite(
        pytester,
        "CheckThenSetIfAbsent",
        "-k",
        "not claim",  # claims rest on the same atomic create, and fail too
        class_body=f"    expected_failures = {{{RACE!r}: 'emulator X has no atomic create'}}\n",
    )
    assert outcomes.failed == set()
    assert outcomes.xfailed == {RACE: "expected failure: emulator X has no atomic create"}


def test_an_expected_failure_that_passes_fails_the_run(pytester: pytest.Pytester) -> None:
    outcomes = run_suite(
        pytester,
        "HoldableBackend",
        class_body=f"    expected_failures = {{{RACE!r}: 'fixed long ago'}}\n",
    )
    assert outcomes.failed == {RACE}, "strict: an unexpected pass is reported"


def test_expected_failures_apply_only_to_the_subclass_that_declares_them(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        broken_backends=BROKEN_BACKENDS.read_text(),
        test_suite=f"""
import pytest_asyncio
import broken_backends
from taquba_memo_conformance import MemoBackendConformance

class TestWithGap(MemoBackendConformance):
    expected_failures = {{{RACE!r}: "known gap"}}

    @pytest_asyncio.fixture
    async def backend(self):
        yield broken_backends.CheckThenSetIfAbsent()

class TestWithoutGap(MemoBackendConformance):
    @pytest_asyncio.fixture
    async def backend(self):
        yield broken_backends.CheckThenSetIfAbsent()
""",
    )
    recorder = pytester.inline_run("-k", RACE)
    failed = [r.nodeid for r in recorder.getreports("pytest_runtest_logreport") if r.failed]
    assert failed == [f"test_suite.py::TestWithoutGap::{RACE}"]
    recorder.assertoutcome(failed=1, skipped=1)  # the xfail counts as skipped here


def test_an_expected_failure_naming_no_test_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_suite="""
from taquba_memo_conformance import MemoBackendConformance

class TestTypo(MemoBackendConformance):
    expected_failures = {"test_concurent_put": "typo"}
"""
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*TestTypo.expected_failures names tests that do not exist*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_the_suite_touches_nothing_outside_its_prefix_and_leaves_nothing_behind(
    pytester: pytest.Pytester,
) -> None:
    # One backend shared by every test, like a shared bucket, holding other data.
    pytester.makeini(INI)
    pytester.makepyfile(
        broken_backends=BROKEN_BACKENDS.read_text(),
        shared_store="""
import broken_backends

BEFORE = {
    "outside/x": b"1",
    "taquba-memo-conformance-sibling/x": b"2",
    "taquba-memo-conformance/someone-else/x": b"3",
    "taquba-memo-conformance": b"4",
}
SHARED = broken_backends.HoldableBackend()
SHARED._data.update(BEFORE)
""",
        test_suite="""
import contextlib
import pytest_asyncio
from shared_store import SHARED
from taquba_memo_conformance import MemoBackendConformance

class TestSharedBucket(MemoBackendConformance):
    @pytest_asyncio.fixture
    async def backend(self):
        yield SHARED

    @contextlib.asynccontextmanager
    async def undeletable(self, backend, key):
        with backend.hold(key):
            yield
""",
        test_zz_afterwards="""
from shared_store import BEFORE, SHARED

def test_only_the_data_that_was_there_before_is_left():
    assert SHARED._data == BEFORE
""",
    )
    outcomes = outcomes_of(pytester.inline_run("-W", "error::UserWarning"))
    assert outcomes.failed == set()
    assert "test_only_the_data_that_was_there_before_is_left" in outcomes.passed
    assert len(outcomes.passed) > 55


@pytest.mark.parametrize(
    ("backend_class", "case", "words"),
    [
        ("SqlLikeListing", "sql-like-underscore", "returned '…/sql-like-underscore/job-1/k'"),
        ("SqlGlobListing", "glob-brackets", "returned '…/glob-brackets/a/k'"),
        ("NormalisesUnicode", "unicode-normalisation", "never folded or normalised"),
        (
            "TrimsTrailingWhitespace",
            "trailing-space-ending-the-key",
            "the value of another key: keys must be stored exactly as written, never folded or "
            "normalised (a CHAR column or trimming of the whole key",
        ),
        (
            "StripsLeadingSpaces",
            "leading-space-of-a-name",
            "never folded or normalised (trimming the leading spaces of a name",
        ),
    ],
)
def test_a_pattern_matching_backend_is_told_which_promise_it_broke(
    pytester: pytest.Pytester, backend_class: str, case: str, words: str
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        broken_backends=BROKEN_BACKENDS.read_text(),
        test_suite=suite_module(backend_class),
    )
    result = pytester.runpytest("-k", f"exact_prefix_not_a_pattern and {case}")
    result.assert_outcomes(failed=1)
    # Without -v: the default report must already name the promise and the keys.
    assert words in result.stdout.str()
    assert "list must match a raw string prefix" in result.stdout.str() or (
        "never folded or normalised" in result.stdout.str()
    )
