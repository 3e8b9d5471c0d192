"""Real Dramatiq workers on Redis, a worker process SIGKILLed mid-call, pay each LLM call once.

``dramatiq`` runs the actor module of docs/runtimes.md (broker URL set
explicitly) with two worker processes of one thread each, and a prefetch of
one message (``dramatiq_queue_prefetch=1``): the default, twice the threads,
lets one process hold jobs it is not working on, and one kill then stalls
them all. The counting LLM server SIGKILLs the process making a kill point's
call (never answered, so never paid). What the tests show:

- The ``dramatiq`` command exits when one of its worker processes dies (after
  the others finish their current job): a supervisor must start it again.
- The killed process's message comes back only when a maintenance pass
  (each broker command runs one with probability ``maintenance_chance`` per
  million, default 1000) finds its heartbeat older than ``heartbeat_timeout``
  (default 60 s). Tuned small here, it comes back within seconds; with the
  defaults it took minutes, so that variant runs only with ``TAQUBA_MEMO_SOAK=1``.
- Every job returns the right answers and each call is paid once.
- The time limit raises ``TimeLimitExceeded`` (a ``BaseException``) wherever
  the step is, even inside ``get_or_compute`` holding a claim: the memo stays
  consistent, and the retries pay at most the interrupted calls again.
- A message delivered twice at once pays the overlapping calls twice without
  a claim, and each call once with ``ClaimPolicy``.

On local files and on S3, moto and Ceph RGW (RGW skips where the machine
cannot run it, unless ``TAQUBA_MEMO_REQUIRE_SERVERS=1``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results.backends import RedisBackend
from taquba_memo.sync import open_store
from taquba_memo_conformance._processes import ManagedProcess

from .llm_server import (
    CountingLLM,
    answer_to,
    assert_paid_for_a_duplicate,
    skip_unclaimed_duplicate_off_local_files,
)
from .test_rq_workers import SOAK
from .workers import MemoTarget, start_ready, wait_for

MODULE = "tests.runtimes.dramatiq_agent"
# Tuned so a dead process's message comes back within seconds: see the module docstring.
TUNED = {"HEARTBEAT_TIMEOUT_MS": "2000", "MAINTENANCE_CHANCE": "1000000"}
JOBS = 4
PROMPTS_PER_JOB = 3
# Generous bounds that fail a hung worker instead of hanging CI.
RESULT_TIMEOUT_S = 90
DEFAULTS_RESULT_TIMEOUT_S = 600


def prompts_of(job: int) -> list[str]:
    return [f"job {job} prompt {i}" for i in range(PROMPTS_PER_JOB)]


def start_dramatiq(env: dict[str, str], processes: int = 2) -> ManagedProcess:
    """The ``dramatiq`` command, one thread per process; ready when every process is."""
    argv = [sys.executable, "-m", "dramatiq", MODULE, "--processes", str(processes)]
    argv += ["--threads", "1"]
    env = {"dramatiq_queue_prefetch": "1", **env}
    return start_ready("dramatiq", argv, env, "is ready for action", count=processes)


class Client:
    """Sends agent_step messages and reads their results, without importing the actor module."""

    def __init__(self, url: str) -> None:
        self.broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
        # redis-py 8 ends a read after 5 s by default: a blocking wait for a result must not.
        self.results = RedisBackend(client=redis.Redis.from_url(url, socket_timeout=None))

    def send(
        self, step: int, prompts: list[str], claim_lease_s: float | None = None
    ) -> Message[Any]:
        message: Message[Any] = Message(
            queue_name="default",
            actor_name="agent_step",
            args=(step, prompts, claim_lease_s),
            kwargs={},
            options={},
        )
        return self.broker.enqueue(message)

    def result(self, message: Message[Any], timeout_s: float = RESULT_TIMEOUT_S) -> Any:
        return message.get_result(backend=self.results, block=True, timeout=int(timeout_s * 1000))

    def close(self) -> None:
        self.broker.close()
        self.results.client.close()


@pytest.fixture
def client(broker: str) -> Iterator[Client]:
    sender = Client(broker)
    yield sender
    sender.close()


def worker_env(broker: str, memo_target: MemoTarget, llm: CountingLLM) -> dict[str, str]:
    return {
        "DRAMATIQ_BROKER_URL": broker,
        "TAQUBA_MEMO_URL": memo_target.url,
        "LLM_URL": llm.url,
        **memo_target.env,
    }


@pytest.mark.parametrize(
    "settings",
    [
        TUNED,
        pytest.param(
            {}, marks=pytest.mark.skipif(not SOAK, reason="minutes long; TAQUBA_MEMO_SOAK=1")
        ),
    ],
    ids=["tuned", "defaults"],
)
def test_dramatiq_process_killed_mid_call_is_restarted_and_its_job_redelivered(
    broker: str,
    client: Client,
    memo_target: MemoTarget,
    settings: dict[str, str],
) -> None:
    killed_call = prompts_of(0)[1]
    timeout_s = RESULT_TIMEOUT_S if settings else DEFAULTS_RESULT_TIMEOUT_S
    with CountingLLM(kill_on_first={killed_call}) as llm:
        env = {**worker_env(broker, memo_target, llm), **settings}
        first = start_dramatiq(env)
        try:
            messages = [client.send(job, prompts_of(job)) for job in range(JOBS)]
            # One process died: the command stops the other and exits.
            wait_for(first.exited, RESULT_TIMEOUT_S, "the dramatiq command to exit")
            exit_code = first.process.returncode
        finally:
            first.stop()
        restarted = start_dramatiq(env)  # what a supervisor must do
        try:
            results = [client.result(message, timeout_s) for message in messages]
        finally:
            restarted.stop()

    delay_s = llm.arrivals[killed_call][1] - llm.kills[killed_call]
    print(f"\ndramatiq redelivered the killed process's job {delay_s:.1f} s after the kill")
    assert exit_code != 0
    assert results == [[answer_to(prompt) for prompt in prompts_of(job)] for job in range(JOBS)]
    every_call = [prompt for job in range(JOBS) for prompt in prompts_of(job)]
    assert llm.paid == {prompt: 1 for prompt in every_call}
    assert llm.received == {prompt: 2 if prompt == killed_call else 1 for prompt in every_call}


def test_dramatiq_time_limit_interrupts_the_step_and_the_retries_pay_only_interrupted_calls(
    broker: str,
    client: Client,
    memo_target: MemoTarget,
) -> None:
    prompts = [f"prompt {i}" for i in range(5)]
    # Each call takes 0.5 s and an attempt may run 1 s: several attempts, each cut mid-step.
    with CountingLLM(answer_delay_s=0.5) as llm:
        env = {**worker_env(broker, memo_target, llm), **TUNED, "TIME_LIMIT_MS": "1000"}
        worker = start_dramatiq(env, processes=1)
        try:
            message = client.send(2, prompts, claim_lease_s=2.0)
            answers = client.result(message)
            log = worker.output_tail(2000)
        finally:
            worker.stop()

    assert answers == [answer_to(prompt) for prompt in prompts]
    assert "TimeLimitExceeded" in log
    interrupted = sum(llm.paid.values()) - len(prompts)
    print(f"\n{interrupted} interrupted calls paid again; paid {dict(llm.paid)}")
    assert all(1 <= count <= 2 for count in llm.paid.values())
    # Nothing is wedged: the memo answers every call without paying again.
    with open_store(memo_target.url, prefix="agents") as store:
        memo = store.new_memo(message.message_id, 2)
        assert [memo.get(f"call-{i}") is not None for i in range(len(prompts))] == [True] * 5


@pytest.mark.parametrize("claim_lease_s", [None, 1.0], ids=["no-claim", "claim"])
def test_dramatiq_message_delivered_twice_pays_overlapping_calls_once_only_with_a_claim(
    broker: str,
    client: Client,
    memo_target: MemoTarget,
    claim_lease_s: float | None,
) -> None:
    skip_unclaimed_duplicate_off_local_files(memo_target.url, claim_lease_s)
    prompts = prompts_of(0)
    with CountingLLM(answer_delay_s=1.5) as llm:
        worker = start_dramatiq(worker_env(broker, memo_target, llm))
        try:
            message = client.send(1, prompts, claim_lease_s)
            client.broker.enqueue(message)  # the same message id, delivered again at once
            answers = client.result(message)
        finally:
            worker.stop()  # a graceful stop: the other delivery finishes first

    assert answers == [answer_to(prompt) for prompt in prompts]
    assert_paid_for_a_duplicate(llm, prompts, claimed=claim_lease_s is not None)
