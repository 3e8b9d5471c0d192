"""The four adapters agree in shape: how they refuse a bad URL, how they are built, where they log.

Every public constructor and factory of each adapter's backend class takes
``base_path`` as a keyword only, names its retry policy ``retry`` (never
``retries``), and has no private (``_``-prefixed) parameter. ``open_url``
refuses a URL that is not a ``str`` with the error
:func:`taquba_memo._urls.open_backend` raises for it. Each adapter logs, if at
all, to ``taquba_memo.<adapter>``, and its README names exactly those loggers
and says how each operation behaves on its store.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from taquba_memo import InvalidValueTypeError
from taquba_memo._urls import open_backend
from taquba_memo.backend import MemoBackendBase

ROOT = Path(__file__).resolve().parents[2]

ADAPTERS = ("obstore", "gcs", "azure", "minio")

OPERATIONS = (
    "get",
    "get_at_most",
    "put",
    "put_if_absent",
    "delete",
    "delete_many",
    "list",
    "list_with_metadata",
)

NOT_TEXT: tuple[object, ...] = (b"gs://bucket/base", None, 42, Path("bucket"))


def package_of(adapter: str) -> ModuleType:
    return importlib.import_module(f"taquba_memo_{adapter}")


def backend_class(adapter: str) -> type[MemoBackendBase]:
    package = package_of(adapter)
    (backend,) = (
        value
        for name in package.__all__
        if inspect.isclass(value := getattr(package, name)) and issubclass(value, MemoBackendBase)
    )
    return backend


def constructors(adapter: str) -> Iterator[tuple[str, Callable[..., Any]]]:
    """``__init__`` and every public classmethod of the adapter's backend class."""
    backend = backend_class(adapter)
    yield f"{backend.__name__}()", backend.__init__
    for name, attribute in vars(backend).items():
        if isinstance(attribute, classmethod) and not name.startswith("_"):
            yield f"{backend.__name__}.{name}()", getattr(backend, name)


def public_callables(adapter: str) -> Iterator[tuple[str, Callable[..., Any]]]:
    """The constructors, and every public function the package exports (``open_url``, ...)."""
    yield from constructors(adapter)
    package = package_of(adapter)
    for name in package.__all__:
        value = getattr(package, name)
        if inspect.isfunction(value):
            yield f"{name}()", value


def logger_names_in_code(adapter: str) -> set[str]:
    """The literal names every ``logging.getLogger(...)`` call in the package's modules uses."""
    package = package_of(adapter)
    names: set[str] = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
            ):
                (argument,) = node.args
                assert isinstance(argument, ast.Constant), f"{info.name}: a computed logger name"
                assert isinstance(argument.value, str), f"{info.name}: a logger name not text"
                names.add(argument.value)
    return names


def readme(adapter: str) -> str:
    return (ROOT / "packages" / f"taquba-memo-{adapter}" / "README.md").read_text()


@pytest.mark.parametrize("url", NOT_TEXT, ids=lambda url: type(url).__name__)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_open_url_refuses_a_url_that_is_not_text_as_open_backend_does(
    adapter: str, url: object
) -> None:
    with pytest.raises(InvalidValueTypeError) as from_core:
        open_backend(url)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueTypeError) as from_adapter:
        package_of(adapter).open_url(url)
    assert type(from_adapter.value) is type(from_core.value) is InvalidValueTypeError
    assert isinstance(from_adapter.value, TypeError)
    assert str(from_adapter.value) == str(from_core.value)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_base_path_is_keyword_only_in_every_constructor_and_factory(adapter: str) -> None:
    built = dict(constructors(adapter))
    assert built, f"{adapter}: no constructor found"
    for name, function in built.items():
        parameters = inspect.signature(function).parameters
        assert "base_path" in parameters, f"{name} takes no base_path"
        assert parameters["base_path"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameters["base_path"].default == "", name


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_retry_policy_parameter_is_called_retry(adapter: str) -> None:
    for name, function in public_callables(adapter):
        retry_names = {
            parameter for parameter in inspect.signature(function).parameters if "retr" in parameter
        }
        assert retry_names <= {"retry"}, f"{name} takes {sorted(retry_names)}"


def test_the_adapters_that_take_a_retry_policy_call_it_retry() -> None:
    takers = {
        name
        for adapter in ADAPTERS
        for name, function in public_callables(adapter)
        if "retry" in inspect.signature(function).parameters
    }
    assert takers >= {
        "GCSBackend()",
        "GCSBackend.connect()",
        "MinioBackend.connect()",
        "make_http_client()",
    }


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_no_public_constructor_or_function_takes_a_private_parameter(adapter: str) -> None:
    for name, function in public_callables(adapter):
        private = [p for p in inspect.signature(function).parameters if p.startswith("_")]
        assert not private, f"{name} takes {private}"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_adapter_logs_under_taquba_memo_dot_its_name(adapter: str) -> None:
    assert logger_names_in_code(adapter) <= {f"taquba_memo.{adapter}"}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_readme_names_the_loggers_the_code_uses(adapter: str) -> None:
    text = readme(adapter)
    named = set(re.findall(r"`(taquba_memo[\w.]*)`\s+logger", text))
    in_code = logger_names_in_code(adapter)
    assert named == in_code
    if not in_code:
        assert "no log lines of its own" in text


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_readme_says_how_each_operation_behaves(adapter: str) -> None:
    text = readme(adapter)
    heading = re.search(r"^## How each operation behaves on .+$", text, re.MULTILINE)
    assert heading, f"{adapter}: README has no 'How each operation behaves on ...' section"
    section = text[heading.end() :].split("\n## ", 1)[0]
    rows = {match.group(1) for match in re.finditer(r"^\| `(\w+)`", section, re.MULTILINE)}
    assert rows == set(OPERATIONS)
