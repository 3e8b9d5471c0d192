"""A backend wrapper that counts what a command lists and deletes, and stops at a denial."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from taquba_memo import _layout as layout
from taquba_memo._backends.forwarding import ForwardingBackend
from taquba_memo.backend import ListedObject, MemoBackend
from taquba_memo.errors import AccessDeniedError, DeleteManyError

__all__ = ["ObservedBackend", "observe"]

_T = TypeVar("_T")


class ObservedBackend(ForwardingBackend):
    """Counts what is listed and deleted, for progress, and stops at the first denied
    listing or delete (a sweep would otherwise record it as one failed run after another)."""

    def __init__(self, inner: MemoBackend, prefix: str) -> None:
        super().__init__(inner)
        self._terminals = layout.terminals_prefix(prefix)
        self.attempted = 0
        self.deleted = 0
        self.markers_listed = 0
        self.denied: AccessDeniedError | None = None
        self.on_change: Callable[[], None] = lambda: None
        self.on_denied: Callable[[AccessDeniedError, str], None] = lambda _error, _doing: None

    def list(self, prefix: str) -> AsyncIterator[str]:
        return self._watched(super().list(prefix), counted=prefix.startswith(self._terminals))

    def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        # Offered only when the inner backend offers it (ForwardingBackend withholds it otherwise).
        return self._watched(super().list_with_metadata(prefix), counted=False)

    async def _watched(self, listing: AsyncIterator[_T], *, counted: bool) -> AsyncIterator[_T]:
        try:
            async for key in listing:
                if counted:
                    self.markers_listed += 1
                    self.on_change()
                yield key
        except AccessDeniedError as exc:
            self._deny(exc, "listing")
            raise

    async def delete_many(self, keys: Sequence[str]) -> None:
        self.attempted += len(keys)
        try:
            await super().delete_many(keys)
        except DeleteManyError as exc:
            self._count(len(keys) - len(exc.failures))
            denied = [e for e in exc.failures.values() if isinstance(e, AccessDeniedError)]
            if denied:
                self._deny(denied[0], "deleting")
            raise
        except AccessDeniedError as exc:
            self._deny(exc, "deleting")
            raise
        self._count(len(keys))

    def _deny(self, error: AccessDeniedError, doing: str) -> None:
        # A denial fails every later call alike: stop once, instead of once per key.
        if self.denied is None:
            self.denied = error
            self.on_denied(error, doing)

    def _count(self, deleted: int) -> None:
        self.deleted += deleted
        self.on_change()


def observe(inner: MemoBackend, prefix: str) -> ObservedBackend:
    """``inner`` wrapped for a command on the store at ``prefix``."""
    return ObservedBackend(inner, prefix)
