"""A loopback proxy in front of fake-gcs-server: batch requests and injected faults.

fake-gcs-server answers a JSON-API batch request with an empty body, so the
batch path of GCSBackend would never meet a server. This proxy forwards every
request to the real emulator, and answers ``POST /batch/storage/v1`` the way
GCS does: it runs each part against the emulator and returns one
``multipart/mixed`` answer with a part per call. It can also answer the next
requests with an error status (403, 429, 503 ...) to prove the error mapping
and the retry policy end to end. It records every request it sees.
"""

from __future__ import annotations

import email.parser
import email.policy
import http.client
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["Fault", "GCSProxy", "SeenRequest"]

# Host is forwarded as the client sent it: a signature covers it.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Fault:
    status: int
    remaining: int
    path_contains: str
    method: str | None


@dataclass
class GCSProxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); start with :meth:`start`."""

    upstream: str
    serve_batches: bool = True
    seen: list[SeenRequest] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _upstream_connections: threading.local = field(default_factory=threading.local)

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(
        self, status: int, *, times: int = 1, path_contains: str = "", method: str | None = None
    ) -> Fault:
        """Answer the next ``times`` matching requests (batch parts too) with ``status``."""
        fault = Fault(status, times, path_contains, method)
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.remove(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, method: str, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.seen if r.method == method and path_contains in r.path)

    def start(self) -> GCSProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _handle(self) -> None:
                body = self._read_body()
                headers = {name: value for name, value in self.headers.items()}
                with proxy._lock:
                    proxy.seen.append(SeenRequest(self.command, self.path, headers))
                fault = proxy._take_fault(self.command, self.path)
                if fault is not None:
                    self._reply(fault, _error_body(fault), {"Content-Type": "application/json"})
                elif self.command == "POST" and self.path.startswith("/batch/storage/v1"):
                    if not proxy.serve_batches:
                        self._reply(200, b"", {"Content-Type": "multipart/mixed; boundary=x"})
                    else:
                        status, reply_headers, reply = proxy._run_batch(headers, body)
                        self._reply(status, reply, reply_headers)
                else:
                    status, reply_headers, reply = proxy._forward(
                        self.command, self.path, headers, body
                    )
                    self._reply(status, reply, reply_headers)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- internals -------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault.method not in (None, method):
                    continue
                if fault.remaining > 0 and fault.path_contains in path:
                    fault.remaining -= 1
                    return fault.status
        return None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        netloc = urlsplit(self.upstream).netloc
        sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        sent["Content-Length"] = str(len(body))
        # One kept-alive upstream connection per handler thread; a fresh one if it broke.
        for attempt in range(2):
            connection = getattr(self._upstream_connections, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(netloc, timeout=60)
                self._upstream_connections.connection = connection
            try:
                connection.request(method, path, body=body, headers=sent)
                answer = connection.getresponse()
                return answer.status, dict(answer.getheaders()), answer.read()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                self._upstream_connections.connection = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _run_batch(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Run each part of a multipart/mixed batch and answer like GCS does."""
        content_type = next(v for k, v in headers.items() if k.lower() == "content-type")
        envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(envelope)
        boundary = f"batch_{uuid.uuid4().hex}"
        parts: list[str] = []
        for index, part in enumerate(message.get_payload()):
            raw = part.get_payload()
            request_head, _, sub_body = raw.replace("\r\n", "\n").partition("\n\n")
            request_line, *header_lines = request_head.split("\n")
            method, url, _ = request_line.split(" ", 2)
            sub_headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
            target = urlsplit(url)
            path = target.path + (f"?{target.query}" if target.query else "")
            fault = self._take_fault(method, path)
            if fault is not None:
                status, reply = fault, _error_body(fault)
            else:
                status, _, reply = self._forward(method, path, sub_headers, sub_body.encode())
            reason = http.client.responses.get(status, "Unknown")
            parts.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-{index + 1}>\r\n\r\n"
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\r\n"
                f"{reply.decode('utf-8', 'replace')}\r\n"
            )
        payload = "".join(parts) + f"--{boundary}--\r\n"
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, payload.encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return None  # a client closing its keep-alive connection is not news


def _error_body(status: int) -> bytes:
    reason = http.client.responses.get(status, "Error")
    error = {"code": status, "message": f"injected {reason}", "errors": [{"reason": reason}]}
    return json.dumps({"error": error}).encode()
