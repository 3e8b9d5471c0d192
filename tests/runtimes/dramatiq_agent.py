"""The Dramatiq actor module of the end-to-end tests, configured as docs/runtimes.md shows.

The broker URL is set explicitly (Dramatiq's default broker is a Redis on
localhost). ``heartbeat_timeout`` and ``maintenance_chance`` come from the
environment when the test tunes them, so the same module also runs with
Dramatiq's defaults. Each worker process imports this module, so each opens
one store. A results backend lets the test read what each job returned.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from taquba_memo import ClaimPolicy, JSONCodec
from taquba_memo.sync import open_store

from tests.runtimes.llm_server import complete

tuning: dict[str, Any] = {}
if "HEARTBEAT_TIMEOUT_MS" in os.environ:
    tuning["heartbeat_timeout"] = int(os.environ["HEARTBEAT_TIMEOUT_MS"])
if "MAINTENANCE_CHANCE" in os.environ:
    tuning["maintenance_chance"] = int(os.environ["MAINTENANCE_CHANCE"])
broker = RedisBroker(url=os.environ["DRAMATIQ_BROKER_URL"], **tuning)  # type: ignore[no-untyped-call]
broker.add_middleware(CurrentMessage())
results = RedisBackend(url=os.environ["DRAMATIQ_BROKER_URL"])
broker.add_middleware(Results(backend=results))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)

store = open_store(os.environ["TAQUBA_MEMO_URL"], prefix="agents")  # once per worker process


def call_llm(prompt: str) -> str:
    """The slow, billed call: one request to the test's counting LLM server."""
    return complete(os.environ["LLM_URL"], prompt)


@dramatiq.actor(
    max_retries=5,
    min_backoff=100,
    max_backoff=500,
    time_limit=int(os.environ.get("TIME_LIMIT_MS", 600_000)),
    store_results=True,
)
def agent_step(step: int, prompts: list[str], claim_lease_s: float | None = None) -> list[str]:
    message = CurrentMessage.get_current_message()
    assert message is not None
    memo = store.new_memo(message.message_id, step)  # the message id is kept across retries
    claim = None if claim_lease_s is None else ClaimPolicy(lease_s=claim_lease_s)
    return [
        memo.get_or_compute(
            f"call-{i}", functools.partial(call_llm, prompt), codec=JSONCodec(), claim=claim
        )
        for i, prompt in enumerate(prompts)
    ]
