"""Suite-wide: the ``reliability`` figures RELIABILITY.md reports, the S3 server matrix, and the
``store``, ``memo`` and ``sync_store`` fixtures (see :mod:`tests.store_fixtures`).

Tests of the S3 adapters that use ``s3_server`` run once per S3 server in
:data:`S3_SERVERS` (moto and Ceph RGW) where their directory's conftest calls
:func:`parametrize_s3_servers`; their ids end in ``[moto]`` or ``[rgw]``.

A fault, crash or hostile-input test adds to named counters of its section::

    reliability.add("faults: minio", "puts_verified", 120)
    reliability.note("faults: minio", "emulator", "moto")

When the session ends, every section touched is written to
``.reliability/figures.json`` (or ``$TAQUBA_MEMO_RELIABILITY_DIR``), with the
time and the host; sections this session did not run keep their previous
figures. ``just reliability`` renders the file.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .store_fixtures import STORE_MARKER, backend, memo, store, sync_store

__all__ = ["backend", "memo", "store", "sync_store"]  # fixtures, found by pytest under these names

# The kit's server fixtures (s3_server, gcs_server, azure_server, ...) are opt-in.
pytest_plugins = ["taquba_memo_conformance.servers_plugin"]

FIGURES_FILE = "figures.json"

#: The S3 servers every S3 adapter test runs on (parameters of the kit's ``s3_server``).
S3_SERVERS = ("moto", "rgw")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", STORE_MARKER)


def parametrize_s3_servers(metafunc: pytest.Metafunc) -> None:
    """Run a test that uses ``s3_server`` once on each of :data:`S3_SERVERS`."""
    if "s3_server" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        if "s3_server" in str(marker.args[0] if marker.args else marker.kwargs.get("argnames")):
            return  # the test chooses its servers itself
    metafunc.parametrize("s3_server", S3_SERVERS, indirect=True, scope="session")


def figures_dir() -> Path:
    configured = os.environ.get("TAQUBA_MEMO_RELIABILITY_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / ".reliability"


class ReliabilityFigures:
    """Counters and notes per section; thread-safe (fault proxies count from their own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}
        self._notes: dict[str, dict[str, Any]] = {}

    def add(self, section: str, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts.setdefault(section, Counter())[name] += amount

    def note(self, section: str, name: str, value: Any) -> None:
        with self._lock:
            self._notes.setdefault(section, {})[name] = value

    def count(self, section: str, name: str) -> int:
        with self._lock:
            return self._counts.get(section, Counter())[name]

    def share(self) -> dict[str, Any]:
        """This process's counts and notes, for a worker of ``pytest -n`` to hand over."""
        with self._lock:
            return {"counts": self._counts, "notes": self._notes}

    def absorb(self, share: dict[str, Any]) -> None:
        """Add another worker's :meth:`share`: counts sum, notes join."""
        for section, counts in share["counts"].items():
            for name, amount in counts.items():
                self.add(section, name, amount)
        for section, notes in share["notes"].items():
            for name, value in notes.items():
                self.note(section, name, value)

    def write(self, directory: Path, *, tests_failed: int = 0) -> None:
        with self._lock:
            sections = sorted(set(self._counts) | set(self._notes))
            if not sections:
                return
            path = directory / FIGURES_FILE
            try:
                stored: dict[str, Any] = json.loads(path.read_text())
            except (OSError, ValueError):
                stored = {}
            now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
            for section in sections:
                stored[section] = {
                    "recorded_at": now.isoformat(),
                    "host": f"{platform.node()} ({platform.system()}, {os.cpu_count()} CPUs, "
                    f"Python {platform.python_version()})",
                    "figures": dict(sorted(self._counts.get(section, Counter()).items())),
                    "notes": dict(self._notes.get(section, {})),
                }
                if tests_failed:  # figures of a run with failures are not a clean result
                    stored[section]["notes"]["tests_failed_in_that_run"] = tests_failed
            directory.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(dict(sorted(stored.items())), indent=2) + "\n")
            temporary.replace(path)


#: The worker this process is under ``pytest -n`` (gw0, gw1, ...), or None.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
SHARES = f"{FIGURES_FILE}.share-*"


@pytest.fixture(scope="session")
def reliability(request: pytest.FixtureRequest) -> Iterator[ReliabilityFigures]:
    """Figures for RELIABILITY.md, written to ``.reliability/figures.json`` at session end.

    Under ``pytest -n`` each worker writes its share, and the controller sums them: one
    worker's figures alone would replace the whole run's.
    """
    figures = ReliabilityFigures()
    yield figures
    share = figures.share()
    if XDIST_WORKER is None:
        figures.write(figures_dir(), tests_failed=request.session.testsfailed)
    elif share["counts"] or share["notes"]:
        directory = figures_dir()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SHARES.replace("*", XDIST_WORKER)).write_text(json.dumps(share))


def _is_xdist_controller(session: pytest.Session) -> bool:
    return XDIST_WORKER is None and session.config.pluginmanager.has_plugin("dsession")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_xdist_controller(session):
        for stale in figures_dir().glob(SHARES):  # of a run that was interrupted
            stale.unlink()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _is_xdist_controller(session):
        return
    shares = sorted(figures_dir().glob(SHARES))
    if shares:
        total = ReliabilityFigures()
        for share in shares:
            total.absorb(json.loads(share.read_text()))
            share.unlink()
        total.write(figures_dir(), tests_failed=session.testsfailed)
