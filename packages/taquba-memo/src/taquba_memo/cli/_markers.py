"""``taquba-memo markers``: the terminal markers, oldest first."""

from __future__ import annotations

import argparse

from taquba_memo._exit_codes import ExitCode
from taquba_memo._iso_time import iso_utc
from taquba_memo._layout import TerminalMarker
from taquba_memo._store import MemoStore
from taquba_memo.cli._empty_store import warn_if_empty
from taquba_memo.cli._output import Output, plural

__all__ = ["cmd_markers"]


async def cmd_markers(store: MemoStore, args: argparse.Namespace, out: Output) -> int:
    found: list[TerminalMarker] = []
    with out.progress("listing markers", unit="markers") as bar:
        out.partial = lambda: (
            {"markers_listed": bar.count},
            plural(bar.count, "marker") + " listed",
        )
        async for marker in store.iter_terminal_markers():
            if args.run_id is None or marker.run_id == args.run_id:
                found.append(marker)
            bar.advance()
    found.sort()
    if not found:
        await warn_if_empty(store, args.url, out)
    documents = [
        {
            "run_id": marker.run_id,
            "terminal_at_ms": marker.terminal_at_ms,
            "terminal_at": iso_utc(marker.terminal_at_ms),
        }
        for marker in found
    ]
    lines = [
        f"{doc['terminal_at'] or '-':<26} {doc['terminal_at_ms']:>15}  {doc['run_id']}"
        for doc in documents
    ]
    lines.append(plural(len(found), "marker"))
    out.result({"markers": documents, "count": len(found)}, lines)
    return ExitCode.OK
