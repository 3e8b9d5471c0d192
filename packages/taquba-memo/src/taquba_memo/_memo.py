"""Memo: a MemoStore's view of one ``(run_id, step_number)``, the API a step calls.

:meth:`MemoStore.new_memo <taquba_memo.MemoStore.new_memo>` hands these out.
A memo reads and writes the entries of its step, directly or through a codec
(``get_or_compute``, content addressing); the store underneath owns the
backend, the prefix, the value bound and the telemetry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast, overload

from taquba_memo import _compute as compute
from taquba_memo import _layout as layout
from taquba_memo import _streams as streams
from taquba_memo._bounded_read import read_object
from taquba_memo._checks import check_flag, check_value
from taquba_memo._claims import ClaimPolicy
from taquba_memo._codecs import BytesCodec, Codec, decode_value, encode_value
from taquba_memo._content import store_content_key
from taquba_memo._occurrences import Occurrences
from taquba_memo._telemetry import Operation, StoreTelemetry
from taquba_memo.backend import MemoBackend, ReadsInThread
from taquba_memo.errors import ValueTooLargeError

__all__ = ["BYTES", "BoundMemo", "Memo", "MemoHost"]

T = TypeVar("T")

# The default codec of the value-level methods of both APIs' memos: bytes stored as they are.
BYTES = BytesCodec()


class MemoHost(Protocol):
    """What a :class:`Memo` uses of its store; :class:`~taquba_memo.MemoStore` is the one.

    A protocol rather than MemoStore itself because the store imports this
    module (``new_memo`` builds memos), and imports run one way.
    """

    @property
    def backend(self) -> MemoBackend:
        """The backend, refused once the store is closed."""
        ...

    @property
    def prefix(self) -> str: ...

    @property
    def max_value_bytes(self) -> int | None: ...

    @property
    def layout(self) -> str:
        """``"0.5"`` or ``"0.10"``: which content keys the memos derive."""
        ...

    @property
    def _telemetry(self) -> StoreTelemetry:
        """The store's stats and OpenTelemetry, shared by all its memos."""
        ...


StoreT = TypeVar("StoreT")


class BoundMemo(Generic[StoreT]):
    """What a memo is bound to: one ``(run_id, step_number)`` of one store.

    The base of :class:`Memo` and of the sync API's ``Memo``; the run id and
    step number it is given are already validated.
    """

    __slots__ = ("_run_id", "_step_number", "_store")

    _repr_name: ClassVar[str]

    def __init__(self, store: StoreT, run_id: str, step_number: int) -> None:
        self._store = store
        self._run_id = run_id
        self._step_number = step_number

    @property
    def run_id(self) -> str:
        """The run this memo is bound to."""
        return self._run_id

    @property
    def step_number(self) -> int:
        """The step this memo is bound to."""
        return self._step_number

    @property
    def store(self) -> StoreT:
        return self._store

    def __repr__(self) -> str:
        return f"{self._repr_name}(run_id={self._run_id!r}, step_number={self._step_number})"


class Memo(BoundMemo[MemoHost]):
    """A :class:`~taquba_memo.MemoStore` view scoped to one ``(run_id, step_number)``.

    Arguments are validated when the memo is built, so a bad run id fails
    before the step does any work.
    """

    __slots__ = ("_occurrences", "_step_keys")

    _repr_name = "Memo"

    def __init__(self, store: MemoHost, run_id: str, step_number: int) -> None:
        super().__init__(
            store, layout.validate_run_id(run_id), layout.validate_step_number(step_number)
        )
        self._occurrences = Occurrences()
        # What every entry key of this step starts with, built once (the layout's own memo_key).
        step_key = layout.memo_key(store.prefix, self._run_id, self._step_number, "")
        self._step_keys = step_key.rpartition("/")[0] + "/"

    def _entry_key(self, key: str) -> str:
        """``layout.memo_key`` of ``key`` in this memo's step (validates ``key``, no I/O)."""
        return self._step_keys + layout.hex_sha256(key)

    def occurrence_key(self, key: str) -> str:
        """Return the entry key of this call's occurrence of ``key``: ``f"{key}#{n}"``.

        The n-th call (from 0) with the same ``key`` on this memo object gets
        ``#n``, so identical requests sent twice in one attempt are two
        entries, and the retry's memo (counting from 0 again) replays them in
        the same order. Call it when the request starts, before awaiting it:
        concurrent different requests then get their own entries whatever
        order they finish in. See :mod:`taquba_memo._occurrences`.
        """
        return self._occurrences.next_key(key)

    async def get(self, key: str) -> bytes | None:
        """Return the value an earlier attempt stored for ``key``, or None.

        On a store with ``max_value_bytes``, an entry larger than that raises
        :class:`~taquba_memo.EntryTooLargeError`, and where the backend offers
        ``get_at_most`` (every shipped one does) no more than the bound of it
        was held in memory; on another backend it was read whole first.
        """
        path, operation = self._lookup(key)
        with operation:
            data = await read_object(self._store.backend, path, self._store.max_value_bytes)
            operation.read(data)
        return data

    def _get_in_thread(self, key: str) -> bytes | None:
        """:meth:`get` in the calling thread, on a backend that offers ``get_in_thread``."""
        path, operation = self._lookup(key)
        with operation:
            reader = cast(ReadsInThread, self._store.backend)
            data = reader.get_in_thread(path, self._store.max_value_bytes)
            operation.read(data)
        return data

    def _lookup(self, key: str) -> tuple[str, Operation]:
        """The object key of ``key`` (validated, before any I/O) and a ``get``'s operation."""
        path = self._entry_key(key)
        return path, self._store._telemetry.operation("get", self._run_id, self._step_number)

    async def put(
        self, key: str, value: bytes | bytearray | memoryview, *, if_absent: bool = False
    ) -> bool:
        """Store ``value`` (any bytes-like object) for ``key`` and return True.

        By default a prior value is overwritten, as in the reference: a retry
        that produces the same value is idempotent, and otherwise the most
        recent attempt wins. With ``if_absent`` the first writer wins: the
        value is stored only if ``key`` has none, and False is returned when
        it had one (backends without ``conditional_put`` raise
        ``NotSupportedError``).
        """
        if_absent = check_flag(if_absent, "if_absent")
        store = self._store
        path = self._entry_key(key)
        data = check_value(value)
        limit = store.max_value_bytes
        if limit is not None and len(data) > limit:
            raise ValueTooLargeError(f"value of {len(data)} bytes exceeds max_value_bytes={limit}")
        with store._telemetry.operation("put", self._run_id, self._step_number) as operation:
            stored = await store.backend.put(path, data, if_absent=if_absent)
            operation.wrote(data, stored)
        return stored

    # -- values through codecs (get_or_compute, content addressing) ---------

    @overload
    async def get_or_compute(
        self,
        key: str,
        fn: Callable[[], bytes | Awaitable[bytes]],
        *,
        if_absent: bool | None = None,
        store_if_cancelled: bool = True,
        claim: ClaimPolicy | None = None,
    ) -> bytes: ...

    @overload
    async def get_or_compute(
        self,
        key: str,
        fn: Callable[[], T | Awaitable[T]],
        *,
        codec: Codec[T],
        if_absent: bool | None = None,
        store_if_cancelled: bool = True,
        claim: ClaimPolicy | None = None,
    ) -> T: ...

    async def get_or_compute(
        self,
        key: str,
        fn: Callable[[], Any],
        *,
        codec: Codec[Any] = BYTES,
        if_absent: bool | None = None,
        store_if_cancelled: bool = True,
        claim: ClaimPolicy | None = None,
    ) -> Any:
        """Return the value stored for ``key``, or compute, store and return it.

        ``fn`` takes no arguments and may be sync or async; a sync ``fn`` runs
        on the event loop, so hand blocking work to ``asyncio.to_thread``.
        ``codec`` turns the value into bytes and back (default: bytes as they
        are). Exceptions from ``fn`` propagate and are never cached; a stored
        value that fails to decode counts as a miss and is recomputed.
        Concurrent calls in this process for the same entry compute once.

        Duplicates agree by default: with ``if_absent=None`` the result is
        stored first-writer-wins wherever the backend declares
        ``conditional_put``, and every caller returns the winner's value; on
        a backend without it the store is an overwrite (latest writer wins,
        as ``put`` does) and a warning says so once. ``if_absent=True``
        demands first-writer-wins (``NotSupportedError`` before any work
        otherwise); ``if_absent=False`` chooses overwrite.

        Paid work survives cancellation: once ``fn`` has started, a
        cancelled or timed-out caller leaves it running, and its result is
        stored (and handed to any concurrent caller waiting for it), as long
        as the event loop runs. ``store_if_cancelled=False`` cancels ``fn``
        with the caller instead.

        Duplicates in other processes pay once with ``claim=ClaimPolicy(lease_s=...)``
        (needs ``conditional_put``; ``NotSupportedError`` before any work
        otherwise): the first caller records a claim with a lease and renews
        it while ``fn`` runs; a duplicate that finds a live claim waits for
        the entry instead of paying, and takes over (one waiter only) when
        the claim was released or not renewed for a lease. Recommended
        where a runtime's lease can expire under a live worker; see
        :mod:`taquba_memo._claims`.

        The returned value is always ``codec.decode(codec.encode(result))``:
        what a retry will read back. See :mod:`taquba_memo._compute` for the
        details.
        """
        slot = self._compute_slot(key, if_absent)
        return await compute.get_or_compute(slot, fn, codec, if_absent, store_if_cancelled, claim)

    def _stored_in_thread(
        self,
        key: str,
        fn: Callable[[], Any],
        codec: Codec[Any],
        if_absent: bool | None,
        store_if_cancelled: bool,
        claim: ClaimPolicy | None,
    ) -> tuple[bool, Any]:
        """:meth:`get_or_compute`'s hit in the calling thread, on a backend that offers
        ``get_in_thread``: ``(True, value)``, or ``(False, None)`` when it must run."""
        slot = self._compute_slot(key, if_absent)
        compute.check_call(slot, fn, codec, if_absent, store_if_cancelled, claim)
        return compute.stored_in_thread(slot, codec)

    def _compute_slot(self, key: str, if_absent: bool | None) -> compute.EntrySlot:
        if if_absent is not None:
            check_flag(if_absent, "if_absent")
        return self._entry_slot(key, "get_or_compute")

    @overload
    def get_or_stream(
        self,
        key: str,
        fn: Callable[[], AsyncIterator[bytes]],
        *,
        claim: ClaimPolicy | None = None,
    ) -> AsyncIterator[bytes]: ...

    @overload
    def get_or_stream(
        self,
        key: str,
        fn: Callable[[], AsyncIterator[T]],
        *,
        codec: Codec[T],
        claim: ClaimPolicy | None = None,
    ) -> AsyncIterator[T]: ...

    def get_or_stream(
        self,
        key: str,
        fn: Callable[[], AsyncIterator[Any]],
        *,
        codec: Codec[Any] = BYTES,
        claim: ClaimPolicy | None = None,
    ) -> AsyncIterator[Any]:
        """Replay the stream of chunks recorded for ``key``, or stream ``fn()`` live and record it.

        ``fn()`` returns an async iterator of chunks (or an awaitable of
        one); ``codec`` turns each chunk into bytes and back. On a miss each
        chunk reaches the caller as ``fn`` produces it, and the recording is
        stored when the stream ends (first complete stream wins), before the
        caller's loop ends; on a hit the chunks are replayed in order without
        calling ``fn``. A stream that raises stores nothing and the exception
        reaches the caller; a caller that stops early (``break``,
        ``aclose()``, cancellation) stores nothing, and ``fn``'s stream is
        closed once no caller reads it. Concurrent calls in this event loop
        share one call of ``fn``; ``claim=ClaimPolicy(...)`` makes a duplicate
        worker elsewhere wait and replay. A recording over
        ``max_value_bytes`` is streamed but not stored. The stored format and
        the details are in :mod:`taquba_memo._streams`.

        Arguments are checked when it is called; nothing is read until the
        first chunk is asked for.
        """
        return streams.get_or_stream(self._entry_slot(key, "get_or_stream"), fn, codec, claim)

    def _entry_slot(self, key: str, operation: str) -> compute.EntrySlot:
        """The entry of ``key`` as get_or_compute sees it (validates ``key``, before any I/O)."""
        store = self._store
        run_id, step_number = self._run_id, self._step_number
        return compute.EntrySlot(
            store.backend,
            self._entry_key(key),
            store.max_value_bytes,
            lambda: f"memo entry {key!r} of run {run_id} step {step_number}",
            store._telemetry.operation(operation, run_id, step_number),
        )

    @overload
    async def content_get(
        self, content: object, *, namespace: str | None = None
    ) -> bytes | None: ...

    @overload
    async def content_get(
        self, content: object, *, codec: Codec[T], namespace: str | None = None
    ) -> T | None: ...

    async def content_get(
        self, content: object, *, codec: Codec[Any] = BYTES, namespace: str | None = None
    ) -> Any:
        """Return the value stored for the input ``content``, or None.

        The key is :func:`taquba_memo.content_key` of ``content`` (the hex
        SHA-256 of its RFC 8785 canonical JSON, after ``namespace`` when one
        is given), so equal inputs find the same entry in every process and
        language. In a store of layout ``"0.10"`` the key is taquba-workflow's
        instead (MessagePack, see :mod:`taquba_memo._content`), and
        ``namespace`` is refused. Raises :class:`~taquba_memo.EncodeError` for an
        input without a canonical encoding, and
        :class:`~taquba_memo.DecodeError` for a stored value the codec
        cannot read.
        """
        data = await self.get(store_content_key(self._store.layout, content, namespace))
        return None if data is None else decode_value(codec, data)

    @overload
    async def content_put(
        self,
        content: object,
        value: bytes,
        *,
        if_absent: bool = False,
        namespace: str | None = None,
    ) -> bool: ...

    @overload
    async def content_put(
        self,
        content: object,
        value: T,
        *,
        codec: Codec[T],
        if_absent: bool = False,
        namespace: str | None = None,
    ) -> bool: ...

    async def content_put(
        self,
        content: object,
        value: Any,
        *,
        codec: Codec[Any] = BYTES,
        if_absent: bool = False,
        namespace: str | None = None,
    ) -> bool:
        """Store ``value`` for the input ``content``; see :meth:`put` and :meth:`content_get`.

        To compute on a miss, use ``get_or_compute(content_key(content), fn)``.
        """
        check_flag(if_absent, "if_absent")
        key = store_content_key(self._store.layout, content, namespace)
        return await self.put(key, encode_value(codec, value), if_absent=if_absent)
