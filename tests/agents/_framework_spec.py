"""What every agent-framework integration must do, written once: each framework's test module
subclasses :class:`FrameworkSpec` with the few ways that framework runs an agent.

The agents are real, their model calls real HTTP to the counting fake server.
A *tool agent* has one tool: the model calls it, then answers with its result
(two model calls, ``"answer with sunny"``). A *plain agent* answers
``answer_to(prompt)`` in one call. ``ask`` runs an agent once, streamed or not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from taquba_memo import ClaimPolicy
from taquba_memo import sync as memo_sync

from tests.agents._attempts import attempts_async, duplicate_workers_async, error_then_retries
from tests.agents.fake_openai import FakeOpenAI, answer_to

__all__ = ["TOOL_ANSWER", "FrameworkSpec"]

TOOL_ANSWER = "answer with sunny"


class FrameworkSpec:
    """The shared tests; a subclass named ``Test...`` provides the four members below."""

    error: type[BaseException]  # what a run raises on a 500 from the model

    def tool_agent(self, server: FakeOpenAI, claim: ClaimPolicy | None = None) -> Any:
        raise NotImplementedError

    def plain_agent(self, server: FakeOpenAI) -> Any:
        raise NotImplementedError

    async def ask(self, agent: Any, prompt: str, *, stream: bool) -> str:
        raise NotImplementedError

    @pytest.mark.parametrize("stream", [False, True], ids=["run", "streamed"])
    async def test_three_async_attempts_pay_one_clean_run(
        self, sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI, stream: bool
    ) -> None:
        agent = self.tool_agent(fake_openai)
        clean, attempts = await attempts_async(
            sync_store, fake_openai, lambda: self.ask(agent, "weather?", stream=stream)
        )
        assert (clean, attempts) == (2, 2)  # streamed: the retries replay the recorded events

    async def test_duplicate_workers_with_a_claim_pay_once(self, tmp_path: Path) -> None:
        def step_on(server: FakeOpenAI) -> Callable[[], Awaitable[list[str]]]:
            agent = self.tool_agent(server, claim=ClaimPolicy(lease_s=5, poll_max_s=0.05))

            async def step() -> list[str]:
                return [await self.ask(agent, "weather?", stream=s) for s in (False, True)]

            return step

        answers, paid = await duplicate_workers_async(tmp_path / "shared", step_on)
        assert answers == [[TOOL_ANSWER] * 2] * 2
        assert paid == 4  # the tool loop twice, run then streamed: what one worker pays

    @pytest.mark.parametrize("stream", [False, True], ids=["run", "streamed"])
    async def test_an_error_response_is_never_stored(
        self, sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI, stream: bool
    ) -> None:
        agent = self.plain_agent(fake_openai)
        await error_then_retries(
            sync_store,
            fake_openai,
            lambda: self.ask(agent, "q", stream=stream),
            self.error,
            answer_to("q"),
        )

    async def test_outside_a_step_calls_pass_through(self, fake_openai: FakeOpenAI) -> None:
        agent = self.tool_agent(fake_openai)
        for _ in range(2):
            for stream in (False, True):
                assert await self.ask(agent, "weather?", stream=stream) == TOOL_ANSWER
        assert fake_openai.total_paid == 8
