"""A flag is True or False: ``if_absent="no"`` is an InvalidValueTypeError, never truthy.

Every public flag is checked before any I/O, so a string from a config file
or an environment variable cannot silently turn on first-writer-wins, a dry
run, or anything else. ``get_or_compute`` alone documents ``if_absent=None``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from taquba_memo import InMemoryBackend, InvalidValueTypeError, LocalFileBackend, Memo, MemoStore
from taquba_memo import sync as memo_sync
from taquba_memo.adapter_kit import check_flag
from taquba_memo_conformance import RecordingBackend

NOT_BOOLS: list[object] = ["no", "false", 0, 1, None, [], 0.0]


def never_called() -> bytes:
    raise AssertionError("fn ran although an argument was refused")


async def first_entry(store: MemoStore, **flags: Any) -> None:
    async for _entry in store.iter_entries(**flags):
        return


def memo(store: MemoStore) -> Memo:
    return store.new_memo("run", 0)


CALLS: dict[str, Callable[[MemoStore, Any], Awaitable[Any]]] = {
    "put if_absent": lambda store, flag: memo(store).put("k", b"v", if_absent=flag),
    "content_put if_absent": lambda store, flag: memo(store).content_put(
        {"input": 1}, b"v", if_absent=flag
    ),
    "get_or_compute store_if_cancelled": lambda store, flag: memo(store).get_or_compute(
        "k", never_called, store_if_cancelled=flag
    ),
    "sweep dry_run": lambda store, flag: store.sweep(10, dry_run=flag),
    "sweep record_run_ids": lambda store, flag: store.sweep(10, record_run_ids=flag),
    "iter_entries with_metadata": lambda store, flag: first_entry(store, with_metadata=flag),
}


@pytest.mark.parametrize("flag", NOT_BOOLS, ids=repr)
@pytest.mark.parametrize("call", CALLS)
async def test_a_flag_that_is_not_a_bool_is_refused_before_any_io(call: str, flag: object) -> None:
    recorder = RecordingBackend(InMemoryBackend())
    store = MemoStore(recorder, "memo")
    with pytest.raises(InvalidValueTypeError):
        await CALLS[call](store, flag)
    assert recorder.calls == []


@pytest.mark.parametrize("flag", [flag for flag in NOT_BOOLS if flag is not None], ids=repr)
async def test_get_or_compute_takes_a_bool_or_none_for_if_absent(flag: Any) -> None:
    recorder = RecordingBackend(InMemoryBackend())
    memo = MemoStore(recorder, "memo").new_memo("run", 0)
    with pytest.raises(InvalidValueTypeError):
        await memo.get_or_compute("k", never_called, if_absent=flag)
    assert recorder.calls == []
    assert await memo.get_or_compute("k", lambda: b"v", if_absent=None) == b"v"


async def test_put_if_absent_no_does_not_act_as_true(memo: Memo) -> None:
    await memo.put("k", b"first")
    with pytest.raises(InvalidValueTypeError):
        await memo.put("k", b"second", if_absent="no")  # type: ignore[arg-type]
    assert await memo.put("k", b"second", if_absent=False)
    assert await memo.get("k") == b"second"


def test_the_sync_api_refuses_the_same_flags() -> None:
    recorder = RecordingBackend(InMemoryBackend())
    with memo_sync.MemoStore(recorder, "memo") as store:
        memo = store.new_memo("run", 0)
        with pytest.raises(InvalidValueTypeError):
            memo.put("k", b"v", if_absent="no")  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            store.sweep(10, dry_run="yes")  # type: ignore[arg-type]
    assert recorder.calls == []


@pytest.mark.parametrize("flag", NOT_BOOLS, ids=repr)
def test_adapters_check_if_absent_with_the_kit(flag: object) -> None:
    assert check_flag(True, "if_absent") is True
    with pytest.raises(InvalidValueTypeError, match="if_absent must be True or False"):
        check_flag(flag, "if_absent")


@pytest.mark.parametrize("flag", NOT_BOOLS, ids=repr)
async def test_the_embedded_backends_refuse_a_non_bool_if_absent_and_write_nothing(
    flag: object, tmp_path: Path
) -> None:
    for backend in (InMemoryBackend(), LocalFileBackend(tmp_path)):
        with pytest.raises(InvalidValueTypeError, match="if_absent must be True or False"):
            await backend.put("k", b"v", if_absent=flag)  # type: ignore[arg-type]
        assert await backend.get("k") is None


@pytest.mark.parametrize("limit", ["10", 10.0, True])
def test_max_value_bytes_of_the_wrong_type_is_an_invalid_value_type(limit: object) -> None:
    with pytest.raises(InvalidValueTypeError, match="max_value_bytes must be an int or None"):
        MemoStore(InMemoryBackend(), max_value_bytes=limit)  # type: ignore[arg-type]
