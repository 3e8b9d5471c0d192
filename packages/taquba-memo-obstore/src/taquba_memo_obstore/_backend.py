"""ObstoreBackend: a MemoBackend on any obstore store, through obstore's async API.

Per store type (what the capabilities declare, measured with obstore 0.12):

* ``S3Store``: ordered listing; conditional put through ``If-None-Match``
  (unless the store was built with ``conditional_put="disabled"``);
  ``delete_many`` sends one DeleteObjects request per 1000 keys.
* ``GCSStore``: ordered listing; conditional put through
  ``x-goog-if-generation-match: 0``; obstore has no GCS batch delete, so
  ``delete_many`` sends single deletes, 10 in flight, in chunks of 100.
* ``AzureStore``: ordered listing; conditional put through
  ``If-None-Match: *``; one Blob Batch request per 256 keys.
* ``MemoryStore``: ordered listing, conditional put, deletes in memory.
* ``LocalStore`` is refused (:class:`~taquba_memo.InvalidConfigurationError`):
  object_store's ``LocalFileSystem`` follows symbolic links below its root
  when it lists, reads and deletes, so anyone else who can write in the
  directory could make a clear or a sweep delete files outside it. Use
  :class:`taquba_memo.LocalFileBackend` for local files: the same tree,
  written the same way, and it never follows a link below its root.

After a fork (Linux's Celery prefork pool, gunicorn ``--preload``,
multiprocessing's fork start method): a store whose parent never made an
obstore request works in the child; one whose parent did raises
:class:`~taquba_memo.ForkedProcessError` on first use there, since obstore's
runtime does not survive a fork (see ``taquba_memo_obstore._fork``).

A failed batch is redone key by key to learn which keys failed, except after
a transient failure, where every key of the batch is reported with it.

Listing keeps the protocol's raw-string prefixes over obstore's
segment-wise ones: a prefix that ends in ``/`` (or is empty) is listed
directly; otherwise its parent directory is listed and the keys filtered.
On the ordered cloud stores the listing starts just before the prefix
(an exclusive ``offset``) and stops at the first key past it, so a consumer
never pays for the siblings of a run. A consumer that stops early stops
the page requests too: pages are fetched only as keys are consumed.
``list_after`` moves that offset up to its start key (S3's ``StartAfter``),
or to the longest valid path the start key begins with where it is no
object_store path itself, and drops what is not after it. Over an
``AzureStore`` it is not offered: Azure's List Blobs takes no start key, so
object_store would list the whole prefix and filter it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import obstore
import obstore.exceptions as obstore_errors
from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store
from taquba_memo.adapter_kit import (
    ObjectStoreBackendBase,
    check_key,
    check_max_bytes,
    check_start_after,
    check_value,
    chunked,
    delete_each,
    entry_too_large,
    is_after,
)
from taquba_memo.backend import Capabilities, ListedObject
from taquba_memo.errors import (
    BackendError,
    DeleteManyError,
    EntryTooLargeError,
    ForkedProcessError,
    InvalidConfigurationError,
    InvalidKeyError,
    InvalidValueTypeError,
    NotSupportedError,
)

from taquba_memo_obstore._config import check_client_config
from taquba_memo_obstore._errors import is_missing_object, map_obstore_error
from taquba_memo_obstore._fork import runtime_inherited

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import ObjectStore

__all__ = ["ObstoreBackend", "capabilities_for"]

# Keys per chunk pulled from obstore's list stream: one cloud page at most.
_LIST_CHUNK = 1000
# Single deletes in flight where the store has no batch API (as obstore's own).
_DELETE_CONCURRENCY = 10
_SUPPORTED = (S3Store, GCSStore, AzureStore, MemoryStore)
# Config entries safe to show in repr(); everything else may be a secret.
_DESCRIBED_CONFIG = ("bucket", "container_name", "account_name", "endpoint", "region")


def capabilities_for(store: ObjectStore) -> Capabilities:
    """What :class:`ObstoreBackend` declares for ``store`` (see the module table)."""
    if isinstance(store, LocalStore):
        raise _local_store_refused()
    if isinstance(store, S3Store):
        conditional = str(store.config.get("conditional_put", "")).lower() != "disabled"
        return Capabilities(
            ordered_listing=True, conditional_put=conditional, max_delete_batch=1000
        )
    if isinstance(store, GCSStore):
        return Capabilities(ordered_listing=True, conditional_put=True, max_delete_batch=100)
    if isinstance(store, AzureStore):
        return Capabilities(ordered_listing=True, conditional_put=True, max_delete_batch=256)
    if isinstance(store, MemoryStore):
        return Capabilities(ordered_listing=True, conditional_put=True, max_delete_batch=1000)
    raise InvalidValueTypeError(
        "ObstoreBackend supports S3Store, GCSStore, AzureStore and MemoryStore, "
        f"not {type(store).__name__}"
    )


def _local_store_refused() -> InvalidConfigurationError:
    return InvalidConfigurationError(
        "ObstoreBackend refuses LocalStore: object_store's LocalFileSystem follows symbolic "
        "links below its root when it lists, reads and deletes, so anyone else who can write "
        "in the directory could make a clear or a sweep delete files outside it. Use "
        "taquba_memo.LocalFileBackend (or a file:// URL through taquba_memo.open_store): the "
        "same tree, written the same way, and it never follows a link below its root."
    )


def _segments_are_valid(segments: Sequence[str]) -> bool:
    """object_store's path rules: no empty, ``.`` or ``..`` segment, no ASCII control character."""
    return all(
        segment not in ("", ".", "..") and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment)
        for segment in segments
    )


def _path_at_or_before(name: str) -> str | None:
    """``name``'s longest start that object_store takes as a list offset (None for none).

    It sorts at or before ``name``, so an exclusive offset there skips no key
    after ``name``; the listing drops the few in between.
    """
    segments = name.split("/")
    valid = 0
    while valid < len(segments) and _segments_are_valid(segments[valid : valid + 1]):
        valid += 1
    return "/".join(segments[:valid]) or None


class ObstoreBackend(ObjectStoreBackendBase):
    """Keys stored through an obstore store, below an optional ``base_path``.

    ``store`` is any :class:`~obstore.store.S3Store`, ``GCSStore``,
    ``AzureStore`` or ``MemoryStore``; it is used as it is
    (retries and timeouts come from its ``retry_config`` and
    ``client_options``). Keys must be valid object_store paths: no empty,
    ``.`` or ``..`` segment, no leading or trailing ``/``, no ASCII control
    character. Anything else raises :class:`~taquba_memo.InvalidKeyError` before any I/O, so a key
    never silently becomes another one.

    Every value is written with a single request (``use_multipart=False``):
    atomic on every store, and the same request for plain and create-only
    writes. ``capabilities`` overrides what is declared for the store type,
    for S3-compatible services that lack a feature.

    A store whose client cannot work raises
    :class:`~taquba_memo.InvalidConfigurationError` here, naming the fix: an
    S3 or Azure endpoint that is not an ``http(s)://`` URL with a host, a
    plain ``http://`` one without ``allow_http``, or a ``LocalStore`` (it
    follows symbolic links below its root; use
    :class:`taquba_memo.LocalFileBackend`).
    """

    def __new__(cls, store: ObjectStore, *args: Any, **kwargs: Any) -> ObstoreBackend:
        if isinstance(store, AzureStore) and cls is ObstoreBackend:
            cls = _ObstoreBackendWithoutListAfter
        return super().__new__(cls)

    def __init__(
        self,
        store: ObjectStore,
        *,
        base_path: str = "",
        capabilities: Capabilities | None = None,
    ) -> None:
        if isinstance(store, LocalStore):
            raise _local_store_refused()
        if not isinstance(store, _SUPPORTED):
            capabilities_for(store)  # raises the InvalidValueTypeError that names what is supported
        self._use_base_path(base_path)
        check_client_config(store)
        self._store = store
        self._kind = type(store).__name__
        self._capabilities = capabilities or capabilities_for(store)
        self._batch_delete = isinstance(store, (S3Store, AzureStore, MemoryStore))

    @property
    def store(self) -> ObjectStore:
        """The wrapped obstore store."""
        return self._store

    def __repr__(self) -> str:
        # Never repr() the store itself: some stores panic there, and the
        # config holds credentials. Only whitelisted, non-secret fields.
        details: list[str] = []
        if isinstance(self._store, (S3Store, GCSStore, AzureStore)):
            config = self._store.config
            details.extend(
                f"{name}={config[name]!r}"  # type: ignore[literal-required]
                for name in _DESCRIBED_CONFIG
                if name in config
            )
        return f"ObstoreBackend({self._kind}({', '.join(details)}), base_path={self._base_path!r})"

    # -- keys ----------------------------------------------------------------

    def _path(self, key: object) -> str:
        key = check_key(key)
        segments = key.split("/")
        if not _segments_are_valid(segments):
            raise InvalidKeyError(
                f"key {key!r} is not a valid object path (empty, '.' or '..' segment, "
                "leading or trailing '/', or a control character)"
            )
        return self._name_prefix + key

    def _error(self, exc: BaseException, operation: str, key: str) -> Exception:
        return map_obstore_error(exc, operation=operation, target=key)

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return await self._read(self._path(key), key, None)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """:meth:`get`, or ``EntryTooLargeError`` for an object over ``max_bytes``.

        The same one request: the answer's size comes before its body, so an
        object over the bound is refused without reading any of it (dropping
        the unread result closes its connection).
        """
        return await self._read(self._path(key), key, check_max_bytes(max_bytes))

    async def _read(self, path: str, key: str, max_bytes: int | None) -> bytes | None:
        try:
            result = await obstore.get_async(self._store, path)
            if max_bytes is not None and (size := result.meta["size"]) > max_bytes:
                del result
                raise entry_too_large(key, max_bytes, size)
            return bytes(await result.bytes_async())
        except EntryTooLargeError:
            raise
        except Exception as exc:
            if is_missing_object(exc):
                return None
            raise self._error(exc, "get", key) from exc

    # -- writes ----------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        path, data = self._path(key), check_value(value)
        if if_absent and not self._capabilities.conditional_put:
            raise NotSupportedError(f"{self!r} does not declare conditional_put")
        try:
            await obstore.put_async(
                self._store,
                path,
                data,
                mode="create" if if_absent else "overwrite",
                use_multipart=False,
            )
        except obstore_errors.AlreadyExistsError as exc:
            if if_absent:
                return False
            raise self._error(exc, "put", key) from exc
        except Exception as exc:
            raise self._error(exc, "put", key) from exc
        return True

    # -- deletes ---------------------------------------------------------------

    async def delete(self, key: str) -> None:
        await self._delete_one(self._path(key), key)

    async def _delete_one(self, path: str, key: str) -> None:
        try:
            await obstore.delete_async(self._store, path)
        except Exception as exc:
            if is_missing_object(exc):
                return  # GCS and Azure report a missing object: success
            raise self._error(exc, "delete", key) from exc

    async def delete_many(self, keys: Sequence[str]) -> None:
        paths = {key: self._path(key) for key in keys}  # validates every key before any I/O

        async def delete_key(key: str) -> None:
            await self._delete_one(paths[key], key)

        if not self._batch_delete:
            await delete_each(delete_key, list(paths), concurrency=_DELETE_CONCURRENCY)
            return
        failures: dict[str, BackendError] = {}
        for chunk in chunked(paths, self._capabilities.max_delete_batch):
            try:
                await obstore.delete_async(self._store, [paths[key] for key in chunk])
            except Exception as exc:
                failures.update(await self._after_failed_batch(chunk, exc, delete_key))
        if failures:
            raise DeleteManyError(failures)

    async def _after_failed_batch(
        self, chunk: list[str], exc: Exception, delete_key: Callable[[str], Awaitable[None]]
    ) -> dict[str, BackendError]:
        """The keys of a failed batch that really failed, and why.

        A batch reports one failure for the whole request (Azure even for one
        missing key), so the chunk is redone key by key to learn which keys
        failed. Not after a transient failure (throttling, 5xx, a timeout):
        obstore has retried already, and a request per key would only add load
        to a store that is overloaded or unreachable. Every key of the chunk
        is then reported with that error, for the caller to try again later.
        """
        error = self._error(exc, "delete", f"{len(chunk)} keys from {chunk[0]}")
        if isinstance(error, BackendError) and error.transient:
            error.__cause__ = exc
            return dict.fromkeys(chunk, error)
        try:
            await delete_each(delete_key, chunk, concurrency=_DELETE_CONCURRENCY)
        except DeleteManyError as redone:
            return redone.failures
        return {}

    # -- listing -----------------------------------------------------------------

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for key, _meta in self._listing(prefix):
            yield key

    async def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        """:meth:`list` from the first key greater than ``start_after``, on the server."""
        check_start_after(start_after)
        async for key, _meta in self._listing(prefix, start_after):
            yield key

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`list` with the size and last-modified time each listing page carries."""
        async for key, meta in self._listing(prefix):
            yield ListedObject(key, int(meta["size"]), meta.get("last_modified"))

    async def _listing(
        self, prefix: str, start_after: str | None = None
    ) -> AsyncIterator[tuple[str, ObjectMeta]]:
        check_key(prefix)
        full = self._name_prefix + prefix
        directory, slash, name_start = full.rpartition("/")
        if directory and not _segments_are_valid(directory.split("/")):
            return  # no valid key lies under this prefix
        offset: str | None = None
        if not full or full.endswith("/"):
            list_prefix = full or None  # obstore's segment prefix is the raw prefix here
        else:
            list_prefix = directory if slash else None
            # An exclusive offset just below every key that starts with `full`.
            candidate = full[:-1]
            if len(name_start) > 1 and _segments_are_valid(candidate.split("/")):
                offset = candidate
        if start_after is not None:
            start = _path_at_or_before(self._name_prefix + start_after)
            if start is not None and (offset is None or start > offset):
                offset = start
        ordered = self._capabilities.ordered_listing
        strip = len(self._name_prefix)
        try:
            stream = obstore.list(self._store, list_prefix, offset=offset, chunk_size=_LIST_CHUNK)
        except Exception as exc:
            raise self._error(exc, "list", prefix) from exc
        while True:
            # Pages are requested only here, as the consumer asks for keys.
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise self._error(exc, "list", prefix) from exc
            for meta in chunk:
                path = meta["path"]
                if path.startswith(full):
                    if start_after is None or is_after(path[strip:], start_after):
                        yield path[strip:], meta
                elif ordered and path > full:
                    return  # sorted: nothing after this key starts with `full`

    async def aclose(self) -> None:
        """Nothing to release: obstore stores pool connections for their own lifetime."""
        return None

    # -- fork ------------------------------------------------------------------

    def after_fork(self) -> None:
        """Refuse in a child forked after obstore's runtime started (see the module).

        A store forked before any obstore request works in the child as it is
        (it holds no connection yet), which covers a store opened at import
        time in a Celery, gunicorn or multiprocessing parent.
        """
        if runtime_inherited():
            raise ForkedProcessError(
                f"{self!r} cannot be used in this process (pid {os.getpid()}): it was forked "
                "after obstore had made requests in its parent, and obstore's runtime "
                "threads do not survive a fork, so every call would wait forever. Open the "
                "store in the child after the fork (Celery: the worker_process_init signal; "
                "gunicorn: post_fork, or no --preload), make no obstore request before "
                "forking, or use the 'spawn' or 'forkserver' multiprocessing start method."
            )


class _ObstoreBackendWithoutListAfter(ObstoreBackend):
    """An ObstoreBackend over a store that cannot start a listing after a key (Azure).

    A method set to None tells ``offers`` the backend lacks it.
    """

    list_after = None  # type: ignore[assignment]
