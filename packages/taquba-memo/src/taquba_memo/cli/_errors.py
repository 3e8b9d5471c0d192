"""How an error that ended a command is reported: its exit code, a hint, the missing permission."""

from __future__ import annotations

from taquba_memo._exit_codes import ExitCode
from taquba_memo.errors import (
    AccessDeniedError,
    AdapterNotInstalledError,
    BackendError,
    ContainerNotFoundError,
    InvalidConfigurationError,
    InvalidURLError,
)

__all__ = ["denied_error", "exit_code_for", "hint_for"]

_DELETE_PERMISSIONS = (
    "permission to delete objects under the prefix (S3: s3:DeleteObject; "
    "GCS: storage.objects.delete; Azure: a Storage Blob Data Contributor role "
    "or a SAS with the d permission)"
)
_LIST_PERMISSIONS = (
    "permission to list objects under the prefix (S3: s3:ListBucket; "
    "GCS: storage.objects.list; Azure: a Storage Blob Data Reader role "
    "or a SAS with the l permission)"
)
_PERMISSIONS = {"listing": _LIST_PERMISSIONS, "deleting": _DELETE_PERMISSIONS}


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an error that ended a command."""
    if isinstance(error, AdapterNotInstalledError):
        return ExitCode.ADAPTER_MISSING
    if isinstance(error, (InvalidURLError, InvalidConfigurationError)):
        return ExitCode.BAD_URL  # a client that cannot be built: what the URL or options say
    if isinstance(error, AccessDeniedError):
        return ExitCode.ACCESS_DENIED
    if isinstance(error, ContainerNotFoundError):
        return ExitCode.CONTAINER_NOT_FOUND
    if isinstance(error, BackendError):
        return ExitCode.BACKEND_ERROR
    return ExitCode.USAGE  # any other MemoError is a bad argument (run id, prefix, ...)


def hint_for(error: BaseException) -> str | None:
    """What to check after ``error``, printed under it; None when there is nothing to add."""
    if isinstance(error, AccessDeniedError):
        return (
            "check the credentials in the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, "
            "AZURE_STORAGE_*) and their permissions on this bucket"
        )
    if isinstance(error, ContainerNotFoundError):
        return "check the bucket, container or directory in --url"
    return None


def denied_error(denied: AccessDeniedError, doing: str) -> AccessDeniedError:
    """The error that stops a command at its first denied ``doing`` ("listing" or "deleting"),
    naming the permission it needs."""
    return AccessDeniedError(
        f"access denied while {doing} ({denied}); the command needs " + _PERMISSIONS[doing]
    )
