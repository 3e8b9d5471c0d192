"""Input checks a backend makes before any I/O: keys, values, names, paths, flags, endpoints."""

from __future__ import annotations

import re
import urllib.parse

from taquba_memo.errors import (
    InvalidConfigurationError,
    InvalidKeyError,
    InvalidURLError,
    InvalidValueTypeError,
)

__all__ = [
    "FALSE_WORDS",
    "TRUE_WORDS",
    "check_endpoint_url",
    "check_flag",
    "check_key",
    "check_value",
    "is_staging_name",
    "normalize_base_path",
    "object_name",
    "parse_flag",
]

TRUE_WORDS = ("1", "true", "yes", "on")
"""What :func:`parse_flag` reads as true, in any case."""

FALSE_WORDS = ("0", "false", "no", "off")
"""What :func:`parse_flag` reads as false, in any case."""


def check_key(key: object) -> str:
    """Refuse a non-str key before it reaches storage."""
    if not isinstance(key, str):
        raise InvalidValueTypeError(f"key must be str, not {type(key).__name__}")
    return key


def check_flag(value: object, name: str) -> bool:
    """Refuse a flag that is not a bool: ``if_absent="no"`` must not act as True."""
    if not isinstance(value, bool):
        raise InvalidValueTypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def check_value(value: object) -> bytes:
    """Refuse a value that is not bytes-like (a str is never encoded silently)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidValueTypeError(f"value must be bytes-like, not {type(value).__name__}")


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
    if _has_control_character(key):
        raise InvalidKeyError(f"key {key!r} contains a control character")
    name = name_prefix + key
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKeyError(f"key {key!r} is not valid Unicode text") from None
    if size > max_bytes:
        raise InvalidKeyError(f"key {key!r} makes an object name over {max_bytes} bytes")
    return name


def _has_control_character(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


def normalize_base_path(base_path: object) -> str:
    """``base_path`` with empty segments dropped, as a store prefix is: ``"/a//b/"`` is ``"a/b"``.

    Refused with :class:`InvalidKeyError`, as in a key: a ``.`` or ``..``
    segment, or a control character; with :class:`InvalidValueTypeError`:
    anything but a str.
    """
    if not isinstance(base_path, str):
        raise InvalidValueTypeError(f"base_path must be str, not {type(base_path).__name__}")
    segments = [segment for segment in base_path.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise InvalidKeyError(f"base path {base_path!r} has a '.' or '..' segment")
    if _has_control_character(base_path):
        raise InvalidKeyError(f"base path {base_path!r} contains a control character")
    return "/".join(segments)


class UnderBasePath:
    """Base class of an adapter whose object names live below a base path.

    ``_use_base_path(base_path)`` normalises it once (see
    :func:`normalize_base_path`); then :attr:`base_path` gives it back and
    ``_name_prefix`` is what every object name starts with (``"a/b/"``, or
    ``""`` for the root).
    """

    _base_path: str
    _name_prefix: str

    def _use_base_path(self, base_path: object) -> None:
        self._base_path = normalize_base_path(base_path)
        self._name_prefix = f"{self._base_path}/" if self._base_path else ""

    @property
    def base_path(self) -> str:
        """The normalised base path: ``"/a//b/"`` is ``"a/b"``, and ``""`` is the root."""
        return self._base_path


def is_staging_name(name: str) -> bool:
    """Whether ``name`` ends in ``#<digits>``, as the staging files of object_store's
    LocalStore and of :class:`~taquba_memo.LocalFileBackend` do (``<name>#<digits>``)."""
    _, hash_sign, suffix = name.rpartition("#")
    return bool(hash_sign) and suffix.isascii() and suffix.isdigit()


def parse_flag(value: str, *, name: str) -> bool:
    """A URL's true/false parameter: :data:`TRUE_WORDS` or :data:`FALSE_WORDS`, in any case.

    Anything else raises :class:`~taquba_memo.InvalidURLError` naming ``name``.
    """
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidURLError(
        f"{name} must be true or false ({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}), "
        f"not {value!r}"
    )


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
    if "@" in parts.netloc:
        raise InvalidConfigurationError(
            f"{what} {shown!r} carries user info (user:password@): an endpoint never holds "
            "credentials; pass them through the backend's credential settings"
        )
    if parts.scheme == "http" and not http_allowed:
        raise InvalidConfigurationError(
            f"{what} {shown!r} is plain http://: {http_fix or 'use https://'}"
        )
    return parts
