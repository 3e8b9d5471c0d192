"""A dependency-free progress line for the CLI, drawn on a terminal only.

The core has no runtime dependencies, so no progress library: one line on
stderr, redrawn in place with a carriage return at most ten times a second.
With a known total it is a bar with the elapsed time, the rate and an ETA
(``[#####-----] 12/40 runs, 3.1/s, 0:04 elapsed, ETA 0:09``); without one, a
running count with the rate and elapsed time (``1,234 entries, 410/s, 0:03
elapsed``). Disabled, every method is a no-op.
"""

from __future__ import annotations

import shutil
import time
from typing import TextIO

from taquba_memo._closing import Closing

__all__ = ["Progress"]

_REDRAW_INTERVAL_S = 0.1
_BAR_WIDTH = 24


class Progress(Closing):
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
        self._started = time.monotonic()

    @property
    def count(self) -> int:
        return self._count

    def advance(self, amount: int = 1) -> None:
        self._count += amount
        self._maybe_draw()

    def set(self, count: int) -> None:
        """Move the count to ``count`` (a tally kept elsewhere)."""
        self._count = count
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

    def _maybe_draw(self) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last_draw >= _REDRAW_INTERVAL_S:
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        unit = f" {self._unit}" if self._unit else ""
        elapsed = time.monotonic() - self._started
        rate = self._count / elapsed if elapsed > 0 else 0.0
        timing = f"{_rate_text(rate)}, {_clock(elapsed)} elapsed"
        if self._total:
            done = min(self._count, self._total)
            filled = _BAR_WIDTH * done // self._total
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            line = f"{self._label} [{bar}] {self._count:,}/{self._total:,}{unit}, {timing}"
            if rate > 0 and done < self._total:
                line += f", ETA {_clock((self._total - done) / rate)}"
        else:
            line = f"{self._label} {self._count:,}{unit}, {timing}"
        if self._note:
            line += f", {self._note}"
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
        # \r back to the start, the line cut to the terminal, \x1b[K erases the rest.
        self._stream.write("\r" + line[: max(columns - 1, 10)] + "\x1b[K")
        self._stream.flush()
        self._drawn = True


def _rate_text(rate: float) -> str:
    return f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s"


def _clock(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
