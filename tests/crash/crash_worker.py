"""Worker processes for the crash tests, killed with SIGKILL at random moments by the tests.

    python crash_worker.py writer|reader|sweeper CONFIG_JSON

Each prints ``ready`` once it is set up, then works until it is killed (or,
for a sweeper, until its sweep is done). Writers and readers use
:class:`~taquba_memo.MemoStore` on :class:`~taquba_memo.LocalFileBackend`, as a
workflow worker would.

* **writer**: puts, overwrites, create-if-absent puts, deletes and whole-run
  clears on the entries it owns, one at a time. Before each operation it
  appends ``I <op> <target> <seq>`` to its log, and ``A <op> <target> <seq>
  <result>`` after it returned: a line is one ``write`` on an ``O_APPEND``
  descriptor, so a kill leaves whole lines only (the last one may lack its
  newline and is ignored).
* **reader**: reads random entries and checks each value it finds is whole
  and belongs to its key; logs ``R <count>`` batches and ``TORN ...`` lines.
* **sweeper**: one :meth:`MemoStore.sweep` pass with the configured strategy;
  prints its report as JSON.

Values are self-checking (:func:`encode_value`): a header naming the key and
the write's sequence number, a payload, and the SHA-256 of both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import random
import sys
from typing import Any

from taquba_memo import LocalFileBackend, MemoStore
from taquba_memo import _layout as layout

MAGIC = b"TQCRASH1|"
DIGEST_BYTES = 32

# Value sizes a writer picks from: mostly small, sometimes large enough that a
# kill often lands in the middle of writing one.
SIZES = (0, 1, 100, 4096, 65_536, 1_048_576)
SIZE_WEIGHTS = (5, 10, 40, 25, 15, 5)
OPERATION_WEIGHTS = {"put": 65, "create": 12, "delete": 15, "clear": 8}


class TornValue(Exception):
    """A stored value that is not exactly one whole value some writer wrote."""


def key_tag(user_key: str) -> str:
    return hashlib.sha256(user_key.encode()).hexdigest()[:16]


def encode_value(user_key: str, seq: int, size: int) -> bytes:
    """The value write number ``seq`` stores for ``user_key``: checkable on its own."""
    header = MAGIC + f"{key_tag(user_key)}|{seq}|{size}|".encode()
    payload = random.Random(f"{user_key}/{seq}").randbytes(size)
    return header + payload + hashlib.sha256(header + payload).digest()


def decode_value(user_key: str, data: bytes) -> int:
    """The sequence number of the whole value ``data`` of ``user_key``; TornValue otherwise."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + DIGEST_BYTES:
        raise TornValue(f"{len(data)} bytes without the value header")
    body, digest = data[:-DIGEST_BYTES], data[-DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise TornValue(f"{len(data)} bytes whose checksum does not match")
    try:
        tag, seq, size, _ = body[len(MAGIC) :].split(b"|", 3)
        payload_start = len(MAGIC) + len(tag) + len(seq) + len(size) + 3
    except ValueError:
        raise TornValue("a malformed header") from None
    if tag.decode() != key_tag(user_key):
        raise TornValue(f"a value of another key ({tag.decode()})")
    if len(body) - payload_start != int(size):
        raise TornValue(f"a payload of {len(body) - payload_start} bytes, not {int(size)}")
    return int(seq)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One memo entry: ``(run_id, step_number, user_key)``."""

    run_id: str
    step: int
    user_key: str

    def path(self, prefix: str) -> str:
        return layout.memo_key(prefix, self.run_id, self.step, self.user_key)


def entries_from(config: dict[str, Any]) -> list[Entry]:
    return [Entry(run_id, step, user_key) for run_id, step, user_key in config["entries"]]


class Log:
    """Lines appended with one ``write`` each, so a kill never leaves half a line behind it."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, text: str) -> None:
        os.write(self._fd, (text + "\n").encode())


def announce_ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


async def writer(config: dict[str, Any]) -> None:
    store = MemoStore(LocalFileBackend(config["root"]), config["prefix"])
    entries = entries_from(config)
    runs = sorted({entry.run_id for entry in entries})
    rng = random.Random(config["seed"])
    log = Log(config["log"])
    seq = config["first_seq"]
    operations, weights = zip(*OPERATION_WEIGHTS.items(), strict=True)
    announce_ready()
    for _ in range(config["max_operations"]):
        seq += 1
        operation = rng.choices(operations, weights)[0]
        if operation == "clear":
            run = rng.randrange(len(runs))
            log.line(f"I clear {run} {seq}")
            deleted = await store.clear_memos_for_run(runs[run])
            log.line(f"A clear {run} {seq} {deleted}")
            continue
        index = rng.randrange(len(entries))
        entry = entries[index]
        memo = store.new_memo(entry.run_id, entry.step)
        log.line(f"I {operation} {index} {seq}")
        if operation == "delete":
            await store.backend.delete(entry.path(store.prefix))
            result = "-"
        else:
            size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
            value = encode_value(entry.user_key, seq, size)
            written = await memo.put(entry.user_key, value, if_absent=operation == "create")
            result = "1" if written else "0"
        log.line(f"A {operation} {index} {seq} {result}")


async def reader(config: dict[str, Any]) -> None:
    store = MemoStore(LocalFileBackend(config["root"]), config["prefix"])
    entries = entries_from(config)
    rng = random.Random(config["seed"])
    log = Log(config["log"])
    announce_ready()
    verified = 0
    for _ in range(config["max_operations"]):
        entry = rng.choice(entries)
        data = await store.new_memo(entry.run_id, entry.step).get(entry.user_key)
        if data is not None:
            try:
                decode_value(entry.user_key, data)
            except TornValue as torn:
                log.line(f"TORN {entry.run_id}/{entry.step}/{entry.user_key}: {torn}")
                continue
            verified += 1
            if verified == 25:
                log.line(f"R {verified}")
                verified = 0


async def sweeper(config: dict[str, Any]) -> None:
    store = MemoStore(LocalFileBackend(config["root"]), config["prefix"])
    announce_ready()
    report = await store.sweep(
        config["cutoff_ms"], concurrency=config["concurrency"], strategy=config["strategy"]
    )
    print(
        json.dumps(
            {
                "runs_cleared": report.runs_cleared,
                "entries_deleted": report.entries_deleted,
                "failures": [str(failure.error) for failure in report.failures],
            }
        ),
        flush=True,
    )


WORKERS = {"writer": writer, "reader": reader, "sweeper": sweeper}

if __name__ == "__main__":
    role, config_json = sys.argv[1], sys.argv[2]
    asyncio.run(WORKERS[role](json.loads(config_json)))
