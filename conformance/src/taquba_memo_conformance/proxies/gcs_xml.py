"""A loopback proxy that lets obstore's GCS client write to fake-gcs-server (test-only).

obstore (Rust ``object_store``) uploads GCS objects through the XML API
(``PUT /<bucket>/<object>``), which fake-gcs-server refuses with "invalid
uploadType". Its reads, XML listings and deletes are understood as they are.
This proxy forwards every request unchanged (its ``Host`` header included,
as a signature covers it), except that an XML upload
becomes a JSON-API ``multipart`` upload (measured: fake-gcs-server v1.54
enforces ``ifGenerationMatch`` on multipart uploads, not on ``media`` ones):

* ``x-goog-if-generation-match`` becomes ``ifGenerationMatch``, so
  create-if-absent stays atomic: the emulator itself decides who wins;
* the answer carries the ``ETag`` and ``x-goog-generation`` headers that the
  XML API would have sent; an error answer is passed on as it is.

What it cannot fix: fake-gcs-server ignores the XML listing's
``start-after``, so a listing offset is not applied there.

It records every request it receives (:attr:`GcsXmlProxy.requests`), so a
test can count the pages a listing fetched. With ``translate_uploads=False``
it forwards everything unchanged: a recording proxy for any HTTP store.

It listens on 127.0.0.1 only, serves each connection on its own thread, and
talks to nothing but the loopback emulator it was given.
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["GcsXmlProxy"]

# Headers that describe one hop's connection; never forwarded. ``Host`` is not
# one: it goes upstream as the client sent it, since signatures cover it.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
)
_UPSTREAM_TIMEOUT_S = 30.0


class GcsXmlProxy:
    """Forwards to ``upstream_url`` (fake-gcs-server), translating XML-API uploads.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    ``translate_uploads=False`` forwards uploads unchanged too.
    :attr:`url` is the base URL to give obstore as ``gcs_base_url``.
    """

    def __init__(self, upstream_url: str, *, translate_uploads: bool = True) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme != "http" or parsed.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the proxy only forwards to an http emulator on loopback")
        self.upstream_host: str = parsed.hostname
        self.upstream_port: int = parsed.port or 80
        self.translate_uploads = translate_uploads
        self.requests: list[tuple[str, str]] = []
        """``(method, path with query)`` of every request received, in order."""
        handler = type("_BoundHandler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> GcsXmlProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="gcs-xml-proxy", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> GcsXmlProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    proxy: GcsXmlProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: tests read the emulator's answers, not an access log

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            return  # the client dropped a connection it no longer needed

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:
            self.proxy.requests.append((self.command, self.path))
        return parsed

    def _request_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _upstream(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self.proxy.upstream_host, self.proxy.upstream_port, timeout=_UPSTREAM_TIMEOUT_S
        )
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _pass_through(self) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        self._reply(*self._upstream(self.command, self.path, self._request_body(), headers))

    do_GET = do_HEAD = do_POST = do_DELETE = _pass_through

    def do_PUT(self) -> None:
        translate = self.proxy.translate_uploads
        if not translate or "x-goog-copy-source" in self.headers or "?" in self.path:
            self._pass_through()  # copies and multipart parts: not translated
            return
        bucket, _, quoted_name = self.path.lstrip("/").partition("/")
        query = {"uploadType": "multipart"}
        if_generation = self.headers.get("x-goog-if-generation-match")
        if if_generation is not None:
            query["ifGenerationMatch"] = if_generation
        metadata = {
            "name": urllib.parse.unquote(quoted_name),
            "contentType": self.headers.get("Content-Type", "application/octet-stream"),
        }
        boundary = f"proxy{secrets.token_hex(16)}"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(metadata).encode(),
                f"\r\n--{boundary}\r\nContent-Type: {metadata['contentType']}\r\n\r\n".encode(),
                self._request_body(),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        status, headers, payload = self._upstream(
            "POST",
            f"/upload/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}",
            body,
            {
                "Host": self.headers.get("Host", ""),
                "Content-Type": f"multipart/related; boundary={boundary}",
            },
        )
        if status != 200:
            self._reply(status, headers, payload)
            return
        created = json.loads(payload)
        self._reply(
            200,
            [
                ("ETag", str(created.get("etag") or created.get("md5Hash", ""))),
                ("x-goog-generation", str(created.get("generation", ""))),
            ],
            b"",
        )
