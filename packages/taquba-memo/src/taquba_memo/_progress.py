"""A dependency-free progress line for the CLI, drawn on a terminal only.

The core has no runtime dependencies, so no progress library: one line on
stderr, redrawn in place with a carriage return at most ten times a second.
With a known total it is a bar (``[#####-----] 12/40 runs``); without one, a
running count (``1,234 entries``). Disabled, every method is a no-op.
"""

from __future__ import annotations

import shutil
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

_REDRAW_INTERVAL_S = 0.1
_BAR_WIDTH = 24


class Progress:
    """One progress line; ``advance`` it, then ``close`` it (or use ``with``)."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO,
        enabled: bool,
        total: int | None = None,
        unit: str = "",
    ) -> None:
        self._label = label
        self._stream = stream
        self._enabled = enabled
        self._total = total
        self._unit = unit
        self._count = 0
        self._note = ""
        self._last_draw = float("-inf")
        self._drawn = False

    @property
    def count(self) -> int:
        return self._count

    def advance(self, amount: int = 1) -> None:
        self._count += amount
        self._maybe_draw()

    def note(self, text: str) -> None:
        """Extra text shown after the count (for example entries deleted so far)."""
        self._note = text
        self._maybe_draw()

    def close(self) -> None:
        """Draw the final state and end the line (only if anything was drawn)."""
        if self._enabled and self._drawn:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
        self._enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _maybe_draw(self) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last_draw >= _REDRAW_INTERVAL_S:
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        unit = f" {self._unit}" if self._unit else ""
        if self._total:
            done = min(self._count, self._total)
            filled = _BAR_WIDTH * done // self._total
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            line = f"{self._label} [{bar}] {self._count:,}/{self._total:,}{unit}"
        else:
            line = f"{self._label} {self._count:,}{unit}"
        if self._note:
            line += f", {self._note}"
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        # \r back to the start, the line cut to the terminal, \x1b[K erases the rest.
        self._stream.write("\r" + line[: max(columns - 1, 10)] + "\x1b[K")
        self._stream.flush()
        self._drawn = True
