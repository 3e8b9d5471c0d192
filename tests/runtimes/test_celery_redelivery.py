"""A real Celery worker, SIGKILLed in the middle of a task twice, pays each LLM call once.

Redis is the broker; the worker runs the default prefork pool with
``acks_late`` and ``task_reject_on_worker_lost``, and its task module opens
the store at import time as docs/runtimes.md shows. The task makes five billed
calls through ``taquba_memo.sync`` ``get_or_compute``. The counting LLM
server kills the pool process when call 2 arrives, and again when call 4
does; each time the broker redelivers, a fresh pool process (forked from the
worker, inheriting its store) runs the task again, finds the earlier calls
memoized, and goes on. At the end every call was paid exactly once, the
result is right, and a terminal marker plus a sweep leave nothing behind.

The memo lives on local files and on S3: moto and Ceph RGW (the kit's
``S3_SERVER_FIXTURES``; RGW skips where the machine cannot run it, unless
``TAQUBA_MEMO_REQUIRE_SERVERS=1``).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery
from taquba_memo import LocalFileBackend
from taquba_memo.sync import open_store
from taquba_memo_conformance._processes import ManagedProcess
from taquba_memo_conformance.servers import S3Server
from taquba_memo_conformance.servers_plugin import S3_SERVER_FIXTURES

from .llm_server import CountingLLM, answer_to
from .redis_server import RedisServer, redis_server  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parents[2]
#: Where the worker keeps its memos: local files, and S3 on each of these servers.
MEMO_TARGETS = ["local", "moto", "rgw"]
PROMPTS = [f"prompt {i}" for i in range(5)]
KILL_AT = {PROMPTS[2], PROMPTS[4]}
VISIBILITY_TIMEOUT_S = 10
WORKER_READY_TIMEOUT_S = 60
# Generous bounds that fail a hung worker instead of hanging CI.
RESULT_TIMEOUT_S = 90


@dataclass
class MemoTarget:
    url: str
    env: dict[str, str]


@pytest.fixture(params=MEMO_TARGETS)
def memo_target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MemoTarget:
    """Where the worker keeps its memos: a local directory, or a fresh bucket on an S3 server."""
    if request.param == "local":
        return MemoTarget(f"file://{tmp_path / 'memos'}", {})
    server: S3Server = request.getfixturevalue(S3_SERVER_FIXTURES[request.param])
    bucket = server.new_bucket()
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = f"s3://{bucket}?endpoint={server.endpoint_url}&region={server.region}&allow_http=true"
    return MemoTarget(url, env)


def start_ready(name: str, argv: list[str], env: dict[str, str], ready_line: str) -> ManagedProcess:
    """``argv`` run with the repository importable, returned once its log shows ``ready_line``."""
    worker = ManagedProcess(name, argv, env={**os.environ, "PYTHONPATH": str(REPO), **env})
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while ready_line not in worker.output_tail(200):
        if worker.exited() or time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"{name} did not start" + worker.describe())
        time.sleep(0.1)
    return worker


def start_worker(module: str, env: dict[str, str]) -> ManagedProcess:
    """``celery worker`` on ``module``: the default prefork pool, one pool process."""
    argv = [sys.executable, "-m", "celery", "-A", module, "worker", "--loglevel=INFO"]
    argv += ["--concurrency=1", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    return start_ready("celery-worker", argv, env, " ready.")


@pytest.fixture
def broker(redis_server: RedisServer) -> str:  # noqa: F811
    """The Redis URL, emptied before each test so no earlier message is delivered."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


def test_celery_worker_killed_mid_task_pays_each_call_once(
    broker: str, memo_target: MemoTarget
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    with CountingLLM(kill_on_first=KILL_AT) as llm:
        worker = start_worker(
            "tests.runtimes.celery_agent",
            {
                "CELERY_BROKER_URL": broker,
                "CELERY_RESULT_BACKEND": broker,
                "VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
                "TAQUBA_MEMO_URL": memo_target.url,
                "LLM_URL": llm.url,
                **memo_target.env,
            },
        )
        try:
            client = Celery("agents", broker=broker, backend=broker)
            result = client.send_task(
                "tests.runtimes.celery_agent.agent_step", args=[run_id, 3, PROMPTS]
            )
            answers = result.get(timeout=RESULT_TIMEOUT_S)
            client.close()
        finally:
            worker.stop()

    assert answers == [answer_to(prompt) for prompt in PROMPTS]
    assert llm.paid == {prompt: 1 for prompt in PROMPTS}
    # The two killed attempts reached the LLM but were never answered nor paid.
    assert llm.received == {prompt: 2 if prompt in KILL_AT else 1 for prompt in PROMPTS}
    assert len(llm.killed_pids) == 2
    assert len(llm.worker_pids) == 3  # three pool processes ran the task

    with open_store(memo_target.url, prefix="agents") as store:
        memo = store.new_memo(run_id, 3)
        assert [memo.get(f"call-{i}") is not None for i in range(len(PROMPTS))] == [True] * 5
        now_ms = int(time.time() * 1000)
        store.write_terminal_marker(run_id, now_ms)
        report = store.sweep(cutoff_ms=now_ms + 1)
        assert report.runs_cleared == [run_id]
        assert report.entries_deleted == len(PROMPTS)
        assert store.list_terminal_markers() == []
        assert store.clear_memos_for_run(run_id) == 0  # no entry of the run is left
        if memo_target.url.startswith("file://"):
            root = LocalFileBackend(memo_target.url.removeprefix("file://")).root
            assert [path for path in root.rglob("*") if path.is_file()] == []
