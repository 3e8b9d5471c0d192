"""The pydantic codec recipe of docs/codecs.md: agent code returns pydantic models."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, TypeAdapter
from taquba_memo import Memo

M = TypeVar("M")


class PydanticCodec(Generic[M]):
    """The recipe, as docs/codecs.md prints it."""

    def __init__(self, model: type[M]) -> None:
        self._adapter = TypeAdapter(model)

    def encode(self, value: M, /) -> bytes:
        return self._adapter.dump_json(value)

    def decode(self, data: bytes, /) -> M:
        return self._adapter.validate_json(data)


class Answer(BaseModel):
    model: str
    text: str


class AnswerV2(BaseModel):
    model: str
    text: str
    tokens: int  # a field the old entries lack


async def test_a_model_round_trips_through_get_or_compute(memo: Memo) -> None:
    answer = Answer(model="m-1", text="hello")
    codec = PydanticCodec(Answer)
    assert await memo.get_or_compute("k", lambda: answer, codec=codec) == answer
    assert await memo.get("k") == b'{"model":"m-1","text":"hello"}'
    again = await memo.get_or_compute("k", lambda: Answer(model="x", text="x"), codec=codec)
    assert again == answer


async def test_an_entry_of_an_older_schema_is_a_miss_and_is_replaced(memo: Memo) -> None:
    old = Answer(model="m-1", text="old")
    await memo.get_or_compute("k", lambda: old, codec=PydanticCodec(Answer))
    fresh = AnswerV2(model="m-2", text="new", tokens=3)
    assert await memo.get_or_compute("k", lambda: fresh, codec=PydanticCodec(AnswerV2)) == fresh
    assert await memo.get("k") == fresh.model_dump_json().encode()
