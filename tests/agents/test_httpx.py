"""taquba_memo_agents.httpx: an httpx client with a memo transport pays each call once per step.

The client is a plain httpx client speaking to the fake OpenAI server, as
any httpx-based SDK does; the server counts what it answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from taquba_memo import LocalFileBackend, MemoStore, use_memo
from taquba_memo import sync as memo_sync
from taquba_memo_agents.httpx import AsyncMemoTransport, MemoTransport

from ._attempts import per_attempt
from ._kill import attempts_with_a_kill
from .fake_openai import FakeOpenAI, answer_to

ATTEMPTS = 3


def chat(content: str, *, stream: bool = False) -> dict[str, Any]:
    return {"model": "fake-1", "messages": [{"role": "user", "content": content}], "stream": stream}


def sse_text(lines: Iterator[str]) -> str:
    """The content of a streamed chat completion, from its server-sent events."""
    text = ""
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            text += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
    return text


@pytest.fixture
def sync_store(tmp_path: Path) -> Iterator[memo_sync.MemoStore]:
    with memo_sync.MemoStore(LocalFileBackend(tmp_path / "store"), "agents") as store:
        yield store


def sync_step(client: httpx.Client) -> list[str]:
    first = client.post("/chat/completions", json=chat("weather?"))
    first.raise_for_status()
    with client.stream("POST", "/chat/completions", json=chat("tomorrow?", stream=True)) as reply:
        reply.raise_for_status()
        assert reply.headers["content-type"] == "text/event-stream"
        streamed = sse_text(reply.iter_lines())
    return [first.json()["choices"][0]["message"]["content"], streamed]


def test_three_attempts_through_the_sync_transport_pay_what_one_clean_run_pays(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    with httpx.Client(base_url=fake_openai.base_url, transport=MemoTransport()) as client:
        expected = [answer_to("weather?"), answer_to("tomorrow?")]
        assert sync_step(client) == expected  # outside use_memo: a clean run
        clean = fake_openai.total_paid
        for _ in range(ATTEMPTS):
            with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
                assert sync_step(client) == expected
    assert fake_openai.total_paid == 2 * clean == 4


def killable_step(base_url: str) -> list[str]:
    """:func:`sync_step` through a memo transport; the first attempt runs in a child process."""
    with httpx.Client(base_url=base_url, transport=MemoTransport()) as client:
        return sync_step(client)


def test_a_worker_sigkilled_after_its_last_response_its_retry_and_a_duplicate_pay_one_run(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    assert attempts_with_a_kill(fake_openai, tmp_path / "bucket", killable_step) == (2, 2)


async def test_three_attempts_through_the_async_transport_pay_what_one_clean_run_pays(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    store = MemoStore(LocalFileBackend(tmp_path / "store"), "agents")
    transport = AsyncMemoTransport()
    async with httpx.AsyncClient(base_url=fake_openai.base_url, transport=transport) as client:
        for _ in range(ATTEMPTS):
            with use_memo(store.new_memo("run-1", 1)):
                first = await client.post("/chat/completions", json=chat("weather?"))
                body = chat("tomorrow?", stream=True)
                async with client.stream("POST", "/chat/completions", json=body) as reply:
                    lines = [line async for line in reply.aiter_lines()]
                assert first.json()["choices"][0]["message"]["content"] == answer_to("weather?")
                assert sse_text(iter(lines)) == answer_to("tomorrow?")
                assert [line for line in lines if line][-1] == "data: [DONE]"
    await store.aclose()
    assert fake_openai.total_paid == 2


def test_an_error_response_is_returned_as_it_came_never_stored_and_keeps_its_place(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    # The caller (or a retrying transport) sends the failed request again: it is still the
    # first occurrence, so the step's retry replays its answer instead of paying again.
    fake_openai.fail_next(1, status=500)
    with httpx.Client(base_url=fake_openai.base_url, transport=MemoTransport()) as client:
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            failed = client.post("/chat/completions", json=chat("q"))
            assert failed.status_code == 500
            assert failed.json()["error"]["message"] == "forced 500"
            first = client.post("/chat/completions", json=chat("q")).json()
        for _ in range(2):
            with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
                assert client.post("/chat/completions", json=chat("q")).json() == first
    assert fake_openai.received["/v1/chat/completions"] == 2
    assert fake_openai.total_paid == 1


async def test_an_async_request_retried_after_an_error_response_keeps_its_place(
    fake_openai: FakeOpenAI, store: MemoStore
) -> None:
    fake_openai.fail_next(1, status=500)
    transport = AsyncMemoTransport()
    async with httpx.AsyncClient(base_url=fake_openai.base_url, transport=transport) as client:
        with use_memo(store.new_memo("run-1", 1)):
            assert (await client.post("/chat/completions", json=chat("q"))).status_code == 500
            first = (await client.post("/chat/completions", json=chat("q"))).json()
        with use_memo(store.new_memo("run-1", 1)):
            assert (await client.post("/chat/completions", json=chat("q"))).json() == first
    assert fake_openai.total_paid == 1


def test_identical_requests_in_one_attempt_are_two_calls(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    with httpx.Client(base_url=fake_openai.base_url, transport=MemoTransport()) as client:
        ids = per_attempt(
            sync_store,
            lambda: [client.post("/chat/completions", json=chat("q")).json()["id"] for _ in "ab"],
        )
    assert ids == [["chatcmpl-1", "chatcmpl-2"]] * 2


def test_the_key_ignores_headers_and_the_order_of_json_keys(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    bodies = [json.dumps(chat("q")), json.dumps(chat("q"), sort_keys=True)]
    with httpx.Client(base_url=fake_openai.base_url, transport=MemoTransport()) as client:
        for attempt, body in enumerate(bodies):
            with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
                headers = {"Content-Type": "application/json", "X-Request-Id": str(attempt)}
                client.post("/chat/completions", content=body, headers=headers)
    assert fake_openai.total_paid == 1


def test_the_first_attempt_sees_the_headers_a_retry_replays_without_volatile_ones(
    fake_openai: FakeOpenAI, sync_store: memo_sync.MemoStore
) -> None:
    with httpx.Client(base_url=fake_openai.base_url, transport=MemoTransport()) as client:
        replies = per_attempt(sync_store, lambda: client.post("/chat/completions", json=chat("q")))
    live, replayed = replies
    assert live.headers == replayed.headers
    assert "date" not in replayed.headers
    assert replayed.headers["content-type"] == "application/json"
    assert replayed.json() == live.json()
