"""OpenTelemetry on the embedded backends: the spans and metrics each memo operation records.

The application sets global SDK providers (an in-memory span exporter and
metric reader) and does nothing else; the library finds them. Run ids and
steps are span attributes and never metric attributes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from taquba_memo import (
    InMemoryBackend,
    JSONCodec,
    LocalFileBackend,
    MemoBackend,
    MemoStore,
    set_otel_enabled,
)
from taquba_memo import sync as memo_sync

from ..otel_support import Telemetry, captured_telemetry, total

assert captured_telemetry  # the fixture, found by pytest under the name "otel"

RUN = "run-1"
STEP = 4


pytestmark = pytest.mark.store(prefix="otel")


@pytest.fixture(params=["InMemoryBackend", "LocalFileBackend"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> MemoBackend:
    """Each embedded backend, under the ``store`` fixture."""
    if request.param == "InMemoryBackend":
        return InMemoryBackend()
    return LocalFileBackend(tmp_path)


async def test_get_or_compute_records_a_miss_then_a_hit(store: MemoStore, otel: Telemetry) -> None:
    memo = store.new_memo(RUN, STEP)
    kind = type(store.backend).__name__
    assert await memo.get_or_compute("k", lambda: b"paid") == b"paid"
    assert await memo.get_or_compute("k", lambda: b"paid again") == b"paid"

    miss, hit = otel.spans("taquba_memo.get_or_compute")
    assert miss.attributes is not None
    assert hit.attributes is not None
    assert miss.attributes["taquba_memo.outcome"] == "miss"
    assert miss.attributes["taquba_memo.computed"] is True
    assert miss.attributes["taquba_memo.value_size"] == 4
    assert hit.attributes["taquba_memo.outcome"] == "hit"
    assert "taquba_memo.computed" not in hit.attributes
    for attributes in (miss.attributes, hit.attributes):
        assert attributes["taquba_memo.backend"] == kind
        assert attributes["taquba_memo.run_id"] == RUN
        assert attributes["taquba_memo.step"] == STEP

    points = otel.points()
    assert total(points, "taquba_memo.lookups", taquba_memo__outcome="miss") == 1
    assert total(points, "taquba_memo.lookups", taquba_memo__outcome="hit") == 1
    assert total(points, "taquba_memo.compute.duration", taquba_memo__backend=kind) == 1
    assert total(points, "taquba_memo.bytes_written") == 4
    assert total(points, "taquba_memo.bytes_read") == 4
    for _name, attributes, _point in points:
        assert "taquba_memo.run_id" not in attributes
        assert "taquba_memo.step" not in attributes


async def test_a_value_that_does_not_decode_is_a_decode_error_miss(
    store: MemoStore, otel: Telemetry
) -> None:
    memo = store.new_memo(RUN, STEP)
    await memo.put("k", b"\xff not json")
    assert await memo.get_or_compute("k", lambda: {"a": 1}, codec=JSONCodec()) == {"a": 1}

    (span,) = otel.spans("taquba_memo.get_or_compute")
    assert span.attributes is not None
    assert span.attributes["taquba_memo.outcome"] == "decode_error"
    assert span.attributes["taquba_memo.computed"] is True
    points = otel.points()
    assert total(points, "taquba_memo.lookups", taquba_memo__outcome="decode_error") == 1
    assert store.stats.decode_errors == 1


async def test_a_single_flight_follower_is_recorded_as_shared(
    store: MemoStore, otel: Telemetry
) -> None:
    memo = store.new_memo(RUN, STEP)
    release = asyncio.Event()

    async def slow() -> bytes:
        await release.wait()
        return b"once"

    leader = asyncio.ensure_future(memo.get_or_compute("k", slow))
    await asyncio.sleep(0)
    follower = asyncio.ensure_future(memo.get_or_compute("k", slow))
    await asyncio.sleep(0)
    release.set()
    assert list(await asyncio.wait_for(asyncio.gather(leader, follower), 10)) == [b"once"] * 2

    outcomes = sorted(
        str((span.attributes or {})["taquba_memo.outcome"])
        for span in otel.spans("taquba_memo.get_or_compute")
    )
    assert outcomes == ["miss", "shared"]
    assert total(otel.points(), "taquba_memo.lookups", taquba_memo__outcome="shared") == 1
    assert store.stats.computes == 1


async def test_a_lost_first_writer_race_is_recorded(store: MemoStore, otel: Telemetry) -> None:
    memo = store.new_memo(RUN, STEP)

    async def paid_while_another_worker_stores() -> bytes:
        await store.new_memo(RUN, STEP).put("k", b"the other worker's")
        return b"ours"

    value = await memo.get_or_compute("k", paid_while_another_worker_stores, if_absent=True)
    assert value == b"the other worker's"
    (span,) = otel.spans("taquba_memo.get_or_compute")
    assert span.attributes is not None
    assert span.attributes["taquba_memo.if_absent_lost"] is True
    assert store.stats.if_absent_lost == 1


async def test_get_and_put_have_spans_with_sizes_and_outcomes(
    store: MemoStore, otel: Telemetry
) -> None:
    memo = store.new_memo(RUN, STEP)
    assert await memo.get("k") is None
    await memo.put("k", b"12345")
    assert await memo.get("k") == b"12345"

    absent, found = otel.spans("taquba_memo.get")
    (put,) = otel.spans("taquba_memo.put")
    assert (absent.attributes or {})["taquba_memo.outcome"] == "miss"
    assert (found.attributes or {})["taquba_memo.outcome"] == "hit"
    assert (found.attributes or {})["taquba_memo.value_size"] == 5
    assert (put.attributes or {})["taquba_memo.value_size"] == 5
    assert (put.attributes or {})["taquba_memo.run_id"] == RUN
    points = otel.points()
    assert total(points, "taquba_memo.bytes_written") == 5
    assert total(points, "taquba_memo.lookups") == 2


async def test_a_run_clear_has_a_span_and_counts_its_deletes(
    store: MemoStore, otel: Telemetry
) -> None:
    for step in range(3):
        await store.new_memo(RUN, step).put("k", b"v")
    assert await store.clear_memos_for_run(RUN) == 3

    (span,) = otel.spans("taquba_memo.clear_run")
    assert (span.attributes or {})["taquba_memo.entries_deleted"] == 3
    assert (span.attributes or {})["taquba_memo.run_id"] == RUN
    points = otel.points()
    assert total(points, "taquba_memo.entries_deleted", taquba_memo__operation="clear_run") == 3
    assert total(points, "taquba_memo.runs_cleared", taquba_memo__operation="clear_run") == 1


async def test_a_sweep_has_one_span_with_a_span_per_run_inside(
    store: MemoStore, otel: Telemetry
) -> None:
    for run_id in ("old-a", "old-b"):
        await store.new_memo(run_id, 0).put("k", b"v")
        await store.new_memo(run_id, 1).put("k", b"v")
        await store.write_terminal_marker(run_id, 1_000)
    await store.write_terminal_marker("young", 9_000)
    report = await store.sweep(cutoff_ms=5_000)
    assert report.runs_cleared_count == 2

    (sweep,) = otel.spans("taquba_memo.sweep")
    per_run = otel.spans("taquba_memo.sweep.run")
    assert sweep.attributes is not None
    assert sweep.attributes["taquba_memo.runs_cleared"] == 2
    assert sweep.attributes["taquba_memo.entries_deleted"] == 4
    assert sweep.attributes["taquba_memo.sweep.failures"] == 0
    assert sorted(str((run.attributes or {})["taquba_memo.run_id"]) for run in per_run) == [
        "old-a",
        "old-b",
    ]
    assert sweep.context is not None
    for run in per_run:
        assert run.parent is not None
        assert run.parent.span_id == sweep.context.span_id
        assert (run.attributes or {})["taquba_memo.entries_deleted"] == 2
    points = otel.points()
    assert total(points, "taquba_memo.runs_cleared", taquba_memo__operation="sweep") == 2
    assert total(points, "taquba_memo.entries_deleted", taquba_memo__operation="sweep") == 4


async def test_marker_operations_have_spans(store: MemoStore, otel: Telemetry) -> None:
    await store.write_terminal_marker(RUN, 1_000)
    (marker,) = await store.list_terminal_markers()
    await store.delete_terminal_marker(marker)

    (written,) = otel.spans("taquba_memo.write_terminal_marker")
    (deleted,) = otel.spans("taquba_memo.delete_terminal_marker")
    assert (written.attributes or {})["taquba_memo.run_id"] == RUN
    assert (deleted.attributes or {})["taquba_memo.run_id"] == RUN


async def test_memo_spans_nest_under_the_callers_span(store: MemoStore, otel: Telemetry) -> None:
    tracer = trace.get_tracer("the-application")
    with tracer.start_as_current_span("agent step") as step:
        await store.new_memo(RUN, STEP).get_or_compute("k", lambda: b"v")
    (memo_span,) = otel.spans("taquba_memo.get_or_compute")
    assert memo_span.parent is not None
    assert memo_span.parent.span_id == step.get_span_context().span_id


async def test_a_failing_fn_marks_the_span_as_an_error(store: MemoStore, otel: Telemetry) -> None:
    def broken() -> bytes:
        raise RuntimeError("the LLM is down")

    with pytest.raises(RuntimeError):
        await store.new_memo(RUN, STEP).get_or_compute("k", broken)
    (span,) = otel.spans("taquba_memo.get_or_compute")
    assert span.status.status_code == trace.StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert store.stats.failures == 1
    assert store.stats.computes == 1


async def test_set_otel_enabled_false_records_nothing(store: MemoStore, otel: Telemetry) -> None:
    set_otel_enabled(False)
    await store.new_memo(RUN, STEP).get_or_compute("k", lambda: b"v")
    assert otel.spans() == []
    assert otel.points() == []
    assert store.stats.computes == 1  # the stats are kept either way


def test_the_environment_switch_turns_opentelemetry_off(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import asyncio\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter\n"
        "from taquba_memo import InMemoryBackend, MemoStore\n"
        "exporter = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "trace.set_tracer_provider(provider)\n"
        "memo = MemoStore(InMemoryBackend()).new_memo('r', 0)\n"
        "asyncio.run(memo.get_or_compute('k', lambda: b'v'))\n"
        "print(len(exporter.get_finished_spans()))\n"
    )
    counts = {}
    for switch in ("on", "off"):
        env = {**os.environ, "TAQUBA_MEMO_OTEL": switch}
        shown = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        counts[switch] = int(shown.stdout)
    assert counts == {"on": 1, "off": 0}


def test_importing_the_library_does_not_import_opentelemetry() -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, taquba_memo; print('opentelemetry' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.strip() == "False", shown.stderr


EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "otel_console.py"
OBSERVABILITY_PAGE = EXAMPLE.parents[1] / "observability.md"


def test_the_console_example_prints_memo_spans_and_metrics() -> None:
    example = EXAMPLE
    shown = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count('"name": "taquba_memo.get_or_compute"') == 2
    assert '"taquba_memo.outcome": "miss"' in shown.stdout
    assert '"taquba_memo.outcome": "hit"' in shown.stdout
    assert '"name": "taquba_memo.lookups"' in shown.stdout
    assert "hits=1, misses=1" in shown.stdout


def test_docs_observability_shows_the_console_example_as_it_runs() -> None:
    """The page's code block is the example file's code, past its docstring and future import."""
    page = OBSERVABILITY_PAGE.read_text()
    shown = page.split("\n```python\n", 1)[1].split("\n```\n", 1)[0]
    code = EXAMPLE.read_text().split("from __future__ import annotations\n", 1)[1]
    assert shown.strip() == code.strip()


def test_sync_store_spans_nest_under_the_calling_threads_span(
    tmp_path: Path, otel: Telemetry
) -> None:
    tracer = trace.get_tracer("the-application")
    with (
        memo_sync.MemoStore(LocalFileBackend(tmp_path)) as store,
        tracer.start_as_current_span("celery task") as task,
    ):
        store.new_memo(RUN, STEP).get_or_compute("k", lambda: b"v")
    (memo_span,) = otel.spans("taquba_memo.get_or_compute")
    assert memo_span.parent is not None
    assert memo_span.parent.span_id == task.get_span_context().span_id
