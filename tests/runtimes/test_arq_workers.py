"""Real Arq workers on Redis, SIGKILLed mid-call, pay each LLM call once.

``arq tests.runtimes.arq_agent.WorkerSettings`` runs the recipe of
docs/runtimes.md on the Redis the tests start: an async store opened in
``on_startup``, each job making three billed calls through ``get_or_compute``
with ``ctx["job_id"]`` as the run id. An Arq worker is one process running
its jobs on one event loop, so the counting LLM server's kill takes the whole
worker down. What the tests show:

- A killed worker does not come back by itself: a supervisor must start it
  again (the test does). Arq keeps a job in its queue until it finished, and
  another worker starts it only once its in-progress key expires,
  ``job_timeout + 10`` s after the dead worker took it (the 10 is fixed in
  Arq): the retry (``job_try`` 2) finds the earlier calls memoized, and each
  call is paid once.
- A job whose in-progress key expires while it still runs (a job that
  blocks its event loop cannot be cancelled at ``job_timeout``; here the key
  is deleted) is run again by another worker at once: the overlapping calls
  are paid twice without a claim, and each call once with ``ClaimPolicy``.

On local files and on S3 (moto and Ceph RGW), as the other runtime tests.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.jobs import Job, JobResult
from taquba_memo_conformance._processes import ManagedProcess

from .llm_server import (
    CountingLLM,
    answer_to,
    assert_paid_for_a_duplicate,
    skip_unclaimed_duplicate_off_local_files,
)
from .workers import MemoTarget, start_ready, wait_for

# arq 0.28 passes redis-py 6+ an argument it deprecated; this repository runs redis-py 8.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_on_timeout:DeprecationWarning")

SETTINGS = "tests.runtimes.arq_agent.WorkerSettings"
PROMPTS = [f"prompt {i}" for i in range(3)]
# Short, so that a dead worker's job is taken again within the test: job_timeout + 10 s.
# A job still running at its timeout fails for good (Arq does not retry a timeout).
JOB_TIMEOUT_S = 2
# Longer than the duplicates' jobs (three calls of 1.5 s each).
SLOW_JOB_TIMEOUT_S = 30
# Generous bounds that fail a hung worker instead of hanging CI.
RESULT_TIMEOUT_S = 90


def start_arq(env: dict[str, str]) -> ManagedProcess:
    """The ``arq`` command on the worker settings; ready once it has logged Redis's info."""
    return start_ready("arq-worker", [sys.executable, "-m", "arq", SETTINGS], env, "redis_version=")


def worker_env(
    broker: str,
    memo_target: MemoTarget,
    llm: CountingLLM,
    job_timeout_s: int = JOB_TIMEOUT_S,
) -> dict[str, str]:
    return {
        "ARQ_REDIS_URL": broker,
        "ARQ_JOB_TIMEOUT_S": str(job_timeout_s),
        "TAQUBA_MEMO_URL": memo_target.url,
        "LLM_URL": llm.url,
        **memo_target.env,
    }


def finished_runs(workers: list[ManagedProcess]) -> int:
    """How many jobs the workers finished, from their logs (Arq logs ``←`` for each)."""
    return sum(worker.output_tail(4000).count(" ← ") for worker in workers)


class Client:
    """Enqueues agent_step jobs and reads their outcome, as an Arq client does (one loop)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        pool = await create_pool(RedisSettings.from_dsn(self.url))
        try:
            return await getattr(self, method)(pool, *args, **kwargs)
        finally:
            await pool.aclose()

    @staticmethod
    async def _enqueue(pool: Any, *args: Any) -> str:
        job = await pool.enqueue_job("agent_step", *args)
        assert job is not None
        job_id: str = job.job_id
        return job_id

    @staticmethod
    async def _outcome(pool: Any, job_id: str) -> JobResult:
        job = Job(job_id, pool)
        await job.result(timeout=RESULT_TIMEOUT_S)
        info = await job.result_info()
        assert info is not None
        return info

    @staticmethod
    async def _expire_in_progress(pool: Any, job_id: str) -> None:
        assert await pool.delete(in_progress_key_prefix + job_id) == 1

    def enqueue(self, step: int, prompts: list[str], claim_lease_s: float | None = None) -> str:
        job_id: str = asyncio.run(self._call("_enqueue", step, prompts, claim_lease_s))
        return job_id

    def outcome(self, job_id: str) -> JobResult:
        """What the job returned, once it finished (raising what it raised)."""
        info: JobResult = asyncio.run(self._call("_outcome", job_id))
        return info

    def expire_in_progress(self, job_id: str) -> None:
        asyncio.run(self._call("_expire_in_progress", job_id))


def test_arq_worker_killed_mid_job_is_restarted_and_the_job_retried_paying_each_call_once(
    broker: str,
    memo_target: MemoTarget,
) -> None:
    killed_call = PROMPTS[1]
    client = Client(broker)
    with CountingLLM(kill_on_first={killed_call}) as llm:
        env = worker_env(broker, memo_target, llm)
        first = start_arq(env)
        try:
            job_id = client.enqueue(3, PROMPTS)
            wait_for(first.exited, RESULT_TIMEOUT_S, "the killed worker to exit")
        finally:
            first.stop()
        restarted = start_arq(env)  # what a supervisor must do
        try:
            outcome = client.outcome(job_id)
        finally:
            restarted.stop()

    delay_s = llm.arrivals[killed_call][1] - llm.kills[killed_call]
    print(f"\narq retried the dead worker's job {delay_s:.1f} s after the kill")
    assert outcome.success
    assert outcome.result == [answer_to(prompt) for prompt in PROMPTS]
    assert outcome.job_try == 2
    assert llm.paid == {prompt: 1 for prompt in PROMPTS}
    # The killed call reached the LLM but was never answered nor paid.
    assert llm.received == {prompt: 2 if prompt == killed_call else 1 for prompt in PROMPTS}
    assert len(llm.killed_pids) == 1


@pytest.mark.parametrize("claim_lease_s", [None, 1.0], ids=["no-claim", "claim"])
def test_arq_job_run_twice_at_once_pays_overlapping_calls_once_only_with_a_claim(
    broker: str,
    memo_target: MemoTarget,
    claim_lease_s: float | None,
) -> None:
    skip_unclaimed_duplicate_off_local_files(memo_target.url, claim_lease_s)
    client = Client(broker)
    with CountingLLM(answer_delay_s=1.5) as llm:
        # One job at a time per worker: the second run is the other worker's.
        env = {**worker_env(broker, memo_target, llm, SLOW_JOB_TIMEOUT_S), "ARQ_MAX_JOBS": "1"}
        workers = [start_arq(env), start_arq(env)]
        try:
            job_id = client.enqueue(1, PROMPTS, claim_lease_s)
            wait_for(lambda: llm.received[PROMPTS[0]] == 1, RESULT_TIMEOUT_S, "the first call")
            client.expire_in_progress(job_id)  # as when it expires under a live job
            wait_for(lambda: finished_runs(workers) == 2, RESULT_TIMEOUT_S, "both runs")
            outcome = client.outcome(job_id)
        finally:
            for worker in workers:
                worker.stop()

    assert outcome.success
    assert outcome.result == [answer_to(prompt) for prompt in PROMPTS]
    assert_paid_for_a_duplicate(llm, PROMPTS, claimed=claim_lease_s is not None)
