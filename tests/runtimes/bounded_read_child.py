"""Reads one oversized entry through a store with max_value_bytes, and reports its memory.

    python -m tests.runtimes.bounded_read_child SPEC PREFIX MAX_VALUE_BYTES

The entry ``big`` of run ``run-1`` step 0 must exist below ``PREFIX``. The
child resets its peak resident set size (``/proc/self/clear_refs``), then
calls ``Memo.get`` and, after another reset, ``get_or_compute`` (which
recomputes ``b"recomputed"``), and prints one JSON line: for each call what
it returned or raised, and how far its peak RSS (``VmHWM``) rose above the
resident size before it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from taquba_memo import MemoStore
from taquba_memo.backend import reads_bounded

from tests.runtimes.backend_specs import build_backend, decode_spec

CHILD_ALARM_S = 240
BOUND = 1024


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def reset_peak() -> int:
    """Restart the peak (``VmHWM``) from the current resident size, and return that size."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_kib("VmRSS")


async def measured(call: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    """What ``call`` returned (its size) or raised, and its peak RSS growth in bytes."""
    before = reset_peak()
    try:
        result = await call()
        outcome = f"returned {len(result)} bytes" if isinstance(result, bytes) else repr(result)
    except Exception as exc:
        outcome = f"raised {type(exc).__name__}"
    return {"outcome": outcome, "peak_growth": (status_kib("VmHWM") - before) * 1024}


async def main() -> None:
    signal.alarm(CHILD_ALARM_S)
    spec_text, prefix, max_value_bytes = sys.argv[1:]
    backend = build_backend(decode_spec(spec_text))
    async with MemoStore(backend, prefix, max_value_bytes=int(max_value_bytes)) as store:
        memo = store.new_memo("run-1", 0)
        await memo.get("warm-up")  # connections and lazy imports out of the measure
        report = {
            "reads_bounded": reads_bounded(backend),
            "get": await measured(lambda: memo.get("big")),
            "get_or_compute": await measured(
                lambda: memo.get_or_compute("big", lambda: b"recomputed")
            ),
        }
        after = await MemoStore(backend, prefix).new_memo("run-1", 0).get("big")
    # The entry as it is now: small enough to show, or only its size.
    report["after"] = (
        after.decode()
        if after is not None and len(after) <= BOUND
        else repr(None if after is None else len(after))
    )
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
