"""The opt-in pytest plugin of session-scoped real-server fixtures: s3_server, gcs_server, ...

Installing the kit does not register these fixtures (the always-on plugin,
:mod:`taquba_memo_conformance.plugin`, only adds ``--memo-backend`` and
``expected_failures``). Ask for them in your top-level ``conftest.py``::

    pytest_plugins = ["taquba_memo_conformance.servers_plugin"]

or on the command line, ``pytest -p taquba_memo_conformance.servers_plugin``.

Each starts its server on first use and stops it when the session ends; how the
server is found (env, container, process) is described in
:mod:`taquba_memo_conformance.servers`. Importing this module needs only pytest
and the standard library; starting a server needs the ``servers`` extra.

``s3_server`` can be parametrized indirectly over S3 servers, so that one test
runs on each::

    @pytest.mark.parametrize("s3_server", ["moto", "rgw"], indirect=True)
    def test_put(s3_server): ...

``"moto"`` is the session's default S3 server (moto, unless the environment
names another), ``"rgw"`` is :func:`rgw_server`, ``"moto-auth"`` is
:func:`moto_auth_server`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Final, TypeVar

import pytest

from taquba_memo_conformance.servers import (
    AzureServer,
    GCSServer,
    S3Server,
    ServerUnavailableError,
    resolve_azure_server,
    resolve_gcs_server,
    resolve_rgw_server,
    resolve_s3_server,
    start_moto_with_auth,
)

__all__ = [
    "REQUIRE_SERVERS_ENV",
    "S3_SERVER_FIXTURES",
    "azure_server",
    "default_s3_server",
    "gcs_server",
    "moto_auth_server",
    "rgw_server",
    "s3_server",
]

#: Set to 1 (CI does) to fail, not skip, the tests of a server this machine cannot run.
REQUIRE_SERVERS_ENV: Final = "TAQUBA_MEMO_REQUIRE_SERVERS"

#: What an indirect parameter of ``s3_server`` names: the fixture that provides it.
S3_SERVER_FIXTURES: Final = {
    "moto": "default_s3_server",
    "rgw": "rgw_server",
    "moto-auth": "moto_auth_server",
}


def _servers_required() -> bool:
    return os.environ.get(REQUIRE_SERVERS_ENV, "").strip() not in ("", "0")


@contextlib.contextmanager
def _uncaptured(config: pytest.Config) -> Iterator[None]:
    """Lets what runs inside write to the real stdout and stderr, past pytest's capture."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:  # run with -p no:capture
        yield
        return
    with capture.global_and_fixture_disabled():
        yield


_ServerT = TypeVar("_ServerT", S3Server, GCSServer, AzureServer)


def _closed_at_session_end(server: _ServerT) -> Iterator[_ServerT]:
    """A session fixture's body: hand out ``server``, and stop it when the session ends."""
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def default_s3_server() -> Iterator[S3Server]:
    """The session's default S3 server: env, else a container, else a moto process."""
    yield from _closed_at_session_end(resolve_s3_server())


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """An S3-compatible server; call ``s3_server.new_bucket()`` for a bucket of your own.

    Without a parameter it is :func:`default_s3_server`; an indirect parameter
    chooses one of :data:`S3_SERVER_FIXTURES`.
    """
    choice: str = getattr(request, "param", "moto")
    if choice not in S3_SERVER_FIXTURES:
        raise ValueError(f"s3_server's parameter must be one of {sorted(S3_SERVER_FIXTURES)}")
    server: S3Server = request.getfixturevalue(S3_SERVER_FIXTURES[choice])
    return server


@pytest.fixture(scope="session")
def rgw_server() -> Iterator[S3Server]:
    """Ceph RGW, a production S3 server that checks signatures.

    Where RGW cannot be had (no Ceph packages, no Docker, no endpoint given),
    the tests that need it skip with a reason saying how to get it, or fail
    when ``TAQUBA_MEMO_REQUIRE_SERVERS=1``.
    """
    try:
        server = resolve_rgw_server()
    except ServerUnavailableError as error:
        if _servers_required():
            pytest.fail(f"{REQUIRE_SERVERS_ENV} is set but Ceph RGW is unavailable: {error}")
        pytest.skip(f"Ceph RGW is unavailable: {error}")
    yield from _closed_at_session_end(server)


@pytest.fixture(scope="session")
def moto_auth_server() -> Iterator[S3Server]:
    """A moto process with its IAM authentication on: it refuses a request signed wrongly."""
    yield from _closed_at_session_end(start_moto_with_auth())


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """A GCS (JSON API) server; call ``gcs_server.new_bucket()`` for a bucket of your own."""
    yield from _closed_at_session_end(resolve_gcs_server())


@pytest.fixture(scope="session")
def azure_server(pytestconfig: pytest.Config) -> Iterator[AzureServer]:
    """An Azure Blob server; call ``azure_server.new_container()`` for a container of your own."""
    with _uncaptured(pytestconfig):  # a first run's Azurite install says so on the terminal
        server = resolve_azure_server()
    yield from _closed_at_session_end(server)
