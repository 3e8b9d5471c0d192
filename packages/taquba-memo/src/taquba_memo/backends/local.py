"""LocalFileBackend: a MemoBackend on a local directory, safe across processes.

Key ``a/b/c`` is the file ``<root>/a/b/c``: the same tree that obstore's
``LocalStore`` (Rust ``object_store``'s ``LocalFileSystem``) reads and writes,
so Python and Rust workers on one machine can share it.

* Writes are atomic. A value goes to a staging file ``<name>#<digits>`` in
  the target's directory, is fsynced, then renamed over the target (or, for
  ``if_absent``, hard-linked to it, which fails if the target exists).
  No reader and no crash ever sees a torn value. Staging files are the ones
  ``object_store`` itself uses and skips when listing, so neither side ever
  lists one as a key.
* Listing walks the tree in ascending byte order of the keys;
  ``list_with_metadata`` adds each file's size and modification time (a
  ``stat`` per file, no read).
* Deleting a key removes directories it leaves empty, so cleared runs leave
  no debris behind.
* Small values stay near the file system: ``get`` of a file up to
  ``INLINE_READ_BYTES`` (64 KiB) is one open, fstat and read on the event
  loop (a page-cache read of that size takes microseconds, less than handing
  it to a thread); larger files are read in a thread. ``put`` fsyncs, which
  waits for the disk, so it runs in a thread, except with ``durable=False``
  for values up to 64 KiB, which are written inline.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from taquba_memo._checks import check_key, check_value, is_staging_name
from taquba_memo.backend import Capabilities, ListedObject, MemoBackendBase
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    DeleteManyError,
    InvalidKeyError,
    TransientBackendError,
)

__all__ = ["LocalFileBackend"]

T = TypeVar("T")

# Attempts when a concurrent delete removes a directory we are writing into.
_MKDIR_ATTEMPTS = 8


def _segment_is_valid(segment: str) -> bool:
    return segment not in ("", ".", "..") and "\x00" not in segment


def _map_os_error(exc: OSError, key: str) -> BackendError:
    """The one place an ``OSError`` becomes a taquba-memo error."""
    message = f"local file operation on {key!r} failed: {exc.strerror or exc}"
    if isinstance(exc, PermissionError):
        return AccessDeniedError(message)
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.EMFILE, errno.ENFILE):
        return TransientBackendError(message)
    return BackendError(message)


class LocalFileBackend(MemoBackendBase):
    """Files under ``root``, written atomically and listed in byte order.

    ``if_absent`` is atomic across processes (a hard link never replaces an
    existing file). Key segments may not be empty, ``.`` or ``..``, nor a
    staging name (``<name>#<digits>``). A key that is also the directory of
    another key (``a`` and ``a/b``) cannot exist on a file system; writing
    one raises :class:`BackendError`.
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self._root = Path(root).absolute()
        self._durable = durable
        self._capabilities = Capabilities(
            ordered_listing=True, conditional_put=True, max_delete_batch=1000
        )

    @property
    def root(self) -> Path:
        return self._root

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def __repr__(self) -> str:
        return f"LocalFileBackend({str(self._root)!r})"

    def _path(self, key: object) -> Path:
        segments = check_key(key).split("/")
        if not all(_segment_is_valid(segment) for segment in segments):
            raise InvalidKeyError(f"key {key!r} has an empty, '.', '..' or NUL segment")
        if is_staging_name(segments[-1]):
            raise InvalidKeyError(f"key {key!r} ends in a staging name (<name>#<digits>)")
        return self._root.joinpath(*segments)

    async def _run(self, key: str, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise _map_os_error(exc, key) from exc

    # -- reads ---------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        # A small file is read on the event loop: one open, fstat and read of
        # at most INLINE_READ_BYTES from the page cache costs less than the
        # thread hand-off would (measured in BENCHMARKS.md). Larger files, and
        # everything else, go to a thread.
        try:
            small = _read_if_small(path)
        except OSError as exc:
            raise _map_os_error(exc, key) from exc
        if not isinstance(small, _Large):
            return small

        def read() -> bytes | None:
            try:
                return path.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None

        return await self._run(key, read)

    # -- writes --------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        path, data = self._path(key), check_value(value)
        if not self._durable and len(data) <= INLINE_READ_BYTES:
            # Without fsync a small write is page-cache work, cheaper than a thread hop.
            try:
                return self._write(path, data, if_absent)
            except OSError as exc:
                raise _map_os_error(exc, key) from exc
        # fsync waits for the disk: never on the event loop.
        return await self._run(key, self._write, path, data, if_absent)

    def _write(self, path: Path, data: bytes, if_absent: bool) -> bool:
        staging = self._write_staging(path, data)
        try:
            if if_absent:
                try:
                    os.link(staging, path)
                except FileExistsError:
                    if path.is_dir():
                        raise IsADirectoryError(
                            errno.EISDIR, "a directory holds this key", str(path)
                        ) from None
                    return False
            else:
                os.replace(staging, path)
            if self._durable:
                _fsync_directory(path.parent)
            return True
        finally:
            staging.unlink(missing_ok=True)

    def _write_staging(self, path: Path, data: bytes) -> Path:
        for _ in range(_MKDIR_ATTEMPTS):
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f"{path.name}#{secrets.randbits(63)}")
            try:
                fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                continue  # a concurrent delete removed the directory; recreate it
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._durable:
                    os.fsync(fd)
            except BaseException:
                os.close(fd)
                staging.unlink(missing_ok=True)
                raise
            os.close(fd)
            return staging
        raise OSError(errno.ENOENT, "directory kept disappearing while writing", str(path))

    # -- deletes -------------------------------------------------------------

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await self._run(key, self._unlink, path)

    async def delete_many(self, keys: Sequence[str]) -> None:
        paths = [(key, self._path(key)) for key in keys]

        def unlink_all() -> dict[str, BackendError]:
            failures: dict[str, BackendError] = {}
            for key, path in paths:
                try:
                    self._unlink(path)
                except OSError as exc:
                    error = _map_os_error(exc, key)
                    error.__cause__ = exc
                    failures[key] = error
            return failures

        failures = await asyncio.to_thread(unlink_all)
        if failures:
            raise DeleteManyError(failures)

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            return  # a directory is not a key: nothing to delete
        self._remove_empty_parents(path.parent)

    def _remove_empty_parents(self, directory: Path) -> None:
        while directory != self._root and self._root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone): stop climbing
            directory = directory.parent

    # -- listing -------------------------------------------------------------

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for key, _stat in self._walk(prefix, with_stat=False):
            yield key

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`list` with each file's size and modification time (one ``stat`` each)."""
        async for key, file_stat in self._walk(prefix, with_stat=True):
            assert file_stat is not None
            size, mtime_ns = file_stat
            modified = datetime.datetime.fromtimestamp(mtime_ns / 1e9, tz=datetime.timezone.utc)
            yield ListedObject(key, size, modified)

    async def _walk(
        self, prefix: str, *, with_stat: bool
    ) -> AsyncIterator[tuple[str, tuple[int, int] | None]]:
        check_key(prefix)
        directory, _, name_start = prefix.rpartition("/")
        if directory and not all(_segment_is_valid(s) for s in directory.split("/")):
            return  # no valid key lies under such a prefix
        base = self._root.joinpath(*directory.split("/")) if directory else self._root
        key_prefix = f"{directory}/" if directory else ""
        # Depth-first, each directory sorted with "/" appended to directory
        # names: that visits keys in ascending byte order, one level in memory.
        stack: list[Iterator[_Scanned]] = []
        stack_prefixes: list[str] = []
        top = await self._run(prefix, _scan, base, name_start, with_stat)
        stack.append(iter(top))
        stack_prefixes.append(key_prefix)
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                stack_prefixes.pop()
                continue
            name, is_dir, stat = entry
            key = stack_prefixes[-1] + name
            if is_dir:
                subdirectory = self._root.joinpath(*key.split("/"))
                children = await self._run(key, _scan, subdirectory, "", with_stat)
                stack.append(iter(children))
                stack_prefixes.append(key + "/")
            else:
                yield key, stat

    async def aclose(self) -> None:
        return None


# A directory entry: name, is a directory, and (size, mtime in ns) of a file when asked.
_Scanned = tuple[str, bool, "tuple[int, int] | None"]


def _scan(directory: Path, name_start: str, with_stat: bool) -> list[_Scanned]:
    """Sorted entries of ``directory`` whose names start with ``name_start``.

    A file deleted between the directory read and its ``stat`` is left out.
    """
    found: list[_Scanned] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not entry.name.startswith(name_start) or is_staging_name(entry.name):
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                file_stat: tuple[int, int] | None = None
                if with_stat and not is_dir:
                    try:
                        result = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    file_stat = (result.st_size, result.st_mtime_ns)
                found.append((entry.name, is_dir, file_stat))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found.sort(key=lambda item: item[0] + "/" if item[1] else item[0])
    return found


INLINE_READ_BYTES = 64 * 1024
"""Files up to this size are read on the event loop by ``get``."""


class _Large:
    """What ``_read_if_small`` returns for a file too large to read on the event loop."""


_LARGE = _Large()


def _read_if_small(path: Path) -> bytes | _Large | None:
    """The bytes of a file of at most INLINE_READ_BYTES; None if there is none; else _LARGE."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            return None  # a directory is not a key
        if status.st_size > INLINE_READ_BYTES:
            return _LARGE
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, INLINE_READ_BYTES + 1)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            if sum(map(len, chunks)) > INLINE_READ_BYTES:
                return _LARGE  # it grew since fstat: read it in a thread
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
