"""Opening paths below a root without ever following a link: the local backend's guard.

Nothing below a :class:`~taquba_memo.LocalFileBackend` root is trusted.
Whoever else can write in the root may plant a symbolic link, a FIFO or a
device where an entry or a run's directory belongs, and may swap one in
while a call is under way. Every path below the root is therefore resolved
relative to a directory descriptor, never as a path string the kernel could
follow through a link:

* With ``openat2`` and ``RESOLVE_NO_SYMLINKS`` (Linux 5.6 and later) the
  whole path is one system call from the root's real path, no dearer than a
  plain ``open``, and a link anywhere on it fails with ``ELOOP``.
* Elsewhere, and whenever that fails (a missing directory to create, a link
  or a file in the way), the path is walked one component at a time from a
  descriptor of the root with ``O_NOFOLLOW | O_DIRECTORY``, which also tells
  a foreign object from a missing one.

Files are opened for reading with ``O_NONBLOCK`` (a FIFO never waits for a
writer) and ``O_NOCTTY``, and the caller checks the type with ``fstat``
before reading. A link, FIFO, device or socket where the backend's own file
or directory belongs raises :class:`Foreign`, which the backend turns into
:class:`~taquba_memo.ForeignObjectError` or, in a listing, a logged skip; so
a read never hangs, and a delete, clear or sweep never reaches outside the
root. The root itself, and the directories above it, are the caller's and
may be links: they are resolved once, at the root's first use.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from taquba_memo._checks import is_staging_name

# Paths below the root are never followed through a link; O_NONBLOCK keeps
# the open of a FIFO from waiting for a writer, O_NOCTTY a terminal from
# becoming ours.
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
STAGING_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Errors that send a path from the fast resolution to the component walk,
# which tells a plain file from a foreign object and creates what is missing.
_WALK_ERRNOS = frozenset(
    {errno.ENOTDIR, errno.ELOOP, errno.EXDEV, errno.EAGAIN, errno.ENXIO, errno.EOPNOTSUPP}
)


# A directory's entries: names in key order, a directory's with "/" appended (one str
# each, so a directory of many runs costs a string a run), and (size, mtime in ns) of
# each file when asked.
Scanned = tuple[list[str], dict[str, tuple[int, int]]]


class Foreign(Exception):
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


class DirectoryVanished(Exception):
    """A concurrent delete removed a directory while a write was creating it."""


def mode_at(directory: int, name: str) -> int | None:
    """The ``lstat`` mode of ``name`` in ``directory``; None when it is gone."""
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


class Tree:
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
            # segments are non-empty names without "/": a join by hand is os.path.join's.
            return _openat2(self._real() + "/" + "/".join(segments), flags)
        except OSError as exc:
            if exc.errno in _WALK_ERRNOS:
                return None
            raise

    def open_directory(self, segments: Sequence[str], *, create: bool) -> int | None:
        """A descriptor of the directory ``root/segments``; None when it is missing
        and not ``create``; :class:`Foreign` when a link or special file is in the way."""
        try:
            fd = self._fast(segments, DIRECTORY_FLAGS)
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
            fd = self._fast(segments, READ_FLAGS)
        except FileNotFoundError:
            return None
        if fd is not None:
            return fd
        parent = self.open_directory(segments[:-1], create=False)
        if parent is None:
            return None
        try:
            return os.open(segments[-1], READ_FLAGS, dir_fd=parent)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP):
                # A link (ELOOP), or a socket or unconnected device that cannot be opened.
                raise Foreign("/".join(segments), mode_at(parent, segments[-1])) from None
            raise
        finally:
            os.close(parent)

    def scan(
        self,
        segments: Sequence[str],
        name_start: str,
        with_stat: bool,
        on_foreign: Callable[[Foreign], None],
    ) -> Scanned:
        """Sorted entries of the directory whose names start with ``name_start``.

        A foreign object (the directory itself, or an entry in it) goes to
        ``on_foreign`` and is left out; so is a file deleted between the
        directory read and its ``stat``.
        """
        names: list[str] = []
        stats: dict[str, tuple[int, int]] = {}
        try:
            fd = self.open_directory(segments, create=False)
        except Foreign as foreign:
            on_foreign(foreign)
            return names, stats
        if fd is None:
            return names, stats
        try:
            # scandir reads a duplicate of fd; entry.stat uses fd itself, so it stays open.
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not entry.name.startswith(name_start) or is_staging_name(entry.name):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        names.append(entry.name + "/")
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        mode = mode_at(fd, entry.name)
                        if mode is not None:  # (None: deleted since the directory read)
                            on_foreign(Foreign("/".join([*segments, entry.name]), mode))
                        continue
                    if with_stat:
                        try:
                            result = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        stats[entry.name] = (result.st_size, result.st_mtime_ns)
                    names.append(entry.name)
        finally:
            os.close(fd)
        names.sort()
        return names, stats

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
        return os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        mode = mode_at(parent, name)
        if mode is not None and stat.S_ISREG(mode):
            if create:
                raise NotADirectoryError(
                    errno.ENOTDIR, "a file holds this key's directory", "/".join(path)
                ) from None
            return None  # below a file: no such key
        if mode is None:  # removed since the open
            if create:
                raise DirectoryVanished from None
            return None
        raise Foreign("/".join(path), mode) from None
    try:
        os.mkdir(name, 0o777, dir_fd=parent)
    except FileExistsError:
        pass  # a concurrent writer made it
    except FileNotFoundError:
        raise DirectoryVanished from None  # a concurrent delete removed `parent`
    try:
        return os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise DirectoryVanished from None
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        raise Foreign("/".join(path), mode_at(parent, name)) from None


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
    number = ctypes.c_long(_SYS_OPENAT2)
    size = ctypes.c_size_t(ctypes.sizeof(_OpenHow))
    usable = [True]

    def openat2(path: str, flags: int) -> int | None:
        """The descriptor; None once the kernel has refused openat2 itself."""
        if not usable[0]:
            return None
        how = _OpenHow(flags, 0, _RESOLVE_NO_SYMLINKS)
        fd = syscall(number, at_fdcwd, os.fsencode(path), ctypes.byref(how), size)
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
            usable[0] = False  # an old kernel or a seccomp filter: walk from now on
            return None
        raise OSError(code, os.strerror(code), path)

    return openat2


_openat2 = _load_openat2()
