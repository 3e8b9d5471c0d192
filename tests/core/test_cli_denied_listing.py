"""A denied listing is an access error: every command exits 5 and names the permission.

A sweep used to record a denied listing of a run's entries as one failed run
after another and exit 1 ("some deletes failed"), sending the operator after
the wrong problem. A denial fails every later listing alike, so the command
stops at the first one, keeps every marker, and exits 5.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._cli_support import (
    ExitCode,
    install_local_files_adapter,
    local_store_of_ended_runs,
    run_cli,
)
from .test_cli_operator import RUNS, runs_left

# Local files, as a client allowed to read terminal markers but to list nothing below memos/.
MEMOS_UNLISTABLE_ADAPTER = """
from taquba_memo import AccessDeniedError, LocalFileBackend

class MemosUnlistableBackend(LocalFileBackend):
    async def list(self, prefix):
        if "memos/" in prefix:
            raise AccessDeniedError(f"403 AccessDenied listing {prefix}")
        async for key in super().list(prefix):
            yield key

    async def list_with_metadata(self, prefix):
        if "memos/" in prefix:
            raise AccessDeniedError(f"403 AccessDenied listing {prefix}")
        async for item in super().list_with_metadata(prefix):
            yield item
"""
# Local files, as a client allowed to list nothing at all.
UNLISTABLE_ADAPTER = """
from taquba_memo import AccessDeniedError, LocalFileBackend

class UnlistableBackend(LocalFileBackend):
    async def list(self, prefix):
        raise AccessDeniedError(f"403 AccessDenied listing {prefix}")
        yield

    async def list_with_metadata(self, prefix):
        raise AccessDeniedError(f"403 AccessDenied listing {prefix}")
        yield
"""

SWEEP = ("sweep", "--older-than", "7d")


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A local store, prefix 'agents': 20 runs (run-00 ...) of one entry, all ended long ago."""
    return local_store_of_ended_runs(tmp_path / "store", RUNS, [("k", b"v")])


def run_denied(url: str, tmp_path: Path, scheme: str, source: str, *argv: str) -> list[object]:
    """Run ``argv`` through the ``scheme://`` adapter, in text and in JSON; return the JSON."""
    site = tmp_path / f"site-{scheme}"
    if not site.exists():
        install_local_files_adapter(site, scheme, source)
    documents: list[object] = []
    for json_mode in (False, True):
        result = run_cli(
            *(["--json"] if json_mode else []),
            "--url", url.replace("file://", f"{scheme}://", 1), "--prefix", "agents", *argv,
            env={"PYTHONPATH": str(site)},
        )  # fmt: skip
        assert result.code == ExitCode.ACCESS_DENIED, (result.code, result.stdout, result.stderr)
        assert "403 AccessDenied listing" in result.stderr
        if json_mode:
            documents.append(result.json())
    return documents


@pytest.mark.parametrize("lease", [[], ["--no-lease"]], ids=["leased", "no-lease"])
def test_a_sweep_denied_listing_a_run_exits_5_naming_the_list_permission(
    url: str, tmp_path: Path, lease: list[str]
) -> None:
    (document,) = run_denied(url, tmp_path, "memosdenied", MEMOS_UNLISTABLE_ADAPTER, *SWEEP, *lease)
    assert isinstance(document, dict)
    assert document["exit_code"] == ExitCode.ACCESS_DENIED
    assert document["error"]["type"] == "AccessDeniedError"
    assert "s3:ListBucket" in document["error"]["message"]
    assert document["runs_cleared_count"] == 0
    assert runs_left(url) == ({f"run-{n:02}" for n in range(RUNS)},) * 2


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["runs", "--sizes"],
        ["markers"],
        ["clear", "run-00"],
        [*SWEEP],
        [*SWEEP, "--no-lease"],
    ],
    ids=" ".join,
)
def test_every_command_denied_every_listing_exits_5(
    url: str, tmp_path: Path, argv: list[str]
) -> None:
    (document,) = run_denied(url, tmp_path, "unlistable", UNLISTABLE_ADAPTER, *argv)
    assert isinstance(document, dict)
    assert document["exit_code"] == ExitCode.ACCESS_DENIED
    assert document["error"]["type"] == "AccessDeniedError"
    with_entries, with_markers = runs_left(url)
    assert len(with_entries) == len(with_markers) == RUNS
