"""HTTP/1.1 framing for the proxies: reading request and answer heads, and copying, reading or
discarding bodies however they are framed (``Content-Length``, chunked, end of connection)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "COPY_CHUNK",
    "HOP_BY_HOP",
    "MAX_HEAD_BYTES",
    "AnswerHead",
    "Discard",
    "DropConnection",
    "Reply",
    "RequestHead",
    "ResetConnection",
    "Sink",
    "Upstream",
    "UpstreamClosed",
    "abort_if_reset",
    "chunked_body",
    "copy_body",
    "discard_body",
    "keeps_alive",
    "parse_status_line",
    "read_answer_head",
    "read_body",
    "read_request_head",
    "send_continue",
    "upstream_head",
    "write_reply",
]

# Headers about one hop's connection: the proxy manages its own on each side.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "te", "upgrade"}
)
MAX_HEAD_BYTES = 64 * 1024
COPY_CHUNK = 64 * 1024


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


class UpstreamClosed(Exception):
    """A reused upstream connection was closed before any byte of the answer came."""


class Upstream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = False

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()  # not awaited: a close must not wait (nor be cancelled) midway


@dataclass(frozen=True)
class AnswerHead:
    """An answer's status and headers (interim answers skipped), and how its body is framed."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    keep_alive: bool
    has_body: bool
    chunked: bool
    length: str | None
    until_eof: bool


async def read_answer_head(
    head: RequestHead, status_line: bytes, upstream: asyncio.StreamReader
) -> AnswerHead:
    while True:
        version, status, reason = parse_status_line(status_line)
        headers = await _read_header_lines(upstream)
        if not 100 <= status < 200 or status == 101:
            break
        status_line = await upstream.readline()  # an interim answer: skip it
    values = {name.lower(): value for name, value in headers}
    has_body = head.method != "HEAD" and status not in (204, 304)
    chunked = has_body and "chunked" in values.get("transfer-encoding", "").lower()
    length = values.get("content-length") if has_body and not chunked else None
    return AnswerHead(
        status=status,
        reason=reason,
        headers=headers,
        keep_alive=keeps_alive(version, values.get("connection")),
        has_body=has_body,
        chunked=chunked,
        length=length,
        until_eof=has_body and not chunked and length is None,
    )


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...

    async def drain(self) -> None: ...


class Discard:
    """A sink that drops what it is given."""

    def write(self, data: bytes) -> None:
        return None

    async def drain(self) -> None:
        return None


def abort_if_reset(drop: DropConnection, writer: asyncio.StreamWriter) -> None:
    """For :class:`ResetConnection`, abort the connection with an RST instead of a FIN."""
    if not isinstance(drop, ResetConnection):
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_header_lines(reader: asyncio.StreamReader) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    total = 0
    while True:
        line = await reader.readline()
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise ConnectionError("header section too large")
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))


async def read_request_head(reader: asyncio.StreamReader) -> RequestHead | None:
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


def parse_status_line(line: bytes) -> tuple[str, int, str]:
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    return version, int(code), reason


def keeps_alive(version: str, connection: str | None) -> bool:
    tokens = {token.strip().lower() for token in (connection or "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def copy_body(
    source: asyncio.StreamReader,
    sink: Sink,
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
        while chunk := await source.read(COPY_CHUNK):
            sink.write(chunk)
            await sink.drain()
        return
    await _copy_exactly(source, sink, int(length or 0))


async def _copy_exactly(source: asyncio.StreamReader, sink: Sink, size: int) -> None:
    remaining = size
    while remaining:
        chunk = await source.read(min(remaining, COPY_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        sink.write(chunk)
        remaining -= len(chunk)
        if remaining:
            await sink.drain()


async def send_continue(head: RequestHead, writer: asyncio.StreamWriter) -> bool:
    """Answer ``Expect: 100-continue`` (the proxy reads the body); whether it was asked."""
    if (head.header("expect") or "").lower() != "100-continue":
        return False
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await writer.drain()
    return True


def _is_chunked(head: RequestHead) -> bool:
    return "chunked" in (head.header("transfer-encoding") or "").lower()


async def _each_chunk(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The data of each chunk of a chunked body; the last chunk's trailers are read and dropped."""
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        yield (await reader.readexactly(size + 2))[:-2]


async def read_body(reader: asyncio.StreamReader, head: RequestHead) -> bytes:
    """The whole body of a request, however it is framed."""
    if not _is_chunked(head):
        return await reader.readexactly(int(head.header("content-length") or 0))
    return b"".join([chunk async for chunk in _each_chunk(reader)])


def chunked_body(body: bytes) -> bytes:
    """``body`` as one chunk and the last, for a request the client sent chunked."""
    return (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"


async def discard_body(reader: asyncio.StreamReader, head: RequestHead) -> None:
    """Read a request's body and throw it away (a client that stops sending ends it early)."""
    length = head.header("content-length")
    if _is_chunked(head):
        async for _chunk in _each_chunk(reader):
            pass
    elif length:
        remaining = int(length)
        while remaining:
            chunk = await reader.read(min(remaining, COPY_CHUNK))
            if not chunk:
                return
            remaining -= len(chunk)


def upstream_head(head: RequestHead) -> bytes:
    """The head of ``head`` as forwarded: every header but hop-by-hop ones and ``Expect``."""
    lines = [f"{head.method} {head.target} HTTP/1.1"]
    for name, value in head.headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered == "expect":
            continue
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_reply(writer: asyncio.StreamWriter, reply: Reply, keep_alive: bool) -> None:
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
