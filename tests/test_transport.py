"""respy's own HTTP/1.1 lane (respy/send/transport.py) against raw-socket servers: framing, keep-alive,
reconnects, no silent re-send, answers without a body, the whole-request deadline, the connection tag."""

from __future__ import annotations

import socket
import time

import pytest
from faultserver import FaultServer, read_head, reply, response_head, serve_each

from respy.send.classify import parse_by
from respy.send.engine import Load, Target, raw_request, run, run_blocking
from respy.tally import Tally


def measure(url: str, n: int = 4, c: int = 1, **target: object) -> dict[str, int]:
    async def go():  # type: ignore[no-untyped-def]
        return await run(Target(url, **target), Load(requests=n, concurrency=c))  # type: ignore[arg-type]

    tally: Tally = run_blocking(go).tally
    return {row.label: row.count for row in tally.rows()}


def answers(*raw: bytes):  # type: ignore[no-untyped-def]
    """Answer the n-th request on each connection with ``raw[n % len(raw)]``, keeping the connection open."""

    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(raw[n % len(raw)])
        return True

    return serve_each(answer)


def test_content_length_answers_reuse_one_connection() -> None:
    with FaultServer(answers(response_head(200, {"Content-Length": "2"}) + b"v1")) as server:
        assert measure(server.url, n=5) == {"v1": 5}
        assert server.connections == 1 and server.requests == 5


def test_chunked_answers_with_extensions_and_trailers_and_a_big_body_split_over_reads() -> None:
    big = b"y" * 300_000
    chunked = (response_head(200, {"Transfer-Encoding": "chunked"}) + b"3;name=value\r\nabc\r\n1\r\nd\r\n0\r\n"
               b"Trailer: x\r\n\r\n")
    sized = response_head(200, {"Content-Length": str(len(big))}) + big
    with FaultServer(answers(chunked, sized)) as server:
        rows = measure(server.url, n=4, body_cap=1 << 20)
        (long_label,) = set(rows) - {"abcd"}
        assert rows == {"abcd": 2, long_label: 2} and long_label.startswith("yyyy")
        assert server.connections == 1


def test_head_204_304_and_an_interim_100_have_no_body_and_keep_the_connection() -> None:
    with FaultServer(answers(response_head(204, {"Content-Length": "5"}), response_head(304),
                             b"HTTP/1.1 100 Continue\r\n\r\n" + response_head(200, {"Content-Length": "2"}) + b"ok")) \
            as server:
        assert measure(server.url, n=3) == {"": 1, "304": 1, "ok": 1}  # a 204 is a 2xx: its (empty) body
        assert server.connections == 1
    head_answer = response_head(200, {"Content-Length": "1000"})  # HEAD: the length of the body not sent
    with FaultServer(answers(head_answer)) as server:
        assert measure(server.url, n=3, method="HEAD") == {"": 3}
        assert server.connections == 1 and server.requests == 3


def test_close_delimited_answers_end_when_the_server_closes_then_a_new_connection_is_used() -> None:
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nold-style body")
        return False

    with FaultServer(serve_each(answer)) as server:
        assert measure(server.url, n=3) == {"old-style body": 3}
        assert server.connections == 3


def test_connection_close_answers_are_not_reused() -> None:
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        reply(conn, b"bye", close=True)
        return True  # the server would go on, but the client must not

    with FaultServer(serve_each(answer)) as server:
        assert measure(server.url, n=3) == {"bye": 3}
        assert server.connections == 3


def test_a_server_closing_an_idle_kept_alive_connection_means_a_reconnect_not_an_error() -> None:
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        reply(conn, b"ok")
        time.sleep(0.05)
        return False  # closes after each answer, without saying so

    with FaultServer(serve_each(answer)) as server:

        async def go():  # type: ignore[no-untyped-def]
            return await run(Target(server.url), Load(requests=4, concurrency=1, rate=5.0))

        rows = {row.label: row.count for row in run_blocking(go).tally.rows()}
        assert rows == {"ok": 4}
        assert server.requests == 4 and server.connections == 4


def test_a_reused_connection_dropped_after_the_request_went_out_is_an_error_not_a_silent_resend() -> None:
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        if n == 1:
            return False  # read the second request, then close without answering
        reply(conn, b"ok")
        return True

    with FaultServer(serve_each(answer)) as server:
        rows = measure(server.url, n=3)
        assert rows == {"ok": 2, "error: connection closed before any response": 1}
        assert server.requests == 3  # the failed request was not sent again


def test_a_truncated_body_is_an_error_and_the_next_request_gets_a_new_connection() -> None:
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(response_head(200, {"Content-Length": "10"}) + (b"short" if n == 0 else b"0123456789"))
        return n != 0

    with FaultServer(serve_each(answer)) as server:
        assert measure(server.url, n=2) == {"error: connection closed mid-response": 1, "0123456789": 1}
        assert server.connections == 2


@pytest.mark.parametrize("by", ["body", "header:x-version"])
@pytest.mark.parametrize("framing", [{"Content-Length": "10"}, {"Transfer-Encoding": "chunked"}])
def test_a_framed_body_cut_short_by_a_close_is_an_error_without_keep_alive_too(
        framing: dict[str, str], by: str) -> None:
    # Connection: close: llhttp does not vouch for the framing, so the head is read again for it (or, with
    # --by header, its headers were kept); an interim 100 before it must not be taken for the head.
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        head = response_head(200, {**framing, "Connection": "close", "X-Version": "v1"})
        cut = b"short" if "Content-Length" in framing else b"a\r\nshort"
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + head + (cut if n == 0 else b""))
        return False

    with FaultServer(serve_each(answer)) as server:
        assert measure(server.url, n=2, by=parse_by(by)) == {"error: connection closed mid-response": 2}


def test_a_body_without_length_ends_with_the_close_whatever_the_label_reads() -> None:
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Version: v2\r\n\r\nweather")
        return False

    with FaultServer(serve_each(answer)) as server:
        assert measure(server.url, n=2) == {"weather": 2}
    with FaultServer(serve_each(answer)) as server:
        assert measure(server.url, n=2, by=parse_by("header:x-version")) == {"v2": 2}


@pytest.mark.parametrize("rate", [None, 1000.0])  # None: answers counted from the socket callback (chained)
def test_a_second_answer_to_one_request_is_never_taken_for_the_next_ones(rate: float | None) -> None:
    # the server answers each request twice in one write ("v1" then "v2"): a "v2" row would be an answer
    # given to a request that never got it
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        one = response_head(200, {"Content-Length": "2"})
        conn.sendall(one + b"v1" + one + b"v2")
        return True

    with FaultServer(serve_each(answer)) as server:
        async def go():  # type: ignore[no-untyped-def]
            return await run(Target(server.url), Load(requests=6, concurrency=2, rate=rate))

        rows = {row.label: row.count for row in run_blocking(go).tally.rows()}
        assert rows == {"v1": 6}
        assert server.connections == 6  # each connection dropped after its doubled answer


def test_a_redirect_is_labelled_by_its_location_though_no_other_header_is_kept() -> None:
    redirect = response_head(301, {"Location": "/new", "Content-Length": "4"}) + b"gone"
    plain = response_head(200, {"Location": "/ignored", "Content-Length": "2"}) + b"ok"
    with FaultServer(answers(b"HTTP/1.1 100 Continue\r\n\r\n" + redirect, plain)) as server:
        assert measure(server.url, n=4) == {"301 Location: /new": 2, "ok": 2}
        assert server.connections == 1


def test_the_whole_request_deadline_holds_for_a_server_that_never_answers() -> None:
    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        server.stopping.wait()
        return False

    with FaultServer(serve_each(answer)) as server:
        began = time.monotonic()
        assert measure(server.url, n=2, c=2, timeout=0.3) == {"error: timeout": 2}
        assert time.monotonic() - began < 5


def test_a_refused_connection_is_a_row() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert measure(f"http://127.0.0.1:{port}/", n=2) == {"error: connection refused": 2}


def test_the_request_on_the_wire() -> None:
    seen: list[bytes] = []

    def answer(server: FaultServer, conn: socket.socket, n: int) -> bool:
        reply(conn, b"ok")
        return True

    def behaviour(server: FaultServer, conn: socket.socket, index: int) -> None:
        head = read_head(conn)
        assert head is not None
        seen.append(head)
        answer(server, conn, 0)

    with FaultServer(behaviour) as server:
        measure(server.url + "a b/ü?q=1", n=1, headers=(("X-Test", "yes"),), method="POST", data=b"hi")
    lines = seen[0].split(b"\r\n")
    assert lines[0] == b"POST /a%20b/%C3%BC?q=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"X-Test: yes" in lines and b"Content-Length: 2" in lines and b"User-Agent: respy" in lines


@pytest.mark.parametrize("header", [("X-Bad", "a\r\nInjected: 1"), ("Bad Name", "x"), ("X-Nul", "a\0b")])
def test_headers_that_would_split_the_request_are_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        raw_request(Target("http://127.0.0.1/", headers=(header,)))


def test_answers_are_tagged_with_their_connection_and_not_without_keep_alive() -> None:
    with FaultServer(answers(response_head(200, {"Content-Length": "2"}) + b"ok")) as server:

        async def go(keepalive: bool):  # type: ignore[no-untyped-def]
            return await run(Target(server.url, keepalive=keepalive), Load(requests=10, concurrency=2))

        kept = run_blocking(lambda: go(True))
        fresh = run_blocking(lambda: go(False))
    per_connection = [sum(row.values()) for row in kept.tally.connections.table()]
    assert len(per_connection) == 2 and sum(per_connection) == 10  # two workers, two kept-alive connections
    assert fresh.tally.connections.table() == []  # a connection per request: nothing to compare across
    assert fresh.state.connections == 10
