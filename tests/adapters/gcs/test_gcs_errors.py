"""The one error mapping of taquba-memo-gcs covers every failure the SDK can raise.

Each ``google.api_core.exceptions`` class with an HTTP status is mapped by its
status; the other families (retry deadline, credentials, transport, raw media
responses) are mapped by kind. No SDK exception escapes unmapped.
"""

# The exception constructors of google.api_core and google.auth are untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import http.client
import inspect

import pytest
import requests
import urllib3.exceptions
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from taquba_memo import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    ThrottledError,
    TransientBackendError,
)
from taquba_memo_conformance.adapter_checks import check_every_exception_mapped
from taquba_memo_gcs._errors import (
    SDK_ERRORS,
    bucket_missing_error,
    is_not_found,
    is_precondition_failed,
    map_gcs_error,
    not_found_kind,
)

API_ERROR_CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(api_exceptions, inspect.isclass)
        if issubclass(cls, api_exceptions.GoogleAPICallError) and cls.code is not None
    ),
    key=lambda cls: cls.__name__,
)


def expected_for(status: int) -> type[BackendError]:
    if status in (401, 403):
        return AccessDeniedError
    if status in (429, 503):
        return ThrottledError
    if status >= 500 or status == 408:
        return TransientBackendError
    return BackendError


def mapped(exc: BaseException) -> BackendError:
    return map_gcs_error(exc, operation="get", target="runs/a/1")


def response_with(status: int, body: bytes = b"{}") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.request = requests.Request("GET", "http://127.0.0.1/download/x").prepare()
    return response


def test_the_api_exceptions_module_was_walked() -> None:
    assert len(API_ERROR_CLASSES) > 20
    assert api_exceptions.NotFound in API_ERROR_CLASSES
    assert api_exceptions.TooManyRequests in API_ERROR_CLASSES


def test_every_api_core_exception_is_mapped_by_its_status() -> None:
    classes = {cls.__name__: cls for cls in API_ERROR_CLASSES}
    status = {name: int(cls.code) for name, cls in classes.items() if cls.code is not None}
    assert set(status) == set(classes)
    expected = {name: expected_for(code) for name, code in status.items()}
    errors = check_every_exception_mapped(classes, expected, mapped, caught=SDK_ERRORS)
    for name, error in errors.items():
        assert f"HTTP {status[name]}" in str(error)  # IntEnum str() is its name on 3.10
        assert "runs/a/1" in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 412, 429, 500, 502, 503, 504])
def test_raw_media_responses_are_mapped_like_api_errors(status: int) -> None:
    # Uploads and downloads raise the SDK's InvalidResponse, not an api_core class.
    exc = InvalidResponse(response_with(status), "Request failed with status code", status)
    assert type(mapped(exc)) is expected_for(status)


def test_a_missing_bucket_is_its_own_error() -> None:
    missing = bucket_missing_error(api_exceptions.NotFound("gone"), operation="get", target="k")
    assert type(missing) is ContainerNotFoundError
    assert type(mapped(api_exceptions.NotFound("gone"))) is BackendError


def test_404_wording_tells_bucket_from_object() -> None:
    assert not_found_kind(api_exceptions.NotFound("The specified bucket does not exist.")) == (
        "bucket"
    )
    assert not_found_kind(api_exceptions.NotFound("No such object: b/runs/a/1")) == "object"
    assert not_found_kind(api_exceptions.NotFound("Not Found")) == "unclear"  # fake-gcs-server
    raw = InvalidResponse(response_with(404, b"No such object: b/k"), "failed", 404)
    assert is_not_found(raw)
    assert not_found_kind(raw) == "object"


def test_a_lost_create_race_is_recognised_in_both_forms() -> None:
    assert is_precondition_failed(api_exceptions.PreconditionFailed("exists"))
    assert is_precondition_failed(InvalidResponse(response_with(412), "failed", 412))
    assert not is_precondition_failed(api_exceptions.Conflict("other"))


def test_a_retry_deadline_reports_the_last_failure_as_transient() -> None:
    throttled = api_exceptions.RetryError("deadline", api_exceptions.TooManyRequests("slow"))
    assert type(mapped(throttled)) is ThrottledError
    failed = api_exceptions.RetryError("deadline", api_exceptions.InternalServerError("x"))
    assert type(mapped(failed)) is TransientBackendError
    without_cause = api_exceptions.RetryError("deadline", None)
    assert type(mapped(without_cause)) is TransientBackendError


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
        urllib3.exceptions.ProtocolError("reset"),
        urllib3.exceptions.ReadTimeoutError(None, "/x", "slow"),  # type: ignore[arg-type]
        http.client.IncompleteRead(b""),
        http.client.RemoteDisconnected("gone"),
        ConnectionResetError(104, "reset"),
        TimeoutError("slow"),
        auth_exceptions.TransportError("token endpoint unreachable"),
        auth_exceptions.RefreshError("token endpoint 503", retryable=True),
        DataCorruption(response_with(200), "checksum mismatch"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_failures_without_an_answer_are_transient(exc: BaseException) -> None:
    assert isinstance(exc, SDK_ERRORS)
    error = mapped(exc)
    assert isinstance(error, TransientBackendError)
    assert error.transient


@pytest.mark.parametrize(
    "exc",
    [
        auth_exceptions.RefreshError("invalid_grant"),
        auth_exceptions.DefaultCredentialsError("no credentials found"),
        auth_exceptions.OAuthError("refused"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_credential_failures_are_access_denied(exc: BaseException) -> None:
    assert type(mapped(exc)) is AccessDeniedError


def test_other_request_failures_are_not_transient() -> None:
    error = mapped(requests.exceptions.InvalidURL("bad endpoint"))
    assert type(error) is BackendError
    assert not error.transient


def test_messages_are_one_bounded_line() -> None:
    exc = api_exceptions.InternalServerError("first line\n" + "x" * 5000)
    text = str(mapped(exc))
    assert "\n" not in text
    assert len(text) < 400
