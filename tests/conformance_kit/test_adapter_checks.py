"""The kit's adapter checks fail, naming every broken promise, where an adapter breaks one.

That they pass for adapters that keep their promises is shown by the
adapters' own tests, which use them (tests/adapters/azure, tests/adapters/gcs, tests/adapters/minio,
tests/adapters/obstore). Here they meet backends and tables that do not.
"""

from __future__ import annotations

import json

import pytest
from taquba_memo import BackendError, InMemoryBackend, TransientBackendError
from taquba_memo_conformance.adapter_checks import (
    check_every_exception_mapped,
    check_key_refused,
    check_missing_container,
    exception_classes,
)


def test_exception_classes_lists_the_classes_a_module_defines() -> None:
    assert exception_classes(json.decoder) == {"JSONDecodeError": json.JSONDecodeError}
    # json re-exports it; only with defined_there=False is it counted there.
    assert exception_classes(json) == {}
    assert exception_classes(json, defined_there=False) == {"JSONDecodeError": json.JSONDecodeError}


def test_a_class_missing_from_the_table_a_stale_name_and_a_wrong_mapping_are_all_named() -> None:
    classes = {"ValueError": ValueError, "KeyError": KeyError, "OSError": OSError}
    expected = {"ValueError": BackendError, "KeyError": None, "Gone": BackendError}

    def map_error(exc: BaseException) -> BaseException | None:
        return TransientBackendError("mapped") if isinstance(exc, ValueError) else None

    with pytest.raises(AssertionError) as raised:
        check_every_exception_mapped(classes, expected, map_error, caught=(LookupError,))
    message = str(raised.value)
    assert "does not name: ['OSError']" in message
    assert "no longer defines: ['Gone']" in message
    assert "ValueError maps to TransientBackendError, not BackendError" in message
    assert "ValueError is not caught" in message
    assert "KeyError" not in message  # mapped to None, as the table says, and caught


def test_a_correct_table_returns_each_mapped_error() -> None:
    def map_error(exc: BaseException) -> BaseException | None:
        return BackendError(f"mapped {type(exc).__name__}")

    mapped = check_every_exception_mapped(
        {"ValueError": ValueError}, {"ValueError": BackendError}, map_error, caught=(Exception,)
    )
    assert [str(error) for error in mapped.values()] == ["mapped ValueError"]


async def test_a_key_the_backend_accepts_fails_the_refusal_check() -> None:
    # InMemoryBackend holds any str key, "" included.
    with pytest.raises(AssertionError) as raised:
        await check_key_refused(InMemoryBackend(), "", operations=("put", "get"))
    assert str(raised.value) == "put('') was accepted; get('') was accepted"


async def test_a_backend_that_always_has_its_container_fails_the_missing_container_check() -> None:
    with pytest.raises(AssertionError) as raised:
        await check_missing_container(InMemoryBackend(), operations=("get", "list"))
    assert str(raised.value) == (
        "get succeeded on a container that does not exist; "
        "list succeeded on a container that does not exist"
    )
