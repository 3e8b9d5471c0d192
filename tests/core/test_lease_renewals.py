"""A lease whose renewal fails says so, for entry claims and the sweep lease alike.

Both hold a generation lease (:mod:`taquba_memo._lease`) and overwrite it
every third of their lease. When the store refuses such an overwrite (its
credentials lost write access, a 503, a full disk), the holder keeps the
lease and retries at the next beat, but a lease that is not renewed for a
whole lease may be taken over by another worker: the first failure of each
run of them is logged as a warning that names the lease key and carries the
store's error, with its chained cause. And a sweeper that fails right after
creating its generation (deleting the older ones) renews and keeps nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from taquba_memo import (
    AccessDeniedError,
    ClaimPolicy,
    InMemoryBackend,
    LocalFileBackend,
    MemoBackend,
    MemoStore,
    SweepLease,
)
from taquba_memo import _layout as layout
from taquba_memo.adapter_kit import ForwardingBackend

PREFIX = "memo"
ENTRY = layout.memo_key(PREFIX, "run", 1, "k")
LEASE_S = 0.3  # renewed every 0.1 s
PATIENCE_S = 30.0


class RefusingOverwrites(ForwardingBackend):
    """A backend whose store refuses every overwrite of ``refused_key`` while ``refusing``.

    It fails as a real adapter does: an AccessDeniedError chained from the
    SDK's (here the OS's) error. Creations (``if_absent``) pass.
    """

    def __init__(self, inner: MemoBackend) -> None:
        super().__init__(inner)
        self.refused_key: str | None = None
        self.refusing = False
        self.refusals = 0
        self.overwrites = 0

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        if key == self.refused_key and not if_absent:
            if self.refusing:
                self.refusals += 1
                try:
                    raise PermissionError(13, "Permission denied")
                except PermissionError as exc:
                    raise AccessDeniedError("the store refused the write") from exc
            self.overwrites += 1
        return await super().put(key, value, if_absent=if_absent)

    async def refuse(self, renewals: int) -> None:
        """Refuse the next ``renewals`` overwrites, then accept them again."""
        target, self.refusing = self.refusals + renewals, True
        await until(lambda: self.refusals >= target, f"{renewals} renewals were refused")
        self.refusing = False

    async def accept_one(self) -> None:
        """Wait until one more overwrite (a renewal) lands."""
        target = self.overwrites + 1
        await until(lambda: self.overwrites >= target, "a renewal landed")


Holding = Callable[[MemoBackend], AbstractAsyncContextManager[str]]


@asynccontextmanager
async def holding_a_claim(backend: MemoBackend) -> AsyncIterator[str]:
    """A get_or_compute call that holds its entry's claim while the block runs."""
    done = asyncio.Event()

    async def pay() -> bytes:
        await done.wait()
        return b"answer"

    memo = MemoStore(backend, PREFIX).new_memo("run", 1)
    call = asyncio.ensure_future(memo.get_or_compute("k", pay, claim=ClaimPolicy(lease_s=LEASE_S)))
    try:
        yield layout.claim_key(ENTRY, 1)
    finally:
        done.set()
        assert await asyncio.wait_for(call, PATIENCE_S) == b"answer"


@asynccontextmanager
async def holding_the_sweep_lease(backend: MemoBackend) -> AsyncIterator[str]:
    async with SweepLease(MemoStore(backend, PREFIX), lease_s=LEASE_S):
        yield layout.sweep_lease_key(PREFIX, 1)


HOLDERS: dict[str, Holding] = {"claim": holding_a_claim, "sweep lease": holding_the_sweep_lease}


@pytest.fixture(params=["memory", "local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> RefusingOverwrites:
    inner: MemoBackend = (
        InMemoryBackend() if request.param == "memory" else LocalFileBackend(tmp_path)
    )
    return RefusingOverwrites(inner)


async def until(condition: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - the backend's counters signal nothing
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), PATIENCE_S)
    except asyncio.TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def renewal_warnings(
    backend: RefusingOverwrites,
    holder: str,
    caplog: pytest.LogCaptureFixture,
    meanwhile: Callable[[], Awaitable[None]],
) -> tuple[str, list[logging.LogRecord]]:
    """The lease key, and the renewal warnings logged as ``holder`` held it over ``meanwhile``."""
    with caplog.at_level(logging.WARNING, logger="taquba_memo"):
        async with HOLDERS[holder](backend) as key:
            backend.refused_key = key
            await meanwhile()
    return key, [r for r in caplog.records if r.getMessage().startswith("could not renew")]


@pytest.mark.parametrize("holder", HOLDERS)
async def test_a_failed_renewal_warns_once_naming_the_lease_key_with_the_chained_error(
    backend: RefusingOverwrites, holder: str, caplog: pytest.LogCaptureFixture
) -> None:
    key, warnings = await renewal_warnings(backend, holder, caplog, lambda: backend.refuse(3))

    (warning,) = warnings
    assert warning.levelno == logging.WARNING
    assert repr(key) in warning.getMessage()
    assert warning.exc_info is not None
    error = warning.exc_info[1]
    assert isinstance(error, AccessDeniedError)
    assert isinstance(error.__cause__, PermissionError)


@pytest.mark.parametrize("holder", HOLDERS)
async def test_renewals_go_on_after_a_failure_and_each_run_of_failures_warns(
    backend: RefusingOverwrites, holder: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def two_runs_of_failures() -> None:
        for _run in range(2):
            await backend.refuse(2)
            await backend.accept_one()  # a renewal lands between the runs

    _key, warnings = await renewal_warnings(backend, holder, caplog, two_runs_of_failures)
    assert len(warnings) == 2


class RefusingDeletes(ForwardingBackend):
    """A store that refuses every batch delete, as with a credential that may not delete."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        raise AccessDeniedError("the store refused the delete")


async def test_a_sweeper_that_fails_after_creating_its_generation_gives_it_back(
    tmp_path: Path,
) -> None:
    inner = LocalFileBackend(tmp_path)
    released = json.dumps(
        {"owner": "earlier", "renewed_at_ms": 0, "lease_s": 60.0, "released": True}
    ).encode()
    await inner.put(layout.sweep_lease_key(PREFIX, 1), released)
    lease = SweepLease(MemoStore(RefusingDeletes(inner), PREFIX), lease_s=LEASE_S)

    with pytest.raises(AccessDeniedError, match="refused the delete"):
        await lease.__aenter__()  # an ``async with`` whose block never runs

    assert not lease.held
    listed = [key async for key in inner.list(layout.sweep_leases_prefix(PREFIX))]
    assert listed == [layout.sweep_lease_key(PREFIX, 1)]
