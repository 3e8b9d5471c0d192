"""Stores opened at import time work in Celery's prefork pool processes, on every backend.

One worker (default prefork pool) imports a module that opens a sync and an
async store on each shipped backend; a task in a pool process then puts,
gets, computes and clears through both. The worker's parent never made a
request, so obstore works in the pool processes too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from .backend_specs import EMBEDDED, SERVER_BACKED, encode_spec
from .conftest import backend_spec_for
from .redis_server import RedisServer, redis_server  # noqa: F401  (the fixture)
from .scenario import EXPECTED
from .test_celery_redelivery import start_worker

BACKENDS = EMBEDDED + SERVER_BACKED
TASK_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def celery_app(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Celery]:
    """A worker with stores on every backend, and a client app to send it tasks."""
    with contextlib.ExitStack() as cleanup:
        specs = [
            backend_spec_for(name, request, Path(tmp_path_factory.mktemp(name)), cleanup)
            for name in BACKENDS
        ]
        broker = redis_server.url.removesuffix("/0") + "/1"  # apart from the other Celery test
        worker = start_worker(
            "tests.runtimes.celery_backends",
            {
                "CELERY_BROKER_URL": broker,
                "CELERY_RESULT_BACKEND": broker,
                "FORK_SPECS": ",".join(encode_spec(spec) for spec in specs),
            },
        )
        cleanup.callback(worker.stop)
        client = Celery("backends", broker=broker, backend=broker)
        cleanup.callback(client.close)
        yield client


@pytest.mark.parametrize("name", BACKENDS)
def test_celery_prefork_pool_process_uses_store_opened_before_fork(
    celery_app: Celery, name: str
) -> None:
    outcome: dict[str, Any] = celery_app.send_task(
        "tests.runtimes.celery_backends.exercise", args=[name]
    ).get(timeout=TASK_TIMEOUT_S)

    assert outcome == {"sync": EXPECTED, "async": EXPECTED}
