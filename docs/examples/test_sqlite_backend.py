"""The conformance suite against the worked SQLiteBackend, with the undeletable hook.

Run it from this folder: ``pytest test_sqlite_backend.py``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlite_backend import SQLiteBackend
from taquba_memo import MemoBackend
from taquba_memo_conformance import MemoBackendConformance


class TestSQLiteBackend(MemoBackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[MemoBackend]:
        backend = SQLiteBackend(tmp_path / "memo.sqlite3")
        try:
            yield backend
        finally:
            await backend.aclose()

    @contextlib.asynccontextmanager
    async def undeletable(self, backend: MemoBackend, key: str) -> AsyncIterator[None]:
        """A trigger refuses to delete ``key``, from a second connection.

        SQLite has no object holds or locks, but a trigger is the store's
        own way to make one delete fail while every other succeeds; it is
        set up from outside the backend, as an operator would.
        """
        assert isinstance(backend, SQLiteBackend)
        trigger = f"hold_{uuid.uuid4().hex}"
        literal = "'" + key.replace("'", "''") + "'"  # a trigger takes no parameters
        with contextlib.closing(sqlite3.connect(backend.path, isolation_level=None)) as db:
            db.execute(
                f"CREATE TRIGGER {trigger} BEFORE DELETE ON memo_objects "
                f"WHEN old.key = {literal} BEGIN SELECT RAISE(ABORT, 'held'); END"
            )
            try:
                yield
            finally:
                db.execute(f"DROP TRIGGER {trigger}")
