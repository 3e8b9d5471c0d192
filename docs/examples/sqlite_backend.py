"""SQLiteBackend: a worked third-party MemoBackend on SQLite, from the standard library.

It is what docs/writing-a-backend.md builds step by step, and CI proves it
with the conformance kit in both of its modes. It is a plain class: the
protocol is structural, so it inherits from nothing.

The choices that matter:

* **Listing is a range scan, not a pattern.** ``key >= ?`` under SQLite's
  default BINARY collation walks the primary key in UTF-8 byte order, and
  the scan stops at the first key that does not start with the prefix.
  ``LIKE prefix || '%'`` would treat ``_`` and ``%`` as wildcards (and fold
  ASCII case), which makes clearing run ``job_1`` delete run ``jobX1``.
* **Create-if-absent is one statement**, ``INSERT ... ON CONFLICT DO
  NOTHING``: SQLite's write lock makes it atomic, across processes too.
* **Blocking calls run in a worker thread** (``asyncio.to_thread``), one at a
  time on one connection, so the event loop never waits on the disk.
* **Every sqlite3 error becomes a taquba-memo BackendError**, the original
  chained; "database is locked" is transient (a retry may pass).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from taquba_memo import BackendError, DeleteManyError, TransientBackendError
from taquba_memo.adapter_kit import check_key, check_value, chunked, delete_each
from taquba_memo.backend import Capabilities

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS memo_objects (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID
"""
PAGE_SIZE = 1000
# Well below SQLite's limit on variables in one statement (999 before 3.32).
DELETE_BATCH = 500
CAPABILITIES = Capabilities(
    ordered_listing=True, conditional_put=True, max_delete_batch=DELETE_BATCH
)


def _backend_error(exc: sqlite3.Error, action: str) -> BackendError:
    """The one place sqlite3's exceptions become taquba-memo's."""
    message = f"SQLite failed to {action}: {exc}"
    busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    return TransientBackendError(message) if busy else BackendError(message)


def _executor(sql: str, args: Sequence[object]) -> Callable[[sqlite3.Connection], list[Any]]:
    """A statement to run on the worker thread, returning every row."""
    return lambda db: db.execute(sql, args).fetchall()


class SQLiteBackend:
    """Memo objects in one SQLite table; ordered listing and atomic create-if-absent."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._lock = threading.Lock()
        # Autocommit: each statement is its own transaction.
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(SCHEMA)
        self._closed = False

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteBackend({self._path!r})"

    async def _run(self, action: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return fn(self._db)
                except sqlite3.Error as exc:
                    raise _backend_error(exc, action) from exc

        return await asyncio.to_thread(locked)

    async def get(self, key: str) -> bytes | None:
        key = check_key(key)
        row = await self._run(
            f"read {key!r}",
            lambda db: db.execute(
                "SELECT value FROM memo_objects WHERE key = ?", (key,)
            ).fetchone(),
        )
        return None if row is None else bytes(row[0])

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        key, data = check_key(key), check_value(value)
        if if_absent:
            sql = "INSERT INTO memo_objects VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
        else:
            sql = (
                "INSERT INTO memo_objects VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )
        inserted = await self._run(
            f"write {key!r}", lambda db: db.execute(sql, (key, data)).rowcount
        )
        return inserted == 1

    async def delete(self, key: str) -> None:
        key = check_key(key)
        await self._run(
            f"delete {key!r}",
            lambda db: db.execute("DELETE FROM memo_objects WHERE key = ?", (key,)),
        )

    async def delete_many(self, keys: Sequence[str]) -> None:
        # Every key is checked before anything is deleted.
        checked = [check_key(key) for key in keys]
        failures: dict[str, BackendError] = {}
        for batch in chunked(checked, DELETE_BATCH):
            sql = f"DELETE FROM memo_objects WHERE key IN ({','.join('?' * len(batch))})"
            try:
                await self._run(f"delete {len(batch)} keys", _executor(sql, batch))
            except BackendError:
                # The statement failed as a whole: find out key by key which keys fail.
                try:
                    await delete_each(self.delete, batch)
                except DeleteManyError as exc:
                    failures.update(exc.failures)
        if failures:
            raise DeleteManyError(failures) from next(iter(failures.values()))

    async def list(self, prefix: str) -> AsyncIterator[str]:
        prefix = check_key(prefix)
        after: str | None = None
        while True:
            if after is None:
                sql, args = "SELECT key FROM memo_objects WHERE key >= ?", (prefix,)
            else:
                sql, args = "SELECT key FROM memo_objects WHERE key > ?", (after,)
            rows = await self._run(
                f"list {prefix!r}", _executor(f"{sql} ORDER BY key LIMIT {PAGE_SIZE}", args)
            )
            page: list[str] = [row[0] for row in rows]
            for key in page:
                if not key.startswith(prefix):
                    return  # byte order: every later key is past the prefix too
                yield key
            if len(page) < PAGE_SIZE:
                return
            after = page[-1]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._db.close)


def make_backend(tmp_path: Path) -> SQLiteBackend:
    """The factory for ``pytest --memo-backend=sqlite_backend:make_backend``."""
    return SQLiteBackend(tmp_path / "memo.sqlite3")
