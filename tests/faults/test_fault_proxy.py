"""The fault proxy itself: each fault does what it says, draws repeat, counting still works.

The upstream is a tiny HTTP server on 127.0.0.1 that records what reaches it,
so each test can tell a request the server never saw (``500``, ``reset``,
``stall``) from one it applied but whose answer was lost (``lost-*``).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from taquba_memo_conformance.proxies import FAULTS, FaultProxy


class Upstream:
    """Answers every request 200 with its own path, and remembers the paths it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                seen.append(self.path)
                body = self.path.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


def request(
    proxy: FaultProxy,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    try:
        connection.request(
            method, path, body=b"x" if method == "PUT" else None, headers=headers or {}
        )
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_without_faults_every_request_is_forwarded_and_counted(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, rate=0.0) as proxy:
        assert request(proxy, "/bucket/key")[2] == b"/bucket/key"
        assert request(proxy, "/bucket/key", method="PUT")[0] == 200
        assert proxy.counts().by_kind == {"get": 1, "put": 1}
        assert proxy.injected == {}
        assert upstream.seen == ["/bucket/key", "/bucket/key"]


def test_the_same_seed_draws_the_same_faults(upstream: Upstream) -> None:
    def outcomes(seed: int) -> list[str]:
        found: list[str] = []
        menu = {"500": 1, "503": 1, "429": 1}
        with FaultProxy(upstream.url, seed=seed, rate=0.5, faults=menu) as proxy:
            for number in range(60):
                found.append(str(request(proxy, f"/b/{number}")[0]))
        return found

    first = outcomes(seed=42)
    assert first == outcomes(seed=42)
    assert first != outcomes(seed=43)
    assert 10 < sum(status != "200" for status in first) < 50


@pytest.mark.parametrize(
    ("headers", "path", "code"),
    [
        ({}, "/bucket/key", "<Code>SlowDown</Code>"),
        ({"x-ms-version": "2026-10-06"}, "/account/container/blob", "<Code>ServerBusy</Code>"),
        ({}, "/storage/v1/b/bucket/o/key", '"reason": "backendError"'),
    ],
)
def test_error_answers_speak_the_dialect_of_the_api(
    upstream: Upstream, headers: dict[str, str], path: str, code: str
) -> None:
    with FaultProxy(upstream.url) as proxy:
        proxy.fault_next("503")
        status, answer_headers, body = request(proxy, path, headers=headers)
        assert status == 503
        assert code in body.decode()
        if headers:
            assert answer_headers["x-ms-error-code"] == "ServerBusy"
        proxy.fault_next("500")
        status, _, body = request(proxy, path, method="HEAD", headers=headers)
        assert (status, body) == (500, b"")
        assert upstream.seen == [], "an injected answer never reaches the server"
        assert request(proxy, path, headers=headers)[0] == 200, "the queue is used up"


def test_a_reset_is_an_rst_before_the_server_sees_anything(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy:
        proxy.fault_next("reset")
        with pytest.raises(ConnectionResetError):
            request(proxy, "/bucket/key", method="PUT")
        assert upstream.seen == []
        assert proxy.injected == {"reset": 1}


def test_a_stall_outlasts_the_client_and_is_never_forwarded(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, stall_seconds=1.0) as proxy:
        proxy.fault_next("stall")
        with pytest.raises((TimeoutError, socket.timeout)):
            request(proxy, "/bucket/key", method="PUT", timeout=0.3)
        assert upstream.seen == []


def test_a_lost_answer_was_applied_by_the_server(upstream: Upstream) -> None:
    with FaultProxy(upstream.url, stall_seconds=1.0) as proxy:
        proxy.fault_next("lost-reset")
        with pytest.raises(ConnectionResetError):
            request(proxy, "/bucket/one", method="PUT")
        assert [record.status for record in proxy.records] == [None], "no answer relayed"
        proxy.fault_next("lost-stall")
        with pytest.raises((TimeoutError, socket.timeout)):
            request(proxy, "/bucket/two", method="PUT", timeout=0.3)
        assert upstream.seen == ["/bucket/one", "/bucket/two"]
        assert request(proxy, "/bucket/three")[0] == 200


def test_only_eligible_requests_are_faulted(upstream: Upstream) -> None:
    with FaultProxy(
        upstream.url, rate=1.0, faults={"500": 1}, eligible=lambda r: r.method == "PUT"
    ) as proxy:
        assert request(proxy, "/bucket/key")[0] == 200
        assert request(proxy, "/bucket/key", method="PUT")[0] == 500
        with proxy.paused():
            assert request(proxy, "/bucket/key", method="PUT")[0] == 200
        assert proxy.injected == {"500": 1}
        assert proxy.decisions == 2
        proxy.set_eligible(None)
        assert request(proxy, "/bucket/key")[0] == 500


def test_bad_configuration_is_refused(upstream: Upstream) -> None:
    proxy = FaultProxy(upstream.url)
    with pytest.raises(ValueError, match="rate"):
        proxy.configure(rate=1.5)
    with pytest.raises(ValueError, match="faults"):
        proxy.configure(faults={"explode": 1})
    with pytest.raises(ValueError, match="unknown fault"):
        proxy.fault_next("explode")
    assert set(FAULTS) == {
        *("500", "503", "429", "401", "403"),
        *("reset", "stall", "lost-reset", "lost-stall"),
    }


def test_the_gcs_json_error_is_valid_json(upstream: Upstream) -> None:
    with FaultProxy(upstream.url) as proxy:
        proxy.fault_next("429")
        status, _, body = request(
            proxy, "/upload/storage/v1/b/bucket/o?uploadType=multipart", method="PUT"
        )
        assert status == 429
        assert json.loads(body)["error"]["errors"][0]["reason"] == "rateLimitExceeded"
