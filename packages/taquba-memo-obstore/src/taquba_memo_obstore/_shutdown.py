"""A guard against obstore 0.12 aborting the interpreter at exit.

obstore resolves each awaitable from a tokio thread by calling the event
loop's ``call_soon_threadsafe``, which writes to the loop's self-pipe with
the GIL released. If the main thread finishes and the interpreter starts
finalizing before that write returns, the tokio thread is told to exit while
it still has Rust frames on its stack, and the process dies with SIGABRT
(measured: 21 of 25 short scripts, after all their work had succeeded).
Releasing the GIL for a moment at exit lets those writes return first
(measured: 0 of 40).
"""

from __future__ import annotations

import atexit
import time

# Long enough for a pending self-pipe write to return; short enough to go unnoticed.
_GRACE_SECONDS = 0.02


def _let_runtime_callbacks_return() -> None:
    time.sleep(_GRACE_SECONDS)


atexit.register(_let_runtime_callbacks_return)
