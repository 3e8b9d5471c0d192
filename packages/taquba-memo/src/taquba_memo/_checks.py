"""Input checks a backend makes before any I/O: str keys, bytes-like values, names, endpoints."""

from __future__ import annotations

import re
import urllib.parse

from taquba_memo.errors import InvalidConfigurationError, InvalidKeyError, InvalidValueType

__all__ = ["check_endpoint_url", "check_key", "check_value", "object_name"]


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


# A DNS name or IPv4 address, or an IPv6 address (urlsplit drops its brackets).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def check_endpoint_url(
    endpoint: object, *, what: str, http_allowed: bool = True, http_fix: str = ""
) -> urllib.parse.SplitResult:
    """``endpoint`` split, if it is an ``http(s)://`` URL with a host and a valid port.

    Otherwise raises :class:`~taquba_memo.InvalidConfigurationError` naming the
    fix, before any I/O. ``what`` names the setting in the message;
    ``http_allowed=False`` also refuses a plain ``http://`` endpoint, with
    ``http_fix`` saying how to allow it.
    """
    if not isinstance(endpoint, str):
        raise InvalidConfigurationError(f"{what} must be str, not {type(endpoint).__name__}")
    parts = urllib.parse.urlsplit(endpoint)
    shown = parts._replace(query="", fragment="", netloc=parts.netloc.rpartition("@")[2]).geturl()
    try:
        port_ok = parts.port != 0
    except ValueError:  # not a number, or out of range
        port_ok = False
    host_ok = bool(parts.hostname) and _HOST.fullmatch(parts.hostname or "") is not None
    if parts.scheme not in ("http", "https") or not host_ok or not port_ok:
        raise InvalidConfigurationError(
            f"{what} {shown!r} is not an http:// or https:// URL with a host; "
            "write it as https://HOST[:PORT] (or http://127.0.0.1:PORT for a local server)"
        )
    if parts.scheme == "http" and not http_allowed:
        raise InvalidConfigurationError(
            f"{what} {shown!r} is plain http://: {http_fix or 'use https://'}"
        )
    return parts
