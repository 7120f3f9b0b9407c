"""The request loop against real HTTP servers on 127.0.0.1: exact counts, the concurrency bound, labels."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest
from support import run_cli, stochastic, weighted_handler

from respy._errors import UsageError
from respy.demo.localserver import Request, Response, fixed
from respy.send.classify import By, parse_by
from respy.send.engine import Load, Target, run
from respy.tally import Kind


def slow_ok(delay: float = 0.002):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        await asyncio.sleep(delay)
        return Response(200, b"ok")

    return handler


@pytest.mark.parametrize(("n", "c"), [(7, 3), (5, 100), (1000, 100)])
def test_sends_exactly_n_and_never_more_than_c_at_once(serve, n: int, c: int) -> None:
    server = serve(slow_ok())
    result = run_cli(server.url, "-n", str(n), "-c", str(c), "-o", "json")
    assert result.code == 0, result.err
    assert server.stats.requests == n
    assert result.json()["requests"] == n
    assert server.stats.max_in_flight <= c
    if n >= c:  # the pool really runs C workers at once (not one after another)
        assert server.stats.max_in_flight >= min(c, 3)


def test_json_rows_equal_what_a_seeded_80_20_server_answered(serve) -> None:
    server = serve(weighted_handler({"v1": 80, "v2": 20}, seed=42))
    data = run_cli(server.url, "-n", "500", "-c", "20", "-o", "json").json()
    observed = {row["label"]: row["count"] for row in data["rows"]}
    answered = {body.decode(): count for body, count in server.stats.answered.items()}
    assert observed == answered
    assert sum(observed.values()) == 500
    assert {row["label"] for row in data["rows"]} == {"v1", "v2"}
    assert abs(observed["v1"] / 500 - 0.8) < 0.08  # seeded: deterministic counts


def test_non_2xx_answers_are_rows_labelled_with_their_status(serve) -> None:
    server = serve(fixed("upstream connect error or disconnect/reset before headers", status=503))
    data = run_cli(server.url, "-n", "20", "-c", "4", "-o", "json").json()
    assert [{k: v for k, v in row.items() if k != "latency_ms"} for row in data["rows"]] == [
        {"label": "503 upstream connect error or disconnect/reset before headers", "count": 20,
         "percent": 100.0, "kind": "http", "status": 503}
    ]
    assert data["status_codes"] == {"503": 20}
    assert data["errors"] == 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connections_are_rows_and_exit_4() -> None:
    result = run_cli(f"http://127.0.0.1:{free_port()}/", "-n", "9", "-c", "4", "-o", "json")
    assert result.code == 4
    assert result.json()["rows"][0]["label"] == "error: connection refused"
    assert result.json()["rows"][0]["count"] == 9


def test_timeouts_are_rows_and_rows_add_up(serve) -> None:
    calls = {"n": 0}

    async def sometimes_slow(request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            await asyncio.sleep(2)
        return Response(200, b"fast")

    server = serve(sometimes_slow)
    data = run_cli(server.url, "-n", "10", "-c", "5", "-t", "0.3", "-o", "json").json()
    rows = {row["label"]: row["count"] for row in data["rows"]}
    assert rows == {"fast": 5, "error: timeout": 5}
    assert sum(rows.values()) == data["requests"] == 10


def test_bodies_are_capped_and_labels_stripped_and_decoded(serve) -> None:
    server = serve(fixed(b"  caf\xc3\xa9 \xff\n"))
    data = run_cli(server.url, "-n", "3", "-c", "1", "-o", "json").json()
    assert data["rows"][0]["label"] == "café \ufffd"


def test_body_cap_keeps_only_the_first_bytes_and_connection_stays_usable(serve) -> None:
    server = serve(fixed(b"x" * 200_000))
    target = Target(url=server.url, body_cap=100)
    result = anyio.run(lambda: run(target, Load(requests=6, concurrency=2)))
    rows = result.tally.rows()
    assert len(rows) == 1 and rows[0].count == 6
    assert rows[0].label == "x" * 100
    assert server.stats.connections == 2  # keep-alive survived the drained bodies
    long_label = anyio.run(lambda: run(Target(url=server.url), Load(requests=1, concurrency=1))).tally.rows()[0].label
    assert long_label == "x" * 999 + "…"  # stored labels are cut at 1000 characters


def test_no_keepalive_opens_a_connection_per_request(serve) -> None:
    server = serve(fixed("ok"))
    assert run_cli(server.url, "-n", "12", "-c", "3", "--no-keepalive", "-o", "json").code == 0
    assert server.stats.connections == 12


def test_by_status_header_and_regex(serve) -> None:
    async def handler(request: Request) -> Response:
        return Response(200, b"served by version=v7 pod=abc", [("X-Version", "v7")])

    server = serve(handler)
    by_status = run_cli(server.url, "-n", "4", "--by", "status", "-o", "json").json()
    assert by_status["rows"][0]["label"] == "200"
    by_header = run_cli(server.url, "-n", "4", "--by", "header:x-version", "-o", "json").json()
    assert by_header["rows"][0]["label"] == "v7"
    by_regex = run_cli(server.url, "-n", "4", "--by", r"regex:version=(\w+)", "-o", "json").json()
    assert by_regex["rows"][0]["label"] == "v7"


def test_parse_by_rejects_nonsense() -> None:
    assert parse_by("header:X-Version") == By(mode="header", header="x-version")
    with pytest.raises(UsageError):
        parse_by("cookie")
    with pytest.raises(UsageError):
        parse_by("regex:(")


def test_host_header_is_sent_as_given_and_other_headers_too(serve) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: Request) -> Response:
        seen.append(request.headers)
        return Response(200, b"ok")

    server = serve(handler)
    run_cli(server.url, "-n", "2", "-H", "Host: weather-backend", "-H", "end-user: jason", "-X", "POST", "-d", "hi")
    assert seen[0]["host"] == "weather-backend"
    assert seen[0]["end-user"] == "jason"
    assert seen[0]["content-length"] == "2"


def test_rate_limits_total_requests_per_second(serve) -> None:
    server = serve(fixed("ok"))
    data = run_cli(server.url, "-n", "20", "-c", "10", "--rate", "50", "-o", "json").json()
    assert data["requests"] == 20
    assert data["elapsed_s"] >= 19 / 50 * 0.9  # 20 requests at 50/s cannot finish before ~0.38 s


def test_duration_with_rate_sends_rate_times_duration_and_stops_on_time_at_c_10(serve) -> None:
    """-z 3 --rate 100 -c 10: 300 ± 10 requests in 3.0 ± 0.2 s (issue 15: it overshot at c > 1)."""
    server = serve(fixed("ok"))
    data = run_cli(server.url, "-z", "3", "--rate", "100", "-c", "10", "-o", "json", "-q").json()
    assert 290 <= data["requests"] <= 310, data["requests"]
    assert data["requests"] == server.stats.requests
    assert 2.8 <= data["elapsed_s"] <= 3.2, data["elapsed_s"]


def test_duration_runs_until_time_is_up_with_no_cap(serve) -> None:
    server = serve(fixed("ok"))
    data = run_cli(server.url, "-z", "0.5s", "-c", "4", "-o", "json").json()
    assert data["planned"] is None
    assert data["requests"] == server.stats.requests > 10
    assert 0.4 < data["elapsed_s"] < 3


def test_duration_with_n_caps_the_count(serve) -> None:
    server = serve(fixed("ok"))
    data = run_cli(server.url, "-z", "10s", "-n", "15", "-c", "4", "-o", "json").json()
    assert data["requests"] == 15 == server.stats.requests


def test_top_20_rows_then_one_folded_row(serve) -> None:
    counter = {"n": 0}

    async def unique(request: Request) -> Response:
        counter["n"] += 1
        return Response(200, f"request-{counter['n'] % 30}".encode())

    server = serve(unique)
    result = run_cli(server.url, "-n", "60", "-c", "1")
    table_rows = [line for line in result.out.splitlines() if line.startswith("| request-")]
    assert len(table_rows) == 20
    assert "(10 other responses)" in result.out


def test_distinct_labels_are_bounded() -> None:
    from respy.tally import OVERFLOW_LABEL, Tally

    tally = Tally(max_labels=5)
    for i in range(50):
        tally.add(f"id-{i}", Kind.OK, 200)
    rows = tally.rows()
    assert len(rows) == 6
    assert sum(r.count for r in rows) == 50
    assert any(r.label == OVERFLOW_LABEL and r.count == 45 for r in rows)


@stochastic
def test_a_sequential_check_ramps_up_instead_of_starting_with_c_requests_in_flight(serve) -> None:
    """At -c 100 a clear FAIL (50/50 declared 90/10) must not wait for 100 answers already in flight: the
    ramp starts with a few workers (without it every such run took ≥ 100 requests)."""
    server = serve(weighted_handler({"single": 50, "multiple": 50}, seed=7, delay=0.002))
    result = run_cli(server.url, "--expect", "single=90,multiple=10", "-o", "json", "-q")
    data = result.json()
    assert data["verdict"]["outcome"] == "FAIL", data["verdict"]
    assert data["requests"] < 100, data["requests"]
    assert server.stats.max_in_flight < 100


def test_the_ramp_grows_to_c_and_only_for_sequential_runs() -> None:
    from respy.send.load import RAMP_START, wanted_workers

    assert wanted_workers(100, 0, ramping=False) == 100
    assert wanted_workers(100, 0, ramping=True) == RAMP_START
    assert RAMP_START < wanted_workers(100, 20, ramping=True) < 100
    assert wanted_workers(100, 10_000, ramping=True) == 100


def test_a_plain_run_imports_neither_httpx_nor_anyio_nor_the_statistics(serve) -> None:
    """Start-up: a plain http:// run (the common case in a pod) must not pay for httpx, anyio, numpy or scipy."""
    import subprocess
    import sys

    server = serve(fixed("ok"))
    probe = ("import sys; from respy.cli.main import main; code = main(sys.argv[1:]); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'anyio', 'numpy', 'scipy', 'h11'}))")
    done = subprocess.run([sys.executable, "-c", probe, server.url, "-n", "3", "-q", "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
