"""A Hypothesis state machine of MemoStore operations against a dict model, per embedded backend.

Hypothesis strings together memo puts (plain and create-if-absent) and gets,
run clears, terminal markers written, listed and deleted, and sweeps, on
run ids that are prefixes of one another (``a``, ``a-b``, ``a_b``) and keys
that look like paths. After every step the store must agree with a model made
of two dicts, and the backend must hold exactly the keys the model implies
(nothing stray, nothing left behind). Any disagreement is shrunk to a short
reproduction.

The embedded set: InMemoryBackend, LocalFileBackend, and obstore's
MemoryStore through taquba_memo_obstore.ObstoreBackend (a backend without
ordered listing would have its orders compared as sets).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from obstore.store import MemoryStore
from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend, MemoStore
from taquba_memo import _layout as layout
from taquba_memo._layout import TerminalMarker
from taquba_memo_obstore import ObstoreBackend

from ..conftest import ReliabilityFigures

T = TypeVar("T")

SECTION = "hostile input"
PREFIX = "tenant/memo"
RUN_IDS = ("a", "a-b", "a_b", "A", "0", "r" * 128)
STEPS = (0, 1, 2**32 - 1)
USER_KEYS = ("", "k", "a/b", "../x", "ключ", "\x00", " ")
# The latest time a marker can name (later ones would read as the other layout's).
TIMES = (0, 5, 10, 11, layout.LATEST_TERMINAL_AT_MS)
CUTOFFS = (0, 6, 11, 2**64 - 1)
EXAMPLES = 500 if os.environ.get("TAQUBA_MEMO_SOAK") == "1" else 100

BackendMaker = Callable[[Path], MemoBackend]

EMBEDDED: dict[str, BackendMaker] = {
    "InMemoryBackend": lambda _: InMemoryBackend(),
    "LocalFileBackend": lambda directory: LocalFileBackend(directory, durable=False),
    "obstore MemoryStore": lambda _: ObstoreBackend(MemoryStore()),
}


class MemoStoreMachine(RuleBasedStateMachine):
    """One example: a fresh backend, a store on it, and the model."""

    make_backend: BackendMaker
    figures: ReliabilityFigures

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="memo-machine-"))
        self.backend = type(self).make_backend(self.directory)
        self.store = MemoStore(self.backend, PREFIX)
        self.entries: dict[tuple[str, int, str], bytes] = {}
        self.markers: set[TerminalMarker] = set()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        self.figures.add(SECTION, "state_machine_store_operations")
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.store.aclose())
        finally:
            self.loop.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- memos ------------------------------------------------------------------------

    @rule(
        run_id=st.sampled_from(RUN_IDS),
        step=st.sampled_from(STEPS),
        key=st.sampled_from(USER_KEYS),
        value=st.binary(max_size=32),
        if_absent=st.booleans(),
    )
    def put(self, run_id: str, step: int, key: str, value: bytes, if_absent: bool) -> None:
        memo = self.store.new_memo(run_id, step)
        written = self.run(memo.put(key, value, if_absent=if_absent))
        expected = not if_absent or (run_id, step, key) not in self.entries
        assert written is expected, f"put(if_absent={if_absent}) returned {written}"
        if written:
            self.entries[(run_id, step, key)] = value

    @rule(
        run_id=st.sampled_from(RUN_IDS), step=st.sampled_from(STEPS), key=st.sampled_from(USER_KEYS)
    )
    def get(self, run_id: str, step: int, key: str) -> None:
        found = self.run(self.store.new_memo(run_id, step).get(key))
        assert found == self.entries.get((run_id, step, key))

    @rule(run_id=st.sampled_from(RUN_IDS))
    def clear_run(self, run_id: str) -> None:
        deleted = self.run(self.store.clear_memos_for_run(run_id))
        mine = [entry for entry in self.entries if entry[0] == run_id]
        assert deleted == len(mine), f"cleared {deleted} entries of {run_id}, it had {len(mine)}"
        for entry in mine:
            del self.entries[entry]

    # -- terminal markers -------------------------------------------------------------

    @rule(run_id=st.sampled_from(RUN_IDS), at=st.sampled_from(TIMES))
    def write_marker(self, run_id: str, at: int) -> None:
        self.run(self.store.write_terminal_marker(run_id, at))
        self.markers.add(TerminalMarker(run_id, at))

    @rule()
    def list_markers(self) -> None:
        listed = self.run(self.store.list_terminal_markers())
        assert sorted(listed) == sorted(self.markers)
        assert len(listed) == len(set(listed)), "a marker listed twice"
        if self.backend.capabilities.ordered_listing:
            assert listed == sorted(listed, key=lambda m: (m.terminal_at_ms, m.run_id.encode()))

    @rule(cutoff=st.sampled_from(CUTOFFS))
    def list_expired(self, cutoff: int) -> None:
        expired = self.run(self.store.list_expired_terminal_markers(cutoff))
        assert sorted(expired) == sorted(m for m in self.markers if m.terminal_at_ms < cutoff)

    @rule(run_id=st.sampled_from(RUN_IDS), at=st.sampled_from(TIMES))
    def delete_marker(self, run_id: str, at: int) -> None:
        self.run(self.store.delete_terminal_marker(TerminalMarker(run_id, at)))
        self.markers.discard(TerminalMarker(run_id, at))

    @rule(cutoff=st.sampled_from(CUTOFFS), dry_run=st.booleans())
    def sweep(self, cutoff: int, dry_run: bool) -> None:
        report = self.run(self.store.sweep(cutoff, dry_run=dry_run))
        expired = [m for m in self.markers if m.terminal_at_ms < cutoff]
        assert report.ok
        assert sorted(report.runs_cleared) == sorted({m.run_id for m in expired})
        if dry_run:
            assert report.entries_deleted == 0
            return
        runs = {m.run_id for m in expired}
        gone = [entry for entry in self.entries if entry[0] in runs]
        # A run with several expired markers is cleared, and counted, once.
        assert report.entries_deleted == len(gone)
        for entry in gone:
            del self.entries[entry]
        self.markers.difference_update(expired)

    # -- the backend holds exactly what the model implies -----------------------------

    @invariant()
    def backend_holds_exactly_the_model(self) -> None:
        async def everything() -> set[str]:
            return {key async for key in self.backend.list("")}

        stored = self.loop.run_until_complete(everything())
        expected = {layout.memo_key(PREFIX, *entry) for entry in self.entries}
        expected |= {
            layout.terminal_marker_key(PREFIX, m.run_id, m.terminal_at_ms) for m in self.markers
        }
        assert stored == expected


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_memo_store_agrees_with_a_dict_model(name: str, reliability: ReliabilityFigures) -> None:
    class Machine(MemoStoreMachine):
        make_backend = staticmethod(EMBEDDED[name])
        figures = reliability

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    reliability.add(SECTION, "state_machine_examples", EXAMPLES)
    reliability.note(SECTION, "state_machine_backends", sorted(EMBEDDED))
