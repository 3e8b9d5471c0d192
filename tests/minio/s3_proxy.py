"""A loopback proxy in front of the S3 server (moto): records requests, injects faults.

Every request is forwarded to the real server unchanged, unless a rule says
otherwise. The rules exist to provoke, end to end over HTTP, what moto cannot
be asked to do:

* :meth:`S3Proxy.fail_next` answers the next matching requests with an S3
  error (``503 SlowDown``, ``409 ConditionalRequestConflict`` ...);
* :meth:`S3Proxy.drop_next` closes the connection without an answer.

(Undeletable keys and access denials need no proxy: moto enforces bucket
policies, so the tests use those.)

It also records each request (method, path, query, headers), so tests can
count pages, batches and retries, and see the headers the SDK really sent.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = ["Fault", "S3Proxy", "SeenRequest"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}
_DROP = "drop-connection"


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str  # percent-decoded, with the bucket: /bucket/object/name
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased

    @property
    def is_listing(self) -> bool:
        return self.method == "GET" and self.query.get("list-type") == ["2"]

    @property
    def is_batch_delete(self) -> bool:
        return self.method == "POST" and "delete" in self.query


@dataclass
class Fault:
    status: int | str  # an HTTP status, or _DROP to close the connection unanswered
    code: str
    remaining: int
    method: str | None
    path_contains: str
    query_has: str | None


@dataclass
class S3Proxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); start with :meth:`start`."""

    upstream: str
    seen: list[SeenRequest] = field(default_factory=list)
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
        """Answer the next ``times`` matching requests with ``status`` and S3 ``code``."""
        fault = Fault(status, code, times, method, path_contains, query_has)
        with self._lock:
            self._faults.append(fault)
        return fault

    def drop_next(
        self, *, times: int = 1, method: str | None = None, path_contains: str = ""
    ) -> Fault:
        """Close the connection of the next ``times`` matching requests without answering."""
        fault = Fault(_DROP, "", times, method, path_contains, None)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests(self, predicate: str = "") -> list[SeenRequest]:
        with self._lock:
            seen = list(self.seen)
        if predicate == "listing":
            return [r for r in seen if r.is_listing]
        if predicate == "batch-delete":
            return [r for r in seen if r.is_batch_delete]
        return seen

    # -- serving -------------------------------------------------------------

    def start(self) -> S3Proxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pool expects

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _handle(self) -> None:
                body = self._read_body()
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                query = parse_qs(parts.query, keep_blank_values=True)
                headers = {name.lower(): value for name, value in self.headers.items()}
                seen = SeenRequest(self.command, path, query, headers)
                with proxy._lock:
                    proxy.seen.append(seen)
                fault = proxy._take_fault(seen)
                if fault is not None:
                    if fault.status == _DROP:
                        self.close_connection = True
                        self.connection.close()
                        return
                    assert isinstance(fault.status, int)
                    self._reply(fault.status, _error_xml(fault.code, path), _XML)
                    return
                status, reply_headers, reply = proxy._forward(
                    self.command, self.path, dict(self.headers.items()), body
                )
                self._reply(status, reply, reply_headers)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def _read_body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

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
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            forwarded["Host"] = upstream.netloc
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
