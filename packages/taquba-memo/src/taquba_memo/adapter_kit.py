"""Building blocks for adapter packages, so each adapter stays thin.

Adapters for synchronous SDKs (google-cloud-storage, minio) run SDK calls on a
bounded thread pool with :class:`BlockingRunner`; backends without a batch
delete API use :func:`delete_each`; every adapter maps HTTP statuses with
:func:`error_for_status` inside its single error-mapping function, and checks
a configured endpoint with :func:`check_endpoint_url` when it is opened.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import re
import urllib.parse
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    DeleteManyError,
    InvalidConfigurationError,
    InvalidKeyError,
    InvalidValueType,
    ThrottledError,
    TransientBackendError,
)

__all__ = [
    "BlockingRunner",
    "check_endpoint_url",
    "TaskWindow",
    "check_key",
    "check_value",
    "chunked",
    "delete_each",
    "error_for_status",
    "object_name",
]

T = TypeVar("T")

DEFAULT_CONCURRENCY = 16


def check_key(key: object) -> str:
    """Refuse a non-str key before it reaches storage."""
    if not isinstance(key, str):
        raise InvalidValueType(f"key must be str, not {type(key).__name__}")
    return key


def check_value(value: object) -> bytes:
    """Refuse a value that is not bytes-like (a str is never encoded silently)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidValueType(f"value must be bytes-like, not {type(value).__name__}")


def object_name(name_prefix: str, key: object, *, max_bytes: int = 1024) -> str:
    """Return ``name_prefix + key`` if ``key`` is a valid object key, else raise.

    Refused with :class:`InvalidKeyError`: an empty, ``.`` or ``..`` segment
    (stores and SDKs normalise them away, so two keys could name one object),
    a control character (S3's XML cannot carry one; GCS refuses line breaks),
    text that is not valid UTF-8, and a name over ``max_bytes`` bytes
    (S3 and GCS cap names at 1024).
    """
    key = check_key(key)
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise InvalidKeyError(f"key {key!r} has an empty, '.' or '..' segment")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise InvalidKeyError(f"key {key!r} contains a control character")
    name = name_prefix + key
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKeyError(f"key {key!r} is not valid Unicode text") from None
    if size > max_bytes:
        raise InvalidKeyError(f"key {key!r} makes an object name over {max_bytes} bytes")
    return name


# A DNS name or IPv4 address, or an IPv6 address (urlsplit drops its brackets).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def check_endpoint_url(
    endpoint: object, *, what: str, http_allowed: bool = True, http_fix: str = ""
) -> urllib.parse.SplitResult:
    """``endpoint`` split, if it is an ``http(s)://`` URL with a host and a valid port.

    Otherwise raises :class:`~taquba_memo.InvalidConfigurationError` naming the
    fix, before any I/O. ``what`` names the setting in the message;
    ``http_allowed=False`` also refuses a plain ``http://`` endpoint, with
    ``http_fix`` saying how to allow it.
    """
    if not isinstance(endpoint, str):
        raise InvalidConfigurationError(f"{what} must be str, not {type(endpoint).__name__}")
    parts = urllib.parse.urlsplit(endpoint)
    shown = parts._replace(query="", fragment="", netloc=parts.netloc.rpartition("@")[2]).geturl()
    try:
        port_ok = parts.port != 0
    except ValueError:  # not a number, or out of range
        port_ok = False
    host_ok = bool(parts.hostname) and _HOST.fullmatch(parts.hostname or "") is not None
    if parts.scheme not in ("http", "https") or not host_ok or not port_ok:
        raise InvalidConfigurationError(
            f"{what} {shown!r} is not an http:// or https:// URL with a host; "
            "write it as https://HOST[:PORT] (or http://127.0.0.1:PORT for a local server)"
        )
    if parts.scheme == "http" and not http_allowed:
        raise InvalidConfigurationError(
            f"{what} {shown!r} is plain http://: {http_fix or 'use https://'}"
        )
    return parts


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split ``items`` into lists of at most ``size`` elements, in order."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


async def delete_each(
    delete_one: Callable[[str], Awaitable[None]],
    keys: Sequence[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> None:
    """Delete ``keys`` one request each, at most ``concurrency`` at a time.

    ``delete_one`` must treat a missing key as success and raise
    :class:`BackendError` on failure. Every key is attempted; failures are
    collected and raised together as :class:`DeleteManyError`.
    """
    failures: dict[str, BackendError] = {}
    semaphore = asyncio.Semaphore(concurrency)

    async def attempt(key: str) -> None:
        async with semaphore:
            try:
                await delete_one(key)
            except BackendError as exc:
                failures[key] = exc

    await asyncio.gather(*(attempt(key) for key in dict.fromkeys(keys)))
    if failures:
        raise DeleteManyError(failures)


def error_for_status(
    status: int | None,
    message: str,
    *,
    container_missing: bool = False,
) -> BackendError:
    """Return the :class:`BackendError` subclass that fits an HTTP status.

    ``container_missing`` says that the store reported the bucket or container
    itself as absent (S3 ``NoSuchBucket``, Azure ``ContainerNotFound``).
    A ``None`` status means no answer arrived (connection reset, timeout).
    The caller raises the result ``from`` the SDK's exception.
    """
    if container_missing:
        return ContainerNotFoundError(message)
    if status is None or status == 408:
        return TransientBackendError(message)
    if status in (401, 403):
        return AccessDeniedError(message)
    if status in (429, 503):
        return ThrottledError(message)
    if status >= 500:
        return TransientBackendError(message)
    return BackendError(message)


class TaskWindow:
    """At most ``limit`` coroutines in flight; the first error propagates.

    ``submit`` waits for a free slot, so a producer never runs ahead of the
    work by more than ``limit`` items and memory stays flat.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, work: Coroutine[Any, Any, None]) -> None:
        """Start ``work`` once fewer than ``limit`` coroutines are running."""
        try:
            while len(self._running) >= self._limit:
                done, self._running = await asyncio.wait(
                    self._running, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()
        except BaseException:
            # Cancelled, or an earlier task failed: ``work`` never starts. Close
            # it, or Python warns that it was never awaited.
            work.close()
            raise
        self._running.add(asyncio.ensure_future(work))

    async def drain(self) -> None:
        """Wait for everything submitted; raise the first error."""
        running, self._running = self._running, set()
        if running:
            await asyncio.gather(*running)

    def cancel(self) -> None:
        """Cancel everything still running."""
        for task in self._running:
            task.cancel()


class BlockingRunner:
    """Runs a synchronous SDK's calls on a bounded thread pool.

    The pool size bounds how many requests are in flight at once, which also
    keeps the SDK's connection pool from being exhausted. The event loop is
    never blocked. Context variables are carried into the worker thread.
    """

    def __init__(
        self, max_workers: int = DEFAULT_CONCURRENCY, *, name: str = "taquba-memo"
    ) -> None:
        self.max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Call ``fn(*args, **kwargs)`` on the pool and await its result."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def iterate(self, items: Iterable[T], *, batch: int = 1000) -> AsyncIterator[T]:
        """Drain a blocking iterable (such as a paged listing) on the pool.

        Items are pulled ``batch`` at a time, so a consumer that stops early
        leaves later pages unrequested.
        """
        iterator = iter(items)
        while True:
            chunk = await self.run(lambda: list(itertools.islice(iterator, batch)))
            for item in chunk:
                yield item
            if len(chunk) < batch:
                return

    def close(self) -> None:
        """Stop the pool after the calls in flight finish."""
        self._executor.shutdown(wait=True)
