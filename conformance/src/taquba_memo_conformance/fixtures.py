"""Session-scoped pytest fixtures for real storage servers: s3_server, gcs_server, azure_server.

Each starts its server on first use and stops it when the session ends; how the
server is found (env, container, process) is described in
:mod:`taquba_memo_conformance.servers`. Importing this module needs only pytest
and the standard library, so the plugin can load it on every run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from taquba_memo_conformance.servers import (
    AzureServer,
    GCSServer,
    S3Server,
    resolve_azure_server,
    resolve_gcs_server,
    resolve_s3_server,
)

__all__ = ["azure_server", "gcs_server", "s3_server"]


@contextlib.contextmanager
def _uncaptured(config: pytest.Config) -> Iterator[None]:
    """Lets what runs inside write to the real stdout and stderr, past pytest's capture."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:  # run with -p no:capture
        yield
        return
    with capture.global_and_fixture_disabled():
        yield


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3-compatible server; call ``s3_server.new_bucket()`` for a bucket of your own."""
    server = resolve_s3_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """A GCS (JSON API) server; call ``gcs_server.new_bucket()`` for a bucket of your own."""
    server = resolve_gcs_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def azure_server(pytestconfig: pytest.Config) -> Iterator[AzureServer]:
    """An Azure Blob server; call ``azure_server.new_container()`` for a container of your own."""
    with _uncaptured(pytestconfig):  # a first run's Azurite install says so on the terminal
        server = resolve_azure_server()
    try:
        yield server
    finally:
        server.close()
