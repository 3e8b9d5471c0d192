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
  ``stat`` per file, no read).
* Deleting a key removes directories it leaves empty, so cleared runs leave
  no debris behind.
* Nothing below the root is trusted. Whoever else can write in the root may
  plant a symbolic link, a FIFO or a device where an entry or a run's
  directory belongs; the backend never follows a link below the root (when
  reading, writing, listing or deleting), never opens anything but a regular
  file for reading, and never waits on one. Every path below the root is
  resolved relative to a directory descriptor, with ``openat2``'s
  ``RESOLVE_NO_SYMLINKS`` on Linux (one system call) or component by
  component with ``O_NOFOLLOW`` elsewhere, so a link swapped in mid-call is
  refused too. Such a *foreign* object is skipped by listings (logged once
  per path), ``get`` of it raises :class:`~taquba_memo.ForeignObjectError`,
  a delete never reaches through it, and a clear or sweep therefore deletes
  nothing outside the root. The root itself, and the directories above it,
  are the caller's and may be links.
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
import ctypes
import datetime
import errno
import logging
import os
import platform
import secrets
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from taquba_memo._bounded_read import check_max_bytes, entry_too_large
from taquba_memo._checks import check_flag, check_key, check_value, is_staging_name
from taquba_memo.backend import Capabilities, ListedObject, MemoBackendBase
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    DeleteManyError,
    ForeignObjectError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueType,
    TransientBackendError,
)

__all__ = ["LocalFileBackend"]

T = TypeVar("T")

logger = logging.getLogger("taquba_memo")

# Attempts when a concurrent delete removes a directory we are writing into.
_MKDIR_ATTEMPTS = 8

# Paths below the root are never followed through a link; O_NONBLOCK keeps
# the open of a FIFO from waiting for a writer, O_NOCTTY a terminal from
# becoming ours.
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_STAGING_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Errors that send a path from the fast resolution to the component walk,
# which tells a plain file from a foreign object and creates what is missing.
_WALK_ERRNOS = frozenset(
    {errno.ENOTDIR, errno.ELOOP, errno.EXDEV, errno.EAGAIN, errno.ENXIO, errno.EOPNOTSUPP}
)


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


def _map_os_error(exc: OSError, key: str) -> BackendError:
    """The one place an ``OSError`` becomes a taquba-memo error."""
    message = f"local file operation on {key!r} failed: {exc.strerror or exc}"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return AccessDeniedError(message)
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.EMFILE, errno.ENFILE):
        return TransientBackendError(message)
    return BackendError(message)


class _Foreign(Exception):
    """A link or special file where the backend's own file or directory belongs."""

    def __init__(self, relative: str, mode: int | None) -> None:
        super().__init__(relative)
        self.relative = relative
        self.kind = _describe(mode)


def _describe(mode: int | None) -> str:
    if mode is None:
        return "an object that is neither a file nor a directory"
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "a special file"


class _DirectoryVanished(Exception):
    """A concurrent delete removed a directory while a write was creating it."""


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
            raise InvalidValueType(f"root must be a str or path, not {type(text).__name__}")
        if not _is_file_system_path(text):
            raise InvalidArgumentError(
                f"root {text!r} cannot name a directory: it holds a NUL character or "
                "characters the file system encoding cannot represent"
            )
        self._root = Path(text).absolute()
        self._durable = durable
        self._tree = _Tree(self._root)
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
        if not all(_segment_is_valid(segment) for segment in segments):
            raise InvalidKeyError(f"key {key!r} has an empty, '.', '..' or NUL segment")
        if is_staging_name(segments[-1]):
            raise InvalidKeyError(f"key {key!r} ends in a staging name (<name>#<digits>)")
        if not _is_file_system_path(key):
            raise InvalidKeyError(f"key {key!r} cannot be encoded as a file name")
        return segments

    def _foreign_error(self, foreign: _Foreign, key: str, doing: str) -> ForeignObjectError:
        return ForeignObjectError(
            f"cannot {doing} {key!r}: {foreign.relative!r} below {str(self._root)!r} is "
            f"{foreign.kind}, which this backend never follows, reads or deletes through "
            "(something other than taquba-memo put it there)"
        )

    def _report_foreign(self, foreign: _Foreign) -> None:
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
        except OSError as exc:
            raise _map_os_error(exc, key) from exc
        except _Foreign as foreign:
            raise self._foreign_error(foreign, key, doing) from None

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

    async def _get(self, key: str, limit: int | None) -> bytes | None:
        segments = self._segments(key)
        # A small file is read on the event loop: one open, fstat and read of
        # at most INLINE_READ_BYTES from the page cache costs less than the
        # thread hand-off would (measured in BENCHMARKS.md). Larger files go
        # to a thread.
        small = self._call(key, "read", self._read, segments, key, limit, True)
        if not isinstance(small, _Large):
            return small
        result = await self._run(key, "read", self._read, segments, key, limit, False)
        assert not isinstance(result, _Large)
        return result

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
                raise _Foreign("/".join(segments), status.st_mode)
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
            except _DirectoryVanished:
                continue
            assert parent is not None
            try:
                return self._commit(parent, segments[-1], data, if_absent)
            except _DirectoryVanished:
                continue
            finally:
                os.close(parent)
        raise OSError(errno.ENOENT, "directory kept disappearing while writing", "/".join(segments))

    def _commit(self, parent: int, name: str, data: bytes, if_absent: bool) -> bool:
        """Write ``data`` to a staging file in ``parent``, then move it to ``name``."""
        staging = f"{name}#{secrets.randbits(63)}"
        try:
            # O_EXCL: a link planted at the staging name is never written through.
            fd = os.open(staging, _STAGING_FLAGS, 0o644, dir_fd=parent)
        except FileNotFoundError:
            raise _DirectoryVanished from None  # a concurrent delete removed the directory
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
                    mode = _mode_at(parent, name)
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

        def unlink_all() -> dict[str, BackendError]:
            failures: dict[str, BackendError] = {}
            for key, segments in targets:
                try:
                    self._call(key, "delete", self._unlink, segments)
                except BackendError as error:
                    failures[key] = error
            return failures

        failures = await asyncio.to_thread(unlink_all)
        if failures:
            raise DeleteManyError(failures)

    def _unlink(self, segments: Sequence[str]) -> None:
        """Remove the key's file (a link itself, never its target), then empty parents."""
        chain = self._tree.directory_chain(segments[:-1])
        if chain is None:
            return
        try:
            try:
                os.unlink(segments[-1], dir_fd=chain[-1])
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return  # missing, or a directory, which is not a key: nothing to delete
            except PermissionError:
                mode = _mode_at(chain[-1], segments[-1])
                if mode is None or stat.S_ISDIR(mode):
                    return  # macOS says EPERM for a directory
                raise
            # chain[i] is the directory segments[i - 1]; the root (chain[0]) stays.
            for depth in range(len(chain) - 1, 0, -1):
                try:
                    os.rmdir(segments[depth - 1], dir_fd=chain[depth - 1])
                except OSError:
                    return  # not empty (or already gone): stop climbing
        finally:
            for fd in chain:
                os.close(fd)

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
        segments = directory.split("/") if directory else []
        if not all(_segment_is_valid(s) for s in segments) or not _is_file_system_path(prefix):
            return  # no valid key lies under such a prefix
        # Depth-first, each directory sorted with "/" appended to directory
        # names: that visits keys in ascending byte order, one level in memory.
        stack: list[Iterator[_Scanned]] = []
        stack_segments: list[list[str]] = []
        top = await self._run(prefix, "list", self._scan, segments, name_start, with_stat)
        stack.append(iter(top))
        stack_segments.append(segments)
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                stack_segments.pop()
                continue
            name, is_dir, file_stat = entry
            path = [*stack_segments[-1], name]
            key = "/".join(path)
            if is_dir:
                children = await self._run(key, "list", self._scan, path, "", with_stat)
                stack.append(iter(children))
                stack_segments.append(path)
            else:
                yield key, file_stat

    def _scan(self, segments: Sequence[str], name_start: str, with_stat: bool) -> _Entries:
        """Sorted entries of the directory whose names start with ``name_start``.

        A foreign object (the directory itself, or an entry in it) is logged
        and left out; so is a file deleted between the directory read and its
        ``stat``.
        """
        try:
            fd = self._tree.open_directory(segments, create=False)
        except _Foreign as foreign:
            self._report_foreign(foreign)
            return []
        if fd is None:
            return []
        found: _Entries = []
        try:
            # scandir reads a duplicate of fd; entry.stat uses fd itself, so it stays open.
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not entry.name.startswith(name_start) or is_staging_name(entry.name):
                        continue
                    is_dir = entry.is_dir(follow_symlinks=False)
                    if not is_dir and not entry.is_file(follow_symlinks=False):
                        mode = _mode_at(fd, entry.name)
                        if mode is not None:  # (None: deleted since the directory read)
                            self._report_foreign(_Foreign("/".join([*segments, entry.name]), mode))
                        continue
                    file_stat: tuple[int, int] | None = None
                    if with_stat and not is_dir:
                        try:
                            result = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        file_stat = (result.st_size, result.st_mtime_ns)
                    found.append((entry.name, is_dir, file_stat))
        finally:
            os.close(fd)
        found.sort(key=lambda item: item[0] + "/" if item[1] else item[0])
        return found

    async def aclose(self) -> None:
        return None


# A directory entry: name, is a directory, and (size, mtime in ns) of a file when asked.
_Scanned = tuple[str, bool, "tuple[int, int] | None"]
_Entries = list[_Scanned]


def _mode_at(directory: int, name: str) -> int | None:
    """The ``lstat`` mode of ``name`` in ``directory``; None when it is gone."""
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
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


class _Tree:
    """Opens below one root that never pass through a symbolic link, even one swapped in.

    Paths are resolved from the root's real path with ``openat2`` and
    ``RESOLVE_NO_SYMLINKS`` where the kernel has it: one system call, and no
    more than a plain ``open``. Where it does not, and whenever that fails
    (a missing directory to create, a link or a file in the way), the path is
    walked one component at a time from a descriptor of the root with
    ``O_NOFOLLOW``, which also tells a foreign object from a missing one.
    The root's own links are resolved once, at its first use.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._real_root: str | None = None

    def _real(self) -> str:
        if self._real_root is None:
            self._real_root = os.path.realpath(self._root)
        return self._real_root

    def _open_root(self, create: bool) -> int | None:
        try:
            return os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            if not create:
                return None
        os.makedirs(self._root, exist_ok=True)
        return os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _fast(self, segments: Sequence[str], flags: int) -> int | None:
        """openat2 of the path below the real root; None when the walk must decide.

        FileNotFoundError means a component is missing: a link met on the
        way would have been ELOOP, whether or not its target exists.
        """
        if not segments or _openat2 is None:
            return None
        try:
            return _openat2(os.path.join(self._real(), *segments), flags)
        except OSError as exc:
            if exc.errno in _WALK_ERRNOS:
                return None
            raise

    def open_directory(self, segments: Sequence[str], *, create: bool) -> int | None:
        """A descriptor of the directory ``root/segments``; None when it is missing
        and not ``create``; :class:`_Foreign` when a link or special file is in the way."""
        try:
            fd = self._fast(segments, _DIRECTORY_FLAGS)
        except FileNotFoundError:
            if not create:
                return None
            fd = None
        if fd is not None:
            return fd
        chain = self._chain(segments, create)
        if chain is None:
            return None
        for parent in chain[:-1]:
            os.close(parent)
        return chain[-1]

    def directory_chain(self, segments: Sequence[str]) -> list[int] | None:
        """Descriptors of the root and of each directory down to ``root/segments``."""
        return self._chain(segments, create=False)

    def open_file(self, segments: Sequence[str]) -> int | None:
        """A descriptor of ``root/segments`` opened for reading without blocking;
        None when it is missing or lies below a file. Check its type with fstat."""
        try:
            fd = self._fast(segments, _READ_FLAGS)
        except FileNotFoundError:
            return None
        if fd is not None:
            return fd
        parent = self.open_directory(segments[:-1], create=False)
        if parent is None:
            return None
        try:
            return os.open(segments[-1], _READ_FLAGS, dir_fd=parent)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP):
                # A link (ELOOP), or a socket or unconnected device that cannot be opened.
                raise _Foreign("/".join(segments), _mode_at(parent, segments[-1])) from None
            raise
        finally:
            os.close(parent)

    def _chain(self, segments: Sequence[str], create: bool) -> list[int] | None:
        root = self._open_root(create)
        if root is None:
            return None
        chain = [root]
        try:
            for depth, segment in enumerate(segments, 1):
                child = _open_child(chain[-1], segment, create, segments[:depth])
                if child is None:
                    for fd in chain:
                        os.close(fd)
                    return None
                chain.append(child)
        except BaseException:
            for fd in chain:
                os.close(fd)
            raise
        return chain


def _open_child(parent: int, name: str, create: bool, path: Sequence[str]) -> int | None:
    """The directory ``name`` in ``parent``, never through a link; created if asked."""
    try:
        return os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        mode = _mode_at(parent, name)
        if mode is not None and stat.S_ISREG(mode):
            if create:
                raise NotADirectoryError(
                    errno.ENOTDIR, "a file holds this key's directory", "/".join(path)
                ) from None
            return None  # below a file: no such key
        if mode is None:  # removed since the open
            if create:
                raise _DirectoryVanished from None
            return None
        raise _Foreign("/".join(path), mode) from None
    try:
        os.mkdir(name, 0o777, dir_fd=parent)
    except FileExistsError:
        pass  # a concurrent writer made it
    except FileNotFoundError:
        raise _DirectoryVanished from None  # a concurrent delete removed `parent`
    try:
        return os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise _DirectoryVanished from None
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        raise _Foreign("/".join(path), _mode_at(parent, name)) from None


# -- openat2 (Linux 5.6 and later) ---------------------------------------------

_RESOLVE_NO_SYMLINKS = 0x04
_SYS_OPENAT2 = 437  # the same number on every architecture that added it in 5.6
_OPENAT2_MACHINES = frozenset({"x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x"})


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def _load_openat2() -> Callable[[str, int], int | None] | None:
    """``openat2(AT_FDCWD, path, flags, RESOLVE_NO_SYMLINKS)``, or None where there is none."""
    if sys.platform != "linux" or platform.machine() not in _OPENAT2_MACHINES:
        return None
    if sys.maxsize < 2**32:
        return None  # a 32-bit ABI on a 64-bit kernel numbers it differently
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    at_fdcwd = ctypes.c_int(-100)
    size = ctypes.c_size_t(ctypes.sizeof(_OpenHow))
    usable = [True]

    def openat2(path: str, flags: int) -> int | None:
        """The descriptor; None once the kernel has refused openat2 itself."""
        if not usable[0]:
            return None
        how = _OpenHow(flags, 0, _RESOLVE_NO_SYMLINKS)
        fd = syscall(
            ctypes.c_long(_SYS_OPENAT2), at_fdcwd, os.fsencode(path), ctypes.byref(how), size
        )
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
            usable[0] = False  # an old kernel or a seccomp filter: walk from now on
            return None
        raise OSError(code, os.strerror(code), path)

    return openat2


_openat2 = _load_openat2()
