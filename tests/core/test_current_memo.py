"""The current memo: use_memo binds a step's memo for the hooks it calls, current_memo reads it.

One context variable holds the binding of either API. It reaches the tasks
and ``to_thread`` calls started inside the block, is restored when the block
ends however it ends, and each API reads it as its own kind: the async
``current_memo`` turns a bound sync memo into its ``aio`` view, the sync one
refuses an async memo rather than skipping the memo.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest
import taquba_memo
from taquba_memo import InvalidValueTypeError, MemoBackend, MemoStore, current_memo, use_memo
from taquba_memo import sync as memo_sync


@pytest.fixture
def store(backend: MemoBackend) -> MemoStore:
    return MemoStore(backend, "memo")


@pytest.fixture
def sync_store(backend: MemoBackend) -> Iterator[memo_sync.MemoStore]:
    with memo_sync.MemoStore(backend, "memo") as opened:
        yield opened


def test_outside_any_block_there_is_no_current_memo() -> None:
    assert current_memo() is None
    assert memo_sync.current_memo() is None


async def test_the_bound_memo_is_current_inside_the_block_only(store: MemoStore) -> None:
    memo = store.new_memo("run", 1)
    with use_memo(memo) as entered:
        assert entered is memo
        assert current_memo() is memo
    assert current_memo() is None


async def test_a_hook_without_a_run_id_memoizes_through_the_current_memo(
    store: MemoStore,
) -> None:
    calls = 0

    async def model_hook(prompt: str) -> bytes:
        memo = current_memo()
        assert memo is not None

        async def call_model() -> bytes:
            nonlocal calls
            calls += 1
            return prompt.upper().encode()

        return await memo.get_or_compute(prompt, call_model)

    for _attempt in range(2):
        with use_memo(store.new_memo("run", 1)):
            assert await model_hook("hello") == b"HELLO"
    assert calls == 1


async def test_nesting_restores_the_outer_memo(store: MemoStore) -> None:
    outer, inner = store.new_memo("run", 1), store.new_memo("run", 2)
    with use_memo(outer):
        with use_memo(inner):
            assert current_memo() is inner
        assert current_memo() is outer
    assert current_memo() is None


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, ValueError])
def test_the_previous_memo_is_restored_whatever_ends_the_block(
    sync_store: memo_sync.MemoStore, interrupt: type[BaseException]
) -> None:
    outer, inner = sync_store.new_memo("run", 1), sync_store.new_memo("run", 2)
    with memo_sync.use_memo(outer):
        with pytest.raises(interrupt), memo_sync.use_memo(inner):
            raise interrupt()
        assert memo_sync.current_memo() is outer
    assert memo_sync.current_memo() is None


async def test_a_cancelled_task_leaves_its_binding_behind(store: MemoStore) -> None:
    started = asyncio.Event()

    async def step() -> None:
        with use_memo(store.new_memo("run", 1)):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(step())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert current_memo() is None


async def test_tasks_and_to_thread_calls_started_inside_the_block_see_the_memo(
    store: MemoStore,
) -> None:
    memo = store.new_memo("run", 1)
    with use_memo(memo):
        seen_by_task = await asyncio.ensure_future(_current_later())
        seen_in_thread = await asyncio.to_thread(current_memo)
    assert seen_by_task is memo
    assert seen_in_thread is memo


async def _current_later() -> taquba_memo.Memo | None:
    await asyncio.sleep(0)
    return current_memo()


async def test_concurrent_tasks_each_see_their_own_memo(store: MemoStore) -> None:
    async def step(number: int) -> int:
        with use_memo(store.new_memo("run", number)):
            await asyncio.sleep(0)  # the other steps run in between
            memo = current_memo()
            assert memo is not None
            return memo.step_number

    assert await asyncio.gather(*(step(n) for n in range(5))) == [0, 1, 2, 3, 4]


def test_a_plain_thread_starts_without_a_current_memo(sync_store: memo_sync.MemoStore) -> None:
    seen: list[object] = []
    with memo_sync.use_memo(sync_store.new_memo("run", 1)):
        thread = threading.Thread(target=lambda: seen.append(memo_sync.current_memo()))
        thread.start()
        thread.join()
        copied = contextvars.copy_context()
    assert seen == [None]
    assert copied.run(memo_sync.current_memo) is not None  # what executors that copy see


def test_a_sync_hook_finds_the_bound_sync_memo(sync_store: memo_sync.MemoStore) -> None:
    memo = sync_store.new_memo("run", 1)
    with memo_sync.use_memo(memo):
        assert memo_sync.current_memo() is memo
        found = memo_sync.current_memo()
        assert found is not None
        assert found.get_or_compute("k", lambda: b"v") == b"v"
    assert memo.get("k") == b"v"


async def test_an_async_hook_under_a_bound_sync_memo_gets_its_aio_view(
    sync_store: memo_sync.MemoStore,
) -> None:
    memo = sync_store.new_memo("run", 1)
    with memo_sync.use_memo(memo):
        found = current_memo()
        assert found is memo.aio
        assert isinstance(found, taquba_memo.Memo)
        assert await found.get_or_compute("k", lambda: b"from the async half") == (
            b"from the async half"
        )
    assert memo.get("k") == b"from the async half"


async def test_a_sync_hook_under_a_bound_async_memo_is_refused_not_skipped(
    store: MemoStore,
) -> None:
    with (
        use_memo(store.new_memo("run", 1)),
        pytest.raises(InvalidValueTypeError, match=r"sync\.use_memo"),
    ):
        memo_sync.current_memo()


async def test_the_two_apis_nest_and_restore_each_other(
    store: MemoStore, sync_store: memo_sync.MemoStore
) -> None:
    sync_memo, async_memo = sync_store.new_memo("run", 1), store.new_memo("run", 2)
    with memo_sync.use_memo(sync_memo):
        with use_memo(async_memo):
            assert current_memo() is async_memo
        assert memo_sync.current_memo() is sync_memo
        assert current_memo() is sync_memo.aio


def test_each_use_memo_refuses_anything_but_its_own_kind_before_binding(
    store: MemoStore, sync_store: memo_sync.MemoStore
) -> None:
    async_memo, sync_memo = store.new_memo("run", 1), sync_store.new_memo("run", 1)
    with pytest.raises(InvalidValueTypeError, match=r"sync\.use_memo"):
        use_memo(sync_memo)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueTypeError, match=r"taquba_memo\.use_memo"):
        memo_sync.use_memo(async_memo)  # type: ignore[arg-type]
    for not_a_memo in (None, "run", store):
        with pytest.raises(InvalidValueTypeError):
            use_memo(not_a_memo)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            memo_sync.use_memo(not_a_memo)  # type: ignore[arg-type]
    assert current_memo() is None
