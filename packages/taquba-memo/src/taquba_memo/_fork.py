"""Fork detection: a counter every forked child increments, and the backend hook it triggers.

A process made by ``os.fork()`` (Celery's prefork pool, gunicorn
``--preload``, ``multiprocessing`` with the fork start method) inherits the
parent's memory but none of its threads, and shares its open sockets. A
store opened before the fork must not use the parent's threads (they do not
exist) nor its connections (the parent still uses them). The stores detect
the fork here, once: they record :func:`generation` when built and, on first
use in a process with a different generation, call the backend's optional
``after_fork()`` hook (:class:`~taquba_memo.backend.RebuildsAfterFork`).
"""

from __future__ import annotations

import asyncio
import os
import select
import selectors
import threading
from typing import Any, cast

from taquba_memo.backend import RebuildsAfterFork, rebuilds_after_fork

__all__ = ["after_fork", "detach_inherited_loop", "generation", "keep_inherited"]

_generation = 0

# What a child inherited and must never close or finalize: closing the child's
# copy of a parent's event loop, say, would unregister the parent's file
# descriptors from the epoll instance both processes share.
_inherited: list[Any] = []

child_lock = threading.Lock()
"""Serializes the rebuilds a child does after a fork; re-created in every child."""


def generation() -> int:
    """How many forks lie between the first process and this one (0 in the first)."""
    return _generation


def keep_inherited(obj: Any) -> None:
    """Keep ``obj``, inherited from the parent, alive and untouched in this child, to the
    end of the process: never finalized, not even at a normal exit, where finalizing an
    aiohttp session closes connections the parent still uses (and warns of an unclosed
    session)."""
    if not _inherited:
        _never_finalized(_inherited)
    _inherited.append(obj)


def _never_finalized(obj: object) -> None:
    """One reference to ``obj`` that nothing gives back: not even the interpreter's
    teardown frees it, so neither it nor what it holds is ever finalized."""
    import ctypes  # only where something is parked: a forked child, mostly

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def detach_inherited_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Make a loop inherited from the parent harmless to the parent, and keep it.

    The child's copy of an epoll selector is the parent's epoll instance:
    closing the loop, or a transport on it, would unregister the parent's file
    descriptors. Its selector gets an empty epoll instance of the child's own,
    so whatever closes later in the child (here or at exit) touches only that.
    """
    selector: Any = getattr(loop, "_selector", None)
    epoll_selector: Any = getattr(selectors, "EpollSelector", None)
    if epoll_selector is not None and isinstance(selector, epoll_selector):
        shared = getattr(selector, "_selector", None)
        if isinstance(shared, select.epoll):
            selector._selector = select.epoll()
            shared.close()  # only the child's descriptor; the parent's stays open
    keep_inherited(loop)


def after_fork(backend: object) -> None:
    """Call ``backend.after_fork()`` if the backend offers it (it may raise ForkedProcessError)."""
    if rebuilds_after_fork(backend):
        cast(RebuildsAfterFork, backend).after_fork()


def _in_child() -> None:
    global _generation, child_lock
    _generation += 1
    # Another thread of the parent may have held it at the fork; it never will release it here.
    child_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
