"""The public surface: a flat, curated __all__ and one error hierarchy."""

from __future__ import annotations

import inspect
import types

import taquba_memo
from taquba_memo import errors


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(taquba_memo).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(taquba_memo.__all__) == public | {"__version__"}
    assert len(set(taquba_memo.__all__)) == len(taquba_memo.__all__)


def test_every_error_is_a_memo_error_and_exported() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert len(classes) == len(errors.__all__)
    for cls in classes:
        assert issubclass(cls, taquba_memo.MemoError)
        assert getattr(taquba_memo, cls.__name__) is cls


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
