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
import socket
import struct
import threading
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

__all__ = [
    "CountingProxy",
    "DropConnection",
    "Reply",
    "RequestCounts",
    "RequestHead",
    "RequestRecord",
    "ResetConnection",
    "classify_request",
]

Classifier = Callable[[str, str], str]
_Proxy = TypeVar("_Proxy", bound="CountingProxy")

# Headers about one hop's connection: the proxy manages its own on each side.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "te", "upgrade"}
)
_MAX_HEAD_BYTES = 64 * 1024
_COPY_CHUNK = 64 * 1024
# A request body up to this size is kept, so the request can be resent when a
# reused upstream connection turns out to be closed; larger bodies only stream.
_RESENDABLE_BODY = 1024 * 1024
_UPSTREAM_TIMEOUT_S = 120.0
_UPSTREAM_ATTEMPTS = 3
_UPSTREAM_RETRY_PAUSE_S = 0.05
_START_TIMEOUT_S = 10.0
_RECORDS_KEPT = 200_000

# GCS JSON API: ``/storage/v1/b/<bucket>/o`` lists, ``.../o/<object>`` is one object.
_GCS_OBJECTS = "/storage/v1/b/"


def classify_request(method: str, target: str) -> str:
    """The kind of a storage request, from its method and request target.

    Understands the S3 REST API (path-style), the GCS JSON and XML APIs and
    the Azure Blob REST API:

    * ``batch``: S3 ``POST ?delete`` (DeleteObjects), Azure ``POST ?comp=batch``
      (Blob Batch), GCS ``POST /batch/storage/v1``;
    * ``list``: S3/GCS-XML ``GET ?list-type=2`` or a bucket-level ``GET``,
      Azure ``GET ?comp=list``, GCS JSON ``GET /storage/v1/b/<bucket>/o``;
    * ``get``: reading an object's bytes (``GET`` of an object, GCS ``alt=media``);
    * ``head``: reading metadata only (``HEAD``, a GCS JSON object ``GET``
      without ``alt=media``);
    * ``put``: ``PUT`` of an object or block, GCS ``POST /upload/...``;
    * ``delete``: ``DELETE``;
    * ``other``: anything else (S3 ``?location``, GCS bucket metadata, bucket creation ...).
    """
    path, _, query = target.partition("?")
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    comp = params.get("comp", [""])[0]
    if method == "POST":
        if "delete" in params or comp == "batch" or path.startswith("/batch/"):
            return "batch"
        if path.startswith("/upload/"):
            return "put"
        return "other"
    if method == "GET":
        if "location" in params:
            return "other"
        if "list-type" in params or comp == "list":
            return "list"
        if _GCS_OBJECTS in path:
            after_bucket = path.split(_GCS_OBJECTS, 1)[1].split("/", 2)
            if len(after_bucket) == 1:
                return "other"  # bucket metadata
            if len(after_bucket) == 2 and after_bucket[1] == "o":
                return "list"
            if len(after_bucket) == 3 and params.get("alt") != ["media"]:
                return "head"
            return "get"
        if len([segment for segment in path.split("/") if segment]) <= 1:
            return "list"  # path-style bucket GET (ListObjects v1)
        return "get"
    if method == "HEAD":
        return "head"
    if method == "PUT":
        return "put"
    if method == "DELETE":
        return "delete"
    return "other"


@dataclass(frozen=True)
class RequestHead:
    """A request as received: method, target (path and query), version and headers.

    ``body`` is the request's whole body where :meth:`CountingProxy.reads_body`
    asked for it, else None (the body then streams upstream unread).
    """

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One request the proxy received, with the status it answered (None: no answer)."""

    method: str
    target: str
    kind: str
    status: int | None


@dataclass(frozen=True)
class RequestCounts:
    """Requests counted by kind and by method; subtract two to count what happened between."""

    by_kind: dict[str, int] = field(default_factory=dict)
    by_method: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def __getitem__(self, kind: str) -> int:
        return self.by_kind.get(kind, 0)

    @classmethod
    def of(cls, records: Iterable[RequestRecord]) -> RequestCounts:
        """Counts of ``records`` (for example only those answered below 500)."""
        by_kind: Counter[str] = Counter()
        by_method: Counter[str] = Counter()
        for record in records:
            by_kind[record.kind] += 1
            by_method[record.method] += 1
        return cls(dict(sorted(by_kind.items())), dict(by_method))

    def __sub__(self, earlier: RequestCounts) -> RequestCounts:
        return RequestCounts(
            by_kind=_minus(self.by_kind, earlier.by_kind),
            by_method=_minus(self.by_method, earlier.by_method),
        )


def _minus(later: dict[str, int], earlier: dict[str, int]) -> dict[str, int]:
    difference = Counter(later)
    difference.subtract(earlier)
    return {key: count for key, count in sorted(difference.items()) if count}


@dataclass(frozen=True)
class Reply:
    """An answer :meth:`CountingProxy.intercept` gives instead of forwarding."""

    status: int
    body: bytes = b""
    headers: Iterable[tuple[str, str]] = ()
    reason: str = ""


class DropConnection(Exception):
    """Raised by :meth:`CountingProxy.intercept`: close the client connection, answer nothing."""


class ResetConnection(DropConnection):
    """Like :class:`DropConnection`, but the client's connection is reset (TCP RST), not closed."""


class _UpstreamClosed(Exception):
    """A reused upstream connection was closed before any byte of the answer came."""


class _Upstream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = False

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()  # not awaited: a close must not wait (nor be cancelled) midway


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
        self._lock = threading.Lock()
        self._by_kind: Counter[str] = Counter()
        self._by_method: Counter[str] = Counter()
        # Entries [method, target, kind, status]: appended when a request arrives,
        # the status filled in before any byte of the answer reaches the client.
        self._records: deque[list[Any]] = deque(maxlen=_RECORDS_KEPT)
        self._failures: list[str] = []
        self._recorded = 0  # records ever appended, for mark() / records_since()
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
                    asyncio.start_server(self._serve_client, "127.0.0.1", 0, limit=_MAX_HEAD_BYTES)
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
        with self._lock:
            return RequestCounts(dict(sorted(self._by_kind.items())), dict(self._by_method))

    @property
    def records(self) -> list[RequestRecord]:
        """The requests received (the most recent 200,000), oldest first."""
        with self._lock:
            return [RequestRecord(*entry) for entry in self._records]

    @property
    def failures(self) -> list[str]:
        """Requests the proxy could not complete (upstream unreachable, a connection
        broken midway), as ``"METHOD target: error"``; a client may have sent them again."""
        with self._lock:
            return list(self._failures)

    def reset(self) -> RequestCounts:
        """Zero the counts and records; return the counts as they were."""
        with self._lock:
            counts = RequestCounts(dict(sorted(self._by_kind.items())), dict(self._by_method))
            self._by_kind.clear()
            self._by_method.clear()
            self._records.clear()
            self._failures.clear()
            self._recorded = 0
            return counts

    def _count(self, head: RequestHead) -> list[Any]:
        """Count a request as it arrives; return its record entry (status to come)."""
        kind = self.classify(head.method, head.target)
        entry: list[Any] = [head.method, head.target, kind, None]
        with self._lock:
            self._by_kind[kind] += 1
            self._by_method[head.method] += 1
            self._records.append(entry)
            self._recorded += 1
        return entry

    def _answered(self, entry: list[Any], status: int) -> None:
        """Note the status of a request, before the client can see the answer."""
        with self._lock:
            entry[3] = status

    def mark(self) -> int:
        """A position in the records, for :meth:`records_since`."""
        with self._lock:
            return self._recorded

    def records_since(self, mark: int) -> list[RequestRecord]:
        """The requests received since ``mark``, oldest first.

        Every request is recorded when it arrives and its status before the
        client sees any of the answer, so once a client has its answer, the
        request is here with its status (None: not answered).
        """
        with self._lock:
            newer = self._recorded - mark
            if newer > len(self._records):
                raise RuntimeError("more requests since the mark than the records keep")
            entries = list(self._records)[len(self._records) - newer :] if newer else []
            return [RequestRecord(*entry) for entry in entries]

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
        upstream: _Upstream | None = None
        head: RequestHead | None = None
        try:
            while True:
                head = None
                head = await _read_request_head(reader)
                if head is None:
                    return
                entry = self._count(head)
                keep_client = _keeps_alive(head.version, head.header("connection"))
                continue_sent = False
                if self.reads_body(head):
                    continue_sent = await _send_continue(head, writer)
                    head = replace(head, body=await _read_body(reader, head))
                try:
                    reply = await self.intercept(head)
                except DropConnection as drop:
                    _abort_if_reset(drop, writer)
                    return
                if reply is not None:
                    if head.body is None:
                        await _discard_body(reader, head)
                    self._answered(entry, reply.status)
                    await _write_reply(writer, reply, keep_client)
                    if not keep_client:
                        return
                    continue
                if not continue_sent:
                    await _send_continue(head, writer)
                upstream, keep_client = await self._forward(
                    head, entry, reader, writer, upstream, keep_client
                )
                if not keep_client:
                    return
        except DropConnection as drop:  # raised by intercept_answer
            _abort_if_reset(drop, writer)
            return
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
            # A broken or malformed exchange: close both connections. A failure
            # in the middle of a request is noted (a client may send it again).
            if head is not None:
                with self._lock:
                    self._failures.append(f"{head.method} {head.target}: {error!r}")
            return
        except asyncio.CancelledError:
            return  # close() cancels the connections; ending quietly keeps asyncio quiet
        finally:
            if upstream is not None:
                upstream.close()
            writer.close()
            self._clients.discard(task)

    async def _connect(self) -> _Upstream:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.upstream_host, self.upstream_port, limit=_MAX_HEAD_BYTES),
            _UPSTREAM_TIMEOUT_S,
        )
        return _Upstream(reader, writer)

    async def _forward(
        self,
        head: RequestHead,
        entry: list[Any],
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream: _Upstream | None,
        keep_client: bool,
    ) -> tuple[_Upstream | None, bool]:
        """Send one request upstream and its answer back; return the connection to reuse."""
        length = head.header("content-length")
        chunked = "chunked" in (head.header("transfer-encoding") or "").lower()
        body: bytes | None = head.body
        if body is not None and chunked:
            body = _chunked(body)  # framed as the client framed it
        elif body is None and not chunked and (length is None or int(length) <= _RESENDABLE_BODY):
            body = await client_reader.readexactly(int(length or 0))
        request_head = self._upstream_head(head)
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
                    await _copy_body(client_reader, upstream.writer, length, chunked)
                await upstream.writer.drain()
                status_line = await asyncio.wait_for(
                    upstream.reader.readline(), _UPSTREAM_TIMEOUT_S
                )
                if not status_line:
                    raise _UpstreamClosed
            except (_UpstreamClosed, OSError):
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
            await self.intercept_answer(head, _parse_status_line(status_line)[1])
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

    def _upstream_head(self, head: RequestHead) -> bytes:
        lines = [f"{head.method} {head.target} HTTP/1.1"]
        for name, value in head.headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or lowered == "expect":
                continue
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _relay_answer(
        self,
        head: RequestHead,
        entry: list[Any],
        status_line: bytes,
        upstream: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        keep_client: bool,
    ) -> tuple[bool, bool]:
        answer = await _read_answer_head(head, status_line, upstream)
        status, headers, length, chunked = (
            answer.status,
            answer.headers,
            answer.length,
            answer.chunked,
        )
        keep_upstream, until_eof = answer.keep_alive, answer.until_eof
        if until_eof:
            keep_upstream = keep_client = False  # only the end of the connection frames it
        self._answered(entry, status)
        lines = [f"HTTP/1.1 {status} {answer.reason}"]
        for name, value in headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                continue
            if lowered == "location" and value.startswith(self.upstream_base):
                value = self.url + value[len(self.upstream_base) :]
            lines.append(f"{name}: {value}")
        if not keep_client:
            lines.append("Connection: close")
        client.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if answer.has_body:
            await _copy_body(upstream, client, length, chunked, until_eof=until_eof)
        await client.drain()
        return keep_upstream, keep_client

    async def _drain_answer(
        self, head: RequestHead, status_line: bytes, upstream: asyncio.StreamReader
    ) -> None:
        """Read an answer to its end and throw it away."""
        answer = await _read_answer_head(head, status_line, upstream)
        if answer.has_body:
            await _copy_body(
                upstream, _Discard(), answer.length, answer.chunked, until_eof=answer.until_eof
            )


@dataclass(frozen=True)
class _AnswerHead:
    """An answer's status and headers (interim answers skipped), and how its body is framed."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    keep_alive: bool
    has_body: bool
    chunked: bool
    length: str | None
    until_eof: bool


async def _read_answer_head(
    head: RequestHead, status_line: bytes, upstream: asyncio.StreamReader
) -> _AnswerHead:
    while True:
        version, status, reason = _parse_status_line(status_line)
        headers = await _read_header_lines(upstream)
        if not 100 <= status < 200 or status == 101:
            break
        status_line = await upstream.readline()  # an interim answer: skip it
    values = {name.lower(): value for name, value in headers}
    has_body = head.method != "HEAD" and status not in (204, 304)
    chunked = has_body and "chunked" in values.get("transfer-encoding", "").lower()
    length = values.get("content-length") if has_body and not chunked else None
    return _AnswerHead(
        status=status,
        reason=reason,
        headers=headers,
        keep_alive=_keeps_alive(version, values.get("connection")),
        has_body=has_body,
        chunked=chunked,
        length=length,
        until_eof=has_body and not chunked and length is None,
    )


class _Sink(Protocol):
    def write(self, data: bytes) -> object: ...

    async def drain(self) -> None: ...


class _Discard:
    """A sink that drops what it is given."""

    def write(self, data: bytes) -> None:
        return None

    async def drain(self) -> None:
        return None


def _abort_if_reset(drop: DropConnection, writer: asyncio.StreamWriter) -> None:
    """For :class:`ResetConnection`, abort the connection with an RST instead of a FIN."""
    if not isinstance(drop, ResetConnection):
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- HTTP/1.1 framing ---------------------------------------------------------


async def _read_header_lines(reader: asyncio.StreamReader) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        line = await reader.readline()
        total += len(line)
        if total > _MAX_HEAD_BYTES:
            raise ConnectionError("header section too large")
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))


async def _read_request_head(reader: asyncio.StreamReader) -> RequestHead | None:
    """The next request's head, or None when the client closed between requests."""
    line = await reader.readline()
    while line in (b"\r\n", b"\n"):
        line = await reader.readline()  # tolerated blank lines between requests
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise ConnectionError(f"malformed request line {line[:100]!r}")
    method, target, version = parts
    headers = await _read_header_lines(reader)
    return RequestHead(method, target, version, tuple(headers))


def _parse_status_line(line: bytes) -> tuple[str, int, str]:
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    return version, int(code), reason


def _keeps_alive(version: str, connection: str | None) -> bool:
    tokens = {token.strip().lower() for token in (connection or "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def _copy_body(
    source: asyncio.StreamReader,
    sink: _Sink,
    length: str | None,
    chunked: bool,
    *,
    until_eof: bool = False,
) -> None:
    """Stream one message body from ``source`` to ``sink``, framing kept as it was."""
    if chunked:
        while True:
            size_line = await source.readline()
            if not size_line:
                raise asyncio.IncompleteReadError(b"", None)
            sink.write(size_line)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailer section, then the empty line
                    trailer = await source.readline()
                    sink.write(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                break
            await _copy_exactly(source, sink, size + 2)  # the data and its CRLF
            await sink.drain()
        return
    if until_eof:
        while chunk := await source.read(_COPY_CHUNK):
            sink.write(chunk)
            await sink.drain()
        return
    await _copy_exactly(source, sink, int(length or 0))


async def _copy_exactly(source: asyncio.StreamReader, sink: _Sink, size: int) -> None:
    remaining = size
    while remaining:
        chunk = await source.read(min(remaining, _COPY_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        sink.write(chunk)
        remaining -= len(chunk)
        if remaining:
            await sink.drain()


async def _send_continue(head: RequestHead, writer: asyncio.StreamWriter) -> bool:
    """Answer ``Expect: 100-continue`` (the proxy reads the body); whether it was asked."""
    if (head.header("expect") or "").lower() != "100-continue":
        return False
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await writer.drain()
    return True


async def _read_body(reader: asyncio.StreamReader, head: RequestHead) -> bytes:
    """The whole body of a request, however it is framed."""
    if "chunked" not in (head.header("transfer-encoding") or "").lower():
        return await reader.readexactly(int(head.header("content-length") or 0))
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append((await reader.readexactly(size + 2))[:-2])


def _chunked(body: bytes) -> bytes:
    """``body`` as one chunk and the last, for a request the client sent chunked."""
    return (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"


async def _discard_body(reader: asyncio.StreamReader, head: RequestHead) -> None:
    length = head.header("content-length")
    if "chunked" in (head.header("transfer-encoding") or "").lower():
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return
            await reader.readexactly(size + 2)
    elif length:
        remaining = int(length)
        while remaining:
            chunk = await reader.read(min(remaining, _COPY_CHUNK))
            if not chunk:
                return
            remaining -= len(chunk)


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply, keep_alive: bool) -> None:
    reason = reply.reason or _REASONS.get(reply.status, "Status")
    lines = [f"HTTP/1.1 {reply.status} {reason}"]
    names = set()
    for name, value in reply.headers:
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if "content-length" not in names:
        lines.append(f"Content-Length: {len(reply.body)}")
    if not keep_alive:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
    await writer.drain()


_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
