"""GCSBackend's own behaviour against a real GCS JSON-API server (fake-gcs-server here).

The conformance suite proves the protocol; these tests pin what is specific to
GCS: the upload path of conditional writes, paging, both delete paths, the
retry policy, and how failures are mapped. Tests that need batch requests or
injected faults go through a loopback proxy in front of the emulator
(``gcs_proxy``); each delete test states which delete path it ran.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2.credentials import Credentials as TokenCredentials
from taquba_memo import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    DeleteManyError,
    InvalidValueTypeError,
    ThrottledError,
    TransientBackendError,
)
from taquba_memo_conformance.adapter_checks import check_key_refused, check_missing_container
from taquba_memo_conformance.servers import GCSServer
from taquba_memo_gcs import DEFAULT_GCS_RETRY, GCSBackend

from ... import builders
from .conftest import record_delete_path
from .gcs_proxy import GCSProxy

MiB = 1024 * 1024
SHORT_RETRY = DEFAULT_GCS_RETRY.with_timeout(2.0).with_delay(initial=0.05, maximum=0.2)


async def keys_of(backend: GCSBackend, prefix: str = "") -> list[str]:
    return [key async for key in backend.list(prefix)]


# -- conditional writes ------------------------------------------------------


async def test_if_absent_creates_once_and_keeps_the_first_value(gcs_backend: GCSBackend) -> None:
    assert await gcs_backend.put("k", b"first", if_absent=True) is True
    assert await gcs_backend.put("k", b"second", if_absent=True) is False
    assert await gcs_backend.get("k") == b"first"


async def test_if_absent_above_8_mib_is_atomic(gcs_backend: GCSBackend) -> None:
    # The SDK's public upload goes resumable above 8 MiB, and fake-gcs-server
    # checks a resumable upload's precondition only when its session starts
    # (measured: 8 of 8 racing creators won). The backend sends one request.
    value = b"v" * (20 * MiB)
    racers = 8
    results = await asyncio.gather(
        *(gcs_backend.put("big", value + bytes([i]), if_absent=True) for i in range(racers))
    )
    assert results.count(True) == 1
    stored = await gcs_backend.get("big")
    assert stored is not None
    assert stored[-1] == results.index(True)
    assert await gcs_backend.put("big", b"late", if_absent=True) is False


async def test_unconditional_put_above_8_mib_round_trips(gcs_backend: GCSBackend) -> None:
    value = bytes(range(256)) * (9 * MiB // 256 + 1)
    assert await gcs_backend.put("large", value) is True
    assert await gcs_backend.get("large") == value
    assert await gcs_backend.put("large", b"small again") is True
    assert await gcs_backend.get("large") == b"small again"


# -- listing -----------------------------------------------------------------


async def test_listing_pages_through_every_key_in_byte_order(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    names = ["10", "9", "B", "a", "a/run", "a/run-x/1", "a/run/1", "a/é", "a/z", "b"]
    async with GCSBackend(gcs_client, gcs_bucket, list_page_size=3) as backend:
        for name in names:
            await backend.put(name, b"v")
        assert await keys_of(backend) == sorted(names, key=lambda k: k.encode())
        assert await keys_of(backend, "a/run") == ["a/run", "a/run-x/1", "a/run/1"]


async def test_stopping_a_listing_early_requests_no_more_pages(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy
) -> None:
    async with GCSBackend(proxied_client, gcs_bucket, list_page_size=3) as backend:
        for i in range(10):
            await backend.put(f"k{i}", b"v")
        listed = []
        async for key in backend.list("k"):
            listed.append(key)
            if len(listed) == 4:
                break
        assert listed == ["k0", "k1", "k2", "k3"]
        assert gcs_proxy.count("GET", f"/storage/v1/b/{gcs_bucket}/o?") == 2


# -- base path ---------------------------------------------------------------


async def test_base_path_roots_every_key(gcs_client: storage.Client, gcs_bucket: str) -> None:
    outside = GCSBackend(gcs_client, gcs_bucket)
    async with outside, GCSBackend(gcs_client, gcs_bucket, base_path="/tenant/memos/") as inside:
        assert inside.base_path == "tenant/memos"
        await inside.put("run/1", b"in")
        await outside.put("tenant/memos-other/x", b"sibling")
        assert await outside.get("tenant/memos/run/1") == b"in"
        assert await keys_of(inside) == ["run/1"]
        assert await keys_of(inside, "run/") == ["run/1"]
        await inside.delete_many(["run/1"])
        assert await keys_of(outside) == ["tenant/memos-other/x"]


# -- deletes -----------------------------------------------------------------


async def test_fake_gcs_server_refuses_batches_and_deletes_one_by_one(
    gcs_server: GCSServer,
    gcs_backend: GCSBackend,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    if gcs_server.emulator != "fake-gcs-server":
        pytest.skip("only fake-gcs-server refuses batch requests")
    keys = [f"run/{i:03}" for i in range(150)]
    for key in keys:
        await gcs_backend.put(key, b"v")
    with caplog.at_level(logging.INFO, logger="taquba_memo.gcs"):
        await gcs_backend.delete_many([*keys, "run/missing"])
    assert gcs_backend.batch_delete_supported is False  # path: one request per key
    assert "refused a batch request" in caplog.text
    assert await keys_of(gcs_backend) == []
    record_delete_path(gcs_backend, request)


async def test_real_gcs_deletes_in_batches(
    gcs_server: GCSServer, gcs_backend: GCSBackend, request: pytest.FixtureRequest
) -> None:
    if gcs_server.emulator is not None:
        pytest.skip(f"{gcs_server.emulator} has no batch endpoint; the proxy tests cover batches")
    keys = [f"run/{i:03}" for i in range(150)]
    for key in keys:
        await gcs_backend.put(key, b"v")
    await gcs_backend.delete_many([*keys, "run/missing"])
    assert gcs_backend.batch_delete_supported is True  # path: batch requests
    assert await keys_of(gcs_backend) == []
    record_delete_path(gcs_backend, request)


async def test_batches_hold_100_deletes_and_missing_keys_succeed(
    gcs_backend: GCSBackend,
    proxied_client: storage.Client,
    gcs_bucket: str,
    gcs_proxy: GCSProxy,
    request: pytest.FixtureRequest,
) -> None:
    keys = [f"run/{i:03}" for i in range(230)]
    await asyncio.gather(*(gcs_backend.put(key, b"v") for key in keys))
    async with GCSBackend(proxied_client, gcs_bucket) as backend:
        await backend.delete_many([*keys, "run/missing-1", "run/missing-2"])
        assert backend.batch_delete_supported is True  # path: batch requests
        assert gcs_proxy.count("POST", "/batch/storage/v1") == 3  # 100 + 100 + 32
        assert gcs_proxy.count("DELETE") == 0
        assert await keys_of(backend) == []
        record_delete_path(backend, request)


async def test_a_refused_batch_is_detected_once(
    gcs_server: GCSServer,
    gcs_bucket: str,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    proxy = GCSProxy(gcs_server.endpoint_url, serve_batches=False).start()
    client = builders.gcs_client(gcs_server, endpoint=proxy.endpoint_url)
    try:
        async with GCSBackend(client, gcs_bucket) as backend:
            for i in range(5):
                await backend.put(f"a/{i}", b"v")
                await backend.put(f"b/{i}", b"v")
            with caplog.at_level(logging.INFO, logger="taquba_memo.gcs"):
                await backend.delete_many([f"a/{i}" for i in range(5)])
                await backend.delete_many([f"b/{i}" for i in range(5)])
            assert backend.batch_delete_supported is False  # path: one request per key
            assert proxy.count("POST", "/batch/storage/v1") == 1
            assert proxy.count("DELETE") == 10
            assert caplog.text.count("refused a batch request") == 1
            assert await keys_of(backend) == []
            record_delete_path(backend, request)
    finally:
        client.close()
        proxy.close()


async def test_a_failed_batch_request_falls_back_to_retried_single_deletes(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy
) -> None:
    async with GCSBackend(proxied_client, gcs_bucket, retry=SHORT_RETRY) as backend:
        for i in range(3):
            await backend.put(f"k{i}", b"v")
        gcs_proxy.fail_next(503, path_contains="/batch/")
        gcs_proxy.fail_next(503, path_contains="/o/k1")  # and one single delete, once
        await backend.delete_many(["k0", "k1", "k2"])
        assert gcs_proxy.count("DELETE") == 4
        assert await keys_of(backend) == []


async def test_deleting_from_a_missing_bucket_fails_every_key(
    proxied_client: storage.Client, gcs_proxy: GCSProxy, request: pytest.FixtureRequest
) -> None:
    async with GCSBackend(proxied_client, "no-such-bucket-for-batch") as backend:
        with pytest.raises(DeleteManyError) as raised:
            await backend.delete_many(["a", "b"])
        assert backend.batch_delete_supported is True  # path: batch requests
        record_delete_path(backend, request)
    assert set(raised.value.failures) == {"a", "b"}
    assert all(isinstance(e, ContainerNotFoundError) for e in raised.value.failures.values())


# -- missing bucket, missing object ------------------------------------------


async def test_a_missing_object_is_none_and_deleting_it_succeeds(gcs_backend: GCSBackend) -> None:
    assert await gcs_backend.get("nothing/here") is None
    await gcs_backend.delete("nothing/here")
    await gcs_backend.delete_many(["nothing/here", "nor/there"])


async def test_a_missing_bucket_is_not_a_missing_object(gcs_client: storage.Client) -> None:
    async with GCSBackend(gcs_client, "no-such-bucket-anywhere") as backend:
        await check_missing_container(backend)


# -- retries and error mapping end to end -------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
async def test_transient_statuses_are_retried(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy, status: int
) -> None:
    async with GCSBackend(proxied_client, gcs_bucket, retry=SHORT_RETRY) as backend:
        gcs_proxy.fail_next(status, path_contains=f"/{gcs_bucket}/o")
        assert await backend.put("k", b"v", if_absent=True) is True  # conditional write retried
        gcs_proxy.fail_next(status, path_contains=f"/{gcs_bucket}/o")
        assert await backend.get("k") == b"v"
        gcs_proxy.fail_next(status, path_contains=f"/{gcs_bucket}/o")
        assert await keys_of(backend) == ["k"]
        gcs_proxy.fail_next(status, path_contains=f"/{gcs_bucket}/o")
        await backend.delete("k")
        assert await backend.get("k") is None


async def test_a_large_conditional_write_is_retried_too(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy
) -> None:
    async with GCSBackend(proxied_client, gcs_bucket, retry=SHORT_RETRY) as backend:
        gcs_proxy.fail_next(503, path_contains="/upload/")
        assert await backend.put("big", b"x" * (9 * MiB), if_absent=True) is True
        assert gcs_proxy.count("POST", "uploadType=multipart") == 2
        assert gcs_proxy.count("POST", "uploadType=resumable") == 0


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AccessDeniedError), (403, AccessDeniedError), (429, ThrottledError)],
)
async def test_statuses_map_to_typed_errors(
    proxied_client: storage.Client,
    gcs_bucket: str,
    gcs_proxy: GCSProxy,
    status: int,
    error: type[Exception],
) -> None:
    retry = DEFAULT_GCS_RETRY.with_timeout(0.3).with_delay(initial=0.05, maximum=0.05)
    async with GCSBackend(proxied_client, gcs_bucket, retry=retry) as backend:
        operations: dict[str, Callable[[], Awaitable[object]]] = {
            "get": lambda: backend.get("k"),
            "put": lambda: backend.put("k", b"v"),
            "put_if_absent": lambda: backend.put("k", b"v", if_absent=True),
            "delete": lambda: backend.delete("k"),
            "list": lambda: keys_of(backend),
        }
        for operation in operations.values():
            gcs_proxy.fail_next(status, times=1000, path_contains=f"/{gcs_bucket}/o")
            with pytest.raises(error) as raised:
                await operation()
            assert raised.value.__cause__ is not None
            gcs_proxy.clear_faults()


async def test_access_denied_is_not_retried(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy
) -> None:
    async with GCSBackend(proxied_client, gcs_bucket) as backend:
        gcs_proxy.fail_next(403, times=5, path_contains="/o/k")
        with pytest.raises(AccessDeniedError):
            await backend.get("k")
        assert gcs_proxy.count("GET", "/o/k") == 1


async def test_retries_stop_at_the_deadline_as_a_transient_error(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy
) -> None:
    retry = DEFAULT_GCS_RETRY.with_timeout(0.3).with_delay(initial=0.05, maximum=0.05)
    async with GCSBackend(proxied_client, gcs_bucket, retry=retry) as backend:
        gcs_proxy.fail_next(500, times=1000, path_contains="/o/k")
        with pytest.raises(TransientBackendError) as raised:
            await backend.get("k")
        assert raised.value.transient


async def test_no_answer_is_a_transient_error(gcs_server: GCSServer) -> None:
    closed = GCSProxy(upstream=gcs_server.endpoint_url).start()
    endpoint = closed.endpoint_url
    closed.close()  # nothing listens on this port any more
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )
    async with GCSBackend(client, "bucket", retry=None) as backend:
        with pytest.raises(TransientBackendError):
            await backend.get("k")
        with pytest.raises(TransientBackendError):
            await backend.put("k", b"v", if_absent=True)
    client.close()


async def test_no_credential_appears_in_errors_or_repr(
    gcs_server: GCSServer, gcs_bucket: str, gcs_proxy: GCSProxy
) -> None:
    secret = "ya29.do-not-print-this-token-4f1c"
    client = storage.Client(
        project=gcs_server.project,
        credentials=TokenCredentials(token=secret),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs_proxy.endpoint_url},
    )
    async with GCSBackend(client, gcs_bucket, retry=None) as backend:
        texts = [repr(backend), str(backend)]
        for status in (401, 403, 500):
            gcs_proxy.fail_next(status, path_contains="/o/k")
            with pytest.raises(BackendError) as raised:
                await backend.get("k")
            error: BaseException | None = raised.value
            while error is not None:  # the mapped error and every chained SDK error
                texts += [str(error), repr(error)]
                error = error.__cause__ or error.__context__
    client.close()
    sent = [r.header("authorization") or "" for r in gcs_proxy.seen]
    assert any(secret in value for value in sent)  # the token really was in play
    assert not [text for text in texts if secret in text]


# -- input checks ------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "a//b", "a/", "/a", "./a", "a/../b", "a\nb", "x" * 1025])
async def test_keys_gcs_cannot_hold_are_refused_before_any_request(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy, key: str
) -> None:
    async with GCSBackend(proxied_client, gcs_bucket) as backend:
        await check_key_refused(backend, key)
    assert gcs_proxy.seen == []


async def test_wrong_types_are_refused_before_any_request(
    proxied_client: storage.Client, gcs_bucket: str, gcs_proxy: GCSProxy
) -> None:
    async with GCSBackend(proxied_client, gcs_bucket) as backend:
        with pytest.raises(InvalidValueTypeError):
            await backend.put("k", "text")  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            await backend.get(b"k")  # type: ignore[arg-type]
    assert gcs_proxy.seen == []


# -- construction and lifecycle ------------------------------------------------


async def test_a_bucket_object_or_a_client_and_name_build_the_same_backend(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    async with (
        GCSBackend(gcs_client.bucket(gcs_bucket)) as from_bucket,
        GCSBackend(gcs_client, gcs_bucket) as from_client,
    ):
        await from_bucket.put("k", b"v")
        assert await from_client.get("k") == b"v"
        assert from_bucket.bucket_name == from_client.bucket_name == gcs_bucket
    with pytest.raises(TypeError):
        GCSBackend(gcs_client)
    with pytest.raises(TypeError):
        GCSBackend(gcs_client.bucket(gcs_bucket), gcs_bucket)
    with pytest.raises(TypeError):
        GCSBackend("gs://bucket")


async def test_concurrency_matches_the_clients_connection_pool(
    gcs_client: storage.Client, gcs_bucket: str
) -> None:
    async with GCSBackend(gcs_client, gcs_bucket) as backend:
        assert backend.max_concurrency == 10  # requests' default pool per host


async def test_connect_builds_and_owns_a_client_with_a_matching_pool(
    gcs_server: GCSServer, gcs_bucket: str
) -> None:
    backend = GCSBackend.connect(
        gcs_bucket,
        base_path="memos",
        project=gcs_server.project,
        credentials=builders.gcs_credentials(gcs_server),
        endpoint=gcs_server.endpoint_url,
        max_concurrency=24,
    )
    async with backend:
        assert backend.max_concurrency == 24
        adapter = backend._client._http.get_adapter(gcs_server.endpoint_url)
        assert adapter._pool_maxsize == 24
        await asyncio.gather(*(backend.put(f"k{i}", b"v") for i in range(48)))
        assert len(await keys_of(backend)) == 48
    await backend.aclose()  # a second close is harmless
