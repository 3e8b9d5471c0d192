"""taquba-memo: durable per-step memoization on object storage.

A retried step of an at-least-once workflow finds what an earlier attempt
recorded and skips the expensive work. The object layout is byte-identical
to the Rust crate taquba-workflow 0.5.0, so Python and Rust workers can share
one bucket. See :mod:`taquba_memo.backend` for writing a storage adapter.
"""

from taquba_memo.backend import Capabilities, MemoBackend
from taquba_memo.backends import InMemoryBackend, LocalFileBackend
from taquba_memo.errors import (
    AccessDeniedError,
    BackendError,
    ContainerNotFoundError,
    DeleteManyError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidPrefixError,
    InvalidRunId,
    InvalidStepNumber,
    InvalidTerminalTime,
    InvalidValueType,
    MemoError,
    NotSupported,
    ThrottledError,
    TransientBackendError,
    ValueTooLargeError,
)
from taquba_memo.layout import TerminalMarker
from taquba_memo.store import Memo, MemoStore, SweepFailure, SweepReport

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "BackendError",
    "Capabilities",
    "ContainerNotFoundError",
    "DeleteManyError",
    "InMemoryBackend",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidPrefixError",
    "InvalidRunId",
    "InvalidStepNumber",
    "InvalidTerminalTime",
    "InvalidValueType",
    "LocalFileBackend",
    "Memo",
    "MemoBackend",
    "MemoError",
    "MemoStore",
    "NotSupported",
    "SweepFailure",
    "SweepReport",
    "TerminalMarker",
    "ThrottledError",
    "TransientBackendError",
    "ValueTooLargeError",
    "__version__",
]
