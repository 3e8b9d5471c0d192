"""What a forked child does with a store its parent opened: put, get, get_or_compute, clear.

The same steps run on a sync store and on an async one; each returns what
it saw, or the type and message of the error it met.
"""

from __future__ import annotations

from typing import Any

from taquba_memo import MemoError, MemoStore
from taquba_memo import sync as memo_sync

__all__ = ["EXPECTED", "exercise_async", "exercise_sync"]

EXPECTED: dict[str, Any] = {
    "get": "put-value",
    "computed": "computed-value",
    "recomputed": "computed-value",
    "cleared": 2,
    "after_clear": None,
}


def _decoded(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def exercise_sync(store: memo_sync.MemoStore, run_id: str) -> dict[str, Any]:
    try:
        memo = store.new_memo(run_id, 0)
        memo.put("put", b"put-value")
        seen: dict[str, Any] = {"get": _decoded(memo.get("put"))}
        seen["computed"] = memo.get_or_compute("computed", lambda: b"computed-value").decode()
        seen["recomputed"] = memo.get_or_compute("computed", lambda: b"paid twice").decode()
        seen["cleared"] = store.clear_memos_for_run(run_id)
        seen["after_clear"] = _decoded(memo.get("put"))
        return seen
    except MemoError as error:
        return {"error": type(error).__name__, "message": str(error)}


async def exercise_async(store: MemoStore, run_id: str) -> dict[str, Any]:
    try:
        memo = store.new_memo(run_id, 0)
        await memo.put("put", b"put-value")
        seen: dict[str, Any] = {"get": _decoded(await memo.get("put"))}
        computed = await memo.get_or_compute("computed", lambda: b"computed-value")
        seen["computed"] = computed.decode()
        recomputed = await memo.get_or_compute("computed", lambda: b"paid twice")
        seen["recomputed"] = recomputed.decode()
        seen["cleared"] = await store.clear_memos_for_run(run_id)
        seen["after_clear"] = _decoded(await memo.get("put"))
        return seen
    except MemoError as error:
        return {"error": type(error).__name__, "message": str(error)}
