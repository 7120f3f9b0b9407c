"""Faulty servers on 127.0.0.1: resets, stalls, trickles, huge and odd bodies, a server that goes away, DNS.

Every case runs respy as a real process and checks: no traceback, the rows add up to the requests sent, the
error rows name the cause, and the exit code is the documented one (0 measured, 4 not a single HTTP answer).
"""

from __future__ import annotations

import socket
import time

import pytest
from faultserver import FaultServer, read_head, reply, reset, response_head, serve_each
from support import Finished, run_respy

# ------------------------------------------------------------------------------------------------ helpers


def check_run(result: Finished, requests: int, code: int) -> dict[str, int]:
    """The common promises; returns the rows as {label: count}."""
    assert "Traceback" not in result.err, result.err
    assert result.code == code, result
    data = result.json()
    rows = {row["label"]: row["count"] for row in data["rows"]}
    assert data["requests"] == requests == sum(rows.values()), rows
    return rows


def run_json(url: str, *flags: str, requests: int = 6, concurrency: int = 3, timeout: float = 60) -> Finished:
    return run_respy(url, "-n", str(requests), "-c", str(concurrency), "-o", "json", "-q", *flags, timeout=timeout)


# ------------------------------------------------------------------------------------------------ resets


def reset_before_response(server: FaultServer, conn: socket.socket, n: int) -> bool:
    reset(conn)
    return False


def reset_mid_response(server: FaultServer, conn: socket.socket, n: int) -> bool:
    conn.sendall(response_head(200, {"Content-Length": "1000"}) + b"the first bytes of the body")
    time.sleep(0.05)  # let the head and the first bytes arrive before the RST
    reset(conn)
    return False


def close_mid_response(server: FaultServer, conn: socket.socket, n: int) -> bool:
    conn.sendall(response_head(200, {"Content-Length": "1000"}) + b"the first bytes of the body")
    return False  # a clean FIN: short of the 1000 bytes promised


def close_before_response(server: FaultServer, conn: socket.socket, n: int) -> bool:
    return False


def test_reset_before_any_response_is_a_connection_reset_row_and_exit_4() -> None:
    with FaultServer(serve_each(reset_before_response)) as server:
        rows = check_run(run_json(server.url), 6, 4)
        assert server.requests == 6  # every request reached the server and was reset, none was retried
    assert rows == {"error: connection reset": 6}


def test_reset_mid_response_is_a_connection_reset_row() -> None:
    with FaultServer(serve_each(reset_mid_response)) as server:
        rows = check_run(run_json(server.url), 6, 4)
    assert rows == {"error: connection reset": 6}


def test_clean_close_mid_body_and_before_any_response_name_the_cause() -> None:
    with FaultServer(serve_each(close_mid_response)) as server:
        assert check_run(run_json(server.url), 6, 4) == {"error: connection closed mid-response": 6}
    with FaultServer(serve_each(close_before_response)) as server:
        assert check_run(run_json(server.url), 6, 4) == {"error: connection closed before any response": 6}


def every_third_reset(server: FaultServer, conn: socket.socket, n: int) -> bool:
    if n % 3 == 2:
        reset(conn)
        return False
    reply(conn, b"weather-backend: single")
    return True


def test_some_resets_among_answers_exit_0_and_every_request_is_counted() -> None:
    with FaultServer(serve_each(every_third_reset)) as server:
        rows = check_run(run_json(server.url, "--no-keepalive", requests=30, concurrency=1), 30, 0)
        assert server.requests == 30
    assert rows.get("weather-backend: single") == 20
    errors = {label: count for label, count in rows.items() if label.startswith("error: ")}
    assert sum(errors.values()) == 10, rows
    assert errors == {"error: connection reset": 10}


def test_resets_on_kept_alive_connections_are_counted_not_silently_resent() -> None:
    with FaultServer(serve_each(every_third_reset)) as server:
        rows = check_run(run_json(server.url, requests=30, concurrency=1), 30, 0)
        assert server.requests == 30, f"the server read {server.requests} requests for respy's 30: {rows}"
    assert rows.get("weather-backend: single") == 20, rows


# ------------------------------------------------------------------------------------------------ stalls


def never_answers(server: FaultServer, conn: socket.socket, n: int) -> bool:
    server.stopping.wait()  # holds the connection open, says nothing
    return False


def trickles(server: FaultServer, conn: socket.socket, n: int) -> bool:
    """The head at once, then one byte of a 200-byte body every 0.1 s: each read is quick, the whole is 20 s."""
    conn.sendall(response_head(200, {"Content-Length": "200"}))
    for _ in range(200):
        if server.stopping.wait(0.1):
            return False
        conn.sendall(b"x")
    return True


@pytest.mark.parametrize("behaviour", [never_answers, trickles], ids=["headers-never-come", "body-trickles"])
def test_a_stalled_or_trickling_server_is_a_timeout_row_within_the_whole_request_timeout(behaviour) -> None:  # type: ignore[no-untyped-def]
    with FaultServer(serve_each(behaviour)) as server:
        began = time.monotonic()
        result = run_json(server.url, "-t", "0.5", requests=4, concurrency=4)
        elapsed = time.monotonic() - began
    assert check_run(result, 4, 4) == {"error: timeout": 4}
    # 4 requests at once, each bounded by 0.5 s for the whole request (not per read): far below the 20 s the
    # trickle would take; the bound is generous (process start-up included) and only proves "not hung".
    assert elapsed < 15, elapsed
    latency = result.json()["latency_ms"]
    assert latency["p99"] is not None and latency["p99"] < 5000, latency  # each request gave up near 0.5 s


# ------------------------------------------------------------------------------------------------ bodies

BIG = 50 * 1024 * 1024


def big_body(server: FaultServer, conn: socket.socket, n: int) -> bool:
    piece = b"a" * (1024 * 1024)
    conn.sendall(response_head(200, {"Content-Length": str(BIG)}))
    for _ in range(BIG // len(piece)):
        conn.sendall(piece)
    return True


def small_body(server: FaultServer, conn: socket.socket, n: int) -> bool:
    reply(conn, b"a" * 100)
    return True


@pytest.mark.parametrize("by", ["body", "status"])
def test_a_50_mb_body_is_read_to_the_cap_the_rest_drained_and_memory_stays_bounded(by: str) -> None:
    with FaultServer(serve_each(small_body)) as server:
        baseline = run_json(server.url, "--by", by, requests=3, concurrency=1)
    check_run(baseline, 3, 0)
    with FaultServer(serve_each(big_body)) as server:
        result = run_json(server.url, "--by", by, "-t", "60", requests=3, concurrency=1, timeout=180)
        connections = server.connections
    rows = check_run(result, 3, 0)
    [(label, count)] = rows.items()
    assert count == 3
    if by == "body":
        assert set(label.rstrip("…")) == {"a"} and len(label) <= 1000  # the kept prefix, clipped for the label
    else:
        assert label == "200"
    # The rest of each 50 MB body was read and dropped, not left on the wire: the connection was reused.
    assert connections == 1
    growth_mib = (result.peak_rss_kib - baseline.peak_rss_kib) / 1024
    print(f"peak RSS: {baseline.peak_rss_kib / 1024:.1f} MiB (100-byte bodies), "
          f"{result.peak_rss_kib / 1024:.1f} MiB (3 x 50 MiB bodies), growth {growth_mib:.1f} MiB")
    assert growth_mib < 16, (baseline.peak_rss_kib, result.peak_rss_kib)


def test_bodies_that_are_not_utf8_become_labels_in_every_output_format() -> None:
    raw = b"\xff\xfe version \x80 \xc3\x28 caf\xc3\xa9"

    def not_utf8(server: FaultServer, conn: socket.socket, n: int) -> bool:
        reply(conn, raw)
        return True

    expected = raw.decode("utf-8", errors="replace")
    with FaultServer(serve_each(not_utf8)) as server:
        rows = check_run(run_json(server.url), 6, 0)
        assert rows == {expected: 6}
        for output in ("table", "csv"):
            result = run_respy(server.url, "-n", "3", "-c", "1", "-o", output)
            assert result.code == 0 and "Traceback" not in result.err, result
            assert expected in result.out
        # an ASCII-only stdout (a C locale, a pipe into an old tool): still no traceback, JSON stays parseable
        for output in ("table", "json", "csv"):
            result = run_respy(server.url, "-n", "3", "-c", "1", "-o", output, env={"PYTHONIOENCODING": "ascii"})
            assert result.code == 0 and "Traceback" not in result.err, (output, result)
            if output == "json":
                assert [row["label"] for row in result.json()["rows"]] == [expected]
            else:
                assert "version" in result.out and "café" not in result.out


def test_http_1_0_close_delimited_bodies_are_read_to_the_end() -> None:
    body = b"weather-backend: multiple " + b"x" * 900  # no Content-Length: the body ends when the server closes

    def http10(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
        return False  # close: that is the end of the body

    with FaultServer(serve_each(http10)) as server:
        rows = check_run(run_json(server.url, requests=10, concurrency=2), 10, 0)
        assert server.requests == 10 and server.connections == 10  # one connection per answer
    assert rows == {body.decode(): 10}


def test_http_1_1_without_length_and_connection_close_is_close_delimited_too() -> None:
    def no_length(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nweather-backend: single")
        return False

    with FaultServer(serve_each(no_length)) as server:
        assert check_run(run_json(server.url, requests=5, concurrency=2), 5, 0) == {"weather-backend: single": 5}


# ------------------------------------------------------------------------------------------------ going away


def test_a_server_that_stops_accepting_half_way_gives_connection_refused_for_the_rest() -> None:
    answered_before_closing = 4

    def stops_after_k(server: FaultServer, conn: socket.socket, n: int) -> bool:
        if n == answered_before_closing - 1:
            server.close_listener()  # before this answer leaves: the client's next connect is refused
        reply(conn, b"weather-backend: single", close=True)
        return False

    with FaultServer(serve_each(stops_after_k)) as server:
        result = run_json(server.url, "--no-keepalive", requests=10, concurrency=1)
    rows = check_run(result, 10, 0)  # some HTTP answers came back: measured, exit 0
    assert rows == {"weather-backend: single": 4, "error: connection refused": 6}


def test_nothing_listening_at_all_is_connection_refused_and_exit_4() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        rows = check_run(run_json(f"http://127.0.0.1:{port}/"), 6, 4)
    assert rows == {"error: connection refused": 6}


def test_an_unresolvable_host_is_a_dns_row_and_exit_4() -> None:
    result = run_json("http://respy-no-such-host.invalid/", requests=3, concurrency=3, timeout=60)
    assert check_run(result, 3, 4) == {"error: DNS lookup failed": 3}


def test_the_table_names_the_cause_too() -> None:
    with FaultServer(serve_each(reset_mid_response)) as server:
        result = run_respy(server.url, "-n", "3", "-c", "1")
    assert result.code == 4 and "Traceback" not in result.err, result
    assert "| error: connection reset |     3 |" in result.out


def test_a_malformed_status_line_is_an_error_row_not_a_crash() -> None:
    def garbage(server: FaultServer, conn: socket.socket, n: int) -> bool:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        return False

    with FaultServer(serve_each(garbage)) as server:
        rows = check_run(run_json(server.url, requests=3, concurrency=1), 3, 4)
    [(label, count)] = rows.items()
    assert label.startswith("error: ") and count == 3


def test_fault_server_helper_reads_heads() -> None:
    """The helper itself: a request head is read whole, and a closed client gives None."""
    with FaultServer(lambda server, conn, n: conn.sendall(read_head(conn) or b"none")) as server:
        client = socket.create_connection(("127.0.0.1", server.port))
        with client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(100) == b"GET / HTTP/1.1\r\nHost: x"
        client = socket.create_connection(("127.0.0.1", server.port))
        client.close()  # closed before sending anything: the helper reads None
        time.sleep(0.2)
    assert server.errors == []
