"""A loopback proxy in front of the S3 server (moto): records requests, injects faults.

It is the kit's :class:`~taquba_memo_conformance.proxies.CountingProxy` (the
``Host`` header and every signed header go upstream unchanged) with rules
that provoke, end to end over HTTP, what moto cannot be asked to do:

* :meth:`S3Proxy.fail_next` answers the next matching requests with an S3
  error (``503 SlowDown``, ``409 ConditionalRequestConflict`` ...);
* :meth:`S3Proxy.drop_next` closes the connection without an answer;
* :meth:`S3Proxy.stall_next` waits before forwarding (to meet a read timeout).

(Undeletable keys and access denials need no proxy: moto enforces bucket
policies, so the tests use those.)

It records each request (method, decoded path, query, headers, and the body
of POSTs), and the most requests it ever had waiting for an answer at once,
so tests can count pages, batches and retries, see the headers the SDK really
sent, and check the adapter's concurrency bound.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from taquba_memo_conformance.proxies import CountingProxy, DropConnection, Reply, RequestHead

__all__ = ["Fault", "S3Proxy", "SeenRequest"]


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str  # percent-decoded, with the bucket: /bucket/object/name
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes  # POST bodies only (DeleteObjects, CompleteMultipartUpload)

    @property
    def is_listing(self) -> bool:
        return self.method == "GET" and self.query.get("list-type") == ["2"]

    @property
    def is_batch_delete(self) -> bool:
        return self.method == "POST" and "delete" in self.query

    @property
    def is_multipart(self) -> bool:
        return "uploads" in self.query or "uploadId" in self.query


@dataclass
class Fault:
    kind: Literal["answer", "drop", "stall"]
    remaining: int
    method: str | None
    path_contains: str
    query_has: str | None
    status: int = 0
    code: str = ""
    seconds: float = 0.0


class S3Proxy(CountingProxy):
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); start with :meth:`start`."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.seen: list[SeenRequest] = []
        self.peak_in_flight = 0
        self._in_flight = 0
        self._faults: list[Fault] = []
        self._rules_lock = threading.Lock()

    # -- rules ---------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        code: str,
        *,
        times: int = 1,
        method: str | None = None,
        path_contains: str = "",
        query_has: str | None = None,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` and S3 error ``code``."""
        return self._add(Fault("answer", times, method, path_contains, query_has, status, code))

    def drop_next(
        self, *, times: int = 1, method: str | None = None, path_contains: str = ""
    ) -> Fault:
        """Close the connection of the next ``times`` matching requests without answering."""
        return self._add(Fault("drop", times, method, path_contains, None))

    def stall_next(
        self, seconds: float, *, times: int = 1, method: str | None = None, path_contains: str = ""
    ) -> Fault:
        """Wait ``seconds`` before forwarding the next ``times`` matching requests."""
        return self._add(Fault("stall", times, method, path_contains, None, seconds=seconds))

    def clear_faults(self) -> None:
        with self._rules_lock:
            self._faults.clear()

    def forget(self) -> None:
        """Drop the record of requests seen so far."""
        with self._rules_lock:
            self.seen.clear()
            self.peak_in_flight = self._in_flight

    def requests(self, method: str | None = None) -> list[SeenRequest]:
        with self._rules_lock:
            return [r for r in self.seen if method is None or r.method == method]

    def listings(self) -> list[SeenRequest]:
        return [r for r in self.requests("GET") if r.is_listing]

    def batch_deletes(self) -> list[SeenRequest]:
        return [r for r in self.requests("POST") if r.is_batch_delete]

    # -- the proxy's hooks ---------------------------------------------------

    def reads_body(self, request: RequestHead) -> bool:
        return request.method == "POST"

    async def intercept(self, request: RequestHead) -> Reply | None:
        parts = urlsplit(request.target)
        seen = SeenRequest(
            request.method,
            unquote(parts.path),
            parse_qs(parts.query, keep_blank_values=True),
            {name.lower(): value for name, value in request.headers},
            request.body or b"",
        )
        with self._rules_lock:
            self.seen.append(seen)
            fault = self._take_fault(seen)
            if fault is None or fault.kind == "stall":
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        if fault is not None and fault.kind == "drop":
            raise DropConnection
        if fault is not None and fault.kind == "answer":
            body = b"" if request.method == "HEAD" else _error_xml(fault.code, seen.path)
            return Reply(fault.status, body, [("Content-Type", "application/xml")])
        if fault is not None:
            await asyncio.sleep(fault.seconds)
        return None

    async def intercept_answer(self, request: RequestHead, status: int) -> None:
        with self._rules_lock:
            self._in_flight -= 1

    # -- internals -----------------------------------------------------------

    def _add(self, fault: Fault) -> Fault:
        with self._rules_lock:
            self._faults.append(fault)
        return fault

    def _take_fault(self, seen: SeenRequest) -> Fault | None:
        for fault in self._faults:
            if fault.method is not None and fault.method != seen.method:
                continue
            if fault.path_contains not in seen.path:
                continue
            if fault.query_has is not None and fault.query_has not in seen.query:
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            return fault
        return None


def _error_xml(code: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>injected by the test proxy</Message>"
        f"<Resource>{escape(quote(resource))}</Resource><RequestId>proxy</RequestId></Error>"
    ).encode()
