"""Input checks a backend makes before any I/O: str keys, bytes-like values, object names."""

from __future__ import annotations

from taquba_memo.errors import InvalidKeyError, InvalidValueType

__all__ = ["check_key", "check_value", "object_name"]


def check_key(key: object) -> str:
    """Refuse a non-str key before it reaches storage."""
    if not isinstance(key, str):
        raise InvalidValueType(f"key must be str, not {type(key).__name__}")
    return key


def check_value(value: object) -> bytes:
    """Refuse a value that is not bytes-like (a str is never encoded silently)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidValueType(f"value must be bytes-like, not {type(value).__name__}")


def object_name(name_prefix: str, key: object, *, max_bytes: int = 1024) -> str:
    """Return ``name_prefix + key`` if ``key`` is a valid object key, else raise.

    Refused with :class:`InvalidKeyError`: an empty, ``.`` or ``..`` segment
    (stores and SDKs normalise them away, so two keys could name one object),
    a control character (S3's XML cannot carry one; GCS refuses line breaks),
    text that is not valid UTF-8, and a name over ``max_bytes`` bytes
    (S3 and GCS cap names at 1024).
    """
    key = check_key(key)
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise InvalidKeyError(f"key {key!r} has an empty, '.' or '..' segment")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise InvalidKeyError(f"key {key!r} contains a control character")
    name = name_prefix + key
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKeyError(f"key {key!r} is not valid Unicode text") from None
    if size > max_bytes:
        raise InvalidKeyError(f"key {key!r} makes an object name over {max_bytes} bytes")
    return name
