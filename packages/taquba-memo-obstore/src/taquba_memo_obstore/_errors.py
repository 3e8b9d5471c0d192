"""The one place where an obstore exception becomes a taquba-memo error.

obstore raises the built-in :class:`FileNotFoundError` for a missing object
(and, on GCS, Azure and local files, for deleting one), the classes of
:mod:`obstore.exceptions` for the rest, the built-in :class:`ValueError` for
a path it cannot parse, and :class:`OSError` subclasses for some local-file
failures. HTTP statuses are not attributes: they appear in the message
("Server returned non-2xx status code: 503 ..."), so they are read from it.
"""

from __future__ import annotations

import errno
import re

import obstore.exceptions as obstore_errors
from taquba_memo.adapter_kit import error_for_status
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    InvalidKeyError,
    NotSupportedError,
    TransientBackendError,
)

__all__ = ["is_missing_object", "map_obstore_error", "redact"]

_STATUS = re.compile(r"status code: (\d{3})|status: (\d{3})")
# How S3 (and GCS's XML API) and Azure report that the bucket or container
# itself is absent, as opposed to a missing key: the error code, or, inside
# an Azure batch answer, the message.
_CONTAINER_MISSING = re.compile(
    r"NoSuchBucket|ContainerNotFound|The specified (?:bucket|container) does not exist"
)
# No HTTP answer arrived: refused or reset connection, timeout, DNS failure.
_NO_ANSWER = re.compile(
    r"HTTP error|error sending request|timed out|connection (?:reset|closed|refused)",
    re.IGNORECASE,
)
_OS_ERROR = re.compile(r"os error (\d+)")
_TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.EMFILE, errno.ENFILE})
_ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})

# Things an error message must never carry: URL query strings (SAS tokens,
# presigned signatures) and the access key id S3 echoes in signature errors.
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]*)\?[^\s\"'<>]*", re.IGNORECASE)
_ECHOED_SECRETS = re.compile(
    r"<(AWSAccessKeyId|StringToSign|StringToSignBytes|CanonicalRequest|SignatureProvided)>"
    r".*?</\1>",
    re.DOTALL,
)
_MAX_DETAIL_CHARS = 500


def redact(text: str) -> str:
    """Cut obstore's debug dump, query strings and echoed signature material from ``text``."""
    summary = text.split("\n\nDebug source:", 1)[0]
    summary = _URL_QUERY.sub(r"\1?<redacted>", summary)
    summary = _ECHOED_SECRETS.sub(r"<\1>redacted</\1>", summary)
    summary = " ".join(summary.split())
    if len(summary) > _MAX_DETAIL_CHARS:
        summary = summary[:_MAX_DETAIL_CHARS] + "..."
    return summary


def _status(text: str) -> int | None:
    match = _STATUS.search(text)
    return int(match.group(1) or match.group(2)) if match else None


def is_missing_object(exc: BaseException) -> bool:
    """Whether ``exc`` says the *object* is missing (not its bucket or container).

    ``get`` then returns None and a delete succeeds; every other failure goes
    to :func:`map_obstore_error`.
    """
    return isinstance(exc, (FileNotFoundError, obstore_errors.NotFoundError)) and not (
        _CONTAINER_MISSING.search(str(exc))
    )


def map_obstore_error(
    exc: BaseException, *, operation: str, target: str
) -> BackendError | NotSupportedError | InvalidKeyError:
    """Translate ``exc``, raised by obstore during ``operation`` on ``target``.

    A missing bucket or container is :class:`ContainerNotFoundError`,
    recognised by the store's error code, or, for a ``put``, by any "not
    found" (a write finds no object only when the bucket is missing). A
    missing object during ``get`` or ``delete`` is the caller's to settle
    first (:func:`is_missing_object`). The caller raises the result ``from exc``.
    """
    text = str(exc)
    message = f"obstore {operation} of {target!r} failed: {redact(text)}"
    container_missing = bool(_CONTAINER_MISSING.search(text))

    if isinstance(exc, (FileNotFoundError, obstore_errors.NotFoundError)):
        if container_missing or operation == "put":
            return ContainerNotFoundError(message)
        return BackendError(message)  # e.g. a directory removed while a listing walked it
    if isinstance(exc, (obstore_errors.PermissionDeniedError, obstore_errors.UnauthenticatedError)):
        return AccessDeniedError(message)
    if isinstance(exc, obstore_errors.NotSupportedError):
        return NotSupportedError(message)
    if isinstance(exc, (obstore_errors.InvalidPathError, ValueError)):
        return InvalidKeyError(message)
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return TransientBackendError(message)
    if isinstance(exc, PermissionError):
        return AccessDeniedError(message)
    if isinstance(exc, OSError) and exc.errno is not None:
        return _for_errno(exc.errno, message)
    # AlreadyExists outside a create, Precondition, NotModified, Join,
    # UnknownConfigurationKey, Generic and any future obstore class: read
    # the HTTP status (or the OS error) from the message.
    status = _status(text)
    if status == 501:
        return NotSupportedError(message)  # the endpoint does not implement the request
    if status is not None or container_missing:
        return error_for_status(status, message, container_missing=container_missing)
    if _NO_ANSWER.search(text):
        return TransientBackendError(message)
    os_error = _OS_ERROR.search(text)
    if os_error:
        return _for_errno(int(os_error.group(1)), message)
    return BackendError(message)


def _for_errno(code: int, message: str) -> BackendError:
    if code in _ACCESS_ERRNOS:
        return AccessDeniedError(message)
    if code in _TRANSIENT_ERRNOS:
        return TransientBackendError(message)
    return BackendError(message)
