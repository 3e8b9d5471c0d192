"""An adapter under test: backends built directly or through the counting proxy."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from taquba_memo import MemoBackend
from taquba_memo_conformance.counting_proxy import CountingProxy, classify_request

__all__ = ["Adapter", "classify"]


def classify(method: str, target: str) -> str:
    kind = classify_request(method, target)
    if kind == "list" and "terminals" in urllib.parse.unquote(target):
        return "list-markers"
    return kind


@dataclass
class Adapter:
    name: str
    build: Callable[[str | None], MemoBackend]
    proxy: CountingProxy

    def direct(self) -> MemoBackend:
        return self.build(None)

    def counted(self) -> MemoBackend:
        return self.build(self.proxy.url)
