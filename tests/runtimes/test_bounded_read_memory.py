"""A store with max_value_bytes never holds an oversized entry in memory, on each adapter.

An entry of 256 MiB is written below a prefix; a fresh process reads it
through ``MemoStore(backend, max_value_bytes=1024)``: ``Memo.get`` raises
``EntryTooLargeError`` and ``get_or_compute`` recomputes and replaces it,
each with its peak resident set size (``VmHWM``) rising by far less than the
entry. A read that takes the whole object first rises by more than 256 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taquba_memo import MemoBackend, MemoStore
from taquba_memo import _layout as layout

from .backend_specs import build_backend, encode_spec
from .conftest import backend_spec_for

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
ENTRY_BYTES = 256 * 1024 * 1024
BOUND = 1024
PEAK_GROWTH_LIMIT = 32 * 1024 * 1024
PREFIX = "bounded"

ADAPTERS = ["obstore-s3", "minio", "gcs", "azure", "obstore-gcs", "obstore-azure", "local"]


@pytest.fixture(params=ADAPTERS)
def big_entry_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A backend's spec, with a 256 MiB entry ``big`` of run-1 step 0 below PREFIX."""
    with contextlib.ExitStack() as cleanup:
        spec = backend_spec_for(request.param, request, tmp_path, cleanup)
        if spec["name"] == "local":
            # Written as a file directly: the store's layout below the backend's root.
            path = Path(spec["root"], layout.memo_key(PREFIX, "run-1", 0, "big"))
            path.parent.mkdir(parents=True)
            with path.open("wb") as file:
                for _ in range(ENTRY_BYTES // (1 << 20)):
                    file.write(b"x" * (1 << 20))
        else:
            asyncio.run(_put_big(build_backend(spec)))
        yield spec


async def _put_big(writer: MemoBackend) -> None:
    async with MemoStore(writer, PREFIX) as store:
        await store.new_memo("run-1", 0).put("big", b"x" * ENTRY_BYTES)


def test_an_oversized_entry_is_refused_without_being_held_in_memory(
    big_entry_spec: dict[str, Any],
) -> None:
    argv = [sys.executable, "-m", "tests.runtimes.bounded_read_child"]
    child = subprocess.run(
        [*argv, encode_spec(big_entry_spec), PREFIX, str(BOUND)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.splitlines()[-1])
    print(big_entry_spec["name"], report)
    assert report["reads_bounded"], "every shipped backend offers get_at_most"
    assert report["get"]["outcome"] == "raised EntryTooLargeError", report
    assert report["get_or_compute"]["outcome"] == "returned 10 bytes", report
    assert report["after"] == "recomputed", "the oversized entry was replaced"
    assert report["get"]["peak_growth"] < PEAK_GROWTH_LIMIT, report
    assert report["get_or_compute"]["peak_growth"] < PEAK_GROWTH_LIMIT, report
