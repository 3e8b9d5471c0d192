"""Stopping a running command: SIGINT, SIGTERM or a denied request cancel it at a safe point."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from taquba_memo._exit_codes import ExitCode
from taquba_memo.cli._errors import denied_error
from taquba_memo.cli._output import Output
from taquba_memo.errors import AccessDeniedError

__all__ = ["Stop"]

_EXIT_FOR_SIGNAL = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}


class Stop:
    """SIGINT and SIGTERM (or a denied delete) cancel the command once; a second signal kills."""

    def __init__(self, command: asyncio.Future[int]) -> None:
        self._command = command
        self._loop = asyncio.get_running_loop()
        self.signal: signal.Signals | None = None
        self.denied: AccessDeniedError | None = None
        self.denied_doing = ""
        self._installed: list[signal.Signals] = []
        for signum in _EXIT_FOR_SIGNAL:
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
                self._loop.add_signal_handler(signum, self._on_signal, signum)
                self._installed.append(signum)

    def _on_signal(self, signum: signal.Signals) -> None:
        if self.signal is None:
            self.signal = signum
        self.uninstall()  # the next signal has its default effect: stop at once
        self._command.cancel()

    def deny(self, error: AccessDeniedError, doing: str) -> None:
        if self.denied is None:
            self.denied, self.denied_doing = error, doing
            self._command.cancel()

    def uninstall(self) -> None:
        for signum in self._installed:
            self._loop.remove_signal_handler(signum)
        self._installed.clear()

    def report(self, out: Output) -> int | None:
        """Print the summary of the cancelled command and return its exit code;
        None when neither a signal nor a denial cancelled it."""
        if self.denied is not None:
            error = denied_error(self.denied, self.denied_doing)
            out.stopped("access denied", ExitCode.ACCESS_DENIED, error)
            return ExitCode.ACCESS_DENIED
        if self.signal is None:
            return None
        code = _EXIT_FOR_SIGNAL[self.signal]
        out.stopped(self.signal.name, code)
        return code
