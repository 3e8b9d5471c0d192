"""The sweep lease is judged by the reader's bounds, never by the holder's word alone.

A lease document says when it was renewed and for how long. A holder that
wrote a renewal a day ahead, or ``lease_s: 1e12`` or ``Infinity``, would
otherwise block every later sweep forever. The reader's own bound
(``max_lease_s + skew_s``) caps how long any document can block it, and a
renewal time beyond the skew in the reader's future makes the lease stale.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from taquba_memo import InvalidArgumentError, InvalidValueTypeError, LocalFileBackend, MemoStore
from taquba_memo._layout import sweep_lease_key, sweep_leases_prefix
from taquba_memo._sweep_lease import SweepLease, SweepLeaseHeldError

from ._cli_support import ExitCode, local_store_of_ended_runs, run_cli

PREFIX = "agents"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def lease_document(renewed_at_ms: object, lease_s: object) -> bytes:
    """Another sweeper's lease, with whatever it chose to write (Infinity and NaN included)."""
    document: dict[str, Any] = {
        "owner": "elsewhere:1",
        "renewed_at_ms": renewed_at_ms,
        "lease_s": lease_s,
        "released": False,
    }
    return json.dumps(document).encode()


async def plant(backend: LocalFileBackend, data: bytes, *, key: str | None = None) -> None:
    await backend.put(key or sweep_lease_key(PREFIX, 1), data)


async def leases(backend: LocalFileBackend) -> list[str]:
    return [key async for key in backend.list(sweep_leases_prefix(PREFIX))]


async def try_to_take(backend: LocalFileBackend, **options: Any) -> bool:
    """Whether a sweeper with ``options`` takes the lease (and then releases it)."""
    store = MemoStore(backend, PREFIX)
    try:
        async with SweepLease(store, **options):
            return True
    except SweepLeaseHeldError:
        return False


# Documents that would block sweeps forever if the reader believed them.
FOREVER = {
    "renewed a day ahead": lambda: lease_document(now_ms() + DAY_MS, 60.0),
    "lease_s 1e12, an hour ago": lambda: lease_document(now_ms() - HOUR_MS, 1e12),
    "lease_s Infinity, an hour ago": lambda: lease_document(now_ms() - HOUR_MS, math.inf),
    "lease_s NaN, an hour ago": lambda: lease_document(now_ms() - HOUR_MS, math.nan),
    "lease_s negative, an hour ago": lambda: lease_document(now_ms() - HOUR_MS, -1e12),
    "renewed at Infinity": lambda: lease_document(math.inf, 60.0),
}


class TestTheReadersBoundDecides:
    @pytest.mark.parametrize("case", FOREVER)
    async def test_a_lease_that_would_block_forever_is_stale(
        self, tmp_path: Path, case: str
    ) -> None:
        backend = LocalFileBackend(tmp_path)
        await plant(backend, FOREVER[case]())
        assert await try_to_take(backend)
        assert await leases(backend) == []

    async def test_an_absurd_lease_holds_only_up_to_the_readers_maximum(
        self, tmp_path: Path
    ) -> None:
        backend = LocalFileBackend(tmp_path)
        await plant(backend, lease_document(now_ms() - 5_000, 1e12))
        assert not await try_to_take(backend, max_lease_s=60, skew_s=30)
        await plant(backend, lease_document(now_ms() - 91_000, 1e12))
        assert await try_to_take(backend, max_lease_s=60, skew_s=30)

    async def test_a_renewal_within_the_skew_ahead_still_holds(self, tmp_path: Path) -> None:
        backend = LocalFileBackend(tmp_path)
        await plant(backend, lease_document(now_ms() + 10_000, 60.0))
        assert not await try_to_take(backend, skew_s=30)

    async def test_a_lease_listed_under_an_unpadded_name_is_read_and_deleted_by_that_name(
        self, tmp_path: Path
    ) -> None:
        backend = LocalFileBackend(tmp_path)
        unpadded = f"{sweep_leases_prefix(PREFIX)}1"
        await plant(backend, lease_document(now_ms(), 60.0), key=unpadded)
        assert not await try_to_take(backend)
        await plant(backend, lease_document(now_ms() - HOUR_MS, 60.0), key=unpadded)
        assert await try_to_take(backend)
        assert await leases(backend) == []

    @pytest.mark.parametrize(
        ("options", "error"),
        [
            ({"lease_s": math.inf}, InvalidArgumentError),
            ({"skew_s": math.nan}, InvalidArgumentError),
            ({"max_lease_s": -1.0}, InvalidArgumentError),
            ({"lease_s": 120.0, "max_lease_s": 60.0}, InvalidArgumentError),
            ({"lease_s": "60"}, InvalidValueTypeError),
        ],
    )
    def test_the_readers_own_bounds_must_be_finite_and_ordered(
        self, tmp_path: Path, options: dict[str, Any], error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            SweepLease(MemoStore(LocalFileBackend(tmp_path), PREFIX), **options)


class TestTheCommandIsNotBlockedForever:
    @pytest.mark.parametrize("case", FOREVER)
    def test_a_sweep_clears_past_a_lease_that_would_block_forever(
        self, tmp_path: Path, case: str
    ) -> None:
        url = local_store_of_ended_runs(tmp_path / "store", 3, [("k", b"v")])
        asyncio.run(plant(LocalFileBackend(tmp_path / "store"), FOREVER[case]()))

        result = run_cli("--json", "--url", url, "--prefix", PREFIX, "sweep", "--older-than", "7d")

        assert result.code == ExitCode.OK, result.stderr
        document = result.json()
        assert "skipped" not in document
        assert document["runs_cleared_count"] == 3
        assert asyncio.run(leases(LocalFileBackend(tmp_path / "store"))) == []
