"""GCSBackend: a MemoBackend on a Google Cloud Storage bucket, through google-cloud-storage.

google-cloud-storage is synchronous. Every SDK call runs on a bounded thread
pool (:class:`~taquba_memo.adapter_kit.BlockingRunner`) sized to the
client's HTTP connection pool, so the event loop never blocks and no
connection is opened beyond the pool.

After a fork, the child gets a fresh thread pool and drops its copies of
the parent's HTTP sessions before its first request (``after_fork``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth.credentials import Credentials
from google.cloud import storage
from google.cloud.storage import blob as blob_module
from google.cloud.storage.retry import DEFAULT_RETRY
from taquba_memo.adapter_kit import (
    BlockingBackendBase,
    BoundedBuffer,
    check_endpoint_url,
    check_key,
    check_max_bytes,
    check_start_after,
    check_value,
    delete_each,
    is_after,
    normalize_base_path,
)
from taquba_memo.backend import Capabilities, ListedObject
from taquba_memo.errors import (
    BackendError,
    DeleteManyError,
    InvalidArgumentError,
    InvalidValueTypeError,
)

from taquba_memo_gcs._errors import (
    SDK_ERRORS,
    api_error_from_response,
    as_api_error,
    bucket_missing_error,
    is_not_found,
    is_precondition_failed,
    map_gcs_error,
    not_found_kind,
)

__all__ = ["DEFAULT_GCS_RETRY", "GCSBackend"]

logger = logging.getLogger("taquba_memo.gcs")

T = TypeVar("T")

DEFAULT_GCS_RETRY: Final[Retry] = DEFAULT_RETRY.with_timeout(60.0)
"""The SDK's retry policy (429, 408, 5xx, connection errors and timeouts, with
exponential backoff) bounded to 60 seconds in all. Every call uses it,
conditional writes included: ``if_generation_match=0`` makes a replayed create
safe (a replay that finds its own earlier write reports False, as a lost race)."""

MAX_DELETE_BATCH: Final = 100
"""GCS's JSON API takes at most 100 calls in one batch request."""

LIST_PAGE_SIZE: Final = 1000
"""Most names GCS returns in one listing page."""

# The SDK sends values up to this size in one multipart request and larger
# ones as a resumable upload (a session, then the bytes).
_SDK_SINGLE_REQUEST_LIMIT: Final[int] = getattr(blob_module, "_MAX_MULTIPART_SIZE", 8 * 1024 * 1024)

_CONTENT_TYPE: Final = "application/octet-stream"
_MAX_NAME_BYTES: Final = 1024  # GCS object names are 1-1024 bytes of UTF-8
_DEFAULT_HTTP_POOL: Final = 10  # requests' default connection pool per host


class _BatchRefused(Exception):
    """The endpoint does not understand batch requests (fake-gcs-server)."""


class GCSBackend(BlockingBackendBase[storage.Client]):
    """Objects in one GCS bucket, optionally under a base path.

    Build it from a client you already have (any authentication the SDK
    supports), or let :meth:`connect` build one::

        GCSBackend(storage.Client(), "my-bucket", base_path="memos")
        GCSBackend(client.bucket("my-bucket"), base_path="memos")
        GCSBackend.connect("my-bucket", base_path="memos")  # google.auth.default()

    How each operation behaves on GCS:

    * ``get`` downloads the object; a 404 is ``None``.
    * ``put(..., if_absent=True)`` sends ``ifGenerationMatch=0``; GCS answers
      412 when the object exists, which is returned as False. The bytes always
      go in a single request (even above the SDK's 8 MiB resumable threshold),
      so the precondition is checked when the object is created, not when an
      upload session starts: a create is atomic on every server, including
      fake-gcs-server, which checks resumable uploads only at their start.
    * ``delete`` treats a 404 as success.
    * ``delete_many`` sends batch requests of 100 deletes. Where the endpoint
      refuses batch requests (fake-gcs-server answers with an empty,
      non-multipart body), the backend notices once, logs it, and from then
      on deletes with one request per key, up to ``max_concurrency`` at a
      time; :attr:`batch_delete_supported` says which path runs. Deletes a
      batch could not do for a transient reason are retried one by one with
      the retry policy.
    * ``list`` asks for names only, ``list_page_size`` (default and most
      1000) per request, in GCS's byte order; a consumer that stops early
      stops the paging.
    * A 404 that does not say whether the bucket or the object is missing
      (fake-gcs-server's) is settled by one request for the bucket, so a
      missing bucket always raises :class:`~taquba_memo.ContainerNotFoundError`.

    Transient failures (429, 408, 5xx, resets, timeouts) are retried by the
    SDK under ``retry`` (default :data:`DEFAULT_GCS_RETRY`; ``None`` turns
    retries off); ``timeout`` bounds each HTTP request, in seconds. What
    still fails is raised as a :class:`~taquba_memo.BackendError` subclass.

    ``max_concurrency`` bounds the SDK calls in flight. It defaults to the
    size of the client's connection pool (10 for a default client), so
    threads never wait for, nor open, connections beyond the pool. When this
    backend builds the client (:meth:`connect`), the pool is sized to match.
    """

    def __init__(
        self,
        client_or_bucket: storage.Client | storage.Bucket,
        bucket_name: str | None = None,
        *,
        base_path: str = "",
        max_concurrency: int | None = None,
        retry: Retry | None = DEFAULT_GCS_RETRY,
        timeout: float | tuple[float, float] = 60.0,
        list_page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        if isinstance(client_or_bucket, storage.Bucket):
            if bucket_name is not None:
                raise InvalidValueTypeError("pass a Bucket alone, or a Client and a bucket name")
            bucket = client_or_bucket
            client = bucket.client
        elif isinstance(client_or_bucket, storage.Client):
            if not bucket_name:
                raise InvalidValueTypeError("a Client needs a bucket name")
            client = client_or_bucket
            bucket = client.bucket(bucket_name)
        else:
            kind = type(client_or_bucket).__name__
            raise InvalidValueTypeError(f"expected a storage.Client or storage.Bucket, not {kind}")
        if not 1 <= list_page_size <= LIST_PAGE_SIZE:
            raise InvalidArgumentError(f"list_page_size must be 1..{LIST_PAGE_SIZE}")
        super().__init__(
            client,
            base_path=base_path,
            max_concurrency=max_concurrency,
            pool_size=_http_pool_size(client),
            thread_name="taquba-memo-gcs",
        )
        _stop_bucket_metadata_lookups(client)
        self._bucket: storage.Bucket = bucket
        self._retry = retry
        self._timeout = timeout
        self._list_page_size = list_page_size
        self._batch_supported: bool | None = None
        self._capabilities = Capabilities(
            ordered_listing=True, conditional_put=True, max_delete_batch=MAX_DELETE_BATCH
        )

    @classmethod
    def connect(
        cls,
        bucket_name: str,
        *,
        base_path: str = "",
        project: str | None = None,
        credentials: Credentials | None = None,
        endpoint: str | None = None,
        max_concurrency: int = 16,
        retry: Retry | None = DEFAULT_GCS_RETRY,
        timeout: float | tuple[float, float] = 60.0,
    ) -> GCSBackend:
        """Build a client and a backend on ``bucket_name``; :meth:`aclose` closes both.

        Without ``credentials`` the SDK uses ``google.auth.default()``
        (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default login,
        or the metadata server). ``endpoint`` replaces the GCS API address,
        for example an emulator's ``http://127.0.0.1:4443``. The client's
        connection pool gets ``max_concurrency`` connections.
        """
        base_path = normalize_base_path(base_path)  # refuse bad input before building anything
        if endpoint:
            check_endpoint_url(endpoint, what="GCS endpoint")
        client_options = {"api_endpoint": endpoint} if endpoint else None
        client = storage.Client(
            project=project, credentials=credentials, client_options=client_options
        )
        _size_http_pool(client, max_concurrency)
        return cls._owning_its_client(
            client,
            bucket_name,
            base_path=base_path,
            max_concurrency=max_concurrency,
            retry=retry,
            timeout=timeout,
        )

    @property
    def bucket_name(self) -> str:
        return str(self._bucket.name)

    @property
    def batch_delete_supported(self) -> bool | None:
        """Which path ``delete_many`` takes: True batch requests, False one
        request per key (the endpoint refused a batch), None not known yet."""
        return self._batch_supported

    def _described(self) -> dict[str, object]:
        return {
            "bucket": self.bucket_name,
            "base_path": self._base_path,
            "endpoint": self._client._connection.API_BASE_URL,
        }

    # -- calls ---------------------------------------------------------------

    _sdk_errors = SDK_ERRORS
    _max_name_bytes = _MAX_NAME_BYTES

    def _map_error(self, exc: BaseException, *, operation: str, target: str) -> BackendError:
        """A 404 that gets here means the bucket: a missing object was settled before."""
        if is_not_found(exc):
            return bucket_missing_error(exc, operation=operation, target=target)
        return map_gcs_error(exc, operation=operation, target=target)

    async def _call_on_object(
        self, operation: str, key: str, fn: Callable[..., T], *args: Any
    ) -> T | None:
        """Run one SDK call on an object; None if the object (not the bucket) is missing."""
        try:
            return await self._runner.run(fn, *args)
        except SDK_ERRORS as exc:
            if is_not_found(exc) and not await self._bucket_is_missing(exc):
                return None
            raise self._map_error(exc, operation=operation, target=key) from exc

    async def _bucket_is_missing(self, not_found: BaseException) -> bool:
        kind = not_found_kind(not_found)
        if kind != "unclear":
            return kind == "bucket"
        exists = await self._call("bucket lookup", self.bucket_name, self._bucket_exists)
        return not exists

    def _bucket_exists(self) -> bool:
        return bool(self._bucket.exists(timeout=self._timeout, retry=self._retry))

    # -- reads ---------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        name = self._object_name(key)
        return await self._call_on_object("get", key, self._download, name)

    def _download(self, name: str) -> bytes:
        data = self._bucket.blob(name).download_as_bytes(timeout=self._timeout, retry=self._retry)
        return bytes(data)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """:meth:`get`, or ``EntryTooLargeError`` for an object over ``max_bytes``.

        The same one request as :meth:`get` (no range: a ranged read of an
        empty object answers 416, and a partial answer skips the checksum):
        the SDK streams the body in small chunks into a buffer that raises
        once past the bound, which closes the answer's connection unread.
        """
        name, max_bytes = self._object_name(key), check_max_bytes(max_bytes)
        return await self._call_on_object("get", key, self._download_at_most, name, key, max_bytes)

    def _download_at_most(self, name: str, key: str, max_bytes: int) -> bytes:
        buffer = BoundedBuffer(key, max_bytes)
        self._bucket.blob(name).download_to_file(buffer, timeout=self._timeout, retry=self._retry)
        return buffer.getvalue()

    # -- writes --------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        name, data = self._object_name(key), check_value(value)
        try:
            await self._runner.run(self._upload, name, data, if_absent)
        except SDK_ERRORS as exc:
            if if_absent and is_precondition_failed(exc):
                return False
            raise self._map_error(exc, operation="put", target=key) from exc
        return True

    def _upload(self, name: str, data: bytes, if_absent: bool) -> None:
        blob = self._bucket.blob(name)
        generation_match = 0 if if_absent else None
        if if_absent and len(data) > _SDK_SINGLE_REQUEST_LIMIT:
            _upload_in_one_request(blob, data, self._retry, self._timeout)
            return
        blob.upload_from_string(
            data,
            content_type=_CONTENT_TYPE,
            if_generation_match=generation_match,
            timeout=self._timeout,
            retry=self._retry,
        )

    # -- deletes -------------------------------------------------------------

    async def delete(self, key: str) -> None:
        name = self._object_name(key)
        await self._call_on_object("delete", key, self._delete_object, name)

    def _delete_object(self, name: str) -> None:
        self._bucket.delete_blob(name, timeout=self._timeout, retry=self._retry)

    async def delete_many(self, keys: Sequence[str]) -> None:
        names = {key: self._object_name(key) for key in keys}  # refuse bad keys before any I/O
        if not names:
            return
        pending = list(names)
        failures: dict[str, BackendError] = {}
        if self._batch_supported is not False:
            pending, failures = await self._delete_in_batches(pending, names)
        if pending:
            try:
                await delete_each(self.delete, pending, concurrency=self._runner.max_workers)
            except DeleteManyError as exc:
                failures.update(exc.failures)
        if failures:
            raise DeleteManyError(failures)

    async def _delete_in_batches(
        self, keys: list[str], names: dict[str, str]
    ) -> tuple[list[str], dict[str, BackendError]]:
        """Delete ``keys`` in batch requests.

        Returns the keys still to delete one by one (all of them if the
        endpoint refuses batches; those that failed transiently otherwise),
        and the keys that failed for good.
        """
        retry_singly: list[str] = []
        failures: dict[str, BackendError] = {}
        not_found: list[tuple[str, BaseException]] = []
        for position in range(0, len(keys), MAX_DELETE_BATCH):
            chunk = keys[position : position + MAX_DELETE_BATCH]
            try:
                statuses = await self._runner.run(
                    self._send_delete_batch, [names[key] for key in chunk]
                )
            except _BatchRefused as refusal:
                if self._batch_supported is None:
                    logger.info(
                        "GCS endpoint %s refused a batch request (%s); "
                        "deleting with one request per key from now on",
                        self._client._connection.API_BASE_URL,
                        refusal,
                    )
                self._batch_supported = False
                return retry_singly + keys[position:], failures
            except SDK_ERRORS:
                retry_singly.extend(chunk)  # the batch request itself failed: go one by one
                continue
            self._batch_supported = True
            for key, response in zip(chunk, statuses, strict=True):
                if 200 <= response.status_code < 300:
                    continue
                error = api_error_from_response(response)
                if isinstance(error, api_exceptions.NotFound):
                    not_found.append((key, error))
                    continue
                mapped = map_gcs_error(error, operation="delete", target=key)
                if mapped.transient:
                    retry_singly.append(key)
                else:
                    mapped.__cause__ = error
                    failures[key] = mapped
        # Missing objects are success; a missing bucket fails every key it held.
        if not_found and await self._bucket_is_missing(not_found[0][1]):
            for key, missing in not_found:
                mapped = bucket_missing_error(missing, operation="delete", target=key)
                mapped.__cause__ = missing
                failures[key] = mapped
        return retry_singly, failures

    def _send_delete_batch(self, names: list[str]) -> list[requests.Response]:
        """One batch request deleting ``names``: one response per name, in order."""
        try:
            with self._client.batch(raise_exception=False) as batch:
                for name in names:
                    self._bucket.delete_blob(name, timeout=self._timeout)
        except ValueError as exc:
            # The SDK could not split the answer into parts: not a batch endpoint.
            raise _BatchRefused(str(exc)) from exc
        except SDK_ERRORS as exc:
            api_error = as_api_error(exc)
            if api_error is not None and api_error.code in (404, 405, 501):
                raise _BatchRefused(f"HTTP {api_error.code} for the batch path") from exc
            raise
        responses: list[requests.Response] = list(batch._responses)
        if len(responses) != len(names):
            raise _BatchRefused(f"{len(responses)} answers for {len(names)} deletes")
        return responses

    # -- listing -------------------------------------------------------------

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for item in self._listing(prefix, "items(name),nextPageToken"):
            yield item.key

    async def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        """:meth:`list` from the first key greater than ``start_after`` (GCS's ``startOffset``).

        GCS starts at ``startOffset`` itself, so a key equal to it is dropped here.
        """
        check_start_after(start_after)
        async for item in self._listing(prefix, "items(name),nextPageToken", start_after):
            yield item.key

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`list` with each object's size and update time, from the same pages."""
        async for item in self._listing(prefix, "items(name,size,updated),nextPageToken"):
            yield item

    async def _listing(
        self, prefix: str, fields: str, start_after: str | None = None
    ) -> AsyncIterator[ListedObject]:
        prefix = check_key(prefix)
        full_prefix = self._name_prefix + prefix
        pages = self._client.list_blobs(
            self._bucket,
            prefix=full_prefix or None,
            start_offset=None if start_after is None else self._name_prefix + start_after or None,
            page_size=self._list_page_size,
            fields=fields,
            timeout=self._timeout,
            retry=self._retry,
        ).pages
        strip = len(self._name_prefix)
        while True:
            page = await self._call("list", prefix, _next_page, pages)
            if page is None:
                return
            for item in page:
                key = item.key[strip:]
                if start_after is None or is_after(key, start_after):
                    yield ListedObject(key, item.size, item.last_modified)

    # -- lifecycle -----------------------------------------------------------

    def _drop_inherited_connections(self) -> None:
        for session in _http_sessions(self._client):
            session.close()  # a closed requests.Session opens new connections when used

    def _close_client(self) -> None:
        self._client.close()


def _http_sessions(client: storage.Client) -> list[requests.Session]:
    """The client's requests sessions: its own, and its credentials' token session."""
    sessions = []
    for candidate in (
        client._http,
        getattr(getattr(client._http, "_auth_request", None), "session", None),
    ):
        if isinstance(candidate, requests.Session):
            sessions.append(candidate)
    return sessions


def _stop_bucket_metadata_lookups(client: storage.Client) -> None:
    """Turn off this client's bucket-metadata cache, so a miss stays one request.

    google-cloud-storage >= 3.17 keeps, per client, a cache of each bucket's
    project number and location, used only to label OpenTelemetry spans. It
    fills it with a background bucket GET on a client's first use, and sends
    another after every 404 (``check_and_evict``): on GCS a memo miss, the
    common case, would cost two requests. The SDK skips the cache wherever it
    is falsy, so this client's is set to None; the process environment (the
    SDK's own ``DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA`` switch, which
    applies to every client) is left alone. Spans then lack those two labels.
    """
    if getattr(client, "_bucket_metadata_cache", None) is not None:
        cache = client._bucket_metadata_cache
        cache.clear()
        client._bucket_metadata_cache = None


def _next_page(pages: Iterator[Any]) -> list[ListedObject] | None:
    """Fetch one listing page (one request); None when there are no more.

    Sizes are 0 where the page was asked for names only.
    """
    page = next(pages, None)
    if page is None:
        return None
    return [ListedObject(str(blob.name), int(blob.size or 0), blob.updated) for blob in page]


def _upload_in_one_request(
    blob: storage.Blob, data: bytes, retry: Retry | None, timeout: float | tuple[float, float]
) -> None:
    """Create ``blob`` with ``ifGenerationMatch=0`` in a single multipart request.

    Above 8 MiB the SDK's public upload methods always start a resumable
    session, and fake-gcs-server checks the precondition only when a session
    starts: measured, 8 concurrent creators of one 20 MiB key all won. A single
    request is checked when the object is written, on GCS and on the emulator.
    The SDK has no public switch for this, so this calls its multipart upload
    directly (the same one ``upload_from_string`` uses below 8 MiB).
    """
    blob._do_multipart_upload(
        blob.client,
        io.BytesIO(data),
        _CONTENT_TYPE,
        len(data),
        None,  # predefined_acl
        0,  # if_generation_match
        None,  # if_generation_not_match
        None,  # if_metageneration_match
        None,  # if_metageneration_not_match
        timeout=timeout,
        retry=retry,
    )


def _http_pool_size(client: storage.Client) -> int:
    """Connections the client's HTTP session keeps per host (requests' pool_maxsize)."""
    session = client._http
    get_adapter = getattr(session, "get_adapter", None)
    if get_adapter is None:
        return _DEFAULT_HTTP_POOL
    try:
        adapter = get_adapter(client._connection.API_BASE_URL)
    except requests.exceptions.InvalidSchema:
        return _DEFAULT_HTTP_POOL
    size = getattr(adapter, "_pool_maxsize", _DEFAULT_HTTP_POOL)
    return size if isinstance(size, int) and size > 0 else _DEFAULT_HTTP_POOL


def _size_http_pool(client: storage.Client, size: int) -> None:
    """Give a client this backend built a connection pool of ``size`` per host."""
    session = client._http
    for scheme in ("https://", "http://"):
        session.mount(scheme, requests.adapters.HTTPAdapter(pool_maxsize=size))
