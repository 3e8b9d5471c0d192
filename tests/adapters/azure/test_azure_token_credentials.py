"""AzureBlobBackend.from_account_url with token credentials, against Azurite over HTTPS with OAuth.

The session's azure_server speaks plain HTTP with a shared key, and the SDK
never sends a bearer token over HTTP, so this module starts its own Azurite
(the kit's pinned install) with a throwaway self-signed certificate and
``--oauth basic``. In that mode Azurite accepts any unexpired JWT whose issuer
is an Azure AD one and whose audience is storage; it does not check the
signature, which lets a test mint tokens without an identity provider.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from azure.core.credentials import AccessToken
from azure.storage.blob.aio import BlobServiceClient
from taquba_memo import AccessDeniedError
from taquba_memo_azure import AzureBlobBackend
from taquba_memo_conformance._azurite import ensure_azurite
from taquba_memo_conformance._processes import ManagedProcess, free_port, start_timeout
from taquba_memo_conformance.servers import AZURITE_ACCOUNT_KEY, AZURITE_ACCOUNT_NAME

STORAGE_SCOPE = "https://storage.azure.com/.default"


@dataclass(frozen=True)
class OAuthAzurite:
    blob_endpoint: str
    certificate: Path


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip(
        "cryptography.x509", reason="cryptography (from azure-identity) makes the test certificate"
    )
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _wait_for_tls(port: int, certificate: Path, process: ManagedProcess) -> None:
    context = ssl.create_default_context(cafile=str(certificate))
    deadline = time.monotonic() + start_timeout()
    while time.monotonic() < deadline:
        if process.exited():
            pytest.fail(f"Azurite (https, oauth) exited early:\n{process.output_tail()}")
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
        try:
            connection.request("GET", f"/{AZURITE_ACCOUNT_NAME}?comp=list")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    pytest.fail(f"Azurite (https, oauth) did not answer in time:\n{process.output_tail()}")


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthAzurite]:
    cert_path, key_path = _self_signed_certificate(tmp_path_factory.mktemp("azurite-tls"))
    install = ensure_azurite()
    port = free_port()
    process = ManagedProcess(
        "azurite-oauth",
        [
            str(install.node.node),
            str(install.blob_main),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--cert",
            str(cert_path),
            "--key",
            str(key_path),
            "--oauth",
            "basic",
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ],
    )
    try:
        _wait_for_tls(port, cert_path, process)
        yield OAuthAzurite(f"https://127.0.0.1:{port}/{AZURITE_ACCOUNT_NAME}", cert_path)
    finally:
        process.stop()


@pytest_asyncio.fixture
async def container(oauth_azurite: OAuthAzurite) -> AsyncIterator[str]:
    """A container created with the shared key (which Azurite still accepts in oauth mode)."""
    name = f"token-{time.monotonic_ns()}"
    async with BlobServiceClient(
        oauth_azurite.blob_endpoint,
        credential={"account_name": AZURITE_ACCOUNT_NAME, "account_key": AZURITE_ACCOUNT_KEY},
        connection_verify=str(oauth_azurite.certificate),
    ) as service:
        await service.create_container(name)
        yield name
        await service.delete_container(name)


def _jwt(claims: dict[str, Any]) -> str:
    def encode(part: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    return f"{encode({'alg': 'RS256', 'typ': 'JWT'})}.{encode(claims)}.c2lnbmF0dXJl"


def _token(lifetime_seconds: int) -> tuple[str, int]:
    now = int(time.time())
    expires_on = now + lifetime_seconds
    claims = {
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": now - 600,
        "nbf": now - 600,
        "exp": expires_on,
        "oid": "00000000-0000-0000-0000-000000000001",
    }
    return _jwt(claims), expires_on


@dataclass
class MintedTokenCredential:
    """An AsyncTokenCredential that hands out one token and records what was asked of it."""

    token: str
    expires_on: int
    scopes: list[tuple[str, ...]] = field(default_factory=list)
    closed: bool = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, self.expires_on)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> MintedTokenCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


async def test_a_token_credential_reads_writes_lists_and_batch_deletes(
    oauth_azurite: OAuthAzurite, container: str
) -> None:
    credential = MintedTokenCredential(*_token(3600))
    async with AzureBlobBackend.from_account_url(
        oauth_azurite.blob_endpoint,
        credential,
        container,
        base_path="base",
        connection_verify=str(oauth_azurite.certificate),
    ) as backend:
        assert await backend.put("k", b"v", if_absent=True) is True
        assert await backend.get("k") == b"v"
        await backend.put("j", b"w")
        assert [key async for key in backend.list("")] == ["j", "k"]
        await backend.delete_many(["j", "k", "missing"])  # sub-requests carry the bearer token
        assert [key async for key in backend.list("")] == []
        assert backend.request_counts.batch_delete_requests == 1
        assert credential.token not in repr(backend)
    assert set(credential.scopes) == {(STORAGE_SCOPE,)}
    assert not credential.closed  # the caller owns it unless close_credential=True


async def test_an_expired_token_is_access_denied(
    oauth_azurite: OAuthAzurite, container: str
) -> None:
    token, _ = _token(-60)
    # The SDK refreshes a token that expires soon, so report a future expiry for a stale token.
    credential = MintedTokenCredential(token, int(time.time()) + 3600)
    async with AzureBlobBackend.from_account_url(
        oauth_azurite.blob_endpoint,
        credential,
        container,
        connection_verify=str(oauth_azurite.certificate),
        close_credential=True,
    ) as backend:
        with pytest.raises(AccessDeniedError) as raised:
            await backend.get("k")
        assert token not in str(raised.value)
    assert credential.closed


async def test_an_azure_identity_credential_that_finds_nothing_is_access_denied(
    oauth_azurite: OAuthAzurite, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = pytest.importorskip(
        "azure.identity.aio", reason="azure-identity (the [identity] extra) is not installed"
    )
    for variable in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
        monkeypatch.delenv(variable, raising=False)
    # EnvironmentCredential with no AZURE_* variables fails locally, without any network.
    async with AzureBlobBackend.from_account_url(
        oauth_azurite.blob_endpoint,
        identity.EnvironmentCredential(),
        container,
        connection_verify=str(oauth_azurite.certificate),
        close_credential=True,
        retry_total=0,
    ) as backend:
        with pytest.raises(AccessDeniedError):
            await backend.put("k", b"v")
