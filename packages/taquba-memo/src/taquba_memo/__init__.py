"""taquba-memo: durable per-step memoization on object storage.

A retried step of an at-least-once workflow finds what an earlier attempt
recorded and skips the expensive work. The object layout is byte-identical
to the Rust crate taquba-workflow 0.5.0, so Python and Rust workers can share
one bucket.

Everything a user needs is here, flat. Backend authors import from
:mod:`taquba_memo.backend` (the protocol, its optional members, capabilities,
``MemoBackendBase``, ``ListedObject``) and :mod:`taquba_memo.adapter_kit` (the
building blocks of an adapter); :mod:`taquba_memo.sync` is the blocking API and
:mod:`taquba_memo.errors` the error hierarchy. Modules with a leading underscore
are internal.

Importing the package costs little: its names are imported on first use (see
``__getattr__``), so ``import taquba_memo`` loads neither asyncio nor the store.
"""

import importlib

from taquba_memo import errors
from taquba_memo.errors import *  # noqa: F403 - exactly the names of errors.__all__

# typing.TYPE_CHECKING without importing typing (type checkers know the name); deleted below.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what mypy and IDEs see; at run time each name is imported on first use
    from taquba_memo._backends import InMemoryBackend, LocalFileBackend
    from taquba_memo._claims import ClaimPolicy
    from taquba_memo._codecs import (
        BytesCodec,
        Codec,
        JSONCodec,
        MsgpackCodec,
        PickleCodec,
        PydanticCodec,
        UnsafeCodecWarning,
    )
    from taquba_memo._content import canonical_json, content_key
    from taquba_memo._current import current_memo, use_memo
    from taquba_memo._layout import TerminalMarker
    from taquba_memo._listing import MemoEntry
    from taquba_memo._memo import Memo
    from taquba_memo._messagepack import SerdeBytes
    from taquba_memo._request_key import request_key
    from taquba_memo._stats import MemoStats, MemoStatsSnapshot
    from taquba_memo._store import MemoStore
    from taquba_memo._sweep import SweepFailure, SweepReport, SweepStrategy
    from taquba_memo._sweep_lease import SweepLease
    from taquba_memo._telemetry import set_otel_enabled
    from taquba_memo._urls import open_backend, open_store
    from taquba_memo.backend import MemoBackend

    # The old error names, which __getattr__ serves at run time.
    InvalidRunId = errors.InvalidRunIdError
    InvalidStepNumber = errors.InvalidStepNumberError
    InvalidTerminalTime = errors.InvalidTerminalTimeError
    InvalidValueType = errors.InvalidValueTypeError
    NotSupported = errors.NotSupportedError
    SweepLeaseHeld = errors.SweepLeaseHeldError
del TYPE_CHECKING

__version__ = "0.1.0"

# The error classes are listed once, in taquba_memo.errors.__all__.
__all__ = [
    "BytesCodec",
    "ClaimPolicy",
    "Codec",
    "InMemoryBackend",
    "JSONCodec",
    "LocalFileBackend",
    "Memo",
    "MemoBackend",
    "MemoEntry",
    "MemoStats",
    "MemoStatsSnapshot",
    "MemoStore",
    "MsgpackCodec",
    "PickleCodec",
    "PydanticCodec",
    "SerdeBytes",
    "SweepFailure",
    "SweepLease",
    "SweepReport",
    "SweepStrategy",
    "TerminalMarker",
    "UnsafeCodecWarning",
    "__version__",
    "canonical_json",
    "content_key",
    "current_memo",
    "open_backend",
    "open_store",
    "request_key",
    "set_otel_enabled",
    "use_memo",
]
__all__ += errors.__all__


#: Each public name that is not an error -> the module that defines it, imported on first use
#: (so ``import taquba_memo`` loads neither asyncio nor the store).
_DEFINED_IN: dict[str, str] = {
    "BytesCodec": "_codecs",
    "ClaimPolicy": "_claims",
    "Codec": "_codecs",
    "InMemoryBackend": "_backends",
    "JSONCodec": "_codecs",
    "LocalFileBackend": "_backends",
    "Memo": "_memo",
    "MemoBackend": "backend",
    "MemoEntry": "_listing",
    "MemoStats": "_stats",
    "MemoStatsSnapshot": "_stats",
    "MemoStore": "_store",
    "MsgpackCodec": "_codecs",
    "PickleCodec": "_codecs",
    "PydanticCodec": "_codecs",
    "SerdeBytes": "_messagepack",
    "SweepFailure": "_sweep",
    "SweepLease": "_sweep_lease",
    "SweepReport": "_sweep",
    "SweepStrategy": "_sweep",
    "TerminalMarker": "_layout",
    "UnsafeCodecWarning": "_codecs",
    "canonical_json": "_content",
    "content_key": "_content",
    "current_memo": "_current",
    "open_backend": "_urls",
    "open_store": "_urls",
    "request_key": "_request_key",
    "set_otel_enabled": "_telemetry",
    "use_memo": "_current",
}


def __getattr__(name: str) -> object:
    if name in _DEFINED_IN:
        value = getattr(importlib.import_module(f"taquba_memo.{_DEFINED_IN[name]}"), name)
        globals()[name] = value  # later look-ups find it without calling here
        return value
    # The names some errors had before every error's name ended in "Error" keep working.
    if name in errors.RENAMED:
        return errors.RENAMED[name]
    raise AttributeError(f"module 'taquba_memo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
