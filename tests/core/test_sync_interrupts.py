"""Interrupts never wedge a key: a BaseException inside a step leaves the entry computable.

Runtimes stop a step with exceptions that are not ``Exception``s: a real
SIGINT (``KeyboardInterrupt``), ``SystemExit``, Dramatiq's time limit
(``TimeLimitExceeded``, raised into the worker thread). The promise
"exceptions are never cached; the next attempt computes again" holds for
them too: the interrupt reaches the caller, nothing is stored, no claim is
left behind, and the next call for the same key, in the same process,
computes at once instead of waiting for a flight that will never land.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from dramatiq.middleware.threading import raise_thread_exception
from dramatiq.middleware.time_limit import TimeLimitExceeded
from taquba_memo import ClaimPolicy, MemoBackend, _single_flight
from taquba_memo import MemoStore as AsyncMemoStore
from taquba_memo._layout import memo_key
from taquba_memo.sync import Memo, MemoStore

from tests.core._flight_support import wait_until

DEADLINE_S = 30.0  # a bound on waiting for a call that would otherwise hang forever

INTERRUPTS: dict[str, Callable[[], BaseException]] = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": lambda: SystemExit(3),
    "TimeLimitExceeded": TimeLimitExceeded,
}

CLAIMS = {"no-claim": None, "claim": ClaimPolicy(lease_s=600.0)}


@pytest.fixture(params=list(INTERRUPTS.values()), ids=list(INTERRUPTS))
def interrupt(request: pytest.FixtureRequest) -> Callable[[], BaseException]:
    """Each way a runtime stops a step with a BaseException that is not an Exception."""
    return cast("Callable[[], BaseException]", request.param)


@pytest.fixture(params=list(CLAIMS.values()), ids=list(CLAIMS))
def claim(request: pytest.FixtureRequest) -> ClaimPolicy | None:
    """Without a claim, and with one whose 600 s lease would make a wedged key wait."""
    return cast("ClaimPolicy | None", request.param)


@pytest.fixture
def store(sync_store: MemoStore) -> MemoStore:
    """In this module ``store`` is the sync one."""
    return sync_store


def call_with_deadline(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in another thread and return its result; fail if it does not return in time."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # reported to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), "the call hung: an earlier interrupt wedged the key"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def stored_kinds(memo: Memo) -> list[str]:
    """The kind of every object below the memo's run: ``entry`` or ``claim``."""
    return [entry.kind for entry in memo.store.iter_entries(memo.run_id)]


def test_an_interrupt_raised_by_a_sync_fn_reaches_the_caller_and_the_next_call_computes(
    store: MemoStore, interrupt: Callable[[], BaseException], claim: ClaimPolicy | None
) -> None:
    memo = store.new_memo("run-1", 0)

    def interrupted() -> bytes:
        raise interrupt()

    with pytest.raises(type(interrupt())):
        memo.get_or_compute("answer", interrupted, claim=claim)

    assert "entry" not in stored_kinds(memo)
    # A claim left unreleased would make this retry wait out its 600 s lease.
    retry = call_with_deadline(lambda: memo.get_or_compute("answer", lambda: b"paid", claim=claim))
    assert retry == b"paid"
    assert stored_kinds(memo) == ["entry"]  # the stored entry, and every claim gone
    assert _single_flight.in_progress() == 0


def test_an_interrupt_raised_by_an_async_fn_on_the_stores_loop_leaves_the_store_working(
    store: MemoStore, interrupt: Callable[[], BaseException], claim: ClaimPolicy | None
) -> None:
    memo = store.new_memo("run-1", 0)

    async def interrupted() -> bytes:
        await asyncio.sleep(0)
        raise interrupt()

    with pytest.raises(type(interrupt())):
        memo.get_or_compute("answer", interrupted, claim=claim)

    assert not store.closed
    assert "entry" not in stored_kinds(memo)
    retry = call_with_deadline(lambda: memo.get_or_compute("answer", lambda: b"paid", claim=claim))
    assert retry == b"paid"
    assert call_with_deadline(lambda: memo.get_or_compute("other", lambda: b"other")) == b"other"


def test_dramatiqs_time_limit_raised_into_the_worker_thread_leaves_the_key_computable(
    store: MemoStore, claim: ClaimPolicy | None
) -> None:
    """Dramatiq's TimeLimit raises TimeLimitExceeded into the thread running the actor."""
    memo = store.new_memo("run-1", 0)
    running = threading.Event()
    outcome: dict[str, BaseException] = {}

    def slow_call() -> bytes:
        running.set()
        for _ in range(100_000):  # interruptible between sleeps, as a real LLM call's loop is
            time.sleep(0.001)
        return b"never"

    def actor() -> None:
        try:
            memo.get_or_compute("answer", slow_call, claim=claim)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=actor, daemon=True)
    worker.start()
    assert running.wait(DEADLINE_S)
    assert worker.ident is not None
    raise_thread_exception(worker.ident, TimeLimitExceeded)  # type: ignore[no-untyped-call]
    worker.join(DEADLINE_S)

    assert not worker.is_alive()
    assert isinstance(outcome["error"], TimeLimitExceeded)
    assert "entry" not in stored_kinds(memo)
    retry = call_with_deadline(lambda: memo.get_or_compute("answer", lambda: b"paid", claim=claim))
    assert retry == b"paid"
    assert stored_kinds(memo) == ["entry"]


def test_a_waiting_caller_takes_over_when_the_leaders_fn_is_interrupted(store: MemoStore) -> None:
    """Another thread waiting for the entry computes it itself; it never gets the interrupt."""
    memo = store.new_memo("run-1", 0)
    leader_running = threading.Event()
    release_leader = threading.Event()
    results: dict[str, Any] = {}

    def interrupted_later() -> bytes:
        leader_running.set()
        assert release_leader.wait(DEADLINE_S)
        raise KeyboardInterrupt

    def leader() -> None:
        try:
            memo.get_or_compute("answer", interrupted_later)
        except BaseException as exc:
            results["leader"] = exc

    def follower() -> None:
        results["follower"] = memo.get_or_compute("answer", lambda: b"follower paid")

    threads = [threading.Thread(target=leader, daemon=True)]
    threads[0].start()
    assert leader_running.wait(DEADLINE_S)
    threads.append(threading.Thread(target=follower, daemon=True))
    threads[1].start()
    flight_key = (id(store.backend), memo_key(store.prefix, "run-1", 0, "answer"))
    wait_until(lambda: _single_flight.followers(flight_key) == 1)
    release_leader.set()
    for thread in threads:
        thread.join(DEADLINE_S)

    assert isinstance(results["leader"], KeyboardInterrupt)
    assert results["follower"] == b"follower paid"
    assert memo.get("answer") == b"follower paid"


@pytest.mark.parametrize("interrupt", ["KeyboardInterrupt", "SystemExit"])
def test_the_async_api_lands_the_flight_of_an_interrupted_fn(
    backend: MemoBackend, interrupt: str
) -> None:
    """asyncio lets KeyboardInterrupt and SystemExit out of the loop; the key stays computable."""
    memo = AsyncMemoStore(backend, "memo").new_memo("run-1", 0)

    def interrupted() -> bytes:
        raise INTERRUPTS[interrupt]()

    with pytest.raises(type(INTERRUPTS[interrupt]())):
        asyncio.run(memo.get_or_compute("answer", interrupted))

    assert _single_flight.in_progress() == 0
    again = asyncio.run(asyncio.wait_for(memo.get_or_compute("answer", lambda: b"paid"), 30))
    assert again == b"paid"


SIGINT_CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from taquba_memo import ClaimPolicy
    from taquba_memo.sync import open_store

    claim = ClaimPolicy(lease_s=600.0) if sys.argv[2] == "claim" else None
    store = open_store("file://" + sys.argv[1], prefix="memo")
    memo = store.new_memo("run-1", 0)

    def slow_llm_call():
        print("calling", flush=True)
        time.sleep(600)  # a real SIGINT interrupts it with KeyboardInterrupt
        return b"never"

    def kinds():
        return [entry.kind for entry in store.iter_entries("run-1")]

    report = {}
    try:
        memo.get_or_compute("answer", slow_llm_call, claim=claim)
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["entries_after_interrupt"] = kinds().count("entry")
    result = {}
    def retry_step():
        result["value"] = memo.get_or_compute("answer", lambda: b"paid", claim=claim)

    retry = threading.Thread(target=retry_step, daemon=True)
    retry.start()
    retry.join(30)
    report["retry"] = result.get("value", b"HUNG").decode()
    report["kinds_after_retry"] = kinds()
    store.close()
    print(json.dumps(report), flush=True)
    """
)


@pytest.mark.parametrize("claim", ["no-claim", "claim"])
def test_a_real_sigint_during_a_sync_fn_leaves_the_key_computable(
    tmp_path: Path, claim: str
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", SIGINT_CHILD, str(root), claim],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "calling"
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=120)
    finally:
        child.kill()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"] is True
    assert report["entries_after_interrupt"] == 0
    assert report["retry"] == "paid"  # within 30 s: an unreleased 600 s claim would block it
    assert report["kinds_after_retry"] == ["entry"]
    assert child.returncode == 0
