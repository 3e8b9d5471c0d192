"""The object layout a command reads: ``--layout``, ``$TAQUBA_MEMO_LAYOUT``, or the markers'.

Without either, the terminal marker names decide (:func:`detect_marker_layout`):
a prefix whose markers are all ``"0.10"`` (inverted) is read as ``"0.10"``, one
with none or only ``"0.5"`` markers as ``"0.5"``, and one holding both is
refused, naming ``--layout``, rather than reading half its markers as dates
tens of thousands of years away. Detection reads the wrapped backend, not the
counted one, so a command's progress counts only its own work. Its cost: on an
ordered listing whose first marker is ``"0.10"``, one page; whose first is
``"0.5"``, one page more through ``list_after`` where offered, else the
markers are listed until a ``"0.10"`` one appears (all of them on a pure
``"0.5"`` prefix, as on an unordered listing).
"""

from __future__ import annotations

from taquba_memo import _layout as layout
from taquba_memo.backend import ListsAfter, MemoBackend, offers
from taquba_memo.cli._parser import LAYOUT_VARIABLE
from taquba_memo.errors import UsageError

__all__ = ["choose_layout"]


async def choose_layout(backend: MemoBackend, prefix: str, chosen: str | None) -> str:
    """``chosen`` if given, else the layout the markers under ``prefix`` are written in."""
    if chosen is not None:
        return layout.validate_layout(chosen).value
    terminals = layout.terminals_prefix(prefix)
    seen: dict[layout.Layout, str] = {}
    listing = backend.list(terminals)
    async for key in listing:
        written_in = layout.detect_marker_layout(key[len(terminals) :])
        if written_in is None:
            continue
        seen.setdefault(written_in, key)
        if len(seen) == len(layout.Layout):
            break
        if backend.capabilities.ordered_listing:
            # "0.5" names (00000...) sort before inverted ones (18446...): the first
            # name decides, and only a "0.5" one can have "0.10" names after it.
            if written_in is layout.Layout.V0_10:
                break
            if offers(backend, ListsAfter):
                assert isinstance(backend, ListsAfter)
                listing = backend.list_after(terminals, terminals + "1")
                async for later in listing:
                    if layout.detect_marker_layout(later[len(terminals) :]) is not None:
                        seen.setdefault(layout.Layout.V0_10, later)
                        break
                break
    if len(seen) == len(layout.Layout):
        examples = ", ".join(f"{key} ({found.value})" for found, key in seen.items())
        raise UsageError(
            f"prefix {prefix!r} holds terminal markers of both layouts 0.5 and 0.10 "
            f"(for example {examples}); choose the one to read and sweep with "
            f"--layout 0.5 or --layout 0.10 (or ${LAYOUT_VARIABLE})"
        )
    if seen:
        return next(iter(seen)).value
    return layout.DEFAULT_LAYOUT.value
