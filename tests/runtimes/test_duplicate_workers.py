"""Duplicate worker processes of one step pay each LLM call once, with claims.

N worker processes (N = 2, 4, 8) run the same step at the same moment, as
when a runtime's lease expires under a live worker, each with its own store
and ``get_or_compute(..., claim=ClaimPolicy(lease_s=LEASE_S))``. The counting
LLM server answers each call slowly, after more than one lease, so only the
claimant's renewals keep the others waiting. Every call is paid exactly once
and every worker returns the same answers.

Then the claimant of one call is SIGKILLed the moment its call reaches the
LLM (that call was never answered, so never paid): its claim is no longer
renewed, exactly one waiter takes over, and the takeover reaches the LLM
within a few leases of the kill. Each call is paid at most twice (here:
once, as the killed call was never answered).

On local files, on S3 (the kit's ``s3_server``, moto) and on Ceph RGW (``rgw_server``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .backend_specs import encode_spec
from .conftest import backend_spec_for
from .llm_server import CountingLLM, answer_to

REPO = Path(__file__).resolve().parents[2]
LEASE_S = 1.5
# Longer than a lease: a waiter that saw no renewal would take over.
ANSWER_DELAY_S = 2.0
PROMPTS = ["summarise the contract", "list the risks"]
# Ends a hung worker or a hung start instead of hanging CI.
PROCESS_TIMEOUT_S = 90
# The takeover comes one lease after the last renewal, plus one poll; allow twice that.
TAKEOVER_BOUND_LEASES = 3.0


@pytest.fixture(params=["local", "obstore-s3", "minio-rgw"])
def shared_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A backend every worker process builds over the same data: a directory, or a bucket."""
    with contextlib.ExitStack() as cleanup:
        yield backend_spec_for(request.param, request, tmp_path, cleanup)


def run_duplicates(
    spec: dict[str, Any], llm: CountingLLM, workers: int, run_id: str, go_file: Path
) -> list[subprocess.Popen[str]]:
    """Start ``workers`` processes, wait until each is ready, then let them all go at once."""
    argv = [sys.executable, "-m", "tests.runtimes.duplicate_worker", encode_spec(spec), run_id]
    argv += [llm.url, str(LEASE_S), str(go_file), *PROMPTS]
    processes = [
        subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", process.stderr.read() if process.stderr else ""
    go_file.touch()
    return processes


def answers_of(process: subprocess.Popen[str]) -> list[str] | None:
    """The worker's answers, or None for a worker that was killed."""
    out, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    if process.returncode == -9:
        return None
    assert process.returncode == 0, err[-3000:]
    answers: list[str] = json.loads(out.strip().splitlines()[-1])
    return answers


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_duplicates_started_together_pay_each_call_once(
    shared_spec: dict[str, Any], workers: int, tmp_path: Path
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    with CountingLLM(answer_delay_s=ANSWER_DELAY_S) as llm:
        processes = run_duplicates(shared_spec, llm, workers, run_id, tmp_path / "go")
        answers = [answers_of(process) for process in processes]

    assert answers == [[answer_to(prompt) for prompt in PROMPTS]] * workers
    assert llm.paid == {prompt: 1 for prompt in PROMPTS}
    assert llm.received == {prompt: 1 for prompt in PROMPTS}


def test_a_claimant_killed_mid_call_is_taken_over_once_within_the_lease(
    shared_spec: dict[str, Any], tmp_path: Path
) -> None:
    workers = 4
    killed_call = PROMPTS[1]
    run_id = f"run-{uuid.uuid4().hex[:12]}"
    with CountingLLM(kill_on_first={killed_call}, answer_delay_s=ANSWER_DELAY_S) as llm:
        processes = run_duplicates(shared_spec, llm, workers, run_id, tmp_path / "go")
        answers = [answers_of(process) for process in processes]

    survivors = [found for found in answers if found is not None]
    assert len(survivors) == workers - 1
    assert survivors == [[answer_to(prompt) for prompt in PROMPTS]] * (workers - 1)
    # Paid once each: the killed call was never answered. Exactly one waiter took over.
    assert llm.paid == {prompt: 1 for prompt in PROMPTS}
    assert llm.received == {PROMPTS[0]: 1, killed_call: 2}
    takeover_s = llm.arrivals[killed_call][1] - llm.kills[killed_call]
    print(f"takeover {takeover_s:.2f} s after the kill = {takeover_s / LEASE_S:.2f} leases")
    assert takeover_s < TAKEOVER_BOUND_LEASES * LEASE_S
