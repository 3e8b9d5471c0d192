"""Closing and AsyncClosing: bases of objects a ``with`` / ``async with`` block closes."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["AsyncClosing", "Closing"]

_ClosingT = TypeVar("_ClosingT", bound="Closing")
_AsyncClosingT = TypeVar("_AsyncClosingT", bound="AsyncClosing")


class Closing:
    """``with obj:`` returns ``obj`` and calls ``obj.close()`` on the way out, raised or not."""

    __slots__ = ()

    def close(self) -> None:
        """Release what the object holds; subclasses override it."""

    def __enter__(self: _ClosingT) -> _ClosingT:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClosing:
    """``async with obj:`` returns ``obj`` and awaits ``obj.aclose()`` on the way out."""

    __slots__ = ()

    async def aclose(self) -> None:
        """Release what the object holds; subclasses override it."""

    async def __aenter__(self: _AsyncClosingT) -> _AsyncClosingT:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
