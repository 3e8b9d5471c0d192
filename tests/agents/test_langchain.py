"""langchain-core: MemoCache and MemoChatModel pay each model call once per step (real HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumpd
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
from taquba_memo import request_key
from taquba_memo import sync as memo_sync
from taquba_memo_agents.langchain import MemoCache, MemoChatModel

from tests.agents._attempts import attempts_async, attempts_sync, backend
from tests.agents._kill import attempts_with_a_kill
from tests.agents.fake_openai import FakeOpenAI, answer_to

__all__ = ["backend"]


def chat_openai(server: FakeOpenAI, **options: Any) -> ChatOpenAI:
    return chat_openai_at(server.base_url, **options)


def memoized(server: FakeOpenAI, *, use_cache: bool) -> BaseChatModel:
    """The model memoized through langchain's cache, or through the wrapper."""
    if use_cache:
        return chat_openai(server, cache=MemoCache())
    return MemoChatModel(inner=chat_openai(server))


def question(text: str) -> HumanMessage:
    """A message as LangGraph's add_messages stores it: with a random id."""
    return HumanMessage(text, id=str(uuid.uuid4()))


def two_turns(model: BaseChatModel) -> str:
    history: list[BaseMessage] = [question("weather?")]
    history.append(model.invoke(history))
    history.append(question("and in one word?"))
    return str(model.invoke(history).content)


async def two_turns_async(model: BaseChatModel) -> str:
    history: list[BaseMessage] = [question("weather?")]
    history.append(await model.ainvoke(history))
    history.append(question("and in one word?"))
    return str((await model.ainvoke(history)).content)


def two_streamed_turns(model: BaseChatModel) -> str:
    history: list[BaseMessage] = [question("weather?")]
    first = "".join(str(chunk.content) for chunk in model.stream(history))
    history += [HumanMessage(first), question("and in one word?")]
    return "".join(str(chunk.content) for chunk in model.stream(history))


async def two_streamed_turns_async(model: BaseChatModel) -> str:
    history: list[BaseMessage] = [question("weather?")]
    first = "".join([str(chunk.content) async for chunk in model.astream(history)])
    history += [HumanMessage(first), question("and in one word?")]
    return "".join([str(chunk.content) async for chunk in model.astream(history)])


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "wrapper"])
def test_three_attempts_pay_one_clean_run(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI, use_cache: bool
) -> None:
    model = memoized(fake_openai, use_cache=use_cache)
    clean, attempts = attempts_sync(sync_store, fake_openai, lambda: two_turns(model))
    assert (clean, attempts) == (2, 2)


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "wrapper"])
async def test_three_async_attempts_pay_one_clean_run(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI, use_cache: bool
) -> None:
    model = memoized(fake_openai, use_cache=use_cache)
    clean, attempts = await attempts_async(sync_store, fake_openai, lambda: two_turns_async(model))
    assert (clean, attempts) == (2, 2)


def test_streams_are_recorded_and_replayed_where_the_cache_is_skipped(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    cached = chat_openai(fake_openai, cache=MemoCache())
    _, attempts = attempts_sync(sync_store, fake_openai, lambda: two_streamed_turns(cached))
    assert attempts == 6  # langchain's stream() skips the LLM cache: every attempt pays

    fake_openai.paid.clear()
    model = MemoChatModel(inner=chat_openai(fake_openai))
    with memo_sync.MemoStore(sync_store.backend, "wrapped") as store:
        clean, attempts = attempts_sync(store, fake_openai, lambda: two_streamed_turns(model))
    assert (clean, attempts) == (2, 2)


async def test_async_streams_are_recorded_and_replayed(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    model = MemoChatModel(inner=chat_openai(fake_openai))
    clean, attempts = await attempts_async(
        sync_store, fake_openai, lambda: two_streamed_turns_async(model)
    )
    assert (clean, attempts) == (2, 2)


def chat_openai_at(base_url: str, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="small-1", base_url=base_url, api_key=SecretStr("sk-fake"), max_retries=0, **options
    )


def killable_cached_step(base_url: str) -> str:
    """Two turns through MemoCache; the first attempt runs in a child process."""
    return two_turns(chat_openai_at(base_url, cache=MemoCache()))


async def killable_streamed_step(base_url: str) -> str:
    """Two streamed turns through MemoChatModel, async."""
    return await two_streamed_turns_async(MemoChatModel(inner=chat_openai_at(base_url)))


@pytest.mark.parametrize(
    "step", [killable_cached_step, killable_streamed_step], ids=["cache", "wrapper-astream"]
)
def test_a_worker_sigkilled_after_its_last_response_its_retry_and_a_duplicate_pay_one_run(
    fake_openai: FakeOpenAI, tmp_path: Path, step: Callable[[str], Any]
) -> None:
    assert attempts_with_a_kill(fake_openai, tmp_path / "bucket", step) == (2, 2)


class IdKeyedChatModel(MemoChatModel):
    """The naive wrapper: keyed from the messages as they are, ids included."""

    def _key(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Any) -> str:
        return request_key([dumpd(message) for message in messages], namespace=self.namespace)


def test_a_key_with_message_ids_pays_on_every_attempt(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    naive = IdKeyedChatModel(inner=chat_openai(fake_openai))
    _, attempts = attempts_sync(sync_store, fake_openai, lambda: two_turns(naive))
    assert attempts == 6  # the ids differ in every attempt: nothing is ever found again


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "wrapper"])
def test_identical_requests_in_one_attempt_are_two_calls(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI, use_cache: bool
) -> None:
    model = memoized(fake_openai, use_cache=use_cache)

    def sample_twice() -> list[str]:
        return [str(model.invoke([question("pick one")]).content) for _ in range(2)]

    for _ in range(2):
        with memo_sync.use_memo(sync_store.new_memo("run", 1)):
            assert sample_twice() == [answer_to("pick one")] * 2
    assert fake_openai.total_paid == 2


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "wrapper"])
async def test_an_error_is_never_stored(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI, use_cache: bool
) -> None:
    model = memoized(fake_openai, use_cache=use_cache)
    fake_openai.fail_next(4, status=500)
    for _ in range(2):
        with memo_sync.use_memo(sync_store.new_memo("run", 1)):
            with pytest.raises(Exception, match="forced 500"):
                model.invoke([question("now")])
            with pytest.raises(Exception, match="forced 500"):
                await model.ainvoke([question("now")])
    assert fake_openai.received["/v1/chat/completions"] == 4


def test_outside_a_step_calls_pass_through(fake_openai: FakeOpenAI) -> None:
    for use_cache in (True, False):
        model = memoized(fake_openai, use_cache=use_cache)
        assert two_turns(model) == answer_to("and in one word?")
    assert fake_openai.total_paid == 4
