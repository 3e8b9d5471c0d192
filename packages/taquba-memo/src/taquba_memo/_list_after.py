"""What every ``list_after`` shares: the start key's check, and the strict "after" of a key."""

from __future__ import annotations

from taquba_memo.errors import InvalidKeyError, InvalidValueTypeError

__all__ = ["check_start_after", "is_after"]


def check_start_after(start_after: object) -> str:
    """Refuse a ``start_after`` that is not a str, or not valid Unicode text, before any I/O.

    Any other str is accepted, inside the listed prefix or not: keys are
    compared with it as UTF-8 bytes, and keys outside the prefix are never
    yielded whatever it is (S3's ``StartAfter`` takes any key too).
    """
    if not isinstance(start_after, str):
        raise InvalidValueTypeError(f"start_after must be str, not {type(start_after).__name__}")
    try:
        start_after.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(
            f"start_after {start_after!r} is not valid Unicode text, so it has no UTF-8 order"
        ) from None
    return start_after


def is_after(key: str, start_after: str) -> bool:
    """Whether ``key`` comes strictly after ``start_after`` in UTF-8 byte order.

    Python orders str by code point, which is UTF-8 byte order for valid
    text. An adapter whose store starts a listing at a key inclusively (GCS's
    ``startOffset``), or at a lower bound of it, drops what this refuses.
    """
    return key > start_after
