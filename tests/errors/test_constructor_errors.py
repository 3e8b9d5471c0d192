"""Every adapter's constructor refuses a bad option with an error of the core's hierarchy.

A wrong type is an InvalidValueTypeError (a TypeError), a value out of range an
InvalidArgumentError (a ValueError), a refused URL an InvalidURLError: all
MemoErrors, raised before any I/O, never a bare ValueError or TypeError.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from minio import Minio
from obstore.store import MemoryStore
from taquba_memo import InvalidArgumentError, InvalidURLError, InvalidValueTypeError, MemoError
from taquba_memo_azure import AzureBlobBackend
from taquba_memo_azure import open_url as open_azure_url
from taquba_memo_gcs import GCSBackend
from taquba_memo_minio import MinioBackend
from taquba_memo_obstore import ObstoreBackend

NOBODY = "127.0.0.1:9"  # nothing is ever sent: these fail before any I/O
AZURE = f"AccountName=acct;AccountKey=c2VjcmV0;BlobEndpoint=http://{NOBODY}/acct"


def gcs_client() -> storage.Client:
    return storage.Client(project="p", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]


def minio_client() -> Minio:
    return Minio(NOBODY, access_key="a", secret_key="b", secure=False)


# (what is wrong, how the backend is built, the error it must raise)
BAD_OPTIONS: list[tuple[str, Callable[[], object], type[MemoError]]] = [
    ("gcs: not a client", lambda: GCSBackend(object()), InvalidValueTypeError),
    ("gcs: a client without a bucket", lambda: GCSBackend(gcs_client()), InvalidValueTypeError),
    (
        "gcs: base path not text",
        lambda: GCSBackend(gcs_client(), "b", base_path=1),  # type: ignore[arg-type]
        InvalidValueTypeError,
    ),
    ("minio: not a client", lambda: MinioBackend("c", "b"), InvalidValueTypeError),  # type: ignore[arg-type]
    ("minio: bucket not text", lambda: MinioBackend(minio_client(), 1), InvalidValueTypeError),  # type: ignore[arg-type]
    (
        "azure: base path not text",
        lambda: AzureBlobBackend.from_connection_string(AZURE, "c", base_path=1),  # type: ignore[arg-type]
        InvalidValueTypeError,
    ),
    ("azure URL: another scheme", lambda: open_azure_url("s3://c"), InvalidURLError),
    ("azure URL: no container", lambda: open_azure_url("az:///base"), InvalidURLError),
    ("azure URL: unknown parameter", lambda: open_azure_url("az://c?x=1"), InvalidURLError),
    ("obstore: not a store", lambda: ObstoreBackend(object()), InvalidValueTypeError),  # type: ignore[arg-type]
    (
        "obstore: base path not text",
        lambda: ObstoreBackend(MemoryStore(), base_path=1),  # type: ignore[arg-type]
        InvalidValueTypeError,
    ),
]

# Each adapter's constructor with valid arguments and ``options``.
ADAPTERS: dict[str, Callable[..., object]] = {
    "gcs": lambda **options: GCSBackend(gcs_client(), "b", **options),
    "minio": lambda **options: MinioBackend(minio_client(), "bucket", **options),
    "azure": lambda **options: AzureBlobBackend.from_connection_string(AZURE, "c", **options),
}
# (adapter, an option, a value out of its range)
OUT_OF_RANGE: list[tuple[str, str, int]] = [
    ("gcs", "list_page_size", 0),
    ("gcs", "max_concurrency", 0),
    ("minio", "part_size", 1),
    ("minio", "max_concurrency", 0),
    ("azure", "list_page_size", 0),
    ("azure", "max_concurrency", 0),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(build, expected, id=case) for case, build, expected in BAD_OPTIONS],
)
def test_a_bad_option_raises_the_cores_error(
    build: Callable[[], object], expected: type[MemoError]
) -> None:
    with pytest.raises(expected):
        build()


@pytest.mark.parametrize(
    ("adapter", "option", "value"),
    [pytest.param(*case, id=f"{case[0]}: {case[1]}={case[2]}") for case in OUT_OF_RANGE],
)
def test_an_option_out_of_range_raises_the_cores_invalid_argument_error(
    adapter: str, option: str, value: int
) -> None:
    with pytest.raises(InvalidArgumentError):
        ADAPTERS[adapter](**{option: value})
