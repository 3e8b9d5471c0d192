"""The public surface: a flat, curated __all__ and one error hierarchy."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import pkgutil
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import pytest
import taquba_memo
from taquba_memo import backend, errors

from ..public_names import public_names


def test_all_lists_exactly_the_public_names() -> None:
    for name in taquba_memo.__all__:  # each imported on first use: bind them all first
        getattr(taquba_memo, name)
    assert set(taquba_memo.__all__) == public_names(taquba_memo) | {"__version__"}
    assert len(set(taquba_memo.__all__)) == len(taquba_memo.__all__)


def test_dir_lists_every_public_name_before_its_first_use() -> None:
    assert set(taquba_memo.__all__) <= set(dir(taquba_memo))


def test_each_public_name_is_the_object_its_module_defines() -> None:
    for name, module in taquba_memo._DEFINED_IN.items():
        defined = getattr(importlib.import_module(f"taquba_memo.{module}"), name)
        assert getattr(taquba_memo, name) is defined
    assert set(taquba_memo._DEFINED_IN) == set(taquba_memo.__all__) - {
        "__version__",
        *errors.__all__,
    }


def test_type_checkers_see_each_public_name_from_the_module_that_defines_it() -> None:
    """The ``if TYPE_CHECKING:`` imports name the same modules as the run-time table."""
    tree = ast.parse(Path(taquba_memo.__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If))
    imported = {
        alias.name: (node.module or "").removeprefix("taquba_memo.")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == taquba_memo._DEFINED_IN


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        taquba_memo.Nothing  # noqa: B018
    with pytest.raises(ImportError):
        from taquba_memo import Nothing  # noqa: F401


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def every_memo_error_of_the_package() -> set[str]:
    """Every MemoError subclass any module of taquba_memo defines, each module imported."""
    for module in pkgutil.walk_packages(taquba_memo.__path__, "taquba_memo."):
        if not module.name.endswith(".__main__"):  # it runs the command line
            importlib.import_module(module.name)
    found: set[str] = set()
    pending: list[type] = [taquba_memo.MemoError]
    while pending:
        cls = pending.pop()
        if cls.__module__.split(".")[0] == "taquba_memo" and qualified(cls) not in found:
            found.add(qualified(cls))
            pending.extend(cls.__subclasses__())
    return found


def test_every_error_is_defined_in_errors_and_exported() -> None:
    exported = {getattr(errors, name) for name in errors.__all__}
    assert len(exported) == len(errors.__all__)
    for cls in exported:
        assert issubclass(cls, taquba_memo.MemoError)
        assert getattr(taquba_memo, cls.__name__) is cls
    defined = every_memo_error_of_the_package()
    assert defined == {qualified(cls) for cls in exported}


def test_every_error_name_ends_in_error() -> None:
    assert [name for name in errors.__all__ if not name.endswith("Error")] == []


def test_an_old_error_name_is_an_alias_of_an_exported_class() -> None:
    exceptions = {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    }
    aliases = {name: cls for name, cls in exceptions.items() if name != cls.__name__}
    assert aliases == errors.RENAMED
    assert all(old + "Error" == cls.__name__ for old, cls in aliases.items())
    for old, cls in aliases.items():
        assert getattr(taquba_memo, old) is cls  # the top-level old names too
    assert set(exceptions) - set(aliases) == set(errors.__all__)


def memo_error_definitions(roots: Iterable[Path]) -> set[str]:
    """``module.Class`` of every class under ``roots`` (package directories) that derives
    from MemoError, read from the source with ``ast``, so no adapter's SDK is imported.

    A base is matched by its name (one of errors.__all__, ``errors.BackendError``, or a
    class already found), to a fixed point, so a subclass of a subclass is found too.
    """
    classes: list[tuple[str, ast.ClassDef]] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            classes += [(module, node) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    errors_by_name = set(errors.__all__)
    found: set[str] = set()
    while True:
        before = len(found)
        for module, node in classes:
            bases = {
                base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                for base in node.bases
            }
            if bases & errors_by_name:
                errors_by_name.add(node.name)
                found.add(f"{module}.{node.name}")
        if len(found) == before:
            return found


def installed_package_roots() -> list[Path]:
    """The source directories of taquba_memo and of every installed ``taquba_memo_*`` package."""
    names = [
        module.name
        for module in pkgutil.iter_modules()
        if module.name == "taquba_memo" or module.name.startswith("taquba_memo_")
    ]
    roots = []
    for name in sorted(set(names)):
        spec = importlib.util.find_spec(name)  # finds the package without importing it
        assert spec is not None, name
        assert spec.submodule_search_locations is not None, name
        roots += [Path(location) for location in spec.submodule_search_locations]
    return roots


MEMO_ERRORS = sorted(memo_error_definitions(installed_package_roots()))


@pytest.mark.parametrize("error", MEMO_ERRORS)
def test_every_memo_error_of_every_package_is_defined_in_errors_and_listed_there(
    error: str,
) -> None:
    """One module holds the hierarchy: an error class written in another module (the CLI's,
    an adapter's) would be missing from errors.__all__ and from ``taquba_memo``."""
    module, _, name = error.rpartition(".")
    assert module == "taquba_memo.errors"
    assert name in errors.__all__


def test_the_error_reader_finds_a_subclass_of_a_subclass_outside_errors(tmp_path: Path) -> None:
    package = tmp_path / "some_adapter"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "failures.py").write_text(
        "from taquba_memo import errors\n"
        "class Refused(errors.BackendError): ...\n"
        "class RefusedTwice(Refused): ...\n"
        "class Unrelated(ValueError): ...\n"
    )
    assert memo_error_definitions([package]) == {
        "some_adapter.failures.Refused",
        "some_adapter.failures.RefusedTwice",
    }


def test_the_error_reader_sees_the_whole_hierarchy_of_errors() -> None:
    found = {
        name.rpartition(".")[2] for name in MEMO_ERRORS if name.startswith("taquba_memo.errors.")
    }
    assert found == set(errors.__all__) - {"MemoError"}


def test_bad_input_errors_are_value_or_type_errors_and_never_backend_errors() -> None:
    for cls in (
        taquba_memo.InvalidRunId,
        taquba_memo.InvalidStepNumber,
        taquba_memo.InvalidKeyError,
    ):
        assert issubclass(cls, ValueError)
        assert not issubclass(cls, taquba_memo.BackendError)
    assert issubclass(taquba_memo.InvalidValueType, TypeError)


def test_transient_errors_say_so() -> None:
    assert taquba_memo.ThrottledError("slow down").transient
    assert taquba_memo.TransientBackendError("503").transient
    assert not taquba_memo.AccessDeniedError("403").transient
    assert not taquba_memo.ContainerNotFoundError("no bucket").transient


def test_delete_many_error_names_every_failed_key() -> None:
    failure = taquba_memo.DeleteManyError(
        {"a": taquba_memo.TransientBackendError("x"), "b": taquba_memo.BackendError("y")}
    )
    assert set(failure.failures) == {"a", "b"}
    assert not failure.transient
    assert "2 key(s)" in str(failure)


def test_the_embedded_backends_implement_the_protocol() -> None:
    assert isinstance(taquba_memo.InMemoryBackend(), taquba_memo.MemoBackend)
    assert isinstance(taquba_memo.LocalFileBackend("/nonexistent"), taquba_memo.MemoBackend)


class PlainBackend:
    """Only what the protocol asks for: no base class, no context manager."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    @property
    def capabilities(self) -> backend.Capabilities:
        return backend.Capabilities(
            ordered_listing=True, conditional_put=False, max_delete_batch=10
        )

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self.data[key] = value
        return True

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.data.pop(key, None)

    def list(self, prefix: str) -> AsyncIterator[str]:
        # A plain def returning an async iterator is as good as an async generator.
        async def matching() -> AsyncIterator[str]:
            for key in sorted(k for k in self.data if k.startswith(prefix)):
                yield key

        return matching()

    async def aclose(self) -> None:
        return None


async def test_a_plain_class_with_the_six_operations_is_a_backend() -> None:
    backend = PlainBackend()
    assert isinstance(backend, taquba_memo.MemoBackend)
    async with taquba_memo.MemoStore(backend, "memo") as store:
        await store.new_memo("run-1", 0).put("k", b"v")
        await store.write_terminal_marker("run-1", 1)
        assert (await store.sweep(2)).entries_deleted == 1
    assert backend.data == {}


def test_an_object_missing_an_operation_is_refused_by_the_store() -> None:
    class NoList:
        capabilities = PlainBackend().capabilities
        get = put = delete = delete_many = aclose = PlainBackend.aclose

    assert not isinstance(NoList(), taquba_memo.MemoBackend)
    with pytest.raises(taquba_memo.InvalidValueType, match="must implement MemoBackend"):
        taquba_memo.MemoStore(NoList(), "memo")  # type: ignore[arg-type]


def test_the_optional_base_class_adds_only_the_context_manager() -> None:
    assert not isinstance(backend.MemoBackendBase(), taquba_memo.MemoBackend)
    assert {"__aenter__", "__aexit__", "aclose"} <= set(dir(backend.MemoBackendBase))
