"""Whatever a server sends, respy ends on time, in bounded memory, with one row per request (issue 15).

Each case runs respy as a real process against a raw-socket server (tests/faultserver.py) with
``-n 4 -c 2 -t 3``: two requests per worker, so respy must end within 3 s × 2 + 1 s (plus interpreter
start-up, which the bound allows for by timing from respy's own clock and checking the process separately),
its peak RSS stays under 100 MiB, the rows add up to 4, and the exit code is the documented one
(4: not a single HTTP answer came back).
"""

from __future__ import annotations

import time

import pytest
from faultserver import MALFORMED_ANSWERS, FaultServer, answer_raw, huge_body, response_head, stream_forever
from support import Finished, run_respy

REQUESTS, CONCURRENCY, TIMEOUT_S = 4, 2, 3.0
TIME_BOUND_S = TIMEOUT_S * (REQUESTS // CONCURRENCY) + 1.0
START_UP_ALLOWANCE_S = 5.0  # interpreter start-up on a loaded 2-core machine, outside respy's own clock
RSS_BOUND_KIB = 100 * 1024


def run_hostile(behaviour, *flags: str) -> tuple[Finished, float]:  # type: ignore[no-untyped-def]
    with FaultServer(behaviour) as server:
        began = time.monotonic()
        result = run_respy(server.url, "-n", str(REQUESTS), "-c", str(CONCURRENCY), "-t", str(TIMEOUT_S),
                           "-o", "json", "-q", *flags, timeout=60)
        wall = time.monotonic() - began
    return result, wall


def check_bounded(result: Finished, wall: float, code: int = 4) -> dict[str, int]:
    """The promises of every case; returns the rows."""
    assert "Traceback" not in result.err, result.err
    assert result.code == code, result
    data = result.json()
    rows = {row["label"]: row["count"] for row in data["rows"]}
    assert data["requests"] == REQUESTS == sum(rows.values()), rows
    assert data["elapsed_s"] <= TIME_BOUND_S, data["elapsed_s"]
    assert wall <= TIME_BOUND_S + START_UP_ALLOWANCE_S, wall
    assert result.peak_rss_kib < RSS_BOUND_KIB, f"peak RSS {result.peak_rss_kib / 1024:.0f} MiB"
    return rows


LLHTTP_REASONS = {
    "negative chunk size": "Invalid character in chunk size",
    "hex-prefixed chunk size": "Invalid character in chunk size",
    "underscore in chunk size": "Invalid character in chunk size",
    "overflowing chunk size": "Chunk size overflow",
    "negative Content-Length": "Invalid character in Content-Length",
    "+5 Content-Length": "Invalid character in Content-Length",
    "Content-Length with Transfer-Encoding": "Transfer-Encoding can't be present with Content-Length",
    "NUL in a header": "Invalid header value char",
    "bare CR in a header": "Missing expected LF after header value",
    "space before the colon": "Invalid header field char",
    "HTTP/0.9-style answer": "Expected HTTP/, RTSP/ or ICE/",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_ANSWERS))
def test_a_malformed_answer_is_a_malformed_response_row_with_llhttps_reason(case: str) -> None:
    result, wall = run_hostile(answer_raw(MALFORMED_ANSWERS[case]))
    rows = check_bounded(result, wall)
    assert rows == {f"error: malformed response ({LLHTTP_REASONS[case]})": REQUESTS}


def test_a_1_gb_body_is_drained_to_max_body_then_the_connection_is_dropped() -> None:
    result, wall = run_hostile(huge_body(1 << 30))
    rows = check_bounded(result, wall)
    assert rows == {"error: body over the --max-body limit (64 MiB): connection dropped": REQUESTS}


def test_a_1_gb_body_under_a_larger_max_body_is_read_or_timed_out_never_hung() -> None:
    """With --max-body above 1 GB the body is drained to its end if that fits in -t 1, else the request times
    out (loopback speed decides which); either way one row per request, on time, in bounded memory."""
    result, _ = run_hostile(huge_body(1 << 30), "--max-body", "2GiB", "-t", "1")
    data = result.json()
    assert data["elapsed_s"] <= 1.0 * 2 + 1.0, data["elapsed_s"]
    rows = {row["label"]: row["count"] for row in data["rows"]}
    assert sum(rows.values()) == REQUESTS
    assert set(rows) <= {"error: timeout", "x" * 999 + "…"}, set(rows)
    assert result.peak_rss_kib < RSS_BOUND_KIB
    assert result.code == (4 if set(rows) == {"error: timeout"} else 0)


@pytest.mark.parametrize("framing", ["chunked", "until-close"])
def test_an_endless_fast_body_hits_the_deadline_while_data_keeps_arriving(framing: str) -> None:
    if framing == "chunked":
        behaviour = stream_forever(response_head(200, {"Transfer-Encoding": "chunked"}), b"4000\r\n" + b"x" * 0x4000
                                   + b"\r\n")
    else:
        behaviour = stream_forever(response_head(200, {"Connection": "close"}), b"x" * 65536)
    result, wall = run_hostile(behaviour, "--max-body", "1TiB")
    assert check_bounded(result, wall) == {"error: timeout": REQUESTS}


def test_an_endless_fast_body_is_cut_at_max_body() -> None:
    behaviour = stream_forever(response_head(200, {"Transfer-Encoding": "chunked"}), b"4000\r\n" + b"x" * 0x4000
                               + b"\r\n")
    result, wall = run_hostile(behaviour, "--max-body", "1MiB")
    assert check_bounded(result, wall) == {"error: body over the --max-body limit (1 MiB): connection dropped": 4}


def test_endless_headers_are_a_malformed_response_once_the_head_passes_64_kib() -> None:
    result, wall = run_hostile(stream_forever(b"HTTP/1.1 200 OK\r\n", b"X-Filler: " + b"y" * 100 + b"\r\n"))
    assert check_bounded(result, wall) == {"error: malformed response (head over 64 KiB)": REQUESTS}


def test_one_endless_header_value_is_cut_too() -> None:
    result, wall = run_hostile(stream_forever(b"HTTP/1.1 200 OK\r\nX-Filler: ", b"y" * 4096))
    assert check_bounded(result, wall) == {"error: malformed response (head over 64 KiB)": REQUESTS}


def test_sigterm_during_an_endless_body_ends_respy_within_a_second() -> None:
    import signal
    import subprocess
    import sys

    behaviour = stream_forever(response_head(200, {"Transfer-Encoding": "chunked"}), b"4000\r\n" + b"x" * 0x4000
                               + b"\r\n")
    with FaultServer(behaviour) as server:
        proc = subprocess.Popen([sys.executable, "-m", "respy", server.url, "-n", "100", "-c", "2", "-t", "60",
                                 "--max-body", "1TiB", "-o", "json", "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while server.requests < 2:  # both workers are busy draining
            time.sleep(0.02)
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    assert proc.returncode == 143, err
    assert took < 1.0, took  # 0.5 s of grace for answers in flight, then the report
    assert b"Traceback" not in err
    assert out.strip().startswith(b"{")


def test_the_max_body_flag_rejects_nonsense_with_one_line() -> None:
    result = run_respy("http://127.0.0.1:9/", "--max-body", "lots")
    assert result.code == 2
    assert "--max-body" in result.err and "Traceback" not in result.err
