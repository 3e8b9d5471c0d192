"""How MinIO SDK failures become taquba-memo errors: the one mapping.

:func:`map_minio_error` picks the error class for everything the adapter can
meet: the SDK's own exceptions (:class:`~minio.error.S3Error`,
:class:`~minio.error.ServerError`, :class:`~minio.error.InvalidResponseError`),
urllib3's transport errors, a broken XML answer, and the per-key
:class:`~minio.deleteobjects.DeleteError` of a batch delete (wrapped in
:class:`KeyNotDeleted` so it can be chained as ``__cause__``).

Three answers are results rather than errors, and the backend asks about them
first: :func:`is_missing_object` (``get`` returns None, ``delete`` succeeds),
:func:`is_precondition_failed` (``put(if_absent=True)`` returns False) and
:func:`is_conditional_conflict` (a concurrent conditional write; retried).
"""

from __future__ import annotations

import http.client
from typing import Final
from xml.etree.ElementTree import ParseError

import urllib3.exceptions
from minio.deleteobjects import DeleteError
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from taquba_memo.adapter_kit import error_for_status
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    ThrottledError,
    TransientBackendError,
)

__all__ = [
    "SDK_ERRORS",
    "KeyNotDeleted",
    "is_conditional_conflict",
    "is_missing_object",
    "is_precondition_failed",
    "map_minio_error",
    "s3_code",
    "status_of",
]


class KeyNotDeleted(Exception):
    """One key of a DeleteObjects request that the server did not delete.

    The SDK reports these as plain :class:`~minio.deleteobjects.DeleteError`
    records, not exceptions; this carries one as the ``__cause__`` of the
    :class:`~taquba_memo.BackendError` it maps to.
    """

    def __init__(self, error: DeleteError) -> None:
        self.code = error.code
        self.message = error.message
        self.name = error.name
        super().__init__(f"code: {error.code}, message: {error.message}, key: {error.name}")


SDK_ERRORS: Final[tuple[type[BaseException], ...]] = (
    MinioException,  # S3Error, ServerError, InvalidResponseError
    urllib3.exceptions.HTTPError,  # MaxRetryError, timeouts, protocol errors ...
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected outside urllib3
    OSError,  # ConnectionError, TimeoutError from a socket
    ParseError,  # an answer whose XML body is cut short or not XML
    KeyNotDeleted,
)
"""Exception families the adapter's SDK calls raise for storage failures; anything
else (a TypeError, a ValueError from the SDK's own checks) is a bug and propagates."""

# S3 error codes, by what they mean for a caller. Codes decide before statuses:
# a per-key delete error has a code and no status, and some codes travel with
# statuses that would say otherwise (RequestTimeout is a 400).
_BUCKET_MISSING: Final = frozenset({"NoSuchBucket"})
_ACCESS_DENIED: Final = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_THROTTLED: Final = frozenset(
    {"SlowDown", "TooManyRequests", "RequestLimitExceeded", "Throttling", "ServiceUnavailable"}
)
_TRANSIENT: Final = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "OperationAborted",  # a conflicting operation on the bucket is in progress
        "ConditionalRequestConflict",  # a concurrent conditional write, once retries ran out
        "XMinioServerNotInitialized",
        "XMinioStorageFull",  # space may be freed; a retry may succeed
    }
)
# No answer arrived, or a broken one: retrying the same call may succeed.
_NO_ANSWER: Final[tuple[type[BaseException], ...]] = (
    urllib3.exceptions.HTTPError,  # MaxRetryError, NewConnectionError, Read/ConnectTimeoutError,
    # ProtocolError, IncompleteRead, SSLError, ProxyError, DecodeError, PoolError ...
    http.client.HTTPException,
    OSError,
    ParseError,
)

_MAX_DETAIL: Final = 300  # characters of the SDK's message kept in ours


def s3_code(exc: BaseException) -> str | None:
    """The S3 error code an exception carries (``NoSuchKey``, ``SlowDown`` ...), if any."""
    if isinstance(exc, (S3Error, KeyNotDeleted)):
        return exc.code
    return None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of the answer behind an SDK exception; None when none arrived."""
    if isinstance(exc, S3Error):
        response = getattr(exc, "response", None)
        status = getattr(response, "status", None)
        return status if isinstance(status, int) else None
    if isinstance(exc, ServerError):
        return exc.status_code
    if isinstance(exc, InvalidResponseError):
        # The SDK keeps the status only in a private attribute (used by __reduce__).
        status = getattr(exc, "_code", None)
        return status if isinstance(status, int) else None
    return None


def is_missing_object(exc: BaseException) -> bool:
    """True when the object (not the bucket) does not exist."""
    return s3_code(exc) == "NoSuchKey"


def is_precondition_failed(exc: BaseException) -> bool:
    """True for the 412 an ``If-None-Match: *`` write gets when the object exists."""
    return s3_code(exc) == "PreconditionFailed" or (s3_code(exc) is None and status_of(exc) == 412)


def is_conditional_conflict(exc: BaseException) -> bool:
    """True for S3's 409 when another conditional write to the key is in flight."""
    return s3_code(exc) == "ConditionalRequestConflict"


def map_minio_error(exc: BaseException, *, operation: str, target: str) -> BackendError:
    """Return the taquba-memo error for an SDK failure; the caller raises it ``from exc``.

    * ``NoSuchBucket`` -> ContainerNotFoundError
    * ``AccessDenied``, ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``,
      expired or invalid tokens, any other 401 or 403 -> AccessDeniedError
    * ``SlowDown`` and other throttling codes, HTTP 429 and 503 -> ThrottledError
    * ``InternalError``, ``RequestTimeout``, ``OperationAborted``, a
      ``ConditionalRequestConflict`` that outlived its retries, any other 5xx,
      408 -> TransientBackendError
    * no answer or a broken one (connection refused or reset, timeouts,
      urllib3's MaxRetryError, a truncated body, unparseable XML) -> TransientBackendError
    * anything else (``NoSuchKey`` where an object must exist, 400, 409, 412 ...) -> BackendError

    Messages name the operation, the key, the S3 code and the HTTP status,
    never a credential: neither the SDK's messages nor urllib3's carry
    request headers, and presigned URLs are never used.
    """
    message = f"S3 {operation} of {target!r} failed: {_describe(exc)}"
    code = s3_code(exc)
    status = status_of(exc)
    if code in _BUCKET_MISSING:
        return ContainerNotFoundError(message)
    if code in _ACCESS_DENIED:
        return AccessDeniedError(message)
    if code in _THROTTLED:
        return ThrottledError(message)
    if code in _TRANSIENT:
        return TransientBackendError(message)
    if status is not None:
        # A status alone (no code, or an unknown one): the core's one table decides.
        return error_for_status(status, message)
    if isinstance(exc, _NO_ANSWER):
        return TransientBackendError(message)
    return BackendError(message)


def _describe(exc: BaseException) -> str:
    code, status = s3_code(exc), status_of(exc)
    if isinstance(exc, S3Error):
        text = f"{code} (HTTP {status}): {exc.message}"
    elif isinstance(exc, KeyNotDeleted):
        text = f"{code}: {exc.message}"
    elif status is not None:
        text = f"HTTP {status} ({type(exc).__name__})"
    else:
        try:
            detail = str(exc)
        except Exception:  # a half-built exception must not hide the failure it reports
            detail = ""
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    first_line = text.strip().splitlines()[0] if text.strip() else text
    return first_line[:_MAX_DETAIL] + ("..." if len(first_line) > _MAX_DETAIL else "")
