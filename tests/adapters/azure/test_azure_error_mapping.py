"""map_azure_error: every exception the Azure SDK can raise becomes the right taquba-memo error.

These tests call the mapping function directly (no server): the statuses and
conditions they cover (503 ServerBusy, 500 OperationTimedOut, a truncated
body) cannot be provoked on Azurite. The mapping of what Azurite can produce
(missing container, wrong key, read-only SAS, refused and hung connections) is
tested end to end in test_azure_adapter.py.
"""

from __future__ import annotations

import asyncio

import aiohttp
import azure.core.exceptions as azure_exceptions
import pytest
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob._shared.authentication import AzureSigningError
from azure.storage.blob._shared.response_handlers import PartialBatchErrorException
from taquba_memo import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    ThrottledError,
    TransientBackendError,
)
from taquba_memo_azure._errors import SDK_ERRORS, map_azure_error, redact
from taquba_memo_conformance.adapter_checks import (
    check_every_exception_mapped,
    exception_classes,
)

# Every exception class azure.core.exceptions defines, and what it maps to when
# it carries no status and no error code.
EXPECTED_BY_CLASS: dict[str, type[BackendError]] = {
    "AzureError": BackendError,
    "ServiceRequestError": TransientBackendError,
    "ServiceRequestTimeoutError": TransientBackendError,
    "ServiceResponseError": TransientBackendError,
    "ServiceResponseTimeoutError": TransientBackendError,
    "HttpResponseError": BackendError,
    "DecodeError": BackendError,
    "IncompleteReadError": TransientBackendError,
    "ResourceExistsError": BackendError,
    "ResourceNotFoundError": BackendError,
    "ClientAuthenticationError": AccessDeniedError,
    "ResourceModifiedError": TransientBackendError,
    "ResourceNotModifiedError": BackendError,
    "TooManyRedirectsError": BackendError,
    "ODataV4Error": BackendError,
    "StreamConsumedError": BackendError,
    "StreamClosedError": TransientBackendError,
    "ResponseNotReadError": BackendError,
    "SerializationError": BackendError,
    "DeserializationError": BackendError,
}


def bare(cls: type[BaseException], message: str = "it failed") -> BaseException:
    """An instance without a response (some constructors insist on one)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.message = message  # type: ignore[attr-defined]
    return exc


def http_error(status: int, code: str | None = None) -> HttpResponseError:
    exc = HttpResponseError(message=f"status {status}")
    exc.status_code = status
    exc.error_code = code  # type: ignore[attr-defined]
    return exc


def test_every_exception_class_of_azure_core_is_named_caught_and_mapped() -> None:
    # A class added by a newer azure-core fails here until someone decides its mapping.
    mapped = check_every_exception_mapped(
        exception_classes(azure_exceptions),
        EXPECTED_BY_CLASS,
        lambda exc: map_azure_error(exc, operation="get", target="k"),
        caught=SDK_ERRORS,
        make=bare,
    )
    for name, error in mapped.items():
        assert isinstance(error, BackendError)
        assert error.transient == issubclass(EXPECTED_BY_CLASS[name], TransientBackendError)
        assert "'k'" in str(error)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "InvalidInput", BackendError),
        (401, None, AccessDeniedError),
        (403, "AuthenticationFailed", AccessDeniedError),
        (403, "AuthorizationFailure", AccessDeniedError),
        (403, "AuthorizationPermissionMismatch", AccessDeniedError),
        (404, "ContainerNotFound", ContainerNotFoundError),
        (404, "BlobNotFound", BackendError),  # callers turn this into None/success first
        (408, None, TransientBackendError),
        (409, "LeaseIdMissing", BackendError),
        (412, "LeaseIdMissing", BackendError),
        (429, None, ThrottledError),
        (500, "InternalError", TransientBackendError),
        (500, "OperationTimedOut", ThrottledError),
        (502, None, TransientBackendError),
        (503, "ServerBusy", ThrottledError),
        (503, None, ThrottledError),
        (504, None, TransientBackendError),
    ],
)
def test_statuses_and_service_error_codes(
    status: int, code: str | None, expected: type[BackendError]
) -> None:
    error = map_azure_error(http_error(status, code), operation="put", target="k")
    assert type(error) is expected
    if code:
        assert code in str(error)


def test_a_missing_container_wins_over_the_exception_class() -> None:
    exc = azure_exceptions.ResourceNotFoundError(message="The specified container does not exist.")
    exc.error_code = "ContainerNotFound"  # type: ignore[attr-defined]
    assert type(map_azure_error(exc, operation="get", target="k")) is ContainerNotFoundError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (bare(AzureSigningError), AccessDeniedError),
        (bare(PartialBatchErrorException), BackendError),
        (aiohttp.ClientConnectionError("reset"), TransientBackendError),
        (aiohttp.ServerDisconnectedError(), TransientBackendError),
        (asyncio.TimeoutError(), TransientBackendError),
        (ConnectionResetError("reset"), TransientBackendError),
        (OSError("disk"), BackendError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_storage_sdk_and_transport_exceptions(
    exc: BaseException, expected: type[BackendError]
) -> None:
    assert isinstance(exc, SDK_ERRORS)
    assert type(map_azure_error(exc, operation="list", target="p")) is expected


def test_azure_identity_credential_errors_are_access_denied() -> None:
    identity = pytest.importorskip(
        "azure.identity", reason="azure-identity (the [identity] extra) is not installed"
    )
    exc = identity.CredentialUnavailableError(message="no credential in this environment")
    assert type(map_azure_error(exc, operation="get", target="k")) is AccessDeniedError


SECRET_SIG = "sig=abc%2Bdef%3D"
SECRET_KEY = "AccountKey=Eby8vdM02xNOcqFl/K1SZFPTOtr=="


def test_messages_never_carry_credentials() -> None:
    exc = AzureError(
        f"GET https://a.blob.core.windows.net/c/k?sv=2024&{SECRET_SIG}&se=x failed; "
        f"{SECRET_KEY};Authorization: SharedKey acct:c2lnbmF0dXJl Bearer eyJ0eXAi.x.y"
    )
    text = str(map_azure_error(exc, operation="get", target="k"))
    for secret in ("abc%2Bdef", "Eby8vdM02", "c2lnbmF0dXJl", "eyJ0eXAi"):
        assert secret not in text
    assert "sig=REDACTED" in text


def test_only_the_first_line_of_a_service_message_is_kept() -> None:
    exc = http_error(403, "AuthenticationFailed")
    exc.message = "Server failed to authenticate the request.\nRequestId:1\nTime:2\nContent: <xml>"
    text = str(map_azure_error(exc, operation="get", target="k"))
    assert "Server failed to authenticate the request." in text
    assert "Content:" not in text
    assert "AuthenticationFailed" in text


def test_redact_leaves_ordinary_text_alone() -> None:
    assert redact("The specified blob does not exist.") == "The specified blob does not exist."
