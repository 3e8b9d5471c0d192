"""pydantic-ai: MemoModel pays each model request once per step (real agent, real HTTP)."""

from __future__ import annotations

from typing import Any

import openai
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from taquba_memo import ClaimPolicy
from taquba_memo import sync as memo_sync
from taquba_memo_agents.pydantic_ai import MemoModel, stable_messages

from tests.agents._attempts import (
    attempts_sync,
    per_attempt,
)
from tests.agents._framework_spec import FrameworkSpec
from tests.agents.fake_openai import FakeOpenAI, answer_to


def chat_model(server: FakeOpenAI) -> OpenAIChatModel:
    """pydantic-ai's OpenAI chat model on the fake server, without the SDK's own retries."""
    client = openai.AsyncOpenAI(api_key="sk-fake", base_url=server.base_url, max_retries=0)
    return OpenAIChatModel("fake-1", provider=OpenAIProvider(openai_client=client))


def tool_agent(server: FakeOpenAI, claim: ClaimPolicy | None = None) -> Agent[None, str]:
    """An agent with one tool: the model calls it, then answers with its result (two requests)."""
    agent = Agent(MemoModel(chat_model(server), claim=claim))

    @agent.tool_plain
    def lookup(query: str) -> str:
        return "sunny"

    return agent


async def streamed(agent: Agent[None, str], prompt: str) -> str:
    async with agent.run_stream(prompt) as run:
        return "".join([text async for text in run.stream_text(delta=True)])


def test_three_attempts_pay_one_clean_run(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = tool_agent(fake_openai)
    clean, attempts = attempts_sync(
        sync_store, fake_openai, lambda: agent.run_sync("weather?").output
    )
    assert (clean, attempts) == (2, 2)


async def test_a_replayed_stream_gives_the_same_events_and_response(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    model = MemoModel(chat_model(fake_openai))
    agent = Agent(model)

    async def events_and_messages() -> tuple[list[object], list[object]]:
        events: list[object] = []
        async with agent.run_stream("hello there") as run:
            async for text in run.stream_text(delta=True):
                events.append(text)
        return events, stable_messages(run.all_messages())

    runs = []
    for _ in range(2):
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            runs.append(await events_and_messages())
    assert runs[0] == runs[1]
    assert fake_openai.total_paid == 1


def test_a_replayed_response_is_the_one_paid_for(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = tool_agent(fake_openai)

    def last_response() -> tuple[object, ...]:
        response = agent.run_sync("weather?").new_messages()[-1]
        assert isinstance(response, ModelResponse)
        return response.parts, response.provider_response_id, response.timestamp

    responses = per_attempt(sync_store, last_response)
    assert responses[0] == responses[1]  # not asked again: the same provider id and timestamp
    assert fake_openai.total_paid == 2


def test_the_keys_ignore_what_pydantic_ai_sets_anew_on_every_run(
    fake_openai: FakeOpenAI,
) -> None:
    agent = tool_agent(fake_openai)
    runs = [agent.run_sync("weather?").all_messages()[:1] for _ in range(2)]
    assert runs[0] != runs[1]  # timestamps, run ids, conversation ids
    assert stable_messages(runs[0]) == stable_messages(runs[1])


def test_identical_requests_in_one_attempt_are_two_calls(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = Agent(MemoModel(chat_model(fake_openai)))

    def sample_twice() -> list[str]:
        return [agent.run_sync("pick one").output for _ in range(2)]

    assert per_attempt(sync_store, sample_twice) == [[answer_to("pick one")] * 2] * 2
    assert fake_openai.total_paid == 2


class TestPydanticAi(FrameworkSpec):
    """The shared specification, with ``Agent.run`` and ``Agent.run_stream``."""

    error = ModelHTTPError

    def tool_agent(self, server: FakeOpenAI, claim: ClaimPolicy | None = None) -> Any:
        return tool_agent(server, claim)

    def plain_agent(self, server: FakeOpenAI) -> Any:
        return Agent(MemoModel(chat_model(server)))

    async def ask(self, agent: Any, prompt: str, *, stream: bool) -> str:
        return await streamed(agent, prompt) if stream else (await agent.run(prompt)).output
