"""The recipes of docs/retention.md, extracted from the page and run as an operator would."""

from __future__ import annotations

import fcntl
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from taquba_memo.sync import open_store

from ._cli_support import install_stuck_adapter, local_store_of_ended_runs, run_captured

DOC = Path(__file__).resolve().parents[2] / "docs" / "retention.md"
VENV_BIN = str(Path(sys.executable).parent)
RUNS = 20


def recipe(heading: str, language: str) -> str:
    """The first ``language`` code block under the ``## heading`` of the page."""
    section = DOC.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {language} block under {heading!r}"
    return match.group(1)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A local store, prefix 'agents': 20 runs of 2 entries that ended long ago, one live run."""
    store_url = local_store_of_ended_runs(tmp_path / "store", RUNS, [("a", b"1"), ("b", b"2")])
    with open_store(store_url, prefix="agents") as store:
        store.new_memo("live", 0).put("a", b"1")
    return store_url


def runs_with_markers(url: str) -> int:
    with open_store(url, prefix="agents") as store:
        return len(store.list_terminal_markers())


class TestCron:
    def cron_job(self, url: str, lock: Path) -> tuple[list[str], str]:
        """(the crontab's environment, the job's command), pointed at this test's store."""
        lines = [
            line
            for line in recipe("cron, with the command line", "cron").splitlines()
            if line and not line.startswith("#")
        ]
        environment = [line for line in lines if re.match(r"[A-Z_]+=", line)]
        (job,) = [line for line in lines if line not in environment]
        command = job.split(None, 5)[5]  # after minute, hour, day, month, weekday
        environment = [
            line.replace("/opt/agents/venv/bin", VENV_BIN).replace("s3://my-bucket/memos", url)
            for line in environment
        ]
        return environment, command.replace("/tmp/taquba-memo-sweep.lock", str(lock))

    def run_like_cron(
        self, environment: list[str], command: str
    ) -> subprocess.CompletedProcess[str]:
        # cron starts /bin/sh with its own few variables plus the crontab's.
        return run_captured(
            ["env", "-i", "HOME=/root", "LOGNAME=root", "SHELL=/bin/sh", *environment,
             "/bin/sh", "-c", command]
        )  # fmt: skip

    def test_the_cron_line_runs_with_only_the_documented_environment(
        self, url: str, tmp_path: Path
    ) -> None:
        environment, command = self.cron_job(url, tmp_path / "sweep.lock")
        result = self.run_like_cron(environment, command)
        assert result.returncode == 0, result.stderr
        (summary,) = result.stdout.splitlines()  # one line to mail, not one per run
        assert re.fullmatch(
            rf"swept {RUNS} runs with markers older than \S+: {RUNS * 2} entries deleted, 0 failed",
            summary,
        )
        assert runs_with_markers(url) == 0

    def test_while_the_last_pass_holds_the_lock_the_next_one_is_skipped_quietly(
        self, url: str, tmp_path: Path
    ) -> None:
        lock = tmp_path / "sweep.lock"
        environment, command = self.cron_job(url, lock)
        with lock.open("w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            result = self.run_like_cron(environment, command)
        assert (result.returncode, result.stdout) == (0, "")
        assert runs_with_markers(url) == RUNS


class TestSyncScript:
    SECTION = "A script with the sync API (cron, systemd, Celery beat, RQ scheduler)"

    def run_script(self, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """The page's script, saved as a user would, run with ``env`` and nothing else."""
        script = tmp_path / "sweep_memos.py"
        script.write_text(recipe(self.SECTION, "python"))
        return run_captured([sys.executable, str(script)], env)

    def test_the_script_logs_its_summary_and_exits_0(self, url: str, tmp_path: Path) -> None:
        result = self.run_script(tmp_path, {"TAQUBA_MEMO_URL": url})
        assert result.returncode == 0, result.stderr
        assert f"INFO memo-sweep: swept {RUNS} runs, {RUNS * 2} entries" in result.stderr
        assert runs_with_markers(url) == 0

    def test_runs_that_cannot_be_cleared_are_logged_and_exit_1(
        self, url: str, tmp_path: Path
    ) -> None:
        site = install_stuck_adapter(tmp_path / "site", "run-07")
        stuck_url = url.replace("file://", "stuck://", 1)
        result = self.run_script(tmp_path, {"TAQUBA_MEMO_URL": stuck_url, "PYTHONPATH": str(site)})
        assert result.returncode == 1, result.stderr
        assert f"INFO memo-sweep: swept {RUNS - 1} runs, {RUNS * 2 - 2} entries" in result.stderr
        assert "WARNING memo-sweep: run run-07 not cleared: " in result.stderr


# Runs the recipe's module, then its scheduler with the job due at once, until the job ran.
APSCHEDULER_DRIVER = textwrap.dedent(
    """
    import asyncio, datetime, logging, runpy, sys
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    recipe = runpy.run_path(sys.argv[1], run_name="recipe")

    async def once():
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        done = asyncio.Event()
        outcome = []
        scheduler = AsyncIOScheduler()
        recipe["schedule_sweeps"](scheduler)
        (job,) = scheduler.get_jobs()
        job.modify(next_run_time=datetime.datetime.now(datetime.timezone.utc))

        def finished(event):
            outcome.append(event.exception)
            done.set()

        scheduler.add_listener(finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        scheduler.start()
        await asyncio.wait_for(done.wait(), 60)
        scheduler.shutdown(wait=False)
        if outcome[0] is not None:
            raise outcome[0]

    asyncio.run(once())
    """
)


class TestAPScheduler:
    @pytest.mark.parametrize("stuck", [False, True])
    def test_the_scheduled_job_sweeps_and_logs(self, url: str, tmp_path: Path, stuck: bool) -> None:
        module = tmp_path / "service.py"
        module.write_text(recipe("APScheduler, inside an asyncio service", "python"))
        env = {"TAQUBA_MEMO_URL": url}
        if stuck:
            site = install_stuck_adapter(tmp_path / "site", "run-07")
            env = {
                "TAQUBA_MEMO_URL": url.replace("file://", "stuck://", 1),
                "PYTHONPATH": str(site),
            }
        result = run_captured([sys.executable, "-c", APSCHEDULER_DRIVER, str(module)], env)
        assert result.returncode == 0, result.stderr
        cleared = RUNS - 1 if stuck else RUNS
        assert f"INFO memo-sweep: swept {cleared} runs" in result.stderr
        assert ("WARNING memo-sweep: 1 runs left for the next pass" in result.stderr) is stuck
        assert runs_with_markers(url) == RUNS - cleared


class TestSystemdAndKubernetes:
    """These cannot run on one machine; their commands must be the tested ones."""

    def test_the_service_runs_the_cron_command(self) -> None:
        service = recipe("A systemd timer", "ini")
        (exec_start,) = re.findall(r"^ExecStart=(.*)$", service, re.MULTILINE)
        cron = recipe("cron, with the command line", "cron")
        assert exec_start.replace("/opt/agents/venv/bin/", "") in cron
        assert "TimeoutStartSec=" in service

    def test_the_cronjob_fails_at_once_on_configuration_errors_only(self) -> None:
        job = recipe("Kubernetes CronJob", "yaml")
        (codes,) = re.findall(r"operator: In, values: \[([\d, ]+)\]", job)
        assert [int(code) for code in codes.split(",")] == [2, 3, 4, 5, 6]
        command = re.search(r"command: \[(.*)\]", job)
        assert command is not None
        assert [part.strip('"') for part in command.group(1).split(", ")] == shlex.split(
            "taquba-memo --summary-only sweep --older-than 7d"
        )
        assert ":latest" not in job
        assert "@sha256:" in job
        assert "requests:" in job
