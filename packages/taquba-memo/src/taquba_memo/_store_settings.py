"""StoreSettings: the read-only settings a store shows, written once for its every face.

The async :class:`~taquba_memo.MemoStore` sets them when it is built; its
sync twin (:class:`taquba_memo.sync.MemoStore`) and the host of a sync
memo's ``aio`` view (:class:`~taquba_memo._aio.AioHost`) copy them from it,
since none of them changes after that.
"""

from __future__ import annotations

from taquba_memo._layout import Layout
from taquba_memo._stats import MemoStats
from taquba_memo._telemetry import StoreTelemetry

__all__ = ["StoreSettings"]


class StoreSettings:
    """The prefix, value bound, layout and stats of one store."""

    __slots__ = ("_layout", "_max_value_bytes", "_prefix", "_telemetry")

    _prefix: str
    _max_value_bytes: int | None
    _layout: Layout
    _telemetry: StoreTelemetry

    def _show_settings_of(self, store: StoreSettings) -> None:
        """Show ``store``'s settings (and share its stats and telemetry) as this object's own."""
        self._prefix = store._prefix
        self._max_value_bytes = store._max_value_bytes
        self._layout = store._layout
        self._telemetry = store._telemetry

    @property
    def prefix(self) -> str:
        """The normalised prefix (``"/a//b/"`` becomes ``"a/b"``)."""
        return self._prefix

    @property
    def max_value_bytes(self) -> int | None:
        """The largest value this store accepts, or None for no limit."""
        return self._max_value_bytes

    @property
    def layout(self) -> str:
        """The object layout, ``"0.5"`` or ``"0.10"`` (see the class docs)."""
        return self._layout.value

    @property
    def stats(self) -> MemoStats:
        """What this store did: hits, misses, computes, bytes, failures (:class:`MemoStats`)."""
        return self._telemetry.stats
