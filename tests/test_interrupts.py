"""SIGINT and SIGTERM during a long run: what was measured is printed whole, exit 130 / 143, and JSON (or CSV)
output is complete or absent, never half-written. In one process and with worker processes (--procs 2)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support import slow_server

from respy.demo.localserver import LocalServer

PLANNED = 1_000_000
SIGNALS = pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                                  ids=["SIGINT", "SIGTERM"])
PROCS = pytest.mark.parametrize("procs", ["1", "2"], ids=["one-process", "two-processes"])


def interrupted_run(server: LocalServer, signum: int, *flags: str, after: int = 50) -> tuple[int, str, str]:
    """Start a run far too long to finish, signal it once ``after`` requests were served, collect its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "respy", server.url, "-n", str(PLANNED), "-c", "4", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while server.stats.requests < after and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        assert server.stats.requests >= after, "the run never got going"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)  # stops within the grace period, not after a million requests
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@SIGNALS
@PROCS
def test_json_output_after_a_signal_is_one_complete_object(signum: int, code: int, procs: str) -> None:
    with slow_server() as server:
        returncode, out, err = interrupted_run(server, signum, "-o", "json", "--procs", procs)
        served = server.stats.requests
    assert returncode == code, err
    assert "Traceback" not in err, err
    data = json.loads(out)  # raises on a half-written object
    assert data["interrupted"] is True
    assert data["interrupted_by"] == signal.Signals(signum).name
    assert 50 <= data["requests"] < PLANNED
    assert data["requests"] == sum(row["count"] for row in data["rows"])
    # every counted request was really served (requests cut off in flight may be served and not counted)
    assert data["requests"] <= served
    labels = {row["label"] for row in data["rows"]}
    assert "weather-backend: single" in labels


@SIGNALS
@PROCS
def test_the_table_after_a_signal_shows_what_was_measured(signum: int, code: int, procs: str) -> None:
    with slow_server() as server:
        returncode, out, err = interrupted_run(server, signum, "--procs", procs)
    assert returncode == code, err
    assert "Traceback" not in err, err
    assert "interrupted after " in out and f"of {PLANNED} requests ({signal.Signals(signum).name})" in out
    assert "| weather-backend: single |" in out
    assert out.rstrip().splitlines()[0].startswith(("☎️", "=>"))


@SIGNALS
def test_csv_output_after_a_signal_is_complete(signum: int, code: int) -> None:
    with slow_server() as server:
        returncode, out, err = interrupted_run(server, signum, "-o", "csv", "--procs", "1")
    assert returncode == code, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and all(set(row) == {"label", "count", "percent", "kind", "status"} for row in rows)
    assert int(rows[0]["count"]) >= 50


def test_a_second_sigint_does_not_leave_half_written_json() -> None:
    """An impatient user presses Ctrl-C twice: the output is still one complete JSON object, or nothing."""
    with slow_server() as server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "respy", server.url, "-n", str(PLANNED), "-c", "4", "-o", "json",
                                 "--procs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 60
        while server.stats.requests < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    if out.strip():
        data = json.loads(out)
        assert data["requests"] == sum(row["count"] for row in data["rows"])


@SIGNALS
def test_a_signal_during_a_sequential_check_reports_and_exits_with_the_signal_code(signum: int, code: int,
                                                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With --expect and no -n the run is sequential (in-process); a signal still ends it cleanly. The server
    alternates exactly 50/50, so after 30 answers the sequential test is far from a decision. One connection
    (-c 1): over two, lock-step workers would each see one version, which the per-connection check rightly
    calls dependent (and stops on)."""
    with slow_server(b"weather-backend: single", b"weather-backend: multiple") as server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "respy", server.url, "-c", "1", "-o", "json", "--expect", "single=50,multiple=50",
             "--max-requests", str(PLANNED)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        deadline = time.monotonic() + 60
        while server.stats.requests < 30 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    data = json.loads(out)
    assert data["requests"] == sum(row["count"] for row in data["rows"]) >= 30
    assert data["interrupted"] is True
