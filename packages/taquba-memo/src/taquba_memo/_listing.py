"""The listings a store acts on: only keys below the prefix it asked for, memo entries parsed."""

from __future__ import annotations

import datetime
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from taquba_memo import _layout as layout
from taquba_memo.backend import ListedObject

__all__ = ["MemoEntry", "itself", "key_of", "keys_after", "memo_entry", "within_prefix"]

logger = logging.getLogger("taquba_memo")


@dataclass(frozen=True)
class MemoEntry:
    """One object below ``<prefix>/memos/``, as :meth:`MemoStore.iter_entries` lists it."""

    key: str
    """The object's key in the backend."""
    run_id: str | None
    """The run it belongs to; None for an object that is not a memo entry."""
    step_number: int | None
    """The step it belongs to; None for an object that is not a memo entry."""
    kind: Literal["entry", "claim", "unrecognized"] = "entry"
    """``"entry"``, a memo entry; ``"claim"``, a claim of ``get_or_compute``
    next to an entry (:mod:`taquba_memo._claims`), with its run and step;
    ``"unrecognized"``, anything else (run and step are None)."""
    size: int | None = None
    """Its size in bytes, from the listing (``iter_entries(with_metadata=True)``); else None."""
    last_modified: datetime.datetime | None = None
    """When it was last written, from the listing where the store says; else None."""


def memo_entry(
    key: str, memos: str, size: int | None, last_modified: datetime.datetime | None
) -> MemoEntry:
    name = key[len(memos) :]
    parsed = layout.parse_memo_entry_name(name)
    if parsed is not None:
        return MemoEntry(key, *parsed, "entry", size, last_modified)
    claim = layout.parse_memo_claim_name(name)
    if claim is not None:
        return MemoEntry(key, claim[0], claim[1], "claim", size, last_modified)
    return MemoEntry(key, None, None, "unrecognized", size, last_modified)


def itself(key: str) -> str:
    return key


async def keys_after(keys: AsyncIterator[str], after: str) -> AsyncIterator[str]:
    """A ``list_after`` from a plain listing: the keys past ``after`` (str order is UTF-8's)."""
    async for key in keys:
        if key > after:
            yield key


def key_of(item: ListedObject) -> object:
    return getattr(item, "key", item)


_Listed = TypeVar("_Listed")


async def within_prefix(
    prefix: str,
    listing: AsyncIterator[_Listed],
    key_of: Callable[[_Listed], object],
    backend: object,
) -> AsyncIterator[_Listed]:
    """``listing`` without any item whose key is outside ``prefix``; strays are logged.

    The store acts only on keys it asked for: a backend whose ``list``
    over-matches (an unescaped SQL ``LIKE``, a glob, a case-insensitive
    collation) must not turn into deleting another run's data.
    """
    strays = 0
    try:
        async for item in listing:
            key = key_of(item)
            if isinstance(key, str) and key.startswith(prefix):
                yield item
                continue
            strays += 1
            if strays == 1:
                logger.warning(
                    "%r listed %r for prefix %r; ignoring keys outside the prefix "
                    "(a backend bug: list must match a raw string prefix, not a pattern)",
                    backend,
                    key,
                    prefix,
                )
    finally:
        if strays > 1:
            logger.warning(
                "%r listed %d keys outside prefix %r; all were ignored",
                backend,
                strays,
                prefix,
            )
