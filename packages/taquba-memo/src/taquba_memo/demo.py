"""Demo: an at-least-once agent step that crashes, is retried, and never pays twice.

Run it with ``python -m taquba_memo.demo``. Each attempt of the step runs in a
child process on a LocalFileBackend, the way a workflow worker would. The step
makes three "LLM calls"; the first two attempts are killed part-way (as a
worker whose lease expired), and the third finishes. Every call result is
memoized with ``get_or_compute``, so each call is paid for once however many
attempts there are. Each worker hands its store's stats (``store.stats``)
to the parent, which adds them up: lookups are the calls the step made,
computes the calls that were paid.
Then the run ends, its terminal marker is written, and a retention sweep
clears its memos.

Parent and children share one stdout, so every line is flushed as it is
printed: the output reads in order on a terminal, a pipe or a file.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taquba_memo import LocalFileBackend, MemoStatsSnapshot, MemoStore
from taquba_memo._iso_time import iso_utc

RUN_ID = "agent-run-42"
STEP = 3
PROMPTS = ["plan the trip", "find three hotels", "write the itinerary"]
# Attempt n is killed right after its call number CRASH_AFTER[n] (0-based).
CRASH_AFTER = {1: 0, 2: 1}
CRASH_EXIT_CODE = 137


def say(line: str = "") -> None:
    """One line on stdout, flushed before any other process writes there."""
    print(line, flush=True)


def fake_llm(prompt: str, ledger: Path) -> bytes:
    """The expensive side effect: slow, and billed (one line per call in the ledger)."""
    time.sleep(0.2)
    with ledger.open("a") as bill:
        bill.write(prompt + "\n")
    return f"answer to {prompt!r}".encode()


async def run_attempt(root: Path, attempt: int) -> None:
    """One delivery of the step, as a worker process runs it."""
    store = MemoStore(LocalFileBackend(root / "bucket"), "demo")
    memo = store.new_memo(RUN_ID, STEP)
    ledger = root / "ledger.txt"
    for index, prompt in enumerate(PROMPTS):
        computes = store.stats.computes
        await memo.get_or_compute(prompt, functools.partial(fake_llm, prompt, ledger))
        if store.stats.computes == computes:
            say(f"    call {index + 1}: memo hit, skipped   ({prompt})")
        else:
            say(f"    call {index + 1}: LLM called, stored ({prompt})")
        if CRASH_AFTER.get(attempt) == index:
            say("    worker killed: lease expired before ack")
            report_stats(store, root, attempt)
            os._exit(CRASH_EXIT_CODE)
    say("    step finished and acknowledged")
    report_stats(store, root, attempt)


def report_stats(store: MemoStore, root: Path, attempt: int) -> None:
    """Leave the worker's stats for the parent (a real worker exports them as metrics)."""
    stats = store.stats.snapshot()
    counts = {"lookups": stats.lookups, "computes": stats.computes}
    (root / f"stats-{attempt}.json").write_text(json.dumps(counts))


def attempt_stats(root: Path, attempts: int) -> MemoStatsSnapshot:
    """Every worker's stats, added up."""
    reported = [json.loads((root / f"stats-{n}.json").read_text()) for n in range(1, attempts + 1)]
    return MemoStatsSnapshot(
        lookups=sum(counts["lookups"] for counts in reported),
        computes=sum(counts["computes"] for counts in reported),
    )


async def retire_run(root: Path) -> None:
    store = MemoStore(LocalFileBackend(root / "bucket"), "demo")
    finished_at = int(time.time() * 1000)
    await store.write_terminal_marker(RUN_ID, finished_at)
    say(f"\nRun {RUN_ID} finished; terminal marker written at {iso_utc(finished_at)}.")
    entries = [key async for key in store.backend.list("demo/memos/")]
    say(f"Memo entries on disk: {len(entries)}")
    # A retention window of zero for the demo; a real sweeper keeps days.
    report = await store.sweep(cutoff_ms=finished_at + 1)
    say(
        f"Retention sweep: cleared {len(report.runs_cleared)} run, "
        f"deleted {report.entries_deleted} entries and the marker."
    )
    left = [key async for key in store.backend.list("demo/")]
    say(f"Objects left under the prefix: {len(left)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="where to keep the files (default: a temp dir)")
    parser.add_argument("--attempt", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.attempt is not None:
        asyncio.run(run_attempt(args.root, args.attempt))
        return 0

    with tempfile.TemporaryDirectory(prefix="taquba-memo-demo-") as scratch:
        root = args.root or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        say(f"Memo store: {root / 'bucket'} (LocalFileBackend)\n")
        attempt = 0
        while True:
            attempt += 1
            say(f"Attempt {attempt} of step {STEP} in run {RUN_ID}:")
            worker = [sys.executable, "-m", "taquba_memo.demo", "--root", str(root)]
            child = subprocess.run([*worker, "--attempt", str(attempt)], check=False)
            if child.returncode == 0:
                break
            if child.returncode != CRASH_EXIT_CODE or attempt >= 5:
                print(f"unexpected exit {child.returncode}", file=sys.stderr)
                return 1
            say("  -> redelivered (at-least-once)\n")

        ledger = (root / "ledger.txt").read_text().splitlines()
        stats = attempt_stats(root, attempt)
        # Without a memo every lookup of every attempt would have been a paid call.
        say(
            f"\n{attempt} attempts, {stats.computes} paid LLM calls "
            f"(without the memo: {stats.lookups})."
        )
        if stats.computes != len(ledger):
            print("the stats should count every paid call", file=sys.stderr)
            return 1
        if sorted(ledger) != sorted(PROMPTS):
            print("every call should have been paid exactly once", file=sys.stderr)
            return 1
        asyncio.run(retire_run(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
