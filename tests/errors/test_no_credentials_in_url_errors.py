"""A URL that carries a credential by mistake: no error, repr or CLI line repeats it.

Every scheme of the core and of every adapter is opened with a secret in its
user info, in each kind of query parameter that holds one, and in the user
info of a URL given as a parameter (``?endpoint=http://user:secret@host``,
plain or percent-encoded). The URL is refused or opened; either way the
secret appears in no message, no repr and no exception in the chain, and not
in the command line's output. A URL-valued parameter with user info is
refused by every adapter, whose message points to the access key settings.
"""

from __future__ import annotations

import traceback
import urllib.parse

import pytest
from taquba_memo import InvalidURLError, MemoError, cli, open_backend
from taquba_memo._exit_codes import ExitCode
from taquba_memo._redact import parameters_with_user_info, redact_url
from taquba_memo._urls import resolve_scheme

SECRET = "Sup3rS3cretV4lue"
SCHEMES = [
    "file",
    "memory",
    "s3",
    "gs",
    "az",
    "s3+obstore",
    "gs+obstore",
    "az+obstore",
    "gs+gcs",
    "az+azure",
    "s3+minio",
    "minio",
]
PLACES = {
    "user-info": "{scheme}://AKIDEXAMPLE:{secret}@bucket/base",
    "user-only": "{scheme}://{secret}@bucket/base",
    "secret-access-key": "{scheme}://bucket/base?secret_access_key={secret}",
    "session-token": "{scheme}://bucket/base?endpoint=http://127.0.0.1:9&session_token={secret}",
    "account-key": "{scheme}://bucket/base?account_key={secret}",
    "sas-signature": "{scheme}://bucket/base?sv=2024-01-01&sig={secret}",
    "password": "{scheme}://bucket/base?password={secret}",
    "percent-encoded": "{scheme}://AKIDEXAMPLE:{secret}%2Fx@bucket/base",
}
# A URL given as a parameter's value, with user info (what no SDK reads as credentials).
NESTED = {
    "endpoint-user-info": "{scheme}://bucket/base?endpoint=http://AKIDEXAMPLE:{secret}@127.0.0.1:9",
    "endpoint-user-only": "{scheme}://bucket/base?endpoint=http://{secret}@127.0.0.1:9",
    "endpoint-percent-encoded": "{scheme}://bucket/base?endpoint="
    + urllib.parse.quote("http://AKIDEXAMPLE:{secret}%2Fx@127.0.0.1:9", safe="{}"),
    "endpoint-encoded-twice": "{scheme}://bucket/base?endpoint="
    + urllib.parse.quote(urllib.parse.quote("http://u:{secret}@127.0.0.1:9", safe="{}"), safe="{}"),
    "endpoint-with-allow-http": "{scheme}://bucket/base?allow_http=true&anonymous=true"
    "&endpoint=http://AKIDEXAMPLE:{secret}@127.0.0.1:9",
    "proxy-url": "{scheme}://bucket/base?proxy_url=http://proxyuser:{secret}@127.0.0.1:9",
    "account-url": "{scheme}://bucket/base?account_url=https://me:{secret}@a.blob.core.windows.net",
    "aws-endpoint": "{scheme}://bucket/base?aws_endpoint=https://AKIDEXAMPLE:{secret}@s3.example",
}
PLACES |= NESTED
ADAPTER_SCHEMES = [scheme for scheme in SCHEMES if scheme not in ("file", "memory")]


def everything_said_about(error: BaseException) -> str:
    said = "".join(traceback.format_exception(error))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        said += str(current) + repr(current) + repr(current.args)
        current = current.__cause__ or current.__context__
    return said


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_error_or_repr_repeats_a_credential_from_the_url(scheme: str, place: str) -> None:
    url = PLACES[place].format(scheme=scheme, secret=SECRET)
    if scheme == "file":
        url = url.replace("bucket/base", "/tmp/taquba-memo-nowhere")
    try:
        backend = open_backend(url)
    except MemoError as exc:
        said = everything_said_about(exc)
        assert SECRET not in said
        assert "Sup3rS3cretV4lue%2Fx" not in said
        assert SECRET not in urllib.parse.unquote(urllib.parse.unquote(said))
    else:
        assert SECRET not in repr(backend)


def test_redact_url_hides_user_info_and_secret_parameters_only() -> None:
    assert redact_url(f"s3://AKID:{SECRET}@b/p?region=eu-west-1&secret_access_key={SECRET}") == (
        "s3://***:***@b/p?region=eu-west-1&secret_access_key=***"
    )
    assert redact_url("s3://bucket/base?region=eu-west-1") == "s3://bucket/base?region=eu-west-1"


@pytest.mark.parametrize("place", list(NESTED))
def test_redact_url_hides_the_user_info_of_a_url_given_as_a_parameter(place: str) -> None:
    url = NESTED[place].format(scheme="s3", secret=SECRET)
    shown = redact_url(url)
    assert SECRET not in shown
    assert SECRET not in urllib.parse.unquote(urllib.parse.unquote(shown))
    assert any(host in shown for host in ("127.0.0.1", "example", "windows")), "the host stays"


def test_redact_url_hides_a_secret_parameter_of_a_url_given_as_a_parameter() -> None:
    nested = urllib.parse.quote(f"https://proxy.example/?sig={SECRET}", safe="")
    assert SECRET not in redact_url(f"s3://bucket/base?proxy_url={nested}")


def test_a_plain_endpoint_is_not_taken_for_credentials() -> None:
    url = "s3://bucket/base?endpoint=http://127.0.0.1:9000/path&region=eu-west-1"
    assert parameters_with_user_info(url) == []
    assert redact_url(url) == url


@pytest.mark.parametrize("place", list(NESTED))
@pytest.mark.parametrize("scheme", ADAPTER_SCHEMES)
def test_every_adapter_refuses_a_url_parameter_with_user_info(scheme: str, place: str) -> None:
    """The adapter's own opener refuses it before any I/O, whichever parameter carries it."""
    url = NESTED[place].format(scheme=scheme, secret=SECRET)
    opener = resolve_scheme(scheme).entry_point.load()
    with pytest.raises(InvalidURLError) as refused:
        opener(url)
    said = everything_said_about(refused.value)
    assert SECRET not in said
    assert SECRET not in urllib.parse.unquote(said)
    assert "carries credentials" in str(refused.value)
    assert any(name in str(refused.value) for name in parameters_with_user_info(url))


@pytest.mark.parametrize("place", ["user-info", *NESTED])
@pytest.mark.parametrize("scheme", ["file", "s3", "gs+gcs", "s3+minio", "az+azure"])
def test_the_command_line_never_prints_it(
    scheme: str, place: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = PLACES[place].format(scheme=scheme, secret=SECRET)
    if scheme == "file":
        url = url.replace("bucket/base", "/tmp/taquba-memo-nowhere")
    code = cli.main(["--url", url, "runs"])
    out, err = capsys.readouterr()
    assert code in (ExitCode.BAD_URL, ExitCode.OK), (code, err)
    assert SECRET not in out + err
    assert cli.main(["--json", "--url", url, "runs"]) == code
    out, err = capsys.readouterr()
    assert SECRET not in out + err
