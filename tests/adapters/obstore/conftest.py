"""Fixtures for the obstore adapter tests: obstore stores on the session's real servers.

Every store gets explicit credentials and a short retry budget, so a test
against a broken server fails in seconds rather than after obstore's default
three minutes of retries. GCS goes through the conformance kit's
:class:`~taquba_memo_conformance.proxies.GcsXmlProxy` when the server is
fake-gcs-server, which refuses obstore's XML-API uploads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import pytest
from obstore.store import AzureStore, GCSStore, S3Store
from taquba_memo_conformance.proxies import GcsXmlProxy
from taquba_memo_conformance.servers import AzureServer, GCSServer, S3Server

from ...builders import (
    OBSTORE_CLIENT,
    azurite_url,
    obstore_azurite_store,
    obstore_fake_gcs_store,
    obstore_s3_store,
)
from ...conftest import parametrize_s3_servers

if TYPE_CHECKING:
    from obstore.store import ClientConfig, GCSCredential, RetryConfig

RETRY: RetryConfig = {"max_retries": 2, "retry_timeout": timedelta(seconds=20)}
CLIENT: ClientConfig = cast("ClientConfig", OBSTORE_CLIENT)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_s3_servers(metafunc)


def s3_store(
    server: S3Server,
    bucket: str,
    *,
    endpoint: str | None = None,
    retry_config: RetryConfig | None = RETRY,
) -> S3Store:
    """An S3Store on ``bucket``; ``endpoint`` puts a proxy in front of the server,
    ``retry_config=None`` keeps obstore's default retries."""
    return obstore_s3_store(server, bucket, endpoint=endpoint, retry_config=retry_config)


def gcs_store(base_url: str, bucket: str, server: GCSServer) -> GCSStore:
    if server.emulator is None:  # a real endpoint: the kit's bearer token
        token = server.access_token or ""

        def bearer_token() -> GCSCredential:
            return {"token": token, "expires_at": None}

        return GCSStore(
            bucket,
            credential_provider=bearer_token,
            client_options=CLIENT,
            retry_config=RETRY,
        )
    return obstore_fake_gcs_store(bucket, base_url, retry_config=RETRY)


def azure_store(server: AzureServer, container: str) -> AzureStore:
    if server.emulator == "azurite":
        return obstore_azurite_store(container, azurite_url(server), retry_config=RETRY)
    return AzureStore(
        container,
        account_name=server.account_name,
        access_key=server.account_key,
        endpoint=server.blob_endpoint,
        client_options=CLIENT,
        retry_config=RETRY,
    )


@pytest.fixture(scope="session")
def gcs_base_url(gcs_server: GCSServer) -> Iterator[str]:
    """Where obstore's GCS client talks: through the upload-translating proxy on the emulator."""
    if gcs_server.emulator != "fake-gcs-server":
        yield gcs_server.endpoint_url
        return
    with GcsXmlProxy(gcs_server.endpoint_url) as proxy:
        yield proxy.url
