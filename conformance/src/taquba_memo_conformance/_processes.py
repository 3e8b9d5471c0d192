"""Starting, probing and always stopping the emulator processes and containers the kit runs.

Stdlib only: the servers plugin imports it at start-up, before any server is wanted.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ManagedProcess",
    "ServerStartError",
    "ServerUnavailableError",
    "StartedServer",
    "free_port",
    "http_answers",
    "register_cleanup",
    "start_timeout",
    "tail",
    "wait_until_http",
]

START_TIMEOUT_ENV = "TAQUBA_MEMO_SERVER_START_TIMEOUT"
DEFAULT_START_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 5.0


class ServerStartError(RuntimeError):
    """A storage server could not be provided; the message carries its output's tail."""


class ServerUnavailableError(ServerStartError):
    """The server's software is not on this machine; the message says how to get it.

    Its fixture skips the tests that need it, unless ``TAQUBA_MEMO_REQUIRE_SERVERS=1``.
    """


@dataclass
class StartedServer:
    """A server the kit started (a process or a container): its port on 127.0.0.1, how long
    it took from start until it answered, and how to stop it."""

    host_port: int
    startup_seconds: float
    stop: Callable[[], None]
    #: The process the kit started, leader of its own process group (None for a container).
    process_id: int | None = None


def start_timeout() -> float:
    """Seconds a server may take to answer (``$TAQUBA_MEMO_SERVER_START_TIMEOUT``, default 60)."""
    raw = os.environ.get(START_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_START_TIMEOUT
    try:
        return max(1.0, float(raw))
    except ValueError:
        raise ServerStartError(f"{START_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_answers(url: str, *, timeout: float = 2.0) -> bool:
    """True when ``url`` gives any HTTP response at all (a 403 or 404 counts: the server is up).

    An HTTP-level probe, not a TCP connect: a published container port accepts
    connections before the server inside listens.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, parts.port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        connection.request("GET", path)
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def wait_until_http(
    url: str,
    *,
    timeout: float,
    is_dead: Callable[[], bool] = lambda: False,
    describe: Callable[[], str] = lambda: "",
) -> float:
    """Poll ``url`` until it answers; return the seconds that took.

    Gives up after ``timeout`` seconds, or at once when ``is_dead()`` says the
    server exited, raising :class:`ServerStartError` with ``describe()`` appended.
    """
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.02
    while True:
        if is_dead():
            raise ServerStartError(f"the server for {url} exited before answering{describe()}")
        if http_answers(url, timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise ServerStartError(f"{url} did not answer within {timeout:.0f} s{describe()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a server's output, for an error message."""
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(kept) if kept else "(no output)"


_cleanups: list[Callable[[], None]] = []
_cleanups_lock = threading.Lock()


def register_cleanup(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` at interpreter exit unless it ran before (cleanups must be idempotent)."""
    with _cleanups_lock:
        _cleanups.append(cleanup)


@atexit.register
def _run_cleanups() -> None:
    with _cleanups_lock:
        pending = list(reversed(_cleanups))
        _cleanups.clear()
    for cleanup in pending:
        with contextlib.suppress(Exception):
            cleanup()


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that makes Linux SIGTERM the child if this process dies unannounced.

    Looked up here, in the parent: the child must not import anything between
    fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    term = int(signal.SIGTERM)

    def in_child() -> None:
        os.setsid()
        prctl(pr_set_pdeathsig, term)

    return in_child


class ManagedProcess:
    """One emulator process: output captured to a file, stopped at session end or exit.

    The process gets its own session (process group), so stopping it also stops
    anything it spawned, and nothing outside that group is ever signalled. When
    started from the main thread on Linux it also dies if the test process is
    killed outright, so a crashed pytest leaves no server behind.
    """

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        # A scratch directory as working directory, so nothing lands in the caller's
        # tree; it also holds the output log, and goes away in stop().
        self.workdir = Path(tempfile.mkdtemp(prefix=f"taquba-memo-{name}-"))
        self.log_path = self.workdir / "output.log"
        self._log = self.log_path.open("wb")
        # The parent-death signal is tied to the forking thread, so only the main
        # thread (whose exit ends the process) may ask for it.
        in_main_thread = threading.current_thread() is threading.main_thread()
        pre_exec = _parent_death_signal() if in_main_thread else None
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                preexec_fn=pre_exec,
                start_new_session=pre_exec is None,  # pre_exec calls setsid() itself
            )
        except OSError as error:
            self._log.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise ServerStartError(f"could not run {self.argv[0]}: {error}") from error
        self._stopped = False
        register_cleanup(self.stop)

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> bool:
        return self.process.poll() is not None

    def output_tail(self, lines: int = 40) -> str:
        try:
            return tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return "(output unavailable)"

    def describe(self) -> str:
        """Exit status and output tail, appended to a start-up error."""
        status = self.process.poll()
        state = f"exit status {status}" if status is not None else "still running"
        return f"\n{self.name} ({state}) ran: {' '.join(self.argv)}\n--- its output ---\n" + (
            self.output_tail()
        )

    def wait_until_http(self, url: str, timeout: float) -> float:
        """Wait for ``url``; on failure stop the process and raise with its output tail."""
        try:
            return wait_until_http(
                url, timeout=timeout, is_dead=self.exited, describe=self.describe
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the process group, then kill it after a grace period. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.process.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.process.wait(timeout=STOP_GRACE_SECONDS)
            # What the process started may outlive it in its group (a start script that
            # failed half-way leaves its daemons running): those are killed outright.
            self._signal(signal.SIGKILL)
        finally:
            self._log.close()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _signal(self, signum: int) -> None:
        try:
            if os.name == "posix":
                os.killpg(self.process.pid, signum)
            else:
                self.process.kill()
        except ProcessLookupError:
            pass
