"""respy's throughput, start-up time and memory, with ``hey`` as the yardstick, against a local nginx.

Usage:
    python benchmarks/throughput.py [--quick] [--requests 20000] [--concurrency 50] [--rounds 5] [--levers]

Needs nginx and hey (``apt-get install -y nginx hey``); skips with a message when either is missing.
It writes a minimal nginx.conf in a temporary directory (one worker, ``return 200 "weather-backend: single"``,
keep-alive for a million requests, pid and logs in that directory), serves on 127.0.0.1, then prints:

* respy and hey back to back on the same URL (N requests, c = C), alternating, ``--rounds`` rounds, medians,
  and the ratio respy/hey: compare ratios from one run, never absolute figures across runs or machines;
* respy's req/s at c = 1, 10, 50, 100, 200, with hey's at the same c (a dip both share is the server's);
* the wall time of ``respy --help`` and ``respy --version`` (median of 7) beside ``python -c pass``;
* respy's peak RSS (the largest of its processes) for 10,000 and 1,000,000 requests. The 1M run takes a
  minute or two: ``--quick`` skips it.
* ``--levers``: the same alternating comparison for the choices respy makes (its own HTTP/1.1 transport vs
  httpx's, uvloop vs asyncio, worker processes vs one), so each can be re-checked on another machine.

respy's req/s is its own figure (requests / elapsed, as printed in its JSON), like hey's: interpreter
start-up is not included in either (it is reported separately).
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
if use_httpx:  # httpx's own transport (a pool of one per worker) instead of respy's HTTP/1.1 transport
    import httpx
    def httpx_transport(target, context):
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncHTTPTransport(verify=context, limits=limits, retries=0)
    _engine.make_transport = httpx_transport
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


def respy_command() -> list[str]:
    script = Path(sys.executable).with_name("respy")
    return [str(script)] if script.exists() else [sys.executable, "-m", "respy"]


def respy_rps(url: str, n: int, c: int, *extra: str, env: dict[str, str] | None = None,
              runner: str | None = None) -> float:
    """Run respy once; its own req/s (requests / elapsed). Checks every request came back as the body."""
    command = [sys.executable, "-c", runner] if runner else respy_command()
    argv = [*command, url, "-n", str(n), "-c", str(c), "-q", "-o", "json", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"respy exited {done.returncode}: {done.stderr.strip()[-500:]}")
    data = json.loads(done.stdout)
    rows = {row["label"]: row["count"] for row in data["rows"]}
    if rows != {BODY: n}:
        raise RuntimeError(f"respy miscounted: {rows}")
    return n / data["elapsed_s"]


def hey_rps(url: str, n: int, c: int) -> float:
    done = subprocess.run(["hey", "-n", str(n), "-c", str(c), url], capture_output=True, text=True, timeout=900)
    for line in done.stdout.splitlines():
        if line.strip().startswith("Requests/sec:"):
            return float(line.split(":", 1)[1])
    raise RuntimeError(f"could not read hey's output: {done.stdout[-500:]} {done.stderr[-500:]}")


def alternate(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each contender once per round, in turn (so drift hits all alike); the median of each."""
    seen: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, once in runs.items():
            seen[name].append(once())
    return {name: statistics.median(values) for name, values in seen.items()}


def wall_time(argv: list[str], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
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


def report_versus_hey(url: str, n: int, c: int, rounds: int) -> None:
    medians = alternate({"respy": lambda: respy_rps(url, n, c), "hey": lambda: hey_rps(url, n, c)}, rounds)
    print(f"respy vs hey, {n:,} requests, c = {c}, median of {rounds} alternating rounds:")
    print(f"  respy {medians['respy']:>9,.0f} req/s")
    print(f"  hey   {medians['hey']:>9,.0f} req/s")
    print(f"  ratio respy/hey = {medians['respy'] / medians['hey']:.2f}")


def report_concurrency_sweep(url: str, n: int, rounds: int) -> None:
    """respy at each concurrency, with hey at the same one: a dip both share is the server's, not respy's."""
    runs: dict[str, Callable[[], float]] = {}
    for c in CONCURRENCY_SWEEP:
        runs[f"respy {c}"] = lambda c=c: respy_rps(url, n, c)  # type: ignore[misc]
        runs[f"hey {c}"] = lambda c=c: hey_rps(url, n, c)  # type: ignore[misc]
    medians = alternate(runs, rounds)
    print(f"req/s by concurrency ({n:,} requests, median of {rounds}; hey at the same c as the yardstick):")
    for c in CONCURRENCY_SWEEP:
        mine, peer = medians[f"respy {c}"], medians[f"hey {c}"]
        print(f"  c = {c:<4} respy {mine:>9,.0f}   hey {peer:>9,.0f}   ratio {mine / peer:.2f}")


def report_startup() -> None:
    respy = respy_command()
    peer = wall_time([sys.executable, "-c", "pass"])
    print("start-up, wall, median of 7:")
    print(f"  python -c pass   {peer * 1000:6.0f} ms")
    for flag in ("--help", "--version"):
        print(f"  respy {flag:<10} {wall_time([*respy, flag]) * 1000:6.0f} ms")


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
        "hey (yardstick)": lambda: hey_rps(url, n, c),
        "respy as shipped": lambda: respy_rps(url, n, c),
        "1 process": lambda: respy_rps(url, n, c, runner=runner(procs=1)),
        "2 processes": lambda: respy_rps(url, n, c, runner=runner(procs=2)),
        "1 process, asyncio loop": lambda: respy_rps(url, n, c, env=asyncio, runner=runner(procs=1)),
        "1 process, httpx's transport": lambda: respy_rps(url, n, c, runner=runner(procs=1, httpx=True)),
        "1 process, httpx's, asyncio": lambda: respy_rps(url, n, c, env=asyncio, runner=runner(procs=1, httpx=True)),
    }
    medians = alternate(runs, rounds)
    print(f"levers, {n:,} requests, c = {c}, median of {rounds} alternating rounds:")
    hey = medians["hey (yardstick)"]
    for name, value in medians.items():
        print(f"  {name:<32} {value:>9,.0f} req/s  ({value / hey:.2f} x hey)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the 1,000,000-request memory run")
    parser.add_argument("--levers", action="store_true", help="also compare transport, event loop and processes")
    options = parser.parse_args(argv)
    missing = [tool for tool in ("nginx", "hey") if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {' and '.join(missing)} not installed. Install with: apt-get install -y nginx hey")
        return 0
    with nginx() as url:
        print(f"nginx on {url} ({os.cpu_count()} CPUs; figures are noisy: compare ratios taken in one run)\n")
        report_versus_hey(url, options.requests, options.concurrency, options.rounds)
        print()
        report_concurrency_sweep(url, options.requests, options.rounds)
        print()
        report_startup()
        print()
        report_memory(url, options.quick)
        if options.levers:
            print()
            report_levers(url, options.requests, options.concurrency, options.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
