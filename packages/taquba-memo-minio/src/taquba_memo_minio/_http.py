"""The urllib3 connection pool this adapter hands the MinIO SDK: sized, retried, timed out.

The SDK sends every request through one ``urllib3.PoolManager`` (its
``http_client``). :func:`make_http_client` builds one whose pool holds as many
connections per host as the backend runs SDK calls at once, with the retry
policy :func:`default_retry` and explicit connect and read timeouts.
"""

from __future__ import annotations

import os
from typing import Final

import certifi
import urllib3
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "RETRY_STATUSES",
    "default_retry",
    "make_http_client",
    "pool_size",
]

DEFAULT_CONNECT_TIMEOUT: Final = 10.0
"""Seconds to wait for a TCP (and TLS) connection."""

DEFAULT_READ_TIMEOUT: Final = 60.0
"""Seconds to wait for each read of an answer (not for the whole answer)."""

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
"""Answers worth repeating a request for: throttling and server-side failures."""

# Every request the adapter sends may be repeated: reads, listings and deletes
# are idempotent; a plain PUT overwrites with the same bytes; a conditional PUT
# repeated after its first attempt succeeded gets 412 (reported as a lost race,
# and the value stored is this caller's); DeleteObjects (POST) is idempotent,
# and so are CompleteMultipartUpload on S3, and CreateMultipartUpload up to an
# unused upload id (which a bucket lifecycle rule aborts).
_RETRIED_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "POST"})


def default_retry(total: int = 5) -> Retry:
    """urllib3's policy for this adapter: ``total`` retries with capped exponential backoff.

    Connection failures, read failures and the statuses in
    :data:`RETRY_STATUSES` are retried, waiting 0.2 s, 0.4 s, 0.8 s ... up to
    5 s between attempts (or what a ``Retry-After`` header asks). When the
    retries run out on a status, the last answer is returned to the SDK
    (``raise_on_status=False``), so its S3 error code (``SlowDown``,
    ``InternalError``) reaches the error mapping instead of a bare
    ``MaxRetryError``.
    """
    return Retry(
        total=total,
        connect=total,
        read=total,
        status=total,
        other=0,
        redirect=0,  # S3 redirects name another region: an error to report, not follow
        backoff_factor=0.2,
        backoff_max=5.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=_RETRIED_METHODS,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


def make_http_client(
    max_connections: int,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    retry: Retry | None = None,
    cert_check: bool = True,
) -> urllib3.PoolManager:
    """A PoolManager for ``Minio(http_client=...)`` keeping ``max_connections`` per host.

    ``retry`` defaults to :func:`default_retry`; pass ``Retry(0)`` to turn
    retries off. TLS certificates are checked against ``SSL_CERT_FILE`` if set,
    else certifi's bundle (as the SDK's own default client does).
    """
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    return urllib3.PoolManager(
        num_pools=10,
        maxsize=max_connections,
        block=False,
        timeout=Timeout(connect=connect_timeout, read=read_timeout),
        retries=retry if retry is not None else default_retry(),
        cert_reqs="CERT_REQUIRED" if cert_check else "CERT_NONE",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )


def pool_size(http_client: urllib3.PoolManager, default: int) -> int:
    """Connections ``http_client`` keeps per host (its ``maxsize``), or ``default`` if unknown."""
    size = http_client.connection_pool_kw.get("maxsize")
    return size if isinstance(size, int) and size > 0 else default
