"""Content-addressed keys: the key is derived from a canonical encoding of the input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from taquba_memo import (
    EncodeError,
    InMemoryBackend,
    InvalidValueType,
    JSONCodec,
    MemoStore,
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

    def test_sorts_nested_keys_by_code_point(self) -> None:
        assert (
            canonical_json({"é": {"z": 1, "Z": 2}, "e": 0}) == '{"e":0,"é":{"Z":2,"z":1}}'.encode()
        )

    def test_escapes_only_quotes_backslashes_and_control_characters(self) -> None:
        assert canonical_json('a"b\\c\nd\x01✓') == b'"a\\"b\\\\c\\nd\\u0001\xe2\x9c\x93"'

    def test_tuples_are_arrays(self) -> None:
        assert canonical_json((1, (2, 3))) == canonical_json([1, [2, 3]]) == b"[1,[2,3]]"

    def test_floats_use_the_shortest_round_trip_form(self) -> None:
        assert canonical_json([0.1, 1e16, 2.5, -0.0]) == b"[0.1,1e+16,2.5,-0.0]"


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
        [(True, 1), (1, 1.0), (0.0, -0.0), ("1", 1), (None, "null"), ([], {})],
    )
    def test_values_that_compare_equal_or_print_alike_get_different_keys(
        self, left: object, right: object
    ) -> None:
        assert content_key(left) != content_key(right)

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
        ids=repr,
    )
    def test_are_refused_with_a_typed_error(self, value: object) -> None:
        with pytest.raises(EncodeError) as caught:
            content_key(value)
        assert isinstance(caught.value, (InvalidValueType, TypeError))

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
    async def test_a_value_stored_for_an_input_is_found_by_an_equal_input(self) -> None:
        store = MemoStore(InMemoryBackend(), "memo")
        memo = store.new_memo("run", 1)
        assert await memo.content_get(PROMPT) is None
        assert await memo.content_put(PROMPT, b"answer")
        reordered = dict(reversed(list(PROMPT.items())))
        assert await memo.content_get(reordered) == b"answer"

    async def test_the_entry_is_the_plain_key_content_key_of_the_input(self) -> None:
        memo = MemoStore(InMemoryBackend(), "memo").new_memo("run", 1)
        await memo.content_put(PROMPT, b"answer")
        assert await memo.get(content_key(PROMPT)) == b"answer"

    async def test_codecs_apply(self) -> None:
        memo = MemoStore(InMemoryBackend(), "memo").new_memo("run", 1)
        await memo.content_put(PROMPT, {"text": "hi", "tokens": 2}, codec=JSONCodec())
        assert await memo.content_get(PROMPT, codec=JSONCodec()) == {"text": "hi", "tokens": 2}

    async def test_if_absent_keeps_the_first_value(self) -> None:
        memo = MemoStore(InMemoryBackend(), "memo").new_memo("run", 1)
        assert await memo.content_put(PROMPT, b"first", if_absent=True)
        assert not await memo.content_put(PROMPT, b"second", if_absent=True)
        assert await memo.content_get(PROMPT) == b"first"

    async def test_a_bad_input_fails_before_any_io(self) -> None:
        backend = InMemoryBackend()
        memo = MemoStore(backend, "memo").new_memo("run", 1)
        with pytest.raises(EncodeError):
            await memo.content_put({"a": {1}}, b"x")
        assert [key async for key in backend.list("")] == []
