"""Running a parsed command: open the store, run the command on an event loop, stop safely.

Imported by :func:`taquba_memo.cli.main` once the command line is parsed, so that
``--help``, ``--version`` and usage errors load neither asyncio nor the store.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from taquba_memo import _layout as layout
from taquba_memo._backends.local import LocalFileBackend
from taquba_memo._store import MemoStore
from taquba_memo._urls import open_backend
from taquba_memo.cli._clear import cmd_clear
from taquba_memo.cli._layout_choice import choose_layout
from taquba_memo.cli._markers import cmd_markers
from taquba_memo.cli._observed import observe
from taquba_memo.cli._output import Output
from taquba_memo.cli._runs import cmd_runs
from taquba_memo.cli._signals import Stop
from taquba_memo.cli._sweep import cmd_sweep
from taquba_memo.errors import ContainerNotFoundError

_COMMANDS: dict[str, Callable[[MemoStore, argparse.Namespace, Output], Awaitable[int]]] = {
    "runs": cmd_runs,
    "markers": cmd_markers,
    "clear": cmd_clear,
    "sweep": cmd_sweep,
}


async def _run_command(args: argparse.Namespace, out: Output) -> int:
    layout.normalize_prefix(args.prefix)  # a bad prefix fails before the adapter opens
    inner = open_backend(args.url)
    if isinstance(inner, LocalFileBackend) and not inner.root.is_dir():
        # The local twin of a missing bucket; reading never creates the directory.
        raise ContainerNotFoundError(f"the directory {inner.root} does not exist")
    backend = observe(inner, args.prefix)
    try:
        store_layout = await choose_layout(inner, args.prefix, args.layout)
    except BaseException:
        await backend.aclose()
        raise
    async with MemoStore(backend, args.prefix, layout=store_layout) as store:
        command = asyncio.ensure_future(_COMMANDS[args.command](store, args, out))
        stop = Stop(command)
        backend.on_denied = stop.deny
        try:
            return await command
        except asyncio.CancelledError:
            code = stop.report(out)
            if code is None:
                raise
            return code
        finally:
            stop.uninstall()


def run_command(args: argparse.Namespace, out: Output) -> int:
    """Run the parsed command to its end on a new event loop; return its exit code."""
    return asyncio.run(_run_command(args, out))
