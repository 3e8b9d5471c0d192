"""Where a command's results, progress, warnings and errors go: text or one JSON document."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from taquba_memo._iso_time import iso_utc_moment
from taquba_memo.cli._errors import hint_for

if TYPE_CHECKING:
    from taquba_memo._progress import Progress

__all__ = ["Output", "human_bytes", "iso_time", "plural"]


@dataclass
class Output:
    """Where results, progress and errors go."""

    json_mode: bool
    progress_enabled: bool
    stdout: TextIO
    stderr: TextIO
    summary_only: bool = False
    warnings: list[str] = field(default_factory=list)
    partial: Callable[[], tuple[dict[str, Any], str]] = lambda: ({}, "nothing done yet")
    """What the command has done so far: a document and a summary line, for an interruption."""
    resumable: bool = False
    """An interrupted run of the command leaves work that the next one finishes."""

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.stderr.write(f"taquba-memo: warning: {text}\n")
        self.stderr.flush()

    def progress(self, label: str, *, total: int | None = None, unit: str = "") -> Progress:
        from taquba_memo._progress import Progress  # only a running command draws progress

        return Progress(
            label, stream=self.stderr, enabled=self.progress_enabled, total=total, unit=unit
        )

    def result(self, document: dict[str, Any], lines: Sequence[str]) -> None:
        """Print the command's document (``--json``) or its lines, the summary last."""
        if self.json_mode:
            if self.warnings:
                document = {**document, "warnings": self.warnings}
            json.dump(document, self.stdout, indent=2)
            self.stdout.write("\n")
        else:
            for line in lines[-1:] if self.summary_only else lines:
                self.stdout.write(line + "\n")
        self.stdout.flush()

    def stopped(self, reason: str, code: int, error: BaseException | None = None) -> None:
        """The summary of an interrupted command (and the error that stopped it, if any)."""
        document, summary = self.partial()
        document = {**document, "interrupted": reason, "exit_code": code}
        if error is not None:
            document["error"] = {"type": type(error).__name__, "message": str(error)}
        else:
            rest = "; the next pass finishes the rest" if self.resumable else ""
            summary = f"{summary} (interrupted by {reason}{rest})"
        self.result(document, [summary])
        if error is not None:
            self._error_lines(error)

    def error(self, error: BaseException, code: int) -> None:
        self._error_lines(error)
        if self.json_mode:
            message = str(error) or type(error).__name__
            document: dict[str, Any] = {
                "error": {"type": type(error).__name__, "message": message},
                "exit_code": code,
            }
            if self.warnings:
                document["warnings"] = self.warnings
            json.dump(document, self.stdout)
            self.stdout.write("\n")
            self.stdout.flush()

    def _error_lines(self, error: BaseException) -> None:
        message = str(error) or type(error).__name__
        self.stderr.write(f"taquba-memo: error: {message}\n")
        hint = hint_for(error)
        if hint:
            self.stderr.write(f"taquba-memo: hint: {hint}\n")
        self.stderr.flush()


def iso_time(moment: datetime.datetime | None) -> str | None:
    """``moment`` as ISO 8601 UTC, or None."""
    return None if moment is None else iso_utc_moment(moment)


def human_bytes(size: int) -> str:
    """``1536`` -> ``1.5 KiB``; whole bytes below 1 KiB."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``3 runs``, ``1 run``: the count with thousands separators and the noun agreeing."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"
