"""respy's HTTP/1.1 transport against raw asyncio servers: body framing, keep-alive, reconnects, fallback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from respy.send.transport import HTTP11Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    """A raw TCP server on 127.0.0.1: ``handler(reader, writer, server)`` runs once per connection."""

    handler: Handler
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/path?q=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head


def keep_alive(*answers: bytes) -> Handler:
    """Answer each request on a connection with the next of ``answers`` (cycling), keeping it open."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        index = 0
        while await server.read_request(reader) is not None:
            writer.write(answers[index % len(answers)])
            index += 1
            await writer.drain()

    return handler


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def run(coro: Awaitable[object]) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def get(transport: HTTP11Transport, url: str, method: str = "GET", **kwargs: object) -> httpx.Response:
    response = await transport.handle_async_request(httpx.Request(method, url, **kwargs))  # type: ignore[arg-type]
    await response.aread()
    await response.aclose()
    return response


def test_content_length_bodies_reuse_one_connection() -> None:
    async def main() -> None:
        async with Server(keep_alive(ok(b"hello"), ok(b""), ok(b"x" * 70_000))) as server:
            transport = HTTP11Transport()
            bodies = [(await get(transport, server.url)).content for _ in range(3)]
            await transport.aclose()
        assert bodies == [b"hello", b"", b"x" * 70_000]
        assert server.connections == 1
        assert server.requests[0].startswith(b"GET /path?q=1 HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in server.requests[0]

    run(main())


def test_a_body_larger_than_the_read_buffer_arrives_whole() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: reading pauses and resumes
    async def main() -> None:
        async with Server(keep_alive(ok(body))) as server:
            transport = HTTP11Transport()
            assert (await get(transport, server.url)).content == body
            assert (await get(transport, server.url)).content == body
            await transport.aclose()
        assert server.connections == 1

    run(main())


def test_chunked_bodies_with_extensions_and_trailers() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=value\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: yes\r\n\r\n")
    async def main() -> None:
        async with Server(keep_alive(chunked, ok(b"after"))) as server:
            transport = HTTP11Transport()
            first = await get(transport, server.url)
            second = await get(transport, server.url)
            await transport.aclose()
        assert first.content == b"hello world!"
        assert second.content == b"after"
        assert server.connections == 1  # the chunked body ended cleanly: the connection was reused

    run(main())


def test_http_1_0_body_delimited_by_close_then_a_new_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b" end")
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            transport = HTTP11Transport()
            first = await get(transport, server.url)
            second = await get(transport, server.url)
            await transport.aclose()
        assert first.content == second.content == b"until the end"
        assert first.extensions["http_version"] == b"HTTP/1.0"
        assert server.connections == 2

    run(main())


def test_server_closing_an_idle_keepalive_connection_means_reconnect_not_error() -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(ok(b"fresh"))  # no "Connection: close": the client thinks it may reuse it
        await writer.drain()

    async def main() -> None:
        async with Server(one_then_close) as server:
            transport = HTTP11Transport()
            first = await get(transport, server.url)
            await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
            second = await get(transport, server.url)
            await transport.aclose()
        assert first.content == second.content == b"fresh"
        assert server.connections == 2

    run(main())


def test_a_reused_connection_dropped_after_the_request_went_out_is_an_error_not_a_silent_resend() -> None:
    async def drop_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(ok(b"one"))
        await writer.drain()
        await server.read_request(reader)  # read the next request, then close without a byte

    async def main() -> None:
        async with Server(drop_the_second) as server:
            transport = HTTP11Transport()
            first = await get(transport, server.url)
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await get(transport, server.url)  # the server saw it: counting it as an answer would lie
            third = await get(transport, server.url)  # and the next one goes out on a fresh connection
            await transport.aclose()
        assert first.content == third.content == b"one"
        assert len(server.requests) == 3 and server.connections == 2

    run(main())


def test_head_204_304_and_interim_100_have_no_body() -> None:
    answers = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  # the answer to HEAD: the length, no body
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
    )

    async def main() -> None:
        async with Server(keep_alive(*answers)) as server:
            transport = HTTP11Transport()
            head = await get(transport, server.url, method="HEAD")
            no_content = await get(transport, server.url)
            not_modified = await get(transport, server.url)
            after_continue = await get(transport, server.url, method="POST", content=b"data")
            await transport.aclose()
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "1000")
        assert (no_content.status_code, no_content.content) == (204, b"")
        assert (not_modified.status_code, not_modified.content) == (304, b"")
        assert (after_continue.status_code, after_continue.content) == (200, b"done")
        assert server.connections == 1
        assert server.requests[-1].endswith(b"\r\n\r\ndata")

    run(main())


def test_connection_close_answer_is_not_reused() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def main() -> None:
        async with Server(keep_alive(close)) as server:
            transport = HTTP11Transport()
            for _ in range(3):
                assert (await get(transport, server.url)).content == b"ok"
            await transport.aclose()
        assert server.connections == 3

    run(main())


def test_truncated_body_is_an_error_and_the_connection_is_dropped() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async def main() -> None:
        async with Server(short) as server:
            transport = HTTP11Transport()
            with pytest.raises(httpx.RemoteProtocolError, match=r"complete message body"):
                await get(transport, server.url)
            await transport.aclose()

    run(main())


def test_total_timeout_covers_a_server_that_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        await asyncio.sleep(5)

    async def main() -> None:
        async with Server(silent) as server:
            transport = HTTP11Transport(total_timeout=0.2)
            with pytest.raises(httpx.ReadTimeout):
                await get(transport, server.url)
            await transport.aclose()

    run(main())


def test_refused_connection_is_a_connect_error_caused_by_the_os_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        transport = HTTP11Transport()
        with pytest.raises(httpx.ConnectError) as caught:
            await get(transport, f"http://127.0.0.1:{port}/")
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)

    run(main())


def test_works_under_an_httpx_client_with_streamed_upload() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += (await reader.readexactly(size + 2))[:-2]
        writer.write(ok(body.upper()))
        await writer.drain()

    async def upload():  # type: ignore[no-untyped-def]
        yield b"stream"
        yield b"ed"

    async def main() -> None:
        async with Server(echo) as server, httpx.AsyncClient(transport=HTTP11Transport()) as client:
            response = await client.post(server.url, content=upload())
        assert response.text == "STREAMED"

    run(main())


def test_https_and_http2_go_to_httpx_own_transport() -> None:
    transport = HTTP11Transport()
    assert transport.serves(httpx.Request("GET", "http://example.test/"))
    assert not transport.serves(httpx.Request("GET", "https://example.test/"))
    assert not HTTP11Transport(http2=True).serves(httpx.Request("GET", "http://example.test/"))
    assert isinstance(transport._fallback_transport(), httpx.AsyncHTTPTransport)
