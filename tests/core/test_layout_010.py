"""Layout "0.10" (taquba-workflow 0.6.0 to 0.10.0): names as the crate's format strings say."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from taquba_memo import (
    InvalidArgumentError,
    InvalidTerminalTimeError,
    InvalidValueTypeError,
    TerminalMarker,
)
from taquba_memo import _layout as layout
from taquba_memo._layout import LATEST_TERMINAL_AT_MS, Layout, detect_marker_layout

U64_MAX = 2**64 - 1


def crate_marker_name(run_id: str, terminal_at_ms: int) -> str:
    """``format!("{:020}_{run_id}", u64::MAX - terminal_at_ms)``, as memo.rs 0.10 writes it."""
    return f"{U64_MAX - terminal_at_ms:020}_{run_id}"


def test_a_010_marker_leads_with_the_inverted_timestamp() -> None:
    assert (
        Layout.V0_10.marker_key("memo", "run-1", 1_700_000_000_000)
        == "memo/terminals/18446742373709551615_run-1"
        == "memo/terminals/" + crate_marker_name("run-1", 1_700_000_000_000)
    )


def test_the_05_layout_is_unchanged() -> None:
    assert Layout.V0_5.marker_key("memo", "run-1", 1_700_000_000_000) == (
        layout.terminal_marker_key("memo", "run-1", 1_700_000_000_000)
    )
    assert Layout.V0_5.run_prefixes("memo", "r") == ("memo/memos/r/",)
    assert Layout.V0_5.expired_listing_start("memo", 5) is None
    assert layout.DEFAULT_LAYOUT is Layout.V0_5


@given(
    run_id=st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True),
    terminal_at_ms=st.integers(0, LATEST_TERMINAL_AT_MS),
    chosen=st.sampled_from(list(Layout)),
)
def test_markers_round_trip_in_either_layout(
    run_id: str, terminal_at_ms: int, chosen: Layout
) -> None:
    name = chosen.marker_name(run_id, terminal_at_ms)
    marker = chosen.parse_marker_name(name)
    assert marker == TerminalMarker(run_id, terminal_at_ms)
    assert marker is not None
    assert marker.name == name
    assert chosen.listed_marker_key("p", marker) == chosen.marker_key("p", run_id, terminal_at_ms)


def test_a_010_name_parses_to_its_real_date() -> None:
    marker = Layout.V0_10.parse_marker_name(crate_marker_name("old-run", 1_700_000_000_000))
    assert marker == TerminalMarker("old-run", 1_700_000_000_000)


def test_a_hand_built_marker_is_deleted_under_the_stores_layout() -> None:
    marker = TerminalMarker("r", 1_000)
    assert Layout.V0_10.listed_marker_key("p", marker) == "p/terminals/" + crate_marker_name(
        "r", 1_000
    )


def test_the_expired_listing_starts_at_the_crates_offset() -> None:
    """Every marker older than the cutoff sorts after it; so does the one at the cutoff."""
    start = Layout.V0_10.expired_listing_start("p", 2_000)
    assert start == f"p/terminals/{U64_MAX - 2_000:020}"
    older = Layout.V0_10.marker_key("p", "old", 1_999)
    at_cutoff = Layout.V0_10.marker_key("p", "edge", 2_000)
    newer = Layout.V0_10.marker_key("p", "new", 2_001)
    assert older > start
    assert at_cutoff > start
    assert newer < start


def test_a_010_run_clear_covers_memos_and_step_outputs() -> None:
    assert Layout.V0_10.run_prefixes("p", "r") == ("p/memos/r/", "p/step-outputs/r/")
    assert layout.step_outputs_run_prefix("", "r") == "step-outputs/r/"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (crate_marker_name("r", 0), Layout.V0_10),
        (crate_marker_name("r", 1_700_000_000_000), Layout.V0_10),
        (crate_marker_name("r", layout.YEAR_10000_MS - 1), Layout.V0_10),
        ("00000001700000000000_r", Layout.V0_5),
        (f"{layout.YEAR_10000_MS - 1:020}_r", Layout.V0_5),
        ("09999999999999999999_r", None),
        ("not-a-marker", None),
    ],
)
def test_a_marker_name_tells_its_layout(name: str, expected: Layout | None) -> None:
    assert layout.detect_marker_layout(name) is expected


def test_an_inverted_name_of_this_century_starts_with_1844674() -> None:
    assert crate_marker_name("r", 4_073_709_551_615).startswith("1844674")


def test_layout_values_are_validated() -> None:
    assert layout.validate_layout("0.10") is Layout.V0_10
    assert layout.validate_layout("0.5") is Layout.V0_5
    with pytest.raises(InvalidArgumentError, match=r"0\.5"):
        layout.validate_layout("0.6")
    with pytest.raises(InvalidValueTypeError):
        layout.validate_layout(0.10)


@pytest.mark.parametrize("written_in", list(Layout))
def test_a_terminal_time_whose_name_would_read_as_the_other_layout_is_refused(
    written_in: Layout,
) -> None:
    """Past year ~584 million, a 0.5 name looks inverted (and a 0.10 name does not)."""
    latest = written_in.marker_name("run", LATEST_TERMINAL_AT_MS)
    assert detect_marker_layout(latest) in (written_in, None)
    with pytest.raises(InvalidTerminalTimeError, match="other layout"):
        written_in.marker_name("run", LATEST_TERMINAL_AT_MS + 1)
    with pytest.raises(InvalidTerminalTimeError):
        written_in.marker_name("run", 2**64 - 1)
