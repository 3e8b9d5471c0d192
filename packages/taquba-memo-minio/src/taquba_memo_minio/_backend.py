"""MinioBackend: a MemoBackend on any S3-compatible bucket, through the MinIO Python SDK.

The SDK is synchronous. Every SDK call runs on a bounded thread pool
(:class:`~taquba_memo.adapter_kit.BlockingRunner`) no larger than the client's
urllib3 connection pool, so the event loop never blocks and no thread waits
for, or opens, a connection beyond the pool.

After a fork, the child gets a fresh thread pool and clears its copy of the
urllib3 pool, so its first request opens a connection of its own (``after_fork``).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import minio
from minio import Minio
from minio.deleteobjects import DeleteError, DeleteObject
from minio.helpers import MAX_PART_SIZE, MIN_PART_SIZE, check_bucket_name
from taquba_memo.adapter_kit import (
    READ_CHUNK_BYTES,
    BlockingBackendBase,
    BoundedBuffer,
    check_key,
    check_max_bytes,
    check_start_after,
    check_value,
    chunked,
    entry_too_large,
    is_after,
)
from taquba_memo.backend import Capabilities, ListedObject
from taquba_memo.errors import (
    BackendError,
    DeleteManyError,
    InvalidArgumentError,
    InvalidConfigurationError,
    InvalidValueTypeError,
    NotSupportedError,
    ValueTooLargeError,
)
from urllib3.util.retry import Retry

from taquba_memo_minio._errors import (
    SDK_ERRORS,
    KeyNotDeleted,
    is_conditional_conflict,
    is_missing_object,
    is_precondition_failed,
    map_minio_error,
)
from taquba_memo_minio._http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    make_http_client,
    pool_size,
)

__all__ = [
    "CONDITIONAL_PUT_MAX_BYTES",
    "DEFAULT_PART_SIZE",
    "MAX_DELETE_BATCH",
    "MinioBackend",
    "sdk_sends_conditional_header",
]

logger = logging.getLogger("taquba_memo.minio")


MAX_DELETE_BATCH: Final = 1000
"""Most keys S3's DeleteObjects takes in one request."""

LIST_PAGE_SIZE: Final = 1000
"""Keys per ListObjectsV2 page (the SDK always asks for S3's maximum, 1000)."""

DEFAULT_PART_SIZE: Final = 16 * 1024 * 1024
"""Plain puts up to this size go in one request; larger ones as a multipart upload."""

CONDITIONAL_PUT_MAX_BYTES: Final = MAX_PART_SIZE
"""Largest value ``put(..., if_absent=True)`` accepts: 5 GiB, S3's limit for one PUT.

A conditional put always sends its value in one request, whatever its size,
so the server checks ``If-None-Match`` when it creates the object."""

_CONTENT_TYPE: Final = "application/octet-stream"
_MAX_NAME_BYTES: Final = 1024  # S3 object keys are at most 1024 bytes of UTF-8
_DEFAULT_SDK_POOL: Final = 10  # the SDK's own PoolManager keeps 10 connections per host

# A conditional write racing another one gets 409 ConditionalRequestConflict;
# S3 asks the client to retry. Bounded, with a short, growing pause.
_CONFLICT_RETRIES: Final = 5
_CONFLICT_BACKOFF_SECONDS: Final = 0.05

# The minor version whose private single-request upload was read and tested
# to send headers unchanged (see sdk_sends_conditional_header).
_VERIFIED_SDK_SERIES: Final = "7.2."


def sdk_sends_conditional_header() -> bool:
    """Whether the installed SDK can send ``If-None-Match: *`` on a PutObject request.

    The SDK's public ``put_object`` has no way to: every entry of its
    ``metadata`` argument that is not a standard or ``x-amz-`` header is
    renamed ``x-amz-meta-...`` (``minio.helpers.normalize_headers``), so an
    ``If-None-Match`` entry becomes inert metadata and the write overwrites.
    The private ``Minio._put_object(bucket, name, data, headers)``, which
    ``put_object`` itself calls for a single-part upload, passes ``headers``
    to the request unchanged. This adapter uses it only on the SDK series it
    was read and tested against (7.2.x, pinned in the package's
    requirements), and only if its signature still takes ``headers``; on any
    other SDK, ``conditional_put`` is not declared and ``if_absent`` raises
    :class:`~taquba_memo.NotSupportedError` rather than overwrite.
    """
    if not getattr(minio, "__version__", "").startswith(_VERIFIED_SDK_SERIES):
        return False
    put_one = getattr(Minio, "_put_object", None)
    if put_one is None:
        return False
    try:
        parameters = inspect.signature(put_one).parameters
    except (TypeError, ValueError):
        return False
    return list(parameters)[:5] == ["self", "bucket_name", "object_name", "data", "headers"]


_ENDPOINT_FIX = (
    "give HOST[:PORT] with no scheme or path (for example 127.0.0.1:9000), "
    "and secure=False for plain HTTP"
)
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


def _check_endpoint(endpoint: object) -> None:
    """Refuse an endpoint the SDK would accept but could never connect to (no host, a path)."""
    if not isinstance(endpoint, str):
        raise InvalidConfigurationError(f"endpoint must be str, not {type(endpoint).__name__}")
    parts = urlsplit(f"//{endpoint}")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    host = (
        parts.netloc.rsplit(":", 1)[0] if ":" in parts.netloc.rsplit("]", 1)[-1] else parts.netloc
    )
    if parts.path or parts.query or parts.fragment or port == 0 or not _HOST_NAME.fullmatch(host):
        raise InvalidConfigurationError(f"invalid S3 endpoint {endpoint!r}; {_ENDPOINT_FIX}")


class MinioBackend(BlockingBackendBase[Minio]):
    """Objects in one bucket of an S3-compatible store, optionally under a base path.

    Build it from a ``minio.Minio`` client you already have, or let
    :meth:`connect` build one with a connection pool sized to match::

        MinioBackend(Minio("minio.internal:9000", access_key=..., secret_key=...), "memos")
        MinioBackend.connect("minio.internal:9000", "memos", access_key=..., secret_key=...)

    How each operation behaves:

    * ``get`` downloads the object; ``NoSuchKey`` is ``None``.
    * ``put`` sends values below ``part_size`` (default 16 MiB) in one PUT and
      larger ones as a multipart upload, one part at a time.
    * ``put(..., if_absent=True)`` sends one PUT with ``If-None-Match: *``,
      whatever the value's size (up to 5 GiB, S3's single-request limit), so
      the store checks the condition when it creates the object; there is no
      multipart path whose completion could overwrite. ``412
      PreconditionFailed`` is returned as False. A ``409
      ConditionalRequestConflict`` (another conditional write to the key in
      flight) is retried up to 5 times. See :func:`sdk_sends_conditional_header`
      for how the header is sent; the capability is declared only when it can be.
    * ``delete`` treats ``NoSuchKey`` as success (S3 does too).
    * ``delete_many`` sends DeleteObjects requests of 1000 keys through
      ``remove_objects``, whose result is lazy (it deletes nothing until
      iterated): each batch is iterated to the end on the pool. Keys the store
      reports as failed, and every key of a batch whose request failed, are
      raised together as :class:`~taquba_memo.DeleteManyError` after every
      batch was attempted. Missing keys succeed.
    * ``list`` is a recursive ListObjectsV2 with the raw prefix, 1000 keys a
      page, in S3's byte order; a consumer that stops early stops the paging.

    Keys with an empty, ``.`` or ``..`` segment, a control character, or that
    make an object name over 1024 bytes raise
    :class:`~taquba_memo.InvalidKeyError` before any I/O: HTTP clients
    normalise dot segments away, and S3's XML cannot carry control characters.

    ``max_concurrency`` bounds the SDK calls in flight; it defaults to the
    client's pool size (``maxsize`` of its ``http_client``, 10 for a client the
    SDK built itself). A larger value would open connections the pool then
    discards, so it is logged as a warning.

    Retries and timeouts belong to the client's ``http_client``:
    :meth:`connect` uses :func:`~taquba_memo_minio.make_http_client` (urllib3
    retries with backoff for connection failures, 429 and 5xx; 10 s connect
    and 60 s read timeouts). Failures left after them are raised as
    :class:`~taquba_memo.BackendError` subclasses, mapped in one place
    (``taquba_memo_minio._errors.map_minio_error``).
    """

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        base_path: str = "",
        max_concurrency: int | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if not isinstance(client, Minio):
            raise InvalidValueTypeError(
                f"expected a minio.Minio client, not {type(client).__name__}"
            )
        if not isinstance(bucket, str):
            raise InvalidValueTypeError(f"bucket must be str, not {type(bucket).__name__}")
        try:
            check_bucket_name(bucket)
        except ValueError as exc:
            raise InvalidArgumentError(f"invalid bucket name {bucket!r}: {exc}") from None
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise InvalidArgumentError(f"part_size must be {MIN_PART_SIZE}..{MAX_PART_SIZE} bytes")
        connections = pool_size(client._http, _DEFAULT_SDK_POOL)
        super().__init__(
            client,
            base_path=base_path,
            max_concurrency=max_concurrency,
            pool_size=connections,
            thread_name="taquba-memo-minio",
        )
        self._bucket = bucket
        self._part_size = part_size
        if self.max_concurrency > connections:
            logger.warning(
                "max_concurrency=%d exceeds the client's connection pool (%d per host); "
                "the extra connections are opened and discarded for every request",
                self.max_concurrency,
                connections,
            )
        self._capabilities = Capabilities(
            ordered_listing=True,
            conditional_put=sdk_sends_conditional_header(),
            max_delete_batch=MAX_DELETE_BATCH,
        )

    @classmethod
    def connect(
        cls,
        endpoint: str,
        bucket: str,
        *,
        access_key: str,
        secret_key: str,
        session_token: str | None = None,
        secure: bool = True,
        region: str | None = None,
        base_path: str = "",
        max_concurrency: int = 16,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: Retry | None = None,
        cert_check: bool = True,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> MinioBackend:
        """Build a client for ``endpoint`` (``host[:port]``) and a backend that owns it.

        The client's connection pool keeps ``max_concurrency`` connections per
        host, matching the backend's thread pool. ``retry`` defaults to
        :func:`~taquba_memo_minio.default_retry`. Credentials are always
        explicit: a client without them would send unsigned requests.
        ``aclose()`` closes the client's connections.
        """
        if not access_key or not secret_key:
            raise InvalidArgumentError("connect() needs an access key and a secret key")
        _check_endpoint(endpoint)
        http_client = make_http_client(
            max_concurrency,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=retry,
            cert_check=cert_check,
        )
        try:
            client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                session_token=session_token,
                secure=secure,
                region=region,
                http_client=http_client,
            )
        except ValueError as exc:
            http_client.clear()
            raise InvalidConfigurationError(
                f"invalid S3 endpoint {endpoint!r}: {exc}; {_ENDPOINT_FIX}"
            ) from None
        return cls._owning_its_client(
            client,
            bucket,
            base_path=base_path,
            max_concurrency=max_concurrency,
            part_size=part_size,
        )

    # -- what it is ------------------------------------------------------------

    @property
    def bucket(self) -> str:
        return self._bucket

    def _described(self) -> dict[str, object]:
        base_url = getattr(self._client, "_base_url", None)
        host = getattr(base_url, "host", "?")
        scheme = "https" if getattr(base_url, "is_https", True) else "http"
        return {
            "endpoint": f"{scheme}://{host}",
            "bucket": self._bucket,
            "base_path": self._base_path,
        }

    # -- calls ---------------------------------------------------------------

    _sdk_errors = SDK_ERRORS
    _max_name_bytes = _MAX_NAME_BYTES

    def _map_error(self, exc: BaseException, *, operation: str, target: str) -> BackendError:
        return map_minio_error(exc, operation=operation, target=target)

    # -- reads ---------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return await self._read(self._object_name(key), key, None)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """:meth:`get`, or ``EntryTooLargeError`` for an object over ``max_bytes``.

        The same one request: an answer whose ``Content-Length`` is over the
        bound is refused unread, and a body is read in chunks that stop at
        the bound. The connection of an unfinished answer is closed, not
        drained.
        """
        return await self._read(self._object_name(key), key, check_max_bytes(max_bytes))

    async def _read(self, name: str, key: str, max_bytes: int | None) -> bytes | None:
        try:
            return await self._runner.run(self._download, name, key, max_bytes)
        except SDK_ERRORS as exc:
            if is_missing_object(exc):
                return None
            raise map_minio_error(exc, operation="get", target=key) from exc

    def _download(self, name: str, key: str, max_bytes: int | None) -> bytes:
        response = self._client.get_object(self._bucket, name)
        try:
            if max_bytes is None:
                return bytes(response.read())
            length = response.headers.get("Content-Length")
            if length is not None and int(length) > max_bytes:
                raise entry_too_large(key, max_bytes, int(length))
            buffer = BoundedBuffer(key, max_bytes)
            for chunk in response.stream(READ_CHUNK_BYTES):
                buffer.write(chunk)
            return buffer.getvalue()
        finally:
            response.close()  # an unfinished body closes its connection instead of draining
            response.release_conn()

    # -- writes --------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        name, data = self._object_name(key), check_value(value)
        if if_absent:
            return await self._create(key, name, data)
        await self._call("put", key, self._upload, name, data)
        return True

    def _upload(self, name: str, data: bytes) -> None:
        self._client.put_object(
            self._bucket,
            name,
            io.BytesIO(data),
            len(data),
            content_type=_CONTENT_TYPE,
            part_size=self._part_size,
            num_parallel_uploads=1,  # parts one at a time: this thread, one connection
        )

    async def _create(self, key: str, name: str, data: bytes) -> bool:
        if not self._capabilities.conditional_put:
            raise NotSupportedError(
                f"minio {getattr(minio, '__version__', '?')} cannot send If-None-Match; "
                f"this adapter sends it with the SDK series {_VERIFIED_SDK_SERIES}x only"
            )
        if len(data) > CONDITIONAL_PUT_MAX_BYTES:
            raise ValueTooLargeError(
                f"put(if_absent=True) sends the value in one request, which S3 limits to "
                f"{CONDITIONAL_PUT_MAX_BYTES} bytes; this one has {len(data)}"
            )
        pause = _CONFLICT_BACKOFF_SECONDS
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                await self._runner.run(self._upload_if_absent, name, data)
            except SDK_ERRORS as exc:
                if is_precondition_failed(exc):
                    return False
                if is_conditional_conflict(exc) and attempt < _CONFLICT_RETRIES:
                    await asyncio.sleep(pause)
                    pause *= 2
                    continue
                raise map_minio_error(exc, operation="put if absent", target=key) from exc
            return True
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _upload_if_absent(self, name: str, data: bytes) -> None:
        """One PutObject request carrying ``If-None-Match: *`` (sdk_sends_conditional_header)."""
        self._client._put_object(
            self._bucket,
            name,
            data,
            headers={"Content-Type": _CONTENT_TYPE, "If-None-Match": "*"},
        )

    # -- deletes -------------------------------------------------------------

    async def delete(self, key: str) -> None:
        name = self._object_name(key)
        try:
            await self._runner.run(self._client.remove_object, self._bucket, name)
        except SDK_ERRORS as exc:
            if is_missing_object(exc):
                return
            raise map_minio_error(exc, operation="delete", target=key) from exc

    async def delete_many(self, keys: Sequence[str]) -> None:
        names = {key: self._object_name(key) for key in keys}  # refuse bad keys before any I/O
        if not names:
            return
        batches = list(chunked(names, MAX_DELETE_BATCH))
        outcomes = await asyncio.gather(*(self._delete_batch(batch, names) for batch in batches))
        failures: dict[str, BackendError] = {}
        for outcome in outcomes:
            failures.update(outcome)
        if failures:
            raise DeleteManyError(failures)

    async def _delete_batch(
        self, keys: list[str], names: dict[str, str]
    ) -> dict[str, BackendError]:
        """Delete one batch of at most 1000 keys; return the keys that failed."""
        try:
            errors = await self._runner.run(self._remove_objects, [names[key] for key in keys])
        except SDK_ERRORS as exc:
            # The request itself failed: no key of the batch is known to be gone.
            return {
                key: _chained(map_minio_error(exc, operation="delete", target=key), exc)
                for key in keys
            }
        key_for_name = {names[key]: key for key in keys}
        failures: dict[str, BackendError] = {}
        for error in errors:
            failed = KeyNotDeleted(error)
            if is_missing_object(failed):
                continue
            if error.name is None:
                # An error about the request, not a key: it concerns the whole batch.
                targets = keys
            else:
                targets = [key_for_name.get(error.name, error.name.removeprefix(self._name_prefix))]
            for key in targets:
                failures[key] = _chained(
                    map_minio_error(failed, operation="delete", target=key), failed
                )
        return failures

    def _remove_objects(self, names: list[str]) -> list[DeleteError]:
        """One DeleteObjects request; the SDK's lazy result is iterated here, to the end."""
        return list(self._client.remove_objects(self._bucket, [DeleteObject(n) for n in names]))

    # -- listing -------------------------------------------------------------

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for item in self._listing(prefix):
            yield item.key

    async def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        """:meth:`list` from the first key greater than ``start_after`` (S3's ``StartAfter``)."""
        check_start_after(start_after)
        async for item in self._listing(prefix, start_after):
            yield item.key

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`list` with each object's size and last-modified time, from the same pages."""
        async for item in self._listing(prefix):
            yield item

    async def _listing(
        self, prefix: str, start_after: str | None = None
    ) -> AsyncIterator[ListedObject]:
        prefix = check_key(prefix)
        full_prefix = self._name_prefix + prefix
        start = None if start_after is None else self._name_prefix + start_after
        names: Iterator[Any] = iter(
            self._client.list_objects(
                self._bucket, prefix=full_prefix or None, recursive=True, start_after=start
            )
        )
        strip = len(self._name_prefix)
        try:
            while True:
                page = await self._call("list", prefix, _next_objects, names, LIST_PAGE_SIZE)
                if not page:
                    return
                for item in page:
                    # S3 promises both; a proxy or an S3-compatible server might not.
                    if not item.key.startswith(full_prefix):
                        continue
                    if start is None or is_after(item.key, start):
                        yield ListedObject(item.key[strip:], item.size, item.last_modified)
        finally:
            close = getattr(names, "close", None)
            if close is not None:
                close()  # the SDK's page generator; it holds no connection between pages

    # -- lifecycle -----------------------------------------------------------

    def _drop_inherited_connections(self) -> None:
        self._client._http.clear()

    def _close_client(self) -> None:
        self._client._http.clear()


def _next_objects(objects: Iterator[Any], count: int) -> list[ListedObject]:
    """Up to ``count`` objects from the SDK's listing; empty when it is exhausted.

    With ``count`` equal to the page size, a call stops right after the last
    name of a page, leaving the SDK's generator suspended before it requests
    the next one; a consumer that stops early so never causes another request.
    """
    found: list[ListedObject] = []
    for item in objects:
        found.append(ListedObject(str(item.object_name), int(item.size or 0), item.last_modified))
        if len(found) == count:
            break
    return found


def _chained(error: BackendError, cause: BaseException) -> BackendError:
    error.__cause__ = cause
    return error
