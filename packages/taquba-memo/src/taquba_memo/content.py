"""Content-addressed memo keys: a key derived from the input value itself.

``content_key(value)`` is the lowercase hex SHA-256 of ``canonical_json(value)``,
so equal inputs give equal keys in every process, on every machine, and in any
language that reproduces the encoding below. ``Memo.content_get`` and
``Memo.content_put`` use it to memoize by input (for example the exact
prompt and parameters of a model call) instead of by a hand-made key.

The canonical encoding is JSON with:

* object keys sorted by Unicode code point, no whitespace at all, UTF-8 text
  with non-ASCII characters written as themselves (``"é"``, not ``"\\u00e9"``);
  only ``"``, ``\\`` and control characters are escaped, as :func:`json.dumps` does;
* ``None``, ``bool``, ``int``, ``str``, ``float``, lists and tuples (both
  become JSON arrays), and dicts whose keys are ``str``.

Which inputs are deterministic:

* ``None``, bools, ints (up to Python's int-to-str digit limit), strings,
  and lists/tuples/dicts of those are exact: the key depends only on the
  value. ``True`` and ``1`` differ. Dict insertion order does not matter;
  list order does.
* Finite floats are written in Python's shortest round-trip form
  (``repr``: ``0.1``, ``1e+16``), which is the same on every platform, but
  ``1`` and ``1.0`` give different keys, as do ``0.0`` and ``-0.0``, and
  another language's float formatting may differ. Prefer ints or strings in
  keys you share with non-Python workers. NaN and infinities are refused.
* Anything else is refused with :class:`~taquba_memo.EncodeError`: sets
  (no defined order), bytes (no JSON form), dicts with non-str keys (``1``
  and ``"1"`` would collide), and arbitrary objects (their ``repr`` or
  ``__dict__`` is not a stable identity). Convert such values explicitly
  first, for example ``sorted(a_set)`` or ``data.hex()``.
"""

from __future__ import annotations

import hashlib
import json
import math

from taquba_memo.errors import EncodeError

__all__ = ["canonical_json", "content_key"]

# Deeper inputs are refused rather than risking a RecursionError mid-walk.
MAX_DEPTH = 500


def canonical_json(value: object) -> bytes:
    """Return the canonical JSON encoding of ``value`` (see the module docs).

    Raises :class:`~taquba_memo.EncodeError` for a value without a canonical
    encoding; the message names where in the value it was found.
    """
    _check(value, "$", 0, set())
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(
            f"a string holds a lone surrogate, which UTF-8 cannot encode: {exc}"
        ) from None
    except ValueError as exc:
        # An int past sys.get_int_max_str_digits() cannot be written in decimal.
        raise EncodeError(f"value has no canonical encoding: {exc}") from None


def content_key(value: object) -> str:
    """Return the lowercase hex SHA-256 of ``canonical_json(value)``.

    >>> content_key({"b": [1, 2], "a": "x"}) == content_key({"a": "x", "b": [1, 2]})
    True
    """
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _check(value: object, where: str, depth: int, containers: set[int]) -> None:
    if depth > MAX_DEPTH:
        raise EncodeError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"{where}: {value!r} has no JSON form")
        return
    if isinstance(value, (list, tuple, dict)):
        if id(value) in containers:
            raise EncodeError(f"{where}: the value contains itself")
        containers.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise EncodeError(f"{where}: dict key {key!r} is {type(key).__name__}, not str")
                _check(item, f"{where}[{key!r}]", depth + 1, containers)
        else:
            for index, item in enumerate(value):
                _check(item, f"{where}[{index}]", depth + 1, containers)
        containers.discard(id(value))
        return
    hint = " (sort it into a list first)" if isinstance(value, (set, frozenset)) else ""
    raise EncodeError(
        f"{where}: {type(value).__name__} has no canonical encoding{hint}; "
        "use None, bool, int, float, str, list, tuple or dict with str keys"
    )
