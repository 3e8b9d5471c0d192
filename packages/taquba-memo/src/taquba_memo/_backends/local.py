"""LocalFileBackend: a MemoBackend on a local directory, safe across processes and tenants.

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
  ``stat`` per file, no read). ``list_after`` never opens a directory
  whose keys all sort at or before its start key.
* Deleting a key removes directories it leaves empty, so cleared runs leave
  no debris behind.
* Nothing below the root is trusted. A symbolic link, FIFO, device or
  socket that someone else planted below the root is never followed, read,
  waited on or deleted through, even one swapped in mid-call (how:
  :mod:`taquba_memo._backends._no_follow`). Listings skip such a *foreign*
  object (logged once per path), ``get`` of it raises
  :class:`~taquba_memo.ForeignObjectError`, and a clear or sweep therefore
  deletes nothing outside the root. The root itself, and the directories
  above it, are the caller's and may be links.
* Reads can be bounded: ``get_at_most`` refuses an entry larger than its
  bound from the file's size, before reading it, and stops reading one that
  grows past it.
* Small values stay near the file system: ``get`` of a file up to
  ``INLINE_READ_BYTES`` (64 KiB) is one open, fstat and read on the event
  loop (a page-cache read of that size takes microseconds, less than handing
  it to a thread); larger files are read in a thread. ``put`` fsyncs, which
  waits for the disk, so it runs in a thread, except with ``durable=False``
  for values up to 64 KiB, which are written inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import functools
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from taquba_memo._backends._local_errors import foreign_object_error, map_os_error
from taquba_memo._backends._local_tree import (
    FIRST_LIST_BATCH,
    LIST_BATCH,
    may_hold_keys_after,
    remove_directory,
    take,
    unlink_entry,
)
from taquba_memo._backends._no_follow import (
    STAGING_FLAGS,
    DirectoryVanished,
    Foreign,
    Tree,
    mode_at,
)
from taquba_memo._bounded_read import check_max_bytes, entry_too_large
from taquba_memo._checks import check_flag, check_key, check_value, is_staging_name
from taquba_memo._list_after import check_start_after
from taquba_memo.backend import Capabilities, ListedObject, MemoBackendBase
from taquba_memo.errors import (
    BackendError,
    DeleteManyError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueTypeError,
)

__all__ = ["LocalFileBackend"]

T = TypeVar("T")

logger = logging.getLogger("taquba_memo")

# Attempts when a concurrent delete removes a directory we are writing into.
_MKDIR_ATTEMPTS = 8


def _segment_is_valid(segment: str) -> bool:
    return segment not in ("", ".", "..") and "\x00" not in segment


def _is_file_system_path(text: str) -> bool:
    """Whether ``text`` can name a file here: no NUL, and encodable as the OS needs."""
    if "\x00" in text:
        return False
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


class LocalFileBackend(MemoBackendBase):
    """Files under ``root``, written atomically and listed in byte order.

    ``if_absent`` is atomic across processes (a hard link never replaces an
    existing file). Key segments may not be empty, ``.`` or ``..``, nor a
    staging name (``<name>#<digits>``). A key that is also the directory of
    another key (``a`` and ``a/b``) cannot exist on a file system; writing
    one raises :class:`BackendError`. A root with a NUL, or one the file
    system cannot encode, raises :class:`~taquba_memo.InvalidArgumentError`.

    A symbolic link, FIFO, device or socket below the root is foreign: it
    is never followed, read or deleted through (see the module).
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        text = os.fspath(root)
        if not isinstance(text, str):
            raise InvalidValueTypeError(f"root must be a str or path, not {type(text).__name__}")
        if not _is_file_system_path(text):
            raise InvalidArgumentError(
                f"root {text!r} cannot name a directory: it holds a NUL character or "
                "characters the file system encoding cannot represent"
            )
        self._root = Path(text).absolute()
        self._durable = durable
        self._tree = Tree(self._root)
        self._reported: set[str] = set()
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

    def _segments(self, key: object) -> list[str]:
        key = check_key(key)
        segments = key.split("/")
        if "" in segments or "." in segments or ".." in segments or "\x00" in key:
            raise InvalidKeyError(f"key {key!r} has an empty, '.', '..' or NUL segment")
        if is_staging_name(segments[-1]):
            raise InvalidKeyError(f"key {key!r} ends in a staging name (<name>#<digits>)")
        if not _is_file_system_path(key):
            raise InvalidKeyError(f"key {key!r} cannot be encoded as a file name")
        return segments

    def _report_foreign(self, foreign: Foreign) -> None:
        """Log a foreign object a listing skips, once per path and backend."""
        if foreign.relative in self._reported:
            return
        if len(self._reported) < 10_000:
            self._reported.add(foreign.relative)
        logger.warning(
            "%r skipped %r: it is %s, not a file or directory taquba-memo wrote; it is "
            "never followed, read or deleted through. Remove it if nobody needs it.",
            self,
            foreign.relative,
            foreign.kind,
        )

    def _call(self, key: str, doing: str, fn: Callable[..., T], *args: object) -> T:
        try:
            return fn(*args)
        except (OSError, Foreign) as exc:
            raise self._error(exc, key, doing) from (exc if isinstance(exc, OSError) else None)

    def _error(self, exc: OSError | Foreign, key: str, doing: str) -> BackendError:
        """The typed error for what ``doing`` ``key`` met."""
        if isinstance(exc, Foreign):
            return foreign_object_error(exc, self._root, key, doing)
        return map_os_error(exc, key)

    async def _run(self, key: str, doing: str, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(self._call, key, doing, fn, *args)

    # -- reads ---------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return await self._get(key, None)

    async def get_at_most(self, key: str, max_bytes: int) -> bytes | None:
        """``get(key)``, or :class:`~taquba_memo.EntryTooLargeError` when the file
        holds more than ``max_bytes``: refused from its size before any read, and a
        file growing while read is cut off after ``max_bytes + 1`` bytes."""
        return await self._get(key, check_max_bytes(max_bytes))

    def get_in_thread(self, key: str, max_bytes: int | None) -> bytes | None:
        """:meth:`get_at_most` (:meth:`get` when ``max_bytes`` is None) in the calling thread."""
        limit = None if max_bytes is None else check_max_bytes(max_bytes)
        result = self._call(key, "read", self._read, self._segments(key), key, limit, False)
        assert not isinstance(result, _Large)
        return result

    async def _get(self, key: str, limit: int | None) -> bytes | None:
        segments = self._segments(key)
        # A small file is read on the event loop: from the page cache that costs
        # less than a thread hand-off (BENCHMARKS.md). A larger one, in a thread.
        small = self._call(key, "read", self._read, segments, key, limit, True)
        if not isinstance(small, _Large):
            return small
        return await asyncio.to_thread(LocalFileBackend.get_in_thread, self, key, limit)

    def _read(
        self, segments: Sequence[str], key: str, limit: int | None, inline: bool
    ) -> bytes | _Large | None:
        """The file's bytes, None when there is none, _LARGE when ``inline`` and over
        INLINE_READ_BYTES; EntryTooLargeError past ``limit``."""
        fd = self._tree.open_file(segments)
        if fd is None:
            return None
        try:
            status = os.fstat(fd)
            if stat.S_ISDIR(status.st_mode):
                return None  # a directory of other keys is not a key
            if not stat.S_ISREG(status.st_mode):
                raise Foreign("/".join(segments), status.st_mode)
            if limit is not None and status.st_size > limit:
                raise entry_too_large(key, limit, status.st_size)
            hold = limit
            if inline:
                if status.st_size > INLINE_READ_BYTES:
                    return _LARGE
                hold = INLINE_READ_BYTES if limit is None else min(limit, INLINE_READ_BYTES)
            data = _read_at_most(fd, status.st_size, hold)
            if data is not None:
                return data
            if hold == limit:
                assert limit is not None
                raise entry_too_large(key, limit)  # it grew past the caller's bound
            return _LARGE  # it grew past the inline size since fstat: read it in a thread
        finally:
            os.close(fd)

    # -- writes --------------------------------------------------------------

    async def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
        segments, data = self._segments(key), check_value(value)
        check_flag(if_absent, "if_absent")
        if not self._durable and len(data) <= INLINE_READ_BYTES:
            # Without fsync a small write is page-cache work, cheaper than a thread hop.
            return self._call(key, "write", self._write, segments, data, if_absent)
        # fsync waits for the disk: never on the event loop.
        return await self._run(key, "write", self._write, segments, data, if_absent)

    def _write(self, segments: Sequence[str], data: bytes, if_absent: bool) -> bool:
        for _ in range(_MKDIR_ATTEMPTS):
            try:
                parent = self._tree.open_directory(segments[:-1], create=True)
            except DirectoryVanished:
                continue
            assert parent is not None
            try:
                return self._commit(parent, segments[-1], data, if_absent)
            except DirectoryVanished:
                continue
            finally:
                os.close(parent)
        raise OSError(errno.ENOENT, "directory kept disappearing while writing", "/".join(segments))

    def _commit(self, parent: int, name: str, data: bytes, if_absent: bool) -> bool:
        """Write ``data`` to a staging file in ``parent``, then move it to ``name``."""
        staging = f"{name}#{secrets.randbits(63)}"
        try:
            # O_EXCL: a link planted at the staging name is never written through.
            fd = os.open(staging, STAGING_FLAGS, 0o644, dir_fd=parent)
        except FileNotFoundError:
            raise DirectoryVanished from None  # a concurrent delete removed the directory
        staged = True
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if if_absent:
                try:
                    os.link(
                        staging, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False
                    )
                except FileExistsError:
                    mode = mode_at(parent, name)
                    if mode is not None and stat.S_ISDIR(mode):
                        raise IsADirectoryError(
                            errno.EISDIR, "a directory holds this key", name
                        ) from None
                    return False
            else:
                # rename replaces a link at `name` itself, never what it points to.
                os.replace(staging, name, src_dir_fd=parent, dst_dir_fd=parent)
                staged = False
        finally:
            if staged:
                with contextlib.suppress(OSError):
                    os.unlink(staging, dir_fd=parent)
        if self._durable:
            os.fsync(parent)
        return True

    # -- deletes -------------------------------------------------------------

    async def delete(self, key: str) -> None:
        segments = self._segments(key)
        await self._run(key, "delete", self._unlink, segments)

    async def delete_many(self, keys: Sequence[str]) -> None:
        targets = [(key, self._segments(key)) for key in keys]
        failures = await asyncio.to_thread(self._unlink_many, targets)
        if failures:
            raise DeleteManyError(failures)

    def _unlink(self, segments: Sequence[str]) -> None:
        """Remove the key's file (a link itself, never its target), then empty parents."""
        chain = self._tree.directory_chain(segments[:-1])
        if chain is None:
            return
        try:
            if not unlink_entry(chain[-1], segments[-1]):
                return
            # chain[i] is the directory segments[i - 1]; the root (chain[0]) stays.
            for depth in range(len(chain) - 1, 0, -1):
                try:
                    os.rmdir(segments[depth - 1], dir_fd=chain[depth - 1])
                except OSError:
                    return  # not empty (or already gone): stop climbing
        finally:
            for fd in chain:
                os.close(fd)

    def _unlink_many(self, targets: Sequence[tuple[str, Sequence[str]]]) -> dict[str, BackendError]:
        """Unlink every target, a directory's files through one descriptor of it; then
        remove each directory left empty once, deepest first (not after every unlink)."""
        by_directory: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        for key, segments in targets:
            by_directory.setdefault(tuple(segments[:-1]), []).append((key, segments[-1]))
        failures: dict[str, BackendError] = {}
        emptied: set[tuple[str, ...]] = set()
        for directory, names in by_directory.items():
            try:
                fd = self._tree.open_directory(directory, create=False)
            except (OSError, Foreign) as exc:
                failures.update((key, self._error(exc, key, "delete")) for key, _name in names)
                continue
            if fd is None:
                continue  # no such directory: none of its keys exist
            try:
                for key, name in names:
                    try:
                        if self._call(key, "delete", unlink_entry, fd, name) and directory:
                            emptied.add(directory)
                    except BackendError as error:
                        failures[key] = error
            finally:
                os.close(fd)
        self._remove_empty_directories(emptied)
        return failures

    def _remove_empty_directories(self, candidates: set[tuple[str, ...]]) -> None:
        """rmdir each candidate once, deepest first; a removed one's parent becomes one."""
        tried: set[tuple[str, ...]] = set()
        while candidates:
            depth = max(len(directory) for directory in candidates)
            level = sorted(directory for directory in candidates if len(directory) == depth)
            candidates.difference_update(level)
            for directory in level:
                tried.add(directory)
                if remove_directory(self._tree, directory) and depth > 1:
                    parent = directory[:-1]
                    if parent not in tried:
                        candidates.add(parent)

    # -- listing -------------------------------------------------------------

    async def list(self, prefix: str) -> AsyncIterator[str]:
        async for key, _stat in self._walk(prefix, with_stat=False):
            yield key

    async def list_after(self, prefix: str, start_after: str) -> AsyncIterator[str]:
        """:meth:`list` from the first key greater than ``start_after``.

        A directory whose keys all sort at or before it is not opened.
        """
        check_start_after(start_after)
        async for key, _stat in self._walk(prefix, with_stat=False, start_after=start_after):
            yield key

    async def list_with_metadata(self, prefix: str) -> AsyncIterator[ListedObject]:
        """:meth:`list` with each file's size and modification time (one ``stat`` each)."""
        async for key, file_stat in self._walk(prefix, with_stat=True):
            assert file_stat is not None
            size, mtime_ns = file_stat
            modified = datetime.datetime.fromtimestamp(mtime_ns / 1e9, tz=datetime.timezone.utc)
            yield ListedObject(key, size, modified)

    async def _walk(
        self, prefix: str, *, with_stat: bool, start_after: str | None = None
    ) -> AsyncIterator[tuple[str, tuple[int, int] | None]]:
        check_key(prefix)
        directory, _, name_start = prefix.rpartition("/")
        segments = directory.split("/") if directory else []
        if not all(_segment_is_valid(s) for s in segments) or not _is_file_system_path(prefix):
            return  # no valid key lies under such a prefix
        # One thread hop per batch of keys, not per directory: a batch is many
        # directories' worth of page-cache work, far cheaper than its hand-off.
        entries = self._walk_entries(prefix, segments, name_start, with_stat, start_after)
        size = FIRST_LIST_BATCH
        while True:
            batch = await asyncio.to_thread(take, entries, size)
            for item in batch:
                yield item
            if len(batch) < size:
                return
            size = min(size * 4, LIST_BATCH)

    def _walk_entries(
        self,
        prefix: str,
        segments: Sequence[str],
        name_start: str,
        with_stat: bool,
        start_after: str | None,
    ) -> Iterator[tuple[str, tuple[int, int] | None]]:
        """The keys below ``segments`` starting with ``name_start``, in ascending byte order.

        Depth-first, each directory sorted with "/" appended to directory
        names: that visits keys in ascending byte order, one level in memory.
        """
        scan = functools.partial(
            self._tree.scan, with_stat=with_stat, on_foreign=self._report_foreign
        )
        names, stats = self._call(prefix, "list", scan, segments, name_start)
        # Per directory: its entries, its files' stats, its segments and its keys' prefix.
        top = "/".join(segments) + "/" if segments else ""
        stack = [(iter(names), stats, [*segments], top)]
        while stack:
            entries, stats, directory, base = stack[-1]
            for name in entries:  # resumed where it stopped, after a subdirectory
                if name[-1] != "/":
                    key = base + name
                    if start_after is None or may_hold_keys_after(key, False, start_after):
                        yield key, stats.get(name) if stats else None
                    continue
                key = base + name[:-1]
                if start_after is not None and not may_hold_keys_after(key, True, start_after):
                    continue
                path = [*directory, name[:-1]]
                names, below = self._call(key, "list", scan, path, "")
                stack.append((iter(names), below, path, key + "/"))
                break
            else:
                stack.pop()

    async def aclose(self) -> None:
        return None


def _read_at_most(fd: int, size: int, hold: int | None) -> bytes | None:
    """The rest of ``fd`` (``size`` bytes expected); None once more than ``hold`` arrive.

    Never holds more than ``hold + 1`` bytes of it, however the file grows.
    """
    want = size + 1 if hold is None else min(size, hold) + 1
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, want)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if hold is not None and total > hold:
            return None
        want = _GROWTH_READ if hold is None else min(_GROWTH_READ, hold + 1 - total)


# Bytes per read once a file is longer than its fstat said.
_GROWTH_READ = 1 << 20

INLINE_READ_BYTES = 64 * 1024
"""Files up to this size are read on the event loop by ``get``."""


class _Large:
    """What ``_read`` returns for a file too large to read on the event loop."""


_LARGE = _Large()
