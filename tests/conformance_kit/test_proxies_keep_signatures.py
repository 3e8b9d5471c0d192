"""Every forwarding proxy of the tests is transparent to request signatures.

A client signs the request it sends to the proxy: SigV4 and Azure Shared Key
cover the ``Host`` header and the other signed headers. So each proxy (the
kit's counting, fault and GCS XML proxies, and the tests' S3 and GCS proxies)
stands here in front of a server that checks every signature: Ceph RGW, moto
with its authentication on, and Azurite with its account key. A signed
round trip must succeed through it, and the same requests signed with a wrong
key must be refused through it, which shows the server really checked.
"""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient
from botocore.config import Config
from botocore.exceptions import ClientError
from taquba_memo_conformance.proxies import CountingProxy, FaultProxy, GcsXmlProxy
from taquba_memo_conformance.servers import AzureServer, S3Server, parse_connection_string
from taquba_memo_conformance.servers_plugin import S3_SERVER_FIXTURES

from ..adapters.gcs.gcs_proxy import GCSProxy
from ..adapters.minio.s3_proxy import S3Proxy

WRONG_SECRET = "a-wrong-secret-0123456789abcdef"
# Azure account keys are base64; this one is well formed and wrong.
WRONG_ACCOUNT_KEY = "d3JvbmctYWNjb3VudC1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="


def forwarding(
    proxy_type: Callable[..., CountingProxy], **options: Any
) -> Callable[[str], contextlib.AbstractContextManager[str]]:
    """A proxy of ``proxy_type`` started in front of an upstream: its address while in use."""

    @contextlib.contextmanager
    def started(upstream: str) -> Iterator[str]:
        with proxy_type(upstream, **options) as proxy:
            yield proxy.url

    return started


PROXIES: dict[str, Callable[[str], contextlib.AbstractContextManager[str]]] = {
    "counting": forwarding(CountingProxy),
    "fault": forwarding(FaultProxy),  # no fault configured: it forwards only
    "gcs-xml": forwarding(GcsXmlProxy, translate_uploads=False),
    "s3": forwarding(S3Proxy),
    "gcs": forwarding(GCSProxy),
}


def s3_client(server: S3Server, endpoint: str, secret_key: str) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=server.access_key,
        aws_secret_access_key=secret_key,
        region_name=server.region,
    )
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return session.client("s3", endpoint_url=endpoint, config=config)


def s3_round_trip(client: Any, bucket: str) -> None:
    """PUT (signed body), GET, a listing (signed query) and DeleteObjects (signed MD5)."""
    client.put_object(Bucket=bucket, Key="dir/key one", Body=b"value", ContentType="text/plain")
    assert client.get_object(Bucket=bucket, Key="dir/key one")["Body"].read() == b"value"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="dir/", MaxKeys=10)
    assert [item["Key"] for item in listed["Contents"]] == ["dir/key one"]
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "dir/key one"}]})
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("server_kind", ["rgw", "moto-auth"])
@pytest.mark.parametrize("proxy", list(PROXIES))
def test_an_s3_signature_stays_valid_through_the_proxy(
    request: pytest.FixtureRequest, server_kind: str, proxy: str
) -> None:
    server: S3Server = request.getfixturevalue(S3_SERVER_FIXTURES[server_kind])
    assert server.checks_signatures
    bucket = server.new_bucket()
    with PROXIES[proxy](server.endpoint_url) as url:
        s3_round_trip(s3_client(server, url, server.secret_key), bucket)
        with pytest.raises(ClientError) as refused:
            s3_client(server, url, WRONG_SECRET).get_object(Bucket=bucket, Key="any")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def azure_client(server: AzureServer, proxy_url: str, account_key: str) -> BlobServiceClient:
    """A Shared Key client whose blob endpoint is the proxy, with the account's path kept."""
    parts = parse_connection_string(server.connection_string)
    account_path = urllib.parse.urlsplit(server.blob_endpoint).path
    parts["BlobEndpoint"] = f"{proxy_url}{account_path}"
    parts["AccountKey"] = account_key
    connection_string = ";".join(f"{key}={value}" for key, value in parts.items()) + ";"
    return BlobServiceClient.from_connection_string(connection_string, retry_total=0)


@pytest.mark.parametrize("proxy", list(PROXIES))
def test_an_azure_shared_key_signature_stays_valid_through_the_proxy(
    azure_server: AzureServer, proxy: str
) -> None:
    if azure_server.emulator != "azurite":
        pytest.skip("the proxies forward plain HTTP to a loopback server only")
    endpoint = urllib.parse.urlsplit(azure_server.blob_endpoint)
    root = f"{endpoint.scheme}://{endpoint.netloc}"
    with azure_server.temporary_container() as container, PROXIES[proxy](root) as url:
        client = azure_client(azure_server, url, azure_server.account_key)
        blobs = client.get_container_client(container)
        name = f"dir/{uuid.uuid4().hex} one"
        blobs.upload_blob(name, b"value", overwrite=False)
        assert blobs.download_blob(name).readall() == b"value"
        assert [blob.name for blob in blobs.list_blobs(name_starts_with="dir/")] == [name]
        blobs.delete_blob(name)
        wrong = azure_client(azure_server, url, WRONG_ACCOUNT_KEY).get_container_client(container)
        with pytest.raises(HttpResponseError) as refused:
            wrong.upload_blob("other", b"value")
    assert refused.value.status_code == 403
    assert getattr(refused.value, "error_code", None) == "AuthorizationFailure"
