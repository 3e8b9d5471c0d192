"""The taquba-memo command, run through its installed console script, on a local store."""

from __future__ import annotations

import asyncio
import datetime
import os
import pty
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from taquba_memo import LocalFileBackend, TerminalMarker
from taquba_memo._layout import claim_key, memo_key
from taquba_memo.cli import _runs
from taquba_memo.sync import open_store

from ._cli_support import (
    SCRIPT,
    TIMEOUT_S,
    ExitCode,
    clean_env,
    install_stuck_adapter,
    run_cli,
)

FAR_FUTURE_MS = 2**62
CORE_SOURCE = Path(__file__).resolve().parents[2] / "packages" / "taquba-memo" / "src"


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A local store with two runs of entries and three terminal markers, under prefix 'agents'.

    alpha: step 0 has one 3-byte entry, step 1 two entries of 10 and 20 bytes; ended long ago.
    beta:  step 5 has one 1-byte entry; its marker lies in the far future.
    gone:  a marker from long ago and no entries left.
    """
    store_url = (tmp_path / "store").as_uri()
    with open_store(store_url, prefix="agents") as store:
        store.new_memo("alpha", 0).put("a", b"abc")
        store.new_memo("alpha", 1).put("a", b"x" * 10)
        store.new_memo("alpha", 1).put("b", b"y" * 20)
        store.new_memo("beta", 5).put("a", b"z")
        store.write_terminal_marker("alpha", 1_000)
        store.write_terminal_marker("gone", 2_000)
        store.write_terminal_marker("beta", FAR_FUTURE_MS)
    return store_url


def assert_recent(iso: str) -> None:
    """``iso`` is a UTC time of this test's writes (allowing for the file system's clock)."""
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert now - datetime.timedelta(minutes=10) <= moment <= now + datetime.timedelta(minutes=1)


def markers_in(url: str) -> list[TerminalMarker]:
    with open_store(url, prefix="agents") as store:
        return sorted(store.list_terminal_markers())


def entries_of(url: str, run_id: str, step: int, key: str) -> bytes | None:
    with open_store(url, prefix="agents") as store:
        return store.new_memo(run_id, step).get(key)


class TestRuns:
    def test_lists_runs_and_steps_with_entry_counts_and_a_summary(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "runs")
        assert result.code == ExitCode.OK, result.stderr
        lines = result.stdout.splitlines()
        # Local files list with their times, so each run shows its last write.
        assert lines[0].split() == ["RUN", "STEP", "ENTRIES", "LAST", "WRITE", "TERMINAL"]
        run, entries, last_write, terminal = lines[1].split()
        assert (run, entries, terminal) == ("alpha", "3", "1970-01-01T00:00:01.000Z")
        assert_recent(last_write)
        assert lines[2].split() == ["0", "1"]
        assert lines[3].split() == ["1", "2"]
        assert lines[-2].split() == ["gone", "0", "-", "1970-01-01T00:00:02.000Z"]
        assert lines[-1] == "3 runs, 3 steps, 4 entries"
        assert result.stderr == ""  # not a terminal: no progress

    def test_json_output_for_scripts(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "--json", "runs")
        assert result.code == ExitCode.OK, result.stderr
        document = result.json()
        assert [run["run_id"] for run in document["runs"]] == ["alpha", "beta", "gone"]
        alpha = document["runs"][0]
        assert alpha["steps"] == [
            {"step": 0, "entries": 1, "bytes": None},
            {"step": 1, "entries": 2, "bytes": None},
        ]
        assert (alpha["entries"], alpha["terminal_at_ms"]) == (3, 1_000)
        assert alpha["terminal_at"] == "1970-01-01T00:00:01.000Z"
        assert_recent(alpha["last_write_at"])
        assert document["runs"][2] == {
            "run_id": "gone",
            "steps": [],
            "entries": 0,
            "bytes": None,
            "claims": 0,
            "step_outputs": 0,
            "terminal_at_ms": 2_000,
            "terminal_at": "1970-01-01T00:00:02.000Z",
            "last_write_at": None,
        }
        assert document["totals"] == {
            "runs": 3,
            "steps": 3,
            "entries": 4,
            "bytes": None,
            "claims": 0,
            "step_outputs": 0,
            "unrecognized_keys": 0,
            "sizes_from": None,
        }

    def test_sizes_come_from_the_listing_on_request(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "--json", "runs", "--sizes")
        document = result.json()
        assert [step["bytes"] for step in document["runs"][0]["steps"]] == [3, 30]
        assert document["totals"]["bytes"] == 34
        assert document["totals"]["sizes_from"] == "listing"  # a stat per file, no read

    def test_sizes_in_text_output(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "runs", "--sizes", "alpha")
        assert result.stdout.splitlines()[-1] == "1 run, 2 steps, 3 entries, 33 B"

    def test_one_run_only(self, url: str) -> None:
        document = run_cli("--url", url, "--prefix", "agents", "--json", "runs", "beta").json()
        assert [run["run_id"] for run in document["runs"]] == ["beta"]
        assert document["runs"][0]["steps"] == [{"step": 5, "entries": 1, "bytes": None}]

    def test_global_options_also_work_after_the_command(self, url: str) -> None:
        result = run_cli("runs", "--json", "--url", url, "--prefix", "agents")
        assert result.json()["totals"]["entries"] == 4

    def test_url_and_prefix_default_to_the_environment(self, url: str) -> None:
        result = run_cli(
            "--json", "runs", env={"TAQUBA_MEMO_URL": url, "TAQUBA_MEMO_PREFIX": "agents"}
        )
        assert result.json()["totals"]["entries"] == 4

    def test_claims_are_counted_apart_from_entries(self, url: str) -> None:
        # A claim of get_or_compute (here: left by a worker that died mid-call)
        # is neither an entry nor an unrecognized key.
        entry = memo_key("agents", "alpha", 1, "a")
        LocalFileBackend(Path(url.removeprefix("file://"))).root.joinpath(
            *claim_key(entry, 1).split("/")
        ).write_bytes(b"{}")
        document = run_cli("--url", url, "--prefix", "agents", "--json", "runs").json()
        alpha = document["runs"][0]
        assert (alpha["entries"], alpha["claims"]) == (3, 1)
        assert document["totals"]["claims"] == 1
        assert document["totals"]["unrecognized_keys"] == 0
        text = run_cli("--url", url, "--prefix", "agents", "runs").stdout.splitlines()[-1]
        assert (
            text == "3 runs, 3 steps, 4 entries (1 claim of computations in progress or abandoned)"
        )

    @pytest.mark.parametrize("sizes", [[], ["--sizes"]], ids=["counts", "sizes"])
    def test_summary_only_prints_the_last_line_and_the_totals_alone(
        self, url: str, sizes: list[str]
    ) -> None:
        # A claim and a stray object too: every figure of the summary, counted as it streams.
        root = Path(url.removeprefix("file://"))
        entry = memo_key("agents", "alpha", 1, "a")
        root.joinpath(*claim_key(entry, 1).split("/")).write_bytes(b"{}")
        root.joinpath("agents", "memos", "beta", "stray").write_bytes(b"?")
        store = ["--url", url, "--prefix", "agents"]
        full = run_cli(*store, "runs", *sizes).stdout.splitlines()
        alone = run_cli(*store, "--summary-only", "runs", *sizes).stdout.splitlines()
        assert alone == full[-1:]
        assert "3 runs, 3 steps, 4 entries" in alone[0]
        document = run_cli(*store, "--json", "runs", *sizes).json()
        totals = run_cli(*store, "--json", "--summary-only", "runs", *sizes).json()
        assert totals == {"totals": document["totals"]}

    def test_another_prefix_is_another_store(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "elsewhere", "runs")
        assert result.stdout == "0 runs, 0 steps, 0 entries\n"


class TestMarkers:
    def test_lists_markers_oldest_first(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "markers")
        assert result.code == ExitCode.OK
        lines = result.stdout.splitlines()
        assert [line.split()[-1] for line in lines[:-1]] == ["alpha", "gone", "beta"]
        assert lines[0].split() == ["1970-01-01T00:00:01.000Z", "1000", "alpha"]
        assert lines[-1] == "3 markers"

    def test_one_runs_markers_as_json(self, url: str) -> None:
        document = run_cli("--url", url, "--prefix", "agents", "--json", "markers", "beta").json()
        assert document == {
            "markers": [{"run_id": "beta", "terminal_at_ms": FAR_FUTURE_MS, "terminal_at": None}],
            "count": 1,
        }


class TestClear:
    def test_deletes_every_entry_of_one_run_only(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "clear", "alpha")
        assert result.code == ExitCode.OK, result.stderr
        assert result.stdout == "run alpha: 3 entries deleted\n"
        assert entries_of(url, "alpha", 1, "a") is None
        assert entries_of(url, "beta", 5, "a") == b"z"
        assert TerminalMarker("alpha", 1_000) in markers_in(url)  # the sweep removes markers

    def test_json_output(self, url: str) -> None:
        document = run_cli("--url", url, "--prefix", "agents", "--json", "clear", "beta").json()
        assert document == {"run_id": "beta", "entries_deleted": 1, "entries_failed": 0}

    def test_a_bad_run_id_is_a_usage_error(self, url: str) -> None:
        result = run_cli("--url", url, "clear", "no/slashes")
        assert result.code == ExitCode.USAGE
        assert "run_id must be" in result.stderr


class TestSweep:
    def test_dry_run_lists_what_would_be_cleared_and_deletes_nothing(self, url: str) -> None:
        result = run_cli(
            "--url", url, "--prefix", "agents", "sweep", "--older-than", "7d", "--dry-run"
        )
        assert result.code == ExitCode.OK, result.stderr
        lines = result.stdout.splitlines()
        assert lines[:2] == ["would clear alpha", "would clear gone"]
        assert lines[-1].startswith("dry run: 2 runs with markers older than ")
        assert entries_of(url, "alpha", 0, "a") == b"abc"
        assert len(markers_in(url)) == 3

    def test_clears_expired_runs_and_their_markers(self, url: str) -> None:
        result = run_cli(
            "--url", url, "--prefix", "agents", "--json", "sweep", "--older-than", "7d"
        )
        assert result.code == ExitCode.OK, result.stderr
        document = result.json()
        assert document["runs_cleared"] == ["alpha", "gone"]
        assert document["entries_deleted"] == 3
        assert document["failures"] == []
        assert document["dry_run"] is False
        assert markers_in(url) == [TerminalMarker("beta", FAR_FUTURE_MS)]
        assert entries_of(url, "beta", 5, "a") == b"z"

    def test_text_summary(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", "1d12h")
        assert result.stdout.splitlines()[-1].endswith(": 3 entries deleted, 0 failed")

    def test_one_entry_is_counted_in_the_singular(self, tmp_path: Path) -> None:
        url = (tmp_path / "one").as_uri()
        with open_store(url, prefix="agents") as store:
            store.new_memo("solo", 0).put("a", b"x")
            store.write_terminal_marker("solo", 1_000)
        result = run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", "1d")
        assert result.stdout.splitlines()[-1].endswith(": 1 entry deleted, 0 failed")

    @pytest.mark.parametrize("duration", ["7", "d", "7x", "-1d", "1.5h", ""])
    def test_a_bad_duration_is_a_usage_error(self, url: str, duration: str) -> None:
        result = run_cli("--url", url, "sweep", f"--older-than={duration}")
        assert result.code == ExitCode.USAGE
        assert "invalid duration" in result.stderr

    def test_runs_that_fail_to_clear_give_exit_code_1_and_keep_their_markers(
        self, url: str, tmp_path: Path
    ) -> None:
        site = install_stuck_adapter(tmp_path / "site")
        faulty_url = url.replace("file://", "stuck://", 1)
        result = run_cli(
            "--url",
            faulty_url,
            "--prefix",
            "agents",
            "--json",
            "sweep",
            "--older-than",
            "7d",
            env={"PYTHONPATH": str(site)},
        )
        assert result.code == ExitCode.INCOMPLETE, result.stderr
        document = result.json()
        assert document["runs_cleared"] == ["gone"]
        assert [f["run_id"] for f in document["failures"]] == ["alpha"]
        assert TerminalMarker("alpha", 1_000) in markers_in(url)


class TestErrors:
    def test_a_missing_url_is_a_usage_error(self) -> None:
        result = run_cli("runs")
        assert result.code == ExitCode.USAGE
        assert "--url is required (or set TAQUBA_MEMO_URL)" in result.stderr

    @pytest.mark.parametrize("bad", ["no-scheme", "ftp://host/x", "file://server/share"])
    def test_bad_urls_have_their_own_exit_code(self, bad: str) -> None:
        result = run_cli("--url", bad, "runs")
        assert result.code == ExitCode.BAD_URL
        assert result.stderr.startswith("taquba-memo: error: ")

    def test_a_missing_adapter_package_is_named(self) -> None:
        result = run_cli("--url", "s3+nothere://bucket", "runs")
        assert result.code == ExitCode.ADAPTER_MISSING
        assert "pip install taquba-memo-nothere" in result.stderr

    def test_errors_are_also_json_with_json(self) -> None:
        result = run_cli("--json", "--url", "ftp://x", "markers")
        assert result.json()["error"]["type"] == "InvalidURLError"
        assert result.json()["exit_code"] == ExitCode.BAD_URL

    def test_with_only_the_core_installed_an_s3_url_says_which_package_to_install(
        self,
    ) -> None:
        # -S: no site-packages, so no adapter is installed; the core is stdlib-only.
        completed = subprocess.run(
            [sys.executable, "-S", "-m", "taquba_memo", "--url", "s3://bucket/base", "runs"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=clean_env({"PYTHONPATH": str(CORE_SOURCE)}),
            timeout=TIMEOUT_S,
            check=False,
        )
        assert completed.returncode == ExitCode.ADAPTER_MISSING, completed.stderr
        assert "pip install taquba-memo-obstore" in completed.stderr


class TestEntryPoints:
    def test_python_dash_m_runs_the_same_command(self, url: str) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "taquba_memo", "--url", url, "--prefix", "agents", "runs"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
            timeout=TIMEOUT_S,
            check=False,
        )
        assert completed.returncode == ExitCode.OK
        assert completed.stdout == run_cli("--url", url, "--prefix", "agents", "runs").stdout

    def test_version(self) -> None:
        assert run_cli("--version").stdout.startswith("taquba-memo ")


def run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run the script with stderr on a pseudo-terminal; return (code, stdout, terminal output)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=clean_env(),
        text=False,
    )
    os.close(terminal)
    shown = bytearray()
    for _ in range(100_000):  # bounded: ends when the child closes the terminal
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.stdout is not None
    stdout = process.stdout.read().decode()
    process.stdout.close()
    code = process.wait(TIMEOUT_S)
    return code, stdout, shown.decode(errors="replace")


class TestProgress:
    def test_long_operations_draw_progress_on_a_terminal(self, url: str) -> None:
        code, stdout, terminal = run_on_a_terminal(
            "--url", url, "--prefix", "agents", "runs", "--sizes"
        )
        assert code == ExitCode.OK
        assert "\rlisting entries 4 entries" in terminal
        assert "\r" not in stdout  # results stay clean

    def test_a_sweep_counts_runs_with_a_rate_while_it_lists_its_markers_once(
        self, url: str
    ) -> None:
        code, _stdout, terminal = run_on_a_terminal(
            "--url", url, "--prefix", "agents", "sweep", "--older-than", "7d"
        )
        assert code == ExitCode.OK
        final = [line for line in terminal.split("\r") if line.startswith("sweeping")][-1]
        assert re.match(
            r"sweeping 2 runs cleared, [\d.,]+/s, 0:\d\d elapsed, "
            r"3 markers listed, 5 keys deleted",
            final,
        ), final

    def test_json_and_no_progress_turn_it_off_even_on_a_terminal(self, url: str) -> None:
        for flag in ("--json", "--no-progress"):
            code, _stdout, terminal = run_on_a_terminal(
                "--url", url, "--prefix", "agents", flag, "runs"
            )
            assert code == ExitCode.OK
            assert terminal == ""


class TestStreamedTotals:
    """``runs --summary-only`` counts what the per-run tally counts. Over an ordered listing it
    holds no run's id: steps are counted by their change, and entries and step outputs are
    merged by run; only terminal markers' runs (listed by time) wait for the merge to meet
    them. Over an unordered listing it keeps the steps and runs it saw."""

    # Entries of a (two steps), a-b and b; step outputs of a-b, b and c; markers of a, c and d.
    # "a-b" lists before "a": a run's keys are "<run>/...", and "-" sorts before "/".
    ENTRIES = (("a-b", 0), ("a", 0), ("a", 0), ("a", 1), ("b", 2))
    STEP_OUTPUTS = ("a-b", "b", "b", "c")
    MARKERS = ("c", "a", "d")

    @staticmethod
    async def listed(run_ids: list[str]) -> AsyncIterator[str]:
        for run_id in run_ids:
            yield run_id

    @pytest.mark.parametrize("ordered", [True, False])
    def test_counts_agree_with_the_per_run_tally(self, ordered: bool) -> None:
        entries = list(self.ENTRIES) if ordered else [*self.ENTRIES[3:], *self.ENTRIES[:3]]
        outputs = list(self.STEP_OUTPUTS) if ordered else list(reversed(self.STEP_OUTPUTS))

        async def tally(kind: type[_runs._PerRun | _runs._Totals]) -> _runs._Counts:
            tally = _runs._PerRun() if kind is _runs._PerRun else _runs._Totals(ordered)
            for run_id in self.MARKERS:
                tally.terminal(run_id, 1_000)
            for run_id, step in entries:
                tally.step(run_id, step).entries += 1
            for run_id in outputs:
                tally.step_output(run_id)
            entry_runs = self.listed([run_id for run_id, _step in entries])
            await tally.count_runs(entry_runs, self.listed(outputs))
            return tally.counts()

        per_run, totals = asyncio.run(tally(_runs._PerRun)), asyncio.run(tally(_runs._Totals))
        assert totals == per_run
        assert (totals.runs, totals.steps, totals.step_outputs) == (5, 4, 4)

    def test_the_command_counts_each_run_once_across_entries_step_outputs_and_markers(
        self, tmp_path: Path
    ) -> None:
        async def plant() -> None:
            backend = LocalFileBackend(tmp_path)
            for number, (run_id, step) in enumerate(self.ENTRIES):
                await backend.put(memo_key("agents", run_id, step, f"k{number}"), b"v")
            for number, run_id in enumerate(self.STEP_OUTPUTS):
                await backend.put(f"agents/step-outputs/{run_id}/0/{number:064x}", b"o")
            for run_id in self.MARKERS:
                await backend.put(f"agents/terminals/{2**64 - 1 - 1_000:020}_{run_id}", b"")

        asyncio.run(plant())
        store = ["--url", tmp_path.as_uri(), "--prefix", "agents", "--layout", "0.10", "--json"]
        document = run_cli(*store, "runs").json()
        assert [run["run_id"] for run in document["runs"]] == ["a", "a-b", "b", "c", "d"]
        totals = run_cli(*store, "--summary-only", "runs").json()
        assert totals == {"totals": document["totals"]}
        assert (totals["totals"]["runs"], totals["totals"]["step_outputs"]) == (5, 4)
