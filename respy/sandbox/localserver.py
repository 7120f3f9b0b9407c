"""A tiny HTTP/1.1 server on 127.0.0.1 for the demo and the tests (keep-alive, counts what it serves).

It runs its own asyncio loop in a background thread, so the client under test keeps the main thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes
    peer: str = ""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


Handler = Callable[[Request], Awaitable[Response]]

REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}
MAX_HEAD = 64 * 1024


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    answered: dict[bytes, int] = field(default_factory=dict)


class LocalServer:
    """``with LocalServer(handler) as server: server.url`` serves ``handler`` until the block ends."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.stats = Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"local-server-{id(self)}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._stop.wait()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        peer = writer.get_extra_info("peername")
        try:
            while True:
                request = await read_request(reader, peer=str(peer))
                if request is None:
                    break
                response = await self._answer(request)
                writer.write(encode_response(response, request))
                await writer.drain()
                if response.close or wants_close(request):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _answer(self, request: Request) -> Response:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await self.handler(request)
        except Exception as exc:
            response = Response(500, f"handler error: {exc}".encode())
        finally:
            stats.in_flight -= 1
        stats.answered[response.body] = stats.answered.get(response.body, 0) + 1
        return response


async def start_together(handlers: list[Handler], host: str = "127.0.0.1") -> list[asyncio.Server]:
    """One server per handler on the running event loop (no thread each): they answer in arrival order, so
    none is starved by the others, as can happen when each has its own thread."""
    servers = []
    for handler in handlers:
        local = LocalServer(handler, host)
        servers.append(await asyncio.start_server(local._serve_connection, host, 0, backlog=1024))
    return servers


async def read_request(reader: asyncio.StreamReader, peer: str = "") -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    if len(head) > MAX_HEAD:
        raise ValueError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, version, headers, body, peer)


def wants_close(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    return connection == "close" or (request.version == "HTTP/1.0" and connection != "keep-alive")


def encode_response(response: Response, request: Request | None = None) -> bytes:
    reason = REASONS.get(response.status, "Status")
    head = [f"HTTP/1.1 {response.status} {reason}", f"Content-Length: {len(response.body)}"]
    head += [f"{name}: {value}" for name, value in response.headers]
    if response.close or (request is not None and wants_close(request)):
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body


def fixed(body: bytes | str, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Handler:
    """A handler that always answers the same thing."""
    payload = body.encode() if isinstance(body, str) else body

    async def handler(request: Request) -> Response:
        return Response(status, payload, list(headers or []))

    return handler
