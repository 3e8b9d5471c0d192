"""An adapter under test: backends built directly or through the counting proxy."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from taquba_memo import MemoBackend
from taquba_memo_conformance.proxies import (
    CountingProxy,
    RequestCounts,
    RequestRecord,
    classify_request,
)

__all__ = ["Adapter", "Seen", "classify"]


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
    #: For the S3 adapters: "moto" or "rgw".
    s3_server: str = "moto"

    def direct(self) -> MemoBackend:
        return self.build(None)

    def counted(self) -> MemoBackend:
        return self.build(self.proxy.url)


class Seen:
    """The requests a proxy receives from now on.

    ``answered()`` counts by kind those the server answered below 500.
    moto answers 500 (a KeyError inside moto) to a listing that races a delete
    in the same bucket, and every client sends such a request again; counting
    answered requests keeps the count of what the adapter asked for.
    """

    def __init__(self, proxy: CountingProxy) -> None:
        self._proxy = proxy
        self._mark = proxy.mark()

    def records(self) -> list[RequestRecord]:
        return self._proxy.records_since(self._mark)

    def answered(self) -> dict[str, int]:
        return RequestCounts.of(
            record for record in self.records() if record.status is not None and record.status < 500
        ).by_kind

    def server_errors(self) -> list[RequestRecord]:
        return [
            record for record in self.records() if record.status is None or record.status >= 500
        ]
