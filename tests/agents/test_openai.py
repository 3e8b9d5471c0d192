"""taquba_memo_agents.openai: a wrapped openai client pays each model call once per step.

Every test counts what the fake OpenAI server answered (what a provider
would bill). An attempt is one memo object of the step; a worker killed
right after its last response is an attempt abandoned there, and its retry
and a duplicate delivery are new memo objects of the same run and step.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionUserMessageParam
from taquba_memo import ClaimPolicy, InvalidValueTypeError, LocalFileBackend, MemoStore, use_memo
from taquba_memo import sync as memo_sync
from taquba_memo_agents.openai import wrap

from ._attempts import duplicate_workers_sync, per_attempt
from ._kill import attempts_with_a_kill
from .fake_openai import FakeOpenAI, answer_to

MODEL = "fake-1"
ATTEMPTS = 3  # the killed one, its retry, a duplicate delivery
EXPECTED = [answer_to("weather?"), answer_to("and tomorrow?"), answer_to("summary?")]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def sync_client(server: FakeOpenAI) -> openai.OpenAI:
    return wrap(openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0))


def async_client(server: FakeOpenAI) -> openai.AsyncOpenAI:
    return wrap(openai.AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=0))


def user(content: str) -> ChatCompletionUserMessageParam:
    return {"role": "user", "content": content}


def sync_step(client: openai.OpenAI) -> list[str]:
    """A step of three calls: a completion, a streamed completion, a response."""
    first = client.chat.completions.create(model=MODEL, messages=[user("weather?")])
    with client.chat.completions.create(
        model=MODEL, messages=[user("and tomorrow?")], stream=True
    ) as stream:
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    response = client.responses.create(model=MODEL, input="summary?")
    return [first.choices[0].message.content or "", streamed, response.output_text]


async def async_step(client: openai.AsyncOpenAI) -> list[str]:
    """The same three calls through the async client."""
    first = await client.chat.completions.create(model=MODEL, messages=[user("weather?")])
    async with await client.chat.completions.create(
        model=MODEL, messages=[user("and tomorrow?")], stream=True
    ) as stream:
        streamed = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    response = await client.responses.create(model=MODEL, input="summary?")
    return [first.choices[0].message.content or "", streamed, response.output_text]


@pytest.fixture
def sync_store(tmp_path: Path) -> Any:
    with memo_sync.MemoStore(LocalFileBackend(tmp_path / "store"), "agents") as store:
        yield store


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = MemoStore(LocalFileBackend(tmp_path / "store"), "agents")
    yield opened
    await opened.aclose()


def test_three_attempts_of_a_sync_step_pay_what_one_clean_run_pays(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    client = sync_client(fake_openai)
    assert sync_step(client) == EXPECTED  # without the memo: a clean run
    clean = fake_openai.total_paid
    assert clean == 3
    for _ in range(ATTEMPTS):
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            assert sync_step(client) == EXPECTED
    assert fake_openai.total_paid == 2 * clean


async def test_three_attempts_of_an_async_step_pay_what_one_clean_run_pays(
    fake_openai: FakeOpenAI, store: MemoStore
) -> None:
    client = async_client(fake_openai)
    assert await async_step(client) == EXPECTED
    clean = fake_openai.total_paid
    for _ in range(ATTEMPTS):
        with use_memo(store.new_memo("run-1", 1)):
            assert await async_step(client) == EXPECTED
    assert fake_openai.total_paid == 2 * clean


async def test_a_sync_memo_serves_the_async_client_through_its_aio_view(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    client = async_client(fake_openai)
    for _ in range(ATTEMPTS):
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            assert await async_step(client) == EXPECTED
    assert fake_openai.total_paid == 3


def test_a_replay_returns_the_sdk_types_of_the_first_attempt(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    client = sync_client(fake_openai)

    def ask() -> tuple[Any, list[Any]]:
        completion = client.chat.completions.create(model=MODEL, messages=[user("q")])
        stream = client.chat.completions.create(model=MODEL, messages=[user("q")], stream=True)
        return completion, list(stream)

    answers = per_attempt(sync_store, ask)
    for completion, chunks in answers:
        assert isinstance(completion, openai.types.chat.ChatCompletion)
        assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert answers[0] == answers[1]  # the same ids: replayed, not asked again
    assert fake_openai.total_paid == 2


def test_identical_requests_in_one_attempt_are_two_calls_replayed_in_order(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    client = sync_client(fake_openai)

    def ask_twice() -> list[str]:
        return [client.chat.completions.create(model=MODEL, messages=[user("q")]).id for _ in "ab"]

    ids = per_attempt(sync_store, ask_twice)
    assert ids == [["chatcmpl-1", "chatcmpl-2"]] * 2
    assert fake_openai.total_paid == 2


def sync_tool_loop(client: openai.OpenAI) -> str:
    messages: list[Any] = [user("weather?")]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    call = first.choices[0].message
    assert call.tool_calls
    messages.append(call)  # the SDK's own ChatCompletionMessage, passed back
    messages.append({"role": "tool", "tool_call_id": call.tool_calls[0].id, "content": "sunny"})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    return second.choices[0].message.content or ""


def test_a_tool_call_loop_passing_the_sdk_message_back_pays_each_call_once(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    client = sync_client(fake_openai)
    for _ in range(ATTEMPTS):
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            assert sync_tool_loop(client) == "answer with sunny"
    assert fake_openai.total_paid == 2


async def test_an_async_tool_call_loop_passing_the_sdk_message_back_pays_each_call_once(
    fake_openai: FakeOpenAI, store: MemoStore
) -> None:
    client = async_client(fake_openai)
    for _ in range(ATTEMPTS):
        with use_memo(store.new_memo("run-1", 1)):
            messages: list[Any] = [user("weather?")]
            first = await client.chat.completions.create(
                model=MODEL, messages=messages, tools=TOOLS
            )
            call = first.choices[0].message
            assert call.tool_calls
            messages += [
                call,
                {"role": "tool", "tool_call_id": call.tool_calls[0].id, "content": "sunny"},
            ]
            second = await client.chat.completions.create(
                model=MODEL, messages=messages, tools=TOOLS
            )
            assert second.choices[0].message.content == "answer with sunny"
    assert fake_openai.total_paid == 2


@pytest.mark.parametrize("status", [500, 429])
@pytest.mark.parametrize("stream", [False, True])
def test_an_error_response_raises_the_sdks_error_and_is_never_stored(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore, status: int, stream: bool
) -> None:
    client = sync_client(fake_openai)
    fake_openai.fail_next(1, status=status)
    with (
        memo_sync.use_memo(sync_store.new_memo("run-1", 1)),
        pytest.raises(openai.APIStatusError) as raised,
    ):
        client.chat.completions.create(model=MODEL, messages=[user("q")], stream=stream)
    assert raised.value.status_code == status
    for _ in range(2):  # the retry asks again, and its answer is the one stored
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            answer = client.chat.completions.create(
                model=MODEL, messages=[user("q")], stream=stream
            )
            assert answer is not None
            if stream:
                list(answer)
    assert fake_openai.received["/v1/chat/completions"] == 2
    assert fake_openai.total_paid == 1


async def test_an_async_error_response_raises_the_sdks_error_and_is_never_stored(
    fake_openai: FakeOpenAI, store: MemoStore
) -> None:
    client = async_client(fake_openai)
    fake_openai.fail_next(2, status=500)
    for stream in (False, True):
        with use_memo(store.new_memo("run-1", 1)), pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=MODEL, messages=[user("q")], stream=stream)
    with use_memo(store.new_memo("run-1", 1)):
        assert await async_step(client) == EXPECTED
    assert fake_openai.total_paid == 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_call_retried_after_an_error_keeps_its_place_so_the_steps_retry_replays_it(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore, stream: bool
) -> None:
    # The caller retries a failed call itself (as tenacity would): that retry is still the
    # first occurrence, so the step's retry, counting from 0 again, finds its answer.
    client = sync_client(fake_openai)

    def ask() -> Any:
        answer = client.chat.completions.create(model=MODEL, messages=[user("q")], stream=stream)
        return list(answer) if stream else answer

    fake_openai.fail_next(1, status=500)
    with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
        with pytest.raises(openai.InternalServerError):
            ask()
        first = ask()
    with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
        assert ask() == first
    assert fake_openai.received["/v1/chat/completions"] == 2
    assert fake_openai.total_paid == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_an_async_call_retried_after_an_error_keeps_its_place(
    fake_openai: FakeOpenAI, store: MemoStore, stream: bool
) -> None:
    client = async_client(fake_openai)

    async def ask() -> Any:
        if not stream:
            return await client.chat.completions.create(model=MODEL, messages=[user("q")])
        chunks = await client.chat.completions.create(
            model=MODEL, messages=[user("q")], stream=True
        )
        return [chunk async for chunk in chunks]

    fake_openai.fail_next(1, status=500)
    with use_memo(store.new_memo("run-1", 1)):
        with pytest.raises(openai.InternalServerError):
            await ask()
        first = await ask()
    with use_memo(store.new_memo("run-1", 1)):
        assert await ask() == first
    assert fake_openai.received["/v1/chat/completions"] == 2
    assert fake_openai.total_paid == 1


def test_a_stream_closed_early_stores_nothing(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    client = sync_client(fake_openai)
    for _ in range(2):
        with (
            memo_sync.use_memo(sync_store.new_memo("run-1", 1)),
            client.chat.completions.create(
                model=MODEL, messages=[user("a long one")], stream=True
            ) as stream,
        ):
            next(stream)
    assert fake_openai.received["/v1/chat/completions"] == 2


def test_duplicate_workers_with_a_claim_pay_once(tmp_path: Path) -> None:
    with FakeOpenAI(answer_delay_s=0.5, chunk_delay_s=0.05) as server:
        client = wrap(
            openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0),
            claim=ClaimPolicy(lease_s=5, poll_max_s=0.05),
        )
        results = duplicate_workers_sync(tmp_path / "shared", lambda: sync_step(client))
        assert results == [EXPECTED, EXPECTED]
        assert server.total_paid == 3


async def test_async_duplicate_workers_with_a_claim_pay_once(tmp_path: Path) -> None:
    with FakeOpenAI(answer_delay_s=0.5, chunk_delay_s=0.05) as server:
        client = wrap(
            openai.AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=0),
            claim=ClaimPolicy(lease_s=5, poll_max_s=0.05),
        )
        # Two stores on one directory: two workers that share nothing but the bucket.
        stores = [MemoStore(LocalFileBackend(tmp_path / "shared"), "agents") for _ in range(2)]

        async def worker(store: MemoStore) -> list[str]:
            with use_memo(store.new_memo("run-1", 1)):
                return await async_step(client)

        assert await asyncio.gather(*map(worker, stores)) == [EXPECTED, EXPECTED]
        assert server.total_paid == 3
        for opened in stores:
            await opened.aclose()


def killable_step(base_url: str) -> list[str]:
    """:func:`sync_step` through a wrapped client; the first attempt runs in a child process."""
    return sync_step(wrap(openai.OpenAI(api_key="test", base_url=base_url, max_retries=0)))


def unmemoized_step(base_url: str) -> list[str]:
    """:func:`sync_step` through a plain client: the memo is bound, but nothing uses it."""
    return sync_step(openai.OpenAI(api_key="test", base_url=base_url, max_retries=0))


def test_a_worker_sigkilled_after_its_last_response_its_retry_and_a_duplicate_pay_one_run(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    assert attempts_with_a_kill(fake_openai, tmp_path / "bucket", killable_step) == (3, 3)


def test_without_the_memo_the_killed_worker_its_retry_and_a_duplicate_pay_three_runs(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    assert attempts_with_a_kill(fake_openai, tmp_path / "bucket", unmemoized_step) == (3, 9)


def test_outside_any_use_memo_every_call_goes_to_the_server(fake_openai: FakeOpenAI) -> None:
    client = sync_client(fake_openai)
    for _ in range(2):
        assert sync_step(client) == EXPECTED
    assert fake_openai.total_paid == 6


def test_a_sync_client_refuses_an_async_memo_rather_than_paying_again(
    fake_openai: FakeOpenAI, store: MemoStore
) -> None:
    client = sync_client(fake_openai)
    with use_memo(store.new_memo("run-1", 1)), pytest.raises(InvalidValueTypeError):
        client.chat.completions.create(model=MODEL, messages=[user("q")])
    assert fake_openai.received["/v1/chat/completions"] == 0


def test_timeout_and_extra_headers_do_not_change_the_key(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    client = sync_client(fake_openai)
    for attempt in range(2):
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            client.chat.completions.create(
                model=MODEL,
                messages=[user("q")],
                timeout=10 + attempt,
                extra_headers={"X-Request-Id": str(attempt)},
            )
    assert fake_openai.total_paid == 1


def test_wrap_returns_the_client_itself_and_refuses_other_objects() -> None:
    client = openai.OpenAI(api_key="test", base_url="http://127.0.0.1:9/v1")
    assert wrap(client) is client
    assert wrap(wrap(client)) is client
    with pytest.raises(InvalidValueTypeError):
        wrap(object())
