"""Codecs: how a memoized value becomes the bytes a backend stores, and back.

A codec is any object with ``encode(value) -> bytes`` and
``decode(data) -> value`` (the :class:`Codec` protocol). Five ship here:

* :class:`BytesCodec` (the default): values are ``bytes``, stored as they are.
* :class:`JSONCodec`: JSON text in UTF-8, readable from any language.
* :class:`MsgpackCodec`: MessagePack, compact and cross-language; needs the
  ``msgpack`` extra (``pip install 'taquba-memo[msgpack]'``).
* :class:`PydanticCodec`: instances of one pydantic model, as the model's
  JSON; a stored value that no longer validates is a miss. Needs the
  ``pydantic`` extra (``pip install 'taquba-memo[pydantic]'``).
* :class:`PickleCodec`: any picklable Python object, by explicit opt-in only.
  Unpickling runs code chosen by whoever wrote the bytes, so anyone who can
  write to the bucket can run code in every reader; constructing one emits
  :class:`UnsafeCodecWarning`.

Encoding failures raise :class:`~taquba_memo.EncodeError` (a ``TypeError``,
before any I/O); decoding failures raise :class:`~taquba_memo.DecodeError`
with the codec's own exception as ``__cause__``. :func:`decode_value` holds
any codec, a user's own included, to that rule: whatever a codec or its hooks
raise while decoding (a ``KeyError`` from an ``object_hook`` after a schema
change, a pydantic ``ValidationError``) comes out as ``DecodeError``, so
``get_or_compute`` treats it as a miss instead of crashing on every retry.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar, runtime_checkable

from taquba_memo._checks import check_value
from taquba_memo.errors import (
    DecodeError,
    EncodeError,
    InvalidValueTypeError,
    MissingDependencyError,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "BytesCodec",
    "Codec",
    "JSONCodec",
    "MsgpackCodec",
    "PickleCodec",
    "PydanticCodec",
    "UnsafeCodecWarning",
    "check_codec",
    "decode_value",
    "encode_value",
]

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound="BaseModel")


@runtime_checkable
class Codec(Protocol[T]):
    """Turns values of type ``T`` into bytes and back.

    ``decode(encode(v))`` must give back an equivalent value. ``decode``
    should raise :class:`~taquba_memo.DecodeError` for bytes it cannot read;
    any other exception it raises is wrapped into one (see :func:`decode_value`).
    """

    def encode(self, value: T, /) -> bytes: ...

    def decode(self, data: bytes, /) -> T: ...


def check_codec(codec: object) -> None:
    """Refuse, before any I/O, a ``codec`` without ``encode`` and ``decode`` methods."""
    if type(codec) is BytesCodec:
        return  # the default, on every hit: nothing to look up
    if not (callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
        raise InvalidValueTypeError(
            f"codec must have encode() and decode() methods, {type(codec).__name__} has not"
        )


def decode_value(codec: Codec[T], data: bytes) -> T:
    """Return ``codec.decode(data)``; any exception the codec raises becomes a
    :class:`~taquba_memo.DecodeError` with the original as ``__cause__``."""
    codec_type: type = type(codec)
    if codec_type is BytesCodec and type(data) is bytes:
        return data  # type: ignore[return-value]  # the default's decode: the bytes as they are
    try:
        return codec.decode(data)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"{codec!r} failed to decode: {type(exc).__name__}: {exc}") from exc


def encode_value(codec: Codec[T], value: T) -> bytes:
    """Return ``codec.encode(value)`` as bytes; any exception the codec raises
    (or a result that is not bytes-like) becomes an :class:`~taquba_memo.EncodeError`."""
    try:
        data = codec.encode(value)
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(f"{codec!r} failed to encode: {type(exc).__name__}: {exc}") from exc
    try:
        return check_value(data)
    except InvalidValueTypeError as exc:
        raise EncodeError(f"{codec!r} returned {type(data).__name__}, not bytes") from exc


class UnsafeCodecWarning(UserWarning):
    """A codec that runs code while decoding (pickle) was constructed."""


class BytesCodec:
    """Values are bytes-like and stored unchanged; decoding returns ``bytes``."""

    def encode(self, value: bytes | bytearray | memoryview, /) -> bytes:
        try:
            return check_value(value)
        except InvalidValueTypeError as exc:
            raise EncodeError(f"BytesCodec encodes bytes-like values only: {exc}") from None

    def decode(self, data: bytes, /) -> bytes:
        return bytes(data)

    def __repr__(self) -> str:
        return "BytesCodec()"


class JSONCodec:
    """Compact JSON text in UTF-8 (non-ASCII characters are not escaped).

    NaN and infinities are refused, since they are not JSON and other
    languages cannot read them. Tuples come back as lists. ``default`` is
    called for objects ``json`` cannot encode (as in :func:`json.dumps`);
    ``object_hook`` turns decoded dicts into objects (as in :func:`json.loads`).
    """

    def __init__(
        self,
        *,
        default: Callable[[Any], Any] | None = None,
        object_hook: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._default = default
        self._object_hook = object_hook

    def encode(self, value: Any, /) -> bytes:
        try:
            text = json.dumps(
                value,
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
                default=self._default,
            )
            return text.encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            # UnicodeEncodeError (a lone surrogate) is a ValueError too.
            raise EncodeError(f"value is not JSON-encodable: {exc}") from exc

    def decode(self, data: bytes, /) -> Any:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"stored value is not UTF-8 text: {exc}") from exc
        hook = self._object_hook
        try:
            return json.loads(
                text,
                object_hook=None if hook is None else _HookCall(hook),
                parse_constant=_refuse_constant,
                parse_float=_finite_float,
            )
        except _HookRefused as refused:
            # The JSON parsed; the object_hook refused it (often an older schema).
            cause = refused.__cause__
            raise DecodeError(
                f"object_hook refused the stored JSON: {type(cause).__name__}: {cause}"
            ) from cause
        except json.JSONDecodeError as exc:
            raise DecodeError(f"stored value is not JSON: {exc}") from exc
        except RecursionError as exc:
            raise DecodeError("stored JSON is nested too deeply to decode") from exc
        except ValueError as exc:
            # Python's int digit limit (sys.set_int_max_str_digits) refuses a huge integer.
            raise DecodeError(f"stored JSON holds a number Python cannot read: {exc}") from exc

    def __repr__(self) -> str:
        return "JSONCodec()"


class _HookRefused(Exception):
    """An exception the user's object_hook raised, told apart from the parser's own."""


@dataclass(frozen=True)
class _HookCall:
    hook: Callable[[dict[str, Any]], Any]

    def __call__(self, document: dict[str, Any]) -> Any:
        try:
            return self.hook(document)
        except Exception as exc:
            raise _HookRefused from exc


def _refuse_constant(name: str) -> NoReturn:
    raise DecodeError(f"stored JSON holds {name}, which is not JSON (encode refuses it too)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError(f"stored JSON holds {text:.40}, too large for a float")
    return value


class MsgpackCodec:
    """MessagePack through the ``msgpack`` package (the ``msgpack`` extra).

    Strings and bytes stay distinct (``use_bin_type``); arrays come back as
    lists. Raises :class:`~taquba_memo.MissingDependencyError` when
    ``msgpack`` is not installed.
    """

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as exc:
            raise MissingDependencyError(
                "MsgpackCodec needs msgpack: pip install 'taquba-memo[msgpack]'"
            ) from exc
        self._msgpack = msgpack

    def encode(self, value: Any, /) -> bytes:
        try:
            data = self._msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise EncodeError(f"value is not msgpack-encodable: {exc}") from exc
        return bytes(data)

    def decode(self, data: bytes, /) -> Any:
        try:
            return self._msgpack.unpackb(bytes(data), raw=False)
        except Exception as exc:
            # ExtraData, FormatError and StackError are ValueErrors; a truncated
            # value can also fail as TypeError or UnpackException.
            raise DecodeError(
                f"stored value could not be decoded as MessagePack: {type(exc).__name__}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return "MsgpackCodec()"


class PydanticCodec(Generic[ModelT]):
    """Instances of the pydantic model ``model``, stored as its JSON (the ``pydantic`` extra).

    Encodes ``value.model_dump_json()``; decodes with
    ``model.model_validate_json``, so any language reads the entries. A stored
    value that no longer validates (the model gained a required field, a type
    changed) raises :class:`~taquba_memo.DecodeError`, which
    ``get_or_compute`` treats as a miss: the step pays again and the entry is
    replaced. Raises :class:`~taquba_memo.MissingDependencyError` when
    ``pydantic`` is not installed, and
    :class:`~taquba_memo.InvalidValueTypeError` when ``model`` is not a
    pydantic model class.
    """

    def __init__(self, model: type[ModelT]) -> None:
        try:
            import pydantic
        except ImportError as exc:
            raise MissingDependencyError(
                "PydanticCodec needs pydantic: pip install 'taquba-memo[pydantic]'"
            ) from exc
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            raise InvalidValueTypeError(
                f"PydanticCodec takes a pydantic model class, not {model!r}"
            )
        self._model = model

    @property
    def model(self) -> type[ModelT]:
        """The model class whose instances this codec stores."""
        return self._model

    def encode(self, value: ModelT, /) -> bytes:
        if not isinstance(value, self._model):
            raise EncodeError(
                f"{self!r} encodes {self._model.__name__} instances, not {type(value).__name__}"
            )
        try:
            return value.model_dump_json().encode("utf-8")
        except Exception as exc:  # pydantic's PydanticSerializationError, a ValueError
            raise EncodeError(
                f"{type(value).__name__} could not be serialized: {type(exc).__name__}: {exc}"
            ) from exc

    def decode(self, data: bytes, /) -> ModelT:
        try:
            return self._model.model_validate_json(bytes(data))
        except Exception as exc:  # pydantic's ValidationError, a ValueError
            raise DecodeError(
                f"stored value does not validate as {self._model.__name__}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"PydanticCodec({self._model.__name__})"


class PickleCodec:
    """Any picklable Python object. Opt-in only: decoding runs code.

    Unpickling executes whatever the writer of the bytes chose, so use this
    only when every process that can write to the bucket is trusted as much
    as the reader. Constructing one emits :class:`UnsafeCodecWarning`
    (silence it with ``warnings.filterwarnings("ignore",
    category=UnsafeCodecWarning)`` once you have made that decision). Pickles
    are Python-only: Rust workers cannot read them.
    """

    def __init__(self, *, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        warnings.warn(
            "PickleCodec: unpickling a value from a shared bucket runs code chosen by "
            "whoever wrote it; use it only if every writer is trusted",
            UnsafeCodecWarning,
            stacklevel=2,
        )
        self._protocol = protocol

    def encode(self, value: Any, /) -> bytes:
        try:
            return pickle.dumps(value, protocol=self._protocol)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise EncodeError(f"value is not picklable: {exc}") from exc

    def decode(self, data: bytes, /) -> Any:
        try:
            return pickle.loads(bytes(data))
        except Exception as exc:
            # A corrupt or foreign pickle can fail with almost any exception.
            raise DecodeError(
                f"stored value could not be unpickled: {type(exc).__name__}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"PickleCodec(protocol={self._protocol})"
