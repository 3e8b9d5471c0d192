"""No credential in any log line, error message or repr, while operations fail, on every adapter.

Each adapter gets a credential planted where it really is used (a secret key
and a session token that sign S3 requests, a bearer token, an account key, a
SAS signature, a service-account private key) and then fails in every way
the fault proxy and the emulator can make it fail: server errors, refusals,
resets, lost answers, a missing bucket or container, and a run clear whose
deletes fail (which the core logs). Everything is captured at DEBUG, from
every logger (the SDKs' HTTP logging included), and searched for the
credential; so are ``str`` and ``repr`` of every error raised, with their
whole ``__cause__`` / ``__context__`` chain, and of the backend, and every
attribute and event of the OpenTelemetry spans and metric points recorded.

The adapters' own tests already check errors and ``repr`` for one failure
each; the log lines are what is new here. A password in the user info of a
URL given as a parameter (``?endpoint=http://user:password@host`` on a real
server's address) is searched for the same way, at DEBUG, in what opening the
URL and running the command line on it log and print.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from google.oauth2.credentials import Credentials as TokenCredentials
from obstore.store import AzureStore, GCSStore, S3Store
from taquba_memo import BackendError, MemoBackend, MemoError, MemoStore, cli, open_backend
from taquba_memo_azure import AzureBlobBackend
from taquba_memo_conformance.proxies import FaultProxy, GcsXmlProxy, classify_request
from taquba_memo_conformance.servers import AzureServer, GCSServer, S3Server
from taquba_memo_gcs import DEFAULT_GCS_RETRY, GCSBackend
from taquba_memo_minio import default_retry
from taquba_memo_obstore import ObstoreBackend

from .. import builders, server_needs
from ..conftest import ReliabilityFigures
from ..otel_support import Telemetry, captured_telemetry

assert captured_telemetry  # the fixture, found by pytest under the name "otel"

SECTION = "secrets"
SECRET_KEY = "s3-secret-key-never-logged-7d1e9a"
SESSION_TOKEN = "session-token-never-logged-2b8c4f"
BEARER_TOKEN = "ya29.bearer-token-never-logged-9a3e"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----never-logged-5c7d-----END PRIVATE KEY-----"
FAULTS = ("500", "403", "reset", "lost-reset")
DELETES = ("delete", "batch")


@dataclass
class Planted:
    """A backend through a fault proxy, one on a missing bucket, and the credentials in play."""

    backend: MemoBackend
    proxy: FaultProxy
    missing: MemoBackend
    secrets: list[str]
    extra: MemoBackend | None = None  # a second credential through the same proxy


OBSTORE_CLIENT: Any = {"allow_http": True, "timeout": "5s", "connect_timeout": "5s"}
OBSTORE_RETRY: Any = {"max_retries": 1, "retry_timeout": timedelta(seconds=5)}


async def minio(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Planted:
    server = server_needs.S3_CHECKING_NO_KEYS.server(request)
    proxy = stack.enter_context(FaultProxy(server.endpoint_url))
    options: dict[str, Any] = {
        "secret_key": SECRET_KEY,
        "session_token": SESSION_TOKEN,
        "retry": default_retry(total=1).new(backoff_factor=0.01),
    }
    backend = await stack.enter_async_context(
        builders.minio_backend(server, server.new_bucket(), endpoint=proxy.url, **options)
    )
    missing = await stack.enter_async_context(
        builders.minio_backend(server, "no-such-bucket-x", **options)
    )
    return Planted(backend, proxy, missing, [SECRET_KEY, SESSION_TOKEN])


async def gcs(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Planted:
    server = server_needs.GCS_CHECKING_NO_TOKENS.server(request)
    proxy = stack.enter_context(FaultProxy(server.endpoint_url))
    token = TokenCredentials(token=BEARER_TOKEN)  # type: ignore[no-untyped-call]
    clients = [
        builders.gcs_client(server, endpoint=proxy.url, credentials=token),
        builders.gcs_client(server, credentials=token),
    ]
    for made in clients:
        stack.callback(made.close)
    retry = DEFAULT_GCS_RETRY.with_timeout(0.3).with_delay(initial=0.01, maximum=0.05)
    backend = await stack.enter_async_context(
        GCSBackend(clients[0], server.new_bucket(), retry=retry)
    )
    missing = await stack.enter_async_context(
        GCSBackend(clients[1], "no-such-bucket-x", retry=retry)
    )
    return Planted(backend, proxy, missing, [BEARER_TOKEN])


def sas_connection_string(server: AzureServer, container: str, endpoint: str) -> tuple[str, str]:
    sas = generate_container_sas(
        server.account_name,
        container,
        account_key=server.account_key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
    )
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    blob = urllib.parse.urlsplit(server.blob_endpoint)
    connection = f"BlobEndpoint={endpoint}{blob.path};SharedAccessSignature={sas}"
    return connection, urllib.parse.unquote(signature)


async def azure(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Planted:
    server = server_needs.PLAIN_HTTP_AZURE.server(request)
    container = server.new_container()
    proxy = stack.enter_context(FaultProxy(builders.azurite_url(server)))
    # The account key signs every request of one backend, a SAS those of the other.
    sas_connection, signature = sas_connection_string(server, container, proxy.url)
    quick: dict[str, Any] = {"retry_total": 1, "initial_backoff": 0.01, "increment_base": 0.01}
    quick["random_jitter_range"] = 0
    backend = await stack.enter_async_context(
        builders.azure_backend(server, container, endpoint=proxy.url, **quick)
    )
    with_sas = await stack.enter_async_context(
        AzureBlobBackend.from_connection_string(sas_connection, container, **quick)
    )
    missing = await stack.enter_async_context(
        builders.azure_backend(server, "no-such-container-x", **quick)
    )
    return Planted(backend, proxy, missing, [server.account_key, signature], extra=with_sas)


async def obstore_s3(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Planted:
    server = server_needs.S3_CHECKING_NO_KEYS.server(request)
    proxy = stack.enter_context(FaultProxy(server.endpoint_url))

    def store(name: str, endpoint: str | None = None) -> S3Store:
        return builders.obstore_s3_store(
            server,
            name,
            endpoint=endpoint,
            secret_access_key=SECRET_KEY,
            token=SESSION_TOKEN,
            client_options=OBSTORE_CLIENT,
            retry_config=OBSTORE_RETRY,
        )

    backend = await stack.enter_async_context(ObstoreBackend(store(server.new_bucket(), proxy.url)))
    missing = await stack.enter_async_context(ObstoreBackend(store("no-such-bucket-x")))
    return Planted(backend, proxy, missing, [SECRET_KEY, SESSION_TOKEN])


async def obstore_azure(
    request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack
) -> Planted:
    server = server_needs.AZURITE_FOR_OBSTORE.server(request)
    container = server.new_container()
    proxy = stack.enter_context(FaultProxy(builders.azurite_url(server)))

    def store(name: str) -> AzureStore:
        return builders.obstore_azurite_store(
            name,
            proxy.url,
            access_key=server.account_key,
            client_options=OBSTORE_CLIENT,
            retry_config=OBSTORE_RETRY,
        )

    backend = await stack.enter_async_context(ObstoreBackend(store(container)))
    missing = await stack.enter_async_context(ObstoreBackend(store("no-such-x")))
    return Planted(backend, proxy, missing, [server.account_key])


async def obstore_gcs(request: pytest.FixtureRequest, stack: contextlib.AsyncExitStack) -> Planted:
    server = server_needs.FAKE_GCS_FOR_OBSTORE.server(request)
    translator = stack.enter_context(GcsXmlProxy(server.endpoint_url))
    proxy = stack.enter_context(FaultProxy(translator.url))

    def store(name: str, base_url: str) -> GCSStore:
        return builders.obstore_fake_gcs_store(
            name,
            base_url,
            key={
                "client_email": "memo@example.invalid",
                "private_key": PRIVATE_KEY,
                "private_key_id": "key-id",
            },
            client_options=OBSTORE_CLIENT,
            retry_config=OBSTORE_RETRY,
        )

    backend = await stack.enter_async_context(ObstoreBackend(store(server.new_bucket(), proxy.url)))
    missing = await stack.enter_async_context(
        ObstoreBackend(store("no-such-bucket-x", translator.url))
    )
    return Planted(backend, proxy, missing, [PRIVATE_KEY])


ADAPTERS = {
    "minio": minio,
    "gcs": gcs,
    "azure": azure,
    "obstore S3": obstore_s3,
    "obstore Azure": obstore_azure,
    "obstore GCS": obstore_gcs,
}


async def fail_everything(backend: MemoBackend, proxy: FaultProxy | None) -> list[BaseException]:
    """Every operation under every fault (or, without a proxy, as it is); the errors raised."""
    raised: list[BaseException] = []

    async def run(work: Any) -> None:
        try:
            await work
        except BackendError as error:
            raised.append(error)

    for fault in FAULTS if proxy is not None else ("none",):
        if proxy is not None:
            proxy.configure(rate=1.0, faults={fault: 1})
        await run(backend.get("k"))
        await run(backend.put("k", b"v"))
        await run(backend.put("k2", b"v", if_absent=True))
        await run(backend.delete("k"))
        await run(backend.delete_many(["k", "k2"]))
        await run(_drain(backend.list("")))
        if proxy is not None:
            # The core logs each key a run clear lists but cannot delete.
            proxy.configure(rate=0.0)
            store = MemoStore(backend, "secrets")
            await store.new_memo("run", 0).put("k", b"v")
            proxy.set_eligible(lambda r: classify_request(r.method, r.target) in DELETES)
            proxy.configure(rate=1.0)
            await run(store.clear_memos_for_run("run"))
            proxy.set_eligible(None)
    if proxy is not None:
        proxy.configure(rate=0.0)
    return raised


async def _drain(listing: AsyncIterator[str]) -> list[str]:
    return [key async for key in listing]


def texts_of(error: BaseException) -> list[str]:
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


@pytest.mark.parametrize("name", list(ADAPTERS))
async def test_no_credential_in_logs_errors_or_repr_while_everything_fails(
    name: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    reliability: ReliabilityFigures,
    otel: Telemetry,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with contextlib.AsyncExitStack() as stack:
        planted = await ADAPTERS[name](request, stack)
        errors = await fail_everything(planted.backend, planted.proxy)
        if planted.extra is not None:
            errors += await fail_everything(planted.extra, planted.proxy)
        errors += await fail_everything(planted.missing, None)
        backends = [planted.backend, planted.missing, planted.extra]
        texts = [text for error in errors for text in texts_of(error)]
        texts += [text for b in backends if b is not None for text in (repr(b), str(b))]
    log = caplog.text
    spans = otel.spans()
    telemetry = [repr(dict(span.attributes or {})) for span in spans]
    telemetry += [repr(dict(event.attributes or {})) for span in spans for event in span.events]
    telemetry += [repr(attributes) for _name, attributes, _point in otel.points()]
    assert errors, "nothing failed: the test proved nothing"
    assert spans, "no span was recorded: the telemetry check proved nothing"
    assert "failed to delete memo entry" in log, "the core's own warning was not provoked"
    for secret in planted.secrets:
        assert secret not in log, f"{name}: a log line holds a credential"
        leaking = [text for text in texts if secret in text]
        assert not leaking, f"{name}: an error or repr holds a credential: {leaking[0][:300]}"
        leaking = [text for text in telemetry if secret in text]
        assert not leaking, f"{name}: a span or metric holds a credential: {leaking[0][:300]}"
    reliability.add(SECTION, "failing_operations_checked", len(errors))
    reliability.add(SECTION, "log_records_checked", len(caplog.records))
    reliability.add(SECTION, "adapters_checked")


NESTED_PASSWORD = "nested-endpoint-password-never-logged-4f2a"


def with_user_info(endpoint: str, *, encoded: bool) -> str:
    """``endpoint`` with ``user:NESTED_PASSWORD@`` in it, as a query value (encoded or not)."""
    scheme, _, rest = endpoint.partition("://")
    nested = f"{scheme}://memo-user:{NESTED_PASSWORD}@{rest}"
    return urllib.parse.quote(nested, safe="") if encoded else nested


def nested_s3_url(server: S3Server, encoded: bool) -> str:
    endpoint = with_user_info(server.endpoint_url, encoded=encoded)
    return f"s3://{server.new_bucket()}/base?allow_http=true&region={server.region}&endpoint={endpoint}"


def nested_minio_url(server: S3Server, encoded: bool) -> str:
    endpoint = with_user_info(server.endpoint_url, encoded=encoded)
    return f"s3+minio://{server.new_bucket()}/base?secure=false&endpoint={endpoint}"


def nested_gcs_url(server: GCSServer, encoded: bool) -> str:
    endpoint = with_user_info(server.endpoint_url, encoded=encoded)
    return f"gs+gcs://{server.new_bucket()}/base?project={server.project}&endpoint={endpoint}"


NESTED_URLS: dict[str, tuple[str, Any]] = {
    "obstore S3": ("s3_server", nested_s3_url),
    "minio": ("s3_server", nested_minio_url),
    "gcs": ("gcs_server", nested_gcs_url),
}


@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "percent-encoded"])
@pytest.mark.parametrize("name", list(NESTED_URLS))
def test_no_password_of_a_nested_endpoint_url_in_logs_output_or_repr(
    name: str,
    encoded: bool,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fixture, build = NESTED_URLS[name]
    server = request.getfixturevalue(fixture)
    if isinstance(server, S3Server):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    url = build(server, encoded)
    caplog.set_level(logging.DEBUG)
    said: list[str] = []
    try:
        backend = open_backend(url)
    except MemoError as error:
        said += texts_of(error)
    else:
        said += [repr(backend), str(backend)]
    for json_flag in ([], ["--json"]):
        cli.main([*json_flag, "--url", url, "runs"])
        out, err = capsys.readouterr()
        said += [out, err]
    said.append(caplog.text)
    leaking = [text for text in said if NESTED_PASSWORD in urllib.parse.unquote(text)]
    assert not leaking, f"{name}: the nested endpoint's password shows: {leaking[0][:300]}"
