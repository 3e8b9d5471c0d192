"""Argument checks every integration makes before it wraps anything."""

from __future__ import annotations

from taquba_memo import ClaimPolicy, InvalidValueTypeError

__all__ = ["checked_claim"]


def checked_claim(claim: object) -> ClaimPolicy | None:
    """``claim`` itself when it is a :class:`~taquba_memo.ClaimPolicy` or None; else
    :class:`~taquba_memo.InvalidValueTypeError`, at construction, before any call pays."""
    if claim is not None and not isinstance(claim, ClaimPolicy):
        raise InvalidValueTypeError(f"claim must be a ClaimPolicy or None, not {claim!r}")
    return claim
