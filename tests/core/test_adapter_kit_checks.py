"""The kit's shared input checks: base paths, URL flags and staging names, alike everywhere."""

from __future__ import annotations

import pytest
from taquba_memo import InvalidKeyError, InvalidURLError, InvalidValueTypeError
from taquba_memo.adapter_kit import (
    FALSE_WORDS,
    TRUE_WORDS,
    is_staging_name,
    normalize_base_path,
    parse_flag,
)


@pytest.mark.parametrize(
    ("given", "normalized"),
    [("", ""), ("/", ""), ("memos", "memos"), ("/a//b/", "a/b"), ("a/b c/d", "a/b c/d")],
)
def test_a_base_path_loses_its_empty_segments(given: str, normalized: str) -> None:
    assert normalize_base_path(given) == normalized


@pytest.mark.parametrize("given", ["a/../b", ".", "..", "a/./b", "a/\x01", "a\x7f"])
def test_a_base_path_with_a_dot_segment_or_a_control_character_is_refused(
    given: str,
) -> None:
    with pytest.raises(InvalidKeyError, match="base path"):
        normalize_base_path(given)


def test_a_base_path_must_be_text() -> None:
    with pytest.raises(InvalidValueTypeError, match="base_path must be str"):
        normalize_base_path(b"memos")


@pytest.mark.parametrize("word", [*TRUE_WORDS, "TRUE", "Yes", " on "])
def test_true_words_are_true(word: str) -> None:
    assert parse_flag(word, name="secure") is True


@pytest.mark.parametrize("word", [*FALSE_WORDS, "False", "NO", "Off"])
def test_false_words_are_false(word: str) -> None:
    assert parse_flag(word, name="secure") is False


@pytest.mark.parametrize("word", ["", "maybe", "2", "t"])
def test_any_other_flag_value_is_refused_naming_the_parameter(word: str) -> None:
    with pytest.raises(InvalidURLError, match="secure must be true or false"):
        parse_flag(word, name="secure")


@pytest.mark.parametrize(
    ("name", "staging"),
    [
        ("key#123", True),
        ("key#0", True),
        ("a#b#12", True),  # the staging file of key "a#b"
        ("key", False),
        ("key#", False),
        ("key#12a", False),
        ("#x", False),
        ("key#١٢", False),  # digits, but not ASCII ones
    ],
)
def test_a_staging_name_ends_in_a_hash_and_ascii_digits(name: str, staging: bool) -> None:
    assert is_staging_name(name) is staging
