"""The kit as a third party gets it: built wheels, a clean virtual environment, plain pip.

No uv workspace and no checkout on the path: the six distributions are built
into wheels, the core's and the kit's are installed with ``pip`` into a new
virtual environment, and the worked SQLite backend of ``docs/examples`` is
proven there in both of the kit's modes, with every warning an error.

The environment is made by ``uv venv --seed`` (uv drives the project, so it is
always there), which puts pip in it without the standard library's
``ensurepip``: Debian ships that separately (python3-venv), and a fresh
machine with only python3, pip and git lacks it. Every command that fails
fails the test with the command line and the tail of its output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples"
DISTRIBUTIONS = (
    "taquba_memo",
    "taquba_memo_obstore",
    "taquba_memo_gcs",
    "taquba_memo_azure",
    "taquba_memo_minio",
    "taquba_memo_agents",
    "taquba_memo_conformance",
)

pytestmark = pytest.mark.timeout(600)

TAIL_LINES = 40


def run(command: list[str], *, what: str, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run ``command``: its output, or a failure naming ``what``, the command and its tail."""
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"{what} could not run: {' '.join(command)}\n{error}", pytrace=False)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-TAIL_LINES:])
        pytest.fail(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"last {TAIL_LINES} lines of its output:\n{tail}",
            pytrace=False,
        )
    return output


def uv_executable() -> str:
    """The uv that runs these tests (``uv run`` sets ``$UV``), else the one on PATH."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv builds the wheels and the venv; `sh scripts/dev.sh` installs it")
    return uv


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    command = [uv_executable(), "build", "--all-packages", "--wheel", "--out-dir", str(out)]
    run(command, what="building the wheels", cwd=ROOT)
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    if sorted(built) != sorted(DISTRIBUTIONS):
        pytest.fail(f"uv build made {sorted(built)}, not {sorted(DISTRIBUTIONS)}", pytrace=False)
    return built


@pytest.fixture(scope="module")
def clean_env(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    # --seed puts pip in without ensurepip (Debian's separate python3-venv package).
    seed = [uv_executable(), "venv", "--seed", "--quiet", "--python", sys.executable, str(home)]
    run(seed, what="creating the virtual environment")
    python = home / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    install += [str(wheels["taquba_memo"]), str(wheels["taquba_memo_conformance"])]
    run(install, what="installing the wheels with pip")
    return python


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A backend author's folder: the example's two files and nothing else."""
    for name in ("sqlite_backend.py", "test_sqlite_backend.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return tmp_path


def run_pytest(python: Path, project: Path, *args: str) -> str:
    command = [str(python), "-m", "pytest", "-W", "error", "-p", "no:cacheprovider", *args]
    return run(command, what="the kit's pytest run in the clean environment", cwd=project)


def test_the_wheels_install_into_a_clean_environment(clean_env: Path) -> None:
    script = "import taquba_memo, taquba_memo_conformance, sys; print(sys.prefix)"
    shown = run([str(clean_env), "-c", script], what="importing the installed wheels")
    assert Path(shown.strip()) == clean_env.parent.parent
    script = "import taquba_memo; print(taquba_memo.__file__)"
    assert str(ROOT) not in run([str(clean_env), "-c", script], what="locating taquba_memo")


def test_the_worked_backend_passes_through_memo_backend(clean_env: Path, project: Path) -> None:
    # No pytest configuration at all: the plugin needs none, and warns of nothing.
    output = run_pytest(clean_env, project, "--memo-backend=sqlite_backend:make_backend")
    assert " passed" in output
    assert "warning" not in output.lower()


def test_the_worked_backend_passes_as_a_subclass_with_its_hook(
    clean_env: Path, project: Path
) -> None:
    # The author's own project configures pytest-asyncio, as the kit's README says.
    shutil.copy(EXAMPLE / "pytest.ini", project / "pytest.ini")
    output = run_pytest(clean_env, project, "test_sqlite_backend.py", "-rs")
    assert " passed" in output
    assert "warning" not in output.lower()
    assert "undeletable" not in output, "the hook ran: no partial-failure test was skipped"


def test_the_interpreter_is_not_the_workspace_one(clean_env: Path) -> None:
    assert Path(sys.prefix) != clean_env.parent.parent


def test_a_failing_step_names_its_command_and_the_tail_of_its_output() -> None:
    noisy = "import sys; print('\\n'.join(f'line {i}' for i in range(500))); sys.exit('no pip')"
    with pytest.raises(pytest.fail.Exception) as failed:
        run([sys.executable, "-c", noisy], what="installing the wheels with pip")
    message = str(failed.value)
    assert message.startswith("installing the wheels with pip failed (exit 1): ")
    assert sys.executable in message
    assert "line 499" in message
    assert "no pip" in message
    assert "line 400" not in message, "only the tail"
