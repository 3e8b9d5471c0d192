"""Running the installed ``taquba-memo`` console script, as a user's shell would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taquba_memo._exit_codes import ExitCode as ExitCode  # re-exported: the codes tests assert
from taquba_memo.sync import open_store

# The console script that `uv sync` installed next to this interpreter.
SCRIPT = Path(sys.executable).parent / "taquba-memo"
TIMEOUT_S = 120


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without taquba-memo or cloud settings, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TAQUBA_MEMO_", "AWS_", "GOOGLE_", "AZURE_"))
    }
    # Never let an SDK probe a cloud metadata address from a test.
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra or {})
    return env


def run_captured(
    argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with :func:`clean_env` plus ``env``; stdin closed, output captured (not a
    TTY), killed after ``TIMEOUT_S``."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=clean_env(env),
        timeout=TIMEOUT_S,
        check=False,
    )


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """Run the installed script with ``args``, as :func:`run_captured` does."""
    completed = run_captured([str(SCRIPT), *args], env)
    return Result(completed.returncode, completed.stdout, completed.stderr)


def local_store_of_ended_runs(path: Path, runs: int, entries: Sequence[tuple[str, bytes]]) -> str:
    """The URL of a new local store at ``path``, prefix 'agents', holding ``runs`` runs
    (run-00 ...) that ended long ago, each with ``entries[n]`` (key, value) at step ``n``."""
    store_url = path.as_uri()
    with open_store(store_url, prefix="agents") as store:
        for number in range(runs):
            run_id = f"run-{number:02}"
            for step, (key, value) in enumerate(entries):
                store.new_memo(run_id, step).put(key, value)
            store.write_terminal_marker(run_id, 1_000 + number)
    return store_url


def install_adapter(site: Path, scheme: str, source: str) -> Path:
    """Install, under ``site``, an adapter package for ``scheme://`` whose module is ``source``.

    ``source`` defines ``open_url(url)``. Put ``site`` on ``PYTHONPATH`` for the script.
    """
    site.mkdir(parents=True)
    module = f"taquba_memo_{scheme}"
    (site / f"{module}.py").write_text(source)
    dist_info = site / f"taquba_memo_{scheme}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: taquba-memo-{scheme}\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[taquba_memo.backends]\n{scheme} = {module}:open_url\n"
    )
    return site


def install_local_files_adapter(site: Path, scheme: str, backend_source: str) -> Path:
    """Install (as :func:`install_adapter` does) an adapter for ``scheme://`` over local files.

    ``backend_source`` imports what it uses and defines one LocalFileBackend subclass;
    ``scheme://...`` opens that class on the files of ``file://...``.
    """
    (name,) = re.findall(r"^class (\w+)\(", textwrap.dedent(backend_source), re.MULTILINE)
    opener = f"""
from taquba_memo._urls import open_backend as _open_backend

def open_url(url):
    return {name}(_open_backend(url.replace("{scheme}://", "file://", 1)).root)
"""
    return install_adapter(site, scheme, textwrap.dedent(backend_source) + opener)


def install_stuck_adapter(site: Path, stuck_run: str = "alpha") -> Path:
    """An installed adapter (``stuck://``) over local files that cannot delete one run's entries."""
    return install_local_files_adapter(
        site,
        "stuck",
        f"""
        from taquba_memo import BackendError, DeleteManyError, LocalFileBackend

        class StuckBackend(LocalFileBackend):
            async def delete_many(self, keys):
                stuck = {{k: BackendError("stuck") for k in keys if "/memos/{stuck_run}/" in k}}
                await super().delete_many([k for k in keys if k not in stuck])
                if stuck:
                    raise DeleteManyError(stuck)
        """,
    )
