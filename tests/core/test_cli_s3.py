"""The taquba-memo command against an S3 emulator, through the obstore adapter's s3:// URLs."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse

import pytest
from taquba_memo._layout import sweep_lease_key, sweep_leases_prefix
from taquba_memo._urls import open_backend
from taquba_memo.sync import open_store
from taquba_memo_conformance._processes import free_port
from taquba_memo_conformance.proxies import CountingProxy
from taquba_memo_conformance.servers import S3Server

from ._cli_support import (
    ExitCode,
    run_cli,
)
from ._installed import requires

# s3:// URLs need the obstore adapter (Python 3.11+); the emulator is moto, from the kit's
# servers extra.
pytestmark = requires("taquba-memo-obstore")
needs_moto = requires("moto", "boto3", "flask", server=True)


def s3_url(endpoint: str, bucket: str, region: str, *extra: str) -> str:
    query = urllib.parse.urlencode(
        {
            "endpoint": endpoint,
            "region": region,
            "allow_http": "true",
            "virtual_hosted_style_request": "false",
        }
    )
    return f"s3://{bucket}/base?{'&'.join([query, *extra])}"


def credentials(server: S3Server) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}


@pytest.fixture
def populated(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket holding run 'done' (2 entries, old marker) and run 'live' (1 entry)."""
    for name, value in credentials(s3_server).items():
        monkeypatch.setenv(name, value)
    url = s3_url(s3_server.endpoint_url, s3_server.new_bucket(), s3_server.region)
    with open_store(url, prefix="agents") as store:
        store.new_memo("done", 0).put("a", b"12345")
        store.new_memo("done", 1).put("a", b"678")
        store.new_memo("live", 0).put("a", b"9")
        store.write_terminal_marker("done", 1_000)
    return url


@needs_moto
class TestAgainstAnS3Emulator:
    def test_runs_with_sizes(self, s3_server: S3Server, populated: str) -> None:
        result = run_cli(
            "--url", populated, "--prefix", "agents", "--json", "runs", "--sizes",
            env=credentials(s3_server),
        )  # fmt: skip
        assert result.code == ExitCode.OK, result.stderr
        document = result.json()
        assert [(run["run_id"], run["entries"], run["bytes"]) for run in document["runs"]] == [
            ("done", 2, 8),
            ("live", 1, 1),
        ]
        assert document["runs"][0]["terminal_at_ms"] == 1_000

    def test_runs_with_sizes_reads_no_entry(self, s3_server: S3Server, populated: str) -> None:
        # S3's listing carries sizes and times: the command sends listings only.
        with CountingProxy(s3_server.endpoint_url) as proxy:
            counted = populated.replace(
                urllib.parse.quote(s3_server.endpoint_url, safe=""),
                urllib.parse.quote(proxy.url, safe=""),
            )
            assert counted != populated
            result = run_cli(
                "--url", counted, "--prefix", "agents", "--json", "runs", "--sizes",
                env=credentials(s3_server),
            )  # fmt: skip
            kinds = proxy.counts().by_kind
        assert result.code == ExitCode.OK, result.stderr
        document = result.json()
        assert [run["bytes"] for run in document["runs"]] == [8, 1]
        assert document["totals"]["sizes_from"] == "listing"
        assert all(run["last_write_at"] for run in document["runs"])
        assert "get" not in kinds
        assert set(kinds) == {"list"}

    def test_markers(self, s3_server: S3Server, populated: str) -> None:
        result = run_cli(
            "--url", populated, "--prefix", "agents", "markers", env=credentials(s3_server)
        )
        assert result.code == ExitCode.OK, result.stderr
        assert result.stdout.splitlines() == [
            f"{'1970-01-01T00:00:01.000Z':<26} {1000:>15}  done",
            "1 marker",
        ]

    def test_sweep_then_clear(self, s3_server: S3Server, populated: str) -> None:
        env = credentials(s3_server)
        dry = run_cli(
            "--url", populated, "--prefix", "agents", "--json",
            "sweep", "--older-than", "7d", "--dry-run", env=env,
        )  # fmt: skip
        assert dry.json()["runs_cleared"] == ["done"]
        swept = run_cli(
            "--url", populated, "--prefix", "agents", "--json",
            "sweep", "--older-than", "7d", env=env,
        )  # fmt: skip
        assert swept.code == ExitCode.OK, swept.stderr
        assert (swept.json()["runs_cleared"], swept.json()["entries_deleted"]) == (["done"], 2)
        cleared = run_cli(
            "--url", populated, "--prefix", "agents", "--json", "clear", "live", env=env
        )
        assert cleared.json() == {"run_id": "live", "entries_deleted": 1, "entries_failed": 0}
        with open_store(populated, prefix="agents") as store:
            assert store.list_terminal_markers() == []
            assert store.new_memo("live", 0).get("a") is None

    def test_the_sweep_lease_on_s3(self, s3_server: S3Server, populated: str) -> None:
        async def lease_keys(document: bytes | None = None) -> list[str]:
            backend = open_backend(populated)
            try:
                if document is not None:
                    await backend.put(sweep_lease_key("agents", 1), document)
                return [key async for key in backend.list(sweep_leases_prefix("agents"))]
            finally:
                await backend.aclose()

        def lease(*, released: bool) -> bytes:
            now_ms = time.time_ns() // 1_000_000
            return json.dumps(
                {"owner": "other:1", "renewed_at_ms": now_ms, "lease_s": 60, "released": released}
            ).encode()

        env = credentials(s3_server)
        sweep = ("--url", populated, "--prefix", "agents", "--json", "sweep", "--older-than", "7d")
        asyncio.run(lease_keys(lease(released=False)))
        held = run_cli(*sweep, env=env)
        assert held.code == ExitCode.OK, held.stderr
        assert held.json()["lease_holder"]["owner"] == "other:1"
        assert held.json()["runs_cleared_count"] == 0
        asyncio.run(lease_keys(lease(released=True)))
        swept = run_cli(*sweep, env=env)
        assert swept.code == ExitCode.OK, swept.stderr
        assert swept.json()["runs_cleared"] == ["done"]
        assert asyncio.run(lease_keys()) == []


class TestStorageErrorsHaveTheirOwnExitCodes:
    @needs_moto
    def test_a_bucket_that_does_not_exist(self, s3_server: S3Server) -> None:
        url = s3_url(s3_server.endpoint_url, "no-such-bucket-for-cli", s3_server.region)
        result = run_cli("--url", url, "markers", env=credentials(s3_server))
        assert result.code == ExitCode.CONTAINER_NOT_FOUND, result.stderr
        assert "hint: check the bucket" in result.stderr

    @needs_moto
    def test_wrong_credentials(self, moto_auth_server: S3Server) -> None:
        url = s3_url(moto_auth_server.endpoint_url, "bucket", moto_auth_server.region)
        result = run_cli(
            "--url", url, "runs",
            env={"AWS_ACCESS_KEY_ID": "not-a-key", "AWS_SECRET_ACCESS_KEY": "not-a-secret"},
        )  # fmt: skip
        assert result.code == ExitCode.ACCESS_DENIED, result.stderr
        assert "hint: check the credentials" in result.stderr

    def test_an_endpoint_that_does_not_answer(self) -> None:
        silent = f"http://127.0.0.1:{free_port()}"
        url = s3_url(silent, "bucket", "us-east-1", "max_retries=0")
        result = run_cli(
            "--url", url, "markers",
            env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        )  # fmt: skip
        assert result.code == ExitCode.BACKEND_ERROR, result.stderr


class TestAClientThatCannotBeBuiltIsABadURL:
    """Configuration mistakes exit with the bad-URL code and say how to fix them."""

    def test_a_plain_http_endpoint_without_allow_http(self) -> None:
        endpoint = f"http://127.0.0.1:{free_port()}"
        url = f"s3://bucket/base?endpoint={endpoint}&region=us-east-1"
        result = run_cli("--url", url, "markers", env=CONFIGURED_KEYS)
        assert result.code == ExitCode.BAD_URL, result.stderr
        assert "add allow_http=true" in result.stderr

    def test_an_endpoint_that_is_not_a_url(self) -> None:
        url = "s3://bucket/base?endpoint=127.0.0.1:9000&region=us-east-1&allow_http=true"
        result = run_cli("--url", url, "markers", env=CONFIGURED_KEYS)
        assert result.code == ExitCode.BAD_URL, result.stderr
        assert "write it as https://HOST[:PORT]" in result.stderr

    def test_an_unknown_option(self) -> None:
        url = "s3://bucket/base?endpoint=https://s3.example&no_such_option=1"
        result = run_cli("--url", url, "markers", env=CONFIGURED_KEYS)
        assert result.code == ExitCode.BAD_URL, result.stderr
        assert "no_such_option" in result.stderr
        assert "remove or correct that query parameter" in result.stderr


# Made-up keys: these commands stop before any request is signed.
CONFIGURED_KEYS = {"AWS_ACCESS_KEY_ID": "made-up", "AWS_SECRET_ACCESS_KEY": "made-up"}
