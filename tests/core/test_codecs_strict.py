"""Codecs decode only what they encode, and a decode error names its real cause.

JSONCodec refuses NaN, Infinity and numbers beyond a float when encoding, so
it refuses them when decoding too: a stored ``NaN`` (written by another
language, or by hand) is a DecodeError, which ``get_or_compute`` treats as a
miss and recomputes. A failure no hook caused never blames the hook.
"""

from __future__ import annotations

from typing import Any

import pytest
from taquba_memo import DecodeError, JSONCodec, Memo, MsgpackCodec

NOT_JSON_NUMBERS = [b"NaN", b"[Infinity]", b'{"x": -Infinity}', b"1e999999", b"[-1e400]"]
HUGE_INTEGER = b"1" * 5_000


class TestJSONCodecDecodesOnlyWhatItEncodes:
    @pytest.mark.parametrize("data", NOT_JSON_NUMBERS)
    def test_nan_infinity_and_overflowing_floats_are_decode_errors(self, data: bytes) -> None:
        with pytest.raises(DecodeError):
            JSONCodec().decode(data)

    def test_finite_floats_still_decode(self) -> None:
        assert JSONCodec().decode(b"[1.5, -1.7e308, 1e-400]") == [1.5, -1.7e308, 0.0]

    @pytest.mark.parametrize("hook", [None, dict])
    def test_an_integer_over_pythons_digit_limit_names_the_limit_not_the_hook(
        self, hook: Any
    ) -> None:
        with pytest.raises(DecodeError) as caught:
            JSONCodec(object_hook=hook).decode(b'{"n": ' + HUGE_INTEGER + b"}")
        message = str(caught.value)
        assert "object_hook" not in message
        assert "digits" in message
        assert isinstance(caught.value.__cause__, ValueError)


class TestGetOrComputeRecomputesWhatDoesNotDecode:
    @pytest.mark.parametrize("stored", [*NOT_JSON_NUMBERS, HUGE_INTEGER])
    async def test_a_stored_value_the_codec_refuses_is_a_miss(
        self, memo: Memo, stored: bytes
    ) -> None:
        await memo.put("k", stored)
        calls = 0

        def compute() -> dict[str, float]:
            nonlocal calls
            calls += 1
            return {"score": 0.5}

        assert await memo.get_or_compute("k", compute, codec=JSONCodec()) == {"score": 0.5}
        assert calls == 1
        assert await memo.get("k") == b'{"score":0.5}'


class TestMsgpackDecodeErrorsNameTheCause:
    def test_valid_msgpack_python_cannot_hold_is_not_called_not_msgpack(self) -> None:
        map_with_an_array_key = b"\x81\x91\x01\x02"  # {[1]: 2}
        with pytest.raises(DecodeError) as caught:
            MsgpackCodec().decode(map_with_an_array_key)
        assert "not MessagePack" not in str(caught.value)
        assert "ValueError" in str(caught.value)
