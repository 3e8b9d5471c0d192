"""A Hypothesis state machine that drives a MemoBackend and compares it with a dict.

Hypothesis generates sequences of put, put-if-absent, get, delete,
delete_many and list calls, runs each against the backend and against a
plain ``dict``, and after every step the two must agree. When they do not,
Hypothesis shrinks the sequence to a short reproduction.

Hypothesis rules are synchronous while backends are async and bound to the
event loop their test runs on (an aiohttp session cannot move loops). So the
machine runs on a worker thread and hands every backend call to that loop
with :func:`asyncio.run_coroutine_threadsafe`; the test itself just awaits
the worker (see :func:`run_backend_state_machine`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from taquba_memo import MemoBackend, NotSupportedError

from taquba_memo_conformance._base import SuiteBase
from taquba_memo_conformance.keyspace import KeySpace, byte_order, collect

__all__ = [
    "MODEL_KEYS",
    "MODEL_PREFIXES",
    "BackendStateMachine",
    "StateMachineTests",
    "run_backend_state_machine",
]

T = TypeVar("T")

# Keys relative to the machine's own root. None is the "directory" of
# another (no "b" beside "b/c"), so every key is valid on a file system too.
MODEL_KEYS: tuple[str, ...] = (
    "a",
    "a-b",
    "ab",
    "a b",
    "a.b",
    "b/c",
    "b/d",
    "b-c/x",
    "c/d/e",
    "é",
    "漢",
)
# Raw prefixes: segment boundaries, mid-segment cuts, and ones that match nothing.
MODEL_PREFIXES: tuple[str, ...] = ("", "a", "a-", "a.", "b", "b/", "b-", "c/d", "é", "z")

# Longest a single backend call may take before the machine gives up.
CALL_TIMEOUT_SECONDS = 300.0


class BackendStateMachine(RuleBasedStateMachine):
    """Random backend operations checked step by step against a dict model.

    Each instance (one Hypothesis example) works below its own ``root``.
    ``loop`` is the event loop the backend lives on; the machine itself runs
    on another thread.
    """

    def __init__(self, backend: MemoBackend, root: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.backend = backend
        self.root = root.rstrip("/")
        self.loop = loop
        self.model: dict[str, bytes] = {}
        # Read once: capabilities are constant for a backend's lifetime.
        self.capabilities = backend.capabilities

    def full_key(self, key: str) -> str:
        return f"{self.root}/{key}"

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run one backend call on the backend's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(CALL_TIMEOUT_SECONDS)

    @rule(key=st.sampled_from(MODEL_KEYS), value=st.binary(max_size=48))
    def put(self, key: str, value: bytes) -> None:
        written = self.call(self.backend.put(self.full_key(key), value))
        assert written is True, f"put({key!r}) returned {written!r}, not True"
        self.model[key] = value

    @rule(key=st.sampled_from(MODEL_KEYS), value=st.binary(max_size=48))
    def put_if_absent(self, key: str, value: bytes) -> None:
        if not self.capabilities.conditional_put:
            try:
                self.call(self.backend.put(self.full_key(key), value, if_absent=True))
            except NotSupportedError:
                pass
            else:
                raise AssertionError(
                    "put(if_absent=True) without the conditional_put capability "
                    "did not raise NotSupportedError"
                )
            return
        created = self.call(self.backend.put(self.full_key(key), value, if_absent=True))
        expected = key not in self.model
        assert created is expected, (
            f"put({key!r}, if_absent=True) returned {created!r}; "
            f"the key {'was absent' if expected else 'existed'}"
        )
        if created:
            self.model[key] = value

    @rule(key=st.sampled_from(MODEL_KEYS))
    def get(self, key: str) -> None:
        assert self.call(self.backend.get(self.full_key(key))) == self.model.get(key)

    @rule(key=st.sampled_from(MODEL_KEYS))
    def delete(self, key: str) -> None:
        self.call(self.backend.delete(self.full_key(key)))
        self.model.pop(key, None)

    @rule(keys=st.lists(st.sampled_from(MODEL_KEYS), max_size=6, unique=True))
    def delete_many(self, keys: list[str]) -> None:
        self.call(self.backend.delete_many([self.full_key(key) for key in keys]))
        for key in keys:
            self.model.pop(key, None)

    @rule(prefix=st.sampled_from(MODEL_PREFIXES))
    def list_prefix(self, prefix: str) -> None:
        listed = self.call(collect(self.backend.list(self.full_key(prefix))))
        expected = byte_order(self.full_key(key) for key in self.model if key.startswith(prefix))
        if self.capabilities.ordered_listing:
            assert listed == expected, f"list({prefix!r}) in byte order"
        else:
            assert byte_order(listed) == expected, f"list({prefix!r}), any order, no duplicates"


def run_backend_state_machine(
    backend: MemoBackend,
    root: str,
    loop: asyncio.AbstractEventLoop,
    machine_settings: settings,
) -> None:
    """Run :class:`BackendStateMachine` to completion; call it on a worker thread.

    Every example gets a fresh sub-prefix ``root/<n>``, so no example sees
    another's keys and no cleanup is needed between examples.
    """
    examples = itertools.count()

    class BoundBackendStateMachine(BackendStateMachine):
        def __init__(self) -> None:
            super().__init__(backend, f"{root.rstrip('/')}/{next(examples)}", loop)

    run_state_machine_as_test(BoundBackendStateMachine, settings=machine_settings)


class StateMachineTests(SuiteBase):
    """A random walk of the backend, compared with a dict at every step."""

    async def test_state_machine_agrees_with_a_dict(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        # The machine runs on a worker thread and sends each call back to
        # this loop, where the backend lives (see statemachine.py).
        await asyncio.to_thread(
            run_backend_state_machine,
            backend,
            space.key("machine"),
            asyncio.get_running_loop(),
            self.state_machine_settings,
        )
