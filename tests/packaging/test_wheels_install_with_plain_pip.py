"""The kit as a third party gets it: built wheels, a clean virtual environment, plain pip.

No uv workspace and no checkout on the path: the six distributions are built
into wheels, the core's and the kit's are installed with ``pip`` into a new
virtual environment, and the worked SQLite backend of ``docs/examples`` is
proven there in both of the kit's modes, with every warning an error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
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
    "taquba_memo_conformance",
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    uv = shutil.which("uv")
    assert uv is not None, "uv builds the wheels; `sh scripts/dev.sh` installs it"
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv, "build", "--all-packages", "--wheel", "--out-dir", str(out), "--quiet"],
        cwd=ROOT,
        check=True,
    )
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert sorted(built) == sorted(DISTRIBUTIONS)
    return built


@pytest.fixture(scope="module")
def clean_env(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True, clear=True)
    python = home / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheels["taquba_memo"]),
            str(wheels["taquba_memo_conformance"]),
        ],
        check=True,
    )
    return python


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A backend author's folder: the example's two files and nothing else."""
    for name in ("sqlite_backend.py", "test_sqlite_backend.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return tmp_path


def run_pytest(python: Path, project: Path, *args: str) -> str:
    result = subprocess.run(
        [str(python), "-m", "pytest", "-W", "error", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_the_wheels_install_into_a_clean_environment(clean_env: Path) -> None:
    shown = subprocess.run(
        [
            str(clean_env),
            "-c",
            "import taquba_memo, taquba_memo_conformance, sys; print(sys.prefix)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(shown.stdout.strip()) == clean_env.parent.parent
    assert (
        str(ROOT)
        not in subprocess.run(
            [str(clean_env), "-c", "import taquba_memo; print(taquba_memo.__file__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


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
