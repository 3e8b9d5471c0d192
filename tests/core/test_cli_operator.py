"""The taquba-memo command as an operator meets it: mistakes are loud, signals end in a summary."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import textwrap
import time
import urllib.parse
from pathlib import Path

import pytest
from taquba_memo import LocalFileBackend
from taquba_memo._layout import sweep_lease_key, sweep_leases_prefix
from taquba_memo.sync import open_store

from ._cli_support import (
    SCRIPT,
    TIMEOUT_S,
    ExitCode,
    clean_env,
    install_local_files_adapter,
    local_store_of_ended_runs,
    run_cli,
)

RUNS = 20
ENTRIES_PER_RUN = 2

# Local files, as a sweeper allowed to list and read but not to delete sees them.
READ_ONLY_ADAPTER = """
from taquba_memo import AccessDeniedError, DeleteManyError, LocalFileBackend

class ReadOnlyBackend(LocalFileBackend):
    async def delete_many(self, keys):
        raise DeleteManyError({k: AccessDeniedError(f"403 AccessDenied on {k}") for k in keys})
"""
# Local files, as a sweeper allowed only to list and read sees them: no write, so no lease.
LIST_ONLY_ADAPTER = """
from taquba_memo import AccessDeniedError, LocalFileBackend

class ListOnlyBackend(LocalFileBackend):
    async def put(self, key, value, *, if_absent=False):
        raise AccessDeniedError(f"403 AccessDenied on {key}")
"""


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A local store, prefix 'agents': 20 runs (run-00 ...) of 2 entries, all ended long ago."""
    return local_store_of_ended_runs(tmp_path / "store", RUNS, [("k", b"v")] * ENTRIES_PER_RUN)


def runs_left(url: str) -> tuple[set[str], set[str]]:
    """(runs that still have entries, runs that still have a marker)."""
    with open_store(url, prefix="agents") as store:
        with_entries = {entry.run_id for entry in store.iter_entries() if entry.run_id}
        with_markers = {marker.run_id for marker in store.list_terminal_markers()}
    return with_entries, with_markers


class TestMistakesAreLoud:
    @pytest.mark.parametrize(
        "command",
        [
            ["runs"],
            ["runs", "--sizes"],
            ["markers"],
            ["clear", "run-1"],
            ["sweep", "--older-than", "7d"],
        ],
    )
    def test_a_file_root_that_does_not_exist_is_a_missing_bucket(
        self, tmp_path: Path, command: list[str]
    ) -> None:
        missing = tmp_path / "typo"
        result = run_cli("--url", missing.as_uri(), *command)
        assert result.code == ExitCode.CONTAINER_NOT_FOUND, result.stderr
        assert f"the directory {missing} does not exist" in result.stderr
        assert not missing.exists()  # reading never creates it

    def test_a_missing_file_root_is_one_json_document(self, tmp_path: Path) -> None:
        result = run_cli("--json", "--url", (tmp_path / "typo").as_uri(), "markers")
        assert result.json()["error"]["type"] == "ContainerNotFoundError"
        assert result.json()["exit_code"] == ExitCode.CONTAINER_NOT_FOUND

    @pytest.mark.parametrize("command", [["runs"], ["markers"], ["sweep", "--older-than", "7d"]])
    def test_a_prefix_with_no_memo_and_no_marker_gets_a_warning(
        self, url: str, command: list[str]
    ) -> None:
        result = run_cli("--url", url, "--prefix", "agnets", *command)
        assert result.code == ExitCode.OK
        assert (
            f"taquba-memo: warning: {url} holds no memo entry and no terminal marker "
            "under prefix 'agnets': check --url and --prefix"
        ) in result.stderr
        as_json = run_cli("--json", "--url", url, "--prefix", "agnets", *command)
        assert len(as_json.json()["warnings"]) == 1

    def test_a_prefix_that_holds_data_gets_no_warning(self, url: str) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "clear", "no-such-run")
        assert result.code == ExitCode.OK
        assert "warning" not in result.stderr

    @pytest.mark.parametrize(
        "spelling",
        [
            ["--older-than", "-1d"],
            ["--older-than=-1d"],
            ["--older-than", "-0s"],
            ["--older-than", "-7"],
        ],
    )
    def test_negative_durations_are_refused_in_every_spelling(
        self, url: str, spelling: list[str]
    ) -> None:
        result = run_cli("--url", url, "--prefix", "agents", "sweep", *spelling)
        assert result.code == ExitCode.USAGE
        assert "a duration cannot be negative" in result.stderr
        assert runs_left(url)[1] == {f"run-{n:02}" for n in range(RUNS)}

    @pytest.mark.parametrize("zero", ["0s", "0d", "0ms", "0h0m"])
    def test_a_zero_cutoff_that_clears_every_marked_run_needs_confirmation(
        self, url: str, zero: str
    ) -> None:
        refused = run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", zero)
        assert refused.code == ExitCode.USAGE
        assert "add --all-ended to confirm" in refused.stderr
        assert len(runs_left(url)[1]) == RUNS
        looked = run_cli(
            "--url", url, "--prefix", "agents", "sweep", "--older-than", zero, "--dry-run"
        )
        assert looked.code == ExitCode.OK
        assert looked.stdout.splitlines()[-1].startswith(f"dry run: {RUNS} runs ")
        confirmed = run_cli(
            "--url", url, "--prefix", "agents", "sweep", "--older-than", zero, "--all-ended"
        )
        assert confirmed.code == ExitCode.OK, confirmed.stderr
        assert runs_left(url) == (set(), set())

    def test_usage_errors_are_one_json_document_with_json(self, url: str) -> None:
        result = run_cli("--json", "--url", url, "sweep", "--older-than", "-1d")
        assert result.code == ExitCode.USAGE
        assert result.json() == {
            "error": {
                "type": "UsageError",
                "message": "argument --older-than: invalid duration '-1d': "
                "a duration cannot be negative (for example 7d)",
            },
            "exit_code": ExitCode.USAGE,
        }
        assert run_cli("--json", "sweep").json()["exit_code"] == ExitCode.USAGE

    def test_a_sweeper_that_may_list_but_not_delete_exits_5_naming_the_permission_once(
        self, url: str, tmp_path: Path
    ) -> None:
        site = install_local_files_adapter(tmp_path / "site", "readonly", READ_ONLY_ADAPTER)
        denied_url = url.replace("file://", "readonly://", 1)
        for json_mode in (False, True):
            result = run_cli(
                *sweep_one_run_at_a_time(denied_url, *(["--json"] if json_mode else [])),
                env={"PYTHONPATH": str(site)},
            )
            assert result.code == ExitCode.ACCESS_DENIED, result.stderr
            assert result.stderr.count("s3:DeleteObject") == 1
            assert result.stderr.count("403 AccessDenied") <= 2  # the batch's line, the error's
            if json_mode:
                document = result.json()
                assert document["exit_code"] == ExitCode.ACCESS_DENIED
                assert document["error"]["type"] == "AccessDeniedError"
                assert document["runs_cleared_count"] == 0
            else:
                assert result.stdout.splitlines()[-1].startswith("swept 0 runs ")
        assert runs_left(url)[1] == {f"run-{n:02}" for n in range(RUNS)}

    def test_a_sweeper_that_may_only_list_is_told_what_the_lease_needs(
        self, url: str, tmp_path: Path
    ) -> None:
        site = install_local_files_adapter(tmp_path / "site", "listonly", LIST_ONLY_ADAPTER)
        result = run_cli(
            "--url", url.replace("file://", "listonly://", 1), "--prefix", "agents",
            "sweep", "--older-than", "7d", env={"PYTHONPATH": str(site)},
        )  # fmt: skip
        assert result.code == ExitCode.ACCESS_DENIED
        assert (
            "permission to create, overwrite and delete objects under 'agents/sweeps/lease.', "
            "or run with --no-lease"
        ) in result.stderr
        assert len(runs_left(url)[1]) == RUNS


SLOW_ADAPTER = textwrap.dedent(
    """
    import asyncio
    import dataclasses
    import os

    from taquba_memo import LocalFileBackend

    class SlowBackend(LocalFileBackend):
        '''Local files, two keys a delete batch, each batch slow: a sweep takes seconds.'''

        @property
        def capabilities(self):
            return dataclasses.replace(super().capabilities, max_delete_batch=2)

        async def delete_many(self, keys):
            await super().delete_many(keys)
            open(os.environ["SWEEP_STARTED"], "a").close()
            await asyncio.sleep(0.2)
    """
)


def sweep_one_run_at_a_time(url: str, *options: str) -> list[str]:
    """The arguments of a sweep of the runs under 'agents' older than 7 days, one run at a time."""
    return [
        "--url", url, "--prefix", "agents", *options,
        "sweep", "--older-than", "7d", "--concurrency", "1",
    ]  # fmt: skip


def start_slow_sweep(url: str, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    """Start a slow sweep through the installed script; return once it is deleting."""
    site = install_local_files_adapter(tmp_path / "site", "slow", SLOW_ADAPTER)
    started = tmp_path / "started"
    process = subprocess.Popen(
        [str(SCRIPT), *sweep_one_run_at_a_time(url.replace("file://", "slow://", 1), *extra)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env({"PYTHONPATH": str(site), "SWEEP_STARTED": str(started)}),
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not started.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep never started deleting"
        time.sleep(0.01)
    return process


def sweep_and_signal(
    url: str, tmp_path: Path, signum: signal.Signals, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Start a slow sweep through the installed script, send ``signum`` once it deletes."""
    process = start_slow_sweep(url, tmp_path, *extra)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


class TestSignalsEndInASummary:
    @pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
    def test_a_signal_mid_sweep_stops_at_a_safe_point_and_prints_what_was_done(
        self, url: str, tmp_path: Path, signum: signal.Signals, code: int
    ) -> None:
        result = sweep_and_signal(url, tmp_path, signum)
        assert result.returncode == code, result.stderr
        summary = result.stdout.splitlines()[-1]
        assert summary.endswith(
            f"(interrupted by {signum.name}; the next pass finishes the rest)"
        ), result.stdout
        with_entries, with_markers = runs_left(url)
        cleared = RUNS - len(with_markers)
        assert summary.startswith(f"swept {cleared} run")
        assert cleared < RUNS  # it stopped early
        assert with_entries <= with_markers  # no memo outlives its marker
        # The next pass finishes the job.
        assert run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", "7d").code == 0
        assert runs_left(url) == (set(), set())

    def test_with_json_the_interrupted_summary_is_one_document(
        self, url: str, tmp_path: Path
    ) -> None:
        result = sweep_and_signal(url, tmp_path, signal.SIGTERM, "--json")
        assert result.returncode == 143, result.stderr
        document = json.loads(result.stdout)
        assert document["interrupted"] == "SIGTERM"
        assert document["exit_code"] == 143
        _with_entries, with_markers = runs_left(url)
        assert document["runs_cleared_count"] == RUNS - len(with_markers)
        assert document["runs_cleared"] == sorted(
            {f"run-{n:02}" for n in range(RUNS)} - with_markers
        )


SLOW_LISTING_ADAPTER = textwrap.dedent(
    """
    import asyncio
    import os

    from taquba_memo import LocalFileBackend

    class SlowListing(LocalFileBackend):
        async def list_with_metadata(self, prefix):
            async for item in super().list_with_metadata(prefix):
                yield item
                open(os.environ["LISTING_STARTED"], "a").close()
                await asyncio.sleep(0.2)
    """
)


class TestEveryCommandEndsWithASummary:
    def test_runs_stopped_by_sigterm_says_how_far_it_got(self, url: str, tmp_path: Path) -> None:
        site = install_local_files_adapter(tmp_path / "site", "slowlist", SLOW_LISTING_ADAPTER)
        started = tmp_path / "started"
        process = subprocess.Popen(
            [str(SCRIPT), "--json", "--url", url.replace("file://", "slowlist://", 1),
             "--prefix", "agents", "runs"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env({"PYTHONPATH": str(site), "LISTING_STARTED": str(started)}),
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        while not started.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the listing never started"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 143, stderr
        document = json.loads(stdout)
        assert document["interrupted"] == "SIGTERM"
        assert 1 <= document["entries_listed"] < RUNS * ENTRIES_PER_RUN


class TestSummaryOnly:
    def test_a_sweep_prints_its_summary_without_a_line_per_run(self, url: str) -> None:
        result = run_cli(
            "--url", url, "--prefix", "agents", "--summary-only", "sweep", "--older-than", "7d"
        )
        assert result.code == ExitCode.OK
        assert len(result.stdout.splitlines()) == 1
        assert result.stdout.startswith(f"swept {RUNS} runs with markers older than ")
        assert result.stdout.rstrip().endswith(
            f": {RUNS * ENTRIES_PER_RUN} entries deleted, 0 failed"
        )

    def test_in_json_it_keeps_the_counts_and_drops_the_list(self, url: str) -> None:
        result = run_cli(
            "--json",
            "--summary-only",
            "--url",
            url,
            "--prefix",
            "agents",
            "sweep",
            "--older-than",
            "7d",
        )
        document = result.json()
        assert document["runs_cleared_count"] == RUNS
        assert "runs_cleared" not in document


def local_root(url: str) -> LocalFileBackend:
    return LocalFileBackend(Path(urllib.parse.urlparse(url).path))


def write_lease(url: str, generation: int, *, renewed_at_ms: int, released: bool = False) -> None:
    """Another sweeper's lease document, as it would have written it."""
    document = {
        "owner": "elsewhere:1",
        "renewed_at_ms": renewed_at_ms,
        "lease_s": 60.0,
        "released": released,
    }
    key = sweep_lease_key("agents", generation)
    asyncio.run(local_root(url).put(key, json.dumps(document).encode()))


def leases_in(url: str) -> list[str]:
    async def listed() -> list[str]:
        return [key async for key in local_root(url).list(sweep_leases_prefix("agents"))]

    return asyncio.run(listed())


class TestOneSweeperAtATime:
    def test_two_sweeps_at_once_do_not_both_claim_the_work(self, url: str, tmp_path: Path) -> None:
        first = start_slow_sweep(url, tmp_path, "--json")
        second = run_cli(
            "--json", "--url", url, "--prefix", "agents", "sweep", "--older-than", "7d"
        )
        stdout, stderr = first.communicate(timeout=TIMEOUT_S)
        assert first.returncode == ExitCode.OK, stderr
        assert second.code == ExitCode.OK, second.stderr
        assert second.json()["runs_cleared_count"] == 0
        assert second.json()["entries_deleted"] == 0
        assert "another sweep holds the lease" in second.json()["skipped"]
        report = json.loads(stdout)
        assert report["runs_cleared_count"] == RUNS
        assert report["entries_deleted"] == RUNS * ENTRIES_PER_RUN
        assert runs_left(url) == (set(), set())
        assert leases_in(url) == []  # released at the end

    def test_a_held_lease_makes_a_sweep_do_nothing(self, url: str) -> None:
        write_lease(url, 1, renewed_at_ms=time.time_ns() // 1_000_000)
        result = run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", "7d")
        assert result.code == ExitCode.OK
        assert "skipped, another sweep holds the lease (elsewhere:1" in result.stdout
        assert len(runs_left(url)[1]) == RUNS

    @pytest.mark.parametrize("released", [False, True])
    def test_a_stale_or_released_lease_is_taken_over(self, url: str, released: bool) -> None:
        renewed = time.time_ns() // 1_000_000 - (0 if released else 3_600_000)
        write_lease(url, 1, renewed_at_ms=renewed, released=released)
        result = run_cli("--url", url, "--prefix", "agents", "sweep", "--older-than", "7d")
        assert result.code == ExitCode.OK, result.stderr
        assert runs_left(url) == (set(), set())
        assert leases_in(url) == []

    def test_no_lease_sweeps_anyway(self, url: str) -> None:
        write_lease(url, 1, renewed_at_ms=time.time_ns() // 1_000_000)
        result = run_cli(
            "--url", url, "--prefix", "agents", "sweep", "--older-than", "7d", "--no-lease"
        )
        assert result.code == ExitCode.OK
        assert runs_left(url) == (set(), set())
