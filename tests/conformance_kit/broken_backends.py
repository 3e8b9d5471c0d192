"""Deliberately broken MemoBackends: each has one bug a real adapter could have.

The kit's own tests run the conformance suite against each of them and
check that the suite fails, in the tests that name the bug. They all build
on :class:`HoldableBackend`, a correct in-memory backend whose keys can be
"held" so that deleting them fails; it passes the whole suite, which shows
that the failures come from the one bug and not from the base.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
import sqlite3
import unicodedata
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace

from taquba_memo import (
    AccessDeniedError,
    BackendError,
    DeleteManyError,
    InMemoryBackend,
    NotSupportedError,
)
from taquba_memo.adapter_kit import check_key
from taquba_memo.backend import Capabilities, ListedObject
from taquba_memo.errors import TransientBackendError

PAGE_SIZE = 1000


class HoldableBackend(InMemoryBackend):
    """Correct in-memory backend; a held key cannot be deleted (like an Azure lease)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: set[str] = set()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        self.held.add(key)
        try:
            yield
        finally:
            self.held.discard(key)

    def after_fork(self) -> None:
        """Nothing here but a dict, which a fork copies; offered so the suite checks the hook."""

    async def delete(self, key: str) -> None:
        if check_key(key) in self.held:
            raise AccessDeniedError(f"{key} is held")
        await super().delete(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        keys = [check_key(key) for key in keys]
        failures: dict[str, BackendError] = {}
        for key in keys:
            try:
                await self.delete(key)
            except BackendError as exc:
                failures[key] = exc
        if failures:
            raise DeleteManyError(failures)


class UnorderedListing(HoldableBackend):
    """Declares ordered_listing, but lists keys in the order they were written."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        check_key(prefix)
        for key in list(self._data):
            if key.startswith(prefix):
                yield key


class LeakyPrefix(HoldableBackend):
    """Drops the prefix's trailing "/": listing "run/" leaks "run-suffix/x"."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for key in super().list(check_key(prefix).rstrip("/")):
            yield key


class SegmentPrefix(HoldableBackend):
    """Treats the prefix as a directory: "p/run" finds "p/run/a" but not "p/runner"."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        directory = check_key(prefix)
        if directory and not directory.endswith("/"):
            directory += "/"
        async for key in super().list(directory):
            yield key


class DeleteOfMissingRaises(HoldableBackend):
    """Passes the store's "not found" through instead of treating it as success."""

    async def delete(self, key: str) -> None:
        if await self.get(key) is None:
            raise BackendError(f"{key} not found")
        await super().delete(key)


class OverwritesUnderIfAbsent(HoldableBackend):
    """Declares conditional_put, but if_absent silently overwrites."""

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        return await super().put(key, value)


class UnconditionalMultipart(HoldableBackend):
    """Like an SDK's multipart path that drops the precondition above 8 MiB."""

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        multipart = len(value) > 8 * 1024 * 1024
        return await super().put(key, value, if_absent=if_absent and not multipart)


class CheckThenSetIfAbsent(HoldableBackend):
    """if_absent as a read, a round trip, then a write: concurrent creators all win."""

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        if if_absent:
            if await self.get(key) is not None:
                return False
            await asyncio.sleep(0)  # the network round trip between check and set
        return await super().put(key, value)


class DropsKeyAtPageBoundary(HoldableBackend):
    """Lists in pages of 1000 and loses the first key of each later page (off by one)."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        index = 0
        async for key in super().list(prefix):
            if index == 0 or index % PAGE_SIZE != 0:
                yield key
            index += 1


class SwallowsDeleteFailures(HoldableBackend):
    """delete_many ignores the keys that failed, so a sweep thinks they are gone."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in [check_key(key) for key in keys]:
            with contextlib.suppress(BackendError):
                await self.delete(key)


class StaleListedSizes(HoldableBackend):
    """list_with_metadata reports each key's first size: a listing cache that missed overwrites."""

    def __init__(self) -> None:
        super().__init__()
        self.first_sizes: dict[str, int] = {}

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        written = await super().put(key, value, if_absent=if_absent)
        self.first_sizes.setdefault(key, len(value))
        return written

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        async for key in self.list(prefix):
            yield ListedObject(key, self.first_sizes[key])


class GetAtMostIgnoresTheBound(HoldableBackend):
    """get_at_most returns the whole object whatever its size, as a plain get would."""

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        return await self.get(key)


class ListAfterIncludesTheStart(HoldableBackend):
    """list_after yields the start key too: GCS's inclusive startOffset passed on as it is."""

    async def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        async for key in self.list(check_key(prefix)):
            if key >= check_key(start_after):
                yield key


class AfterForkClosesTheClient(HoldableBackend):
    """after_fork closes the client it inherited and counts on a lazy reopen that never comes."""

    def __init__(self) -> None:
        super().__init__()
        self.client_open = True

    def after_fork(self) -> None:
        self.client_open = False

    def _client(self) -> None:
        if not self.client_open:
            raise TransientBackendError("the client is closed")

    async def get(self, key: str) -> bytes | None:
        self._client()
        return await super().get(key)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        self._client()
        return await super().put(key, value, if_absent=if_absent)


class IfAbsentWithoutCapability(HoldableBackend):
    """Declares no conditional_put, yet answers if_absent by overwriting."""

    @property
    def capabilities(self) -> Capabilities:
        return replace(super().capabilities, conditional_put=False)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        return await super().put(key, value)


class NoConditionalPut(HoldableBackend):
    """Correct, without conditional_put: if_absent raises NotSupportedError."""

    @property
    def capabilities(self) -> Capabilities:
        return replace(super().capabilities, conditional_put=False, ordered_listing=False)

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        if if_absent:
            raise NotSupportedError("no conditional put here")
        return await super().put(key, value)


class EncodesStrValues(HoldableBackend):
    """Encodes a str value as UTF-8 instead of refusing it."""

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        if isinstance(value, str):
            value = value.encode()
        return await super().put(key, value, if_absent=if_absent)


class EmptyValueReadsAsNone(HoldableBackend):
    """Reads a zero-byte value as missing (an ``if not data`` bug)."""

    async def get(self, key: str) -> bytes | None:
        return await super().get(key) or None


class PercentEncodedListing(HoldableBackend):
    """Lists keys percent-encoded, as they travel in a URL."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for key in super().list(prefix):
            yield urllib.parse.quote(key, safe="/")


class _SqliteListing(HoldableBackend):
    """Lists through a real SQLite query over the keys; subclasses write the WHERE clause."""

    where = "key >= ?"

    def pattern(self, prefix: str) -> str:
        return prefix

    async def list(self, prefix: str) -> AsyncIterator[str]:
        check_key(prefix)
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            db.execute("CREATE TABLE entries (key TEXT PRIMARY KEY)")
            db.executemany("INSERT INTO entries VALUES (?)", [(key,) for key in self._data])
            query = f"SELECT key FROM entries WHERE {self.where} ORDER BY key"
            found = [row[0] for row in db.execute(query, (self.pattern(prefix),))]
        for key in found:
            yield key


class SqlLikeListing(_SqliteListing):
    """``WHERE key LIKE prefix || '%'`` without escaping: '_' and '%' are wildcards."""

    where = "key LIKE ?"

    def pattern(self, prefix: str) -> str:
        return prefix + "%"


class SqlGlobListing(_SqliteListing):
    """``WHERE key GLOB prefix || '*'`` without escaping: '*', '?' and '[' are patterns."""

    where = "key GLOB ?"

    def pattern(self, prefix: str) -> str:
        return prefix + "*"


class RedisMatchListing(HoldableBackend):
    """Like Redis ``SCAN MATCH prefix*`` without escaping (glob syntax, fnmatch here)."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        pattern = check_key(prefix) + "*"
        for key in sorted(self._data):
            if fnmatch.fnmatchcase(key, pattern):
                yield key


class RegexListing(HoldableBackend):
    """Matches ``re.match(prefix, key)``: the prefix is read as a regular expression."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        check_key(prefix)
        try:
            pattern = re.compile(prefix)
        except re.error:
            return
        for key in sorted(self._data):
            if pattern.match(key):
                yield key


class CaseInsensitiveListing(HoldableBackend):
    """Compares keys under a case-insensitive collation."""

    async def list(self, prefix: str) -> AsyncIterator[str]:
        folded = check_key(prefix).casefold()
        for key in sorted(self._data):
            if key.casefold().startswith(folded):
                yield key


class NormalisesUnicode(HoldableBackend):
    """Stores every key in NFC, as some file systems and libraries do."""

    @staticmethod
    def _nfc(key: str) -> str:
        return unicodedata.normalize("NFC", check_key(key))

    async def get(self, key: str) -> bytes | None:
        return await super().get(self._nfc(key))

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        return await super().put(self._nfc(key), value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        await super().delete(self._nfc(key))

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for key in super().list(self._nfc(prefix)):
            yield key


class _RenamesKeys(HoldableBackend):
    """Stores every key under :meth:`stored` of it; lists the stored names, as a table would."""

    def stored(self, key: str) -> str:
        raise NotImplementedError

    async def get(self, key: str) -> bytes | None:
        return await super().get(self.stored(check_key(key)))

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        return await super().put(self.stored(check_key(key)), value, if_absent=if_absent)

    async def delete(self, key: str) -> None:
        await super().delete(self.stored(check_key(key)))


class TrimsTrailingWhitespace(_RenamesKeys):
    """A CHAR column: the whole key loses its trailing whitespace, so 'k' and 'k ' are one row."""

    def stored(self, key: str) -> str:
        return key.rstrip()


class StripsLeadingSpaces(_RenamesKeys):
    """Strips the leading spaces of every name and segment: 'run/ x' is stored as 'run/x'."""

    def stored(self, key: str) -> str:
        return "/".join(segment.lstrip(" ") for segment in key.split("/"))
