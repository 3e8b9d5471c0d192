"""What a test needs of a kit server; where the server falls short, the test skips, saying why."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import pytest
from taquba_memo_conformance.servers import AzureServer, GCSServer, S3Server

ServerT = TypeVar("ServerT")


@dataclass(frozen=True)
class ServerNeed(Generic[ServerT]):
    """A server fixture's name, what the test needs of that server, and why it needs it."""

    fixture: str
    holds: Callable[[ServerT], bool]
    reason: str

    def check(self, server: ServerT) -> ServerT:
        """``server``, or a skip with :attr:`reason` where it does not meet the need."""
        if not self.holds(server):
            pytest.skip(self.reason)
        return server

    def server(self, request: pytest.FixtureRequest) -> ServerT:
        """The fixture's server, checked."""
        server: ServerT = request.getfixturevalue(self.fixture)
        return self.check(server)


#: The fault proxy in front of Azure: it forwards plain HTTP only.
PLAIN_HTTP_AZURE = ServerNeed[AzureServer](
    "azure_server",
    lambda server: urllib.parse.urlsplit(server.blob_endpoint).scheme == "http",
    "the fault proxy forwards plain HTTP only",
)
#: The fault proxy in front of GCS: a loopback emulator, not the real service.
LOCAL_GCS_EMULATOR = ServerNeed[GCSServer](
    "gcs_server",
    lambda server: server.emulator is not None,
    "the fault proxy forwards plain HTTP to a local emulator only",
)
#: A made-up bearer token: an emulator, which checks none (fake-gcs-server).
GCS_CHECKING_NO_TOKENS = dataclasses.replace(
    LOCAL_GCS_EMULATOR,
    reason="planting a made-up token needs a server that checks none (fake-gcs-server)",
)
#: obstore's Azure store on Azurite, the one server its emulator mode reaches.
AZURITE_FOR_OBSTORE = ServerNeed[AzureServer](
    "azure_server",
    lambda server: server.emulator == "azurite",
    "obstore reaches Azurite through use_emulator; no other server is set up",
)
#: obstore's GCS store, whose uploads reach fake-gcs-server through the kit's GcsXmlProxy.
FAKE_GCS_FOR_OBSTORE = ServerNeed[GCSServer](
    "gcs_server",
    lambda server: server.emulator == "fake-gcs-server",
    "obstore's GCS uploads reach fake-gcs-server through the kit's XML proxy only",
)
#: A made-up secret key signs requests: a server that checks none (moto).
S3_CHECKING_NO_KEYS = ServerNeed[S3Server](
    "s3_server",
    lambda server: server.emulator == "moto",
    "planting a made-up secret key needs a server that checks none (moto)",
)
