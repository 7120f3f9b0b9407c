"""respy's own HTTP/1.1 lane for plain ``http://`` on asyncio: one connection per worker, answers parsed by
llhttp (Node's parser, through MagicStack's ``httptools``), no httpx objects per request.

Why not httpx here: building its Request/Response objects and body streams for every answer cost more than
the exchange itself (issue 15's profile: ≈ 10 µs of 45 per request). https, HTTP/2, proxies and trio still
go through httpx (``httpx_lane``).

What the lane promises, whatever the server sends:

* one answer or one :class:`ExchangeError` per request, and never a silent re-send: a reused connection
  found closed *before* sending is replaced; once the request went out, a failure is that request's row;
* parsing is llhttp's, strict: a response it rejects (a chunk size of ``-5``, ``0x5``, a Content-Length of
  ``+5``, Content-Length with Transfer-Encoding, NUL or bare CR in a header...) is
  ``malformed response (<llhttp's reason>)`` and the connection is dropped;
* bounded memory: the head may grow to ``MAX_HEAD`` bytes, the body is kept up to ``body_cap`` bytes and
  the rest is counted and dropped, up to ``max_body`` bytes, after which the connection is dropped;
* the whole-request deadline holds while data keeps arriving: one :class:`Watchdog` per event loop looks
  at every exchange in flight every ``TICK_S`` and fails the late ones (cheaper than a timer per wait);
* the parser is fed from ``data_received``, a callback: however fast a server streams, the event loop
  gets control back after every read, so signals and the watchdog are never starved.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import httptools

from respy.send.classify import label_error

MAX_HEAD = 64 * 1024
DEFAULT_MAX_BODY = 64 * 1024 * 1024
TICK_S = 0.05  # how often the watchdog looks at deadlines: a timeout fires at most this late

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]  # status, headers, the first body_cap bytes of the body
# Counts a reusable answer and returns the next request's deadline (None: there is no next request).
Then = Callable[[int, Headers, bytes], "float | None"]


class ExchangeError(Exception):
    """A request that got no complete HTTP answer; ``reason`` is its row's text after ``error: ``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _AbortError(Exception):
    """Raised inside a parser callback to stop parsing (the reason is already recorded)."""


@dataclass(frozen=True)
class Request:
    """One request, serialised once and re-sent as is."""

    host: str
    port: int
    data: bytes  # the head and the body, as they go on the wire
    is_head: bool  # HEAD: the answer has no body whatever its headers say
    keeps_alive: bool  # False when the request itself says ``Connection: close``
    keeps_headers: bool = True  # the answers' headers are wanted (``--by header:NAME``): else none are built
    body_cap: int = 64 * 1024
    max_body: int = DEFAULT_MAX_BODY


def serialise(
    method: str, host_header: str, path: str, headers: list[tuple[str, str]], body: bytes | None
) -> bytes:
    """The request as it goes on the wire (a Host header first unless the caller gave one)."""
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {host_header}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    elif body is None and method in ("POST", "PUT", "PATCH") and "content-length" not in names:
        lines.append("Content-Length: 0")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class Watchdog:
    """Fails every exchange past its deadline. One per run, looking at its open connections every ``TICK_S``
    while there are any: nothing to arm or cancel per request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watched: set[Connection] = set()
        self._handle: asyncio.TimerHandle | None = None

    def watch(self, conn: Connection) -> None:
        self.watched.add(conn)
        if self._handle is None:
            self._handle = self.loop.call_later(TICK_S, self._tick)

    def forget(self, conn: Connection) -> None:
        self.watched.discard(conn)

    def _tick(self) -> None:
        now = self.loop.time()
        for conn in [c for c in self.watched if c.waiter is not None and c.deadline <= now]:
            conn.fail("timeout")
        self._handle = self.loop.call_later(TICK_S, self._tick) if self.watched else None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class Outbox:
    """Requests wait here until the event loop has read every socket that was ready, then go out together.

    Sending a request as soon as its connection's answer is counted interleaves every ``send`` with the
    reading and parsing of the other answers; sending the ones that pile up during one pass of the loop back
    to back costs 6–8 % less CPU per request at c = 50 and 100 against a local nginx (at c = 2 it costs 7 %
    more: see ``engine.OUTBOX_FROM``). A request waits at most for that pass, which its latency includes,
    as it includes the time its answer waited in the socket for the same pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[Connection] = []

    def post(self, conn: Connection) -> None:
        if not self.waiting:
            self.loop.call_soon(self._flush)
        self.waiting.append(conn)

    def _flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        for conn in waiting:
            transport = conn.transport
            if transport is not None and not transport.is_closing():  # a connection dropped meanwhile: its
                transport.write(conn.request.data)  # exchange has already failed (connection_lost)


class Connection(asyncio.Protocol):
    """One TCP connection and its llhttp parser; one exchange at a time.

    It has no ``on_header``: httptools then builds no header objects at all (five calls and ten bytes objects
    per answer, ≈ 5 % of the client's time). :class:`HeadersConnection` keeps them, for ``--by header:NAME``;
    a redirect's head is read again for its headers (by body, its Location is its label).
    Whether a body is framed is llhttp's to say (``should_keep_alive``); only when a server closes a
    connection mid-answer without keep-alive are the head's bytes read again for it (``_framed_head``).
    """

    def __init__(self, request: Request, watchdog: Watchdog, index: int = 0, outbox: Outbox | None = None) -> None:
        self.request = request
        self.outbox = outbox  # None: each request is written at once
        self.body_cap = request.body_cap
        self.max_body = request.max_body
        self.watchdog = watchdog
        self.index = index  # which connection of the run this is (answers are tagged with it)
        self.loop = watchdog.loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Answer | None] | None = None
        self.deadline = math.inf
        self.closed = False
        self.reusable = False  # idle, open, and left clean by its last exchange: the next may use it
        self.fresh_parser_needed = False
        # the answer being read (the head's part is reset again by on_message_begin, for interim answers)
        self.status = 0
        self.headers: Headers = []
        self.head_done = False
        self.framed = False  # Content-Length or chunked: the body does not run until the server closes
        self.interim = False
        self.parts: list[bytes] = []
        self.head_chunks: list[bytes] = []  # what arrived until the head was complete (bounded by MAX_HEAD)
        self.body_size = self.received = 0  # received: bytes of this exchange so far (the head's, until it is done)
        self.failure: str | None = None
        self.then: Then | None = None  # see exchange()
        self.parked: tuple[asyncio.Future[Answer | None], Answer] | None = None

    # -- sending ------------------------------------------------------------------------------------------------

    def exchange(self, deadline: float) -> asyncio.Future[Answer | None]:
        """Send the request; the future resolves to the answer or fails with :class:`ExchangeError`.

        With ``then`` set, a complete answer on a connection that stays reusable is handed to ``then`` from
        the socket callback, once the read that brought it is parsed, and the next request goes out at once
        on the same future: no task switch per request. The future then resolves only when the chain
        ends: to None when ``then`` counted the last answer, else to the answer (or error) that ended it."""
        waiter: asyncio.Future[Answer | None] = self.loop.create_future()
        self._send(waiter, deadline)
        return waiter

    def _send(self, waiter: asyncio.Future[Answer | None], deadline: float) -> None:
        if self.fresh_parser_needed:
            self.parser = httptools.HttpResponseParser(self)
            self.fresh_parser_needed = False
        # what on_headers_complete sets for every answer (status, interim, framed) is not reset here
        self.parts = []
        self.head_chunks = []
        self.body_size = self.received = 0
        self.head_done = self.reusable = False
        self.waiter = waiter
        self.deadline = deadline
        if self.outbox is not None:
            self.outbox.post(self)
        else:
            assert self.transport is not None
            self.transport.write(self.request.data)

    def fail(self, reason: str) -> None:
        """End the exchange in flight with ``reason`` and drop the connection."""
        self.reusable = False
        self._settle_error(reason)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def _settle_error(self, reason: str) -> None:
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ExchangeError(reason))

    # -- asyncio.Protocol -----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.watchdog.watch(self)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self.close()  # bytes nobody asked for: this connection can no longer be trusted
            return
        self.received += len(data)
        if not self.head_done:
            self.head_chunks.append(data)  # before parsing: the chunk that ends the head is kept too
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.reusable = False  # 101 Switching Protocols: what follows is not HTTP/1.1 any more
            self._complete(keep_alive=False)
            self.close()
        except httptools.HttpParserError as exc:
            self.fail(self.failure or f"malformed response ({exc})")
        else:
            # every read so far left the head incomplete (``received`` counts from this exchange's start)
            if not self.head_done and self.received > MAX_HEAD and self.waiter is not None:
                self.fail(f"malformed response (head over {MAX_HEAD // 1024} KiB)")
        if self.parked is None:
            return
        # After the read is parsed: the answer it completed goes to ``then`` (and the next request out) if the
        # connection is still reusable (the rest of the read held no second answer), else to the waiter.
        waiter, answer = self.parked
        self.parked = None
        if waiter.done():  # cancelled
            return
        if not self.reusable or self.then is None:
            waiter.set_result(answer)
            return
        try:
            deadline = self.then(*answer)
        except BaseException as exc:  # a bug in counting: the worker raises it, as if it had counted itself
            waiter.set_exception(exc)
            raise
        if deadline is None:
            waiter.set_result(None)  # counted; no request follows
        else:
            self._send(waiter, deadline)

    def eof_received(self) -> bool:
        self._closed(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.watchdog.forget(self)
        self._closed(exc)

    def _closed(self, exc: BaseException | None) -> None:
        self.closed = True
        self.reusable = False
        if self.waiter is None:
            return
        if self.head_done and not self.interim and not self._framed():
            self._complete(keep_alive=False)  # the body ran until the server closed: that is its end
        elif _is_reset(exc):
            self._settle_error("connection reset")
        elif self.received == 0:
            self._settle_error("connection closed before any response")
        else:
            self._settle_error("connection closed mid-response")

    # -- llhttp callbacks -----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None and not self.fresh_parser_needed:
            self.reusable = False  # a second answer to one request: drop the connection after this read
            if self.transport is not None:
                self.transport.close()

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = self.status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 100 Continue, 103 Early Hints: the real answer follows
            return
        self.interim = False
        self.head_done = True
        if self.request.is_head:
            self.framed = True  # no body, whatever the headers say
            self.fresh_parser_needed = True  # llhttp would read a body of Content-Length bytes: start afresh
            self._complete(keep_alive=parser.should_keep_alive())
        else:
            # no body for 204, 304 (or a 1xx), and llhttp keeps alive only an answer whose end it can find
            # without the close
            self.framed = status in (204, 304) or status < 200 or parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        if self.waiter is None:
            return  # after a HEAD answer: nothing to keep
        before = self.body_size
        size = self.body_size = before + len(data)
        if size > self.max_body:
            self.failure = f"body over the --max-body limit ({size_text(self.max_body)}): connection dropped"
            raise _AbortError
        if before < self.body_cap:
            self.parts.append(data if size <= self.body_cap else data[: self.body_cap - before])

    def on_message_complete(self) -> None:
        if self.interim:
            return  # the real answer follows (its on_headers_complete resets ``interim``)
        if self.waiter is not None:
            self._complete(keep_alive=self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        parts = self.parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self.reusable = keep_alive and self.request.keeps_alive and not self.closed
        waiter = self.waiter
        self.waiter = None
        if waiter is None or waiter.done():
            return
        headers = self.headers
        if 300 <= self.status < 400 and not self.request.keeps_headers:
            headers = _head_headers(self.head_chunks)  # a redirect is labelled by its Location
        if self.then is not None and self.reusable:
            self.parked = (waiter, (self.status, headers, body))  # see data_received, once this read is parsed
        else:
            waiter.set_result((self.status, headers, body))

    def _framed(self) -> bool:
        """Whether the answer's body has a length or is chunked (else it runs until the server closes)."""
        return self.framed or _framed(self.headers if self.request.keeps_headers else _head_headers(self.head_chunks))


class HeadersConnection(Connection):
    """A :class:`Connection` that keeps every answer's headers (``--by header:NAME`` labels with them)."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.headers = []  # an interim answer's headers are not the answer's

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))


class _HeadReader:
    """The headers of the final (not 1xx) answer's head, read again from the bytes that brought it."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: Headers = []

    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not 100 <= self.parser.get_status_code() < 200:
            raise _AbortError  # the head that matters is read: stop before the body


def _head_headers(chunks: list[bytes]) -> Headers:
    reader = _HeadReader()
    # stopped by _HeadReader once the head is read, or by the error the answer already failed with
    with suppress(httptools.HttpParserError, httptools.HttpParserUpgrade):
        reader.parser.feed_data(b"".join(chunks))
    return reader.headers


def _framed(headers: Headers) -> bool:
    """Whether a body has a length or is chunked (else it runs until the server closes)."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and value.lower().endswith(b"chunked")):
            return True
    return False


def _is_reset(exc: BaseException | None) -> bool:
    return isinstance(exc, ConnectionResetError | BrokenPipeError) or (
        isinstance(exc, OSError) and "reset" in str(exc).lower()
    )


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


async def connect(
    request: Request, watchdog: Watchdog, deadline: float, index: int = 0, outbox: Outbox | None = None
) -> Connection:
    """A new connection to the request's host, within ``deadline`` (loop time); :class:`ExchangeError` if not."""
    loop = watchdog.loop
    kind = HeadersConnection if request.keeps_headers else Connection
    factory: Callable[[], Connection] = lambda: kind(request, watchdog, index, outbox)  # noqa: E731
    try:
        _, conn = await asyncio.wait_for(
            loop.create_connection(factory, request.host, request.port), max(deadline - loop.time(), 0.0)
        )
    except asyncio.TimeoutError:
        raise ExchangeError("timeout") from None
    except OSError as exc:
        raise ExchangeError(label_error(exc).removeprefix("error: ")) from exc
    return conn
