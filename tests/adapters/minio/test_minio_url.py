"""open_url and its entry points: s3+minio:// and minio:// URLs, credentials from the env."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from taquba_memo import InvalidURLError, open_backend
from taquba_memo_conformance.servers import S3Server
from taquba_memo_minio import MinioBackend, open_url

from .conftest import endpoint_of

SECRET = "url-secret-that-must-not-leak-42"
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET}


async def test_the_entry_points_name_open_url_for_both_schemes() -> None:
    found = {
        point.name: point.value
        for point in entry_points(group="taquba_memo.backends")
        if point.value.startswith("taquba_memo_minio")
    }
    opener = "taquba_memo_minio:open_url"
    assert found == {"minio": opener, "s3+minio": opener}


async def test_a_url_gives_a_backend_that_owns_a_sized_client() -> None:
    backend = open_url(
        "s3+minio://my-bucket/base/path?endpoint=127.0.0.1:9000&secure=false"
        "&region=eu-west-1&max_concurrency=4",
        environ=ENV,
    )
    async with backend:
        assert (backend.bucket, backend.base_path, backend.max_concurrency) == (
            "my-bucket",
            "base/path",
            4,
        )
        assert backend.client._http.connection_pool_kw["maxsize"] == 4
        assert backend.client._base_url.region == "eu-west-1"
        assert repr(backend) == (
            "MinioBackend(endpoint='http://127.0.0.1:9000', bucket='my-bucket', "
            "base_path='base/path')"
        )


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("minio.internal:9000", None, "https://minio.internal:9000"),
        ("minio.internal:9000", "false", "http://minio.internal:9000"),
        ("http://127.0.0.1:9000", None, "http://127.0.0.1:9000"),
        ("https://s3.example.test", "true", "https://s3.example.test"),
    ],
)
async def test_the_endpoint_may_carry_its_scheme(
    endpoint: str, secure: str | None, expected: str
) -> None:
    query = f"endpoint={endpoint}" + (f"&secure={secure}" if secure else "")
    async with open_url(f"minio://bucket-name?{query}", environ=ENV) as backend:
        assert f"endpoint='{expected}'" in repr(backend)


async def test_the_environment_supplies_endpoint_region_and_either_credential_pair() -> None:
    env = {
        "MINIO_ACCESS_KEY": "minio-user",
        "MINIO_SECRET_KEY": SECRET,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_REGION": "ap-south-1",
    }
    async with open_url("minio://bucket-name", environ=env) as backend:
        assert "endpoint='http://127.0.0.1:9000'" in repr(backend)
        assert backend.client._base_url.region == "ap-south-1"


@pytest.mark.parametrize(
    ("url", "env", "complaint"),
    [
        ("s3://bucket-name?endpoint=h:1", ENV, "scheme"),
        ("minio://bucket-name", ENV, "no endpoint"),
        ("minio://bucket-name?endpoint=h:1", {}, "no S3 credentials"),
        ("minio://bucket-name?endpoint=h:1", {"AWS_ACCESS_KEY_ID": "a"}, "go together"),
        ("minio://key:secret@bucket-name?endpoint=h:1", ENV, "do not belong in the URL"),
        ("minio://bucket-name:9000?endpoint=h:1", ENV, "BUCKET/BASE/PATH"),
        ("minio:///base?endpoint=h:1", ENV, "BUCKET/BASE/PATH"),
        ("minio://bucket-name?endpoint=h:1&secret_key=x", ENV, "unknown"),
        ("minio://bucket-name?endpoint=h:1&endpoint=g:2", ENV, "repeated"),
        ("minio://bucket-name?endpoint=h:1&secure=maybe", ENV, "true or false"),
        ("minio://bucket-name?endpoint=http://h:1&secure=true", ENV, "contradicts"),
        ("minio://bucket-name?endpoint=ftp://h:1", ENV, "http:// or https://"),
        ("minio://bucket-name?endpoint=http://h:1/path", ENV, "host and port only"),
        ("minio://bucket-name?endpoint=h:1&max_concurrency=0", ENV, "positive integer"),
        ("minio://ab?endpoint=h:1", ENV, "invalid bucket name"),
        ("minio://bucket-name/a/../b?endpoint=h:1", ENV, "segment"),
    ],
)
def test_a_bad_url_is_refused_without_repeating_the_secret(
    url: str, env: dict[str, str], complaint: str
) -> None:
    with pytest.raises(InvalidURLError) as raised:
        open_url(url, environ=env)
    assert complaint in str(raised.value)
    assert SECRET not in str(raised.value)


async def test_open_backend_finds_the_adapter_and_it_works_against_the_server(
    s3_server: S3Server, minio_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, secure = endpoint_of(s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    url = (
        f"s3+minio://{minio_bucket}/memos?endpoint={host}&secure={str(secure).lower()}"
        f"&region={s3_server.region}"
    )
    backend = open_backend(url)
    assert isinstance(backend, MinioBackend)
    async with backend:
        assert await backend.put("k", b"v", if_absent=True) is True
        assert await backend.get("k") == b"v"
        assert [key async for key in backend.list("")] == ["k"]
        await backend.delete("k")
