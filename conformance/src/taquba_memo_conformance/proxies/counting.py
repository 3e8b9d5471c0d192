"""A small HTTP/1.1 forwarding proxy on 127.0.0.1 that counts the requests passing through it.

Point an adapter at :attr:`CountingProxy.url` instead of the storage server's
address and every request it sends is counted, by method and by kind
(``list``, ``get``, ``put``, ``delete``, ``batch``, ``head``, ``other``; see
:func:`classify_request`), before it is forwarded unchanged::

    with CountingProxy(server.endpoint_url) as proxy:
        backend = make_backend(endpoint=proxy.url)
        ...
        before = proxy.counts()
        await backend.get("k")
        assert (proxy.counts() - before).by_kind == {"get": 1}

How it forwards: each client connection gets its own upstream connection,
opened on the first request and kept alive as long as both sides allow
(HTTP/1.1 keep-alive). Bodies stream through in both directions, whether
framed by ``Content-Length``, ``chunked`` transfer coding, or (for answers)
the end of the connection. Every request header a client may have signed
(``Host`` above all: SigV4 and Azure Shared Key signatures cover it) goes
upstream unchanged, so the proxy works in front of servers that check
signatures; only hop-by-hop headers and ``Expect`` stop here. A
``Location`` header that names the upstream is rewritten to the proxy, so a
client that follows it (a resumable upload session) keeps going through the
proxy. ``Expect: 100-continue`` is answered by the proxy itself. A request
whose upstream connection fails before any byte of the answer (an idle
connection the server closed, a refused or dropped connection) is sent again,
up to three times, when its body was small enough to keep (1 MiB): the client
never sees such a failure, so it never repeats a request of its own accord.
What still fails is listed in :attr:`CountingProxy.failures`.

It runs an asyncio loop on a thread of its own, so it serves synchronous and
asynchronous clients alike, and never shares the caller's event loop.

Building on it: override :meth:`CountingProxy.intercept` to answer a request
without forwarding it (return a :class:`Reply`) or to drop the connection
(raise :class:`DropConnection`, or :class:`ResetConnection` for a TCP reset);
the request is counted either way. Override :meth:`CountingProxy.reads_body`
to have a request's body read before ``intercept`` sees it (as
:attr:`RequestHead.body`); it is then forwarded from memory, its headers as
the client sent them. Override :meth:`CountingProxy.intercept_answer`
to lose the answer of a request the server did get and apply (raise either
exception once its status is known). :mod:`taquba_memo_conformance.proxies.faults`
builds on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.parse
from dataclasses import replace
from typing import Any, TypeVar

# Classification, records and framing live in modules of their own; their public
# names stay importable from here, where they were first defined.
from taquba_memo_conformance.proxies.classify import Classifier as Classifier
from taquba_memo_conformance.proxies.classify import classify_request as classify_request
from taquba_memo_conformance.proxies.framing import (
    HOP_BY_HOP,
    MAX_HEAD_BYTES,
    Discard,
    Upstream,
    UpstreamClosed,
    abort_if_reset,
    chunked_body,
    copy_body,
    discard_body,
    keeps_alive,
    parse_status_line,
    read_answer_head,
    read_body,
    read_request_head,
    send_continue,
    upstream_head,
    write_reply,
)
from taquba_memo_conformance.proxies.framing import DropConnection as DropConnection
from taquba_memo_conformance.proxies.framing import Reply as Reply
from taquba_memo_conformance.proxies.framing import RequestHead as RequestHead
from taquba_memo_conformance.proxies.framing import ResetConnection as ResetConnection
from taquba_memo_conformance.proxies.records import RequestCounts as RequestCounts
from taquba_memo_conformance.proxies.records import RequestLog
from taquba_memo_conformance.proxies.records import RequestRecord as RequestRecord

__all__ = ["CountingProxy"]

_Proxy = TypeVar("_Proxy", bound="CountingProxy")

# A request body up to this size is kept, so the request can be resent when a
# reused upstream connection turns out to be closed; larger bodies only stream.
_RESENDABLE_BODY = 1024 * 1024
_UPSTREAM_TIMEOUT_S = 120.0
_UPSTREAM_ATTEMPTS = 3
_UPSTREAM_RETRY_PAUSE_S = 0.05
_START_TIMEOUT_S = 10.0


class CountingProxy:
    """Forwards HTTP from 127.0.0.1 to ``upstream_url``, counting each request.

    ``classify`` maps ``(method, target)`` to a kind (default
    :func:`classify_request`). Start with :meth:`start` or ``with``; stop with
    :meth:`close`. Counting is thread-safe: read :meth:`counts` (a snapshot),
    :attr:`records` (the last 200,000 requests) or call :meth:`reset`.
    """

    def __init__(self, upstream_url: str, *, classify: Classifier = classify_request) -> None:
        parts = urllib.parse.urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream_url!r}")
        self.upstream_host: str = parts.hostname
        self.upstream_port: int = parts.port or 80
        self.upstream_base = f"http://{parts.netloc}"
        self.classify = classify
        self._log = RequestLog()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._port = 0

    # -- lifecycle -------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("start() the proxy first")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: give this to the client instead of the upstream."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        """``127.0.0.1:PORT``, for clients that take a host and port (minio)."""
        return f"127.0.0.1:{self.port}"

    def start(self: _Proxy) -> _Proxy:
        """Listen on a free port of 127.0.0.1 and serve on a thread of its own."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve_client, "127.0.0.1", 0, limit=MAX_HEAD_BYTES)
                )
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=serve, name="counting-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or failure:
            raise RuntimeError(f"the counting proxy did not start: {failure[:1]}")
        return self

    def close(self) -> None:
        """Stop listening, close every connection and end the thread."""
        thread, self._thread = self._thread, None
        if thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        thread.join(timeout=_START_TIMEOUT_S)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def __enter__(self: _Proxy) -> _Proxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- counting --------------------------------------------------------------

    def counts(self) -> RequestCounts:
        """A snapshot of the counts so far."""
        return self._log.counts()

    @property
    def records(self) -> list[RequestRecord]:
        """The requests received (the most recent 200,000), oldest first."""
        return self._log.records()

    @property
    def failures(self) -> list[str]:
        """Requests the proxy could not complete (upstream unreachable, a connection
        broken midway), as ``"METHOD target: error"``; a client may have sent them again."""
        return self._log.failures()

    def reset(self) -> RequestCounts:
        """Zero the counts and records; return the counts as they were."""
        return self._log.reset()

    def mark(self) -> int:
        """A position in the records, for :meth:`records_since`."""
        return self._log.mark()

    def records_since(self, mark: int) -> list[RequestRecord]:
        """The requests received since ``mark``, oldest first.

        Every request is recorded when it arrives and its status before the
        client sees any of the answer, so once a client has its answer, the
        request is here with its status (None: not answered).
        """
        return self._log.records_since(mark)

    # -- the extension point ---------------------------------------------------

    def reads_body(self, request: RequestHead) -> bool:
        """Whether to read ``request``'s body before :meth:`intercept` (default: never).

        A body read is held in memory and given as :attr:`RequestHead.body`.
        """
        return False

    async def intercept(self, request: RequestHead) -> Reply | None:
        """Return a :class:`Reply` to answer ``request`` without forwarding it.

        The default forwards everything (returns None). Subclasses may also
        raise :class:`DropConnection`. The request has been counted already;
        its body has not been read (the proxy discards it before replying).
        """
        return None

    async def intercept_answer(self, request: RequestHead, status: int) -> None:
        """Called when the server's answer to a forwarded ``request`` starts, with its status.

        Nothing of the answer has reached the client yet. Raise
        :class:`DropConnection` or :class:`ResetConnection` to lose it: the
        server did get (and may have applied) the request, the client never
        learns the outcome. The default does nothing.
        """
        return None

    # -- serving ---------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        upstream: Upstream | None = None
        head: RequestHead | None = None
        try:
            while True:
                head = None
                head = await read_request_head(reader)
                if head is None:
                    return
                entry = self._log.arrived(
                    head.method, head.target, self.classify(head.method, head.target)
                )
                keep_client = keeps_alive(head.version, head.header("connection"))
                continue_sent = False
                if self.reads_body(head):
                    continue_sent = await send_continue(head, writer)
                    head = replace(head, body=await read_body(reader, head))
                try:
                    reply = await self.intercept(head)
                except DropConnection as drop:
                    abort_if_reset(drop, writer)
                    return
                if reply is not None:
                    if head.body is None:
                        await discard_body(reader, head)
                    self._log.answered(entry, reply.status)
                    await write_reply(writer, reply, keep_client)
                    if not keep_client:
                        return
                    continue
                if not continue_sent:
                    await send_continue(head, writer)
                upstream, keep_client = await self._forward(
                    head, entry, reader, writer, upstream, keep_client
                )
                if not keep_client:
                    return
        except DropConnection as drop:  # raised by intercept_answer
            abort_if_reset(drop, writer)
            return
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
            # A broken or malformed exchange: close both connections. A failure
            # in the middle of a request is noted (a client may send it again).
            if head is not None:
                self._log.failed(head.method, head.target, error)
            return
        except asyncio.CancelledError:
            return  # close() cancels the connections; ending quietly keeps asyncio quiet
        finally:
            if upstream is not None:
                upstream.close()
            writer.close()
            self._clients.discard(task)

    async def _connect(self) -> Upstream:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.upstream_host, self.upstream_port, limit=MAX_HEAD_BYTES),
            _UPSTREAM_TIMEOUT_S,
        )
        return Upstream(reader, writer)

    async def _forward(
        self,
        head: RequestHead,
        entry: list[Any],
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream: Upstream | None,
        keep_client: bool,
    ) -> tuple[Upstream | None, bool]:
        """Send one request upstream and its answer back; return the connection to reuse."""
        length = head.header("content-length")
        chunked = "chunked" in (head.header("transfer-encoding") or "").lower()
        body: bytes | None = head.body
        if body is not None and chunked:
            body = chunked_body(body)  # framed as the client framed it
        elif body is None and not chunked and (length is None or int(length) <= _RESENDABLE_BODY):
            body = await client_reader.readexactly(int(length or 0))
        request_head = upstream_head(head)
        for attempt in range(_UPSTREAM_ATTEMPTS):
            if upstream is not None and not upstream.usable():
                upstream.close()
                upstream = None
            try:
                if upstream is None:
                    upstream = await self._connect()
                upstream.writer.write(request_head)
                if body is not None:
                    upstream.writer.write(body)
                else:
                    await copy_body(client_reader, upstream.writer, length, chunked)
                await upstream.writer.drain()
                status_line = await asyncio.wait_for(
                    upstream.reader.readline(), _UPSTREAM_TIMEOUT_S
                )
                if not status_line:
                    raise UpstreamClosed
            except (UpstreamClosed, OSError):
                # The server closed an idle connection, refused one, or dropped one
                # before answering. The client must not see that (it would send the
                # request again, and be counted twice): resend a body we kept.
                if upstream is not None:
                    upstream.close()
                    upstream = None
                if body is not None and attempt + 1 < _UPSTREAM_ATTEMPTS:
                    await asyncio.sleep(_UPSTREAM_RETRY_PAUSE_S * (attempt + 1))
                    continue
                raise ConnectionResetError("the upstream closed the connection") from None
            break
        assert upstream is not None
        try:
            await self.intercept_answer(head, parse_status_line(status_line)[1])
        except DropConnection:
            # The server's whole answer is read first: a server may send its status
            # before it has done the work (RGW's DeleteObjects streams its results),
            # and the client must not learn of the failure before the work is done.
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._drain_answer(head, status_line, upstream.reader), _UPSTREAM_TIMEOUT_S
                )
            upstream.close()
            raise
        keep_upstream, keep_client = await self._relay_answer(
            head, entry, status_line, upstream.reader, client_writer, keep_client
        )
        if not keep_upstream:
            upstream.close()
            return None, keep_client
        return upstream, keep_client

    async def _relay_answer(
        self,
        head: RequestHead,
        entry: list[Any],
        status_line: bytes,
        upstream: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        keep_client: bool,
    ) -> tuple[bool, bool]:
        answer = await read_answer_head(head, status_line, upstream)
        status, headers, length, chunked = (
            answer.status,
            answer.headers,
            answer.length,
            answer.chunked,
        )
        keep_upstream, until_eof = answer.keep_alive, answer.until_eof
        if until_eof:
            keep_upstream = keep_client = False  # only the end of the connection frames it
        self._log.answered(entry, status)
        lines = [f"HTTP/1.1 {status} {answer.reason}"]
        for name, value in headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP:
                continue
            if lowered == "location" and value.startswith(self.upstream_base):
                value = self.url + value[len(self.upstream_base) :]
            lines.append(f"{name}: {value}")
        if not keep_client:
            lines.append("Connection: close")
        client.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if answer.has_body:
            await copy_body(upstream, client, length, chunked, until_eof=until_eof)
        await client.drain()
        return keep_upstream, keep_client

    async def _drain_answer(
        self, head: RequestHead, status_line: bytes, upstream: asyncio.StreamReader
    ) -> None:
        """Read an answer to its end and throw it away."""
        answer = await read_answer_head(head, status_line, upstream)
        if answer.has_body:
            await copy_body(
                upstream, Discard(), answer.length, answer.chunked, until_eof=answer.until_eof
            )
