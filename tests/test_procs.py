"""Worker processes: the load is split exactly, the concurrency bound holds across processes, signals work."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time

import pytest
from support import weighted_handler

from respy.cli.common import Streams
from respy.cli.measure import execute
from respy.demo.localserver import LocalServer, Request, Response
from respy.send.engine import Load, Target
from respy.send.procs import choose_procs, split_evenly, split_in_proportion, split_load

# respy's command line with worker processes forced (what --procs 2 does)
RESPY_WITH_2_PROCS = """
import functools, sys
from respy.cli import measure
measure.execute = functools.partial(measure.execute, procs=2)
from respy.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def quiet_streams() -> Streams:
    return Streams(io.StringIO(), io.StringIO())


@pytest.mark.parametrize(("n", "c", "p"), [(20_000, 50, 2), (7, 5, 2), (1001, 7, 3), (10, 3, 4), (5, 100, 4)])
def test_split_load_sums_to_n_and_c_with_near_equal_workers(n: int, c: int, p: int) -> None:
    shares = split_load(Load(requests=n, concurrency=c, rate=90.0, duration=5.0), p)
    assert sum(share.requests or 0 for share in shares) == n
    assert sum(share.concurrency for share in shares) <= c
    workers = split_evenly(c, p)
    assert sum(workers) == c and max(workers) - min(workers) <= 1
    assert all(share.requests and share.requests > 0 for share in shares)
    assert all(share.duration == 5.0 for share in shares)
    assert sum(share.rate or 0 for share in shares) <= 90.0 + 1e-9


def test_split_in_proportion_is_exact() -> None:
    assert split_in_proportion(10, [3, 2]) == [6, 4]
    assert split_in_proportion(7, [1, 1, 1]) == [3, 2, 2]
    assert sum(split_in_proportion(1_000_003, [17, 16, 16])) == 1_000_003


def test_duration_only_loads_have_no_cap_in_any_process() -> None:
    shares = split_load(Load(requests=None, concurrency=4, duration=1.0), 2)
    assert [(share.requests, share.concurrency) for share in shares] == [(None, 2), (None, 2)]


def test_when_processes_are_used() -> None:
    big = Load(requests=20_000, concurrency=50)
    assert choose_procs(None, big, cpus=3) == 2  # one CPU is left to the server, sidecar and kernel
    assert choose_procs(None, big, cpus=2) == 1
    assert choose_procs(None, big, cpus=1) == 1
    assert choose_procs(None, big, cpus=64) == 4
    assert choose_procs(None, Load(requests=19_999, concurrency=50), cpus=8) == 1
    assert choose_procs(None, Load(requests=20_000, concurrency=1), cpus=8) == 1
    assert choose_procs(None, big, sequential=True, cpus=8) == 1  # a sequential check needs one tally
    assert choose_procs(3, big, cpus=1) == 3
    assert choose_procs(8, Load(requests=20_000, concurrency=2)) == 2  # never more processes than workers
    assert choose_procs(8, big, sequential=True) == 1


def slow_handler(delay: float = 0.003):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        await asyncio.sleep(delay)
        return Response(200, b"ok")

    return handler


@pytest.mark.parametrize(("n", "c", "p"), [(301, 5, 2), (400, 9, 3)])
def test_concurrency_bound_and_exact_count_hold_across_processes(serve, n: int, c: int, p: int) -> None:
    server = serve(slow_handler())
    result = execute(Target(url=server.url), Load(requests=n, concurrency=c), quiet_streams(), quiet=True, procs=p)
    assert server.stats.requests == n
    assert server.stats.max_in_flight <= c
    assert server.stats.max_in_flight >= 2  # the processes really ran side by side
    rows = result.tally.rows()
    assert sum(row.count for row in rows) == result.tally.total == n
    assert result.state.stop_reason == "all requests sent"


def test_rows_of_all_processes_add_up_to_what_the_server_answered(serve) -> None:
    server = serve(weighted_handler({"v1": 70, "v2": 30}, seed=7))
    result = execute(Target(url=server.url), Load(requests=2000, concurrency=10), quiet_streams(), quiet=True,
                     procs=2)
    observed = {row.label: row.count for row in result.tally.rows()}
    answered = {body.decode(): count for body, count in server.stats.answered.items()}
    assert observed == answered
    assert sum(observed.values()) == 2000
    assert result.tally.latency.count == 2000


def test_duration_is_given_to_every_process(serve) -> None:
    server = serve(slow_handler(0.001))
    result = execute(Target(url=server.url), Load(requests=None, concurrency=4, duration=0.5), quiet_streams(),
                     quiet=True, procs=2)
    assert result.tally.total == server.stats.requests > 10
    assert result.state.stop_reason == "duration reached"


def test_a_sequential_stop_check_runs_in_process_and_still_stops_the_run(serve) -> None:
    server = serve(slow_handler(0.001))
    seen: list[int] = []

    def stop_after_50(tally) -> str | None:  # type: ignore[no-untyped-def]
        seen.append(tally.total)
        return "enough" if tally.total >= 50 else None

    result = execute(Target(url=server.url), Load(requests=20_000, concurrency=4), quiet_streams(), quiet=True,
                     stop_check=stop_after_50, procs=2)
    assert seen, "the check was called in this process"
    assert result.state.stop_reason == "enough"
    assert 50 <= result.tally.total < 200
    assert result.tally.total == server.stats.requests


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_with_worker_processes_prints_the_partial_table(signum: int, code: int) -> None:
    async def handler(request: Request) -> Response:
        await asyncio.sleep(0.01)
        return Response(200, b"weather-backend: single")

    with LocalServer(handler) as server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-c", RESPY_WITH_2_PROCS, server.url, "-n", "100000", "-c", "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 30
        while server.stats.requests < 40 and time.time() < deadline:
            time.sleep(0.05)
        assert server.stats.max_in_flight <= 4
        proc.send_signal(signum)  # to the parent only: it must stop its children itself
        out, err = proc.communicate(timeout=30)
        served = server.stats.requests
    assert proc.returncode == code, err
    assert "interrupted after" in out and "of 100000 requests" in out
    assert "| weather-backend: single |" in out
    assert "Traceback" not in err
    counted = int(out.split("| weather-backend: single |")[1].split("|")[0])
    assert counted == served  # every request the server answered is in the table, none lost with a child


def test_available_cpus_honours_a_cgroup_v2_quota(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A pod with limits.cpu 1.5 on a bigger node: the quota, not the node's CPUs, bounds the processes."""
    from respy.send.procs import available_cpus, cgroup_cpu_quota

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(str(tmp_path)) == 1.5
    assert available_cpus(str(tmp_path)) <= 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(str(tmp_path)) is None


def test_available_cpus_honours_a_cgroup_v1_quota(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from respy.send.procs import available_cpus, cgroup_cpu_quota

    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(str(tmp_path)) == 1.0
    assert available_cpus(str(tmp_path)) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(str(tmp_path)) is None
