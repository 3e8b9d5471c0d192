"""MinioBackend against the real S3 server: what the conformance suite cannot see.

The conditional header on the wire, the lazy ``remove_objects`` really
iterated, batches of 1000, pages not fetched after an early stop, the
concurrency bound, and keys refused before any request. The recording proxy
(``s3_proxy``) sits between the SDK and the server where a test needs to see
the requests.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import minio
import pytest
import taquba_memo_minio._backend as backend_module
from minio import Minio
from minio.deleteobjects import DeleteObject
from taquba_memo import (
    AccessDeniedError,
    ContainerNotFoundError,
    DeleteManyError,
    InvalidValueTypeError,
    NotSupportedError,
    TransientBackendError,
    ValueTooLargeError,
)
from taquba_memo_conformance.adapter_checks import check_key_refused
from taquba_memo_conformance.servers import S3Server
from taquba_memo_minio import MinioBackend, sdk_sends_conditional_header
from taquba_memo_minio._errors import KeyNotDeleted

from .conftest import BackendFactory, deny_policy
from .s3_proxy import S3Proxy

LARGE_VALUE_BYTES = 20 * 1024 * 1024 + 7  # above the SDK's 5 MiB parts and our 16 MiB threshold


async def collect(listing: AsyncIterator[str]) -> list[str]:
    return [key async for key in listing]


async def put_many(backend: MinioBackend, keys: list[str]) -> None:
    await asyncio.gather(*(backend.put(key, b"") for key in keys))


async def proxied_backend_over(
    keys: list[str], make_backend: BackendFactory, proxied_client: Minio, **options: Any
) -> MinioBackend:
    """A backend through the recording proxy, on a bucket that already holds ``keys``."""
    await put_many(make_backend(), keys)
    return make_backend(client=proxied_client, **options)


def object_count(request_body: bytes) -> int:
    return request_body.count(b"<Object>")


# -- conditional put -----------------------------------------------------------


def test_the_installed_sdk_is_the_series_the_conditional_header_was_verified_with() -> None:
    # The pin (minio>=7.2.20,<7.3) and this check move together: a new SDK
    # series must be read and these tests rerun before it is declared.
    assert minio.__version__.startswith("7.2.")
    assert sdk_sends_conditional_header()


async def test_the_public_put_object_turns_if_none_match_into_inert_metadata(
    minio_client: Minio, minio_bucket: str
) -> None:
    # Why the adapter does not use put_object(metadata={"If-None-Match": "*"}):
    # it is sent as x-amz-meta-if-none-match and the second write overwrites.
    for value in (b"first", b"second"):
        minio_client.put_object(
            minio_bucket, "k", io.BytesIO(value), len(value), metadata={"If-None-Match": "*"}
        )
    response = minio_client.get_object(minio_bucket, "k")
    try:
        assert response.read() == b"second"
    finally:
        response.close()
        response.release_conn()


async def test_put_if_absent_sends_the_real_if_none_match_header(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    assert await backend.put("k", b"first", if_absent=True) is True
    assert await backend.put("k", b"second", if_absent=True) is False
    puts = s3_proxy.requests("PUT")
    assert len(puts) == 2
    for put in puts:
        assert put.headers.get("if-none-match") == "*"
        assert not any(name.startswith("x-amz-meta-") for name in put.headers)
    assert await backend.get("k") == b"first"


async def test_put_without_if_absent_sends_no_condition(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    await backend.put("k", b"one")
    await backend.put("k", b"two")
    assert [p.headers.get("if-none-match") for p in s3_proxy.requests("PUT")] == [None, None]
    assert await backend.get("k") == b"two"


async def test_a_large_put_if_absent_is_one_conditional_request_never_a_multipart_upload(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    first, second = os.urandom(LARGE_VALUE_BYTES), os.urandom(LARGE_VALUE_BYTES)
    assert await backend.put("large", first, if_absent=True) is True
    assert await backend.put("large", second, if_absent=True) is False
    assert await backend.get("large") == first
    writes = [r for r in s3_proxy.requests() if r.method in ("PUT", "POST")]
    assert [(r.method, r.is_multipart, r.headers.get("if-none-match")) for r in writes] == [
        ("PUT", False, "*"),
        ("PUT", False, "*"),
    ]


async def test_a_large_plain_put_is_a_multipart_upload(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    value = os.urandom(LARGE_VALUE_BYTES)
    await backend.put("large", value)
    assert await backend.get("large") == value
    parts = [r for r in s3_proxy.requests("PUT") if r.is_multipart]
    assert len(parts) == 2, "20 MiB in 16 MiB parts"


async def test_a_conditional_conflict_is_retried_until_the_write_lands(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    s3_proxy.fail_next(409, "ConditionalRequestConflict", times=2, method="PUT")
    assert await backend.put("k", b"v", if_absent=True) is True
    assert len(s3_proxy.requests("PUT")) == 3
    assert await backend.get("k") == b"v"


async def test_a_conditional_conflict_that_persists_is_transient_and_writes_nothing(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    s3_proxy.fail_next(409, "ConditionalRequestConflict", times=100, method="PUT")
    with pytest.raises(TransientBackendError) as raised:
        await backend.put("k", b"v", if_absent=True)
    assert "ConditionalRequestConflict" in str(raised.value)
    assert len(s3_proxy.requests("PUT")) == 6, "one attempt and five retries"
    s3_proxy.clear_faults()
    assert await backend.get("k") is None


async def test_a_value_over_the_single_request_limit_is_refused_before_any_io(
    make_backend: BackendFactory,
    proxied_client: Minio,
    s3_proxy: S3Proxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 5 GiB is not allocated in a test: the limit is lowered instead.
    monkeypatch.setattr(backend_module, "CONDITIONAL_PUT_MAX_BYTES", 8)
    backend = make_backend(client=proxied_client)
    with pytest.raises(ValueTooLargeError):
        await backend.put("k", b"123456789", if_absent=True)
    assert s3_proxy.requests() == []
    assert await backend.put("k", b"12345678", if_absent=True) is True


async def test_an_unverified_sdk_declares_no_conditional_put_and_refuses_if_absent(
    make_backend: BackendFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(minio, "__version__", "7.3.0")
    assert sdk_sends_conditional_header() is False
    backend = make_backend()
    assert backend.capabilities.conditional_put is False
    with pytest.raises(NotSupportedError):
        await backend.put("k", b"v", if_absent=True)
    assert await backend.get("k") is None, "nothing was written"


# -- delete_many -----------------------------------------------------------------


async def test_remove_objects_deletes_nothing_until_its_result_is_iterated(
    minio_client: Minio, minio_bucket: str
) -> None:
    # The SDK behaviour delete_many has to deal with.
    minio_client.put_object(minio_bucket, "k", io.BytesIO(b"v"), 1)
    errors = minio_client.remove_objects(minio_bucket, [DeleteObject("k")])
    assert [o.object_name for o in minio_client.list_objects(minio_bucket)] == ["k"]
    assert list(errors) == []
    assert list(minio_client.list_objects(minio_bucket)) == []


async def test_delete_many_sends_batches_of_1000_and_really_deletes(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    keys = [f"d/{i:05d}" for i in range(2001)]
    backend = await proxied_backend_over(keys, make_backend, proxied_client)
    await backend.delete_many([*keys, "d/missing", keys[0]])
    batches = s3_proxy.batch_deletes()
    # 2002 distinct names (the duplicate is sent once), in DeleteObjects requests of 1000.
    assert sorted(object_count(b.body) for b in batches) == [2, 1000, 1000]
    assert await collect(backend.list("d/")) == []


async def test_delete_many_reports_the_keys_the_store_refused_and_deletes_the_rest(
    make_backend: BackendFactory, policy_bucket: str, minio_client: Minio
) -> None:
    backend = make_backend("base")
    keys = [f"d/{i:04d}" for i in range(1500)]
    await put_many(backend, keys)
    held = keys[1234]
    policy = deny_policy(policy_bucket, "s3:DeleteObject", f"base/{held}")
    minio_client.set_bucket_policy(policy_bucket, policy)
    try:
        with pytest.raises(DeleteManyError) as raised:
            await backend.delete_many([*keys, "d/missing"])
    finally:
        minio_client.delete_bucket_policy(policy_bucket)
    assert set(raised.value.failures) == {held}
    failure = raised.value.failures[held]
    assert isinstance(failure, AccessDeniedError)
    assert isinstance(failure.__cause__, KeyNotDeleted)
    assert failure.__cause__.code == "AccessDenied"
    assert raised.value.transient is False
    assert await collect(backend.list("")) == [held]


async def test_a_batch_whose_request_fails_reports_its_keys_and_the_other_batches_run(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    keys = [f"d/{i:04d}" for i in range(1500)]
    # One call at a time, so the first batch request meets every injected
    # failure: one more than the client's retries (3).
    backend = await proxied_backend_over(keys, make_backend, proxied_client, max_concurrency=1)
    s3_proxy.fail_next(500, "InternalError", times=4, method="POST", query_has="delete")
    with pytest.raises(DeleteManyError) as raised:
        await backend.delete_many(keys)
    failed = set(raised.value.failures)
    assert failed == set(keys[:1000]), "the first batch failed, the second was deleted"
    assert len(s3_proxy.batch_deletes()) == 5
    assert all(isinstance(e, TransientBackendError) for e in raised.value.failures.values())
    assert raised.value.transient is True
    assert set(await collect(backend.list("d/"))) == failed


async def test_delete_many_on_a_missing_bucket_fails_every_key(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(bucket="taquba-memo-no-such-bucket")
    with pytest.raises(DeleteManyError) as raised:
        await backend.delete_many(["a", "b"])
    assert set(raised.value.failures) == {"a", "b"}
    assert all(isinstance(e, ContainerNotFoundError) for e in raised.value.failures.values())


# -- listing -----------------------------------------------------------------------


async def test_a_listing_stopped_early_requests_no_further_page(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    keys = [f"l/{i:05d}" for i in range(2500)]
    backend = await proxied_backend_over(keys, make_backend, proxied_client)

    listing = backend.list("l/")
    assert isinstance(listing, AsyncGenerator)
    assert [await anext(listing) for _ in range(3)] == keys[:3]
    await listing.aclose()
    assert len(s3_proxy.listings()) == 1

    s3_proxy.forget()
    assert await collect(backend.list("l/")) == keys
    pages = s3_proxy.listings()
    assert len(pages) == 3
    assert all(page.query["prefix"] == ["l/"] and "delimiter" in page.query for page in pages)
    assert all(page.query["delimiter"] == [""] for page in pages), "recursive: no delimiter"


async def test_a_base_path_is_the_root_of_every_key(
    make_backend: BackendFactory, minio_client: Minio, minio_bucket: str
) -> None:
    inside, outside = make_backend("tenant/a"), make_backend("tenant/ab")
    await inside.put("k", b"in")
    await outside.put("k", b"out")
    assert await collect(inside.list("")) == ["k"]
    assert await collect(inside.list("k")) == ["k"]
    names = sorted(o.object_name for o in minio_client.list_objects(minio_bucket, "", True))
    assert names == ["tenant/a/k", "tenant/ab/k"]
    await inside.delete_many(["k"])
    assert await outside.get("k") == b"out"


# -- keys, concurrency, lifecycle --------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "a//b", "/a", "a/", "./a", "a/../b", "..", "tab\there", "nul\x00", "del\x7f", "x" * 1025],
)
async def test_keys_s3_cannot_hold_exactly_are_refused_before_any_request(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy, key: str
) -> None:
    backend = make_backend(client=proxied_client)
    await check_key_refused(backend, key)
    assert s3_proxy.requests() == []


async def test_a_str_value_is_refused_before_any_request(
    make_backend: BackendFactory, proxied_client: Minio, s3_proxy: S3Proxy
) -> None:
    backend = make_backend(client=proxied_client)
    with pytest.raises(InvalidValueTypeError):
        await backend.put("k", "text", if_absent=True)  # type: ignore[arg-type]
    assert s3_proxy.requests() == []


async def test_calls_in_flight_never_exceed_max_concurrency(
    make_backend: BackendFactory,
    proxied_client: Minio,
    s3_proxy: S3Proxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = make_backend(client=proxied_client, max_concurrency=4)
    await asyncio.gather(*(backend.put(f"c/{i}", b"v") for i in range(64)))
    await asyncio.gather(*(backend.get(f"c/{i}") for i in range(64)))
    assert 1 <= s3_proxy.peak_in_flight <= 4
    assert len(s3_proxy.requests()) == 128
    assert "Connection pool is full" not in caplog.text


async def test_max_concurrency_defaults_to_the_clients_connection_pool(
    make_backend: BackendFactory, caplog: pytest.LogCaptureFixture
) -> None:
    assert make_backend().max_concurrency == 16  # conftest's make_http_client(16)
    sdk_default = Minio("127.0.0.1:1", access_key="a", secret_key="b", secure=False)
    assert make_backend(client=sdk_default).max_concurrency == 10
    with caplog.at_level(logging.WARNING, logger="taquba_memo.minio"):
        make_backend(max_concurrency=32)
    assert "exceeds the client's connection pool" in caplog.text


async def test_connect_sizes_the_pool_to_the_concurrency_and_aclose_is_idempotent(
    s3_server: S3Server, minio_bucket: str, minio_client: Minio
) -> None:
    host, secure = minio_client._base_url.host, minio_client._base_url.is_https
    backend = MinioBackend.connect(
        host,
        minio_bucket,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=secure,
        region=s3_server.region,
        max_concurrency=5,
    )
    assert backend.client._http.connection_pool_kw["maxsize"] == 5
    assert backend.max_concurrency == 5
    async with backend:
        await backend.put("k", b"v")
        assert await backend.get("k") == b"v"
    await backend.aclose()


async def test_repr_names_the_endpoint_and_bucket(make_backend: BackendFactory) -> None:
    text = repr(make_backend("base"))
    assert text.startswith("MinioBackend(endpoint='http")
    assert "base_path='base'" in text
