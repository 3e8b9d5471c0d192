"""AzureBlobBackend: a MemoBackend on Azure Blob Storage through azure-storage-blob's async client.

Per-backend behaviour (what the conformance suite checks):

* ``get`` downloads the blob; a missing blob (``BlobNotFound``) is ``None``.
* ``put`` uploads a block blob. ``if_absent=True`` sends ``If-None-Match: *``
  (``overwrite=False``); for a value above ``max_single_put_size`` the blocks
  are staged under random block ids and the condition rides on the final
  *Put Block List*, so of N concurrent creators exactly one commits and the
  others get ``BlobAlreadyExists`` (returned as ``False``).
* ``delete`` of a missing blob succeeds. ``delete_many`` sends Blob Batch
  requests of at most 256 deletes (see :mod:`taquba_memo_azure._batch` for the
  boundary detail that makes them work on Azurite too); a sub-request that
  answers ``BlobNotFound`` is a success, every other failed sub-request is
  reported in :class:`~taquba_memo.DeleteManyError`.
* ``list`` pages through *List Blobs* with ``prefix`` = base path + the raw
  prefix; Azure returns names in ascending byte order. Stopping early
  requests no further page.
* A missing container raises :class:`~taquba_memo.ContainerNotFoundError` from
  every operation; it is never mistaken for a missing blob.
* After a fork, the child's first operation opens a new aiohttp session on
  the child's loop; the parent's session and connections are left alone
  (``after_fork``). An azure-identity token credential keeps its own HTTP
  session: build the backend after the fork when using one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient, ExponentialRetry
from taquba_memo.adapter_kit import (
    ObjectStoreBackendBase,
    check_endpoint_url,
    check_key,
    check_max_bytes,
    check_value,
    chunked,
    delete_each,
    detach_inherited_loop,
    entry_too_large,
    keep_inherited,
)
from taquba_memo.backend import Capabilities, ListedObject
from taquba_memo.errors import (
    BackendError,
    DeleteManyError,
    ForkedProcessError,
    InvalidArgumentError,
    InvalidConfigurationError,
    InvalidKeyError,
)

from taquba_memo_azure._batch import use_portable_boundary
from taquba_memo_azure._errors import (
    BLOB_ALREADY_EXISTS,
    BLOB_NOT_FOUND,
    SDK_ERRORS,
    error_code,
    map_azure_error,
)

__all__ = ["AzureBlobBackend", "AzureCredential", "AzureRequestCounts", "default_client_options"]

MAX_DELETE_BATCH = 256
"""Sub-requests one Blob Batch request may carry (a service limit)."""

MAX_BLOB_NAME_LENGTH = 1024
"""Characters in a blob name, base path included (a service limit)."""

AzureCredential = AsyncTokenCredential | AzureNamedKeyCredential | AzureSasCredential
"""What :meth:`AzureBlobBackend.from_account_url` accepts: any azure-identity async
credential (``DefaultAzureCredential``, ``ManagedIdentityCredential``, ...), a
shared key, or a SAS."""

_RETRY_DEFAULTS: dict[str, Any] = {
    "retry_total": 4,
    "initial_backoff": 1,
    "increment_base": 2,
    "random_jitter_range": 1,
}
_RETRY_SETTINGS = frozenset(
    {*_RETRY_DEFAULTS, "retry_connect", "retry_read", "retry_status", "retry_to_secondary"}
)


def default_client_options(**overrides: Any) -> dict[str, Any]:
    """The SDK client options the constructors use, with ``overrides`` applied.

    * Retries: the storage SDK's exponential policy with ``retry_total=4`` and
      waits of about 1, 3, 5 and 9 seconds (the SDK's own default starts at 15 s,
      too long for a memo lookup). Override any of ``retry_total``,
      ``retry_connect``, ``retry_read``, ``retry_status``, ``initial_backoff``,
      ``increment_base``, ``random_jitter_range``, or pass a whole ``retry_policy``.
    * Timeouts: ``connection_timeout=10`` and ``read_timeout=60`` seconds.
    * Uploads above ``max_single_put_size=8 MiB`` are staged in 4 MiB blocks,
      so a retried request never resends more than one block.
    """
    options: dict[str, Any] = {
        "connection_timeout": 10,
        "read_timeout": 60,
        "max_single_put_size": 8 * 1024 * 1024,
        "max_block_size": 4 * 1024 * 1024,
    }
    retry = dict(_RETRY_DEFAULTS)
    for name in _RETRY_SETTINGS & overrides.keys():
        retry[name] = overrides.pop(name)
    options["retry_policy"] = ExponentialRetry(**retry)
    options.update(overrides)
    return options


@dataclass
class AzureRequestCounts:
    """How many requests of each kind this backend sent (observability and tests)."""

    batch_delete_requests: int = 0
    """Blob Batch requests sent by ``delete_many``."""

    single_delete_requests: int = 0
    """Single *Delete Blob* requests (``delete``, or ``delete_many`` without batching)."""

    list_pages: int = 0
    """*List Blobs* pages received."""


def _is_running_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _public_url(url: str) -> str:
    """``url`` without its query string, where a SAS token would be."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _check_account_key(credential: object) -> None:
    """An account key the SDK would only fail to sign with, at the first request."""
    key = getattr(credential, "account_key", None)
    if not isinstance(key, str):
        return  # a SAS or no key at all
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidConfigurationError(
            "the Azure AccountKey is not base64; copy the account's key1 or key2 as it is "
            "(Azurite's is in its documentation)"
        ) from None


class AzureBlobBackend(ObjectStoreBackendBase):
    """Keys are blob names under ``base_path`` in one container.

    The backend owns ``container_client``: :meth:`aclose` closes it, and with it
    the aiohttp session of its transport. Build one with
    :meth:`from_connection_string` or :meth:`from_account_url`, or hand in a
    ``ContainerClient`` you configured yourself (then the constructors' retry,
    timeout and block-size defaults do not apply; see
    :func:`default_client_options`).

    ``batch_delete=False`` makes ``delete_many`` send concurrent single deletes
    instead of Blob Batch requests (for accounts or proxies that refuse batch).
    :attr:`request_counts` shows which path ran. ``list_page_size`` is the
    *List Blobs* page size (1-5000). ``max_concurrency`` bounds the Blob Batch
    requests in flight and the block transfers of one large upload or download.

    The client is bound to the event loop of its first request (aiohttp), so
    use one backend from one loop.
    """

    def __init__(
        self,
        container_client: ContainerClient,
        *,
        base_path: str = "",
        batch_delete: bool = True,
        list_page_size: int = 1000,
        max_concurrency: int = 4,
    ) -> None:
        if not 1 <= list_page_size <= 5000:
            raise InvalidArgumentError("list_page_size must be between 1 and 5000")
        if max_concurrency < 1:
            raise InvalidArgumentError("max_concurrency must be at least 1")
        check_endpoint_url(container_client.url, what="Azure blob endpoint")
        self._container = container_client
        self._use_base_path(base_path)
        self._batch_delete = batch_delete
        self._page_size = list_page_size
        self._concurrency = max_concurrency
        self._credential_to_close: AsyncTokenCredential | None = None
        self._closed = False
        self._capabilities = Capabilities(
            ordered_listing=True, conditional_put=True, max_delete_batch=MAX_DELETE_BATCH
        )
        self.request_counts = AzureRequestCounts()

    # -- construction ----------------------------------------------------------

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        container: str,
        *,
        base_path: str = "",
        batch_delete: bool = True,
        list_page_size: int = 1000,
        max_concurrency: int = 4,
        **client_options: Any,
    ) -> AzureBlobBackend:
        """A backend from a storage connection string (account key or SAS).

        ``client_options`` go to the SDK client on top of
        :func:`default_client_options`. A connection string the SDK cannot
        use (malformed, a BlobEndpoint that is not a URL, an AccountKey that is
        not base64) raises :class:`~taquba_memo.InvalidConfigurationError`.
        """
        try:
            client = ContainerClient.from_connection_string(
                connection_string, container, **default_client_options(**client_options)
            )
        except ValueError as exc:  # the SDK's "blank or malformed"; never echo the string
            raise InvalidConfigurationError(
                f"the Azure connection string cannot be used: {exc} It is "
                "Key=Value pairs separated by ';', with AccountName and AccountKey "
                "(or SharedAccessSignature) and, for Azurite, BlobEndpoint=http://HOST:PORT/ACCOUNT"
            ) from None
        _check_account_key(client.credential)
        return cls(
            client,
            base_path=base_path,
            batch_delete=batch_delete,
            list_page_size=list_page_size,
            max_concurrency=max_concurrency,
        )

    @classmethod
    def from_account_url(
        cls,
        account_url: str,
        credential: AzureCredential,
        container: str,
        *,
        base_path: str = "",
        batch_delete: bool = True,
        list_page_size: int = 1000,
        max_concurrency: int = 4,
        close_credential: bool = False,
        **client_options: Any,
    ) -> AzureBlobBackend:
        """A backend from ``https://<account>.blob.core.windows.net`` and a credential.

        ``credential`` is any azure-identity *async* credential
        (``azure.identity.aio.DefaultAzureCredential``, ...), an
        ``AzureNamedKeyCredential`` or an ``AzureSasCredential``. The caller
        keeps ownership of it unless ``close_credential`` is true. Token
        credentials need an ``https`` URL (the SDK never sends a bearer token
        in clear text), so an ``http`` URL is refused here, not at the first call.
        """
        if hasattr(credential, "get_token") and not account_url.lower().startswith("https://"):
            raise InvalidConfigurationError("a token credential needs an https:// account URL")
        options = default_client_options(**client_options)
        client = ContainerClient(account_url, container, credential=credential, **options)
        backend = cls(
            client,
            base_path=base_path,
            batch_delete=batch_delete,
            list_page_size=list_page_size,
            max_concurrency=max_concurrency,
        )
        if close_credential and hasattr(credential, "close"):
            backend._credential_to_close = credential  # type: ignore[assignment]
        return backend

    # -- properties ------------------------------------------------------------

    @property
    def container_client(self) -> ContainerClient:
        """The SDK client this backend uses."""
        return self._container

    @property
    def delete_path(self) -> Literal["batch", "single"]:
        """How ``delete_many`` deletes: Blob Batch requests or concurrent single deletes."""
        return "batch" if self._batch_delete else "single"

    def __repr__(self) -> str:
        return (
            f"AzureBlobBackend(url={_public_url(self._container.url)!r}, "
            f"base_path={self._name_prefix!r}, delete_path={self.delete_path!r})"
        )

    # -- keys ------------------------------------------------------------------

    def _blob_name(self, key: object) -> str:
        key = check_key(key)
        segments = key.split("/")
        if not key or any(segment in ("", ".", "..") for segment in segments):
            raise InvalidKeyError(f"key {key!r} is empty or has an empty, '.' or '..' segment")
        name = self._name_prefix + key
        if len(name) > MAX_BLOB_NAME_LENGTH:
            raise InvalidKeyError(f"blob name for key {key[:40]!r}... exceeds 1024 characters")
        return name

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        name = self._blob_name(key)
        try:
            downloader = await self._container.download_blob(
                name, max_concurrency=self._concurrency
            )
            return await downloader.readall()
        except ResourceNotFoundError as exc:
            if error_code(exc) == BLOB_NOT_FOUND:
                return None
            raise map_azure_error(exc, operation="get", target=key) from exc
        except SDK_ERRORS as exc:
            raise map_azure_error(exc, operation="get", target=key) from exc

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """:meth:`get`, or ``EntryTooLargeError`` for a blob over ``max_bytes``.

        The download asks for the range of ``max_bytes + 1`` bytes: the first
        answer says the blob's size and holds at most that range, so a blob
        over the bound costs one request and is never read further. A range
        of an empty blob answers 416, which only an empty blob can (one
        request, where :meth:`get` sends two).
        """
        name, max_bytes = self._blob_name(key), check_max_bytes(max_bytes)
        try:
            downloader = await self._container.download_blob(
                name, offset=0, length=max_bytes + 1, max_concurrency=self._concurrency
            )
            if downloader.size > max_bytes:
                raise entry_too_large(key, max_bytes, _total_size(downloader.properties))
            return await downloader.readall()
        except ResourceNotFoundError as exc:
            if error_code(exc) == BLOB_NOT_FOUND:
                return None
            raise map_azure_error(exc, operation="get", target=key) from exc
        except HttpResponseError as exc:
            if exc.status_code == _RANGE_NOT_SATISFIABLE:
                return b""
            raise map_azure_error(exc, operation="get", target=key) from exc
        except SDK_ERRORS as exc:
            raise map_azure_error(exc, operation="get", target=key) from exc

    async def list(self, prefix: str) -> AsyncIterator[str]:
        check_key(prefix)
        base_length = len(self._name_prefix)
        pages = self._container.list_blob_names(
            name_starts_with=(self._name_prefix + prefix) or None, results_per_page=self._page_size
        ).by_page()
        async for name in self._paged(pages, prefix):
            yield name[base_length:]

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`list` with each blob's size and last-modified time, from the same pages."""
        check_key(prefix)
        base_length = len(self._name_prefix)
        pages = self._container.list_blobs(
            name_starts_with=(self._name_prefix + prefix) or None, results_per_page=self._page_size
        ).by_page()
        async for blob in self._paged(pages, prefix):
            yield ListedObject(blob.name[base_length:], int(blob.size), blob.last_modified)

    async def _paged(self, pages: Any, prefix: str) -> AsyncIterator[Any]:
        """The items of the SDK's listing pages, counted; errors mapped."""
        try:
            async for page in pages:
                self.request_counts.list_pages += 1
                async for item in page:
                    yield item
        except SDK_ERRORS as exc:
            raise map_azure_error(exc, operation="list", target=prefix) from exc

    # -- writes ----------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        name, data = self._blob_name(key), check_value(value)
        try:
            await self._container.upload_blob(
                name,
                data,
                length=len(data),
                overwrite=not if_absent,
                max_concurrency=self._concurrency,
            )
        except ResourceExistsError as exc:
            if if_absent and error_code(exc) == BLOB_ALREADY_EXISTS:
                return False
            raise map_azure_error(exc, operation="put", target=key) from exc
        except SDK_ERRORS as exc:
            raise map_azure_error(exc, operation="put", target=key) from exc
        return True

    # -- deletes ---------------------------------------------------------------

    async def delete(self, key: str) -> None:
        name = self._blob_name(key)
        self.request_counts.single_delete_requests += 1
        try:
            await self._container.delete_blob(name, delete_snapshots="include")
        except ResourceNotFoundError as exc:
            if error_code(exc) == BLOB_NOT_FOUND:
                return
            raise map_azure_error(exc, operation="delete", target=key) from exc
        except SDK_ERRORS as exc:
            raise map_azure_error(exc, operation="delete", target=key) from exc

    async def delete_many(self, keys: Sequence[str]) -> None:
        # Validate every key before the first request; duplicates are sent once.
        keys_by_name = {self._blob_name(key): key for key in keys}
        if not keys_by_name:
            return
        if not self._batch_delete:
            await delete_each(self.delete, builtins.list(keys_by_name.values()))
            return
        failures: dict[str, BackendError] = {}
        semaphore = asyncio.Semaphore(self._concurrency)

        async def send(names: builtins.list[str]) -> None:
            async with semaphore:
                for name, error in (await self._delete_batch(names)).items():
                    failures[keys_by_name[name]] = error

        await asyncio.gather(*(send(names) for names in chunked(keys_by_name, MAX_DELETE_BATCH)))
        if failures:
            raise DeleteManyError(failures)

    async def _delete_batch(self, names: builtins.list[str]) -> dict[str, BackendError]:
        """Delete up to 256 blobs in one Blob Batch request; return the failures by name."""
        self.request_counts.batch_delete_requests += 1
        target = f"{len(names)} blobs from {names[0]}"
        try:
            parts = await self._container.delete_blobs(
                *names,
                delete_snapshots="include",
                raise_on_any_failure=False,
                raw_request_hook=use_portable_boundary,
            )
            responses = [part async for part in parts]
        except SDK_ERRORS as exc:
            error = map_azure_error(exc, operation="batch delete", target=target)
            error.__cause__ = exc
            return dict.fromkeys(names, error)
        if len(responses) != len(names):
            error = BackendError(
                f"Azure Blob batch delete of {target!r} answered {len(responses)} parts "
                f"for {len(names)} sub-requests"
            )
            return dict.fromkeys(names, error)
        failures: dict[str, BackendError] = {}
        # Parts come back in the order of the sub-requests (the SDK pairs them by position).
        for name, response in zip(names, responses, strict=True):
            if 200 <= response.status_code < 300:
                continue
            sub_error = HttpResponseError(
                message=response.reason or f"status {response.status_code}", response=response
            )
            if error_code(sub_error) == BLOB_NOT_FOUND:
                continue
            error = map_azure_error(sub_error, operation="delete", target=self._key_of(name))
            error.__cause__ = sub_error
            failures[name] = error
        return failures

    def _key_of(self, name: str) -> str:
        return name[len(self._name_prefix) :]

    # -- lifecycle -------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: a new aiohttp session on this process's loop, on first use.

        The inherited session belongs to the parent's event loop and holds the
        parent's connections; it is parked untouched (see
        :func:`~taquba_memo.adapter_kit.keep_inherited`), and the transport
        opens a fresh one. A session the caller handed to the SDK
        (``session_owner=False``) cannot be replaced: that raises
        :class:`~taquba_memo.ForkedProcessError`.
        """
        transport: Any = getattr(self._container._pipeline, "_transport", None)
        session = getattr(transport, "session", None)
        if session is None:
            return  # never opened, or already replaced in this process
        if not getattr(transport, "_session_owner", True):
            raise ForkedProcessError(
                f"{self!r} was built before a fork on an aiohttp session its caller owns, "
                "which cannot be used in the child. Build the backend in the child after "
                "the fork, or let the SDK own its session."
            )
        loop = getattr(session, "_loop", None)
        if loop is not None and not _is_running_here(loop):
            detach_inherited_loop(loop)
        keep_inherited(session)
        transport.session = None
        transport._has_been_opened = False  # lets open() build a session again

    async def aclose(self) -> None:
        """Close the container client (and its aiohttp session); twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._container.close()
        finally:
            if self._credential_to_close is not None:
                await self._credential_to_close.close()


_RANGE_NOT_SATISFIABLE = 416


def _total_size(properties: Any) -> int | None:
    """The blob's whole size from a ranged answer's ``Content-Range`` (``bytes 0-9/1234``)."""
    _, _, total = str(getattr(properties, "content_range", None) or "").rpartition("/")
    return int(total) if total.isdigit() else None
