"""respy's throughput, CPU per request, start-up time and memory, with ``hey`` as the yardstick, on a local nginx.

Usage:
    python benchmarks/throughput.py [--quick] [--requests 20000] [--concurrency 50 100] [--rounds 5] [--levers]
    python benchmarks/throughput.py --profile [--requests 20000]     # where respy's CPU goes, per request

Needs nginx and hey. On a fresh Debian/Ubuntu machine: ``apt-get update && apt-get install -y nginx hey``
(skips with that message when either is missing). It writes a minimal nginx.conf in a temporary directory
(one worker, ``return 200 "weather-backend: single"``, keep-alive for ten million requests, pid and logs in
that directory), serves on 127.0.0.1, then prints:

* respy and hey back to back on the same URL (N requests at each C), alternating, ``--rounds`` rounds,
  medians, each tool's req/s two ways: **by its own clock** (requests / the elapsed time it reports: hey's
  ``Requests/sec``, respy's ``elapsed_s``) and **by process wall time** (requests / start-to-exit of the
  process, start-up included), the CPU each process used per request (user + system, from ``wait4``), and
  the ratios respy/hey. Compare ratios from one run, never absolute figures across runs or machines;
* respy's req/s at c = 1, 10, 50, 100, 200, with hey's at the same c (a dip both share is the server's);
* the wall time of ``respy --help``, ``respy --version`` and a 1-request run (table, JSON) beside ``python -c
  pass`` and ``python -c 'import asyncio'``, and the time from spawning ``respy URL`` to its first request;
* respy's peak RSS for 10,000 and 1,000,000 requests (``--quick`` skips the 1M run);
* ``--levers``: respy with one of its choices undone (httpx's lane instead of its own, asyncio instead of
  uvloop, two worker processes instead of one);
* ``--profile``: one in-process run under cProfile: µs of CPU and Python calls per request, top functions.

respy's bytecode is compiled first when it is not (an editable install under ``PYTHONDONTWRITEBYTECODE``),
as an installed respy's is: see :func:`compile_respy`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BODY = "weather-backend: single"
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "{body}"; }}
    }}
}}
"""
CONCURRENCY_SWEEP = (1, 10, 50, 100, 200)

# respy with one of its choices undone, for --levers: run as ``python -c RUNNER URL ...``
RUNNER = """
import sys
from respy.cli import measure as _run
from respy.send import engine as _engine
procs, use_httpx = {procs!r}, {httpx!r}
if procs is not None:  # the same as --procs P (the given value wins over the flag's default, None)
    _execute = _run.execute
    _run.execute = lambda *args, **kwargs: _execute(*args, **{{**kwargs, "procs": procs}})
if use_httpx:  # httpx's lane (httpx's transport, a pool of one per worker) instead of respy's own
    _engine.takes_fast_lane = lambda target: False
from respy.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def runner(procs: int | None = None, httpx: bool = False) -> str:
    return RUNNER.format(procs=procs, httpx=httpx)


# --- processes ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not start listening on port {port}")


@contextmanager
def nginx() -> Iterator[str]:
    """A throw-away nginx on 127.0.0.1; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="respy-bench-") as root:
        port = free_port()
        (Path(root) / "tmp").mkdir()
        conf = Path(root) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, port=port, body=BODY))
        proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", root, "-e", f"{root}/error.log"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(port)
            yield f"http://127.0.0.1:{port}/version"
        finally:
            proc.terminate()
            proc.wait(10)


def compile_respy() -> str:
    """respy's bytecode, compiled as ``pip install`` (and the container image) compile it on install.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (this project's development machines set it) never
    caches bytecode, so every start would recompile all of respy's modules (≈ 100 ms here): a cost no
    installed respy pays, and one hey does not have either. Returns a line saying what was done."""
    import compileall

    import respy

    package = Path(respy.__file__).parent
    if not os.access(package, os.W_OK):
        return f"respy's bytecode: as installed ({package})"
    compileall.compile_dir(str(package), quiet=1)
    return f"respy's bytecode: compiled first, as pip does on install ({package})"


def respy_command() -> list[str]:
    script = Path(sys.executable).with_name("respy")
    return [str(script)] if script.exists() else [sys.executable, "-m", "respy"]


@dataclass
class Timed:
    """One finished process: its output, wall time (start to exit) and CPU time (user + system)."""

    stdout: str
    stderr: str
    code: int
    wall_s: float
    cpu_s: float


def timed_run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> Timed:
    """Run ``argv`` to the end; wall time from spawn to exit, CPU time of it and its children (``wait4``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise RuntimeError(f"{argv[0]} still running after {timeout} s")
            time.sleep(0.001)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        # wait4's rusage covers the process itself; its worker processes (if any) are its own children and
        # are added to it when it reaps them
        out.seek(0)
        err.seek(0)
        return Timed(out.read().decode(), err.read().decode(), proc.returncode, wall, usage.ru_utime + usage.ru_stime)


@dataclass
class Figures:
    own_rps: float  # by the tool's own clock
    wall_rps: float  # by process wall time
    cpu_us: float  # CPU per request, µs


def respy_figures(url: str, n: int, c: int, *extra: str, env: dict[str, str] | None = None,
                  runner: str | None = None) -> Figures:
    """Run respy once. Checks every request came back as the body."""
    command = [sys.executable, "-c", runner] if runner else respy_command()
    done = timed_run([*command, url, "-n", str(n), "-c", str(c), "-q", "-o", "json", *extra], env=env)
    if done.code != 0:
        raise RuntimeError(f"respy exited {done.code}: {done.stderr.strip()[-500:]}")
    data = json.loads(done.stdout)
    rows = {row["label"]: row["count"] for row in data["rows"]}
    if rows != {BODY: n}:
        raise RuntimeError(f"respy miscounted: {rows}")
    return Figures(n / data["elapsed_s"], n / done.wall_s, done.cpu_s / n * 1e6)


def hey_figures(url: str, n: int, c: int) -> Figures:
    done = timed_run(["hey", "-n", str(n), "-c", str(c), url])
    for line in done.stdout.splitlines():
        if line.strip().startswith("Requests/sec:"):
            return Figures(float(line.split(":", 1)[1]), n / done.wall_s, done.cpu_s / n * 1e6)
    raise RuntimeError(f"could not read hey's output: {done.stdout[-500:]} {done.stderr[-500:]}")


def alternate(runs: dict[str, Callable[[], Figures]], rounds: int) -> dict[str, Figures]:
    """Run each contender once per round, in turn (so drift hits all alike); the median of each figure."""
    seen: dict[str, list[Figures]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, once in runs.items():
            seen[name].append(once())
    return {
        name: Figures(statistics.median(f.own_rps for f in values), statistics.median(f.wall_rps for f in values),
                      statistics.median(f.cpu_us for f in values))
        for name, values in seen.items()
    }


def wall_time(argv: list[str], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def peak_rss_mib(argv: list[str]) -> float:
    """Peak RSS of the largest process ``argv`` started (itself or a worker process), measured in a fresh
    interpreter so that earlier runs do not count."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
    return int(done.stdout.strip()) / 1024  # Linux reports KiB


# --- report ---------------------------------------------------------------------------------------------------------


def report_versus_hey(url: str, n: int, concurrencies: list[int], rounds: int) -> None:
    print(f"respy vs hey, {n:,} requests, median of {rounds} alternating rounds (ratio = respy / hey):")
    print(f"  {'c':>4}  {'tool':<6} {'own clock':>12} {'process wall':>14} {'CPU/request':>12}")
    for c in concurrencies:
        medians = alternate({"respy": lambda c=c: respy_figures(url, n, c),  # type: ignore[misc]
                             "hey": lambda c=c: hey_figures(url, n, c)}, rounds)  # type: ignore[misc]
        mine, peer = medians["respy"], medians["hey"]
        for name, fig in (("respy", mine), ("hey", peer)):
            print(f"  {c:>4}  {name:<6} {fig.own_rps:>8,.0f} r/s {fig.wall_rps:>10,.0f} r/s {fig.cpu_us:>9.1f} µs")
        print(f"  {c:>4}  {'ratio':<6} {mine.own_rps / peer.own_rps:>10.2f} × {mine.wall_rps / peer.wall_rps:>12.2f} × "
              f"{mine.cpu_us / peer.cpu_us:>10.2f} ×")


def report_concurrency_sweep(url: str, n: int, rounds: int) -> None:
    """respy at each concurrency, with hey at the same one: a dip both share is the server's, not respy's."""
    runs: dict[str, Callable[[], Figures]] = {}
    for c in CONCURRENCY_SWEEP:
        runs[f"respy {c}"] = lambda c=c: respy_figures(url, n, c)  # type: ignore[misc]
        runs[f"hey {c}"] = lambda c=c: hey_figures(url, n, c)  # type: ignore[misc]
    medians = alternate(runs, rounds)
    print(f"req/s (own clock) by concurrency ({n:,} requests, median of {rounds}; hey at the same c):")
    for c in CONCURRENCY_SWEEP:
        mine, peer = medians[f"respy {c}"].own_rps, medians[f"hey {c}"].own_rps
        print(f"  c = {c:<4} respy {mine:>9,.0f}   hey {peer:>9,.0f}   ratio {mine / peer:.2f}")


def first_request_time(command: list[str], repeat: int = 7) -> float:
    """Spawn to the first request: the median time from starting ``command URL -n 1`` until a listening socket
    accepts its connection (the start-up a run pays before it sends anything)."""
    times = []
    for _ in range(repeat):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            listener.settimeout(30)
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
            began = time.perf_counter()
            proc = subprocess.Popen([*command, url, "-n", "1", "-q", "-o", "json"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            conn, _ = listener.accept()
            times.append(time.perf_counter() - began)
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            proc.wait(30)
    return statistics.median(times)


def report_startup(url: str) -> None:
    respy = respy_command()
    peer = wall_time([sys.executable, "-c", "pass"])
    print("start-up, wall, median of 7:")
    print(f"  python -c pass                 {peer * 1000:6.0f} ms")
    print(f"  python -c 'import asyncio'     {wall_time([sys.executable, '-c', 'import asyncio']) * 1000:6.0f} ms"
          "  (the floor of any asyncio client)")
    for label, argv in (("--help", [*respy, "--help"]), ("--version", [*respy, "--version"]),
                        ("URL -n 1 (a plain run)", [*respy, url, "-n", "1", "-q"]),
                        ("URL -n 1 -o json", [*respy, url, "-n", "1", "-q", "-o", "json"])):
        took = wall_time(argv)
        print(f"  respy {label:<24} {took * 1000:6.0f} ms  (+{(took - peer) * 1000:.0f} ms)")
    first = first_request_time(respy)
    print(f"  respy {'URL: to its first request':<24} {first * 1000:6.0f} ms  (+{(first - peer) * 1000:.0f} ms)")


def report_memory(url: str, quick: bool) -> None:
    small = peak_rss_mib([*respy_command(), url, "-n", "10000", "-c", "50", "-q"])
    print("peak RSS (largest respy process):")
    print(f"  10,000 requests      {small:7.1f} MiB")
    if quick:
        print("  1,000,000 requests   skipped (--quick)")
        return
    large = peak_rss_mib([*respy_command(), url, "-n", "1000000", "-c", "50", "-q"])
    print(f"  1,000,000 requests   {large:7.1f} MiB  ({large / small:.2f} x the 10,000 figure)")


def report_levers(url: str, n: int, c: int, rounds: int) -> None:
    asyncio = {"RESPY_EVENT_LOOP": "asyncio"}
    runs = {
        "hey (yardstick)": lambda: hey_figures(url, n, c),
        "respy as shipped": lambda: respy_figures(url, n, c),
        "1 process": lambda: respy_figures(url, n, c, runner=runner(procs=1)),
        "2 processes": lambda: respy_figures(url, n, c, runner=runner(procs=2)),
        "1 process, asyncio loop": lambda: respy_figures(url, n, c, env=asyncio, runner=runner(procs=1)),
        "1 process, httpx's lane": lambda: respy_figures(url, n, c, runner=runner(procs=1, httpx=True)),
    }
    medians = alternate(runs, rounds)
    print(f"levers, {n:,} requests, c = {c}, median of {rounds} alternating rounds (own clock):")
    hey = medians["hey (yardstick)"].own_rps
    for name, fig in medians.items():
        print(f"  {name:<28} {fig.own_rps:>9,.0f} req/s  ({fig.own_rps / hey:.2f} x hey)  {fig.cpu_us:6.1f} µs CPU/req")


def report_profile(url: str, n: int, c: int) -> None:
    """One in-process run of the engine under cProfile (the profiler's own overhead inflates the µs)."""
    import cProfile
    import pstats

    from respy.send.engine import Load, Target, run, run_blocking

    async def go() -> object:
        return await run(Target(url), Load(requests=n, concurrency=c))

    run_blocking(go)  # warm up (imports, first connections)
    cpu = time.process_time()
    run_blocking(go)
    plain_us = (time.process_time() - cpu) / n * 1e6
    profiler = cProfile.Profile()
    profiler.enable()
    run_blocking(go)
    profiler.disable()
    stats = pstats.Stats(profiler)
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    print(f"per request, {n:,} requests at c = {c}, in-process: {plain_us:.1f} µs of CPU without the profiler, "
          f"{calls / n:.0f} Python calls (cProfile)")
    stats.sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="only the comparison with hey and start-up")
    parser.add_argument("--levers", action="store_true", help="also undo respy's choices one at a time")
    parser.add_argument("--profile", action="store_true", help="only the in-process profile per request")
    options = parser.parse_args(argv)
    missing = [tool for tool in ("nginx", "hey") if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {' and '.join(missing)} not installed. "
              "Install with: apt-get update && apt-get install -y nginx hey")
        return 0
    with nginx() as url:
        if options.profile:
            report_profile(url, options.requests, options.concurrency[0])
            return 0
        print(f"nginx on {url} ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; figures are noisy: "
              "compare ratios taken in one run)")
        print(compile_respy() + "\n")
        report_versus_hey(url, options.requests, options.concurrency, options.rounds)
        print()
        report_startup(url)
        if not options.quick:
            print()
            report_concurrency_sweep(url, options.requests, options.rounds)
            print()
            report_memory(url, quick=False)
        if options.levers:
            print()
            report_levers(url, options.requests, options.concurrency[0], options.rounds)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (other work on the machine slows both tools)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
