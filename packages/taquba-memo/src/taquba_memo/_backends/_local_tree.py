"""Pruning and batching a LocalFileBackend tree: unlinking entries, removing emptied
directories, and which directories a listing after a key may skip."""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterator
from typing import TypeVar

from taquba_memo._backends._no_follow import Foreign, Tree, mode_at
from taquba_memo._list_after import is_after

__all__ = [
    "FIRST_LIST_BATCH",
    "LIST_BATCH",
    "may_hold_keys_after",
    "remove_directory",
    "take",
    "unlink_entry",
]

T = TypeVar("T")


def take(entries: Iterator[T], count: int) -> list[T]:
    """The next ``count`` items of ``entries`` (fewer at its end)."""
    return list(itertools.islice(entries, count))


# Keys a listing takes per thread hop: a small first batch for a caller that
# wants the first keys only, then larger ones.
FIRST_LIST_BATCH = 256
LIST_BATCH = 4096


def unlink_entry(directory: int, name: str) -> bool:
    """Unlink ``name`` in ``directory`` (a link itself, never its target); False when
    there was no such key (missing, or a directory, which is not a key)."""
    try:
        os.unlink(name, dir_fd=directory)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False
    except PermissionError:
        mode = mode_at(directory, name)
        if mode is None or stat.S_ISDIR(mode):
            return False  # macOS says EPERM for a directory
        raise
    return True


def remove_directory(tree: Tree, directory: tuple[str, ...]) -> bool:
    """rmdir ``directory`` (below the root) if it is empty; whether it was removed."""
    try:
        parent = tree.open_directory(directory[:-1], create=False)
    except (OSError, Foreign):
        return False
    if parent is None:
        return False
    try:
        os.rmdir(directory[-1], dir_fd=parent)
    except OSError:
        return False  # not empty (or already gone, or a link, never followed)
    finally:
        os.close(parent)
    return True


def may_hold_keys_after(key: str, is_dir: bool, start_after: str) -> bool:
    """Whether the file ``key``, or some key below the directory ``key``, is after ``start_after``.

    Every key below a directory starts with ``key + "/"``: all of them sort
    at or before ``start_after`` when it sorts after that and does not start
    with it.
    """
    if not is_dir:
        return is_after(key, start_after)
    below = key + "/"
    return start_after.startswith(below) or not is_after(start_after, below)
