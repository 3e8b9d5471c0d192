"""A tiny HTTP "LLM" on 127.0.0.1 that counts what it is paid for: the tests' independent witness.

``POST /complete`` with ``{"prompt": ...}`` answers ``{"text": "answer to <prompt>"}``
and counts one paid call for the prompt. A prompt listed in ``kill_on_first``
is a kill point: the first time it arrives, the server SIGKILLs the process
that sent it (its pid is in the ``X-Worker-Pid`` header) and drops the
request unanswered, so that call was never paid; the worker dies in the
middle of its task, after the calls before it were answered and memoized.
``answer_delay_s`` makes every answered call take that long (a slow model),
so that duplicate workers overlap. ``arrivals`` and ``kills`` keep the
server's monotonic times of each request and each kill, per prompt.
:func:`complete` is the workers' client; :func:`assert_paid_for_a_duplicate`
is what the server must have seen when one step ran twice at once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler

import pytest

from tests.local_http import LocalHTTPServer, send_json

__all__ = [
    "CountingLLM",
    "answer_to",
    "assert_paid_for_a_duplicate",
    "complete",
    "skip_unclaimed_duplicate_off_local_files",
]


def answer_to(prompt: str) -> str:
    return f"answer to {prompt}"


def complete(url: str, prompt: str) -> str:
    """The slow, billed call: one request to the counting LLM server at ``url``."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"prompt": prompt}).encode(),
        headers={"Content-Type": "application/json", "X-Worker-Pid": str(os.getpid())},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        text: str = json.loads(reply.read())["text"]
        return text


class CountingLLM(LocalHTTPServer):
    def __init__(
        self, kill_on_first: set[str] | None = None, *, answer_delay_s: float = 0.0
    ) -> None:
        self.paid: Counter[str] = Counter()
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)
        self.kills: dict[str, float] = {}
        self._answer_delay_s = answer_delay_s
        self.received: Counter[str] = Counter()
        self.killed_pids: list[int] = []
        self.worker_pids: set[int] = set()
        self._kill_on_first = set(kill_on_first or ())
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/complete"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                prompt = json.loads(body)["prompt"]
                pid = int(self.headers["X-Worker-Pid"])
                with llm._lock:
                    llm.arrivals[prompt].append(time.monotonic())
                    llm.received[prompt] += 1
                    llm.worker_pids.add(pid)
                    kill = prompt in llm._kill_on_first
                    llm._kill_on_first.discard(prompt)
                    if kill:
                        llm.killed_pids.append(pid)
                        llm.kills[prompt] = time.monotonic()
                if kill:
                    os.kill(pid, signal.SIGKILL)
                    self.close_connection = True
                    return
                time.sleep(llm._answer_delay_s)
                with llm._lock:
                    llm.paid[prompt] += 1
                send_json(self, 200, {"text": answer_to(prompt)})

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


def skip_unclaimed_duplicate_off_local_files(memo_url: str, claim_lease_s: float | None) -> None:
    """Without a claim a duplicate shows only the runtime delivering twice, which no storage
    changes: that case runs on local files, and the claimed case on every storage."""
    if claim_lease_s is None and not memo_url.startswith("file://"):
        pytest.skip("a duplicate without a claim tests the runtime, not the storage: local only")


def assert_paid_for_a_duplicate(llm: CountingLLM, prompts: list[str], *, claimed: bool) -> None:
    """Two runs of one step at once: without a claim both ran and paid what they overlapped on
    (each call at most twice); with one, whichever claimed a call made it and the other waited
    and read the memo, so each call reached the LLM once."""
    if not claimed:
        assert len(llm.worker_pids) == 2  # two processes ran the step at once
        assert sum(llm.paid.values()) > len(prompts)
        assert all(count <= 2 for count in llm.paid.values())
    else:
        assert llm.paid == {prompt: 1 for prompt in prompts}
        assert llm.received == {prompt: 1 for prompt in prompts}
