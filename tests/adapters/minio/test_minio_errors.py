"""How MinioBackend reports failures: the one mapping, proved class by class and end to end.

First a table over every exception class the adapter's SDK calls can raise
(the MinIO SDK's own, urllib3's, http.client's, socket errors, broken XML,
per-key delete errors). Then the real thing: a missing bucket, bucket policies
that deny, servers that check signatures (moto with authentication on, and
Ceph RGW: unknown access key, wrong secret, no permission), and throttling, server errors, dropped
connections and timeouts injected by the recording proxy. Secrets never show.
"""

from __future__ import annotations

import http.client
import inspect
from collections.abc import AsyncIterator
from typing import Any
from xml.etree.ElementTree import ParseError

import minio.error
import pytest
import urllib3.exceptions
from minio import Minio
from minio.deleteobjects import DeleteError
from minio.error import InvalidResponseError, S3Error, ServerError
from taquba_memo import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    ThrottledError,
    TransientBackendError,
)
from taquba_memo_conformance.adapter_checks import (
    check_every_exception_mapped,
    check_missing_container,
    exception_classes,
)
from taquba_memo_conformance.servers import S3Server
from taquba_memo_conformance.servers_plugin import S3_SERVER_FIXTURES
from taquba_memo_minio import MinioBackend, default_retry, make_http_client
from taquba_memo_minio._errors import SDK_ERRORS, KeyNotDeleted, map_minio_error
from urllib3.response import HTTPResponse
from urllib3.util.retry import Retry

from ... import builders
from .conftest import BackendFactory, deny_policy
from .s3_proxy import S3Proxy

SECRET = "never-show-this-secret-0123456789"


def s3_error(code: str | None, status: int) -> S3Error:
    return S3Error(
        response=HTTPResponse(status=status),
        code=code,
        message="message from the store",
        resource="/bucket/key",
        request_id="request-1",
        host_id="host-1",
        bucket_name="bucket",
        object_name="key",
    )


def mapped(exc: BaseException) -> BackendError:
    return map_minio_error(exc, operation="get", target="some/key")


def bare_instance(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` without running its (varied) constructor.

    The attributes some classes' ``__str__`` reads (IncompleteRead's byte
    counts, InvalidChunkLength's length) are filled in.
    """
    exc = cls.__new__(cls)
    BaseException.__init__(exc, "failure detail")
    for name, value in (("partial", 3), ("expected", 10), ("length", b"zz")):
        if not hasattr(exc, name):
            setattr(exc, name, value)
    return exc


# -- the table ----------------------------------------------------------------------

S3_CODES: list[tuple[str, int, type[BackendError]]] = [
    ("NoSuchBucket", 404, ContainerNotFoundError),
    ("AccessDenied", 403, AccessDeniedError),
    ("InvalidAccessKeyId", 403, AccessDeniedError),
    ("SignatureDoesNotMatch", 403, AccessDeniedError),
    ("ExpiredToken", 400, AccessDeniedError),
    ("InvalidToken", 400, AccessDeniedError),
    ("AllAccessDisabled", 403, AccessDeniedError),
    ("SlowDown", 503, ThrottledError),
    ("TooManyRequests", 429, ThrottledError),
    ("ServiceUnavailable", 503, ThrottledError),
    ("InternalError", 500, TransientBackendError),
    ("RequestTimeout", 400, TransientBackendError),
    ("OperationAborted", 409, TransientBackendError),
    ("ConditionalRequestConflict", 409, TransientBackendError),
    ("XMinioServerNotInitialized", 503, TransientBackendError),
    ("NoSuchKey", 404, BackendError),  # where an object must exist; get/delete never ask
    ("PreconditionFailed", 412, BackendError),  # put(if_absent) returns False before this
    ("InvalidArgument", 400, BackendError),
    ("EntityTooLarge", 400, BackendError),
    ("SomethingNew", 403, AccessDeniedError),  # unknown codes fall back to the status
    ("SomethingNew", 429, ThrottledError),
    ("SomethingNew", 502, TransientBackendError),
    ("SomethingNew", 408, TransientBackendError),
    ("SomethingNew", 400, BackendError),
]


@pytest.mark.parametrize(("code", "status", "expected"), S3_CODES)
def test_s3_error_codes_map_by_meaning(
    code: str, status: int, expected: type[BackendError]
) -> None:
    assert type(mapped(s3_error(code, status))) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, TransientBackendError),
        (502, TransientBackendError),
        (503, ThrottledError),
        (429, ThrottledError),
        (401, AccessDeniedError),
        (403, AccessDeniedError),
        (404, BackendError),
        (400, BackendError),
    ],
)
def test_answers_without_an_s3_error_body_map_by_status(
    status: int, expected: type[BackendError]
) -> None:
    # ServerError: no XML body; InvalidResponseError: an HTML page (a proxy, moto's policy 403).
    assert type(mapped(ServerError(f"HTTP {status}", status))) is expected
    assert type(mapped(InvalidResponseError(status, "text/html", "<html/>"))) is expected
    assert f"HTTP {status}" in str(mapped(InvalidResponseError(status, "text/html", None)))


def _urllib3_error_classes() -> list[type[BaseException]]:
    return sorted(
        (
            cls
            for _, cls in inspect.getmembers(urllib3.exceptions, inspect.isclass)
            if issubclass(cls, urllib3.exceptions.HTTPError)
        ),
        key=lambda cls: cls.__name__,
    )


@pytest.mark.parametrize("cls", _urllib3_error_classes(), ids=lambda cls: cls.__name__)
def test_every_urllib3_error_is_transient(cls: type[BaseException]) -> None:
    # After the client's own retries, a transport failure is still worth retrying later.
    assert isinstance(bare_instance(cls), SDK_ERRORS)
    assert type(mapped(bare_instance(cls))) is TransientBackendError


def _http_client_error_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(http.client, inspect.isclass)
        if issubclass(cls, http.client.HTTPException)
    ]


@pytest.mark.parametrize(
    "cls",
    [
        *_http_client_error_classes(),
        ConnectionRefusedError,
        ConnectionResetError,
        BrokenPipeError,
        TimeoutError,
        OSError,
        ParseError,
    ],
    ids=lambda cls: cls.__name__,
)
def test_no_answer_or_a_broken_one_is_transient(cls: type[BaseException]) -> None:
    assert isinstance(bare_instance(cls), SDK_ERRORS)
    assert isinstance(mapped(bare_instance(cls)), TransientBackendError)


def test_every_exception_class_of_the_sdk_is_caught_and_mapped() -> None:
    # The admin client's exception is not raised by the S3 client this adapter uses.
    used = exception_classes(minio.error)
    del used["MinioAdminException"]
    check_every_exception_mapped(
        used,
        {"MinioException", "InvalidResponseError", "ServerError", "S3Error"},
        caught=SDK_ERRORS,
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AccessDenied", AccessDeniedError),
        ("SlowDown", ThrottledError),
        ("InternalError", TransientBackendError),
        ("NoSuchBucket", ContainerNotFoundError),
        ("InvalidArgument", BackendError),
    ],
)
def test_per_key_delete_errors_map_by_code(code: str, expected: type[BackendError]) -> None:
    failed = KeyNotDeleted(DeleteError(code=code, message="m", name="a/b", version_id=None))
    error = map_minio_error(failed, operation="delete", target="a/b")
    assert type(error) is expected
    assert code in str(error)
    assert "'a/b'" in str(error)


def test_messages_name_operation_key_code_and_status() -> None:
    error = map_minio_error(s3_error("SlowDown", 503), operation="put", target="runs/x")
    assert str(error) == "S3 put of 'runs/x' failed: SlowDown (HTTP 503): message from the store"


# -- a missing bucket, and denials by bucket policy -------------------------------------


async def test_a_missing_bucket_is_container_not_found_for_every_operation(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(bucket="taquba-memo-no-such-bucket")
    errors = await check_missing_container(backend)
    for operation in ("get", "put", "put_if_absent", "delete"):
        cause = errors[operation].__cause__
        assert isinstance(cause, S3Error), operation
        assert cause.code == "NoSuchBucket"


@pytest.mark.parametrize("action", ["s3:GetObject", "s3:PutObject"])
async def test_a_bucket_policy_denial_is_access_denied(
    make_backend: BackendFactory, minio_client: Minio, policy_bucket: str, action: str
) -> None:
    backend = make_backend()
    await backend.put("k", b"v")
    minio_client.set_bucket_policy(policy_bucket, deny_policy(policy_bucket, action, "*"))
    denied: list[Any] = (
        [backend.get("k")]
        if action == "s3:GetObject"
        else [backend.put("k", b"w"), backend.put("new", b"w", if_absent=True)]
    )
    try:
        for call in denied:
            with pytest.raises(AccessDeniedError) as raised:
                await call
            assert "HTTP 403" in str(raised.value)
    finally:
        minio_client.delete_bucket_policy(policy_bucket)
    assert await backend.get("k") == b"v"


# -- a server that checks credentials --------------------------------------------------


# The servers that check signatures, and what each refuses: RGW's users own their
# buckets, and the kit makes one user on it, so "no permission" is tried on moto.
REFUSALS = [
    ("moto-auth", "unknown access key", "InvalidAccessKeyId"),
    ("moto-auth", "wrong secret", "SignatureDoesNotMatch"),
    ("moto-auth", "user without permission", "AccessDenied"),
    ("rgw", "unknown access key", "InvalidAccessKeyId"),
    ("rgw", "wrong secret", "SignatureDoesNotMatch"),
]


def _boto3_iam(server: S3Server) -> Any:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )
    return session.client("iam", endpoint_url=server.endpoint_url)


def _user_without_permission(server: S3Server) -> dict[str, str]:
    """A new IAM user of moto's, with a key and no policy at all."""
    iam = _boto3_iam(server)
    name = f"memo-user-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


@pytest.mark.parametrize(("kind", "who", "code"), REFUSALS)
async def test_refused_credentials_are_access_denied_and_never_shown(
    request: pytest.FixtureRequest, kind: str, who: str, code: str
) -> None:
    server: S3Server = request.getfixturevalue(S3_SERVER_FIXTURES[kind])
    assert server.checks_signatures
    bucket = server.new_bucket()
    if who == "user without permission":
        user = _user_without_permission(server)
        access_key, secret_key = user["access"], user["secret"]
    else:
        access_key = "AKIAUNKNOWNUNKNOWN00" if who == "unknown access key" else server.access_key
        secret_key = SECRET
    host = server.endpoint_url.removeprefix("http://")
    async with MinioBackend.connect(
        host,
        bucket,
        access_key=access_key,
        secret_key=secret_key,
        secure=False,
        region=server.region,
        retry=Retry(0),
    ) as backend:
        errors: list[BaseException] = []
        for call in (backend.get("k"), backend.put("k", b"v", if_absent=True)):
            with pytest.raises(AccessDeniedError) as raised:
                await call
            errors.append(raised.value)
        with pytest.raises(AccessDeniedError) as listing:
            [key async for key in backend.list("")]
        errors.append(listing.value)
        for error in errors:
            assert isinstance(error.__cause__, S3Error)
            assert error.__cause__.code == code
            assert code in str(error)
            assert_no_secret(error, backend, secret=secret_key)


# -- throttling, server errors, dropped connections, timeouts (through the proxy) -----------


async def test_throttling_that_passes_is_absorbed_by_the_clients_retries(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    await backend.put("k", b"v")
    s3_proxy.forget()
    s3_proxy.fail_next(503, "SlowDown", times=2, method="GET")
    assert await backend.get("k") == b"v"
    assert len(s3_proxy.requests("GET")) == 3


async def test_throttling_that_persists_is_throttled_with_the_s3_code(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    s3_proxy.fail_next(503, "SlowDown", times=100)
    with pytest.raises(ThrottledError) as raised:
        await backend.get("k")
    assert isinstance(raised.value.__cause__, S3Error)
    assert raised.value.__cause__.code == "SlowDown"
    assert raised.value.transient is True
    assert len(s3_proxy.requests()) == 4, "one attempt and the client's 3 retries"


@pytest.mark.parametrize("operation", ["get", "put", "put if absent", "delete", "list"])
async def test_server_errors_that_persist_are_transient(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy, operation: str
) -> None:
    backend = make_backend(client=proxied_client)
    s3_proxy.fail_next(500, "InternalError", times=100)
    with pytest.raises(TransientBackendError) as raised:
        await _run(backend, operation)
    assert type(raised.value) is TransientBackendError
    assert "InternalError (HTTP 500)" in str(raised.value)


async def test_a_dropped_connection_is_retried_then_transient(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    s3_proxy.drop_next(times=1)
    await backend.put("k", b"v")  # the client's retry absorbs one drop
    s3_proxy.drop_next(times=100)
    with pytest.raises(TransientBackendError) as raised:
        await backend.get("k")
    assert isinstance(raised.value.__cause__, urllib3.exceptions.HTTPError)


async def test_a_read_timeout_is_transient(
    make_backend: BackendFactory, s3_server: S3Server, s3_proxy: S3Proxy
) -> None:
    impatient = builders.minio_client(
        s3_server, endpoint=s3_proxy.url, read_timeout=0.2, retry=Retry(0)
    )
    try:
        backend = make_backend(client=impatient)
        s3_proxy.stall_next(2.0)
        with pytest.raises(TransientBackendError) as raised:
            await backend.get("k")
        assert "timed out" in str(raised.value).lower()
    finally:
        impatient._http.clear()


async def test_a_refused_connection_is_transient(make_backend: BackendFactory) -> None:
    nobody = Minio(
        "127.0.0.1:9",  # the discard port: nothing listens on loopback
        access_key="testing",
        secret_key=SECRET,
        secure=False,
        region="us-east-1",
        http_client=make_http_client(2, retry=Retry(1, backoff_factor=0)),
    )
    backend = make_backend(client=nobody)
    with pytest.raises(TransientBackendError) as raised:
        await backend.get("k")
    assert isinstance(raised.value.__cause__, urllib3.exceptions.MaxRetryError)
    assert_no_secret(raised.value, backend, secret=SECRET)


async def test_no_error_or_repr_shows_the_secret_key(
    make_backend: BackendFactory, s3_server: S3Server, s3_proxy: S3Proxy
) -> None:
    # moto without authentication accepts any secret; a server that checks gets its own.
    secret = s3_server.secret_key if s3_server.checks_signatures else SECRET
    client = builders.minio_client(
        s3_server, endpoint=s3_proxy.url, secret_key=secret, retry=default_retry(0)
    )
    try:
        backend = make_backend(client=client)
        await backend.put("k", b"v")
        errors: list[BaseException] = []
        for status, code in [(503, "SlowDown"), (500, "InternalError"), (403, "AccessDenied")]:
            for operation in ("get", "put if absent", "list"):
                s3_proxy.fail_next(status, code)
                with pytest.raises(BackendError) as raised:
                    await _run(backend, operation)
                errors.append(raised.value)
        missing = make_backend(client=client, bucket="taquba-memo-no-such-bucket")
        with pytest.raises(ContainerNotFoundError) as raised_missing:
            await missing.get("k")
        errors.append(raised_missing.value)
        for error in errors:
            assert_no_secret(error, backend, secret=secret)
    finally:
        client._http.clear()


# -- helpers ---------------------------------------------------------------------------


async def _run(backend: MinioBackend, operation: str) -> None:
    if operation == "get":
        await backend.get("k")
    elif operation == "put":
        await backend.put("k", b"v")
    elif operation == "put if absent":
        await backend.put("fresh", b"v", if_absent=True)
    elif operation == "delete":
        await backend.delete("k")
    elif operation == "list":
        [key async for key in _listing(backend)]
    else:
        raise AssertionError(operation)


async def _listing(backend: MinioBackend) -> AsyncIterator[str]:
    async for key in backend.list(""):
        yield key


def assert_no_secret(error: BaseException, backend: MinioBackend, *, secret: str) -> None:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for exc in chain:
        for text in (str(exc), repr(exc), repr(exc.args)):
            assert secret not in text, f"{type(exc).__name__} shows the secret"
    assert secret not in repr(backend)
