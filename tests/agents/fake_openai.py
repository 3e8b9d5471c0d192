"""A counting fake OpenAI-compatible server on 127.0.0.1: the agent tests' independent witness.

It answers what the openai SDK (and any httpx client) sends, deterministically:

* ``POST /v1/chat/completions``: the answer to the last message. A user
  message ``"q"`` is answered ``"answer to q"``; a tool result ``"r"``
  (role ``"tool"``) is answered ``"answer with r"``. When the request
  offers ``tools`` and its last message is a user's, the answer is a call of
  the first tool instead, with arguments ``{"query": <the user's content>}``.
  JSON, or server-sent events when ``"stream": true``: a role chunk, one
  chunk per word, a finish chunk, then ``data: [DONE]``.
* ``POST /v1/responses``: ``"answer to <input>"`` as a Response (JSON).

Every answer's ``id`` ends in the server's serial number of the request
(``chatcmpl-3``), so a test tells a replayed answer from a fresh one.
:meth:`FakeOpenAI.fail_next` makes the next requests fail with an
OpenAI-shaped error (500, 429, ...), which is counted in ``received`` but
never in ``paid``. ``paid`` counts the answered requests per path and per
body (:func:`body_key`): the calls a real provider would bill.

The ``fake_openai`` fixture (module ``tests/agents/conftest.py``) starts one
per test.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.local_http import LocalHTTPServer, send_json

__all__ = ["FakeOpenAI", "answer_to", "body_key", "words_of"]

MODEL = "fake-1"


def answer_to(content: str) -> str:
    """What the fake answers to a user message ``content``."""
    return f"answer to {content}"


def words_of(text: str) -> list[str]:
    """The content pieces of a streamed answer: each word, with its leading space."""
    words = text.split(" ")
    return [words[0], *(" " + word for word in words[1:])]


def body_key(body: dict[str, Any]) -> str:
    """A request body as one comparable string (sorted keys)."""
    return json.dumps(body, sort_keys=True)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class FakeOpenAI(LocalHTTPServer):
    """The server; ``with FakeOpenAI() as server:`` serves on ``server.base_url``."""

    def __init__(self, *, answer_delay_s: float = 0.0, chunk_delay_s: float = 0.0) -> None:
        self.paid: Counter[str] = Counter()  # answered requests per path
        self.paid_bodies: Counter[str] = Counter()  # answered requests per body_key
        self.received: Counter[str] = Counter()  # every request per path, failed ones too
        self.bodies: list[dict[str, Any]] = []  # every request body, in order of arrival
        self.answer_delay_s = answer_delay_s  # before each answer: a slow model
        self.chunk_delay_s = chunk_delay_s  # between streamed chunks
        self._failures: list[int] = []
        self._serial = 0
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of this server (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total_paid(self) -> int:
        return sum(self.paid.values())

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """The next ``count`` requests get an OpenAI error with ``status`` instead of an answer."""
        with self._lock:
            self._failures += [status] * count

    # -- answers ---------------------------------------------------------------

    def _chat(self, body: dict[str, Any], serial: int) -> tuple[dict[str, Any], list[str]]:
        """(the assistant message, its content pieces when streamed)."""
        last = body["messages"][-1]
        role = last.get("role") if isinstance(last, dict) else None
        content = _text(last.get("content")) if isinstance(last, dict) else ""
        tools = body.get("tools") or []
        if tools and role == "user":
            call = {
                "id": f"call_{serial}",
                "type": "function",
                "function": {
                    "name": tools[0]["function"]["name"],
                    "arguments": json.dumps({"query": content}),
                },
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}, []
        text = f"answer with {content}" if role == "tool" else answer_to(content)
        return {"role": "assistant", "content": text}, words_of(text)

    def _completion(self, body: dict[str, Any], serial: int) -> dict[str, Any]:
        message, _ = self._chat(body, serial)
        return {
            "id": f"chatcmpl-{serial}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", MODEL),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _chunks(self, body: dict[str, Any], serial: int) -> Iterator[dict[str, Any]]:
        message, pieces = self._chat(body, serial)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": f"chatcmpl-{serial}",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model", MODEL),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        yield chunk({"role": "assistant", "content": ""})
        if message.get("tool_calls"):
            calls = [{"index": 0, **call} for call in message["tool_calls"]]
            yield chunk({"tool_calls": calls})
            yield chunk({}, "tool_calls")
            return
        for piece in pieces:
            yield chunk({"content": piece})
        yield chunk({}, "stop")

    def _response(self, body: dict[str, Any], serial: int) -> dict[str, Any]:
        given = body["input"]
        content = given if isinstance(given, str) else _text(given[-1].get("content"))
        return {
            "id": f"resp_{serial}",
            "object": "response",
            "created_at": 0,
            "model": body.get("model", MODEL),
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{serial}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": answer_to(content), "annotations": []}
                    ],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }

    # -- HTTP ------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.received[path] += 1
                    fake.bodies.append(body)
                    failure = fake._failures.pop(0) if fake._failures else None
                    fake._serial += 1
                    serial = fake._serial
                if failure is not None:
                    error = {"message": f"forced {failure}", "type": "server_error", "code": None}
                    send_json(self, failure, {"error": error})
                    return
                time.sleep(fake.answer_delay_s)
                if path not in ("/v1/chat/completions", "/v1/responses"):
                    send_json(self, 404, {"error": {"message": f"no route {path}", "type": "x"}})
                    return
                # Counted before the answer is sent, so a client that has it sees the count.
                with fake._lock:
                    fake.paid[path] += 1
                    fake.paid_bodies[body_key(body)] += 1
                if path == "/v1/responses":
                    send_json(self, 200, fake._response(body, serial))
                elif body.get("stream"):
                    self._stream(fake._chunks(body, serial))
                else:
                    send_json(self, 200, fake._completion(body, serial))

            def _stream(self, chunks: Iterator[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if fake.chunk_delay_s:
                        time.sleep(fake.chunk_delay_s)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
