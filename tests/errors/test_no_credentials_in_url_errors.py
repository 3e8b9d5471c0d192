"""A URL that carries a credential by mistake: no error, repr or CLI line repeats it.

Every scheme of the core and of every adapter is opened with a secret in its
user info and in each kind of query parameter that holds one. The URL is
refused or opened; either way the secret appears in no message, no repr and
no exception in the chain, and not in the command line's output.
"""

from __future__ import annotations

import traceback

import pytest
from taquba_memo import MemoError, cli, open_backend
from taquba_memo._redact import redact_url

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
    else:
        assert SECRET not in repr(backend)


def test_redact_url_hides_user_info_and_secret_parameters_only() -> None:
    assert redact_url(f"s3://AKID:{SECRET}@b/p?region=eu-west-1&secret_access_key={SECRET}") == (
        "s3://***:***@b/p?region=eu-west-1&secret_access_key=***"
    )
    assert redact_url("s3://bucket/base?region=eu-west-1") == "s3://bucket/base?region=eu-west-1"


@pytest.mark.parametrize("scheme", ["file", "s3", "s3+minio", "az+azure"])
def test_the_command_line_never_prints_it(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = PLACES["user-info"].format(scheme=scheme, secret=SECRET)
    code = cli.main(["--url", url, "runs"])
    out, err = capsys.readouterr()
    assert code in (cli.EXIT_BAD_URL, cli.EXIT_OK), (code, err)
    assert SECRET not in out + err
    assert cli.main(["--json", "--url", url, "runs"]) == code
    out, err = capsys.readouterr()
    assert SECRET not in out + err
