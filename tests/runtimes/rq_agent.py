"""The RQ job module of the end-to-end tests, written as docs/runtimes.md shows.

RQ imports a job's module in the work horse it forks for the job, not in the
worker, so the store opened here at module level is opened once per job.
Settings come from the environment the test gives the worker.
"""

from __future__ import annotations

import functools
import os

from rq import get_current_job
from taquba_memo import ClaimPolicy, JSONCodec
from taquba_memo.sync import open_store

from tests.runtimes.llm_server import complete

store = open_store(os.environ["TAQUBA_MEMO_URL"], prefix="agents")  # imported by each work horse


def call_llm(prompt: str) -> str:
    """The slow, billed call: one request to the test's counting LLM server."""
    return complete(os.environ["LLM_URL"], prompt)


def agent_step(step: int, prompts: list[str], claim_lease_s: float | None = None) -> list[str]:
    job = get_current_job()
    assert job is not None
    memo = store.new_memo(job.id, step)  # the same job id on every retry and requeue
    claim = None if claim_lease_s is None else ClaimPolicy(lease_s=claim_lease_s)
    return [
        memo.get_or_compute(
            f"call-{i}", functools.partial(call_llm, prompt), codec=JSONCodec(), claim=claim
        )
        for i, prompt in enumerate(prompts)
    ]
