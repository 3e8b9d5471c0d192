"""OpenTelemetry on the GCS adapter (fake-gcs-server): spans name the bucket, errors by kind."""

from __future__ import annotations

import pytest
from google.cloud import storage
from taquba_memo import ContainerNotFoundError, MemoStore
from taquba_memo_gcs import GCSBackend

from ...otel_support import Telemetry, captured_telemetry, total

assert captured_telemetry  # the fixture, found by pytest under the name "otel"


async def test_get_or_compute_on_gcs_records_a_miss_then_a_hit(
    gcs_backend: GCSBackend, otel: Telemetry
) -> None:
    store = MemoStore(gcs_backend, "otel")
    memo = store.new_memo("run-1", 2)
    assert await memo.get_or_compute("k", lambda: b"paid") == b"paid"
    assert await memo.get_or_compute("k", lambda: b"again") == b"paid"

    miss, hit = otel.spans("taquba_memo.get_or_compute")
    for span, outcome in ((miss, "miss"), (hit, "hit")):
        attributes = span.attributes or {}
        assert attributes["taquba_memo.outcome"] == outcome
        assert attributes["taquba_memo.backend"] == "gcs"
        assert attributes["taquba_memo.bucket"] == gcs_backend.bucket_name
        assert attributes["taquba_memo.run_id"] == "run-1"
    points = otel.points()
    assert total(points, "taquba_memo.lookups", taquba_memo__backend="gcs") == 2
    assert total(points, "taquba_memo.compute.duration", taquba_memo__backend="gcs") == 1
    assert total(points, "taquba_memo.bytes_written", taquba_memo__backend="gcs") == 4


async def test_a_missing_bucket_counts_as_a_not_found_backend_error(
    gcs_client: storage.Client, otel: Telemetry
) -> None:
    async with GCSBackend(gcs_client, "no-such-bucket-telemetry") as backend:
        store = MemoStore(backend, "otel")
        with pytest.raises(ContainerNotFoundError):
            await store.new_memo("run-1", 0).put("k", b"v")
        with pytest.raises(ContainerNotFoundError):
            await store.clear_memos_for_run("run-1")
    points = otel.points()
    assert total(points, "taquba_memo.backend.errors", error__kind="not_found") == 2
    assert (
        total(
            points,
            "taquba_memo.backend.errors",
            error__kind="not_found",
            taquba_memo__operation="put",
        )
        == 1
    )
    (put,) = otel.spans("taquba_memo.put")
    assert (put.attributes or {})["error.type"] == "ContainerNotFoundError"
    assert store.stats.backend_errors == 2
