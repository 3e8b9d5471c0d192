"""Every OSError the local file backend can meet becomes a typed taquba-memo error.

The file system refusing (no permission, a read-only mount) is
AccessDeniedError; a momentary shortage a retry can cure is
TransientBackendError; everything else is a plain BackendError. No OSError
ever reaches the caller as itself.
"""

from __future__ import annotations

import errno
import os

import pytest
from taquba_memo import AccessDeniedError, BackendError, TransientBackendError
from taquba_memo._backends._local_errors import map_os_error

# What each errno a local open, read, write, fsync, link, rename, unlink,
# mkdir, rmdir, scandir or stat can fail with means to the caller.
EXPECTED = {
    errno.EACCES: AccessDeniedError,
    errno.EPERM: AccessDeniedError,
    errno.EROFS: AccessDeniedError,
    errno.EAGAIN: TransientBackendError,
    errno.EINTR: TransientBackendError,
    errno.EBUSY: TransientBackendError,
    errno.EMFILE: TransientBackendError,
    errno.ENFILE: TransientBackendError,
    errno.ENOSPC: BackendError,
    errno.EDQUOT: BackendError,
    errno.EIO: BackendError,
    errno.ENAMETOOLONG: BackendError,
    errno.ENOTDIR: BackendError,
    errno.EISDIR: BackendError,
    errno.ENOENT: BackendError,
    errno.EEXIST: BackendError,
    errno.ENOTEMPTY: BackendError,
    errno.ELOOP: BackendError,
    errno.EMLINK: BackendError,
    errno.EXDEV: BackendError,
    errno.EFBIG: BackendError,
    errno.ENOMEM: BackendError,
    errno.ETXTBSY: BackendError,
    errno.EINVAL: BackendError,
    errno.ESTALE: BackendError,
}


@pytest.mark.parametrize("code", sorted(errno.errorcode), ids=errno.errorcode.get)
def test_every_errno_maps_to_its_error_and_any_other_is_a_plain_backend_error(code: int) -> None:
    """Only the refusals are AccessDeniedError and only the shortages are
    transient: a full disk or an I/O error is never retried as if it would pass."""
    error = map_os_error(OSError(code, os.strerror(code)), "run/0/k")
    assert type(error) is EXPECTED.get(code, BackendError)
    assert "'run/0/k'" in str(error)
    assert os.strerror(code) in str(error)
