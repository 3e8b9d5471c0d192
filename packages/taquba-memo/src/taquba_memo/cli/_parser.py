"""The command line's grammar: argparse, durations, and ``--help`` with the exit codes."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from typing import NoReturn

from taquba_memo import __version__
from taquba_memo._exit_codes import exit_codes_help
from taquba_memo.errors import UsageError

__all__ = [
    "LAYOUT_VARIABLE",
    "PREFIX_VARIABLE",
    "URL_VARIABLE",
    "build_parser",
    "parse_command_line",
    "parse_duration_ms",
]

URL_VARIABLE = "TAQUBA_MEMO_URL"
PREFIX_VARIABLE = "TAQUBA_MEMO_PREFIX"
LAYOUT_VARIABLE = "TAQUBA_MEMO_LAYOUT"
LAYOUTS = ("0.5", "0.10")

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_DURATION_OPTIONS = ("--older-than",)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(text: str) -> int:
    """``7d``, ``12h``, ``1d12h``, ``90m``, ``30s``, ``500ms``, ``2w`` -> milliseconds."""
    if text.startswith("-"):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: a duration cannot be negative (for example 7d)"
        )
    position, total = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w), "
            "for example 7d or 1d12h"
        )
    return total


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _join_dash_values(argv: Sequence[str]) -> list[str]:
    """``--older-than -1d`` -> ``--older-than=-1d``: a value, not an unknown option."""
    joined: list[str] = []
    index = 0
    while index < len(argv):
        item = argv[index]
        following = argv[index + 1] if index + 1 < len(argv) else None
        if item in _DURATION_OPTIONS and following is not None and following.startswith("-"):
            joined.append(f"{item}={following}")
            index += 2
            continue
        joined.append(item)
        index += 1
    return joined


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after its name.

    The copies on each subcommand default to SUPPRESS so they never overwrite a value.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get(URL_VARIABLE)),
        help=f"store URL: file:///path, memory://, s3://bucket/base, ... (${URL_VARIABLE})",
    )
    parser.add_argument(
        "--prefix",
        default=default(os.environ.get(PREFIX_VARIABLE, "")),
        help=f"the MemoStore prefix inside the store (${PREFIX_VARIABLE}, default '')",
    )
    parser.add_argument(
        "--layout",
        default=default(os.environ.get(LAYOUT_VARIABLE) or None),
        help=(
            "object layout: 0.5 (taquba-workflow 0.5.0) or 0.10 (0.6.0 to 0.10.0) "
            f"(${LAYOUT_VARIABLE}; default: detected from the terminal marker names)"
        ),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON document on stdout",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        default=default(False),
        help="never draw progress (it is drawn only when stderr is a terminal)",
    )
    parser.add_argument(
        "--summary-only",
        action="store_true",
        default=default(False),
        help="print only the summary, not one line per run or marker (for cron and CI)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``taquba-memo`` parser; its epilog is the exit-code table, made from ExitCode."""
    parser = _Parser(
        prog="taquba-memo",
        description="Inspect and clean a taquba-memo store.",
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # one exit code a line
    )
    parser.add_argument("--version", action="version", version=f"taquba-memo {__version__}")
    _add_global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = commands.add_parser("runs", help="list runs and steps with entry counts")
    runs.add_argument("run_id", nargs="?", help="show only this run")
    runs.add_argument(
        "--sizes",
        action="store_true",
        help="also show sizes: from the listing where it carries them, else by reading every entry",
    )
    runs.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        help="entries read at once for --sizes (default 16)",
    )

    markers = commands.add_parser("markers", help="list terminal markers, oldest first")
    markers.add_argument("run_id", nargs="?", help="show only this run's markers")

    clear = commands.add_parser("clear", help="delete every memo entry of one run")
    clear.add_argument("run_id")

    sweep = commands.add_parser(
        "sweep", help="clear runs whose terminal marker is older than a duration"
    )
    sweep.add_argument(
        "--older-than",
        required=True,
        type=parse_duration_ms,
        metavar="DURATION",
        help="for example 7d, 12h, 1d12h, 30m",
    )
    sweep.add_argument("--dry-run", action="store_true", help="list the runs that would be cleared")
    sweep.add_argument(
        "--no-lease",
        action="store_true",
        help="sweep without taking the store's sweep lease (taken by default where the "
        "backend has conditional writes, so that a second sweeper does nothing)",
    )
    sweep.add_argument(
        "--all-ended",
        action="store_true",
        help="confirm a zero --older-than (0s), which clears every run that has a marker",
    )
    sweep.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        help="runs cleared at once (default 8)",
    )

    for sub in (runs, markers, clear, sweep):
        _add_global_options(sub, top=False)
    return parser


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed, and the rules argparse cannot say checked; :class:`UsageError` if not."""
    args = parser.parse_args(_join_dash_values(argv))
    if not args.url:
        raise UsageError(f"--url is required (or set {URL_VARIABLE})")
    if args.layout is not None and args.layout not in LAYOUTS:
        raise UsageError(
            f"--layout (or ${LAYOUT_VARIABLE}) must be 0.5 or 0.10, not {args.layout!r:.50}"
        )
    if args.command == "sweep" and args.older_than == 0 and not (args.all_ended or args.dry_run):
        raise UsageError(
            "--older-than 0 clears every run that has a terminal marker; "
            "add --all-ended to confirm (or --dry-run to look first)"
        )
    return args
