"""pydantic-ai: MemoModel pays each model request once per step (real agent, real HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from taquba_memo import ClaimPolicy, LocalFileBackend, MemoStore, use_memo
from taquba_memo import sync as memo_sync
from taquba_memo_agents.pydantic_ai import MemoModel, stable_messages

from tests.agents._attempts import attempts_async, attempts_sync, per_attempt
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


async def test_three_async_attempts_pay_one_clean_run(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = tool_agent(fake_openai)

    async def step() -> str:
        return (await agent.run("weather?")).output

    clean, attempts = await attempts_async(sync_store, fake_openai, step)
    assert (clean, attempts) == (2, 2)


async def test_streamed_attempts_replay_the_recorded_events(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = tool_agent(fake_openai)
    clean, attempts = await attempts_async(
        sync_store, fake_openai, lambda: streamed(agent, "weather?")
    )
    assert (clean, attempts) == (2, 2)

    plain = Agent(MemoModel(chat_model(fake_openai)))
    with memo_sync.MemoStore(sync_store.backend, "plain") as store:
        answers = []
        for _ in range(3):
            with memo_sync.use_memo(store.new_memo("run-1", 1)):
                answers.append(await streamed(plain, "hello there"))
    assert answers == [answer_to("hello there")] * 3
    assert fake_openai.total_paid == 4 + 1


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


async def test_duplicate_workers_with_a_claim_pay_once(tmp_path: Path) -> None:
    with FakeOpenAI(answer_delay_s=0.5, chunk_delay_s=0.05) as server:
        agent = tool_agent(server, claim=ClaimPolicy(lease_s=5, poll_max_s=0.05))
        # Two stores on one directory: two workers that share nothing but the bucket.
        stores = [MemoStore(LocalFileBackend(tmp_path / "shared"), "agents") for _ in range(2)]

        async def worker(store: MemoStore) -> list[str]:
            with use_memo(store.new_memo("run-1", 1)):
                return [(await agent.run("weather?")).output, await streamed(agent, "q")]

        answers = await asyncio.gather(*map(worker, stores))
        assert answers == [["answer with sunny"] * 2] * 2
        assert server.total_paid == 4  # the tool loop twice: run, then run_stream
        for opened in stores:
            await opened.aclose()


@pytest.mark.parametrize("stream", [False, True], ids=["request", "stream"])
async def test_an_error_response_is_never_stored(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI, stream: bool
) -> None:
    agent = Agent(MemoModel(chat_model(fake_openai)))

    async def ask() -> str:
        return await streamed(agent, "q") if stream else (await agent.run("q")).output

    fake_openai.fail_next(1, status=500)
    with memo_sync.use_memo(sync_store.new_memo("run-1", 1)), pytest.raises(ModelHTTPError):
        await ask()
    for _ in range(2):  # the retry asks again, and its answer is the one stored
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            assert await ask() == answer_to("q")
    assert fake_openai.received["/v1/chat/completions"] == 2
    assert fake_openai.total_paid == 1


def test_identical_requests_in_one_attempt_are_two_calls(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    agent = Agent(MemoModel(chat_model(fake_openai)))

    def sample_twice() -> list[str]:
        return [agent.run_sync("pick one").output for _ in range(2)]

    assert per_attempt(sync_store, sample_twice) == [[answer_to("pick one")] * 2] * 2
    assert fake_openai.total_paid == 2


async def test_outside_a_step_requests_pass_through(fake_openai: FakeOpenAI) -> None:
    agent = tool_agent(fake_openai)
    for _ in range(2):
        assert (await agent.run("weather?")).output == "answer with sunny"
        assert await streamed(agent, "weather?") == "answer with sunny"
    assert fake_openai.total_paid == 8
