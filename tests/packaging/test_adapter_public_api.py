"""Every adapter has one shape: private modules, a curated __all__, one error-mapper signature."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from ..public_names import public_names

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[2]

# adapter package -> its error-mapping function
ADAPTERS = {
    "taquba_memo_obstore": "map_obstore_error",
    "taquba_memo_gcs": "map_gcs_error",
    "taquba_memo_azure": "map_azure_error",
    "taquba_memo_minio": "map_minio_error",
}


@pytest.mark.parametrize("package_name", sorted(ADAPTERS))
def test_all_lists_exactly_the_public_names(package_name: str) -> None:
    package = importlib.import_module(package_name)
    assert set(package.__all__) == public_names(package) | {"__version__"}
    assert len(set(package.__all__)) == len(package.__all__)


@pytest.mark.parametrize("package_name", sorted(ADAPTERS))
def test_the_version_is_the_distributions(package_name: str) -> None:
    package = importlib.import_module(package_name)
    folder = ROOT / "packages" / package_name.replace("_", "-")
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert package.__version__ == project["version"]


@pytest.mark.parametrize("package_name", sorted(ADAPTERS))
def test_every_module_is_private_and_the_public_names_come_from_the_package(
    package_name: str,
) -> None:
    package = importlib.import_module(package_name)
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert {"_backend", "_errors", "_url"} <= modules
    assert all(name.startswith("_") for name in modules)


@pytest.mark.parametrize(("package_name", "mapper_name"), sorted(ADAPTERS.items()))
def test_the_error_mapper_is_private_and_has_one_signature(
    package_name: str, mapper_name: str
) -> None:
    package = importlib.import_module(package_name)
    assert not hasattr(package, mapper_name)
    assert not any(name.startswith("map_") for name in package.__all__)
    mapper = getattr(importlib.import_module(f"{package_name}._errors"), mapper_name)
    parameters = inspect.signature(mapper).parameters
    assert [(name, p.kind) for name, p in parameters.items()] == [
        ("exc", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("operation", inspect.Parameter.KEYWORD_ONLY),
        ("target", inspect.Parameter.KEYWORD_ONLY),
    ]
