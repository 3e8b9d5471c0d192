"""A loopback proxy in front of fake-gcs-server: batch requests and injected faults.

fake-gcs-server answers a JSON-API batch request with an empty body, so the
batch path of GCSBackend would never meet a server. This proxy is the kit's
:class:`~taquba_memo_conformance.proxies.CountingProxy` (it forwards every
request, ``Host`` and signed headers unchanged, and counts it), and answers
``POST /batch/storage/v1`` the way GCS does: it runs each part against the
emulator and returns one ``multipart/mixed`` answer with a part per call. It
can also answer the next requests with an error status (403, 429, 503 ...) to
prove the error mapping and the retry policy end to end.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import http.client
import json
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from taquba_memo_conformance.proxies import CountingProxy, Reply, RequestHead

__all__ = ["Fault", "GCSProxy"]

_BATCH_PATH = "/batch/storage/v1"


@dataclass
class Fault:
    status: int
    remaining: int
    path_contains: str
    method: str | None


class GCSProxy(CountingProxy):
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``); start with :meth:`start`.

    ``serve_batches=False`` answers a batch request as fake-gcs-server does:
    200 and an empty body.
    """

    def __init__(self, upstream: str, *, serve_batches: bool = True) -> None:
        super().__init__(upstream)
        self.serve_batches = serve_batches
        self.seen: list[RequestHead] = []
        """Every request received, in order, as the client sent it."""
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return self.url

    def fail_next(
        self, status: int, *, times: int = 1, path_contains: str = "", method: str | None = None
    ) -> Fault:
        """Answer the next ``times`` matching requests (batch parts too) with ``status``."""
        fault = Fault(status, times, path_contains, method)
        with self._faults_lock:
            self._faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        with self._faults_lock:
            self._faults.remove(fault)

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def count(self, method: str, path_contains: str = "") -> int:
        """Requests received with ``method`` whose target contains ``path_contains``."""
        with self._faults_lock:
            return sum(1 for r in self.seen if r.method == method and path_contains in r.target)

    # -- the proxy's hooks -----------------------------------------------------

    def reads_body(self, request: RequestHead) -> bool:
        return _is_batch(request) and self.serve_batches

    async def intercept(self, request: RequestHead) -> Reply | None:
        with self._faults_lock:
            self.seen.append(request)
        status = self._take_fault(request.method, request.target)
        if status is not None:
            return Reply(status, _error_body(status), [("Content-Type", "application/json")])
        if not _is_batch(request):
            return None
        if not self.serve_batches:
            return Reply(200, b"", [("Content-Type", "multipart/mixed; boundary=x")])
        return await asyncio.to_thread(self._run_batch, request)

    # -- internals -------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> int | None:
        with self._faults_lock:
            for fault in self._faults:
                if fault.method not in (None, method):
                    continue
                if fault.remaining > 0 and fault.path_contains in path:
                    fault.remaining -= 1
                    return fault.status
        return None

    def _run_batch(self, request: RequestHead) -> Reply:
        """Run each part of a multipart/mixed batch against the emulator, and answer like GCS."""
        content_type = request.header("content-type") or ""
        envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            envelope + (request.body or b"")
        )
        boundary = f"batch_{uuid.uuid4().hex}"
        parts: list[str] = []
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            for index, part in enumerate(message.get_payload()):
                raw = part.get_payload()
                request_head, _, sub_body = raw.replace("\r\n", "\n").partition("\n\n")
                request_line, *header_lines = request_head.split("\n")
                method, url, _ = request_line.split(" ", 2)
                sub_headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
                target = urlsplit(url)
                path = target.path + (f"?{target.query}" if target.query else "")
                status = self._take_fault(method, path)
                if status is not None:
                    reply = _error_body(status)
                else:
                    upstream.request(method, path, body=sub_body.encode(), headers=sub_headers)
                    answer = upstream.getresponse()
                    status, reply = answer.status, answer.read()
                reason = http.client.responses.get(status, "Unknown")
                parts.append(
                    f"--{boundary}\r\nContent-Type: application/http\r\n"
                    f"Content-ID: <response-{index + 1}>\r\n\r\n"
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\r\n"
                    f"{reply.decode('utf-8', 'replace')}\r\n"
                )
        finally:
            upstream.close()
        payload = "".join(parts) + f"--{boundary}--\r\n"
        return Reply(
            200, payload.encode(), [("Content-Type", f"multipart/mixed; boundary={boundary}")]
        )


def _is_batch(request: RequestHead) -> bool:
    return request.method == "POST" and request.target.startswith(_BATCH_PATH)


def _error_body(status: int) -> bytes:
    reason = http.client.responses.get(status, "Error")
    error = {"code": status, "message": f"injected {reason}", "errors": [{"reason": reason}]}
    return json.dumps({"error": error}).encode()
