"""The object layout is byte-identical to taquba-workflow 0.5.0."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from taquba_memo import TerminalMarker, errors
from taquba_memo import _layout as layout

SHA_OF_K = hashlib.sha256(b"k").hexdigest()


def test_memo_key_matches_the_reference_format() -> None:
    assert layout.memo_key("memo", "run-1", 0, "k") == f"memo/memos/run-1/0/{SHA_OF_K}"


def test_terminal_marker_key_zero_pads_the_timestamp_to_20_digits() -> None:
    assert (
        layout.terminal_marker_key("memo", "run-1", 1_700_000_000_000)
        == "memo/terminals/00000001700000000000_run-1"
    )


def test_largest_values_fit_the_layout() -> None:
    assert layout.memo_key("p", "r", 2**32 - 1, "k").startswith("p/memos/r/4294967295/")
    assert layout.terminal_marker_key("p", "r", 2**64 - 1) == "p/terminals/18446744073709551615_r"


def test_user_keys_are_sha256_hex_of_their_utf8_encoding() -> None:
    for user_key in ["", "with/slash", "with spaces", "üñíçødé", "a" * 10_000]:
        expected = hashlib.sha256(user_key.encode()).hexdigest()
        assert layout.memo_key("p", "r", 1, user_key).rsplit("/", 1)[1] == expected


@pytest.mark.parametrize(
    ("prefix", "normalised"),
    [("", ""), ("a/", "a"), ("/a//b", "a/b"), ("memo", "memo"), ("a b/c-d.e", "a b/c-d.e")],
)
def test_prefix_is_normalised_like_object_store_path(prefix: str, normalised: str) -> None:
    assert layout.normalize_prefix(prefix) == normalised


def test_an_empty_prefix_puts_memos_at_the_bucket_root() -> None:
    assert layout.memo_key("", "r", 0, "k") == f"memos/r/0/{SHA_OF_K}"
    assert layout.terminal_marker_key("/", "r", 1) == "terminals/00000000000000000001_r"


@pytest.mark.parametrize("prefix", ["..", "a/../b", "./a", "a%b", "a#b", "a*", "ü", "a\nb", "a\\b"])
def test_prefixes_that_object_store_would_escape_are_refused(prefix: str) -> None:
    with pytest.raises(errors.InvalidPrefixError):
        layout.normalize_prefix(prefix)


def test_listing_prefixes_end_in_a_slash_so_runs_never_match_by_prefix() -> None:
    assert layout.memos_run_prefix("memo", "run") == "memo/memos/run/"
    assert layout.terminals_prefix("memo") == "memo/terminals/"
    assert layout.memos_prefix("") == "memos/"


@pytest.mark.parametrize(
    "run_id", ["", "a/b", "..", "run 1", "ü", "a" * 129, "run.1", "run\n", "*"]
)
def test_invalid_run_ids_are_refused(run_id: str) -> None:
    with pytest.raises(errors.InvalidRunIdError):
        layout.memo_key("p", run_id, 0, "k")
    with pytest.raises(errors.InvalidRunIdError):
        layout.terminal_marker_key("p", run_id, 0)


def test_run_ids_of_128_url_safe_characters_are_accepted() -> None:
    run_id = ("Az09_-" * 22)[:128]
    assert layout.validate_run_id(run_id) == run_id


def test_invalid_run_id_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="run_id"):
        layout.validate_run_id("")


@pytest.mark.parametrize("step", [-1, 2**32])
def test_step_numbers_outside_u32_are_refused(step: int) -> None:
    with pytest.raises(errors.InvalidStepNumberError):
        layout.memo_key("p", "r", step, "k")


@pytest.mark.parametrize("step", [True, 1.0, "1", None])
def test_step_numbers_must_be_ints(step: object) -> None:
    with pytest.raises(errors.InvalidValueTypeError):
        layout.validate_step_number(step)


@pytest.mark.parametrize("ts", [-1, 2**64])
def test_timestamps_outside_u64_are_refused(ts: int) -> None:
    with pytest.raises(errors.InvalidTerminalTimeError):
        layout.terminal_marker_key("p", "r", ts)


def test_user_keys_must_be_str() -> None:
    with pytest.raises(errors.InvalidValueTypeError):
        layout.memo_key("p", "r", 0, b"k")  # type: ignore[arg-type]


def test_user_keys_that_cannot_be_utf8_encoded_are_refused() -> None:
    with pytest.raises(errors.InvalidKeyError):
        layout.memo_key("p", "r", 0, "\ud800")


class TestMarkerNameParsing:
    def test_a_written_name_parses_back(self) -> None:
        name = layout.terminal_marker_name("run-1", 1_000)
        assert layout.parse_terminal_marker_name(name) == TerminalMarker("run-1", 1_000)

    def test_rust_u64_parsing_accepts_a_leading_plus(self) -> None:
        assert layout.parse_terminal_marker_name("+0000000000000001000_r") == TerminalMarker(
            "r", 1_000
        )

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "1000_run",  # not zero-padded to 20
            "0000000000000000100_run",  # 19 digits
            "00000000000000001000run",  # no underscore
            "00000000000000001000-run",  # wrong separator
            "18446744073709551616_run",  # 2**64
            "99999999999999999999_run",
            "0000000000000000100a_run",
            "0000000000_000000100_run",
            "-0000000000000001000_run",
            "00000000000000001000_",  # empty run id
            "00000000000000001000_bad/run",
            "00000000000000001000_a b",
            "\uff10" * 16 + "\uff11\uff10\uff10\uff10_r",  # full-width digits
            " 0000000000000001000_r",
        ],
    )
    def test_names_that_do_not_parse_give_none(self, name: str) -> None:
        assert layout.parse_terminal_marker_name(name) is None

    @given(st.text())
    def test_the_parser_never_raises(self, name: str) -> None:
        layout.parse_terminal_marker_name(name)

    @given(st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True), st.integers(0, 2**64 - 1))
    def test_every_valid_marker_round_trips(self, run_id: str, ts: int) -> None:
        name = layout.terminal_marker_name(run_id, ts)
        assert len(name.split("_", 1)[0]) == 20
        assert layout.parse_terminal_marker_name(name) == TerminalMarker(run_id, ts)


def test_marker_names_sort_chronologically() -> None:
    stamps = [0, 9, 10, 999, 1_000, 2**40, 2**64 - 1]
    names = [layout.terminal_marker_name("r", ts) for ts in reversed(stamps)]
    assert [layout.parse_terminal_marker_name(n) for n in sorted(names)] == [
        TerminalMarker("r", ts) for ts in stamps
    ]


def test_terminal_markers_sort_by_time_then_run() -> None:
    markers = [TerminalMarker("b", 2), TerminalMarker("a", 2), TerminalMarker("z", 1)]
    assert sorted(markers) == [
        TerminalMarker("z", 1),
        TerminalMarker("a", 2),
        TerminalMarker("b", 2),
    ]


def test_terminal_markers_validate_their_fields() -> None:
    with pytest.raises(errors.InvalidRunIdError):
        TerminalMarker("", 1)
    with pytest.raises(errors.InvalidTerminalTimeError):
        TerminalMarker("r", -1)


@given(prefix=st.text(), run_id=st.text(), step=st.integers(), user_key=st.text())
def test_no_input_escapes_the_prefix(prefix: str, run_id: str, step: int, user_key: str) -> None:
    try:
        key = layout.memo_key(prefix, run_id, step, user_key)
    except (ValueError, TypeError):
        return
    normalised = layout.normalize_prefix(prefix)
    assert key.startswith(f"{normalised}/memos/" if normalised else "memos/")
    segments = key.split("/")
    assert all(segment not in ("", ".", "..") for segment in segments)
    assert segments[-3] == run_id
