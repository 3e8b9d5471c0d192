"""Typed errors raised by taquba-memo.

Every error derives from :class:`MemoError`, so ``except MemoError`` catches
all of them. Below it there are two families, and they never overlap:

* **Bad input** is found before any I/O. Such errors also derive from the
  built-in :class:`ValueError` or :class:`TypeError`, so code written against
  plain Python conventions keeps working. Nothing has been read, written or
  deleted when one of them is raised.
* **Storage failures** are :class:`BackendError` subclasses. Adapters map the
  SDK's own exceptions to them in one place and chain the original as
  ``__cause__`` (``raise ... from exc``). The ``transient`` attribute tells a
  caller whether retrying the same call may succeed.

:class:`NotSupportedError` is neither: the backend cannot do what was asked
(for example ``put(..., if_absent=True)`` on a store without conditional
writes), so it refuses instead of silently doing something weaker. Nor is
:class:`SweepLeaseHeldError`: another sweeper holds the store's sweep lease.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AccessDeniedError",
    "AdapterNotInstalledError",
    "BackendError",
    "ContainerNotFoundError",
    "DecodeError",
    "DeleteManyError",
    "EncodeError",
    "EntryTooLargeError",
    "ForeignObjectError",
    "ForkedProcessError",
    "InvalidArgumentError",
    "InvalidConfigurationError",
    "InvalidKeyError",
    "InvalidPrefixError",
    "InvalidRunIdError",
    "InvalidStepNumberError",
    "InvalidTerminalTimeError",
    "InvalidURLError",
    "InvalidValueTypeError",
    "MemoError",
    "MissingDependencyError",
    "NotSupportedError",
    "StoreClosedError",
    "SweepLeaseHeldError",
    "ThrottledError",
    "TransientBackendError",
    "UsageError",
    "ValueTooLargeError",
]


class MemoError(Exception):
    """Base class of every error raised by taquba-memo."""


class InvalidArgumentError(MemoError, ValueError):
    """An argument has the right type but a value the layout cannot accept."""


class InvalidRunIdError(InvalidArgumentError):
    """A run id is not 1-128 bytes of ``[A-Za-z0-9_-]``."""


class InvalidStepNumberError(InvalidArgumentError):
    """A step number is not an int in ``0..2**32-1``."""


class InvalidTerminalTimeError(InvalidArgumentError):
    """A terminal timestamp is not an int of milliseconds in ``0..2**64-1``."""


class InvalidPrefixError(InvalidArgumentError):
    """A store prefix has a segment that object stores would escape or reject."""


class InvalidKeyError(InvalidArgumentError):
    """A key is not valid for this backend (for example a ``..`` segment)."""


class ValueTooLargeError(InvalidArgumentError):
    """A value is larger than the store's configured ``max_value_bytes``."""


class EntryTooLargeError(ValueTooLargeError):
    """A stored entry is larger than the store's ``max_value_bytes``.

    It was not read past that bound, so a huge or endless object (another
    tenant's, or a corrupt one) never fills memory. ``Memo.get`` raises it;
    ``get_or_compute`` treats such an entry as a miss and logs it.
    """


class InvalidValueTypeError(MemoError, TypeError):
    """An argument has the wrong type, such as a ``str`` where bytes belong."""


class NotSupportedError(MemoError):
    """The backend does not declare the capability this call needs."""


class BackendError(MemoError):
    """The storage backend failed; the SDK's exception is ``__cause__``."""

    transient: bool = False
    """True when retrying the same call later may succeed."""


class TransientBackendError(BackendError):
    """A failure that may pass: a 5xx answer, a reset connection, a timeout."""

    transient = True


class ThrottledError(TransientBackendError):
    """The store asked the client to slow down (HTTP 429, S3 ``SlowDown``)."""


class AccessDeniedError(BackendError):
    """The credentials are missing, invalid, or lack permission."""


class ContainerNotFoundError(BackendError):
    """The bucket or container itself does not exist (not a missing key)."""


class ForeignObjectError(BackendError):
    """The object under a key is not one a backend reads or deletes as a value.

    A symbolic link, FIFO, device or directory where a ``file://`` entry
    belongs: something another tenant of the root made. It is never followed,
    opened for reading or deleted through; retrying cannot help.
    """


class DeleteManyError(BackendError):
    """Some keys of a ``delete_many`` call could not be deleted.

    Every other key of the call was attempted and is gone. ``failures`` maps
    each key that failed to the :class:`BackendError` it failed with.
    """

    def __init__(self, failures: dict[str, BackendError]) -> None:
        self.failures = dict(failures)
        self.transient = all(err.transient for err in self.failures.values())
        sample = ", ".join(sorted(self.failures)[:3])
        more = len(self.failures) - 3
        super().__init__(
            f"{len(self.failures)} key(s) could not be deleted: {sample}"
            + (f" and {more} more" if more > 0 else "")
        )


# -- values, URLs and the sync API -------------------------------------------


class EncodeError(InvalidValueTypeError):
    """A value cannot be encoded: by a codec, or canonically for a content key.

    Raised before any I/O, so nothing was written.
    """


class DecodeError(MemoError):
    """Stored bytes could not be decoded by the codec they were read with.

    The codec's own exception is ``__cause__``. ``Memo.get_or_compute``
    treats such a value as a miss and recomputes it.
    """


class InvalidURLError(InvalidArgumentError):
    """A store URL is malformed, has an unknown scheme, or is ambiguous."""


class InvalidConfigurationError(InvalidArgumentError):
    """An adapter was given a client it cannot build: the message names the fix.

    For example an ``http://`` endpoint without ``allow_http``, an endpoint
    that is not a URL, or an unknown option. Raised when the backend is
    opened, before any I/O; retrying cannot help, so it is never transient.
    The command line exits with the bad-URL code (3).
    """

    transient: bool = False
    """Always False: retrying cannot fix a configuration (the same attribute as BackendError's)."""


class AdapterNotInstalledError(InvalidURLError):
    """No installed package handles the URL's scheme.

    ``packages`` names the distributions that would (install one of them).
    """

    def __init__(self, message: str, packages: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.packages = packages


class MissingDependencyError(MemoError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class StoreClosedError(MemoError, RuntimeError):
    """A store was used after it was closed (``close()``, ``aclose()`` or its ``with`` block).

    Raised before any I/O by every operation of the store and of its memos.
    """


class ForkedProcessError(MemoError, RuntimeError):
    """A store opened before ``fork()`` cannot be used in the child process.

    Raised on the store's first use in the child, before any I/O, by a
    backend whose SDK does not survive a fork. The message names the fix:
    open the store after the fork (Celery's ``worker_process_init`` signal,
    gunicorn's ``post_fork`` hook), or use the ``spawn`` or ``forkserver``
    start method.
    """


class UsageError(MemoError, ValueError):
    """A ``taquba-memo`` command line that was refused: an unknown option, a missing or bad value.

    The command prints its usage and exits with the usage code, before opening the store.
    """


# -- the sweep lease ---------------------------------------------------------


@dataclass(frozen=True)
class SweepLeaseHolder:
    """Who holds a store's sweep lease, as its document says (not an error; a
    :class:`SweepLeaseHeldError` carries one)."""

    owner: str
    renewed_at_ms: int
    lease_s: float


class SweepLeaseHeldError(MemoError):
    """Another sweeper holds the store's sweep lease; this one did nothing.

    ``holder`` says who, as the lease's document does. Raised by
    :class:`~taquba_memo._sweep_lease.SweepLease` before any deletion.
    """

    def __init__(self, holder: SweepLeaseHolder) -> None:
        self.holder = holder
        super().__init__(
            f"another sweep holds the lease ({holder.owner}, renewed at "
            f"{holder.renewed_at_ms} ms, lease {holder.lease_s:g} s): nothing done"
        )


# -- the names some errors had before every error's name ended in "Error" ------------

SweepLeaseHeld = SweepLeaseHeldError
InvalidRunId = InvalidRunIdError
InvalidStepNumber = InvalidStepNumberError
InvalidTerminalTime = InvalidTerminalTimeError
InvalidValueType = InvalidValueTypeError
NotSupported = NotSupportedError

#: Old name -> the class it names now; the old names keep working, unlisted in ``__all__``.
RENAMED: dict[str, type[MemoError]] = {
    "SweepLeaseHeld": SweepLeaseHeldError,
    "InvalidRunId": InvalidRunIdError,
    "InvalidStepNumber": InvalidStepNumberError,
    "InvalidTerminalTime": InvalidTerminalTimeError,
    "InvalidValueType": InvalidValueTypeError,
    "NotSupported": NotSupportedError,
}
