"""The Celery task module of the end-to-end test, configured exactly as docs/runtimes.md shows.

The store is opened at import time, once per worker: under the default
prefork pool the parent imports this module and every pool process is a
fork of it. Settings come from the environment the test gives the worker.
"""

from __future__ import annotations

import functools
import os

from celery import Celery
from taquba_memo import JSONCodec
from taquba_memo.sync import open_store

from tests.runtimes.llm_server import complete

app = Celery(
    "agents", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"]
)
app.conf.update(
    task_acks_late=True,  # ack after the task returns: a killed worker's task is redelivered
    task_reject_on_worker_lost=True,  # ...also when the pool process itself dies
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": int(os.environ["VISIBILITY_TIMEOUT_S"])},
)

store = open_store(os.environ["TAQUBA_MEMO_URL"], prefix="agents")  # once per worker process


def call_llm(prompt: str) -> str:
    """The slow, billed call: one request to the test's counting LLM server."""
    return complete(os.environ["LLM_URL"], prompt)


@app.task
def agent_step(run_id: str, step: int, prompts: list[str]) -> list[str]:
    memo = store.new_memo(run_id, step)  # every redelivery of this step shares it
    return [
        memo.get_or_compute(f"call-{i}", functools.partial(call_llm, prompt), codec=JSONCodec())
        for i, prompt in enumerate(prompts)
    ]
