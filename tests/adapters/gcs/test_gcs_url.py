"""open_url and the ``taquba_memo.backends`` entry points of taquba-memo-gcs."""

from __future__ import annotations

from importlib.metadata import entry_points
from urllib.parse import quote

import pytest
from google.cloud import storage
from taquba_memo import InvalidArgumentError
from taquba_memo_conformance.servers import GCSServer
from taquba_memo_gcs import GCSBackend, open_url


def test_gs_schemes_are_registered_entry_points() -> None:
    # Another adapter may register plain "gs" too (taquba-memo-obstore does);
    # "gs+gcs" always names this one.
    found = [(ep.name, ep) for ep in entry_points(group="taquba_memo.backends")]
    ours = [(name, ep) for name, ep in found if ep.value == "taquba_memo_gcs:open_url"]
    assert sorted(name for name, _ in ours) == ["gs", "gs+gcs"]
    assert [ep.value for name, ep in found if name == "gs+gcs"] == ["taquba_memo_gcs:open_url"]
    assert all(ep.load() is open_url for _, ep in ours)


@pytest.fixture
def endpoint(gcs_server: GCSServer) -> str:
    """The emulator's address, quoted for a URL's query; skipped on real GCS (no token in URLs)."""
    if gcs_server.access_token:
        pytest.skip("URLs carry no token; a real endpoint is covered by the client constructor")
    return quote(gcs_server.endpoint_url, safe="")


@pytest.mark.parametrize("scheme", ["gs", "gs+gcs"])
async def test_a_url_opens_a_working_backend(
    gcs_server: GCSServer, gcs_bucket: str, endpoint: str, scheme: str
) -> None:
    url = f"{scheme}://{gcs_bucket}/team/memos/?endpoint={endpoint}&project={gcs_server.project}"
    async with open_url(url) as backend:
        assert isinstance(backend, GCSBackend)
        assert (backend.bucket_name, backend.base_path) == (gcs_bucket, "team/memos")
        assert await backend.put("k", b"v", if_absent=True) is True
        assert [key async for key in backend.list("")] == ["k"]


async def test_the_base_path_is_percent_decoded(
    gcs_client: storage.Client, gcs_bucket: str, endpoint: str
) -> None:
    url = f"gs://{gcs_bucket}/team%20a/memos%2Fdaily?endpoint={endpoint}"
    async with open_url(url) as backend:
        assert backend.base_path == "team a/memos/daily"
        await backend.put("k", b"v")
    names = [blob.name for blob in gcs_client.list_blobs(gcs_bucket)]
    assert names == ["team a/memos/daily/k"]


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/x",
        "gs:///no-bucket",
        "gs://user:secret@bucket/x",
        "gs://bucket:80/x",
        "gs://bucket/x?region=eu",
        "gs://bucket/x?endpoint=http://127.0.0.1:1&anonymous=maybe",
        "gs://bucket/a/../b",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises((InvalidArgumentError, ValueError)):
        open_url(url)
