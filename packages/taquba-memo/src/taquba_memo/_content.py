"""Content-addressed memo keys: a key derived from the input value itself.

``content_key(value)`` is the lowercase hex SHA-256 of ``canonical_json(value)``,
so equal inputs give equal keys in every process, on every machine, and in any
language with an RFC 8785 implementation. ``Memo.content_get`` and
``Memo.content_put`` use it to memoize by input (for example the exact prompt
and parameters of a model call) instead of by a hand-made key.

``canonical_json`` is the JSON Canonicalization Scheme (RFC 8785, JCS):

* object members sorted by their names as UTF-16 code units (so ``"\\U0001F600"``,
  a surrogate pair, sorts before ``"\\uFB33"``), no whitespace at all, UTF-8;
* strings as ECMAScript's ``JSON.stringify`` writes them: only ``"``, ``\\``
  and control characters are escaped (``\\b \\t \\n \\f \\r``, the rest as
  ``\\u00xx``); everything else, non-ASCII included, is written as itself;
* numbers as ECMAScript writes a double: the shortest form that round-trips,
  ``1e+21`` and up and below ``1e-6`` with an exponent, ``-0`` as ``0``.
  So ``1``, ``1.0`` and ``1e0`` are one number and give one key, as in every
  other JCS implementation;
* ``None``, ``bool``, ``int``, ``float``, ``str``, lists and tuples (both
  become arrays) and dicts whose keys are ``str``.

What is refused, with :class:`~taquba_memo.EncodeError` naming where:

* ints a double cannot hold exactly (beyond ``2**53`` unless the double is
  exact, such as ``2**60``): JCS numbers are doubles, so another language
  would read such an int as a neighbouring value and two different inputs
  would share a key. Pass big ints as strings (``str(n)``);
* NaN and infinities (not JSON); strings with lone surrogates (not Unicode);
* sets (no defined order), bytes (no JSON form), dicts with non-str keys
  (``1`` and ``"1"`` would collide) and arbitrary objects (their ``repr`` or
  ``__dict__`` is not a stable identity). Convert them explicitly first, for
  example ``sorted(a_set)`` or ``data.hex()``.

``content_key(value, namespace="summarize/v2")`` hashes the namespace's
UTF-8 bytes, one zero byte, then the canonical JSON: bump the namespace when
a step's post-processing changes and old entries are no longer the right
shape. Without a namespace the key is the plain hash of the canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from decimal import Decimal

from taquba_memo._messagepack import rust_content_key
from taquba_memo.errors import EncodeError, InvalidArgumentError, InvalidValueTypeError

__all__ = ["canonical_json", "content_key", "store_content_key"]

# Deeper inputs are refused rather than risking a RecursionError mid-walk.
MAX_DEPTH = 500


def store_content_key(layout: str, value: object, namespace: str | None) -> str:
    """The user key ``Memo.content_get``/``content_put`` use in a store of ``layout``.

    Layout ``"0.5"``: :func:`content_key`. Layout ``"0.10"``: the crate's
    ``"content:" + hex sha256(rmp_serde::to_vec_named(value))``, which has no
    namespace, so ``namespace`` is refused there (put the operation's name in
    the input instead, as the crate advises).
    """
    if layout != "0.10":
        return content_key(value, namespace=namespace)
    if namespace is not None:
        raise InvalidArgumentError(
            "a store of layout '0.10' derives content keys as taquba-workflow does, without a "
            "namespace; put the namespace in the input instead (for example a field 'operation')"
        )
    return rust_content_key(value)


def canonical_json(value: object) -> bytes:
    """Return the RFC 8785 canonical JSON encoding of ``value`` (see the module docs).

    Raises :class:`~taquba_memo.EncodeError` for a value without a canonical
    encoding; the message names where in the value it was found.
    """
    return canonical_json_converting(value, None)


#: Turns a value content_key refuses into plain data (``where`` names it for errors),
#: or returns :data:`NOT_CONVERTED`.
Converter = Callable[[object, str], object]

NOT_CONVERTED = object()
"""What a :data:`Converter` returns for a value it leaves to content_key's rules."""


def canonical_json_converting(value: object, convert: Converter | None) -> bytes:
    """:func:`canonical_json`, where ``convert`` first turns each value at any depth that
    has no canonical encoding into plain data (see :mod:`taquba_memo._request_key`)."""
    parts: list[str] = []
    _write(value, parts, "$", 0, set(), convert)
    return "".join(parts).encode("utf-8")


def content_key(value: object, *, namespace: str | None = None) -> str:
    """Return the lowercase hex SHA-256 of ``canonical_json(value)``.

    With ``namespace`` (a non-empty str without NUL characters), the hash is
    of ``namespace`` in UTF-8, a zero byte, then the canonical JSON.

    >>> content_key({"b": [1, 2], "a": "x"}) == content_key({"a": "x", "b": [1, 2]})
    True
    """
    return key_of(value, namespace, None)


def key_of(value: object, namespace: str | None, convert: Converter | None) -> str:
    """:func:`content_key`, converting with ``convert`` (see :func:`canonical_json_converting`)."""
    digest = hashlib.sha256()
    if namespace is not None:
        digest.update(_namespace_bytes(namespace) + b"\x00")
    digest.update(canonical_json_converting(value, convert))
    return digest.hexdigest()


def _namespace_bytes(namespace: object) -> bytes:
    if not isinstance(namespace, str):
        raise InvalidValueTypeError(f"namespace must be str, not {type(namespace).__name__}")
    if not namespace or "\x00" in namespace:
        raise InvalidArgumentError("namespace must be a non-empty str without NUL characters")
    try:
        return namespace.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError("namespace holds a lone surrogate") from None


def ecmascript_number(number: float) -> str:
    """Write a finite double the way ECMAScript's ``Number.prototype.toString`` does."""
    if number == 0:
        return "0"  # -0 too
    sign = "-" if number < 0 else ""
    # repr is the shortest round-trip form; Decimal splits it into digits and exponent.
    decimal = Decimal(repr(abs(number)))
    _, digit_tuple, exponent = decimal.normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + int(exponent)  # the value is 0.<digits> * 10**n (a finite Decimal's exponent)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def _string(text: str, where: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(
            f"{where}: a string holds a lone surrogate, which UTF-8 cannot encode: {exc}"
        ) from None
    # json.dumps escapes exactly what JSON.stringify does, with lowercase hex.
    return json.dumps(text, ensure_ascii=False)


def _utf16_order(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare like the sequence of UTF-16 code units.
    return name.encode("utf-16-be", "surrogatepass")


def _write(
    value: object,
    parts: list[str],
    where: str,
    depth: int,
    containers: set[int],
    convert: Converter | None,
) -> None:
    if depth > MAX_DEPTH:
        raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        try:
            as_double = float(value)
        except OverflowError:
            as_double = math.inf
        if as_double != value:
            raise EncodeError(
                f"{where}: an int of {value.bit_length()} bits has no exact double form, "
                "which RFC 8785 numbers are; pass it as a string (str(n))"
            )
        parts.append(ecmascript_number(as_double))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"{where}: {value!r} has no JSON form")
        parts.append(ecmascript_number(value))
    elif isinstance(value, str):
        parts.append(_string(value, where))
    elif isinstance(value, (list, tuple, dict)):
        if id(value) in containers:
            raise EncodeError(f"{where}: the value contains itself")
        containers.add(id(value))
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise EncodeError(f"{where}: dict key {key!r} is {type(key).__name__}, not str")
            parts.append("{")
            for index, key in enumerate(sorted(value, key=_utf16_order)):
                if index:
                    parts.append(",")
                parts.append(_string(key, f"{where} key {key!r}"))
                parts.append(":")
                _write(value[key], parts, f"{where}[{key!r}]", depth + 1, containers, convert)
            parts.append("}")
        else:
            parts.append("[")
            for index, item in enumerate(value):
                if index:
                    parts.append(",")
                _write(item, parts, f"{where}[{index}]", depth + 1, containers, convert)
            parts.append("]")
        containers.discard(id(value))
    elif convert is not None and (plain := convert(value, where)) is not NOT_CONVERTED:
        _write(plain, parts, where, depth + 1, containers, convert)
    else:
        hint = " (sort it into a list first)" if isinstance(value, (set, frozenset)) else ""
        raise EncodeError(
            f"{where}: {type(value).__name__} has no canonical encoding{hint}; "
            "use None, bool, int, float, str, list, tuple or dict with str keys"
        )
