"""The proxies' forwarding core hands a hook the whole request body, and still forwards it intact.

:meth:`CountingProxy.reads_body` has a request's body read before
:meth:`CountingProxy.intercept` sees it. Whatever the client's framing
(``Content-Length``, ``chunked``, ``Expect: 100-continue``), the hook gets the
body's bytes, and the server behind the proxy gets the same bytes and the
same headers the client sent. The server here answers with what it received,
so the test reads the far side of the proxy directly.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from taquba_memo_conformance.proxies import CountingProxy, Reply, RequestHead

BODY = b"0123456789" * 1000 + b"\r\n0\r\n\r\n"  # contains what a chunked trailer looks like


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_PUT(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps(
            {"body": body.decode("latin-1"), "headers": dict(self.headers.items())}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class BodyReadingProxy(CountingProxy):
    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self.bodies: list[bytes | None] = []

    def reads_body(self, request: RequestHead) -> bool:
        return True

    async def intercept(self, request: RequestHead) -> Reply | None:
        self.bodies.append(request.body)
        if request.target == "/answered-here":
            return Reply(201, b"answered by the proxy")
        return None


@pytest.fixture
def proxy() -> Iterator[BodyReadingProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with BodyReadingProxy(f"http://127.0.0.1:{server.server_address[1]}") as proxy:
            yield proxy
    finally:
        server.shutdown()
        server.server_close()


def send(
    proxy: CountingProxy, target: str, headers: dict[str, str], chunked: bool
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        body = iter([BODY[:3000], BODY[3000:]]) if chunked else BODY
        connection.request("PUT", target, body=body, headers=headers, encode_chunked=chunked)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("chunked", "headers"),
    [
        (False, {}),
        (True, {}),
        (False, {"Expect": "100-continue"}),
        (True, {"Expect": "100-continue"}),
    ],
    ids=["content-length", "chunked", "content-length-expect", "chunked-expect"],
)
def test_the_hook_sees_the_body_and_the_server_gets_it_unchanged(
    proxy: BodyReadingProxy, chunked: bool, headers: dict[str, str]
) -> None:
    signed = {"Host": "signed.example:9000", "X-Amz-Date": "20261201T000000Z", **headers}
    status, answer = send(proxy, "/bucket/key", signed, chunked)
    assert status == 200
    received = json.loads(answer)
    assert proxy.bodies == [BODY]
    assert received["body"].encode("latin-1") == BODY
    assert received["headers"]["Host"] == "signed.example:9000"
    assert received["headers"]["X-Amz-Date"] == "20261201T000000Z"
    framing = "Transfer-Encoding" if chunked else "Content-Length"
    assert framing in received["headers"], "framed as the client framed it"
    assert proxy.counts().by_kind == {"put": 1}


def test_a_reply_from_the_hook_answers_after_the_body_was_read(proxy: BodyReadingProxy) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        connection.request("PUT", "/answered-here", body=iter([BODY]), encode_chunked=True)
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (201, b"answered by the proxy")
        # The same connection goes on: its next request is forwarded as usual.
        connection.request("PUT", "/bucket/key", body=BODY)
        answer = connection.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["body"].encode("latin-1") == BODY
    finally:
        connection.close()
    assert proxy.bodies == [BODY, BODY]
