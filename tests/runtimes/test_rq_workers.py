"""Real RQ workers, their work horse SIGKILLed mid-job, pay each call once plus the calls in flight.

``rq worker`` runs on the Redis the tests start; the job module opens its
store at import time as docs/runtimes.md shows, and each job makes five
billed calls through ``taquba_memo.sync`` ``get_or_compute``, with the job id
as the run id. The counting LLM server SIGKILLs the work horse when a kill
point's call arrives (that call is never answered, so never paid).

- With ``Retry``, RQ 3 sees its horse die and requeues the job at once; the
  retry finds the earlier calls memoized.
- Without it the job fails for good; ``rq requeue --queue Q --all`` brings it
  back, and it pays only what was never answered.
- A duplicate delivery of one job (its id pushed again while it runs, as a
  requeue of a live job does) pays the overlapping calls twice without a
  claim, and each call once with ``ClaimPolicy``.
- When the whole worker dies (worker and horse), the job waits in the
  ``StartedJobRegistry`` until its execution heartbeat expires
  (``job_monitoring_interval`` + 60 s, the 60 fixed by RQ) and a worker's
  next maintenance pass (``maintenance_interval``, checked between dequeues
  that block ``worker_ttl`` - 15 s) retries it. That test takes over a minute,
  so it runs only with ``TAQUBA_MEMO_SOAK=1``.

On local files and on S3, moto and Ceph RGW (RGW skips where the machine
cannot run it, unless ``TAQUBA_MEMO_REQUIRE_SERVERS=1``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from taquba_memo_conformance._processes import ManagedProcess

from .llm_server import (
    CountingLLM,
    answer_to,
    assert_paid_for_a_duplicate,
    skip_unclaimed_duplicate_off_local_files,
)
from .workers import MemoTarget, start_ready, wait_for

PROMPTS = [f"prompt {i}" for i in range(5)]
KILL_AT = {PROMPTS[2], PROMPTS[4]}
QUEUE = "agents"
RQ = [sys.executable, "-m", "rq.cli"]  # the `rq` command of this interpreter
JOB = "tests.runtimes.rq_agent.agent_step"
# Small so a dead worker's job comes back within the test: see the module docstring.
FAST_MAINTENANCE = [
    "--job-monitoring-interval=1",
    "--maintenance-interval=1",
    "--worker-ttl=16",  # dequeues block worker_ttl - 15 = 1 s between maintenance checks
]
# Generous bounds that fail a hung worker instead of hanging CI.
RESULT_TIMEOUT_S = 90
WHOLE_WORKER_RESULT_TIMEOUT_S = 240
SOAK = os.environ.get("TAQUBA_MEMO_SOAK") == "1"


def start_rq_worker(url: str, env: dict[str, str], *options: str) -> ManagedProcess:
    """``rq worker`` on the agents queue, as the page shows it; ready once it listens."""
    argv = [*RQ, "worker", "--url", url, *options, QUEUE]
    return start_ready("rq-worker", argv, env, "Listening on")


@pytest.fixture
def connection(broker: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(broker)
    yield client
    client.close()


def worker_env(memo_target: MemoTarget, llm: CountingLLM) -> dict[str, str]:
    return {"TAQUBA_MEMO_URL": memo_target.url, "LLM_URL": llm.url, **memo_target.env}


def finished(job: Job, timeout_s: float = RESULT_TIMEOUT_S) -> Job:
    """The job once it finished or failed for good."""
    done = {JobStatus.FINISHED, JobStatus.FAILED}
    wait_for(lambda: job.get_status() in done, timeout_s, f"job {job.id}")
    job.refresh()  # type: ignore[no-untyped-call]
    return job


def redelivery_delays(llm: CountingLLM) -> list[float]:
    """Seconds from each kill to the next arrival of the killed call."""
    return [llm.arrivals[prompt][1] - killed_at for prompt, killed_at in llm.kills.items()]


def test_rq_work_horse_killed_mid_job_is_retried_and_pays_each_call_once(
    broker: str,
    connection: redis.Redis,
    memo_target: MemoTarget,
) -> None:
    with CountingLLM(kill_on_first=KILL_AT) as llm:
        worker = start_rq_worker(broker, worker_env(memo_target, llm))
        try:
            job = Queue(QUEUE, connection=connection).enqueue(JOB, 3, PROMPTS, retry=Retry(max=3))
            finished(job)
        finally:
            worker.stop()

    print(f"\nRQ retried a killed horse's job {redelivery_delays(llm)} s after the kill")
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == [answer_to(prompt) for prompt in PROMPTS]
    assert job.retries_left == 1  # one retry per kill
    assert llm.paid == {prompt: 1 for prompt in PROMPTS}
    # The killed calls reached the LLM but were never answered nor paid.
    assert llm.received == {prompt: 2 if prompt in KILL_AT else 1 for prompt in PROMPTS}
    assert len(llm.killed_pids) == 2
    assert len(llm.worker_pids) == 3  # three work horses ran the job


def test_rq_job_without_retry_fails_when_its_horse_dies_and_rq_requeue_resumes_it(
    broker: str,
    connection: redis.Redis,
    memo_target: MemoTarget,
) -> None:
    killed_call = PROMPTS[2]
    with CountingLLM(kill_on_first={killed_call}) as llm:
        worker = start_rq_worker(broker, worker_env(memo_target, llm))
        try:
            queue = Queue(QUEUE, connection=connection)
            job = finished(queue.enqueue(JOB, 3, PROMPTS))
            assert job.get_status() == JobStatus.FAILED
            assert queue.failed_job_registry.get_job_ids() == [job.id]
            # The command as docs/runtimes.md gives it (RQ 3 requires --queue).
            subprocess.run(
                [*RQ, "requeue", "--url", broker, "--queue", QUEUE, "--all"],
                check=True,
                capture_output=True,
            )
            finished(job)
        finally:
            worker.stop()

    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == [answer_to(prompt) for prompt in PROMPTS]
    assert llm.paid == {prompt: 1 for prompt in PROMPTS}
    assert llm.received == {prompt: 2 if prompt == killed_call else 1 for prompt in PROMPTS}


@pytest.mark.parametrize("claim_lease_s", [None, 1.0], ids=["no-claim", "claim"])
def test_rq_duplicate_delivery_pays_overlapping_calls_once_only_with_a_claim(
    broker: str,
    connection: redis.Redis,
    memo_target: MemoTarget,
    claim_lease_s: float | None,
) -> None:
    skip_unclaimed_duplicate_off_local_files(memo_target.url, claim_lease_s)
    prompts = PROMPTS[:3]
    with CountingLLM(answer_delay_s=1.5) as llm:
        env = worker_env(memo_target, llm)
        workers = [start_rq_worker(broker, env), start_rq_worker(broker, env)]
        try:
            queue = Queue(QUEUE, connection=connection)
            job = queue.enqueue(JOB, 1, prompts, claim_lease_s)
            wait_for(lambda: llm.received[prompts[0]] == 1, RESULT_TIMEOUT_S, "the first call")
            queue.push_job_id(job.id)  # delivered again while the first delivery runs
            wait_for(lambda: len(job.results()) == 2, RESULT_TIMEOUT_S, "both deliveries")
        finally:
            for worker in workers:
                worker.stop()

    answers = [answer_to(prompt) for prompt in prompts]
    assert [result.return_value for result in job.results()] == [answers, answers]
    assert_paid_for_a_duplicate(llm, prompts, claimed=claim_lease_s is not None)


@pytest.mark.skipif(not SOAK, reason="takes over a minute (RQ's fixed 60 s); TAQUBA_MEMO_SOAK=1")
def test_rq_job_of_a_dead_worker_comes_back_after_heartbeat_expiry_and_maintenance(
    broker: str,
    connection: redis.Redis,
    memo_target: MemoTarget,
) -> None:
    in_flight = PROMPTS[2]
    with CountingLLM(answer_delay_s=2.0) as llm:
        env = worker_env(memo_target, llm)
        dying = start_rq_worker(broker, env, *FAST_MAINTENANCE)
        job = Queue(QUEUE, connection=connection).enqueue(JOB, 3, PROMPTS, retry=Retry(max=3))
        wait_for(lambda: llm.received[in_flight] == 1, RESULT_TIMEOUT_S, "the third call")
        # The whole worker dies: the worker, then its horse (in a process group of its own).
        killed_at = time.monotonic()
        os.kill(dying.pid, signal.SIGKILL)
        (horse,) = llm.worker_pids
        os.kill(horse, signal.SIGKILL)
        dying.stop()
        survivor = start_rq_worker(broker, env, *FAST_MAINTENANCE)
        try:
            finished(job, WHOLE_WORKER_RESULT_TIMEOUT_S)
        finally:
            survivor.stop()

    print(f"\nRQ retried a dead worker's job {llm.arrivals[in_flight][1] - killed_at:.1f} s later")
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == [answer_to(prompt) for prompt in PROMPTS]
    # The call in flight was answered to a dead horse, so it was paid again; no other was.
    assert llm.paid == {prompt: 2 if prompt == in_flight else 1 for prompt in PROMPTS}
