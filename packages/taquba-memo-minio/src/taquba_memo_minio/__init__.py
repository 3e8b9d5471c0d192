"""taquba-memo-minio: a taquba-memo backend on any S3-compatible store, through the MinIO SDK.

:class:`MinioBackend` wraps a ``minio.Minio`` client and a bucket (plus an
optional base path); :meth:`MinioBackend.connect` builds the client with a
sized, retrying connection pool; :func:`open_url` opens
``s3+minio://bucket/base/path?endpoint=host:port`` URLs.
"""

from taquba_memo_minio._backend import (
    CONDITIONAL_PUT_MAX_BYTES,
    DEFAULT_PART_SIZE,
    MAX_DELETE_BATCH,
    MinioBackend,
    sdk_sends_conditional_header,
)
from taquba_memo_minio._http import default_retry, make_http_client
from taquba_memo_minio._url import open_url

__version__ = "0.1.0"

__all__ = [
    "CONDITIONAL_PUT_MAX_BYTES",
    "DEFAULT_PART_SIZE",
    "MAX_DELETE_BATCH",
    "MinioBackend",
    "__version__",
    "default_retry",
    "make_http_client",
    "open_url",
    "sdk_sends_conditional_header",
]
