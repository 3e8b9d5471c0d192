"""One run's entries cleared, and the two things every deletion of the store shares.

:class:`StoreView` is the store as the deletion code reaches it, and
:func:`delete_keys` the one place a ``delete_many``'s failures are read.
The sweep (:mod:`taquba_memo._sweep`) builds on both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from taquba_memo._concurrency import TaskWindow
from taquba_memo._layout import DEFAULT_LAYOUT, Layout, TerminalMarker
from taquba_memo._telemetry import StoreTelemetry
from taquba_memo.backend import MemoBackend
from taquba_memo.errors import BackendError, DeleteManyError

__all__ = ["ClearOutcome", "StoreView", "clear_run", "delete_keys"]

logger = logging.getLogger("taquba_memo")

# Batches of one run's deletes kept in flight while its listing continues.
_CLEAR_DELETES_IN_FLIGHT = 4


@dataclass(frozen=True)
class StoreView:
    """One store as the deletion engine reaches it: these members and nothing else.

    It exists so that the engine does not depend on MemoStore: the store
    builds one view of itself and hands it over, imports run store ->
    _sweep and never back, and what the engine may touch is listed here
    rather than reached for among the store's private members.
    """

    backend: Callable[[], MemoBackend]  # called per use: a closed store refuses
    prefix: str
    telemetry: StoreTelemetry
    listed: Callable[[str], AsyncIterator[str]]  # a prefix's keys, strays dropped
    marker_names: Callable[[], AsyncIterator[tuple[str, TerminalMarker | None]]]
    expired_markers: Callable[[int], AsyncIterator[TerminalMarker]]
    layout: Layout = DEFAULT_LAYOUT


async def delete_keys(backend: MemoBackend, keys: list[str]) -> dict[str, BackendError]:
    """Delete ``keys`` in one ``delete_many``; return the keys that failed, with their error."""
    try:
        await backend.delete_many(keys)
    except DeleteManyError as exc:
        return exc.failures
    except BackendError as exc:
        return dict.fromkeys(keys, exc)
    return {}


@dataclass(frozen=True)
class ClearOutcome:
    """What :func:`clear_run` did: entries deleted, and the keys that failed."""

    deleted: int
    failures: dict[str, BackendError]


async def clear_run(store: StoreView, run_id: str) -> ClearOutcome:
    """Delete every entry of ``run_id``: a listing per run prefix, batches of ``max_delete_batch``.

    The run prefixes are the layout's: its memos, and under ``"0.10"`` its
    step outputs too. A key that fails to delete is logged and kept in the
    outcome; a failed listing raises :class:`BackendError`.
    """
    run_prefixes = store.layout.run_prefixes(store.prefix, run_id)
    batch_size = store.backend().capabilities.max_delete_batch
    failures: dict[str, BackendError] = {}
    deleted = 0

    async def delete_batch(keys: list[str]) -> None:
        nonlocal deleted
        failed = await delete_keys(store.backend(), keys)
        failures.update(failed)
        deleted += len(keys) - len(failed)

    window = TaskWindow(_CLEAR_DELETES_IN_FLIGHT)
    try:
        batch: list[str] = []
        for run_prefix in run_prefixes:
            async for key in store.listed(run_prefix):
                batch.append(key)
                if len(batch) == batch_size:
                    await window.submit(delete_batch(batch))
                    batch = []
        if batch:
            await window.submit(delete_batch(batch))
    finally:
        await window.drain()
    if failures:  # one line, not one per key: a denial fails every key alike
        key, error = next(iter(failures.items()))
        logger.warning(
            "failed to delete memo entry %r of run %s (and %d more): %s",
            key, run_id, len(failures) - 1, error,
        )  # fmt: skip
    return ClearOutcome(deleted, failures)
