"""The Arq worker module of the end-to-end tests, written as docs/runtimes.md shows.

The store is opened in ``on_startup`` and closed in ``on_shutdown``: one per
worker process, used by every job on its event loop. The billed call runs in
a thread (``asyncio.to_thread``), so the loop stays free to renew claims.
Settings come from the environment the test gives the worker: the Redis URL,
and a short ``job_timeout`` (an in-progress job's key expires
``job_timeout + 10`` s after it started, and only then can another worker
take the job of a dead one) and ``max_jobs`` when the test sets them.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any, ClassVar

from arq.connections import RedisSettings
from taquba_memo import ClaimPolicy, JSONCodec, open_store

from tests.runtimes.llm_server import complete


async def startup(ctx: dict[str, Any]) -> None:
    ctx["store"] = open_store(os.environ["TAQUBA_MEMO_URL"], prefix="agents")


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["store"].aclose()


async def call_llm(prompt: str) -> str:
    """The slow, billed call: one request to the test's counting LLM server."""
    return await asyncio.to_thread(complete, os.environ["LLM_URL"], prompt)


async def agent_step(
    ctx: dict[str, Any], step: int, prompts: list[str], claim_lease_s: float | None = None
) -> list[str]:
    memo = ctx["store"].new_memo(ctx["job_id"], step)  # job_id is kept across tries
    claim = None if claim_lease_s is None else ClaimPolicy(lease_s=claim_lease_s)
    return [
        await memo.get_or_compute(
            f"call-{i}", functools.partial(call_llm, prompt), codec=JSONCodec(), claim=claim
        )
        for i, prompt in enumerate(prompts)
    ]


class WorkerSettings:
    functions: ClassVar[list[Any]] = [agent_step]
    on_startup = startup
    on_shutdown = shutdown
    max_tries = 5
    redis_settings = RedisSettings.from_dsn(os.environ["ARQ_REDIS_URL"])
    job_timeout = int(os.environ.get("ARQ_JOB_TIMEOUT_S", 300))
    max_jobs = int(os.environ.get("ARQ_MAX_JOBS", 10))
