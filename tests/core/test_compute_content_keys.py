"""Content-addressed keys: the key is derived from a canonical encoding of the input."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from taquba_memo import (
    EncodeError,
    InvalidArgumentError,
    InvalidValueTypeError,
    JSONCodec,
    Memo,
    MemoBackend,
    canonical_json,
    content_key,
)

PROMPT = {
    "model": "small-1",
    "temperature": 0.7,
    "messages": [{"role": "user", "content": "Résumé?"}],
    "stop": None,
    "stream": False,
    "max_tokens": 256,
}


class TestCanonicalEncoding:
    def test_is_sorted_compact_utf8_json(self) -> None:
        assert (
            canonical_json({"b": 1, "a": [True, None, "é"]})
            == '{"a":[true,null,"é"],"b":1}'.encode()
        )

    def test_sorts_nested_keys(self) -> None:
        assert (
            canonical_json({"é": {"z": 1, "Z": 2}, "e": 0}) == '{"e":0,"é":{"Z":2,"z":1}}'.encode()
        )

    def test_escapes_only_quotes_backslashes_and_control_characters(self) -> None:
        assert canonical_json('a"b\\c\nd\x01✓\x7f') == b'"a\\"b\\\\c\\nd\\u0001\xe2\x9c\x93\x7f"'

    def test_tuples_are_arrays(self) -> None:
        assert canonical_json((1, (2, 3))) == canonical_json([1, [2, 3]]) == b"[1,[2,3]]"

    def test_numbers_are_written_as_ecmascript_writes_a_double(self) -> None:
        assert canonical_json([0.1, 1e16, 2.5, -0.0, 1.0, 1e21, 1e-7]) == (
            b"[0.1,10000000000000000,2.5,0,1,1e+21,1e-7]"
        )


class TestRFC8785Vectors:
    """The examples RFC 8785 publishes, so any JCS implementation agrees with ours."""

    def test_the_canonicalization_example_of_section_3_2_2(self) -> None:
        value = {
            "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
            "literals": [None, True, False],
        }
        assert (
            canonical_json(value)
            == (
                '{"literals":[null,true,false],'
                '"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
                '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
            ).encode()
        )

    def test_the_sorting_example_of_section_3_2_3_orders_by_utf16_code_units(self) -> None:
        value = {
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\U0001f600": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis",
        }
        assert (
            canonical_json(value)
            == (
                '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
                '"ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign",'
                '"😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
            ).encode()
        )

    @pytest.mark.parametrize(
        ("ieee_754_hex", "expected"),
        [  # Appendix B: IEEE 754 double, as hex, and its canonical text
            ("0000000000000000", "0"),
            ("8000000000000000", "0"),
            ("0000000000000001", "5e-324"),
            ("8000000000000001", "-5e-324"),
            ("7fefffffffffffff", "1.7976931348623157e+308"),
            ("ffefffffffffffff", "-1.7976931348623157e+308"),
            ("4340000000000000", "9007199254740992"),
            ("c340000000000000", "-9007199254740992"),
            ("4430000000000000", "295147905179352830000"),
            ("44b52d02c7e14af5", "9.999999999999997e+22"),
            ("44b52d02c7e14af6", "1e+23"),
            ("44b52d02c7e14af7", "1.0000000000000001e+23"),
            ("444b1ae4d6e2ef4e", "999999999999999700000"),
            ("444b1ae4d6e2ef4f", "999999999999999900000"),
            ("444b1ae4d6e2ef50", "1e+21"),
            ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
            ("3eb0c6f7a0b5ed8d", "0.000001"),
            ("41b3de4355555553", "333333333.3333332"),
            ("41b3de4355555554", "333333333.33333325"),
            ("41b3de4355555555", "333333333.3333333"),
            ("41b3de4355555556", "333333333.3333334"),
            ("41b3de4355555557", "333333333.33333343"),
            ("becbf647612f3696", "-0.0000033333333333333333"),
            ("43143ff3c1cb0959", "1424953923781206.2"),
        ],
    )
    def test_the_number_examples_of_appendix_b(self, ieee_754_hex: str, expected: str) -> None:
        (number,) = struct.unpack(">d", bytes.fromhex(ieee_754_hex))
        assert canonical_json(number) == expected.encode()

    @pytest.mark.parametrize("ieee_754_hex", ["7fffffffffffffff", "7ff0000000000000"])
    def test_nan_and_infinity_of_appendix_b_are_errors(self, ieee_754_hex: str) -> None:
        (number,) = struct.unpack(">d", bytes.fromhex(ieee_754_hex))
        with pytest.raises(EncodeError):
            canonical_json(number)


class TestIntegers:
    @pytest.mark.parametrize("exact", [0, -1, 2**53, -(2**53), 2**60, 10**22, 2**1023])
    def test_ints_a_double_holds_exactly_are_written_like_that_double(self, exact: int) -> None:
        assert canonical_json(exact) == canonical_json(float(exact))

    @pytest.mark.parametrize(
        "inexact",
        [2**53 + 1, -(2**53) - 1, 10**23, 2**1024, 10**5000],
        ids=["2**53+1", "-2**53-1", "10**23", "2**1024", "10**5000"],
    )
    def test_ints_a_double_cannot_hold_are_refused_with_the_fix(self, inexact: int) -> None:
        with pytest.raises(EncodeError, match=r"exact double.*str\(n\)"):
            canonical_json({"id": inexact})

    def test_big_ids_as_strings_keep_their_keys_apart(self) -> None:
        assert content_key(str(2**53 + 1)) != content_key(str(2**53))


class TestContentKey:
    def test_is_the_hex_sha256_of_the_canonical_encoding(self) -> None:
        assert content_key(PROMPT) == hashlib.sha256(canonical_json(PROMPT)).hexdigest()

    def test_a_known_vector_other_languages_can_check_against(self) -> None:
        # sha256(b'{"a":1,"b":[true,null]}')
        assert (
            content_key({"b": [True, None], "a": 1})
            == hashlib.sha256(b'{"a":1,"b":[true,null]}').hexdigest()
        )

    def test_dict_insertion_order_does_not_matter(self) -> None:
        reordered = dict(reversed(list(PROMPT.items())))
        assert content_key(reordered) == content_key(PROMPT)

    def test_list_order_does(self) -> None:
        assert content_key([1, 2]) != content_key([2, 1])

    @pytest.mark.parametrize(
        ("left", "right"),
        [(True, 1), ("1", 1), (None, "null"), ([], {}), (0, False)],
    )
    def test_values_that_compare_equal_or_print_alike_get_different_keys(
        self, left: object, right: object
    ) -> None:
        assert content_key(left) != content_key(right)

    @pytest.mark.parametrize(("left", "right"), [(1, 1.0), (0.0, -0.0), (100, 1e2)])
    def test_one_json_number_is_one_key_however_python_spells_it(
        self, left: object, right: object
    ) -> None:
        assert content_key(left) == content_key(right)

    def test_a_namespace_separates_keys_of_one_input(self) -> None:
        v1 = content_key(PROMPT, namespace="summarize/v1")
        v2 = content_key(PROMPT, namespace="summarize/v2")
        assert len({v1, v2, content_key(PROMPT)}) == 3
        assert v1 == hashlib.sha256(b"summarize/v1\x00" + canonical_json(PROMPT)).hexdigest()

    @pytest.mark.parametrize("namespace", ["", "a\x00b", "\ud800"])
    def test_a_bad_namespace_is_refused(self, namespace: str) -> None:
        with pytest.raises(InvalidArgumentError):
            content_key(PROMPT, namespace=namespace)

    def test_the_namespace_is_keyword_only_and_a_str(self) -> None:
        with pytest.raises(TypeError):
            content_key(PROMPT, "v1")  # type: ignore[call-arg]
        with pytest.raises(InvalidValueTypeError):
            content_key(PROMPT, namespace=2)  # type: ignore[arg-type]

    def test_is_the_same_in_another_process_with_another_hash_seed(self) -> None:
        code = f"from taquba_memo import content_key;print(content_key({PROMPT!r}))"
        keys = {
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONHASHSEED": seed},
                timeout=60,
            ).stdout.strip()
            for seed in ("1", "2")
        }
        assert keys == {content_key(PROMPT)}


class TestInputsWithoutACanonicalForm:
    @pytest.mark.parametrize(
        "value",
        [
            {1, 2},
            frozenset(),
            b"bytes",
            bytearray(b"x"),
            object(),
            {1: "int key"},
            {("a",): "tuple key"},
            float("nan"),
            float("inf"),
            [1, {"deep": {2, 3}}],
        ],
        ids=lambda value: "object()" if type(value) is object else repr(value),
    )
    def test_are_refused_with_a_typed_error(self, value: object) -> None:
        with pytest.raises(EncodeError) as caught:
            content_key(value)
        assert isinstance(caught.value, (InvalidValueTypeError, TypeError))

    def test_the_error_says_where_the_bad_value_is(self) -> None:
        with pytest.raises(EncodeError, match=r"\$\['messages'\]\[1\]: set"):
            content_key({"messages": ["ok", {"a"}]})

    def test_a_value_that_contains_itself_is_refused(self) -> None:
        loop: list[object] = []
        loop.append(loop)
        with pytest.raises(EncodeError, match="contains itself"):
            content_key(loop)

    def test_a_lone_surrogate_is_refused(self) -> None:
        with pytest.raises(EncodeError, match="surrogate"):
            content_key("\ud800")

    def test_the_same_object_twice_is_not_a_cycle(self) -> None:
        shared = [1]
        assert content_key([shared, shared]) == content_key([[1], [1]])


class TestMemoContentGetPut:
    async def test_a_value_stored_for_an_input_is_found_by_an_equal_input(self, memo: Memo) -> None:
        assert await memo.content_get(PROMPT) is None
        assert await memo.content_put(PROMPT, b"answer")
        reordered = dict(reversed(list(PROMPT.items())))
        assert await memo.content_get(reordered) == b"answer"

    async def test_the_entry_is_the_plain_key_content_key_of_the_input(self, memo: Memo) -> None:
        await memo.content_put(PROMPT, b"answer")
        assert await memo.get(content_key(PROMPT)) == b"answer"

    async def test_a_namespace_keeps_entries_of_one_input_apart(self, memo: Memo) -> None:
        await memo.content_put(PROMPT, b"old shape", namespace="summarize/v1")
        assert await memo.content_get(PROMPT, namespace="summarize/v2") is None
        assert await memo.content_get(PROMPT) is None
        assert await memo.content_get(PROMPT, namespace="summarize/v1") == b"old shape"
        assert await memo.get(content_key(PROMPT, namespace="summarize/v1")) == b"old shape"

    async def test_codecs_apply(self, memo: Memo) -> None:
        await memo.content_put(PROMPT, {"text": "hi", "tokens": 2}, codec=JSONCodec())
        assert await memo.content_get(PROMPT, codec=JSONCodec()) == {"text": "hi", "tokens": 2}

    async def test_if_absent_keeps_the_first_value(self, memo: Memo) -> None:
        assert await memo.content_put(PROMPT, b"first", if_absent=True)
        assert not await memo.content_put(PROMPT, b"second", if_absent=True)
        assert await memo.content_get(PROMPT) == b"first"

    async def test_a_bad_input_fails_before_any_io(self, backend: MemoBackend, memo: Memo) -> None:
        with pytest.raises(EncodeError):
            await memo.content_put({"a": {1}}, b"x")
        assert [key async for key in backend.list("")] == []


# JSON values both implementations accept: safe integers (rfc8785 refuses 2**53), finite floats,
# any text without lone surrogates, and nesting of both container kinds.
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), children, max_size=4)
    ),
    max_leaves=12,
)


class TestAgainstAnIndependentImplementation:
    """canonical_json agrees byte for byte with the rfc8785 package on any JSON value."""

    @settings(max_examples=400, deadline=None)
    @given(_JSON_VALUES)
    def test_agrees_with_rfc8785(self, value: object) -> None:
        assert canonical_json(value) == rfc8785.dumps(value)  # type: ignore[arg-type]
