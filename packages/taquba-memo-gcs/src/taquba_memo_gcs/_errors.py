"""How google-cloud-storage failures become taquba-memo errors: the one mapping.

:func:`map_gcs_error` picks the error class (:func:`bucket_missing_error` for a
404 the caller settled as a missing bucket). :func:`not_found_kind` reads a
404 to tell a missing object from a missing bucket, and
:func:`is_precondition_failed` spots the 412 of a lost ``if_absent`` race
(which is a result, not an error).
"""

from __future__ import annotations

import http.client
from typing import Literal, cast

import requests
import urllib3.exceptions
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from taquba_memo.adapter_kit import error_for_status
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    TransientBackendError,
)

__all__ = [
    "SDK_ERRORS",
    "api_error_from_response",
    "as_api_error",
    "bucket_missing_error",
    "is_not_found",
    "is_precondition_failed",
    "map_gcs_error",
    "not_found_kind",
]

SDK_ERRORS: tuple[type[BaseException], ...] = (
    api_exceptions.GoogleAPIError,  # every HTTP status, RetryError, timeouts
    auth_exceptions.GoogleAuthError,  # credential refresh and transport failures
    InvalidResponse,  # raw media responses (uploads and downloads)
    DataCorruption,  # a download whose checksum did not match
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,  # ConnectionError, TimeoutError
)
"""Exception families the SDK raises for storage failures; anything else is a bug."""

# No answer arrived, or a broken one: the SDK's own retry policy retries these.
_NO_ANSWER: tuple[type[BaseException], ...] = (
    auth_exceptions.TransportError,  # the token endpoint did not answer
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.TimeoutError,
    urllib3.exceptions.PoolError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    DataCorruption,  # a download whose checksum did not match: read it again
)

_MAX_DETAIL = 300  # characters of the SDK's message kept in ours

# Real GCS words its 404s like this. The words are not part of the API, and
# fake-gcs-server says only "Not Found" for both, so an unclear 404 on an
# object is settled by asking whether the bucket exists.
_BUCKET_MISSING_WORDS = "bucket does not exist"
_OBJECT_MISSING_WORDS = "no such object"


def as_api_error(exc: BaseException) -> api_exceptions.GoogleAPICallError | None:
    """The HTTP error inside ``exc``, with raw media responses converted."""
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return exc
    if isinstance(exc, InvalidResponse) and exc.response is not None:
        return api_error_from_response(exc.response)
    return None


def api_error_from_response(response: requests.Response) -> api_exceptions.GoogleAPICallError:
    """The api_core exception for an HTTP error answer (404 -> NotFound ...)."""
    error = api_exceptions.from_http_response(response)  # type: ignore[no-untyped-call]
    return cast(api_exceptions.GoogleAPICallError, error)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(as_api_error(exc), api_exceptions.NotFound)


def is_precondition_failed(exc: BaseException) -> bool:
    """True for the 412 that an ``if_generation_match=0`` write gets when the object exists."""
    return isinstance(as_api_error(exc), api_exceptions.PreconditionFailed)


def not_found_kind(exc: BaseException) -> Literal["object", "bucket", "unclear"]:
    """Which resource a 404 says is missing, from the server's wording."""
    api_error = as_api_error(exc)
    text = f"{api_error.message if api_error is not None else exc}".lower()
    if _BUCKET_MISSING_WORDS in text:
        return "bucket"
    if _OBJECT_MISSING_WORDS in text:
        return "object"
    return "unclear"


def bucket_missing_error(exc: BaseException, *, operation: str, target: str) -> BackendError:
    """The error for a 404 the caller established as a missing bucket (not a missing object)."""
    return ContainerNotFoundError(f"GCS {operation} of {target!r} failed: {_describe(exc)}")


def map_gcs_error(exc: BaseException, *, operation: str, target: str) -> BackendError:
    """Return the taquba-memo error for an SDK failure; the caller raises it ``from exc``.

    * 401, 403, failed credential refresh -> AccessDeniedError
    * 429 (and 503) -> ThrottledError; other 5xx, 408 -> TransientBackendError
    * no answer (connection reset, timeout, transport error), a retry
      deadline that ran out, a corrupted download -> TransientBackendError
    * other credential problems (none found, refresh refused) -> AccessDeniedError
    * anything else (400, 404, 409, 412, a bad URL ...) -> BackendError; a 404
      the caller knows to mean the bucket is :func:`bucket_missing_error`

    Messages name the operation, the key and the HTTP status, never a
    credential (request headers are not part of SDK messages).
    """
    if isinstance(exc, api_exceptions.RetryError):
        # The retry deadline ran out; report the last attempt's failure, as transient.
        last = exc.cause
        if last is not None and last is not exc:
            error = map_gcs_error(last, operation=operation, target=target)
            if error.transient:
                return error
        return TransientBackendError(f"GCS {operation} of {target!r} failed: {_describe(exc)}")

    message = f"GCS {operation} of {target!r} failed: {_describe(exc)}"
    api_error = as_api_error(exc)
    if api_error is not None:
        return error_for_status(api_error.code, message)
    if isinstance(exc, _NO_ANSWER):
        return TransientBackendError(message)
    if isinstance(exc, auth_exceptions.GoogleAuthError):
        if getattr(exc, "retryable", False):
            return TransientBackendError(message)  # the token endpoint had a 5xx
        return AccessDeniedError(message)  # no usable credentials, refresh refused
    return BackendError(message)


def _describe(exc: BaseException) -> str:
    api_error = as_api_error(exc)
    if api_error is not None:
        text = f"HTTP {api_error.code} {api_error.message}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    first_line = text.strip().splitlines()[0] if text.strip() else text
    return first_line[:_MAX_DETAIL] + ("..." if len(first_line) > _MAX_DETAIL else "")
