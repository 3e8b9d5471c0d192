"""Codecs: bytes by default, JSON and msgpack across languages, pickle only by opt-in."""

from __future__ import annotations

import json
import pickle
import warnings
from typing import Any

import pytest
from taquba_memo import (
    BytesCodec,
    Codec,
    DecodeError,
    EncodeError,
    InvalidValueTypeError,
    JSONCodec,
    MemoError,
    MsgpackCodec,
    PickleCodec,
    UnsafeCodecWarning,
)
from taquba_memo._codecs import decode_value, encode_value


def pickle_codec() -> PickleCodec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafeCodecWarning)
        return PickleCodec()


class TestEveryCodec:
    @pytest.mark.parametrize(
        "codec", [BytesCodec(), JSONCodec(), MsgpackCodec(), pickle_codec()], ids=repr
    )
    def test_is_a_codec(self, codec: Codec[Any]) -> None:
        assert isinstance(codec, Codec)

    @pytest.mark.parametrize("codec", [JSONCodec(), MsgpackCodec(), pickle_codec()], ids=repr)
    @pytest.mark.parametrize(
        "value",
        [None, True, 0, -(2**53), "héllo ✓", [1, "a", None], {"nested": {"list": [1.5, 2]}}],
    )
    def test_structured_values_round_trip(self, codec: Codec[Any], value: object) -> None:
        data = codec.encode(value)
        assert isinstance(data, bytes)
        assert codec.decode(data) == value

    @pytest.mark.parametrize(
        "codec", [BytesCodec(), JSONCodec(), MsgpackCodec(), pickle_codec()], ids=repr
    )
    def test_decode_failures_are_decode_errors_chaining_the_cause(self, codec: Codec[Any]) -> None:
        garbage = b"\xc1\xff\x00 not a value"
        if isinstance(codec, BytesCodec):
            assert codec.decode(garbage) == garbage  # every byte string is a valid value
            return
        with pytest.raises(DecodeError) as caught:
            codec.decode(garbage)
        assert isinstance(caught.value, MemoError)
        assert caught.value.__cause__ is not None


class TestBytesCodec:
    def test_stores_bytes_unchanged(self) -> None:
        assert BytesCodec().encode(b"\x00raw") == b"\x00raw"
        assert BytesCodec().decode(b"\x00raw") == b"\x00raw"

    def test_bytes_like_values_become_bytes(self) -> None:
        assert BytesCodec().encode(bytearray(b"ab")) == b"ab"
        assert BytesCodec().encode(memoryview(b"cd")) == b"cd"

    @pytest.mark.parametrize("value", ["text", 1, None])
    def test_refuses_anything_else_with_a_type_error(self, value: object) -> None:
        with pytest.raises(EncodeError) as caught:
            BytesCodec().encode(value)  # type: ignore[arg-type]
        assert isinstance(caught.value, (InvalidValueTypeError, TypeError))


class TestJSONCodec:
    def test_writes_compact_utf8_json_that_any_language_reads(self) -> None:
        data = JSONCodec().encode({"answer": "café", "n": [1, 2]})
        assert data == '{"answer":"café","n":[1,2]}'.encode()
        assert json.loads(data) == {"answer": "café", "n": [1, 2]}

    def test_tuples_come_back_as_lists(self) -> None:
        codec = JSONCodec()
        assert codec.decode(codec.encode((1, 2))) == [1, 2]

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, b"bytes", object()])
    def test_refuses_what_is_not_json(self, value: object) -> None:
        with pytest.raises(EncodeError):
            JSONCodec().encode(value)

    def test_default_and_object_hook_extend_it(self) -> None:
        codec = JSONCodec(
            default=lambda obj: {"__set__": sorted(obj)},
            object_hook=lambda d: set(d["__set__"]) if "__set__" in d else d,
        )
        assert codec.decode(codec.encode({3, 1})) == {1, 3}

    def test_invalid_utf8_is_a_decode_error(self) -> None:
        with pytest.raises(DecodeError, match="not UTF-8"):
            JSONCodec().decode(b'"\xff"')

    def test_valid_utf8_that_is_not_json_says_so(self) -> None:
        with pytest.raises(DecodeError, match="not JSON") as caught:
            JSONCodec().decode(b"{not json")
        assert "UTF-8" not in str(caught.value)

    @pytest.mark.parametrize("raised", [KeyError("model"), TypeError("no"), ValueError("old")])
    def test_an_object_hook_that_raises_is_a_decode_error_naming_the_hook(
        self, raised: Exception
    ) -> None:
        def new_schema(fields: dict[str, Any]) -> Any:
            raise raised

        with pytest.raises(DecodeError, match="object_hook refused") as caught:
            JSONCodec(object_hook=new_schema).decode(b'{"old": 1}')
        assert caught.value.__cause__ is raised
        assert type(raised).__name__ in str(caught.value)
        assert "UTF-8" not in str(caught.value)


class TestAnyCodecThroughTheHelpers:
    """decode_value and encode_value hold every codec, a user's own, to the typed errors."""

    class Careless:
        def encode(self, value: Any, /) -> bytes:
            return value["payload"]  # type: ignore[no-any-return]

        def decode(self, data: bytes, /) -> Any:
            return {"payload": data, "length": int(data)}

    def test_any_exception_while_decoding_becomes_a_chained_decode_error(self) -> None:
        with pytest.raises(DecodeError) as caught:
            decode_value(self.Careless(), b"x")
        assert isinstance(caught.value.__cause__, ValueError)

    def test_any_exception_while_encoding_becomes_a_chained_encode_error(self) -> None:
        with pytest.raises(EncodeError) as caught:
            encode_value(self.Careless(), {"no payload": 1})
        assert isinstance(caught.value.__cause__, KeyError)

    def test_an_encoder_that_returns_no_bytes_is_an_encode_error(self) -> None:
        with pytest.raises(EncodeError, match="not bytes"):
            encode_value(self.Careless(), {"payload": "text"})


class TestMsgpackCodec:
    def test_keeps_str_and_bytes_apart(self) -> None:
        codec = MsgpackCodec()
        assert codec.decode(codec.encode({"s": "text", "b": b"raw"})) == {"s": "text", "b": b"raw"}

    def test_refuses_unencodable_values(self) -> None:
        with pytest.raises(EncodeError):
            MsgpackCodec().encode(object())

    def test_truncated_data_is_a_decode_error(self) -> None:
        data = MsgpackCodec().encode(["a" * 50])
        with pytest.raises(DecodeError):
            MsgpackCodec().decode(data[:-10])


class TestPickleCodec:
    def test_constructing_one_warns_that_unpickling_runs_code(self) -> None:
        with pytest.warns(UnsafeCodecWarning, match="runs code"):
            PickleCodec()

    def test_is_never_a_default(self) -> None:
        # Opt-in means: no codec resolves to pickle unless constructed by name.
        from taquba_memo import _memo as memo

        assert isinstance(memo.BYTES, BytesCodec)  # the default of both APIs' memos

    def test_round_trips_python_objects(self) -> None:
        codec = pickle_codec()
        assert codec.decode(codec.encode({1, 2, 3})) == {1, 2, 3}

    def test_unpicklable_values_are_encode_errors(self) -> None:
        with pytest.raises(EncodeError):
            pickle_codec().encode(lambda: None)

    def test_a_pickle_of_a_missing_class_is_a_decode_error(self) -> None:
        missing_global = b"\x80\x04ctaquba_memo\nNoSuchClass\n."
        with pytest.raises(DecodeError):
            pickle_codec().decode(missing_global)

    def test_uses_the_highest_protocol_by_default(self) -> None:
        assert pickle_codec().encode(None)[1] == pickle.HIGHEST_PROTOCOL
