"""The command line as users type it: the tutorial's flags, bad input, interrupts, output formats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support import respy_process, run_cli, slow_server

from respy.demo.localserver import fixed


def test_the_tutorials_command_line_prints_the_header_line_and_the_table(serve) -> None:
    server = serve(fixed("weather-backend: single"))
    url = f"{server.url}/version"
    proc = respy_process("--u", url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == f"☎️   1000 requests to {url}..."
    assert lines[1].startswith("+---")
    assert "| RESPONSE" in lines[2] and "% OF 1000 REQUESTS" in lines[2]
    assert "| weather-backend: single |  1000 |             100.0% |" in out
    assert server.stats.requests == 1000
    assert err == ""  # no progress line: stderr is not a terminal


def test_original_short_flags_and_positional_url_agree(serve) -> None:
    server = serve(fixed("ok"))
    assert run_cli("--u", server.url, "--n", "7", "--c", "3", "-o", "json").json()["requests"] == 7
    assert run_cli(server.url, "--requests", "5", "--concurrency", "2", "-o", "json").json()["requests"] == 5


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--n", "0", "http://x"], "must be at least 1"),
        (["--c", "-3", "http://x"], "must be at least 1"),
        (["ftp://weather-backend/version"], "must start with http:// or https://"),
        (["weather-backend:5000/version"], "must start with http:// or https://"),
        ([], "no URL given"),
        (["http://x", "-H", "no colon here"], "must look like 'Name: value'"),
        (["http://x", "-d", "@/nonexistent/body.json"], "cannot read file"),
        (["http://x", "--by", "cookies"], "expected body, status, header:NAME or regex:PATTERN"),
        (["http://x", "-t", "soon"], "is not a number"),
        (["http://x", "--bogus"], "unrecognized arguments"),
        (["http://x", "--duration=-5s"], "must be a positive number"),
        (["http://a", "--u", "http://b"], "two different URLs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], expected: str) -> None:
    result = run_cli(*argv)
    assert result.code == 2
    assert expected in result.err
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    assert result.out == ""


def test_bad_input_in_a_real_process_has_no_traceback() -> None:
    proc = respy_process("--n", "0", "--u", "http://weather-backend:5000/version")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.startswith("respy: error: argument -n/--requests/--n: must be at least 1")
    assert len(err.strip().splitlines()) == 1


def test_nothing_reachable_exits_4_and_still_prints_the_table() -> None:
    proc = respy_process("http://127.0.0.1:9/", "-n", "5", "-c", "2")
    out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 4
    assert "| error: connection refused |     5 |" in out


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_prints_what_was_measured_and_exits_130_or_143(signum: int, code: int) -> None:
    with slow_server(delay=0.01) as server:
        proc = respy_process(server.url, "-n", "100000", "-c", "4")
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the header line: the run has started
        assert first.startswith("☎️   100000 requests")
        deadline = time.time() + 20
        while server.stats.requests < 20 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "interrupted after" in out and "of 100000 requests" in out
    assert "| weather-backend: single |" in out
    assert "Traceback" not in err


def test_sigint_with_json_output_prints_one_complete_object() -> None:
    with slow_server(delay=0.01) as server:
        proc = respy_process(server.url, "-n", "100000", "-c", "4", "-o", "json")
        deadline = time.time() + 20
        while server.stats.requests < 20 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    data = json.loads(out)
    assert data["interrupted"] is True
    assert data["requests"] == sum(row["count"] for row in data["rows"]) >= 20


def test_csv_output_has_one_row_per_label(serve) -> None:
    server = serve(fixed("hello"))
    out = run_cli(server.url, "-n", "4", "-o", "csv").out
    assert out.splitlines() == ["label,count,percent,kind,status", "hello,4,100.000,ok,200"]


def test_json_has_the_documented_keys(serve) -> None:
    server = serve(fixed("hello"))
    data = run_cli(server.url, "-n", "10", "-c", "2", "-o", "json").json()
    for key in ("url", "requests", "rows", "errors", "latency_ms", "elapsed_s"):
        assert key in data
    assert set(data["latency_ms"]) == {"p50", "p90", "p99"}
    assert data["latency_ms"]["p50"] <= data["latency_ms"]["p90"] <= data["latency_ms"]["p99"]
    assert data["rows"][0] == {"label": "hello", "count": 10, "percent": 100.0, "kind": "ok", "status": 200}


def test_footer_shows_rate_and_latency(serve) -> None:
    server = serve(fixed("hello"))
    out = run_cli(server.url, "-n", "10").out
    footer = out.splitlines()[-1]
    assert footer.startswith("10 requests in ") and "req/s" in footer and "p99" in footer


def test_ascii_header_when_stdout_cannot_encode_the_phone(serve) -> None:
    server = serve(fixed("hello"))
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-m", "respy", server.url, "-n", "3"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"=>   3 requests to {server.url}..."


def test_help_teaches_with_examples() -> None:
    result = subprocess.run([sys.executable, "-m", "respy", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for text in ("--expect", "examples:", "exit codes:", "Example: -n 5000", "--no-keepalive", "respy demo"):
        assert text in help_text
