"""A loopback proxy in front of the S3 server (moto): records requests, injects faults.

Every request is forwarded to the real server unchanged, unless a rule says
otherwise. The rules provoke, end to end over HTTP, what moto cannot be asked
to do:

* :meth:`S3Proxy.fail_next` answers the next matching requests with an S3
  error (``503 SlowDown``, ``409 ConditionalRequestConflict`` ...);
* :meth:`S3Proxy.drop_next` closes the connection without an answer;
* :meth:`S3Proxy.stall_next` waits before forwarding (to meet a read timeout).

(Undeletable keys and access denials need no proxy: moto enforces bucket
policies, so the tests use those.)

It records each request (method, decoded path, query, headers, and the body
of POSTs), and the most requests it ever had in flight at once, so tests can
count pages, batches and retries, see the headers the SDK really sent, and
check the adapter's concurrency bound.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = ["Fault", "S3Proxy", "SeenRequest"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


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


@dataclass
class S3Proxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); start with :meth:`start`."""

    upstream: str
    seen: list[SeenRequest] = field(default_factory=list)
    peak_in_flight: int = 0
    _in_flight: int = 0
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def host_port(self) -> str:
        assert self._server is not None, "start() the proxy first"
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

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
        with self._lock:
            self._faults.clear()

    def forget(self) -> None:
        """Drop the record of requests seen so far."""
        with self._lock:
            self.seen.clear()
            self.peak_in_flight = self._in_flight

    def requests(self, method: str | None = None) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.seen if method is None or r.method == method]

    def listings(self) -> list[SeenRequest]:
        return [r for r in self.requests("GET") if r.is_listing]

    def batch_deletes(self) -> list[SeenRequest]:
        return [r for r in self.requests("POST") if r.is_batch_delete]

    # -- serving -------------------------------------------------------------

    def start(self) -> S3Proxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pool expects

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _handle(self) -> None:
                body = self._read_body()
                with proxy._lock:
                    proxy._in_flight += 1
                    proxy.peak_in_flight = max(proxy.peak_in_flight, proxy._in_flight)
                try:
                    self._serve(body)
                finally:
                    with proxy._lock:
                        proxy._in_flight -= 1

            def _serve(self, body: bytes) -> None:
                parts = urlsplit(self.path)
                seen = SeenRequest(
                    self.command,
                    unquote(parts.path),
                    parse_qs(parts.query, keep_blank_values=True),
                    {name.lower(): value for name, value in self.headers.items()},
                    body if self.command == "POST" else b"",
                )
                with proxy._lock:
                    proxy.seen.append(seen)
                fault = proxy._take_fault(seen)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault is not None and fault.kind == "answer":
                    self._reply(fault.status, _error_xml(fault.code, seen.path), _XML)
                    return
                if fault is not None and fault.kind == "stall":
                    time.sleep(fault.seconds)
                status, reply_headers, reply = proxy._forward(
                    self.command, self.path, dict(self.headers.items()), body
                )
                self._reply(status, reply, reply_headers)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def _read_body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "host":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a read timeout)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- internals -----------------------------------------------------------

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _take_fault(self, seen: SeenRequest) -> Fault | None:
        with self._lock:
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

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        upstream = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(upstream.netloc, timeout=120)
        try:
            # The Host header stays the proxy's: it is part of what the SDK signed.
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(method, path, body=body if body else None, headers=forwarded)
            response = connection.getresponse()
            reply = response.read()
            return response.status, dict(response.getheaders()), reply
        finally:
            connection.close()


_XML = {"Content-Type": "application/xml"}


def _error_xml(code: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{escape(code)}</Code><Message>injected by the test proxy</Message>"
        f"<Resource>{escape(quote(resource))}</Resource><RequestId>proxy</RequestId></Error>"
    ).encode()


class _QuietServer(ThreadingHTTPServer):
    """No tracebacks on stderr for connections the SDK or a fault closes."""

    def handle_error(self, request: object, client_address: object) -> None:
        return None
