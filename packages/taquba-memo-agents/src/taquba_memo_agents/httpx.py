"""httpx transports that pay each HTTP call once per step: any httpx-based SDK, memoized.

``httpx.Client(transport=MemoTransport())`` (or
``httpx.AsyncClient(transport=AsyncMemoTransport())``) sends requests
through ``inner`` (default: httpx's own ``HTTPTransport`` /
``AsyncHTTPTransport``) and records each response in the step's memo, bound
with ``use_memo``: ``MemoTransport`` reads
:func:`taquba_memo.sync.current_memo` (bind a sync memo), and
``AsyncMemoTransport`` reads :func:`taquba_memo.current_memo`. Outside any
``use_memo`` block requests go straight to ``inner``.

Keys. ``occurrence_key(request_key(...))`` of the method, the URL (without
user info; its query counts, since it can change the answer) and the body:
a JSON body (``Content-Type`` ending in ``json``) as its parsed value, so the
order of its keys does not matter, any other body as its SHA-256. Request
headers are not part of the key (authentication, tracing and idempotency
headers differ per attempt). Two identical requests in one attempt are two
entries, replayed in the same order by the retry. A request answered with an
error (or that fails to connect) gives its number back: sent again in the
same task or thread, it is still the same occurrence, so the step's retry
replays the answer it finally got.

Values. Every response is recorded as a stream (``Memo.get_or_stream``):
first its status and headers, then its body as the chunks ``inner``
produced, raw (still content-encoded, with the ``Content-Encoding`` header
kept, so httpx decodes a replay as it decoded the original). A streamed
response (server-sent events) reaches the caller chunk by chunk as it
arrives, and is replayed chunk by chunk. Only a 2xx response is stored, and
only once its body was read to the end (the caller of the first attempt
gets the response rebuilt from what is stored, so it sees what a retry
will see); any other status is returned to the
caller as it came and stored nothing, so a 500 or a 429 is never replayed.
A body closed before its end stores nothing either.

Headers kept: all but :data:`DROPPED_HEADERS`: ``date`` (a replay is not
from then), ``content-length`` and ``transfer-encoding`` (the framing of
the original connection; a replay's body is whole and httpx measures it),
``connection`` and ``keep-alive`` (hop-by-hop), and ``set-cookie`` (a
replay must not set a session's cookies again).

Claims. ``claim=ClaimPolicy(lease_s=...)`` makes duplicate workers of one
step wait for the first one's response instead of paying twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import taquba_memo
import taquba_memo.sync
from taquba_memo import ClaimPolicy, request_key

from taquba_memo_agents import _occurrences
from taquba_memo_agents._arguments import checked_claim

__all__ = ["DROPPED_HEADERS", "AsyncMemoTransport", "MemoTransport", "request_of"]

#: Response headers not stored (see the module documentation for why).
DROPPED_HEADERS = frozenset(
    {"date", "content-length", "transfer-encoding", "connection", "keep-alive", "set-cookie"}
)


class _NotStored(Exception):
    """A response that is returned as it came and never stored (not a 2xx)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def request_of(request: httpx.Request) -> dict[str, Any]:
    """What the key of ``request`` is made of (its body must have been read)."""
    url = request.url.copy_with(username=None, password=None)
    body = request.content
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip()
    shown: Any = {"sha256": hashlib.sha256(body).hexdigest()}
    if content_type.endswith("json") and body:
        with contextlib.suppress(ValueError):  # not JSON after all: its hash
            shown = json.loads(body)
    return {"method": request.method, "url": urllib.parse.unquote(str(url)), "body": shown}


def _head(response: httpx.Response) -> bytes:
    headers = [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, value in response.headers.raw
        if name.decode("latin-1").lower() not in DROPPED_HEADERS
    ]
    return json.dumps({"status": response.status_code, "headers": headers}).encode()


def _response(head: bytes, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
    shown = json.loads(head)
    headers = [(name, value) for name, value in shown["headers"]]
    return httpx.Response(shown["status"], headers=headers, stream=stream)


class _Replay(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class _AsyncReplay(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class MemoTransport(httpx.BaseTransport):
    """A sync transport recording 2xx responses in the current sync memo (see the module)."""

    def __init__(
        self, inner: httpx.BaseTransport | None = None, *, claim: ClaimPolicy | None = None
    ) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._claim = checked_claim(claim)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        memo = taquba_memo.sync.current_memo()
        if memo is None:
            return self._inner.handle_request(request)
        request.read()
        asked = request_key(request_of(request), namespace="httpx")
        inner = self._inner

        def chunks() -> Iterator[bytes]:
            response = inner.handle_request(request)
            if not 200 <= response.status_code < 300:
                raise _NotStored(response)
            try:
                yield _head(response)
                assert isinstance(response.stream, httpx.SyncByteStream)
                yield from response.stream
            finally:
                response.close()

        def start(occurrence: str) -> tuple[bytes, Iterator[bytes]]:
            recorded = memo.get_or_stream(occurrence, chunks, claim=self._claim)
            return next(recorded), recorded

        try:
            head, recorded = _occurrences.settled(memo, asked, start)
        except _NotStored as not_stored:
            return not_stored.response  # its number is given back to the next such request
        return _response(head, _Replay(recorded))

    def close(self) -> None:
        self._inner.close()


class AsyncMemoTransport(httpx.AsyncBaseTransport):
    """An async transport recording 2xx responses in the current memo (see the module)."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport | None = None, *, claim: ClaimPolicy | None = None
    ) -> None:
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._claim = checked_claim(claim)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        memo = taquba_memo.current_memo()
        if memo is None:
            return await self._inner.handle_async_request(request)
        await request.aread()
        asked = request_key(request_of(request), namespace="httpx")
        inner = self._inner

        async def chunks() -> AsyncIterator[bytes]:
            response = await inner.handle_async_request(request)
            if not 200 <= response.status_code < 300:
                raise _NotStored(response)
            try:
                yield _head(response)
                assert isinstance(response.stream, httpx.AsyncByteStream)
                async for chunk in response.stream:
                    yield chunk
            finally:
                await response.aclose()

        async def start(occurrence: str) -> tuple[bytes, AsyncIterator[bytes]]:
            recorded = memo.get_or_stream(occurrence, chunks, claim=self._claim)
            return await recorded.__anext__(), recorded

        try:
            head, recorded = await _occurrences.asettled(memo, asked, start)
        except _NotStored as not_stored:
            return not_stored.response  # its number is given back to the next such request
        return _response(head, _AsyncReplay(recorded))

    async def aclose(self) -> None:
        await self._inner.aclose()
