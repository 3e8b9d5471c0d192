"""ObstoreBackend beyond the shared suite: capabilities per store, keys, errors, secrets, URLs."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import obstore
import obstore.exceptions as obstore_errors
import pytest
from obstore.store import AzureStore, GCSStore, HTTPStore, MemoryStore, S3Store
from taquba_memo import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    DeleteManyError,
    InvalidArgumentError,
    InvalidKeyError,
    MemoStore,
    NotSupportedError,
    ThrottledError,
    TransientBackendError,
)
from taquba_memo._urls import open_backend
from taquba_memo.backend import Capabilities
from taquba_memo_conformance.adapter_checks import (
    check_every_exception_mapped,
    check_key_refused,
    check_missing_container,
    exception_classes,
)
from taquba_memo_conformance.proxies import (
    CountingProxy,
    FaultProxy,
    RequestCounts,
    classify_request,
)
from taquba_memo_conformance.servers import AzureServer, GCSServer, S3Server
from taquba_memo_obstore import ObstoreBackend, capabilities_for, open_url
from taquba_memo_obstore._errors import is_missing_object, map_obstore_error, redact

from ...builders import azurite_url
from .conftest import CLIENT, azure_store, gcs_store, s3_store

if TYPE_CHECKING:
    from obstore.store import ObjectStore, RetryConfig

SECRET = "s3cr3t-NEVER-SHOWN-4f9a"


async def collect(listing: AsyncIterator[str]) -> list[str]:
    return [key async for key in listing]


def offline_gcs_store(private_key: str = "") -> GCSStore:
    """A GCSStore that is built but never used: its key points at a closed local port."""
    key = {
        "gcs_base_url": "http://127.0.0.1:1",
        "disable_oauth": True,
        "client_email": "x@y",
        "private_key": private_key,
        "private_key_id": private_key,
    }
    return GCSStore("bucket", service_account_key=json.dumps(key))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- capabilities ---------------------------------------------------------------


def test_capabilities_follow_the_store_type(tmp_path: Path) -> None:
    s3 = S3Store("b", endpoint="http://127.0.0.1:1", access_key_id="k", secret_access_key="s")
    gcs = offline_gcs_store()
    azure = AzureStore("c", account_name="a", access_key="S0VZ", endpoint="http://127.0.0.1:1/a")
    declared = {
        type(store).__name__: capabilities_for(store) for store in (s3, gcs, azure, MemoryStore())
    }
    assert declared == {
        "S3Store": Capabilities(ordered_listing=True, conditional_put=True, max_delete_batch=1000),
        "GCSStore": Capabilities(ordered_listing=True, conditional_put=True, max_delete_batch=100),
        "AzureStore": Capabilities(
            ordered_listing=True, conditional_put=True, max_delete_batch=256
        ),
        "MemoryStore": Capabilities(
            ordered_listing=True, conditional_put=True, max_delete_batch=1000
        ),
    }


def test_an_s3_store_with_conditional_puts_disabled_does_not_declare_them() -> None:
    store = S3Store(
        "b",
        endpoint="http://127.0.0.1:1",
        access_key_id="k",
        secret_access_key="s",
        conditional_put="disabled",
    )
    assert capabilities_for(store).conditional_put is False


def test_a_store_type_without_a_contract_is_refused() -> None:
    with pytest.raises(TypeError, match="supports S3Store"):
        ObstoreBackend(HTTPStore("http://127.0.0.1:1/"))


async def test_put_if_absent_without_the_capability_raises_not_supported() -> None:
    weaker = Capabilities(ordered_listing=True, conditional_put=False, max_delete_batch=10)
    backend = ObstoreBackend(MemoryStore(), capabilities=weaker)
    assert backend.capabilities == weaker
    with pytest.raises(NotSupportedError):
        await backend.put("k", b"v", if_absent=True)
    assert await backend.get("k") is None


# -- keys and base paths ------------------------------------------------------------

INVALID_KEYS = ["", "/a", "a/", "a//b", ".", "a/./b", "a/../b", "..", "ctl\x01", "nul\x00", "d\x7f"]


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_a_key_obstore_would_change_is_refused_before_any_io(key: str) -> None:
    store = MemoryStore()
    await check_key_refused(ObstoreBackend(store), key)
    assert await obstore.list(store).collect_async() == []


async def test_staging_like_names_are_ordinary_keys_on_an_object_store() -> None:
    assert await ObstoreBackend(MemoryStore()).put("run/step#12", b"v")


async def test_base_path_is_normalised_and_hidden_from_keys() -> None:
    store = MemoryStore()
    backend = ObstoreBackend(store, base_path="/tenant//memos/")
    assert backend.base_path == "tenant/memos"
    await backend.put("run/1", b"v")
    assert [meta["path"] for meta in await obstore.list(store).collect_async()] == [
        "tenant/memos/run/1"
    ]
    assert await collect(backend.list("")) == ["run/1"]
    assert await collect(backend.list("ru")) == ["run/1"]


@pytest.mark.parametrize("base_path", ["a/../b", ".", "a/\x01"])
def test_an_invalid_base_path_is_refused(base_path: str) -> None:
    with pytest.raises(InvalidKeyError):
        ObstoreBackend(MemoryStore(), base_path=base_path)


async def test_a_prefix_no_valid_key_can_have_lists_nothing() -> None:
    backend = ObstoreBackend(MemoryStore())
    await backend.put("a/b", b"v")
    assert await collect(backend.list("a//")) == []
    assert await collect(backend.list("/a")) == []
    assert await collect(backend.list("a/./")) == []
    assert await collect(backend.list("a/.")) == []  # a partial last segment is fine


# -- listing: raw prefixes, offsets and early stops, counted on the wire ----------------


@pytest.fixture
def s3_recorder(s3_server: S3Server) -> Iterator[CountingProxy]:
    with CountingProxy(s3_server.endpoint_url) as proxy:
        yield proxy


def list_requests(proxy: CountingProxy) -> list[str]:
    return [r.target for r in proxy.records if r.method == "GET" and "list-type=2" in r.target]


async def test_s3_lists_a_raw_prefix_from_just_before_it_and_stops_after_it(
    s3_server: S3Server, s3_recorder: CountingProxy
) -> None:
    bucket = s3_server.new_bucket()
    store = s3_store(s3_server, bucket, endpoint=s3_recorder.url, retry_config=None)
    backend = ObstoreBackend(store, base_path="base")
    before = [f"p/aaa/{i:04d}" for i in range(1100)]
    after = [f"p/zzz/{i:04d}" for i in range(1100)]
    wanted = ["p/run/0", "p/run-x/1", "p/runner"]
    semaphore = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with semaphore:
            await backend.put(key, b"")

    await asyncio.gather(*(put(key) for key in [*before, *wanted, *after]))
    s3_recorder.reset()
    assert await collect(backend.list("p/run")) == sorted(wanted)
    # One page: the offset skipped p/aaa/*, and the first p/zzz key ended it.
    [request] = list_requests(s3_recorder)
    assert "start-after=base%2Fp%2Fru" in request
    s3_recorder.reset()
    listing = cast("AsyncGenerator[str, None]", backend.list("p/"))
    assert await anext(listing) == "p/aaa/0000"
    await listing.aclose()
    assert len(list_requests(s3_recorder)) == 1, "stopping early fetches no further page"
    s3_recorder.reset()
    assert len(await collect(backend.list("p/"))) == 2203
    assert len(list_requests(s3_recorder)) == 3


# -- errors: one mapping for every obstore exception ---------------------------------------

# Every class obstore 0.12 raises, with the taquba-memo error it becomes when
# the message carries no HTTP status (None: the object is missing).
EXPECTED_MAPPING: dict[str, type[Exception] | None] = {
    "BaseError": BackendError,
    "GenericError": BackendError,
    "NotFoundError": None,
    "InvalidPathError": InvalidKeyError,
    "JoinError": BackendError,
    "NotSupportedError": NotSupportedError,
    "AlreadyExistsError": BackendError,
    "PreconditionError": BackendError,
    "NotModifiedError": BackendError,
    "PermissionDeniedError": AccessDeniedError,
    "UnauthenticatedError": AccessDeniedError,
    "UnknownConfigurationKeyError": BackendError,
}


def test_every_obstore_exception_class_is_mapped() -> None:
    check_every_exception_mapped(
        exception_classes(obstore_errors, defined_there=False),
        EXPECTED_MAPPING,
        lambda exc: (
            None if is_missing_object(exc) else map_obstore_error(exc, operation="get", target="k")
        ),
    )


@pytest.mark.parametrize(
    ("exception", "operation", "expected"),
    [
        (FileNotFoundError("Object at location k not found"), "get", None),
        (FileNotFoundError("Object at location k not found"), "delete", None),
        (FileNotFoundError("404 Not Found: {}"), "put", ContainerNotFoundError),
        (FileNotFoundError("<Code>NoSuchBucket</Code>"), "get", ContainerNotFoundError),
        (FileNotFoundError("<Code>ContainerNotFound</Code>"), "delete", ContainerNotFoundError),
        (FileNotFoundError("walked away"), "list", BackendError),
        (ValueError("Could not parse path"), "get", InvalidKeyError),
        (TimeoutError("timed out"), "get", TransientBackendError),
        (ConnectionResetError("reset"), "get", TransientBackendError),
        (PermissionError(13, "Permission denied"), "put", AccessDeniedError),
        (OSError(28, "No space left on device"), "put", BackendError),
        (OSError(24, "Too many open files"), "put", TransientBackendError),
    ],
)
def test_builtin_exceptions_are_mapped(
    exception: BaseException, operation: str, expected: type[Exception] | None
) -> None:
    if expected is None:
        assert is_missing_object(exception)
    else:
        error = map_obstore_error(exception, operation=operation, target="k")
        assert type(error) is expected


def status_error(status: str, body: str = "") -> obstore_errors.GenericError:
    return obstore_errors.GenericError(
        f"Generic S3 error: Error performing GET http://h/b/k in 1ms - "
        f"Server returned non-2xx status code: {status}: {body}"
    )


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (status_error("429 Too Many Requests"), ThrottledError),
        (status_error("503 Service Unavailable", "<Code>SlowDown</Code>"), ThrottledError),
        (status_error("500 Internal Server Error"), TransientBackendError),
        (status_error("502 Bad Gateway"), TransientBackendError),
        (status_error("408 Request Timeout"), TransientBackendError),
        (status_error("403 Forbidden"), AccessDeniedError),
        (status_error("401 Unauthorized"), AccessDeniedError),
        (status_error("404 Not Found", "<Code>NoSuchBucket</Code>"), ContainerNotFoundError),
        (status_error("409 Conflict"), BackendError),
        (status_error("501 Not Implemented"), NotSupportedError),
        (obstore_errors.GenericError("HTTP error: error sending request"), TransientBackendError),
        (obstore_errors.GenericError("Unable to open file: os error 13"), AccessDeniedError),
        (obstore_errors.GenericError("Filenames containing trailing '/#\\d+/'"), BackendError),
    ],
)
def test_generic_errors_are_mapped_by_the_status_in_their_message(
    exception: BaseException, expected: type[Exception]
) -> None:
    error = map_obstore_error(exception, operation="get", target="k")
    assert type(error) is expected
    if isinstance(error, BackendError):
        assert error.transient is issubclass(expected, TransientBackendError)


def test_redact_removes_query_strings_and_echoed_signature_material() -> None:
    text = (
        "Error performing GET https://acct.blob.core.windows.net/c/k?sv=2020&sig=SECRET in 1ms"
        " - <AWSAccessKeyId>AKIDSECRET</AWSAccessKeyId><StringToSign>SECRET</StringToSign>"
        "\n\nDebug source:\nGeneric { token: SECRET }"
    )
    redacted = redact(text)
    assert "SECRET" not in redacted
    assert "https://acct.blob.core.windows.net/c/k?<redacted>" in redacted


# -- errors against real servers ------------------------------------------------------


async def delete_behind_batch_faults(
    s3_server: S3Server, bucket: str, fault: str, keys: list[str]
) -> tuple[DeleteManyError, RequestCounts]:
    """``delete_many(keys)`` through a proxy that answers every batch delete with ``fault``:
    the error it raised, and the requests it sent."""
    with FaultProxy(
        s3_server.endpoint_url,
        rate=1.0,
        faults={fault: 1},
        eligible=lambda request: classify_request(request.method, request.target) == "batch",
    ) as proxy:
        no_retries: RetryConfig = {"max_retries": 0, "retry_timeout": timedelta(seconds=5)}
        store = s3_store(s3_server, bucket, endpoint=proxy.url, retry_config=no_retries)
        before = proxy.counts()
        with pytest.raises(DeleteManyError) as raised:
            await ObstoreBackend(store).delete_many(keys)
        return raised.value, proxy.counts() - before


async def test_a_batch_that_fails_transiently_is_reported_whole_without_a_request_per_key(
    s3_server: S3Server,
) -> None:
    bucket = s3_server.new_bucket()
    keys = [f"run/{i:04d}" for i in range(1500)]  # two batches: 1000 and 500
    await obstore.put_async(s3_store(s3_server, bucket), "run/0000", b"v")
    error, sent = await delete_behind_batch_faults(s3_server, bucket, "503", keys)
    assert sent.by_kind == {"batch": 2}  # both batches tried, no single deletes
    assert sorted(error.failures) == keys
    assert error.transient
    first = error.failures["run/0000"]
    assert isinstance(first, TransientBackendError)
    assert isinstance(first.__cause__, Exception)


async def test_a_batch_that_fails_for_good_is_redone_key_by_key(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    direct = ObstoreBackend(s3_store(s3_server, bucket))
    keys = [f"run/{i}" for i in range(5)]
    for key in keys:
        await direct.put(key, b"v")
    error, sent = await delete_behind_batch_faults(s3_server, bucket, "403", keys)
    # obstore deletes a single S3 key through a one-key batch too: each key is
    # asked for once more, and reports its own error.
    assert sent.by_kind == {"batch": 1 + len(keys)}
    assert sorted(error.failures) == keys
    assert all(isinstance(failure, AccessDeniedError) for failure in error.failures.values())
    assert not error.transient
    assert sorted(await collect(direct.list("run/"))) == keys  # nothing was deleted


async def test_a_missing_s3_bucket_is_not_a_missing_key(s3_server: S3Server) -> None:
    backend = ObstoreBackend(s3_store(s3_server, "taquba-memo-never-created"))
    errors = await check_missing_container(backend)
    assert isinstance(errors["get"].__cause__, FileNotFoundError)


async def test_a_missing_azure_container_is_not_a_missing_key(azure_server: AzureServer) -> None:
    await check_missing_container(ObstoreBackend(azure_store(azure_server, "never-created")))


async def test_a_write_to_a_missing_gcs_bucket_is_container_not_found(
    gcs_server: GCSServer, gcs_base_url: str
) -> None:
    # fake-gcs-server answers a read of a missing bucket with a bare 404, the
    # same as a missing object, so only a write can tell the two apart there.
    backend = ObstoreBackend(gcs_store(gcs_base_url, "never-created", gcs_server))
    with pytest.raises(ContainerNotFoundError):
        await backend.put("k", b"v")


async def test_refused_connections_are_transient() -> None:
    store = S3Store(
        "b",
        endpoint=f"http://127.0.0.1:{closed_port()}",
        access_key_id="k",
        secret_access_key="s",
        region="us-east-1",
        client_options={"allow_http": True},
        retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
    )
    backend = ObstoreBackend(store)
    for attempt in (backend.get("k"), backend.put("k", b"v"), collect(backend.list(""))):
        with pytest.raises(TransientBackendError):
            await attempt


async def test_azure_bad_credentials_are_access_denied_and_never_shown(
    azure_server: AzureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = azure_server.new_container()
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite_url(azure_server))
    wrong_key = "d3Jvbmcta2V5LSIgKyBTRUNSRVQ="  # base64, as Azure keys are
    store = AzureStore(
        container,
        use_emulator=True,
        access_key=wrong_key,
        client_options=CLIENT,
        retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
    )
    backend = ObstoreBackend(store)
    with pytest.raises(AccessDeniedError) as raised:
        await backend.get("k")
    for text in (str(raised.value), repr(raised.value), repr(backend), str(backend)):
        assert wrong_key not in text


def test_repr_never_shows_credentials(tmp_path: Path) -> None:
    stores: list[ObjectStore] = [
        S3Store(
            "bucket",
            endpoint="http://127.0.0.1:1",
            access_key_id="AKID",
            secret_access_key=SECRET,
            session_token=SECRET,
            region="eu-west-1",
            client_options={"allow_http": True},
        ),
        offline_gcs_store(private_key=SECRET),
        AzureStore("container", account_name="acct", sas_key=f"sv=1&sig={SECRET}"),
        AzureStore("container", use_emulator=True),  # obstore's own repr panics on this one
        MemoryStore(),
    ]
    for store in stores:
        text = repr(ObstoreBackend(store, base_path="base"))
        assert SECRET not in text
        assert "AKID" not in text
        assert text.startswith(f"ObstoreBackend({type(store).__name__}(")
        assert text.endswith("base_path='base')")
    assert repr(ObstoreBackend(stores[0])) == (
        "ObstoreBackend(S3Store(bucket='bucket', endpoint='http://127.0.0.1:1', "
        "region='eu-west-1'), base_path='')"
    )


# -- URLs -------------------------------------------------------------------------------


def test_open_url_is_registered_for_every_scheme_it_serves() -> None:
    registered = {
        entry_point.name: entry_point.value
        for entry_point in importlib.metadata.entry_points(group="taquba_memo.backends")
        if entry_point.dist is not None and entry_point.dist.name == "taquba-memo-obstore"
    }
    assert registered == dict.fromkeys(
        ["s3", "gs", "az", "s3+obstore", "gs+obstore", "az+obstore"],
        "taquba_memo_obstore:open_url",
    )


async def test_open_url_memory() -> None:
    memory = open_url("memory://")
    assert isinstance(memory.store, MemoryStore)
    assert await memory.put("k", b"v")
    assert open_url("memory://").store is not memory.store, "every open is a fresh store"


async def test_open_url_s3_takes_settings_from_the_query_and_secrets_from_the_env(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    bucket = s3_server.new_bucket()
    backend = open_url(
        f"s3+obstore://{bucket}/tenant/a?endpoint={s3_server.endpoint_url}"
        f"&region={s3_server.region}&allow_http=true&virtual_hosted_style_request=false"
        "&timeout=30s&max_retries=1&retry_timeout=10"
    )
    assert backend.base_path == "tenant/a"
    assert backend.capabilities == capabilities_for(backend.store)
    assert isinstance(backend.store, S3Store)
    assert backend.store.client_options == {"allow_http": "true", "timeout": "30s"}
    assert backend.store.retry_config is not None
    assert backend.store.retry_config["max_retries"] == 1
    assert await backend.put("k", b"v", if_absent=True)
    # The core's open_backend finds this adapter through the plain s3 entry point.
    parent = open_backend(
        f"s3://{bucket}/tenant?endpoint={s3_server.endpoint_url}&region={s3_server.region}"
        "&allow_http=true&virtual_hosted_style_request=false"
    )
    assert isinstance(parent, ObstoreBackend)
    assert await collect(parent.list("")) == ["a/k"]


async def test_open_url_gs_and_az_reach_their_emulators(
    gcs_server: GCSServer,
    gcs_base_url: str,
    azure_server: AzureServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        json.dumps(
            {
                "gcs_base_url": gcs_base_url,
                "disable_oauth": True,
                "client_email": "",
                "private_key": "",
                "private_key_id": "",
            }
        ),
    )
    gs = open_url(f"gs://{gcs_server.new_bucket()}/base?allow_http=true&max_retries=1")
    assert await gs.put("k", b"gcs")
    assert await gs.get("k") == b"gcs"
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite_url(azure_server))
    az = open_url(f"az://{azure_server.new_container()}/base?use_emulator=true&max_retries=1")
    assert await az.put("k", b"azure")
    assert await collect(az.list("")) == ["k"]
    async with MemoStore(az, "memos") as store:
        memo = store.new_memo("run-1", 1)
        assert await memo.put("step", b"memo", if_absent=True)
        assert await memo.get("step") == b"memo"
        assert await store.clear_memos_for_run("run-1") == 1


@pytest.mark.parametrize(
    "url",
    [
        f"s3://bucket/base?secret_access_key={SECRET}",
        f"s3://bucket/base?aws_session_token={SECRET}",
        f"az://container?sas_key={SECRET}",
        f"az://container?account_key={SECRET}",
        f"gs://bucket?service_account_key={SECRET}",
        f"s3://user:{SECRET}@bucket/base",
    ],
)
def test_open_url_refuses_credentials_in_the_url_without_repeating_them(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="environment") as raised:
        open_url(url)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://bucket/base", "unsupported URL scheme"),
        ("s3:///base", "names no bucket"),
        ("s3://bucket?no_such_setting=1", "cannot open"),
        ("s3://bucket?max_retries=many", "must be a number"),
    ],
)
def test_open_url_refuses_bad_urls_with_a_value_error(url: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        open_url(url)
