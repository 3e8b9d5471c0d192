"""A loopback proxy that lets obstore's GCS client write to fake-gcs-server (test-only).

obstore (Rust ``object_store``) uploads GCS objects through the XML API
(``PUT /<bucket>/<object>``), which fake-gcs-server refuses with "invalid
uploadType". Its reads, XML listings and deletes are understood as they are.
This proxy is a :class:`~taquba_memo_conformance.proxies.CountingProxy`: it
forwards every request unchanged (its ``Host`` header included, as a
signature covers it) and counts it, except that an XML upload becomes a
JSON-API ``multipart`` upload (measured: fake-gcs-server v1.54 enforces
``ifGenerationMatch`` on multipart uploads, not on ``media`` ones):

* ``x-goog-if-generation-match`` becomes ``ifGenerationMatch``, so
  create-if-absent stays atomic: the emulator itself decides who wins;
* the answer carries the ``ETag`` and ``x-goog-generation`` headers that the
  XML API would have sent; an error answer is passed on as it is.

What it cannot fix: fake-gcs-server ignores the XML listing's
``start-after``, so a listing offset is not applied there.

It listens on 127.0.0.1 only and talks to nothing but the loopback emulator
it was given.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import urllib.parse

from taquba_memo_conformance.proxies.counting import CountingProxy, Reply, RequestHead

__all__ = ["GcsXmlProxy"]

_UPSTREAM_TIMEOUT_S = 30.0
# Headers of one hop's connection and framing: the proxy frames its own answer.
_NOT_PASSED_ON = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


class GcsXmlProxy(CountingProxy):
    """Forwards to ``upstream_url`` (fake-gcs-server), translating XML-API uploads.

    Use it as a context manager, or call :meth:`start` and :meth:`close`.
    ``translate_uploads=False`` forwards uploads unchanged too.
    :attr:`url` is the base URL to give obstore as ``gcs_base_url``.
    """

    def __init__(self, upstream_url: str, *, translate_uploads: bool = True) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme != "http" or parsed.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the proxy only forwards to an http emulator on loopback")
        super().__init__(upstream_url)
        self.translate_uploads = translate_uploads

    def reads_body(self, request: RequestHead) -> bool:
        return self._translates(request)

    async def intercept(self, request: RequestHead) -> Reply | None:
        if not self._translates(request):
            return None
        return await asyncio.to_thread(self._upload, request)

    def _translates(self, request: RequestHead) -> bool:
        # Copies and the parts of a multipart upload are not translated.
        return (
            self.translate_uploads
            and request.method == "PUT"
            and "?" not in request.target
            and request.header("x-goog-copy-source") is None
        )

    def _upload(self, request: RequestHead) -> Reply:
        """The XML upload ``request`` as a JSON-API multipart upload, answered as XML would be."""
        bucket, _, quoted_name = request.target.lstrip("/").partition("/")
        query = {"uploadType": "multipart"}
        if_generation = request.header("x-goog-if-generation-match")
        if if_generation is not None:
            query["ifGenerationMatch"] = if_generation
        content_type = request.header("content-type") or "application/octet-stream"
        metadata = {"name": urllib.parse.unquote(quoted_name), "contentType": content_type}
        boundary = f"proxy{secrets.token_hex(16)}"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(metadata).encode(),
                f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
                request.body or b"",
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        connection = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=_UPSTREAM_TIMEOUT_S
        )
        try:
            connection.request(
                "POST",
                f"/upload/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}",
                body=body,
                headers={
                    "Host": request.header("host") or "",
                    "Content-Type": f"multipart/related; boundary={boundary}",
                },
            )
            response = connection.getresponse()
            status, answer_headers, payload = (
                response.status,
                response.getheaders(),
                response.read(),
            )
        finally:
            connection.close()
        if status != 200:
            kept = [(k, v) for k, v in answer_headers if k.lower() not in _NOT_PASSED_ON]
            return Reply(status, payload, kept)
        created = json.loads(payload)
        return Reply(
            200,
            b"",
            [
                ("ETag", str(created.get("etag") or created.get("md5Hash", ""))),
                ("x-goog-generation", str(created.get("generation", ""))),
            ],
        )
