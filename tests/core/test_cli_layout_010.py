"""The command line on a bucket of taquba-workflow 0.6.0 to 0.10.0: real dates, expired runs found.

The local store is planted by the test with files named as the crate's
format strings name them (``{u64::MAX - terminal_at_ms:020}_{run_id}``
markers, ``step-outputs/{run_id}/...``); no layout is given unless a test
says so: the command detects it from the marker names.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from taquba_memo import LocalFileBackend

from ._cli_support import ExitCode, run_cli

U64_MAX = 2**64 - 1
YEAR_AGO_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
FAR_AHEAD_MS = 4_000_000_000_000  # 2096


def plant(root: Path, markers: dict[str, str], runs: dict[str, int | None]) -> str:
    """Runs with two memo entries and three step outputs each; markers in the named layout."""

    async def write() -> None:
        backend = LocalFileBackend(root)
        for run_id, at in runs.items():
            for step in range(2):
                digest = hashlib.sha256(f"k{step}".encode()).hexdigest()
                await backend.put(f"agents/memos/{run_id}/{step}/{digest}", b"v")
            for step in range(3):
                digest = hashlib.sha256(f"payload{step}".encode()).hexdigest()
                await backend.put(f"agents/step-outputs/{run_id}/{step}/{digest}", b"o")
            if at is not None:
                field = U64_MAX - at if markers[run_id] == "0.10" else at
                await backend.put(f"agents/terminals/{field:020}_{run_id}", b"")
        await backend.aclose()

    asyncio.run(write())
    return root.as_uri()


def test_markers_shows_the_real_dates_of_010_markers(tmp_path: Path) -> None:
    url = plant(tmp_path, {"old": "0.10", "new": "0.10"}, {"old": YEAR_AGO_MS, "new": FAR_AHEAD_MS})
    result = run_cli("--url", url, "--prefix", "agents", "--json", "markers")
    assert result.code == ExitCode.OK, result.stderr
    assert [(m["run_id"], m["terminal_at_ms"]) for m in result.json()["markers"]] == [
        ("old", YEAR_AGO_MS),
        ("new", FAR_AHEAD_MS),
    ]
    assert result.json()["markers"][0]["terminal_at"].startswith("2023-11-14T22:13:20")


def test_sweep_finds_and_clears_the_expired_010_runs(tmp_path: Path) -> None:
    url = plant(tmp_path, {"old": "0.10", "new": "0.10"}, {"old": YEAR_AGO_MS, "new": FAR_AHEAD_MS})
    dry = run_cli("--url", url, "--prefix", "agents", "--json", "sweep", "--older-than", "1d",
                  "--dry-run")  # fmt: skip
    assert dry.code == ExitCode.OK, dry.stderr
    assert dry.json()["runs_cleared"] == ["old"]
    swept = run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", "1d", "--no-lease")
    assert swept.code == ExitCode.OK, swept.stderr
    assert not (tmp_path / "agents" / "memos" / "old").exists()
    assert not (tmp_path / "agents" / "step-outputs" / "old").exists()
    assert len(list((tmp_path / "agents" / "step-outputs" / "new").rglob("*"))) == 3 + 3


def test_runs_counts_step_outputs_apart_from_memo_entries(tmp_path: Path) -> None:
    url = plant(tmp_path, {"old": "0.10"}, {"old": YEAR_AGO_MS, "running": None})
    result = run_cli("--url", url, "--prefix", "agents", "--json", "runs")
    assert result.code == ExitCode.OK, result.stderr
    runs = {run["run_id"]: run for run in result.json()["runs"]}
    assert (runs["old"]["entries"], runs["old"]["step_outputs"]) == (2, 3)
    assert runs["old"]["terminal_at_ms"] == YEAR_AGO_MS
    assert result.json()["totals"]["step_outputs"] == 6


def test_a_prefix_with_markers_of_both_layouts_is_refused_naming_layout(tmp_path: Path) -> None:
    url = plant(tmp_path, {"a": "0.5", "b": "0.10"}, {"a": YEAR_AGO_MS, "b": YEAR_AGO_MS})
    result = run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", "1d")
    assert result.code == ExitCode.USAGE
    assert "--layout" in result.stderr
    assert (tmp_path / "agents" / "memos" / "a").exists()


def test_layout_chosen_on_a_mixed_prefix_reads_that_layouts_markers(tmp_path: Path) -> None:
    url = plant(tmp_path, {"a": "0.5", "b": "0.10"}, {"a": YEAR_AGO_MS, "b": YEAR_AGO_MS})
    for chosen, run_id in [("0.5", "a"), ("0.10", "b")]:
        result = run_cli("--url", url, "--prefix", "agents", "--json", "markers",
                         env={"TAQUBA_MEMO_LAYOUT": chosen})  # fmt: skip
        assert result.code == ExitCode.OK, result.stderr
        assert [m["run_id"] for m in result.json()["markers"]] == [run_id]
        assert "layout" in result.stderr  # the other layout's marker is named, not misread


def test_an_unknown_layout_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("--url", tmp_path.as_uri(), "--layout", "0.6", "markers")
    assert result.code == ExitCode.USAGE
    assert "0.10" in result.stderr
