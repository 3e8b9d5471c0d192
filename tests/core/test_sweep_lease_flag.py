"""``MemoStore.sweep(lease=True)``: one library sweep of a store at a time, like the CLI's.

Workers that each run the sweep on a schedule pass ``lease=True``: the
sweep takes the store's sweep lease before it lists or deletes anything,
and a second sweep that finds it held raises ``SweepLeaseHeldError``
without deleting anything. The lease is given back however the sweep ends
(finished, failed, cancelled, interrupted). Without ``lease`` (the
default) the sweep never touches the lease's objects. The sync store
behaves the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from taquba_memo import (
    BackendError,
    InMemoryBackend,
    InvalidValueTypeError,
    MemoBackend,
    MemoStore,
    NotSupportedError,
    SweepLeaseHeldError,
    TerminalMarker,
)
from taquba_memo._layout import sweep_leases_prefix
from taquba_memo._sweep_lease import SweepLease
from taquba_memo.adapter_kit import ForwardingBackend
from taquba_memo.backend import Capabilities
from taquba_memo.sync import MemoStore as SyncMemoStore
from taquba_memo_conformance import RecordingBackend

from ._flight_support import wait_until

PREFIX = "agents"
LEASES = sweep_leases_prefix(PREFIX)
RUNS = ["run-a", "run-b", "run-c"]
LATER_RUNS = ["run-x", "run-y"]  # expired for a cutoff of 100, not of 10


async def ended_runs(backend: MemoBackend, *, later: bool = False) -> None:
    """Three runs of two entries each that ended at 1 (and, if ``later``, two that ended at 50)."""
    store = MemoStore(backend, PREFIX)
    for run, ended_at in [(run, 1) for run in RUNS] + [(run, 50) for run in LATER_RUNS if later]:
        for step in (0, 1):
            await store.new_memo(run, step).put("k", b"v")
        await store.write_terminal_marker(run, ended_at)


async def keys(backend: MemoBackend, prefix: str = "") -> list[str]:
    return sorted([key async for key in backend.list(prefix)])


async def markers(backend: MemoBackend) -> list[TerminalMarker]:
    return await MemoStore(backend, PREFIX).list_terminal_markers()


def touches_more_than_the_lease(calls: Sequence[tuple[str, object]]) -> list[tuple[str, object]]:
    """The recorded calls that list, write or delete anything outside the lease's objects."""
    return [
        (operation, argument)
        for operation, argument in calls
        if operation == "delete_many" or not str(argument).startswith(LEASES)
    ]


class TestAHeldLease:
    async def test_a_second_sweep_raises_and_deletes_nothing(self, backend: MemoBackend) -> None:
        await ended_runs(backend, later=True)
        first_cleared_one = asyncio.Event()
        second_has_tried = asyncio.Event()

        async def pause_after_the_first_run(_marker: TerminalMarker, _deleted: int) -> None:
            first_cleared_one.set()
            await second_has_tried.wait()

        first = asyncio.create_task(
            MemoStore(backend, PREFIX).sweep(10, lease=True, on_run_done=pause_after_the_first_run)
        )
        await first_cleared_one.wait()
        before = await keys(backend)
        recorded = RecordingBackend(backend)
        try:
            with pytest.raises(SweepLeaseHeldError, match="another sweep holds the lease"):
                await MemoStore(recorded, PREFIX).sweep(100, lease=True)
            after = await keys(backend)  # while the first sweep still waits
        finally:
            second_has_tried.set()

        assert touches_more_than_the_lease(recorded.calls) == []
        assert after == before
        assert len([key for key in after if "/memos/" in key]) == 2 * len(LATER_RUNS)
        report = await first
        assert sorted(report.runs_cleared) == RUNS
        assert await keys(backend, LEASES) == []  # the first sweep finished and released it

    def test_a_second_sync_sweep_raises_and_deletes_nothing(self, backend: MemoBackend) -> None:
        asyncio.run(ended_runs(backend, later=True))
        recorded = RecordingBackend(backend)
        refused: list[BaseException] = []

        with SyncMemoStore(backend, PREFIX) as first, SyncMemoStore(recorded, PREFIX) as second:

            def sweep_again(_marker: TerminalMarker, _deleted: int) -> None:
                if not refused:
                    with pytest.raises(SweepLeaseHeldError) as caught:
                        second.sweep(100, lease=True)
                    refused.append(caught.value)

            report = first.sweep(10, lease=True, on_run_done=sweep_again)

        assert len(refused) == 1
        assert touches_more_than_the_lease(recorded.calls) == []
        assert sorted(report.runs_cleared) == RUNS
        assert [marker.run_id for marker in asyncio.run(markers(backend))] == LATER_RUNS

    @pytest.mark.parametrize("dry_run", [False, True], ids=["sweep", "dry-run"])
    async def test_the_command_line_sweepers_lease_is_the_same_one(
        self, backend: MemoBackend, dry_run: bool
    ) -> None:
        await ended_runs(backend)
        store = MemoStore(backend, PREFIX)
        before = await keys(backend)
        async with SweepLease(store):  # as ``taquba-memo sweep`` holds it
            with pytest.raises(SweepLeaseHeldError):
                await store.sweep(10, lease=True, dry_run=dry_run)
            assert len(await keys(backend)) == len(before) + 1  # only the held lease added
        assert await keys(backend) == before


class TestTheLeaseIsReleased:
    async def test_after_a_sweep_that_succeeds(self, backend: MemoBackend) -> None:
        await ended_runs(backend)
        store = MemoStore(backend, PREFIX)
        held_while_sweeping: list[list[str]] = []

        async def look_at_the_lease(_marker: TerminalMarker, _deleted: int) -> None:
            held_while_sweeping.append(await keys(backend, LEASES))

        report = await store.sweep(10, lease=True, on_run_done=look_at_the_lease)

        assert sorted(report.runs_cleared) == RUNS
        assert all(len(held) == 1 for held in held_while_sweeping)
        assert await keys(backend, LEASES) == []
        await store.sweep(10, lease=True)  # the next sweep takes it at once

    async def test_after_an_error_inside_the_sweep(self, backend: MemoBackend) -> None:
        await ended_runs(backend)
        store = MemoStore(backend, PREFIX)

        def fail(_marker: TerminalMarker, _deleted: int) -> None:
            raise RuntimeError("the progress bar broke")

        with pytest.raises(RuntimeError, match="the progress bar broke"):
            await store.sweep(10, lease=True, on_run_done=fail)

        assert await keys(backend, LEASES) == []
        await store.sweep(10, lease=True)
        assert await keys(backend) == []

    async def test_after_the_sweep_is_cancelled(self, backend: MemoBackend) -> None:
        await ended_runs(backend)
        store = MemoStore(backend, PREFIX)
        cleared_one = asyncio.Event()

        async def hang(_marker: TerminalMarker, _deleted: int) -> None:
            cleared_one.set()
            await asyncio.Event().wait()

        sweep = asyncio.create_task(store.sweep(10, lease=True, on_run_done=hang))
        await cleared_one.wait()
        assert len(await keys(backend, LEASES)) == 1
        sweep.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sweep

        assert await keys(backend, LEASES) == []
        await store.sweep(10, lease=True)
        assert await keys(backend) == []

    @pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
    def test_after_a_sync_sweep_fails_or_is_interrupted(
        self, backend: MemoBackend, failure: type[BaseException]
    ) -> None:
        asyncio.run(ended_runs(backend))

        def stop(_marker: TerminalMarker, _deleted: int) -> None:
            raise failure("stopped in the callback")

        with SyncMemoStore(backend, PREFIX) as store:
            with pytest.raises(failure, match="stopped in the callback"):
                store.sweep(10, lease=True, on_run_done=stop)
            # An interrupt cancels the sweep on the store's loop; the release lands there.
            wait_until(lambda: asyncio.run(keys(backend, LEASES)) == [])
            store.sweep(10, lease=True)

        assert asyncio.run(keys(backend)) == []

    async def test_a_failed_release_is_logged_and_the_report_returned(
        self, backend: MemoBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        await ended_runs(backend)

        class RefusesToDeleteTheLease(ForwardingBackend):
            async def delete(self, key: str) -> None:
                if key.startswith(LEASES):
                    raise BackendError("the store refused the delete")
                await super().delete(key)

        with caplog.at_level(logging.WARNING, logger="taquba_memo"):
            report = await MemoStore(RefusesToDeleteTheLease(backend), PREFIX).sweep(10, lease=True)

        assert sorted(report.runs_cleared) == RUNS
        (warning,) = [r for r in caplog.records if "could not release the sweep lease" in r.message]
        assert "goes stale within 90 s" in warning.message


class TestWithoutTheLease:
    async def test_the_default_takes_no_lease(self, backend: MemoBackend) -> None:
        await ended_runs(backend)
        recorded = RecordingBackend(backend)

        report = await MemoStore(recorded, PREFIX).sweep(10)

        assert sorted(report.runs_cleared) == RUNS
        assert [call for call in recorded.calls if str(call[1]).startswith(LEASES)] == []

    def test_the_sync_default_takes_no_lease(self, backend: MemoBackend) -> None:
        asyncio.run(ended_runs(backend))
        recorded = RecordingBackend(backend)

        with SyncMemoStore(recorded, PREFIX) as store:
            store.sweep(10)

        assert [call for call in recorded.calls if str(call[1]).startswith(LEASES)] == []
        assert asyncio.run(keys(backend)) == []


class TestBadInputTouchesNothing:
    @pytest.mark.parametrize("lease", ["yes", 1, None])
    async def test_a_lease_that_is_not_a_bool_is_refused_before_any_io(
        self, backend: MemoBackend, lease: object
    ) -> None:
        recorded = RecordingBackend(backend)
        with pytest.raises(InvalidValueTypeError, match="lease must be True or False"):
            await MemoStore(recorded, PREFIX).sweep(10, lease=lease)  # type: ignore[arg-type]
        assert recorded.calls == []

    def test_the_sync_store_refuses_it_before_any_io(self, backend: MemoBackend) -> None:
        recorded = RecordingBackend(backend)
        with (
            SyncMemoStore(recorded, PREFIX) as store,
            pytest.raises(InvalidValueTypeError, match="lease must be True or False"),
        ):
            store.sweep(10, lease="yes")  # type: ignore[arg-type]
        assert recorded.calls == []

    async def test_a_backend_without_conditional_put_cannot_lease(self) -> None:
        inner = InMemoryBackend()
        await ended_runs(inner)
        recorded = RecordingBackend(
            inner,
            capabilities=Capabilities(
                ordered_listing=True, conditional_put=False, max_delete_batch=1000
            ),
        )
        with pytest.raises(NotSupportedError, match="conditional_put"):
            await MemoStore(recorded, PREFIX).sweep(10, lease=True)
        assert recorded.calls == []
