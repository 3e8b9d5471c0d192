"""A counting fake of the OpenAI chat completions API on 127.0.0.1: the framework tests' witness.

``POST /v1/chat/completions`` answers ``"answer to <last message's text>"``,
as one JSON completion, or with ``"stream": true`` as server-sent events (one
chunk per word, then a finish chunk, a usage chunk when asked for, and
``[DONE]``). The answer depends on the request only, so a replay and a paid
call are told apart by :attr:`FakeChatServer.paid` alone. A last message
containing ``FAIL`` is answered ``500`` (and still counted: an error is paid
for too, and must never be stored). Every request is counted, by the text
of its last message.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["FakeChatServer", "answer_to", "fake_chat_server"]

CREATED = 1_700_000_000


def answer_to(text: str) -> str:
    return f"answer to {text}"


def last_text(body: dict[str, Any]) -> str:
    """The text of the request's last message (string content, or its text parts joined)."""
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content") or ""
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


class FakeChatServer:
    """The server, its ``base_url`` (ending in ``/v1``) and its counts."""

    def __init__(self) -> None:
        self.paid: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}/v1"

    @property
    def total(self) -> int:
        return sum(self.paid.values())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _count(self, body: dict[str, Any]) -> str:
        text = last_text(body)
        with self._lock:
            self.paid[text] += 1
            self.requests.append(body)
        return text

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                text = server._count(body)
                if "FAIL" in text:
                    self._send(500, {"error": {"message": "forced failure", "type": "server"}})
                    return
                answer = answer_to(text)
                model = str(body.get("model", "fake"))
                if body.get("stream"):
                    usage = bool((body.get("stream_options") or {}).get("include_usage"))
                    self._send_events(stream_events(model, answer, usage))
                else:
                    self._send(200, completion(model, answer))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_events(self, events: Iterator[str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for event in events:
                    self.wfile.write(f"data: {event}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        return Handler


def usage_of(answer: str) -> dict[str, int]:
    completion_tokens = len(answer.split())
    return {
        "prompt_tokens": 5,
        "completion_tokens": completion_tokens,
        "total_tokens": 5 + completion_tokens,
    }


def completion(model: str, answer: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_of(answer),
    }


def stream_events(model: str, answer: str, usage: bool) -> Iterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return json.dumps(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    words = answer.split(" ")
    yield chunk({"role": "assistant", "content": ""})
    for index, word in enumerate(words):
        yield chunk({"content": word if index == 0 else f" {word}"})
    yield chunk({}, "stop")
    if usage:
        yield json.dumps(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": [],
                "usage": usage_of(answer),
            }
        )
    yield "[DONE]"


@pytest.fixture
def fake_chat_server() -> Iterator[FakeChatServer]:
    """A fresh counting server for one test."""
    server = FakeChatServer()
    server.start()
    yield server
    server.stop()
