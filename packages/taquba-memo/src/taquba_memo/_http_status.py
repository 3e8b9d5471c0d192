"""HTTP status to taquba-memo's typed storage errors: the one table every adapter uses."""

from __future__ import annotations

from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    ThrottledError,
    TransientBackendError,
)

__all__ = ["error_for_status"]


def error_for_status(
    status: int | None,
    message: str,
    *,
    container_missing: bool = False,
) -> BackendError:
    """Return the :class:`BackendError` subclass that fits an HTTP status.

    ``container_missing`` says that the store reported the bucket or container
    itself as absent (S3 ``NoSuchBucket``, Azure ``ContainerNotFound``).
    A ``None`` status means no answer arrived (connection reset, timeout).
    The caller raises the result ``from`` the SDK's exception.
    """
    if container_missing:
        return ContainerNotFoundError(message)
    if status is None or status == 408:
        return TransientBackendError(message)
    if status in (401, 403):
        return AccessDeniedError(message)
    if status in (429, 503):
        return ThrottledError(message)
    if status >= 500:
        return TransientBackendError(message)
    return BackendError(message)
