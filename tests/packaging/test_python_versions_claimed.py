"""Each package claims the Python versions it is tested on, and nothing else.

``requires-python`` gives the oldest; the ``Programming Language :: Python :: 3.X``
classifiers list every version from there to the newest the core is tested on,
and ``scripts/other_pythons.py`` (part of ``just test``) runs each package's
tests on each of them that the machine has.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = sorted(
    str(path.parent.relative_to(ROOT))
    for path in [*ROOT.glob("packages/*/pyproject.toml"), ROOT / "conformance" / "pyproject.toml"]
)
RUNNER = ROOT / "scripts" / "other_pythons.py"
VERSION_CLASSIFIER = re.compile(r"Programming Language :: Python :: (3\.\d+)")


def project(folder: str) -> dict[str, Any]:
    document: dict[str, Any] = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    table: dict[str, Any] = document["project"]
    return table


def claimed(folder: str) -> list[int]:
    """Minor versions of the 3.X classifiers, in order."""
    found = [VERSION_CLASSIFIER.fullmatch(c) for c in project(folder)["classifiers"]]
    return sorted(int(match.group(1).split(".")[1]) for match in found if match)


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_classifiers_run_from_requires_python_to_the_newest_tested(folder: str) -> None:
    floor = re.fullmatch(r">=3\.(\d+)", project(folder)["requires-python"])
    assert floor is not None, "requires-python is a plain lower bound"
    newest = claimed("packages/taquba-memo")[-1]
    assert claimed(folder) == list(range(int(floor.group(1)), newest + 1))


def test_every_package_is_run_on_the_other_pythons(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("other_pythons", RUNNER)
    assert spec is not None
    assert spec.loader is not None
    runner = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, runner)  # its dataclass looks itself up there
    spec.loader.exec_module(runner)
    assert sorted(folder for folder, _, _ in runner.PACKAGES) == FOLDERS
