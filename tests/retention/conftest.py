"""Each adapter on its server, reachable directly and through a counting proxy.

The S3 adapters run twice: on moto, and on Ceph RGW (``minio-rgw``,
``obstore-s3-rgw``), a server that checks the signatures the proxy forwards.

The adapters are built by :func:`tests.builders.builder_for`, which the
benchmarks and the worker processes of :mod:`tests.runtimes` use too.

An :class:`Adapter` builds backends on one bucket (or container) of its own:
``direct()`` talks to the emulator (to write test data quickly), and
``counted()`` talks through a :class:`CountingProxy` whose counts the tests
read. The proxy tells listings of terminal markers (``list-markers``) from
other listings (``list``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from taquba_memo_conformance.proxies import CountingProxy, GcsXmlProxy
from taquba_memo_conformance.servers import (
    AzureServer,
    GCSServer,
)

from ..builders import builder_for
from .adapters import Adapter, classify

ADAPTERS = [
    "obstore-s3",
    "minio",
    "obstore-s3-rgw",
    "minio-rgw",
    "gcs",
    "obstore-gcs",
    "azure",
    "obstore-azure",
]
# The parameter's suffix that puts an S3 adapter on RGW instead of moto.
_ON_RGW = "-rgw"


@pytest.fixture(scope="module")
def gcs_xml_proxy_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The kit's XML upload proxy: obstore writes GCS objects through the XML API."""
    gcs_server: GCSServer = request.getfixturevalue("gcs_server")
    if gcs_server.emulator != "fake-gcs-server":
        yield gcs_server.endpoint_url
        return
    with GcsXmlProxy(gcs_server.endpoint_url) as proxy:
        yield proxy.url


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """One adapter on a fresh bucket of its server, with a counting proxy in front."""
    name: str = request.param
    on_rgw = name.endswith(_ON_RGW)
    name = name.removesuffix(_ON_RGW)
    s3_fixture = "rgw_server" if on_rgw else "s3_server"
    with contextlib.ExitStack() as cleanup:

        def azure() -> tuple[AzureServer, str]:
            # A container of its own, deleted afterwards: blobs left in Azurite
            # slow its batch deletes down for every later test.
            server: AzureServer = request.getfixturevalue("azure_server")
            return server, cleanup.enter_context(server.temporary_container())

        build, upstream = builder_for(
            name,
            lambda: request.getfixturevalue(s3_fixture),
            lambda: request.getfixturevalue("gcs_server"),
            azure,
            lambda: request.getfixturevalue("gcs_xml_proxy_url"),
        )
        with CountingProxy(upstream, classify=classify) as proxy:
            yield Adapter(name, build, proxy, "rgw" if on_rgw else "moto")
