"""A client an adapter cannot build is refused when the backend is opened, never at first I/O.

Each adapter, given a configuration that could never work (a plain http://
endpoint without obstore's allow_http, an endpoint that is not a URL, an
unknown option, a malformed Azure connection string), raises
InvalidConfigurationError from its constructor or URL opener: bad input in
the core's hierarchy, not transient, with a message that names the fix and
repeats no secret. Through ``open_backend`` the same mistake is an
InvalidURLError carrying that message (the CLI's exit code 3).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.auth.credentials import AnonymousCredentials
from obstore.store import AzureStore, S3Store
from taquba_memo import (
    BackendError,
    InvalidArgumentError,
    InvalidConfigurationError,
    InvalidURLError,
    open_backend,
)
from taquba_memo_azure import AzureBlobBackend
from taquba_memo_gcs import GCSBackend
from taquba_memo_minio import MinioBackend
from taquba_memo_obstore import ObstoreBackend

SECRET = "c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw=="  # base64, as an account key is
NOBODY = "http://127.0.0.1:9"  # nothing is ever sent: these fail before any I/O


def azure_connection_string(endpoint: str, key: str = SECRET) -> str:
    return f"AccountName=acct;AccountKey={key};BlobEndpoint={endpoint}"


# (what is wrong, how the backend is opened, a phrase of the fix the message names)
CONSTRUCTORS: list[tuple[str, Callable[[], object], str]] = [
    (
        "obstore S3 http without allow_http",
        lambda: ObstoreBackend(S3Store("bucket", endpoint=NOBODY, region="us-east-1")),
        "add allow_http=true",
    ),
    (
        "obstore S3 endpoint without a scheme",
        lambda: ObstoreBackend(
            S3Store("bucket", endpoint="127.0.0.1:9000", client_options={"allow_http": True})
        ),
        "write it as https://HOST[:PORT]",
    ),
    (
        "obstore Azure http without allow_http",
        lambda: ObstoreBackend(
            AzureStore("c", account_name="acct", access_key=SECRET, endpoint=f"{NOBODY}/acct")
        ),
        "add allow_http=true",
    ),
    (
        "minio endpoint with a scheme",
        lambda: MinioBackend.connect(NOBODY, "bucket", access_key="a", secret_key=SECRET),
        "give HOST[:PORT] with no scheme",
    ),
    (
        "minio endpoint that is no host",
        lambda: MinioBackend.connect("no host here", "bucket", access_key="a", secret_key=SECRET),
        "give HOST[:PORT] with no scheme",
    ),
    (
        "gcs endpoint without a scheme",
        lambda: GCSBackend.connect(
            "bucket",
            endpoint="127.0.0.1:4443",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            project="p",
        ),
        "write it as https://HOST[:PORT]",
    ),
    (
        "gcs endpoint with a password in it",
        lambda: GCSBackend.connect(
            "bucket",
            endpoint=f"http://user:{SECRET}@127.0.0.1:4443",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            project="p",
        ),
        "an endpoint never holds credentials",
    ),
    (
        "obstore S3 endpoint with a password in it",
        lambda: ObstoreBackend(
            S3Store(
                "bucket",
                endpoint=f"http://user:{SECRET}@127.0.0.1:9000",
                client_options={"allow_http": True},
            )
        ),
        "an endpoint never holds credentials",
    ),
    (
        "azure BlobEndpoint with a password in it",
        lambda: AzureBlobBackend.from_connection_string(
            azure_connection_string(f"http://user:{SECRET}@127.0.0.1:9/acct"), "c"
        ),
        "an endpoint never holds credentials",
    ),
    (
        "azure malformed connection string",
        lambda: AzureBlobBackend.from_connection_string(f"AccountKey{SECRET}", "c"),
        "Key=Value pairs separated by ';'",
    ),
    (
        "azure BlobEndpoint that is no URL",
        lambda: AzureBlobBackend.from_connection_string(
            azure_connection_string("no url here"), "c"
        ),
        "write it as https://HOST[:PORT]",
    ),
    (
        "azure AccountKey that is not base64",
        lambda: AzureBlobBackend.from_connection_string(
            azure_connection_string(f"{NOBODY}/acct", key="not base64!"), "c"
        ),
        "copy the account's key1 or key2",
    ),
]


@pytest.mark.parametrize(
    ("open_it", "fix"),
    [(open_it, fix) for _, open_it, fix in CONSTRUCTORS],
    ids=[what for what, _, _ in CONSTRUCTORS],
)
def test_the_constructor_refuses_a_client_it_cannot_build(
    open_it: Callable[[], object], fix: str
) -> None:
    with pytest.raises(InvalidConfigurationError) as raised:
        open_it()
    error = raised.value
    assert isinstance(error, InvalidArgumentError)  # bad input, found before any I/O
    assert not isinstance(error, BackendError)
    assert error.transient is False
    assert fix in str(error)
    assert SECRET not in str(error)


# (what is wrong, the URL, the environment it is opened with, a phrase of the fix)
URLS: list[tuple[str, str, dict[str, str], str]] = [
    (
        "obstore http without allow_http",
        f"s3://bucket/base?endpoint={NOBODY}&region=us-east-1",
        {},
        "add allow_http=true",
    ),
    (
        "obstore endpoint without a scheme",
        "s3://bucket/base?endpoint=127.0.0.1:9000&allow_http=true&region=us-east-1",
        {},
        "write it as https://HOST[:PORT]",
    ),
    (
        "obstore unknown option",
        "s3://bucket/base?endpoint=https://s3.example&no_such_option=1",
        {},
        "remove or correct that query parameter",
    ),
    (
        "minio endpoint that is no host",
        "s3+minio://bucket/base?endpoint=no%20host%20here",
        {},
        "give HOST[:PORT] with no scheme",
    ),
    (
        "gcs endpoint without a scheme",
        "gs+gcs://bucket/base?endpoint=127.0.0.1:4443",
        {},
        "write it as https://HOST[:PORT]",
    ),
    (
        "azure malformed connection string",
        "az+azure://container/base",
        {"AZURE_STORAGE_CONNECTION_STRING": f"AccountKey{SECRET}"},
        "Key=Value pairs separated by ';'",
    ),
]


@pytest.mark.parametrize(
    ("url", "env", "fix"),
    [(url, env, fix) for _, url, env, fix in URLS],
    ids=[what for what, _, _, _ in URLS],
)
def test_a_url_naming_a_client_that_cannot_be_built_is_a_bad_url(
    url: str, env: dict[str, str], fix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "made-up")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidURLError) as raised:
        open_backend(url)
    assert fix in str(raised.value)
    assert SECRET not in str(raised.value)
