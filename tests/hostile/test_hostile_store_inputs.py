"""Hostile run ids, keys, prefixes, steps and timestamps through MemoStore, with Hypothesis.

The layout functions are fuzzed in tests/core/test_layout.py; here the whole
store is, on InMemoryBackend and on LocalFileBackend, behind a recorder that
sees every call reaching storage. For every input Hypothesis finds:

* the input is refused with a typed error (``InvalidArgumentError``, which is
  a ``ValueError``, or ``InvalidValueTypeError``, a ``TypeError``) exactly when the
  specification says it is invalid, and then the backend saw no call at all;
* otherwise every key and listing prefix the backend saw lies under
  ``<prefix>/`` (``memos/`` or ``terminals/``), with no empty, ``.`` or ``..``
  segment, no leading ``/``, and the run's own non-empty id as its segment;
* on local files nothing is ever created outside the store's directory.

And stray objects with hostile names under ``terminals/`` never make a
listing or a sweep raise, nor clear a run that no valid marker names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from taquba_memo import (
    InMemoryBackend,
    InvalidArgumentError,
    InvalidValueTypeError,
    LocalFileBackend,
    MemoBackend,
    MemoStore,
)
from taquba_memo import _layout as layout
from taquba_memo_conformance import RecordingBackend

from ..conftest import ReliabilityFigures

SECTION = "hostile input"
SCALE = 5 if os.environ.get("TAQUBA_MEMO_SOAK") == "1" else 1  # `just soak` tries five times more

# Inputs people and attackers actually send, mixed with Hypothesis' own text.
NASTY = [
    "",
    ".",
    "..",
    "/",
    "//",
    "/etc/passwd",
    "../../escape",
    "a/../../b",
    "./a",
    "a/./b",
    "a\x00b",
    "C:\\Windows",
    "\\\\server\\share",
    "%2e%2e",
    "%2F",
    "run\n",
    "run\r\nX-Injected: 1",
    " ",
    "\uff52\uff55\uff4e",  # full-width "run"
    "a" * 129,
    "a" * 128,
    "-",
    "_",
    "run-1",
    "\ud800",
    "é",
    "memos",
    "terminals",
    "00000000000000000001_run",
    "x#123",
    "*",
    "?",
    "~",
]
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    st.lists(st.sampled_from(["a", "..", ".", "", "b c", "%", "#1"]), max_size=4).map("/".join),
)
# Valid inputs half of the time, so that most examples also reach storage.
some_prefix = st.one_of(
    hostile_text,
    st.from_regex(r"[ -~]{0,12}", fullmatch=True).filter(
        lambda text: not set(text) & set('\\{^}%`]">[~<#|*?')
    ),
)
some_run_id = st.one_of(hostile_text, st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True))
hostile_int = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 2**32 - 1, 2**32, 2**64 - 1, 2**64, -1]),
    st.sampled_from([True, False, 1.0, "1", None, b"1"]),
)
hostile_value = st.one_of(
    st.binary(max_size=64), st.sampled_from(["text", None, 1, bytearray(b"x")])
)

_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ESCAPED = set('/\\{^}%`]">[~<#|*?\r\n')


# -- the specification, written out independently of the implementation -----------


def prefix_is_valid(prefix: object) -> bool:
    if not isinstance(prefix, str):
        return False
    segments = [segment for segment in prefix.split("/") if segment]
    return all(
        segment not in (".", "..")
        and all(" " <= ch <= "~" and ch not in _ESCAPED for ch in segment)
        for segment in segments
    )


def run_id_is_valid(run_id: object) -> bool:
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


def in_range(value: object, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def user_key_is_valid(user_key: object) -> bool:
    if not isinstance(user_key, str):
        return False
    try:
        user_key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def value_is_valid(value: object) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


# -- checks ------------------------------------------------------------------------


async def attempt(
    recorder: RecordingBackend, valid: bool, call: Callable[[], Awaitable[Any]]
) -> tuple[bool, Any]:
    """Run ``call``; it must succeed if ``valid``, else be refused before any I/O."""
    before = len(recorder.calls)
    try:
        result = await call()
    except (InvalidArgumentError, InvalidValueTypeError) as refused:
        problem = None if not valid else f"valid input refused: {refused!r}"
    else:
        assert valid, f"invalid input accepted; the backend saw {recorder.calls[before:]}"
        return True, result
    assert problem is None, problem
    assert len(recorder.calls) == before, f"refused after {recorder.calls[before:]}"
    return False, None


def assert_contained(recorder: RecordingBackend, prefix: str, run_id: str | None) -> None:
    """Every key or listing prefix the backend saw lies inside the store's prefix."""
    root = f"{prefix}/" if prefix else ""
    for operation, key in recorder.calls:
        assert key.startswith(root), f"{operation} {key!r} is outside {root!r}"
        relative = key[len(root) :]
        assert relative.split("/", 1)[0] in ("memos", "terminals"), (operation, key)
        assert not key.startswith("/"), (operation, key)
        trimmed = key[:-1] if operation == "list" else key  # listing prefixes end in "/"
        assert all(segment not in ("", ".", "..") for segment in trimmed.split("/")), key
        if run_id is not None and relative.startswith("memos/"):
            assert relative.split("/")[1] == run_id, (operation, key, run_id)


# -- the store under fuzzing -------------------------------------------------------


async def exercise(
    backend: MemoBackend,
    prefix: Any,
    run_id: Any,
    step: Any,
    user_key: Any,
    value: Any,
    terminal_at: Any,
) -> int:
    """Drive every public entry point with the inputs; return how many were refused."""
    recorder = RecordingBackend(backend)
    refused = 0
    try:
        store = MemoStore(recorder, prefix)
    except (InvalidArgumentError, InvalidValueTypeError):
        assert not prefix_is_valid(prefix), f"valid prefix {prefix!r} refused"
        assert recorder.calls == []
        return 1
    assert prefix_is_valid(prefix), f"invalid prefix {prefix!r} accepted"
    normalised = store.prefix
    assert normalised == "/".join(s for s in prefix.split("/") if s)

    run_ok, step_ok = run_id_is_valid(run_id), in_range(step, layout.MAX_STEP_NUMBER)
    built, memo = await attempt(recorder, run_ok and step_ok, _async(store.new_memo, run_id, step))
    if built:
        key_ok, value_ok = user_key_is_valid(user_key), value_is_valid(value)
        written, _ = await attempt(recorder, key_ok and value_ok, lambda: memo.put(user_key, value))
        read, found = await attempt(recorder, key_ok, lambda: memo.get(user_key))
        if written:
            STORED.append(1)
            assert found == bytes(value)
            sha = hashlib.sha256(user_key.encode()).hexdigest()
            expected = "/".join(s for s in (normalised, "memos", run_id, str(step), sha) if s)
            assert ("put", expected) in recorder.calls
        refused += (not written) + (not read)
    else:
        refused += 1
    cleared, _ = await attempt(recorder, run_ok, lambda: store.clear_memos_for_run(run_id))
    ts_ok = in_range(terminal_at, layout.MAX_TERMINAL_AT_MS)  # any u64 is a cutoff
    # A marker no later than LATEST_TERMINAL_AT_MS: a later name would read as the other layout's.
    marker_ok = ts_ok and terminal_at <= layout.LATEST_TERMINAL_AT_MS
    marked, _ = await attempt(
        recorder, run_ok and marker_ok, lambda: store.write_terminal_marker(run_id, terminal_at)
    )
    swept, report = await attempt(recorder, ts_ok, lambda: store.sweep(terminal_at))
    if swept and marked:
        # A marker strictly below the cutoff expires; the one just written is not below it.
        assert run_id not in report.runs_cleared
    await attempt(recorder, ts_ok, lambda: store.list_expired_terminal_markers(terminal_at))
    refused += (not cleared) + (not marked) + (not swept)
    assert_contained(recorder, normalised, run_id if run_ok else None)
    return refused


STORED: list[int] = []  # examples whose value reached storage (figures)


def _async(fn: Callable[..., Any], *args: Any) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return fn(*args)

    return call


inputs = {
    "prefix": some_prefix,
    "run_id": some_run_id,
    "step": st.one_of(hostile_int, st.integers(0, layout.MAX_STEP_NUMBER)),
    "user_key": hostile_text,
    "value": hostile_value,
    "terminal_at": st.one_of(hostile_int, st.integers(0, layout.MAX_TERMINAL_AT_MS)),
}


def test_hostile_input_through_the_store_in_memory(reliability: ReliabilityFigures) -> None:
    @settings(max_examples=2000 * SCALE, deadline=None)
    @given(**inputs)
    def check(**drawn: Any) -> None:
        refused = asyncio.run(exercise(InMemoryBackend(), **drawn))
        reliability.add(SECTION, "store_inputs_tried")
        reliability.add(SECTION, "store_inputs_that_wrote_and_read_back", len(STORED))
        STORED.clear()
        reliability.add(SECTION, "store_calls_refused_before_io", refused)

    check()


def test_hostile_input_through_the_store_on_local_files(reliability: ReliabilityFigures) -> None:
    with tempfile.TemporaryDirectory() as sandbox:
        root = Path(sandbox) / "store"
        examples = iter(range(10**9))

        @settings(
            max_examples=600 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(**inputs)
        def check(**drawn: Any) -> None:
            # A directory per example: markers of earlier examples must not expire here.
            backend = LocalFileBackend(root / str(next(examples)), durable=False)
            refused = asyncio.run(exercise(backend, **drawn))
            reliability.add(SECTION, "store_inputs_tried_on_local_files")
            reliability.add(SECTION, "store_inputs_that_wrote_and_read_back", len(STORED))
            STORED.clear()
            reliability.add(SECTION, "store_calls_refused_before_io", refused)

        check()
        assert os.listdir(sandbox) in ([], ["store"]), "something was written beside the store"
        for directory, _, names in os.walk(root):
            for name in names:
                assert Path(directory, name).resolve().is_relative_to(root.resolve())


# -- stray objects under terminals/ ------------------------------------------------

marker_like = st.builds(
    lambda digits, separator, run: digits + separator + run,
    st.one_of(
        st.text(alphabet="0123456789+- \uff10\u0661", min_size=18, max_size=22),
        st.integers(0, 2**70).map(lambda n: f"{n:020d}"),
    ),
    st.sampled_from(["_", "-", "/", "", "__"]),
    st.one_of(hostile_text, st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)),
)


async def test_a_stray_name_is_logged_escaped_so_any_log_handler_can_write_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = InMemoryBackend()
    store = MemoStore(backend, "p")
    await backend.put("p/terminals/\ud800 not a marker\n", b"")
    with caplog.at_level("WARNING", logger="taquba_memo"):
        assert await store.list_terminal_markers() == []
    assert caplog.records
    for record in caplog.records:
        record.getMessage().encode("utf-8")  # a lone surrogate, unescaped, would raise here
        assert "\n" not in record.getMessage()  # nor forge a second log line


@settings(max_examples=800 * SCALE, deadline=None)
@given(names=st.lists(st.one_of(marker_like, hostile_text), max_size=6))
@example(names=["18446500000000000000_0"])  # an inverted (0.10) name, read by a 0.5 store
def test_stray_marker_names_never_raise_nor_clear_a_run_no_marker_names(
    names: list[str], reliability: ReliabilityFigures
) -> None:
    async def scenario() -> None:
        backend = InMemoryBackend()
        store = MemoStore(backend, "p")
        await store.new_memo("bystander", 0).put("k", b"kept")
        strays = {f"p/terminals/{name}" for name in names if name}
        for key in strays:
            await backend.put(key, b"")
        expected = {
            marker
            for name in names
            if name
            and (marker := layout.parse_terminal_marker_name(name)) is not None
            and "/" not in name
            # A 0.10 (inverted) name is the other layout's: this 0.5 store skips it, warning.
            and layout.detect_marker_layout(name) is not layout.Layout.V0_10
        }
        assert set(await store.list_terminal_markers()) == expected
        report = await store.sweep(layout.MAX_TERMINAL_AT_MS)
        assert sorted(report.runs_cleared) == sorted({m.run_id for m in expected})
        if "bystander" not in report.runs_cleared:
            assert await store.new_memo("bystander", 0).get("k") == b"kept"
        left = {key async for key in backend.list("p/terminals/")}
        # Only names that are a marker's canonical name are deleted by the sweep.
        canonical = {layout.terminal_marker_key("p", m.run_id, m.terminal_at_ms) for m in expected}
        assert left == strays - canonical

    for name in names:
        layout.parse_terminal_marker_name(name)  # never raises, whatever the string
    asyncio.run(scenario())
    reliability.add(SECTION, "stray_marker_names_tried", len(names))


@pytest.mark.parametrize("name", NASTY)
def test_the_marker_parser_refuses_every_nasty_name(name: str) -> None:
    assert layout.parse_terminal_marker_name(name) is None or name == "00000000000000000001_run"
