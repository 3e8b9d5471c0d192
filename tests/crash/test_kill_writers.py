"""kill -9 of writer processes on LocalFileBackend: every entry is absent, old or new, never torn.

Each round starts three writer processes (each owns its entries) and a
reader, lets them work for a random moment, then kills all four with
SIGKILL. The writers' logs say which operations returned (acknowledged) and
which one was in flight when the kill came. Then, for every entry:

* its value is whole (checksum, length and key all match) -- never torn;
* it is what the acknowledged operations left, or what the one operation in
  flight would have left -- absent, old or new, and nothing acknowledged is lost;
* create-if-absent answered exactly as the model says, and a run clear
  reported exactly the entries it held;

and a listing of the whole tree yields only real entries, never a staging
file (``<name>#<digits>``) a kill left behind. The next round starts from what
the previous one left. ``TAQUBA_MEMO_SOAK=1`` runs many more rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from taquba_memo import LocalFileBackend

from ..conftest import ReliabilityFigures
from .crash_worker import Entry, TornValue, decode_value

SOAK = os.environ.get("TAQUBA_MEMO_SOAK") == "1"
ROUNDS = 120 if SOAK else 14
WRITERS = 3
PREFIX = "crash/memo"
SECTION = "crash: writers killed"
WORKER = Path(__file__).with_name("crash_worker.py")
READY_TIMEOUT_S = 60.0
STAGING = re.compile(r"#\d+$")

State = int | None  # the sequence number of the stored value, or None when absent


def owned_entries(writer: int) -> list[Entry]:
    """A writer's entries: two runs whose ids share a prefix, two steps, awkward user keys."""
    runs = [f"w{writer}", f"w{writer}-x"]
    user_keys = ["k", "k2", "a/b", "ключ", ""]
    return [Entry(run, step, key) for run in runs for step in (0, 7) for key in user_keys]


@dataclass
class WriterLog:
    """What one writer's log says: the acknowledged operations and the one in flight."""

    acknowledged: list[tuple[str, int, int, str]] = field(default_factory=list)
    in_flight: tuple[str, int, int] | None = None

    @classmethod
    def read(cls, path: Path) -> WriterLog:
        log = cls()
        text = path.read_text() if path.exists() else ""
        whole_lines = text.split("\n")[:-1]  # a line without its newline was cut by the kill
        for line in whole_lines:
            kind, operation, target, seq, *result = line.split(" ")
            if kind == "I":
                assert log.in_flight is None, f"two operations in flight: {line!r}"
                log.in_flight = (operation, int(target), int(seq))
            else:
                assert log.in_flight == (operation, int(target), int(seq)), line
                log.acknowledged.append((operation, int(target), int(seq), result[0]))
                log.in_flight = None
        return log


@dataclass
class Round:
    """The model of one writer's entries through one round."""

    entries: list[Entry]
    expected: list[State]
    figures: ReliabilityFigures

    def entries_of_run(self, run: int) -> list[int]:
        runs = sorted({entry.run_id for entry in self.entries})
        return [i for i, entry in enumerate(self.entries) if entry.run_id == runs[run]]

    def apply(self, operation: str, target: int, seq: int, result: str) -> None:
        if operation == "put":
            overwrite = self.expected[target] is not None
            name = "overwrites_acknowledged" if overwrite else "puts_acknowledged"
            self.figures.add(SECTION, name)
            self.expected[target] = seq
        elif operation == "create":
            absent = self.expected[target] is None
            assert result == ("1" if absent else "0"), (
                f"create-if-absent of {self.entries[target]} answered {result} "
                f"while the entry was {'absent' if absent else 'present'}"
            )
            self.figures.add(SECTION, "creates_acknowledged")
            if absent:
                self.expected[target] = seq
        elif operation == "delete":
            self.figures.add(SECTION, "deletes_acknowledged")
            self.expected[target] = None
        else:
            members = self.entries_of_run(target)
            present = sum(self.expected[i] is not None for i in members)
            assert int(result) == present, (
                f"clearing run {self.entries[members[0]].run_id} deleted {result} entries; "
                f"it held {present}"
            )
            self.figures.add(SECTION, "clears_acknowledged")
            for i in members:
                self.expected[i] = None

    def allowed(self, in_flight: tuple[str, int, int] | None) -> list[set[State]]:
        """Per entry, the states a kill may leave: the model's, or the in-flight operation's."""
        allowed: list[set[State]] = [{state} for state in self.expected]
        if in_flight is None:
            return allowed
        operation, target, seq = in_flight
        if operation == "put" or (operation == "create" and self.expected[target] is None):
            allowed[target].add(seq)
        elif operation == "delete":
            allowed[target].add(None)
        elif operation == "clear":
            for i in self.entries_of_run(target):
                allowed[i].add(None)
        return allowed


async def start(role: str, config: dict[str, object]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), role, json.dumps(config), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)
    except BaseException:
        await kill(process)
        raise
    assert line == b"ready\n", f"the {role} did not start: {line!r}"
    return process


async def kill(process: asyncio.subprocess.Process) -> bool:
    """SIGKILL ``process`` (by its pid) if it still runs and reap it; True if it was running."""
    running = process.returncode is None
    if running:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended by itself; not reaped yet
            running = False
    await asyncio.wait_for(process.wait(), 60)
    return running


def staging_files(root: Path) -> int:
    return sum(
        1 for _, _, names in os.walk(root) for name in names if STAGING.search(name) is not None
    )


async def test_killed_writers_leave_every_entry_absent_old_or_new(
    tmp_path: Path, reliability: ReliabilityFigures
) -> None:
    root = tmp_path / "store"
    backend = LocalFileBackend(root)
    rng = random.Random(20261125)
    owned = [owned_entries(writer) for writer in range(WRITERS)]
    every_path = {entry.path(PREFIX): entry for entries in owned for entry in entries}
    state: list[list[State]] = [[None] * len(entries) for entries in owned]
    reliability.note(SECTION, "writers_per_round", WRITERS)

    for round_number in range(ROUNDS):
        logs = [tmp_path / f"writer-{round_number}-{w}.log" for w in range(WRITERS)]
        reader_log = tmp_path / f"reader-{round_number}.log"
        processes: list[asyncio.subprocess.Process] = []
        try:
            for w in range(WRITERS):
                config = {
                    "root": str(root),
                    "prefix": PREFIX,
                    "entries": [[e.run_id, e.step, e.user_key] for e in owned[w]],
                    "seed": rng.randrange(2**32),
                    "log": str(logs[w]),
                    "first_seq": (round_number * WRITERS + w + 1) * 10_000_000,
                    "max_operations": 1_000_000,
                }
                processes.append(await start("writer", config))
            every = [[e.run_id, e.step, e.user_key] for entries in owned for e in entries]
            processes.append(
                await start(
                    "reader",
                    {
                        "root": str(root),
                        "prefix": PREFIX,
                        "entries": every,
                        "seed": rng.randrange(2**32),
                        "log": str(reader_log),
                        "max_operations": 10_000_000,
                    },
                )
            )
            await asyncio.sleep(rng.uniform(0.02, 0.6))
        finally:
            for process in processes:
                if await kill(process):
                    reliability.add(SECTION, "processes_killed")
        reliability.add(SECTION, "rounds")

        for w in range(WRITERS):
            model = Round(owned[w], list(state[w]), reliability)
            log = WriterLog.read(logs[w])
            for operation in log.acknowledged:
                model.apply(*operation)
            allowed = model.allowed(log.in_flight)
            if log.in_flight is not None:
                reliability.add(SECTION, "operations_in_flight_at_kill")
            for i, entry in enumerate(owned[w]):
                data = await backend.get(entry.path(PREFIX))
                try:
                    observed = None if data is None else decode_value(entry.user_key, data)
                except TornValue as problem:
                    message = f"round {round_number}: {entry} is torn: {problem}"
                    raise AssertionError(message) from None
                assert observed in allowed[i], (
                    f"round {round_number}: {entry} holds write {observed}; "
                    f"the acknowledged operations and the one in flight allow {allowed[i]}"
                )
                reliability.add(SECTION, "entries_checked")
                if observed is not None:
                    reliability.add(SECTION, "values_verified_whole")
                if log.in_flight is not None and observed != model.expected[i]:
                    reliability.add(SECTION, "in_flight_writes_that_landed")
                state[w][i] = observed

        reader_lines = reader_log.read_text().splitlines() if reader_log.exists() else []
        torn = [line for line in reader_lines if line.startswith("TORN")]
        assert not torn, f"round {round_number}: the reader saw torn values: {torn[:3]}"
        reliability.add(
            SECTION,
            "concurrent_reads_verified_whole",
            sum(int(line.split()[1]) for line in reader_lines if line.startswith("R ")),
        )

        listed = [key async for key in backend.list("")]
        debris = [key for key in listed if key not in every_path]
        assert not debris, f"round {round_number}: listed keys that are no entry: {debris[:5]}"
        reliability.add(SECTION, "listings_checked_no_debris")

    leftover = staging_files(root)
    reliability.note(SECTION, "staging_files_left_on_disk_never_listed", leftover)
