"""The MemoBackend protocol: what a storage adapter implements.

A backend knows nothing about memos, runs or markers. It stores bytes under
``/``-separated keys relative to its own root (a bucket plus an optional base
path), and declares what it can do in :class:`Capabilities`. Everything
memo-specific (layout, validation, clearing, sweeping) lives once, in
:class:`taquba_memo.MemoStore`, above this interface.

Errors: a missing key is never an error (``get`` returns ``None``, deletes
succeed). Storage failures are raised as :class:`~taquba_memo.BackendError`
subclasses with the SDK's exception chained. ``put(..., if_absent=True)`` on a
backend that does not declare ``conditional_put`` raises
:class:`~taquba_memo.NotSupported`; it never silently overwrites.

To write a backend, subclass :class:`MemoBackend` (you inherit the async
context manager methods) and prove it with the ``taquba-memo-conformance``
pytest plugin.

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

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["Capabilities", "MemoBackend"]

_BackendT = TypeVar("_BackendT", bound="MemoBackend")


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


@runtime_checkable
class MemoBackend(Protocol):
    """Async key/bytes storage with declared capabilities."""

    @property
    def capabilities(self) -> Capabilities:
        """What this backend supports; constant for the backend's lifetime."""
        ...

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None`` if there is none."""
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

        Missing keys succeed. A key that fails does not stop the others: all
        are attempted, then ``DeleteManyError`` reports every failure.
        """
        ...

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Yield every key that starts with the raw string ``prefix``.

        The match is on characters, not path segments: ``"a/run"`` also
        yields ``"a/run-suffix/x"``. Keys come in ascending byte order when
        ``capabilities.ordered_listing`` is declared. A consumer may stop
        early; no further pages are then requested.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and threads. Calling it twice is harmless."""
        ...

    async def __aenter__(self: _BackendT) -> _BackendT:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
