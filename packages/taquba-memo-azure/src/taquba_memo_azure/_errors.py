"""The one place where azure-storage-blob's exceptions become taquba-memo errors.

Every call into the SDK catches :data:`SDK_ERRORS` and raises
``map_azure_error(exc, ...) from exc``. Messages are built from the status,
the service's error code and the first line of the service's message only,
then scrubbed of anything that looks like a credential, so neither an
account key nor a SAS signature can reach a log line through ``str(error)``.
"""

from __future__ import annotations

import asyncio
import re
from enum import Enum

import aiohttp
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DeserializationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceModifiedError,
    SerializationError,
    ServiceRequestError,
    ServiceResponseError,
    StreamClosedError,
)
from taquba_memo.adapter_kit import error_for_status
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    ThrottledError,
    TransientBackendError,
)

__all__ = ["SDK_ERRORS", "error_code", "map_azure_error", "redact"]

SDK_ERRORS: tuple[type[BaseException], ...] = (
    AzureError,
    SerializationError,
    DeserializationError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)
"""Everything the SDK (or its aiohttp transport) can raise on a storage call."""

BLOB_NOT_FOUND = "BlobNotFound"
BLOB_ALREADY_EXISTS = "BlobAlreadyExists"
CONTAINER_NOT_FOUND = "ContainerNotFound"

# Error codes that mean "slow down", whatever the status (Azure sends 503 ServerBusy;
# the account-limit variants arrive as 503 with a more specific message).
_THROTTLING_CODES = frozenset({"ServerBusy", "TooManyRequests", "OperationTimedOut"})
_AUTH_CODES = frozenset(
    {
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
        "AuthorizationSourceIPMismatch",
        "AuthorizationProtocolMismatch",
        "InsufficientAccountPermissions",
        "InvalidAuthenticationInfo",
        "NoAuthenticationInformation",
    }
)

_SECRETS = [
    # SAS query parameter and connection-string fields.
    (re.compile(r"(?i)(sig=)[^&\s'\";]+"), r"\1REDACTED"),
    (re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"), r"\1REDACTED"),
    (re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"), r"\1REDACTED"),
    # An Authorization header value (SharedKey account:signature, Bearer token).
    (re.compile(r"(?i)(SharedKey(?:Lite)?\s+[^:\s]+:)\S+"), r"\1REDACTED"),
    (re.compile(r"(?i)(Bearer\s+)\S+"), r"\1REDACTED"),
]


def redact(text: str) -> str:
    """Replace credential material in ``text`` (SAS signatures, keys, tokens)."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def error_code(exc: BaseException) -> str | None:
    """The service's ``x-ms-error-code`` for ``exc`` (``BlobNotFound``, ...), if any."""
    code = getattr(exc, "error_code", None)
    if isinstance(code, Enum):
        code = code.value
    if isinstance(code, str) and code:
        return code
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        header = headers.get("x-ms-error-code")
        if isinstance(header, str) and header:
            return header
    return None


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None) if isinstance(exc, HttpResponseError) else None
    code = error_code(exc)
    raw = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    first_line = str(raw).strip().splitlines()[0] if str(raw).strip() else type(exc).__name__
    details = ", ".join(
        part
        for part in (
            type(exc).__name__,
            f"status {status}" if status else "",
            f"code {code}" if code else "",
        )
        if part
    )
    return redact(f"{first_line} ({details})")


def map_azure_error(exc: BaseException, *, operation: str, target: str) -> BackendError:
    """Return the taquba-memo error for an SDK exception; the caller raises it ``from exc``.

    * ``ContainerNotFound`` -> :class:`ContainerNotFoundError` (a missing blob is
      handled by the callers and never gets here).
    * Authentication and authorization failures (``ClientAuthenticationError``,
      401, 403 ``AuthorizationFailure`` and friends, credential errors from
      azure-identity) -> :class:`AccessDeniedError`.
    * 429 and 503 ``ServerBusy`` -> :class:`ThrottledError`.
    * 5xx, 408, no answer at all (``ServiceRequestError``,
      ``ServiceResponseError``, timeouts, reset connections), a truncated body,
      and a blob that changed while being read (412 on a ranged read) ->
      :class:`TransientBackendError`.
    * Anything else -> :class:`BackendError`.
    """
    message = f"Azure Blob {operation} of {target!r} failed: {_describe(exc)}"
    code = error_code(exc)
    if code == CONTAINER_NOT_FOUND:
        return ContainerNotFoundError(message)
    if isinstance(exc, ClientAuthenticationError) or code in _AUTH_CODES:
        return AccessDeniedError(message)
    if code in _THROTTLING_CODES:
        return ThrottledError(message)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientBackendError(message)
    if isinstance(exc, (IncompleteReadError, ResourceModifiedError, StreamClosedError)):
        return TransientBackendError(message)
    if isinstance(exc, HttpResponseError):
        status = getattr(exc, "status_code", None)
        # A decoding failure on a 2xx answer has no meaningful status: a plain failure.
        if status is None or 200 <= status < 400:
            return BackendError(message)
        return error_for_status(status, message)
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, TimeoutError)):
        return TransientBackendError(message)
    return BackendError(message)
