"""Long runs against a fast local server: every request is counted, and memory does not grow with N.

The 100,000-request run takes ~7 s on a 2-CPU machine (~14,000 req/s) and always runs. The 1,000,000-request
run takes a little over a minute there; it is marked slow and runs only with RESPY_SLOW_TESTS=1. Their time
limits are generous upper bounds that prove "finished", not speed.
"""

from __future__ import annotations

import time

import pytest
from support import run_respy

from respy.demo.localserver import LocalServer, fixed

BODY = "weather-backend: single"


def long_run(requests: int, timeout: float) -> None:
    with LocalServer(fixed(BODY)) as server:
        began = time.monotonic()
        result = run_respy(server.url, "-n", str(requests), "-c", "50", "-o", "json", "-q", timeout=timeout)
        elapsed = time.monotonic() - began
        served = server.stats.requests
    assert result.code == 0 and "Traceback" not in result.err, result
    data = result.json()
    print(f"{requests:,} requests in {elapsed:.1f} s ({data['rate']:,.0f} req/s measured by respy), "
          f"peak RSS {result.peak_rss_kib / 1024:.0f} MiB")
    assert data["requests"] == requests
    assert data["rows"] == [{"label": BODY, "count": requests, "percent": 100.0, "kind": "ok", "status": 200}]
    assert served == requests  # exactly N sent: none lost, none sent twice
    assert data["latency_histogram"]["count"] == requests
    assert data["interrupted"] is False
    assert result.peak_rss_kib < 400 * 1024  # bounded: counts, not a list of responses


def test_100_000_requests_are_all_counted() -> None:
    long_run(100_000, timeout=300)


@pytest.mark.slow
def test_1_000_000_requests_are_all_counted() -> None:
    long_run(1_000_000, timeout=1800)
