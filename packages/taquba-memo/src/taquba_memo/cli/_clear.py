"""``taquba-memo clear RUN_ID``: delete every memo entry of one run."""

from __future__ import annotations

import argparse

from taquba_memo import _layout as layout
from taquba_memo._exit_codes import ExitCode
from taquba_memo._store import MemoStore
from taquba_memo.cli._empty_store import warn_if_empty
from taquba_memo.cli._observed import ObservedBackend
from taquba_memo.cli._output import Output, plural

__all__ = ["cmd_clear"]


async def cmd_clear(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    run_id = layout.validate_run_id(args.run_id)
    backend = store.backend
    assert isinstance(backend, ObservedBackend)
    with out.progress(f"clearing {run_id}", unit="entries deleted") as bar:
        backend.on_change = lambda: bar.set(backend.deleted)
        out.partial = lambda: (
            {"run_id": run_id, "entries_deleted": backend.deleted},
            f"run {run_id}: {plural(backend.deleted, 'entry', 'entries')} deleted",
        )
        out.resumable = True
        deleted = await store.clear_memos_for_run(run_id)
    failed = backend.attempted - deleted
    if not deleted and not failed:
        await warn_if_empty(store, args.url, out)
    lines = [f"run {run_id}: {plural(deleted, 'entry', 'entries')} deleted"]
    if failed:
        lines.append(f"{plural(failed, 'entry', 'entries')} could not be deleted; run it again")
    out.result({"run_id": run_id, "entries_deleted": deleted, "entries_failed": failed}, lines)
    return ExitCode.INCOMPLETE if failed else ExitCode.OK
