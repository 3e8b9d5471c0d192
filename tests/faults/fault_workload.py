"""The fault profile's workload: backend operations through a FaultProxy, checked against a model.

A :class:`Target` is one adapter built twice on one bucket: ``faulty`` talks
through the fault proxy with short timeouts and a few retries, ``direct``
talks straight to the server and is never faulted. The workload then proves,
for that adapter:

* **nothing acknowledged is lost** -- every put (or create-if-absent) that
  returned is read back through ``direct`` at once, with identical bytes;
* **no wrong answer** -- every get returns a value the key may hold, given
  what returned and what failed (a failed write may or may not have landed;
  the model keeps both possibilities until a read settles them), and every
  listing holds every key certainly present and nothing certainly absent;
* **no hang, no foreign error** -- every call ends within a bound, either
  with its result or with a transient :class:`~taquba_memo.BackendError`;
* **exhausted retries are transient** -- with every request faulted, each
  operation raises a transient ``BackendError`` (never a hang, never a value).

A create-if-absent whose own first attempt landed but whose answer was lost
is retried by the SDK and sees the key present: it returns False while the
stored value is its own. The model allows exactly that and counts it.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from taquba_memo import BackendError, MemoBackend
from taquba_memo_conformance.proxies import FaultProxy

from ..conftest import ReliabilityFigures

T = TypeVar("T")

SOAK = os.environ.get("TAQUBA_MEMO_SOAK") == "1"

CLIENT_TIMEOUT_S = 1.0
"""Each adapter's per-request (read) timeout in the profile."""

STALL_S = 1.5
"""How long a stall holds a request or an answer: past the client's timeout."""

OPERATION_BOUND_S = 90.0
"""No single backend call may take longer: beyond it the call counts as a hang."""

FAULT_RATE = 0.2
KEYS = 60 if SOAK else 20
OPERATIONS_PER_KEY = 10 if SOAK else 8
CONCURRENCY = 8
SIZES = (0, 7, 1000, 100_000)

Value = bytes | None


@dataclass
class Target:
    """One adapter on one bucket: through the fault proxy, and directly."""

    name: str
    faulty: MemoBackend
    direct: MemoBackend
    proxy: FaultProxy
    notes: dict[str, Any] = field(default_factory=dict)


class WrongAnswer(AssertionError):
    """The adapter returned something it must not have."""


async def bounded(
    target: Target, what: str, work: Awaitable[T]
) -> tuple[T | None, BaseException | None]:
    """Await ``work`` within the bound; return its result, or the exception it raised."""

    async def outcome() -> tuple[T | None, BaseException | None]:
        try:
            return await work, None
        except Exception as exc:
            return None, exc

    try:
        return await asyncio.wait_for(outcome(), OPERATION_BOUND_S)
    except asyncio.TimeoutError:
        raise AssertionError(f"{target.name}: {what} hung for {OPERATION_BOUND_S} s") from None


def expect_transient(target: Target, what: str, error: BaseException) -> BackendError:
    """A failure under injected faults must be a transient BackendError, nothing else."""
    if not isinstance(error, BackendError) or not error.transient:
        raise AssertionError(
            f"{target.name}: {what} failed with {type(error).__name__}: {error}; "
            "injected faults must surface as a transient BackendError"
        ) from error
    return error


@dataclass
class Figures:
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class KeyLane:
    """One key's sequence of operations; keys run concurrently, each key's operations in order."""

    def __init__(self, target: Target, key: str, rng: random.Random, figures: Figures) -> None:
        self.target, self.key, self.rng, self.figures = target, key, rng, figures
        self.possible: set[Value] = {None}
        self.serial = 0

    def new_value(self) -> bytes:
        size = self.rng.choice(SIZES)
        if size == 0:
            return b""
        self.serial += 1
        head = f"{self.key}#{self.serial}:".encode()
        return head + self.rng.randbytes(max(0, size - len(head)))

    def failed(self, what: str, error: BaseException) -> None:
        mapped = expect_transient(self.target, what, error)
        self.figures.counts["operations_failed_transient"] += 1
        self.figures.errors[type(mapped).__name__] += 1

    async def read_back(self, what: str, expected: set[Value]) -> None:
        """Read the key directly (no faults) and require one of ``expected``; settle the model."""
        stored, error = await bounded(
            self.target, f"direct read of {self.key}", self.target.direct.get(self.key)
        )
        if error is not None:
            raise AssertionError(
                f"{self.target.name}: the fault-free read failed: {error!r}"
            ) from error
        if stored not in expected:
            raise WrongAnswer(
                f"{self.target.name}: after {what} of {self.key!r} the server holds "
                f"{_show(stored)}; allowed: {[_show(v) for v in expected]}"
            )
        self.possible = {stored}

    async def put(self, if_absent: bool) -> None:
        value = self.new_value()
        what = "create-if-absent" if if_absent else "put"
        written, error = await bounded(
            self.target,
            f"{what} {self.key}",
            self.target.faulty.put(self.key, value, if_absent=if_absent),
        )
        if error is not None:
            self.failed(what, error)
            self.possible.add(value)
            return
        counts = self.figures.counts
        if written:
            counts["creates_acknowledged" if if_absent else "puts_acknowledged"] += 1
            await self.read_back(f"an acknowledged {what}", {value})
            counts["acknowledged_writes_read_back_identical"] += 1
        else:
            assert if_absent, f"{self.target.name}: a plain put returned {written!r}"
            present = self.possible - {None}
            if not present:
                counts["creates_that_found_their_own_replayed_write"] += 1
            else:
                counts["creates_that_found_the_key_present"] += 1
            await self.read_back("a create-if-absent that found the key present", present | {value})

    async def get(self) -> None:
        found, error = await bounded(
            self.target, f"get {self.key}", self.target.faulty.get(self.key)
        )
        if error is not None:
            self.failed("get", error)
            return
        if found not in self.possible:
            raise WrongAnswer(
                f"{self.target.name}: get({self.key!r}) returned {_show(found)}; "
                f"the key may hold only {[_show(v) for v in self.possible]}"
            )
        self.figures.counts["gets_answered_correctly"] += 1
        self.possible = {found}

    async def delete(self, many: bool) -> None:
        what = "delete_many" if many else "delete"
        work = (
            self.target.faulty.delete_many([self.key, f"{self.key}-never-written"])
            if many
            else self.target.faulty.delete(self.key)
        )
        _, error = await bounded(self.target, f"{what} {self.key}", work)
        if error is not None:
            self.failed(what, error)
            self.possible.add(None)
            return
        self.figures.counts["deletes_acknowledged"] += 1
        await self.read_back(f"an acknowledged {what}", {None})

    async def run(self, operations: int) -> None:
        actions: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (lambda: self.put(if_absent=False), 40),
            (lambda: self.put(if_absent=True), 12),
            (self.get, 30),
            (lambda: self.delete(many=False), 9),
            (lambda: self.delete(many=True), 9),
        ]
        calls, weights = zip(*actions, strict=True)
        for _ in range(operations):
            await self.rng.choices(calls, weights)[0]()
        await self.read_back("the last operation", self.possible)
        self.figures.counts["keys_settled"] += 1


async def check_listing(target: Target, root: str, lanes: list[KeyLane], figures: Figures) -> None:
    """A faulted listing fails transiently or lists exactly the keys the model allows."""
    listed, error = await bounded(target, "list", _collect(target.faulty, root))
    if error is not None:
        mapped = expect_transient(target, "list", error)
        figures.counts["listings_failed_transient"] += 1
        figures.errors[type(mapped).__name__] += 1
        return
    assert listed is not None
    certain = {lane.key for lane in lanes if None not in lane.possible}
    maybe = {lane.key for lane in lanes if lane.possible - {None}}
    missing, extra = certain - set(listed), set(listed) - maybe
    if missing or extra:
        raise WrongAnswer(f"{target.name}: listing missed {sorted(missing)}, added {sorted(extra)}")
    if target.faulty.capabilities.ordered_listing:
        assert listed == sorted(listed, key=lambda key: key.encode()), f"{target.name}: order"
    assert len(listed) == len(set(listed)), f"{target.name}: a key listed twice"
    figures.counts["listings_answered_correctly"] += 1


# (operation, fault) pairs run with every request faulted; retries must run out transiently.
EXHAUSTION_CASES: list[tuple[str, str]] = [
    ("put", "500"),
    ("create", "lost-reset"),
    ("get", "503"),
    ("delete", "reset"),
    ("list", "429"),
    ("delete_many", "500"),
    ("get", "stall"),
]
if SOAK:
    EXHAUSTION_CASES = [
        (operation, fault)
        for operation in ("put", "create", "get", "delete", "delete_many", "list")
        for fault in ("500", "503", "429", "reset", "stall", "lost-reset", "lost-stall")
    ]


async def exhaust(target: Target, root: str, figures: Figures) -> None:
    """With every request faulted, each operation must end in a transient BackendError."""
    key = f"{root}exhausted"
    for operation, fault in EXHAUSTION_CASES:
        target.proxy.configure(rate=1.0, faults={fault: 1})
        operations: dict[str, Callable[[], Awaitable[Any]]] = {
            "put": lambda: target.faulty.put(key, b"v"),
            "create": lambda: target.faulty.put(f"{key}-{uuid.uuid4().hex}", b"v", if_absent=True),
            "get": lambda: target.faulty.get(key),
            "delete": lambda: target.faulty.delete(key),
            "delete_many": lambda: target.faulty.delete_many([key, f"{key}-2"]),
            "list": lambda: _collect(target.faulty, root),
        }
        work = operations[operation]()
        result, error = await bounded(target, f"{operation} under {fault} on every request", work)
        target.proxy.configure(rate=0.0)
        if error is None:
            raise WrongAnswer(
                f"{target.name}: {operation} returned {result!r} although every request "
                f"was faulted ({fault})"
            )
        mapped = expect_transient(target, f"{operation} under {fault}", error)
        figures.counts["retries_exhausted_then_transient_error"] += 1
        figures.errors[f"exhausted {fault}: {type(mapped).__name__}"] += 1


async def run_fault_profile(target: Target, reliability: ReliabilityFigures, seed: int) -> None:
    """The whole profile for one adapter; figures go to the ``faults: <name>`` section."""
    section = f"faults: {target.name}"
    figures = Figures()
    root = f"faults/{uuid.uuid4().hex}/"
    rng = random.Random(seed)
    lanes = [
        KeyLane(target, f"{root}k{i:03d}", random.Random(rng.random()), figures)
        for i in range(KEYS)
    ]
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def run_lane(lane: KeyLane) -> None:
        async with semaphore:
            await lane.run(OPERATIONS_PER_KEY)

    target.proxy.configure(rate=FAULT_RATE, stall_seconds=STALL_S)
    try:
        await asyncio.gather(*(run_lane(lane) for lane in lanes))
        for _ in range(3):
            await check_listing(target, root, lanes, figures)
        injected_in_workload = sum(target.proxy.injected.values())
        await exhaust(target, root, figures)
    finally:
        target.proxy.configure(rate=0.0)
        everything = [lane.key for lane in lanes] + [f"{root}exhausted"]
        await target.direct.delete_many(everything)
        leftovers = [key async for key in target.direct.list(root)]
        for key in leftovers:  # create-if-absent keys of the exhaustion cases
            await target.direct.delete(key)

    injected = target.proxy.injected
    for name, count in figures.counts.items():
        reliability.add(section, name, count)
    for name, count in injected.items():
        reliability.add(section, f"injected {name}", count)
    reliability.add(section, "faults_injected", sum(injected.values()))
    reliability.add(section, "faults_injected_during_workload", injected_in_workload)
    reliability.add(section, "requests_through_proxy", target.proxy.counts().total)
    reliability.note(section, "errors_seen", dict(sorted(figures.errors.items())))
    reliability.note(
        section,
        "settings",
        {
            "fault_rate": FAULT_RATE,
            "client_timeout_s": CLIENT_TIMEOUT_S,
            "stall_s": STALL_S,
            "keys": KEYS,
            "operations_per_key": OPERATIONS_PER_KEY,
            "seed": seed,
            **target.notes,
        },
    )
    assert figures.counts["acknowledged_writes_read_back_identical"] > 0
    assert injected_in_workload > 0


async def _collect(backend: MemoBackend, prefix: str) -> list[str]:
    return [key async for key in backend.list(prefix)]


def _show(value: Value) -> str:
    if value is None:
        return "absent"
    return f"{len(value)} bytes {value[:24]!r}"
