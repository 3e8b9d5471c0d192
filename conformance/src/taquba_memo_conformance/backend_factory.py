"""Resolving ``--memo-backend=package.module:factory`` to a callable, and calling it.

A factory is any callable that returns a MemoBackend, or an awaitable of
one (``def`` or ``async def``). Its parameters are pytest fixtures, looked
up by name, so ``def make(tmp_path): return LocalFileBackend(tmp_path)`` or
``def make(s3_server): ...`` just work. Parameters with a default are left
to their default.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from taquba_memo import MemoBackend

__all__ = ["BackendFactory", "build_backend", "factory_fixture_names", "resolve_factory"]

BackendFactory = Callable[..., Any]


def resolve_factory(spec: str, search_dir: Path) -> BackendFactory:
    """Import ``module:attribute`` (the attribute may be dotted) and return it.

    When the module cannot be imported as installed, ``search_dir`` (the
    directory pytest was started in) is tried as well, so a factory in the
    project's own tree works without installing it. Raises
    :class:`pytest.UsageError` with the reason otherwise.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise pytest.UsageError(
            f"--memo-backend={spec!r}: expected MODULE:FACTORY, "
            "for example --memo-backend=my_package.testing:make_backend"
        )
    try:
        module = _import(module_name, search_dir)
    except ImportError as exc:
        raise pytest.UsageError(
            f"--memo-backend={spec!r}: cannot import {module_name}: {exc}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise pytest.UsageError(
                f"--memo-backend={spec!r}: {module_name} has no attribute {attribute}"
            ) from None
    if not callable(target):
        raise pytest.UsageError(f"--memo-backend={spec!r}: {attribute} is not callable")
    return target  # type: ignore[no-any-return]


def _import(module_name: str, search_dir: Path) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top_level = module_name.split(".", 1)[0]
        if exc.name != top_level or str(search_dir) in sys.path:
            raise
    sys.path.insert(0, str(search_dir))
    return importlib.import_module(module_name)


def factory_fixture_names(factory: BackendFactory) -> list[str]:
    """The factory's parameters without defaults: the fixtures it asks for."""
    parameters = inspect.signature(factory).parameters.values()
    return [
        parameter.name
        for parameter in parameters
        if parameter.default is inspect.Parameter.empty
        and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]


async def build_backend(factory: BackendFactory, arguments: dict[str, Any]) -> MemoBackend:
    """Call the factory (awaiting it if it is async) and check what it made."""
    made = factory(**arguments)
    if inspect.isawaitable(made):
        made = await made
    if not isinstance(made, MemoBackend):
        raise TypeError(
            f"the --memo-backend factory {getattr(factory, '__qualname__', factory)!r} "
            f"returned {type(made).__name__}, which does not implement MemoBackend"
        )
    return made
