"""A small HTTP/1.1 transport for httpx on asyncio: plain ``http://``, one request at a time per connection.

httpx's own transport goes through httpcore's pool and state machines for every request; for a load
generator sending the same small request again and again that bookkeeping costs more than the exchange
itself (notes/peers.md). This transport speaks HTTP/1.1 directly on an :class:`asyncio.Protocol`:

* response bodies framed by Content-Length, chunked encoding, or the server closing (HTTP/1.0 style);
  no body for HEAD, 1xx, 204 and 304 (interim 1xx answers are skipped);
* keep-alive: a connection whose answer was complete and not ``Connection: close`` is kept and reused;
  one the server closed while idle is replaced by a new one before sending. A request is never sent twice:
  if a reused connection fails after the request went out, that is an error (a load generator must count
  what the server saw, not hide it behind a silent retry);
* ``request.extensions["timeout"]`` (connect/read/write, as httpx.AsyncClient sets it) is honoured.

Anything else (``https://``, HTTP/2, proxies) is handed to :class:`httpx.AsyncHTTPTransport`, built
with the same arguments on first use. It needs an asyncio event loop (anyio's asyncio backend).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx

MAX_HEAD = 64 * 1024
HIGH_WATER = 256 * 1024
NO_BODY_STATUS = frozenset({204, 304})


class _Connection(asyncio.Protocol):
    """One TCP connection: a receive buffer, wake-ups when bytes arrive, and the response parser."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.reusable = False
        self.deadline: float | None = None  # loop time by which the whole exchange must be over

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_drain()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_drain(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # used by the transport

    @property
    def is_idle_usable(self) -> bool:
        return not self.eof and not self.buffer and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    async def more(self, timeout: float | None) -> None:
        """Wait until more bytes (or the end of the stream) arrive."""
        if self.reading_paused and self.transport is not None:
            self.transport.resume_reading()
            self.reading_paused = False
        waiter = self.waiter = self.loop.create_future()
        deadline = self.deadline
        if timeout is not None:
            deadline = min(deadline, self.loop.time() + timeout) if deadline is not None else self.loop.time() + timeout
        if deadline is None:
            await waiter
            return
        timer = self.loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

    async def write(self, data: bytes, timeout: float | None) -> None:
        if self.eof or self.transport is None or self.transport.is_closing():
            raise httpx.WriteError("connection closed before the request was sent")
        self.transport.write(data)
        if self.writing_paused:
            waiter = self.drain_waiter = self.loop.create_future()
            if self.deadline is not None:
                timeout = min(timeout or math.inf, max(self.deadline - self.loop.time(), 0.0))
            try:
                await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                raise httpx.WriteTimeout("timed out sending the request") from None

    def take(self, count: int) -> bytes:
        buffer = self.buffer
        if count >= len(buffer):
            chunk = bytes(buffer)
            buffer.clear()
        else:
            chunk = bytes(buffer[:count])
            del buffer[:count]
        if self.reading_paused and len(buffer) < HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.reading_paused = False
        return chunk

    async def read_line(self, timeout: float | None, what: str) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = self.take(end + 2)
                return line[:-2]
            if len(self.buffer) > MAX_HEAD:
                raise httpx.RemoteProtocolError(f"{what} line too long")
            if self.eof:
                raise _closed_mid_body(self.error)
            await self.more(timeout)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("timed out waiting for the response"))


def _closed_mid_body(error: BaseException | None) -> httpx.RemoteProtocolError:
    exc = httpx.RemoteProtocolError("peer closed connection without sending complete message body (incomplete)")
    exc.__cause__ = error
    return exc


class _Head:
    """The status line and headers of an answer, and how its body is framed."""

    __slots__ = ("chunked", "headers", "keep_alive", "length", "reason", "status", "version")

    def __init__(self, version: bytes, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.chunked = False
        self.length: int | None = None  # None with chunked False: delimited by the server closing
        self.keep_alive = version == b"HTTP/1.1"


def parse_head(block: bytes) -> _Head:
    """Parse ``HTTP/1.x STATUS REASON`` and the header lines (without the blank line)."""
    lines = block.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed header line {line[:100]!r}")
        headers.append((name, value.strip()))
    return _Head(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else b"", headers)


def frame_body(head: _Head, method: bytes) -> None:
    """Work out how the body ends and whether the connection can be reused afterwards."""
    connection: list[bytes] = []
    lengths: set[bytes] = set()
    for name, value in head.headers:
        lowered = name.lower()
        if lowered == b"content-length":
            lengths.add(value)
        elif lowered == b"transfer-encoding":
            head.chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif lowered == b"connection":
            connection.extend(token.strip().lower() for token in value.split(b","))
    if head.version == b"HTTP/1.0":
        head.keep_alive = b"keep-alive" in connection
    elif b"close" in connection:
        head.keep_alive = False
    if head.status == 101:
        head.keep_alive = False  # switched to another protocol: not ours to reuse
    if method == b"HEAD" or head.status < 200 or head.status in NO_BODY_STATUS:
        head.chunked, head.length = False, 0
    elif head.chunked:
        pass
    elif lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise httpx.RemoteProtocolError(f"invalid Content-Length {sorted(lengths)!r}")
        head.length = int(next(iter(lengths)))
    else:
        head.keep_alive = False  # the body runs until the server closes the connection


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; closing it hands the connection back (or closes it)."""

    def __init__(self, transport: HTTP11Transport, conn: _Connection, head: _Head, timeout: float | None) -> None:
        self._transport = transport
        self._conn = conn
        self._head = head
        self._timeout = timeout
        self._done = head.length == 0 and not head.chunked

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._done:
            return
        head = self._head
        if not head.chunked and head.length is not None and len(self._conn.buffer) >= head.length:
            self._done = True  # the usual case for a short answer: the whole body came with the head
            yield self._conn.take(head.length)
            return
        try:
            if head.chunked:
                async for chunk in self._chunked():
                    yield chunk
            elif head.length is not None:
                async for chunk in self._sized(head.length):
                    yield chunk
            else:
                async for chunk in self._until_close():
                    yield chunk
        except BaseException:
            self._conn.close()
            raise
        self._done = True

    async def _sized(self, length: int) -> AsyncIterator[bytes]:
        conn = self._conn
        remaining = length
        while remaining:
            if conn.buffer:
                chunk = conn.take(remaining)
                remaining -= len(chunk)
                yield chunk
            elif conn.eof:
                exc = httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body "
                    f"(received {length - remaining} bytes, expected {length})"
                )
                raise exc from conn.error
            else:
                await conn.more(self._timeout)

    async def _chunked(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            line = await conn.read_line(self._timeout, "chunk size")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"malformed chunk size line {line[:100]!r}") from None
            if size == 0:
                while await conn.read_line(self._timeout, "trailer"):
                    pass
                return
            async for chunk in self._sized(size):
                yield chunk
            if await conn.read_line(self._timeout, "chunk end") != b"":
                raise httpx.RemoteProtocolError("chunk not followed by CRLF")

    async def _until_close(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.buffer:
                yield conn.take(len(conn.buffer))
            elif conn.eof:
                return
            else:
                await conn.more(self._timeout)

    async def aclose(self) -> None:
        conn = self._conn
        if self._done and self._head.keep_alive and conn.reusable:
            self._transport._release(conn)
        else:
            conn.close()


class HTTP11Transport(httpx.AsyncBaseTransport):
    """An httpx transport for plain HTTP/1.1 on asyncio; https, HTTP/2 and proxies go to httpx's own.

    Keeps up to ``max_keepalive`` idle connections; opens a new one whenever none is idle (no upper
    bound on connections: callers bound concurrency themselves, as respy's workers do).
    """

    def __init__(
        self,
        *,
        max_keepalive: int = 10,
        total_timeout: float | None = None,
        http2: bool = False,
        proxy: Any = None,
        **fallback: Any,
    ) -> None:
        self._max_keepalive = max_keepalive
        self._total_timeout = total_timeout
        self._delegate_all = http2 or proxy is not None
        self._fallback_options = {"http2": http2, "proxy": proxy, **fallback}
        self._fallback: httpx.AsyncHTTPTransport | None = None
        self._idle: list[_Connection] = []
        self._prepared_for: tuple[httpx.Request, bytes, bool] | None = None

    def serves(self, request: httpx.Request) -> bool:
        """Whether this transport itself (not the httpx fallback) sends ``request``."""
        return not self._delegate_all and request.url.scheme == "http"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; with ``total_timeout``, connect-to-last-body-byte must fit in it."""
        if not self.serves(request):
            return await self._fallback_transport().handle_async_request(request)
        timeouts = request.extensions.get("timeout") or {}
        deadline = None
        if self._total_timeout is not None:
            deadline = asyncio.get_running_loop().time() + self._total_timeout
        conn = self._idle_connection() or await self._connect(request.url, timeouts.get("connect"), deadline)
        return await self._exchange(conn, request, timeouts, deadline)

    async def _exchange(
        self, conn: _Connection, request: httpx.Request, timeouts: dict[str, Any], deadline: float | None
    ) -> httpx.Response:
        read_timeout = timeouts.get("read")
        conn.deadline = deadline
        conn.reusable = False
        try:
            await self._send(conn, request, timeouts.get("write"))
            head = await self._read_head(conn, request.method.encode(), read_timeout)
        except BaseException:
            conn.close()
            raise
        conn.reusable = head.keep_alive and self._keeps_alive(request)
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=_Body(self, conn, head, read_timeout),
            request=request,
            extensions={"http_version": head.version, "reason_phrase": head.reason},
        )

    async def _send(self, conn: _Connection, request: httpx.Request, timeout: float | None) -> None:
        await conn.write(self._request_head(request), timeout)
        try:
            content = request.content
        except httpx.RequestNotRead:
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            async for part in request.stream:  # type: ignore[union-attr]
                if part:
                    await conn.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part, timeout)
            if chunked:
                await conn.write(b"0\r\n\r\n", timeout)
            return
        if content:
            await conn.write(content, timeout)

    def _request_head(self, request: httpx.Request) -> bytes:
        return self._prepared(request)[1]

    def _keeps_alive(self, request: httpx.Request) -> bool:
        return self._prepared(request)[2]

    def _prepared(self, request: httpx.Request) -> tuple[httpx.Request, bytes, bool]:
        """The request's head as sent, and whether it lets the connection live (cached: a load generator
        re-sends the same request object)."""
        cached = self._prepared_for
        if cached is not None and cached[0] is request:
            return cached
        lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw)
        lines.append(b"\r\n")
        connection = request.headers.get("connection")
        keeps_alive = connection is None or "close" not in connection.lower()
        self._prepared_for = (request, b"".join(lines), keeps_alive)
        return self._prepared_for

    async def _read_head(self, conn: _Connection, method: bytes, timeout: float | None) -> _Head:
        while True:
            buffer = conn.buffer
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise httpx.RemoteProtocolError("response head too large")
                if conn.eof:
                    if not buffer:
                        exc = httpx.RemoteProtocolError("Server disconnected without sending a response.")
                        raise exc from conn.error  # a reset stays a reset
                    raise _closed_mid_body(conn.error)
                await conn.more(timeout)
                continue
            head = parse_head(conn.take(end + 4)[:-4])
            if 100 <= head.status < 200 and head.status != 101:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            frame_body(head, method)
            return head

    def _idle_connection(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.is_idle_usable:
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection) -> None:
        if len(self._idle) < self._max_keepalive and conn.is_idle_usable:
            self._idle.append(conn)
        else:
            conn.close()

    async def _connect(self, url: httpx.URL, timeout: float | None, deadline: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        host = url.host
        port = url.port or 80
        if deadline is not None:
            timeout = min(timeout or math.inf, max(deadline - loop.time(), 0.0))
        try:
            if timeout is None:
                _, conn = await loop.create_connection(_Connection, host, port)
            else:
                _, conn = await asyncio.wait_for(loop.create_connection(_Connection, host, port), timeout)
        except asyncio.TimeoutError as exc:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    def _fallback_transport(self) -> httpx.AsyncHTTPTransport:
        if self._fallback is None:
            self._fallback = httpx.AsyncHTTPTransport(**self._fallback_options)
        return self._fallback

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
        if self._fallback is not None:
            await self._fallback.aclose()
