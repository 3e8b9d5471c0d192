"""Runs the core's tests, the kit's and the adapters' server-free tests on every other Python.

The workspace (``.venv``, from ``uv.lock``) runs one interpreter; uv.lock needs 3.11
because the obstore adapter does. For each other version the core claims (its
``Programming Language :: Python :: 3.X`` classifiers), this finds an interpreter
on the machine, builds a throwaway venv, installs the packages that claim that
version with plain installs from the checkout folders (no lock, no workspace),
and runs the tests below there. Test servers are not installed: the tests here
need none, and ``just test`` runs every server test on the workspace's Python.

An interpreter that is not on the machine is skipped with the reason, never failed.
Exit status 1 when any run failed.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
CORE = "packages/taquba-memo"

# Folder, what to install from it, and the server-free tests to run when it is installed.
PACKAGES: list[tuple[str, str, list[str]]] = [
    (CORE, f"./{CORE}[msgpack]", ["tests/core"]),
    ("conformance", "./conformance", ["tests/conformance_kit/test_reference_backends.py"]),
    (
        "packages/taquba-memo-agents",
        "./packages/taquba-memo-agents[openai,httpx,langchain,langgraph,pydantic-ai,openai-agents]",
        ["tests/agents"],
    ),
    (
        "packages/taquba-memo-obstore",
        "./packages/taquba-memo-obstore",
        [
            "tests/adapters/obstore/test_obstore_conformance.py::TestMemoryStoreConformance",
        ],
    ),
    (
        "packages/taquba-memo-gcs",
        "./packages/taquba-memo-gcs",
        ["tests/adapters/gcs/test_gcs_errors.py"],
    ),
    (
        "packages/taquba-memo-azure",
        "./packages/taquba-memo-azure",
        ["tests/adapters/azure/test_azure_error_mapping.py"],
    ),
    (
        "packages/taquba-memo-minio",
        "./packages/taquba-memo-minio",
        [
            f"tests/adapters/minio/test_minio_errors.py::{name}"
            for name in [
                "test_s3_error_codes_map_by_meaning",
                "test_answers_without_an_s3_error_body_map_by_status",
                "test_every_urllib3_error_is_transient",
                "test_no_answer_or_a_broken_one_is_transient",
                "test_every_exception_class_of_the_sdk_is_caught_and_mapped",
                "test_per_key_delete_errors_map_by_code",
                "test_messages_name_operation_key_code_and_status",
            ]
        ],
    ),
]
# Test-only libraries the core's tests import and the kit does not bring: the
# suite's timeout and its two workers (pytest-xdist), the pydantic codec recipe,
# the independent RFC 8785 check and the APScheduler retention recipe, Dramatiq
# for the interrupt tests, the model the agents' langchain and LangGraph tests
# call (kept in step with the root dev group).
TEST_TOOLS = [
    "pytest-timeout>=2.3",
    "pytest-xdist>=3.6",
    "pydantic>=2",
    "rfc8785>=0.1.4",
    "apscheduler>=3.10,<4",
    "dramatiq>=1.17",
    "langchain-openai>=1.0,<2",
]
RUN_TIMEOUT_S = 900
SERVERS_REQUIRED_ENV = "TAQUBA_MEMO_REQUIRE_SERVERS"


def say(line: str) -> None:
    print(f"other_pythons: {line}", flush=True)


def claimed_versions(folder: str) -> list[str]:
    """The ``3.X`` versions a package's classifiers claim, oldest first."""
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: "
    versions = [
        c.removeprefix(prefix)
        for c in project.get("classifiers", [])
        if re.fullmatch(re.escape(prefix) + r"3\.\d+", c)
    ]
    return sorted(versions, key=lambda v: int(v.split(".")[1]))


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str  # full, e.g. 3.12.1


def version_of(path: str) -> str | None:
    try:
        result = subprocess.run(
            [path, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_interpreter(version: str) -> Interpreter | None:
    """``python3.X`` on PATH, else pyenv's ``versions/3.X.*``, else ``uv python find``."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python"), reverse=True)
    found = subprocess.run(
        ["uv", "python", "find", "--no-project", "--no-python-downloads", version],
        capture_output=True,
        text=True,
        check=False,
    )
    candidates.append(found.stdout.strip() if found.returncode == 0 else "")
    for path in filter(None, candidates):
        full = version_of(path)
        if full is not None and full.startswith(version + "."):
            return Interpreter(path, full)
    return None


def run_on(interpreter: Interpreter, version: str) -> bool:
    """Install what claims ``version`` into a throwaway venv and run its tests; True if passed."""
    chosen = [
        (folder, spec, tests)
        for folder, spec, tests in PACKAGES
        if version in claimed_versions(folder)
    ]
    names = ", ".join(Path(folder).name for folder, _, _ in chosen)
    left_out = [Path(f).name for f, _, _ in PACKAGES if version not in claimed_versions(f)]
    say(
        f"{version}: {interpreter.path} (Python {interpreter.version}): installing {names}"
        + (f"; not {', '.join(left_out)} (it does not claim {version})" if left_out else "")
    )
    started = time.monotonic()
    # No servers here, so the server tests' CI switch (fail instead of skip) is off.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", SERVERS_REQUIRED_ENV)}
    with tempfile.TemporaryDirectory(prefix=f"taquba-memo-py{version}-") as scratch:
        venv = Path(scratch) / "venv"
        python = str(venv / "bin" / "python")
        installs = [spec for _, spec, _ in chosen] + TEST_TOOLS
        tests = [test for _, _, some in chosen for test in some]
        steps = [
            ["uv", "venv", "--quiet", "--no-project", "--python", interpreter.path, str(venv)],
            ["uv", "pip", "install", "--quiet", "--python", python, *installs],
            [python, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", *tests],
        ]
        for argv in steps:
            try:
                run = subprocess.run(argv, cwd=ROOT, env=env, timeout=RUN_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                say(f"{version}: FAILED, {' '.join(argv[:3])} took over {RUN_TIMEOUT_S} s")
                return False
            if run.returncode != 0:
                say(f"{version}: FAILED, {' '.join(argv[:3])} ... exited {run.returncode}")
                return False
    say(f"{version}: passed in {time.monotonic() - started:.0f} s")
    return True


def main() -> int:
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    versions = claimed_versions(CORE)
    say(f"the core claims Python {', '.join(versions)}; {own} is the workspace's (the main suite)")
    ran: list[str] = []
    skipped: list[str] = []
    failed: list[str] = []
    for version in versions:
        if version == own:
            continue
        interpreter = find_interpreter(version)
        if interpreter is None:
            why = f"no interpreter: not python{version} on PATH, not in pyenv, not found by uv"
            say(f"{version}: skipped, {why}")
            skipped.append(version)
            continue
        (ran if run_on(interpreter, version) else failed).append(interpreter.version)
    summary = [f"ran {', '.join(ran) or 'none'}", f"failed {', '.join(failed) or 'none'}"]
    missing = f"{', '.join(skipped)} (no interpreter)" if skipped else "none"
    say("; ".join([*summary, f"skipped {missing}"]))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
