"""request_key: content_key's RFC 8785 key, with SDK objects at any depth keyed as plain data.

A pydantic model (or anything with a callable ``model_dump``) counts as
``model_dump(mode="json", exclude_none=True)``, a dataclass as
``dataclasses.asdict``; everything else keeps content_key's rules and errors.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pytest
from pydantic import BaseModel
from taquba_memo import EncodeError, MemoBackend, MemoStore, content_key, request_key
from taquba_memo.sync import MemoStore as SyncMemoStore
from taquba_memo_conformance.agent_models import Usage


class Function(BaseModel):
    name: str
    arguments: str


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: Function


class ChatCompletionMessage(BaseModel):
    """Shaped like openai's ``openai.types.chat.ChatCompletionMessage`` (not installed here)."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


@dataclasses.dataclass
class Turn:
    message: ChatCompletionMessage
    usage: Usage


def request(*messages: object) -> dict[str, Any]:
    return {"model": "small-1", "temperature": 0.2, "messages": list(messages)}


USER = {"role": "user", "content": "What is the weather in Paris?"}


def test_a_plain_request_gets_exactly_its_content_key() -> None:
    assert request_key(request(USER)) == content_key(request(USER))
    assert request_key(request(USER), namespace="agent/v1") == content_key(
        request(USER), namespace="agent/v1"
    )


def test_an_sdk_message_inside_the_request_keys_as_its_json_without_nones() -> None:
    message = ChatCompletionMessage(content="Sunny.")
    as_dict = {"role": "assistant", "content": "Sunny."}
    assert request_key(request(USER, message)) == content_key(request(USER, as_dict))


def test_nested_models_are_converted_at_any_depth() -> None:
    message = ChatCompletionMessage(
        tool_calls=[ToolCall(id="c1", function=Function(name="weather", arguments="{}"))]
    )
    plain = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
        ],
    }
    assert request_key({"turns": [[message]]}) == content_key({"turns": [[plain]]})


def test_a_dataclass_keys_as_asdict_and_a_model_inside_it_as_its_dump() -> None:
    turn = Turn(ChatCompletionMessage(content="hi"), Usage(3, 1))
    plain = {
        "message": {"role": "assistant", "content": "hi"},
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    assert request_key([turn]) == content_key([plain])


def test_any_object_with_a_callable_model_dump_is_keyed_by_it() -> None:
    class SdkObject:
        def model_dump(self, *, mode: str, exclude_none: bool) -> dict[str, object]:
            assert (mode, exclude_none) == ("json", True)
            return {"id": "obj-1"}

    assert request_key({"x": SdkObject()}) == content_key({"x": {"id": "obj-1"}})


def test_everything_else_keeps_content_keys_errors_naming_where() -> None:
    with pytest.raises(EncodeError, match=r"\$\['messages'\]\[1\]: set"):
        request_key(request(USER, {1, 2}))
    with pytest.raises(EncodeError, match="has no canonical encoding"):
        request_key(object())
    with pytest.raises(EncodeError, match="has no canonical encoding"):
        request_key(ChatCompletionMessage)  # the class, not a message


def test_a_model_dump_that_fails_is_an_encode_error_naming_where() -> None:
    class Broken:
        def model_dump(self, **_: object) -> dict[str, object]:
            raise RuntimeError("no")

    with pytest.raises(EncodeError, match=r"\$\['messages'\]\[0\]: Broken"):
        request_key(request(Broken()))


def test_a_model_dumping_something_content_key_refuses_is_refused_there() -> None:
    class Odd:
        def model_dump(self, **_: object) -> object:
            return {"tags": {"a"}}

    with pytest.raises(EncodeError, match=r"\$\['tags'\]: set"):
        request_key(Odd())


async def test_the_agent_loop_memoizes_a_step_whose_request_holds_sdk_messages(
    backend: MemoBackend,
) -> None:
    """The loop that broke content_key: the first answer goes back into the next request."""
    calls = 0

    async def call_model(messages: list[object]) -> bytes:
        nonlocal calls
        calls += 1
        return f"answer {len(messages)}".encode()

    first = ChatCompletionMessage(content="Let me check.")
    messages: list[object] = [USER, first, {"role": "user", "content": "And tomorrow?"}]

    for _attempt in range(2):
        memo = MemoStore(backend, "memo").new_memo("run", 1)
        key = request_key(request(*messages))
        assert await memo.get_or_compute(key, lambda: call_model(messages)) == b"answer 3"
    assert calls == 1


def test_the_sync_api_finds_the_same_entry(backend: MemoBackend) -> None:
    with SyncMemoStore(backend, "memo") as store:
        memo = store.new_memo("run", 1)
        key = request_key(request(USER, ChatCompletionMessage(content="Sunny.")))
        memo.put(key, b"stored")
        same = request_key(request(USER, {"role": "assistant", "content": "Sunny."}))
        assert memo.get(same) == b"stored"
