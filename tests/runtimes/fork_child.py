"""A parent process that opens stores, forks, and lets the child use them: for the fork tests.

    python -m tests.runtimes.fork_child SPEC os-fork|os-fork-exit|multiprocessing used|unused

The parent builds a sync and an async store on the backend ``SPEC`` describes
(:mod:`tests.runtimes.backend_specs`), uses them first when told ``used``,
then makes a child with ``os.fork()`` (ending with ``os._exit``, as
``multiprocessing`` does, or with ``os-fork-exit`` as a gunicorn worker does:
a normal exit, finalizers and all) or a ``multiprocessing`` fork-context
Process. The child runs the scenario on both stores and sends back what it
saw; an alarm kills a child that hangs. The parent then runs the scenario
once more itself (its own connections must still work) and prints one JSON
line: ``{"child": ..., "child_exit": ..., "parent_after": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from taquba_memo import MemoStore
from taquba_memo import sync as memo_sync
from taquba_memo.adapter_kit import detach_inherited_loop

from tests.runtimes.backend_specs import build_backend, decode_spec
from tests.runtimes.scenario import exercise_async, exercise_sync

# A hung child is killed by this alarm, so the parent reports instead of waiting.
CHILD_ALARM_S = 20


async def exercise_then_close(store: MemoStore, run_id: str) -> dict[str, Any]:
    try:
        return await exercise_async(store, run_id)
    finally:
        await store.aclose()


def child_outcome(sync_store: memo_sync.MemoStore, async_store: MemoStore) -> dict[str, Any]:
    signal.alarm(CHILD_ALARM_S)
    outcome = {
        "sync": exercise_sync(sync_store, "child-sync"),
        "async": asyncio.run(exercise_then_close(async_store, "child-async")),
    }
    sync_store.close()
    return outcome


def in_forked_child(connection: Connection, stores: tuple[memo_sync.MemoStore, MemoStore]) -> None:
    connection.send(child_outcome(*stores))


def main() -> None:
    spec = decode_spec(sys.argv[1])
    how, used = sys.argv[2], sys.argv[3] == "used"
    sync_store = memo_sync.MemoStore(build_backend(spec), "fork")
    async_store = MemoStore(build_backend(spec), "fork")
    parent_loop = asyncio.new_event_loop()  # one loop: an aiohttp client stays on its first
    if used:
        before = {
            "sync": exercise_sync(sync_store, "parent-sync"),
            "async": parent_loop.run_until_complete(exercise_async(async_store, "parent-async")),
        }
        assert all("error" not in seen for seen in before.values()), before
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child_exit: int | None
    if how in ("os-fork", "os-fork-exit"):
        pid = os.fork()
        if pid == 0:
            try:
                in_forked_child(sender, (sync_store, async_store))
            finally:
                if how == "os-fork":
                    os._exit(0)
                # The harness's own loop is not the stores': its finalizer must not
                # unregister the parent's descriptors from the epoll both share.
                detach_inherited_loop(parent_loop)
            sys.exit(0)  # a normal exit: every finalizer and atexit hook runs
        sender.close()
        child = receiver.recv() if receiver.poll(CHILD_ALARM_S + 10) else None
        _, status = os.waitpid(pid, 0)
        child_exit = os.waitstatus_to_exitcode(status)
    else:
        process = multiprocessing.get_context("fork").Process(
            target=in_forked_child, args=(sender, (sync_store, async_store))
        )
        process.start()
        sender.close()
        child = receiver.recv() if receiver.poll(CHILD_ALARM_S + 10) else None
        process.join(CHILD_ALARM_S + 10)
        child_exit = process.exitcode
    after = {
        "sync": exercise_sync(sync_store, "parent-after-sync"),
        "async": parent_loop.run_until_complete(
            exercise_then_close(async_store, "parent-after-async")
        ),
    }
    sync_store.close()
    parent_loop.close()
    print(json.dumps({"child": child, "child_exit": child_exit, "parent_after": after}))


if __name__ == "__main__":
    main()
