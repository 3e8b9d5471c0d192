"""The warning for a store that holds nothing under the prefix: a typo in --url or --prefix?"""

from __future__ import annotations

from taquba_memo import _layout as layout
from taquba_memo._redact import redact_url
from taquba_memo._store import MemoStore
from taquba_memo.cli._output import Output

__all__ = ["warn_if_empty"]


async def warn_if_empty(store: MemoStore, url: str, out: Output) -> None:
    """Warn when the prefix holds no memo and no marker at all: a typo in --url or --prefix?"""
    for prefix in (layout.memos_prefix(store.prefix), layout.terminals_prefix(store.prefix)):
        async for _key in store.backend.list(prefix):
            return
    out.warn(
        f"{redact_url(url)} holds no memo entry and no terminal marker under prefix "
        f"{store.prefix!r}: check --url and --prefix"
    )
