"""Content keys of taquba-workflow 0.6 to 0.10: MessagePack exactly as rmp-serde 1.3 writes it.

Every expected byte string is written by hand from the MessagePack specification
and rmp's encoder (``write_sint``/``write_uint`` pick the smallest form,
``write_str_len`` uses str8 from 32 bytes, ``to_vec_named`` writes a struct as a map),
never produced by the code under test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest
from taquba_memo import EncodeError
from taquba_memo._messagepack import SerdeBytes, rmp_serde_named, rust_content_key


@dataclasses.dataclass
class ContentInput:
    """The crate's test input: ``struct ContentInput { operation: &str, payload: &[u8] }``."""

    operation: str
    payload: list[int]


# A map of two entries (to_vec_named writes a struct as a map); the slice is an array of ints.
CRATE_INPUT_BYTES = (
    b"\x82"
    + (b"\xa9" + b"operation" + b"\xa5" + b"draft")
    + (b"\xa7" + b"payload" + b"\x95" + bytes.fromhex("68656c6c6f"))
)


def test_the_crates_own_test_input_as_a_dataclass() -> None:
    assert rmp_serde_named(ContentInput("draft", list(b"hello"))) == CRATE_INPUT_BYTES


def test_a_dict_in_field_order_is_the_same_struct() -> None:
    assert rmp_serde_named({"operation": "draft", "payload": list(b"hello")}) == CRATE_INPUT_BYTES


def test_the_key_is_content_and_the_hex_sha256_of_those_bytes() -> None:
    expected = "content:" + hashlib.sha256(CRATE_INPUT_BYTES).hexdigest()
    assert rust_content_key(ContentInput("draft", list(b"hello"))) == expected


def test_field_order_matters_as_it_does_for_a_rust_struct() -> None:
    assert rmp_serde_named({"payload": [], "operation": ""}) != rmp_serde_named(
        {"operation": "", "payload": []}
    )


@pytest.mark.parametrize(
    ("number", "encoded"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"),
        (2**64 - 1, "cfffffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-(2**31), "d280000000"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (-(2**63), "d38000000000000000"),
    ],
)
def test_ints_take_the_smallest_form(number: int, encoded: str) -> None:
    assert rmp_serde_named(number).hex() == encoded


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (None, "c0"),
        (True, "c3"),
        (False, "c2"),
        (1.5, "cb3ff8000000000000"),
        (-0.0, "cb8000000000000000"),
        (math.inf, "cb7ff0000000000000"),
        (1.0, "cb3ff0000000000000"),
    ],
)
def test_nil_bools_and_float64(value: object, encoded: str) -> None:
    assert rmp_serde_named(value).hex() == encoded


@pytest.mark.parametrize(
    ("length", "header"),
    [(0, "a0"), (31, "bf"), (32, "d920"), (255, "d9ff"), (256, "da0100"), (65536, "db00010000")],
)
def test_strings_by_utf8_length(length: int, header: str) -> None:
    assert rmp_serde_named("x" * length) == bytes.fromhex(header) + b"x" * length


def test_a_string_is_measured_in_utf8_bytes() -> None:
    assert rmp_serde_named("é" * 16) == bytes.fromhex("d920") + "é".encode() * 16


@pytest.mark.parametrize(
    ("length", "header"), [(0, "90"), (15, "9f"), (16, "dc0010"), (65536, "dd00010000")]
)
def test_lists_and_tuples_are_arrays(length: int, header: str) -> None:
    assert rmp_serde_named([None] * length) == bytes.fromhex(header) + b"\xc0" * length
    assert rmp_serde_named((None,) * length) == rmp_serde_named([None] * length)


@pytest.mark.parametrize(("length", "header"), [(0, "80"), (15, "8f"), (16, "de0010")])
def test_dicts_are_maps_in_insertion_order(length: int, header: str) -> None:
    value = {index: None for index in range(length)}
    body = b"".join(rmp_serde_named(index) + b"\xc0" for index in range(length))
    assert rmp_serde_named(value) == bytes.fromhex(header) + body


@pytest.mark.parametrize(
    ("length", "header"), [(0, "c400"), (2, "c402"), (256, "c50100"), (65536, "c600010000")]
)
def test_serde_bytes_is_a_bin(length: int, header: str) -> None:
    assert rmp_serde_named(SerdeBytes(b"\x01" * length)) == bytes.fromhex(header) + b"\x01" * length


def test_nested_structs() -> None:
    @dataclasses.dataclass
    class Outer:
        inner: ContentInput
        tags: tuple[str, ...]

    expected = (
        bytes.fromhex("82a5" + b"inner".hex())
        + CRATE_INPUT_BYTES
        + bytes.fromhex("a4" + b"tags".hex() + "91a1" + b"a".hex())
    )
    assert rmp_serde_named(Outer(ContentInput("draft", list(b"hello")), ("a",))) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"hello", r"list\(data\)"),
        (bytearray(b"x"), "SerdeBytes"),
        ({1, 2}, "no order"),
        (math.nan, "NaN"),
        (2**64, "outside"),
        (-(2**63) - 1, "outside"),
        ("\ud800", "surrogate"),
        ({True: 1}, "not str or int"),
        ({1.5: 1}, "not str or int"),
        (object(), "no rmp-serde encoding"),
        (ContentInput, "no rmp-serde encoding"),
    ],
)
def test_what_has_no_single_encoding_is_refused(value: object, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        rust_content_key(value)


def test_a_value_that_contains_itself_is_refused() -> None:
    looped: list[object] = []
    looped.append(looped)
    with pytest.raises(EncodeError, match="contains itself"):
        rmp_serde_named(looped)


def test_the_error_names_where_the_value_was_found() -> None:
    with pytest.raises(EncodeError, match=r"\$\['payload'\]\[1\]"):
        rmp_serde_named({"payload": [1, {2}]})


def test_serde_bytes_holds_bytes_only() -> None:
    with pytest.raises(EncodeError):
        SerdeBytes("text")  # type: ignore[arg-type]
