"""PydanticCodec: agent code returns pydantic models; entries are their JSON, a stale one a miss."""

from __future__ import annotations

import subprocess
import sys

import pytest
from taquba_memo import (
    DecodeError,
    EncodeError,
    InvalidValueTypeError,
    MemoBackend,
    MemoStore,
    MissingDependencyError,
    PydanticCodec,
)
from taquba_memo.sync import MemoStore as SyncMemoStore
from taquba_memo_conformance.agent_models import Answer, AnswerV2


async def test_a_model_round_trips_through_get_or_compute(backend: MemoBackend) -> None:
    memo = MemoStore(backend, "memo").new_memo("run", 1)
    answer = Answer(model="m-1", text="hello")
    codec = PydanticCodec(Answer)
    assert await memo.get_or_compute("k", lambda: answer, codec=codec) == answer
    assert await memo.get("k") == b'{"model":"m-1","text":"hello"}'
    again = await memo.get_or_compute("k", lambda: Answer(model="x", text="x"), codec=codec)
    assert again == answer


async def test_an_entry_that_no_longer_validates_is_a_miss_and_is_replaced(
    backend: MemoBackend,
) -> None:
    memo = MemoStore(backend, "memo").new_memo("run", 1)
    await memo.get_or_compute(
        "k", lambda: Answer(model="m-1", text="old"), codec=PydanticCodec(Answer)
    )
    fresh = AnswerV2(model="m-2", text="new", tokens=3)
    assert await memo.get_or_compute("k", lambda: fresh, codec=PydanticCodec(AnswerV2)) == fresh
    assert await memo.get("k") == fresh.model_dump_json().encode()


def test_the_sync_api_takes_it_too(backend: MemoBackend) -> None:
    with SyncMemoStore(backend, "memo") as store:
        memo = store.new_memo("run", 1)
        answer = Answer(model="m-1", text="sync")
        assert memo.get_or_compute("k", lambda: answer, codec=PydanticCodec(Answer)) == answer
        assert memo.content_get({"q": 1}, codec=PydanticCodec(Answer)) is None


def test_decoding_a_stale_value_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="AnswerV2"):
        PydanticCodec(AnswerV2).decode(b'{"model":"m","text":"t"}')
    with pytest.raises(DecodeError):
        PydanticCodec(Answer).decode(b"not json")


def test_only_instances_of_the_model_are_encoded() -> None:
    with pytest.raises(EncodeError, match="Answer instances"):
        PydanticCodec(Answer).encode({"model": "m", "text": "t"})  # type: ignore[arg-type]


def test_the_model_must_be_a_pydantic_model_class() -> None:
    for not_a_model in (dict, Answer(model="m", text="t"), "Answer"):
        with pytest.raises(InvalidValueTypeError):
            PydanticCodec(not_a_model)  # type: ignore[arg-type, type-var]


def test_without_pydantic_it_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)  # what an absent package imports as
    with pytest.raises(MissingDependencyError, match=r"taquba-memo\[pydantic\]"):
        PydanticCodec(Answer)


def test_importing_taquba_memo_never_imports_pydantic() -> None:
    code = "import sys, taquba_memo, taquba_memo.sync; print('pydantic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
