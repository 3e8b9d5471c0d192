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

import sys
import time
import uuid

from celery import Celery
from taquba_memo import LocalFileBackend
from taquba_memo.sync import open_store
from taquba_memo_conformance._processes import ManagedProcess

from .llm_server import CountingLLM, answer_to
from .workers import MemoTarget, start_ready

PROMPTS = [f"prompt {i}" for i in range(5)]
KILL_AT = {PROMPTS[2], PROMPTS[4]}
VISIBILITY_TIMEOUT_S = 10
# Generous bounds that fail a hung worker instead of hanging CI.
RESULT_TIMEOUT_S = 90


def start_worker(module: str, env: dict[str, str]) -> ManagedProcess:
    """``celery worker`` on ``module``: the default prefork pool, one pool process."""
    argv = [sys.executable, "-m", "celery", "-A", module, "worker", "--loglevel=INFO"]
    argv += ["--concurrency=1", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    return start_ready("celery-worker", argv, env, " ready.")


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
