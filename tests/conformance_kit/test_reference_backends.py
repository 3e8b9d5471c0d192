"""The two embedded backends pass the whole conformance suite."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend
from taquba_memo_conformance import MemoBackendConformance


class TestInMemoryBackend(MemoBackendConformance):
    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[MemoBackend]:
        async with InMemoryBackend() as backend:
            yield backend


class TestLocalFileBackend(MemoBackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[MemoBackend]:
        async with LocalFileBackend(tmp_path / "root") as backend:
            yield backend

    @contextlib.asynccontextmanager
    async def undeletable(self, backend: MemoBackend, key: str) -> AsyncIterator[None]:
        # root ignores directory permissions, so it gets an immutable file instead.
        assert isinstance(backend, LocalFileBackend)
        path = backend.root.joinpath(*key.split("/"))
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            if chattr is None:
                raise NotImplementedError("running as root without chattr")
            made = await asyncio.to_thread(
                subprocess.run, [chattr, "+i", str(path)], capture_output=True, text=True
            )
            if made.returncode != 0:  # a file system without the flag (overlayfs, some tmpfs)
                raise NotImplementedError(f"chattr +i failed: {made.stderr.strip()}")
            try:
                yield
            finally:
                await asyncio.to_thread(subprocess.run, [chattr, "-i", str(path)], check=True)
        else:
            mode = path.parent.stat().st_mode
            path.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
            try:
                yield
            finally:
                path.parent.chmod(mode)
