"""The MemoBackend protocol: what a storage adapter implements.

A backend knows nothing about memos, runs or markers. It stores bytes under
``/``-separated string keys relative to its own root (a bucket plus an
optional base path), and declares what it can do in :class:`Capabilities`.
Everything memo-specific (layout, validation, clearing, sweeping) lives once,
in :class:`taquba_memo.MemoStore`, above this interface.

The protocol is structural: any object with ``capabilities`` and the six
operations below is a backend; it need not inherit from anything.
:class:`MemoBackendBase` is an optional base class that adds ``async with``
(closing the backend on exit). Prove a backend with the
``taquba-memo-conformance`` pytest plugin.

The rules every backend follows (the conformance suite checks each one):

* **Keys** are ``str``; any other type (``bytes`` included) raises
  :class:`~taquba_memo.InvalidValueType` before any I/O. Keys are opaque and
  exact: never normalised (no case folding, no Unicode normalisation, no
  trimming, no percent-decoding), so two keys that differ in any code point
  are two keys.
* **Values** are bytes-like (``bytes``, ``bytearray``, ``memoryview``); a
  ``str`` value raises :class:`~taquba_memo.InvalidValueType` and nothing is
  written. ``taquba_memo.adapter_kit.check_key`` and ``check_value`` do both.
* **Missing is not an error**: ``get`` of a missing key returns ``None``;
  ``delete`` and ``delete_many`` of missing keys succeed.
* **Storage failures** are :class:`~taquba_memo.BackendError` subclasses with
  the SDK's exception chained as ``__cause__`` (``TransientBackendError``,
  ``ThrottledError``, ``AccessDeniedError``, ``ContainerNotFoundError``).
* ``put(..., if_absent=True)`` on a backend that does not declare
  ``conditional_put`` raises :class:`~taquba_memo.NotSupported`; it never
  silently overwrites.

Listing with sizes (optional method, not part of the protocol): a backend
whose store's listing already carries each object's size (S3, GCS, Azure, a
file system's ``stat``) may also offer ``list_with_metadata(prefix)``, with
the matching rules of ``list`` (same keys, same order, same early stop), that
yields a :class:`ListedObject` per key: its ``size`` in bytes and its
``last_modified`` time (timezone-aware, or ``None`` where the store keeps
none). It must cost no request beyond the listing's own pages; a backend that
would need a request per key should not offer it. The store uses it where it
exists (``taquba-memo runs --sizes`` then reads no value) and falls back to
``list`` and reads elsewhere; :func:`lists_metadata` tells which. The
conformance suite checks the sizes and times it reports against what was
written, and skips those tests for a backend without it.

Bounded reads (optional method, not part of the protocol): a backend that
can stop reading an object at a size (a stat or listed size, a response's
``Content-Length``, a stream read in chunks) offers
``get_at_most(key, max_bytes)``. It returns what ``get`` returns when the
object holds at most ``max_bytes`` bytes, and otherwise raises
:class:`~taquba_memo.EntryTooLargeError` having held no more than
``max_bytes`` plus a small constant of it in memory, in the requests ``get``
would send. A store built with ``max_value_bytes`` reads every entry through
it, so an oversized or endless object never fills memory;
:func:`reads_bounded` tells whether a backend offers it. Every backend shipped
with taquba-memo does.

After a fork (optional hook, not part of the protocol): a process made by
``os.fork()`` inherits a backend without its threads and shares its sockets
with the parent. A store detects the fork once and, before its first
operation in the child, calls the backend's ``after_fork(self) -> None``
method if it has one. The hook rebuilds what cannot cross a fork (thread
pools, connection pools, clients bound to the parent's event loop) from the
backend's own configuration, or raises :class:`~taquba_memo.ForkedProcessError`
naming the fix when the SDK cannot run in the child at all. It must not
close or send anything on the inherited objects (the parent still uses
them; ``taquba_memo.adapter_kit.keep_inherited`` parks them), and it must be
idempotent: every store over the backend calls it. A backend that holds no
threads or connections needs no hook.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from taquba_memo._closing import AsyncClosing

__all__ = [
    "Capabilities",
    "ListedObject",
    "ListsMetadata",
    "MemoBackend",
    "MemoBackendBase",
    "ReadsBounded",
    "lists_metadata",
    "reads_bounded",
]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. The conformance suite verifies each claim."""

    ordered_listing: bool
    """``list`` yields keys in ascending byte order (S3, GCS, Azure do)."""

    conditional_put: bool
    """``put(..., if_absent=True)`` is atomic: of N concurrent creators exactly one wins."""

    max_delete_batch: int
    """Most keys one ``delete_many`` request removes (S3 1000, Azure 256, GCS 100).

    A backend without a batch API still accepts any number of keys and
    deletes them with bounded concurrency; this number then sizes the chunks
    callers hand it.
    """

    def __post_init__(self) -> None:
        if self.max_delete_batch < 1:
            raise ValueError("max_delete_batch must be at least 1")


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One key of a listing, with what the store's listing said about it."""

    key: str
    size: int
    """The object's size in bytes."""
    last_modified: datetime.datetime | None = None
    """When it was last written (timezone-aware), or None where the store does not say."""


@runtime_checkable
class ListsMetadata(Protocol):
    """A backend that also offers the optional ``list_with_metadata``."""

    def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """Yield a :class:`ListedObject` for every key ``list(prefix)`` yields, in its order."""
        ...


def lists_metadata(backend: object) -> bool:
    """True when ``backend`` offers ``list_with_metadata`` (sizes without reads)."""
    return isinstance(backend, ListsMetadata)


@runtime_checkable
class ReadsBounded(Protocol):
    """A backend that also offers the optional ``get_at_most``."""

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """``get(key)``, or :class:`~taquba_memo.EntryTooLargeError` past ``max_bytes``."""
        ...


def reads_bounded(backend: object) -> bool:
    """True when ``backend`` offers ``get_at_most`` (reads that stop at a size)."""
    return isinstance(backend, ReadsBounded)


@runtime_checkable
class MemoBackend(Protocol):
    """Async key/bytes storage with declared capabilities.

    ``isinstance(obj, MemoBackend)`` is true for any object that has these
    seven members; :class:`~taquba_memo.MemoStore` accepts exactly those.
    """

    @property
    def capabilities(self) -> Capabilities:
        """What this backend supports; constant for the backend's lifetime."""
        ...

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None`` if there is none.

        Never ``b""`` for a missing key, and never ``None`` for a stored empty value.
        """
        ...

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        """Store ``value`` under ``key`` and return True.

        By default an existing value is overwritten. With ``if_absent`` the
        write happens only if ``key`` does not exist, atomically, and False
        is returned when it did exist (the stored value is left unchanged).
        A backend without ``conditional_put`` raises ``NotSupported``.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key succeeds."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key, in as few requests as the store allows.

        Every key is checked first: when any of them is not a ``str``, the
        whole call raises ``InvalidValueType`` and nothing is deleted. Missing
        keys succeed. Any number of keys is accepted (chunk them to
        ``max_delete_batch`` per request). A key that fails does not stop the
        others: all are attempted, then ``DeleteManyError`` reports every
        failed key with its error; a key it does not name must be gone.
        """
        ...

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Yield every key that starts with the raw string ``prefix``, exactly as written.

        The match is ``key.startswith(prefix)``: on characters, not path
        segments (``"a/run"`` also yields ``"a/run-suffix/x"``), and never a
        pattern. A store with a query language must escape or avoid it: SQL
        ``LIKE`` treats ``_`` and ``%`` as wildcards and ``GLOB``, ``fnmatch``
        and Redis ``MATCH`` treat ``*``, ``?``, ``[`` and ``\\`` so; a
        case-insensitive or accent-insensitive collation, Unicode
        normalisation or trimming returns keys that do not start with the
        prefix, or drops keys that do. Prefer a range scan (``key >= prefix``,
        stopping at the first key that does not start with it) under a binary
        collation.

        Keys come in ascending UTF-8 byte order when
        ``capabilities.ordered_listing`` is declared. A consumer may stop
        early; no further pages are then requested. Implement it as an
        ``async def`` generator, or as a plain ``def`` that returns an async
        iterator; a non-``str`` prefix raises ``InvalidValueType`` (at the
        call or at the first ``__anext__``).
        """
        ...

    async def aclose(self) -> None:
        """Release connections and threads. Calling it twice is harmless."""
        ...


class MemoBackendBase(AsyncClosing):
    """Optional base class of a backend: ``async with backend:`` closes it on exit.

    The protocol does not require it; inherit from it for the context
    manager. Every backend shipped with taquba-memo does.
    """

    __slots__ = ()

    async def aclose(self) -> None:
        """Release connections and threads; override it. Calling it twice is harmless."""
