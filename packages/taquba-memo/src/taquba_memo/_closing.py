"""Closing: the base class of objects a ``with`` block closes, by calling their ``close()``."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["Closing"]

_ClosingT = TypeVar("_ClosingT", bound="Closing")


class Closing:
    """``with obj:`` returns ``obj`` and calls ``obj.close()`` on the way out, raised or not."""

    __slots__ = ()

    def close(self) -> None:
        """Release what the object holds; subclasses override it."""

    def __enter__(self: _ClosingT) -> _ClosingT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
