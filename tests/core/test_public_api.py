"""The public surface: a flat, curated __all__ and one error hierarchy."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import AsyncIterator, Sequence

import pytest
import taquba_memo
from taquba_memo import errors, sweep_lease

from ..public_names import public_names


def test_all_lists_exactly_the_public_names() -> None:
    assert set(taquba_memo.__all__) == public_names(taquba_memo) | {"__version__"}
    assert len(set(taquba_memo.__all__)) == len(taquba_memo.__all__)


# Raised and caught inside the command line (an argparse refusal, exit 2): never an API's.
INTERNAL_ERRORS = {"taquba_memo.cli.UsageError"}


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
    defined = every_memo_error_of_the_package() - INTERNAL_ERRORS
    assert defined == {qualified(cls) for cls in exported}


def test_an_old_error_name_is_an_alias_of_an_exported_class() -> None:
    exceptions = {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    }
    aliases = {name: cls for name, cls in exceptions.items() if name != cls.__name__}
    assert aliases == {"SweepLeaseHeld": errors.SweepLeaseHeldError}
    assert set(exceptions) - set(aliases) == set(errors.__all__)
    # Where it was defined before, it still imports from.
    assert sweep_lease.SweepLeaseHeld is errors.SweepLeaseHeldError


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
    def capabilities(self) -> taquba_memo.Capabilities:
        return taquba_memo.Capabilities(
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
    assert not isinstance(taquba_memo.MemoBackendBase(), taquba_memo.MemoBackend)
    assert {"__aenter__", "__aexit__", "aclose"} <= set(dir(taquba_memo.MemoBackendBase))
