"""How the local file backend's failures become taquba-memo errors, in one place.

A refusal by the file system (no permission, a read-only mount) is
:class:`~taquba_memo.AccessDeniedError`, which retrying will not cure; a
momentary shortage (an interrupted call, a busy file, no descriptors left)
is :class:`~taquba_memo.TransientBackendError`; anything else (a full
disk, an I/O error, a name too long) is a plain
:class:`~taquba_memo.BackendError`. A foreign object below the root (see
:mod:`taquba_memo._backends._no_follow`) is
:class:`~taquba_memo.ForeignObjectError`.
"""

from __future__ import annotations

import errno
from pathlib import Path

from taquba_memo._backends._no_follow import Foreign
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ForeignObjectError,
    TransientBackendError,
)

ACCESS_DENIED_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.EMFILE, errno.ENFILE})


def map_os_error(exc: OSError, key: str) -> BackendError:
    """The taquba-memo error for ``exc``, raised while working on ``key``."""
    message = f"local file operation on {key!r} failed: {exc.strerror or exc}"
    if isinstance(exc, PermissionError) or exc.errno in ACCESS_DENIED_ERRNOS:
        return AccessDeniedError(message)
    if exc.errno in TRANSIENT_ERRNOS:
        return TransientBackendError(message)
    return BackendError(message)


def foreign_object_error(foreign: Foreign, root: Path, key: str, doing: str) -> ForeignObjectError:
    """The error for meeting ``foreign`` below ``root`` while trying to ``doing`` ``key``."""
    return ForeignObjectError(
        f"cannot {doing} {key!r}: {foreign.relative!r} below {str(root)!r} is "
        f"{foreign.kind}, which this backend never follows, reads or deletes through "
        "(something other than taquba-memo put it there)"
    )
