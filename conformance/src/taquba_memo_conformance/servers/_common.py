"""What every server module shares: the record base class, env, and the env/container/process order.

Also the start of an emulator process on a free port (retried when the port is
taken first) and the checks that the ``servers`` extra is installed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import urllib.parse
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypedDict, TypeVar, cast

from taquba_memo_conformance._containers import docker_answers
from taquba_memo_conformance._processes import (
    ManagedProcess,
    ServerStartError,
    StartedServer,
    free_port,
    http_answers,
    start_timeout,
)

How = Literal["env", "container", "process"]

MODE_ENV = "TAQUBA_MEMO_SERVERS"
SERVERS_EXTRA_HINT = "install the kit's extra: pip install 'taquba-memo-conformance[servers]'"
PROCESS_START_ATTEMPTS = 3  # a free port can be taken between picking and binding it
#: The kit's data files (``azurite/``, ``rgw/``) sit beside this package.
KIT_DIRECTORY = Path(__file__).resolve().parent.parent

_Stop = Callable[[], None]


def unique_name() -> str:
    """A bucket or container name valid for S3, GCS and Azure alike (lowercase, 32 chars)."""
    return f"taquba-memo-{uuid.uuid4().hex[:20]}"


def is_loopback(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


EmulatorT = TypeVar("EmulatorT", bound=str)


@dataclass(kw_only=True)
class ServerRecord(Generic[EmulatorT]):
    """What every server record holds besides its address, and ``close``, which stops it."""

    emulator: EmulatorT | None
    how: How
    #: Seconds from start until the server answered (None when given by env).
    startup_seconds: float | None = None
    #: The process the kit started, leader of the process group of everything it runs
    #: (None for a container or a server given by env): what tests find its processes by.
    process_id: int | None = field(default=None, repr=False, compare=False)
    _stop: _Stop | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        """Stop the server if the kit started it (a server given by env is left alone)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


@dataclass(kw_only=True)
class BucketServerRecord(ServerRecord[EmulatorT]):
    """A record of an object store with buckets (S3, GCS): its endpoint, and a bucket per call."""

    endpoint_url: str
    #: ``TAQUBA_MEMO_S3_BUCKET`` or ``TAQUBA_MEMO_GCS_BUCKET``: reuse this bucket
    #: instead of creating one per call.
    fixed_bucket: str | None = None

    def new_bucket(self) -> str:
        """Create a fresh, uniquely named, empty bucket and return its name."""
        if self.fixed_bucket:
            return self.fixed_bucket
        name = unique_name()
        self._create_bucket(name)
        return name

    def _create_bucket(self, name: str) -> None:
        """Create the empty bucket ``name`` through the store's own API."""
        raise NotImplementedError


class StartedFields(TypedDict):
    how: How
    startup_seconds: float
    process_id: int | None
    _stop: _Stop


def started_fields(started: StartedServer, how: How) -> StartedFields:
    """The record fields of a server the kit started: how, its start-up time, its process, stop."""
    return StartedFields(
        how=how,
        startup_seconds=started.startup_seconds,
        process_id=started.process_id,
        _stop=started.stop,
    )


# --------------------------------------------------------------------------- resolution

ServerT = TypeVar("ServerT", bound=ServerRecord[Any])


def _mode() -> Literal["auto", "container", "process"]:
    mode = os.environ.get(MODE_ENV, "auto") or "auto"
    if mode not in ("auto", "container", "process"):
        raise ServerStartError(f"{MODE_ENV} must be auto, container or process, not {mode!r}")
    return cast(Literal["auto", "container", "process"], mode)


def resolve(
    kind: str,
    from_env: Callable[[], ServerT | None],
    in_container: Callable[[], ServerT],
    as_process: Callable[[], ServerT],
) -> ServerT:
    """The server given by env, else a container (when Docker answers), else a local process."""
    given = from_env()
    if given is not None:
        return given
    mode = _mode()
    if mode == "container" or (mode == "auto" and docker_answers()):
        try:
            return in_container()
        except ServerStartError as error:
            if mode == "container":
                raise
            warnings.warn(
                f"a Docker engine answers but the {kind} container did not start, so the kit "
                f"starts a local process instead ({MODE_ENV}=container makes this an error): "
                f"{error}",
                stacklevel=3,
            )
    return as_process()


# --------------------------------------------------------------------------- env


def env_value(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def required_env(name: str, because: str) -> str:
    value = env_value(name)
    if value is None:
        raise ServerStartError(f"{name} must be set when {because} (credentials are never guessed)")
    return value


def emulator_env(name: str, allowed: tuple[EmulatorT, ...]) -> EmulatorT | None:
    value = env_value(name)
    if value is None:
        return None
    for choice in allowed:
        if value == choice:
            return choice
    raise ServerStartError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def check_answers(url: str, variable: str) -> None:
    """A loopback endpoint from env must answer now; a remote one is left to the tests."""
    if is_loopback(url) and not http_answers(url, timeout=5.0):
        raise ServerStartError(f"{variable} points at {url}, which does not answer")


def image(variable: str, default: str) -> str:
    return env_value(variable) or default


# --------------------------------------------------------------------------- process


def start_process(
    name: str, argv_for: Callable[[int], list[str]], probe_path: str
) -> StartedServer:
    """Start ``argv_for(port)`` on a free port and wait until ``probe_path`` answers.

    Retried on a fresh port when the process exits early (another process may
    have taken the port between picking and binding it); a timeout is final.
    """
    timeout = start_timeout()
    last_error: ServerStartError | None = None
    for _attempt in range(PROCESS_START_ATTEMPTS):
        port = free_port()
        process = ManagedProcess(name, argv_for(port))
        try:
            seconds = process.wait_until_http(f"http://127.0.0.1:{port}{probe_path}", timeout)
        except ServerStartError as error:
            if not process.exited():
                raise
            last_error = error
            continue
        return StartedServer(
            host_port=port, startup_seconds=seconds, stop=process.stop, process_id=process.pid
        )
    assert last_error is not None
    raise last_error


def require_modules(what: str, *modules: str) -> None:
    missing = [module for module in modules if not importable(module)]
    if missing:
        raise ServerStartError(f"{what} needs {', '.join(missing)}: {SERVERS_EXTRA_HINT}")


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def which(command: str) -> str | None:
    """``command`` on PATH, or in /usr/bin or /usr/sbin (root's PATH may lack the latter)."""
    found = shutil.which(command)
    if found is not None:
        return found
    for directory in ("/usr/bin", "/usr/sbin"):
        candidate = Path(directory) / command
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
