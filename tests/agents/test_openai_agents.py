"""openai-agents: MemoModel pays each model call once per step (real Runner, real HTTP)."""

from __future__ import annotations

from typing import Any

import openai
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool
from agents.models.interface import Model, ModelProvider
from agents.models.openai_provider import OpenAIProvider
from taquba_memo import ClaimPolicy, request_key
from taquba_memo import sync as memo_sync
from taquba_memo_agents.openai_agents import MemoModel, MemoModelProvider, request_of

from tests.agents._attempts import (
    attempts_sync,
    per_attempt,
)
from tests.agents._framework_spec import FrameworkSpec
from tests.agents.fake_openai import FakeOpenAI, answer_to

NO_TRACING = RunConfig(tracing_disabled=True)  # nothing leaves the machine


@function_tool
def lookup(query: str) -> str:
    """Look the weather up."""
    return "sunny"


def chat_model(server: FakeOpenAI) -> OpenAIChatCompletionsModel:
    """The SDK's Chat Completions model on the fake server, without the SDK's own retries."""
    client = openai.AsyncOpenAI(api_key="sk-fake", base_url=server.base_url, max_retries=0)
    return OpenAIChatCompletionsModel(model="fake-1", openai_client=client)


def tool_agent(server: FakeOpenAI, claim: ClaimPolicy | None = None) -> Agent[None]:
    """An agent with one tool: the model calls it, then answers with its result (two calls)."""
    model = MemoModel(chat_model(server), claim=claim)
    return Agent(name="weather", instructions="be brief", model=model, tools=[lookup])


def plain_agent(server: FakeOpenAI) -> Agent[None]:
    return Agent(name="plain", model=MemoModel(chat_model(server)))


async def streamed(agent: Agent[None], prompt: str) -> str:
    run = Runner.run_streamed(agent, prompt, run_config=NO_TRACING)
    async for _ in run.stream_events():
        pass
    return str(run.final_output)


def test_three_attempts_pay_one_clean_run(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = tool_agent(fake_openai)

    def step() -> str:
        return str(Runner.run_sync(agent, "weather?", run_config=NO_TRACING).final_output)

    clean, attempts = attempts_sync(sync_store, fake_openai, step)
    assert (clean, attempts) == (2, 2)


async def test_a_replayed_stream_gives_the_same_events(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = plain_agent(fake_openai)

    async def deltas() -> list[str]:
        run = Runner.run_streamed(agent, "hello there", run_config=NO_TRACING)
        return [
            event.data.delta
            async for event in run.stream_events()
            if event.type == "raw_response_event"
            and event.data.type == "response.output_text.delta"
        ]

    runs = []
    for _ in range(2):
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            runs.append(await deltas())
    assert runs[0] == runs[1] == ["answer", " to", " hello", " there"]
    assert fake_openai.total_paid == 1


def test_a_replayed_response_is_the_one_paid_for(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = tool_agent(fake_openai)

    def responses() -> list[object]:
        run = Runner.run_sync(agent, "weather?", run_config=NO_TRACING)
        return [response.output for response in run.raw_responses]

    answers = per_attempt(sync_store, responses)
    assert answers[0] == answers[1]  # the same provider data: replayed, not asked again
    assert fake_openai.total_paid == 2


def test_identical_requests_in_one_attempt_are_two_calls(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = plain_agent(fake_openai)

    def sample_twice() -> list[str]:
        return [
            str(Runner.run_sync(agent, "pick one", run_config=NO_TRACING).final_output)
            for _ in range(2)
        ]

    assert per_attempt(sync_store, sample_twice) == [[answer_to("pick one")] * 2] * 2
    assert fake_openai.total_paid == 2


class FakeServerProvider(ModelProvider):
    """Every model name served by the fake server."""

    def __init__(self, server: FakeOpenAI) -> None:
        client = openai.AsyncOpenAI(api_key="sk-fake", base_url=server.base_url, max_retries=0)
        self.provider = OpenAIProvider(openai_client=client, use_responses=False)

    def get_model(self, model_name: str | None) -> Model:
        return self.provider.get_model(model_name)


def test_the_provider_wraps_every_model_it_gives(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    provider = MemoModelProvider(FakeServerProvider(fake_openai))
    config = RunConfig(model_provider=provider, tracing_disabled=True)
    agent = Agent(name="weather", model="fake-1", tools=[lookup])
    answers = per_attempt(
        sync_store, lambda: Runner.run_sync(agent, "weather?", run_config=config).final_output, 3
    )
    assert answers == ["answer with sunny"] * 3
    assert fake_openai.total_paid == 2


class TestOpenAIAgents(FrameworkSpec):
    """The shared specification, with ``Runner.run`` and ``Runner.run_streamed``."""

    error = openai.APIError

    def tool_agent(self, server: FakeOpenAI, claim: ClaimPolicy | None = None) -> Any:
        return tool_agent(server, claim)

    def plain_agent(self, server: FakeOpenAI) -> Any:
        return plain_agent(server)

    async def ask(self, agent: Any, prompt: str, *, stream: bool) -> str:
        if stream:
            return await streamed(agent, prompt)
        return str((await Runner.run(agent, prompt, run_config=NO_TRACING)).final_output)


def test_models_of_one_name_on_two_servers_have_two_keys() -> None:
    class OwnServer(Model):
        """A model that keeps its server itself, as LitellmModel does (no SDK client)."""

        def __init__(self, base_url: str) -> None:
            self.model = "openai/gpt-test"
            self.base_url = base_url

        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    def key(model: Model) -> str:
        return request_key(request_of(model, {"input": "hello"}, stream=False))

    assert key(OwnServer("http://a.invalid/v1")) != key(OwnServer("http://b.invalid/v1"))
    assert key(OwnServer("http://a.invalid/v1")) == key(OwnServer("http://a.invalid/v1"))
