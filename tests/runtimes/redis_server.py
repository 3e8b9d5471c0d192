"""A throwaway Redis on 127.0.0.1 (Debian's redis-server): the Celery tests' broker.

Random free port, a temporary directory, no persistence; stopped at the end.
Without ``redis-server`` the tests skip with a hint, or fail when
``TAQUBA_MEMO_REQUIRE_SERVERS=1`` (as CI sets it).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from taquba_memo_conformance._processes import ManagedProcess, ServerStartError, free_port

__all__ = ["RedisServer", "redis_server"]

REQUIRE_SERVERS_ENV = "TAQUBA_MEMO_REQUIRE_SERVERS"
START_TIMEOUT_S = 20.0


@dataclass
class RedisServer:
    url: str
    process: ManagedProcess


def _redis_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (
            path
            for path in ("/usr/bin/redis-server", "/usr/sbin/redis-server")
            if os.access(path, os.X_OK)
        ),
        None,
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Redis on a free loopback port; ``redis_server.url`` is ``redis://127.0.0.1:PORT/0``."""
    binary = _redis_binary()
    if binary is None:
        reason = (
            "redis-server is not installed: run `just system-deps` as root, "
            "or apt-get install redis-server"
        )
        if os.environ.get(REQUIRE_SERVERS_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_SERVERS_ENV}=1)")
        pytest.skip(reason)
    port = free_port()
    # Its working directory (redis' --dir) is the process's own temporary directory.
    process = ManagedProcess(
        "redis",
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ],
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if process.exited() or time.monotonic() > deadline:
                process.stop()
                raise ServerStartError("redis-server did not answer" + process.describe()) from None
            time.sleep(0.05)
    client.close()
    try:
        yield RedisServer(url, process)
    finally:
        process.stop()
