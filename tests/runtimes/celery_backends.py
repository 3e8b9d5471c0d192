"""A Celery task module that opens a store on every shipped backend at import time.

The worker's parent imports it and the prefork pool processes are forks of
that parent, so each task runs on stores opened before the fork. The specs
come from the environment (``FORK_SPECS``, see :mod:`tests.runtimes.backend_specs`).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from celery import Celery
from taquba_memo import MemoStore
from taquba_memo import sync as memo_sync

from tests.runtimes.backend_specs import build_backend, decode_spec
from tests.runtimes.scenario import exercise_async, exercise_sync

app = Celery(
    "backends", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"]
)
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1)

_specs = [decode_spec(text) for text in os.environ["FORK_SPECS"].split(",")]
sync_stores = {spec["name"]: memo_sync.MemoStore(build_backend(spec), "celery") for spec in _specs}
async_stores = {spec["name"]: MemoStore(build_backend(spec), "celery") for spec in _specs}


@app.task
def exercise(name: str) -> dict[str, Any]:
    return {
        "sync": exercise_sync(sync_stores[name], f"sync-{os.getpid()}"),
        "async": asyncio.run(exercise_async(async_stores[name], f"async-{os.getpid()}")),
    }
