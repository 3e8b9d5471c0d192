"""MessagePack as rmp-serde 1.3 writes it: the content keys of taquba-workflow 0.6 to 0.10.

The crate derives a content key as ``"content:" + hex(sha256(rmp_serde::to_vec_named(input)))``.
To land on the same object, a Python worker must produce the same bytes, so this
encoder follows rmp-serde's ``Serializer`` (with ``to_vec_named``'s struct-as-map
configuration and the default ``BytesMode::Normal``), not MessagePack in general:

* ``None`` is nil (``Option::None`` and ``()``), ``True``/``False`` are the bool markers;
* an int takes the smallest form that holds it (``rmp::encode::write_sint`` and
  ``write_uint`` agree on every non-negative value, so a Rust ``u8`` and ``i64``
  holding 5 give the same byte); ints outside ``i64::MIN..=u64::MAX`` are refused;
* a float is a float64, as a Rust ``f64`` (an ``f32`` field has no Python spelling,
  so it is not offered); NaN is refused, having many bit patterns;
* a str is fixstr, str8, str16 or str32 by its UTF-8 length; lone surrogates are refused;
* a list or tuple is an array (a Rust ``Vec``, slice, tuple or fixed array);
* a dict is a map in insertion order, with str or int keys; a dataclass instance is a
  map of its fields in declaration order, as ``#[derive(Serialize)]`` writes a struct;
* a Rust ``Vec<u8>`` or ``&[u8]`` field is an *array of ints* (serde's default), so
  pass ``list(data)``; only a field marked ``#[serde(with = "serde_bytes")]`` is a
  MessagePack bin, spelled :class:`SerdeBytes` here. Plain ``bytes`` are refused,
  because they could mean either and the two give different keys.

Sets, enums and other objects have no single encoding and are refused with
:class:`~taquba_memo.EncodeError` naming where in the value they were found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import struct

from taquba_memo.errors import EncodeError

__all__ = ["SerdeBytes", "rmp_serde_named", "rust_content_key"]

# Deeper inputs are refused rather than risking a RecursionError mid-walk.
MAX_DEPTH = 500
_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class SerdeBytes:
    """Bytes that the Rust side serializes as a MessagePack bin (``serde_bytes``)."""

    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            raise EncodeError(f"SerdeBytes holds bytes, not {type(self.data).__name__}")


def rust_content_key(value: object) -> str:
    """The crate's content key: ``"content:"`` and the hex SHA-256 of the MessagePack."""
    return "content:" + hashlib.sha256(rmp_serde_named(value)).hexdigest()


def rmp_serde_named(value: object) -> bytes:
    """The bytes ``rmp_serde::to_vec_named`` writes for the Rust value ``value`` stands for."""
    out = bytearray()
    _write(value, out, "$", 0, set())
    return bytes(out)


def _length(out: bytearray, length: int, fix_base: int, fix_limit: int, markers: bytes) -> None:
    # markers: the 8-bit (or none, 0), 16-bit and 32-bit length markers of one family.
    if length < fix_limit:
        out.append(fix_base | length)
    elif length < 256 and markers[0]:
        out += bytes((markers[0], length))
    elif length < 65536:
        out.append(markers[1])
        out += length.to_bytes(2, "big")
    elif length < 2**32:
        out.append(markers[2])
        out += length.to_bytes(4, "big")
    else:
        raise EncodeError(f"a length of {length} does not fit MessagePack's 32 bits")


def _int(out: bytearray, number: int, where: str) -> None:
    if not _I64_MIN <= number <= _U64_MAX:
        raise EncodeError(
            f"{where}: {number} is outside i64::MIN..=u64::MAX, which rmp-serde can write"
        )
    if 0 <= number < 128:
        out.append(number)
    elif -32 <= number < 0:
        out.append(number & 0xFF)
    elif number >= 0:
        for marker, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
            if number < 1 << (8 * size):
                out.append(marker)
                out += number.to_bytes(size, "big")
                return
    else:
        for marker, size in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            if number >= -(1 << (8 * size - 1)):
                out.append(marker)
                out += number.to_bytes(size, "big", signed=True)
                return


def _str(out: bytearray, text: str, where: str) -> None:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(
            f"{where}: a string holds a lone surrogate, which UTF-8 cannot encode: {exc}"
        ) from None
    _length(out, len(data), 0xA0, 32, b"\xd9\xda\xdb")
    out += data


def _write(value: object, out: bytearray, where: str, depth: int, containers: set[int]) -> None:
    if depth > MAX_DEPTH:
        raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        _int(out, value, where)
    elif isinstance(value, float):
        if math.isnan(value):
            raise EncodeError(f"{where}: NaN has many float64 bit patterns, so no single key")
        out.append(0xCB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        _str(out, value, where)
    elif isinstance(value, SerdeBytes):
        _length(out, len(value.data), 0, 0, b"\xc4\xc5\xc6")
        out += value.data
    elif isinstance(value, (list, tuple, dict)) or _is_struct(value):
        if id(value) in containers:
            raise EncodeError(f"{where}: the value contains itself")
        containers.add(id(value))
        if isinstance(value, (list, tuple)):
            _length(out, len(value), 0x90, 16, b"\x00\xdc\xdd")
            for index, item in enumerate(value):
                _write(item, out, f"{where}[{index}]", depth + 1, containers)
        else:
            items = value if isinstance(value, dict) else _fields(value)
            _length(out, len(items), 0x80, 16, b"\x00\xde\xdf")
            for key, item in items.items():
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise EncodeError(
                        f"{where}: dict key {key!r} is {type(key).__name__}, not str or int"
                    )
                _write(key, out, f"{where} key {key!r}", depth + 1, containers)
                _write(item, out, f"{where}[{key!r}]", depth + 1, containers)
        containers.discard(id(value))
    else:
        raise EncodeError(f"{where}: {_refusal(value)}")


def _is_struct(value: object) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _fields(value: object) -> dict[str, object]:
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}  # type: ignore[arg-type]


def _refusal(value: object) -> str:
    kind = type(value).__name__
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (
            f"{kind} is ambiguous: a Rust Vec<u8> or &[u8] is an array of ints (pass list(data)), "
            "a serde_bytes field is a bin (pass SerdeBytes(data))"
        )
    if isinstance(value, (set, frozenset)):
        return f"{kind} has no order, so no single encoding (sort it into a list first)"
    return (
        f"{kind} has no rmp-serde encoding here; use None, bool, int, float, str, list, "
        "tuple, dict, a dataclass or SerdeBytes"
    )
