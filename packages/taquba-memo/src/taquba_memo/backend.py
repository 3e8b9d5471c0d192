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
  :class:`~taquba_memo.InvalidValueTypeError` before any I/O. Keys are opaque and
  exact: never normalised (no case folding, no Unicode normalisation, no
  trimming, no percent-decoding), so two keys that differ in any code point
  are two keys.
* **Values** are bytes-like (``bytes``, ``bytearray``, ``memoryview``); a
  ``str`` value raises :class:`~taquba_memo.InvalidValueTypeError` and nothing is
  written. ``taquba_memo.adapter_kit.check_key`` and ``check_value`` do both.
* **Missing is not an error**: ``get`` of a missing key returns ``None``;
  ``delete`` and ``delete_many`` of missing keys succeed.
* **Storage failures** are :class:`~taquba_memo.BackendError` subclasses with
  the SDK's exception chained as ``__cause__`` (``TransientBackendError``,
  ``ThrottledError``, ``AccessDeniedError``, ``ContainerNotFoundError``).
* ``put(..., if_absent=True)`` on a backend that does not declare
  ``conditional_put`` raises :class:`~taquba_memo.NotSupportedError`; it never
  silently overwrites.

Optional members: a backend may offer more than the six operations, one
method per concern, each declared by a small runtime-checkable Protocol
below (:class:`ListsMetadata`, :class:`ReadsBounded`,
:class:`RebuildsAfterFork`, :class:`ListsAfter`, :class:`ReadsInThread`, all in
:data:`OPTIONAL_MEMBERS`). A backend
offers one by having the method, and only so: nothing in
:class:`Capabilities` or elsewhere declares it. Each Protocol's docstring says
when a backend should offer it and what the core does without it;
:func:`offers` (or :func:`lists_metadata`, :func:`reads_bounded`,
:func:`rebuilds_after_fork`, :func:`lists_after`, :func:`reads_in_thread`) tells whether a
backend does. The conformance
suite checks every optional member a backend offers and skips, naming it,
the checks of one it lacks.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from taquba_memo._closing import AsyncClosing
from taquba_memo.errors import InvalidArgumentError

__all__ = [
    "OPTIONAL_MEMBERS",
    "Capabilities",
    "ListedObject",
    "ListsAfter",
    "ListsMetadata",
    "MemoBackend",
    "MemoBackendBase",
    "ReadsBounded",
    "ReadsInThread",
    "RebuildsAfterFork",
    "lists_after",
    "lists_metadata",
    "member_name",
    "offers",
    "reads_bounded",
    "reads_in_thread",
    "rebuilds_after_fork",
]


@dataclass(frozen=True)
class Capabilities:
    """Promises about how the six operations behave. The conformance suite verifies each claim.

    Only flags that are not methods live here. An optional method is declared
    by having it (see :data:`OPTIONAL_MEMBERS`), never by a flag.
    """

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
    """Optional ``list_with_metadata``: a listing that carries each key's size and time.

    Offer it when the store's listing already carries each object's size (S3,
    GCS, Azure, a file system's ``stat``). It has the matching rules of
    ``list`` (same keys, same order, same early stop) and yields a
    :class:`ListedObject` per key: its ``size`` in bytes and its
    ``last_modified`` time (timezone-aware, or ``None`` where the store keeps
    none). It must cost no request beyond the listing's own pages; a backend
    that would need a request per key should not offer it.

    Without it, the core lists with ``list`` and reads each value where it
    needs a size (``taquba-memo runs --sizes``), and shows no write times.
    """

    def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """Yield a :class:`ListedObject` for every key ``list(prefix)`` yields, in its order."""
        ...


@runtime_checkable
class ReadsBounded(Protocol):
    """Optional ``get_at_most``: a read that stops at a size.

    Offer it when the backend can stop reading an object at a size (a stat or
    listed size, a response's ``Content-Length``, a stream read in chunks).
    It returns what ``get`` returns when the object holds at most
    ``max_bytes`` bytes, and otherwise raises
    :class:`~taquba_memo.EntryTooLargeError` having held no more than
    ``max_bytes`` plus a small constant of it in memory, in the requests
    ``get`` would send. Every backend shipped with taquba-memo offers it.

    Without it, a store built with ``max_value_bytes`` reads each entry
    whole with ``get`` and then refuses it when it is too large, so an
    oversized or endless object is held in memory once.
    """

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """``get(key)``, or :class:`~taquba_memo.EntryTooLargeError` past ``max_bytes``."""
        ...


@runtime_checkable
class RebuildsAfterFork(Protocol):
    """Optional ``after_fork``: rebuild what cannot cross ``os.fork()``.

    Offer it when the backend holds threads, connection pools or clients
    bound to an event loop. A process made by ``os.fork()`` inherits the
    backend without its threads and shares its sockets with the parent; a
    store detects the fork once and, before its first operation in the
    child, calls ``after_fork()``. The hook rebuilds those objects from the
    backend's own configuration, or raises
    :class:`~taquba_memo.ForkedProcessError` naming the fix when the SDK
    cannot run in the child at all. It must not close or send anything on
    the inherited objects (the parent still uses them;
    ``taquba_memo.adapter_kit.keep_inherited`` parks them), and it must be
    idempotent: every store over the backend calls it, and a call in the
    process that built the backend leaves the backend working (what the
    conformance kit checks; it may park objects there as in a child).

    Without it, a store calls nothing after a fork: right for a backend that
    holds no threads or connections.
    """

    def after_fork(self) -> None:
        """Make this backend usable in a process forked from the one that built it."""
        ...


@runtime_checkable
class ListsAfter(Protocol):
    """Optional ``list_after``: a listing that starts after a key, on the server.

    Offer it when the store can begin a listing after a given key itself (S3's
    ``StartAfter``, GCS's ``startOffset``, obstore's list offset, a sorted
    directory scan). It yields what ``list(prefix)`` yields, less every key
    that is not strictly greater than ``start_after`` (a whole key, compared
    as UTF-8 bytes), in the store's listing order. Its cost must follow the
    keys it yields, not the keys it skips: a backend that would have to list
    the whole prefix and filter it should not offer it.

    ``start_after`` may be any str, under ``prefix`` or not (as S3's
    ``StartAfter``): a key outside ``prefix`` is never yielded whatever it
    is. A non-str raises :class:`~taquba_memo.InvalidValueTypeError`, and a str
    that is not valid Unicode text :class:`~taquba_memo.InvalidKeyError`,
    before any I/O (``taquba_memo.adapter_kit.check_start_after``). A store
    whose start is inclusive (GCS's ``startOffset``) drops the equal key
    (``taquba_memo.adapter_kit.is_after``).

    Without it, the core lists the whole prefix and skips the keys itself, so
    a listing of the expired terminal markers of layout ``"0.10"`` (newest
    first, the expired ones after the cutoff's key) costs what all the
    markers cost instead of what the expired ones cost.
    """

    def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        """Yield each key under ``prefix`` greater than ``start_after``, as ``list`` does."""
        ...


@runtime_checkable
class ReadsInThread(Protocol):
    """Optional ``get_in_thread``: a blocking read in the calling thread, without a loop.

    Offer it when a read costs about what its I/O costs and needs neither an
    event loop nor a network connection: a local file, a dict. It returns
    what ``get(key)`` returns, or with ``max_bytes`` what
    ``get_at_most(key, max_bytes)`` returns, and raises the same errors. It
    may be called from any thread while the backend's coroutines run on
    another, and it must neither write nor delete.

    The sync API (:mod:`taquba_memo.sync`) then makes ``Memo.get`` and the
    hit of ``Memo.get_or_compute`` in the calling thread, instead of a round
    trip to the store's loop thread that costs more than a page-cache read.
    Without it, every sync call crosses to the loop: right for a backend
    whose reads wait on the network, where a blocked caller gains nothing.
    A subclass of :class:`MemoBackendBase` that overrides ``get`` or
    ``get_at_most`` but not this loses it, so the sync API never reads around
    the override; anything else that changes what ``get`` returns must change
    this too, or withdraw it (``get_in_thread = None``).
    """

    def get_in_thread(self, key: str, max_bytes: int | None) -> bytes | None:
        """``get(key)``, or ``get_at_most(key, max_bytes)`` when ``max_bytes`` is not None."""
        ...


OPTIONAL_MEMBERS: tuple[type, ...] = (
    ListsMetadata,
    ReadsBounded,
    RebuildsAfterFork,
    ListsAfter,
    ReadsInThread,
)
"""Every optional member of a backend, as the Protocol that declares it."""


def member_name(protocol: type) -> str:
    """The method an optional-member Protocol of :data:`OPTIONAL_MEMBERS` declares."""
    if protocol not in OPTIONAL_MEMBERS:
        raise InvalidArgumentError(
            f"{protocol!r} is not an optional backend member; those are {OPTIONAL_MEMBERS}"
        )
    (name,) = [name for name in vars(protocol) if not name.startswith("_")]
    return name


def offers(backend: object, protocol: type) -> bool:
    """True when ``backend`` offers the optional member ``protocol`` of :data:`OPTIONAL_MEMBERS`."""
    member_name(protocol)  # refuses anything else
    return isinstance(backend, protocol)


def lists_metadata(backend: object) -> bool:
    """True when ``backend`` offers ``list_with_metadata`` (sizes without reads)."""
    return offers(backend, ListsMetadata)


def reads_bounded(backend: object) -> bool:
    """True when ``backend`` offers ``get_at_most`` (reads that stop at a size)."""
    return offers(backend, ReadsBounded)


def lists_after(backend: object) -> bool:
    """True when ``backend`` offers ``list_after`` (a listing that starts after a key)."""
    return offers(backend, ListsAfter)


def reads_in_thread(backend: object) -> bool:
    """True when ``backend`` offers ``get_in_thread`` (a blocking read without a loop)."""
    return offers(backend, ReadsInThread)


def rebuilds_after_fork(backend: object) -> bool:
    """True when ``backend`` offers ``after_fork`` (a hook a forked child's store calls)."""
    return offers(backend, RebuildsAfterFork)


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
        A backend without ``conditional_put`` raises ``NotSupportedError``.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key succeeds."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key, in as few requests as the store allows.

        Every key is checked first: when any of them is not a ``str``, the
        whole call raises ``InvalidValueTypeError`` and nothing is deleted. Missing
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
        iterator; a non-``str`` prefix raises ``InvalidValueTypeError`` (at the
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

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)

        # A class whose reads come from further down its MRO (itself, a mixin) than its
        # ``get_in_thread`` would have the sync API read around them: withdraw the fast path.
        def given_by(name: str) -> int:
            return next((i for i, k in enumerate(cls.__mro__) if name in vars(k)), len(cls.__mro__))

        fast_path = given_by("get_in_thread")
        reads = min(given_by("get"), given_by("get_at_most"))
        if reads < fast_path and getattr(cls, "get_in_thread", None) is not None:
            setattr(cls, "get_in_thread", None)  # noqa: B010 - a method withdrawn, not typed

    async def aclose(self) -> None:
        """Release connections and threads; override it. Calling it twice is harmless."""
