"""Worker processes: one interpreter is the ceiling of a Python load generator, so split the load.

With P processes, each gets ⌊C/P⌋ or ⌈C/P⌉ workers (summing to C), a share of N in proportion (summing
to N), the same share of ``--rate``, and the whole ``--duration``. Each runs the ordinary engine and sends
its :class:`Tally` back; the parent merges them. The parent owns the signals: on SIGINT/SIGTERM it tells
every child to stop (children ignore SIGINT, so a Ctrl-C sent to the whole process group does not kill
them mid-way), waits for what they measured, and reports it all.

A sequential check (``stop_check``) needs one tally seen as it grows, so it always runs in-process.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from respy.send.engine import Load, ProgressHook, RunResult, RunState, Target, run, run_blocking
from respy.tally import Tally

if TYPE_CHECKING:  # multiprocessing is imported only when processes are used: a plain run starts faster
    from multiprocessing.connection import Connection

AUTO_MIN_REQUESTS = 20_000  # one process sends this many in well under a second (issue 15): no gain below
AUTO_MAX_PROCS = 4
AUTO_SPARE_CPUS = 1  # left to the server, the sidecar and the kernel's networking: on 2 cores, one process
# beat two once the client cost ~10 µs per request (issue 15, benchmarks/throughput.py --levers)
POLL_S = 0.2


CGROUP_ROOT = "/sys/fs/cgroup"


def available_cpus(cgroup_root: str = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (a pod's ``limits.cpu``,
    which the affinity does not show: a pod limited to 2 CPUs on a 64-core node sees 64)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def cgroup_cpu_quota(root: str = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), or None when unlimited."""
    try:
        with open(os.path.join(root, "cpu.max")) as file:
            quota, period = file.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as quota_file:
            quota_us = int(quota_file.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as period_file:
            period_us = int(period_file.read())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def choose_procs(requested: int | None, load: Load, *, sequential: bool = False, cpus: int | None = None) -> int:
    """How many processes to use: 1 for a sequential check; else ``requested`` (at most C), else automatic:
    every CPU but one (up to 4) when N ≥ 20,000 (or a duration with no cap) and C ≥ 2."""
    if sequential:
        return 1
    most = min(load.concurrency, load.requests) if load.requests is not None else load.concurrency
    if requested is not None:
        return max(1, min(requested, most))
    if load.concurrency < 2 or (load.requests is not None and load.requests < AUTO_MIN_REQUESTS):
        return 1
    return max(1, min((cpus or available_cpus()) - AUTO_SPARE_CPUS, AUTO_MAX_PROCS, most))


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` whole numbers differing by at most one (the larger ones first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_in_proportion(total: int, weights: list[int]) -> list[int]:
    """``total`` in whole numbers proportional to ``weights`` (largest remainders), summing to ``total``."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in remainders[: total - sum(shares)]:
        shares[i] += 1
    return shares


def split_load(load: Load, procs: int) -> list[Load]:
    """One :class:`Load` per process: workers, requests and rate divided, the duration kept."""
    workers = split_evenly(load.concurrency, procs)
    requests: list[int | None] = [None] * procs
    if load.requests is not None:
        requests = list(split_in_proportion(load.requests, workers))
    loads = []
    for count, share in zip(workers, requests, strict=True):
        rate = load.rate * count / load.concurrency if load.rate else None
        loads.append(replace(load, concurrency=count, requests=share, rate=rate))
    return [share for share in loads if share.requests is None or share.requests > 0]


@dataclass
class ChildReport:
    tally: Tally
    began: float
    ended: float
    stop_reason: str | None


def child_main(target: Target, load: Load, conn: Connection) -> None:
    """Entry point of a worker process: run the engine, stream progress, obey "stop", send the tally."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; a group Ctrl-C must not kill us
    terminated: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))

    def listen(state: RunState, tally: Tally) -> None:
        if terminated or _stop_requested(conn):
            state.stop("interrupted")
        with suppress(OSError):
            conn.send(("progress", state.completed))

    conn.send(("ready", None))  # imported and set up: wait for the others, so that all start together
    try:
        starting = conn.recv() == "go"
    except EOFError:
        starting = False
    began = time.monotonic()
    if starting:
        result = run_blocking(lambda: run(target, load, progress=listen))
        report = ChildReport(result.tally, began, time.monotonic(), result.state.stop_reason)
    else:  # stopped before it started
        report = ChildReport(Tally(), began, began, "interrupted")
    with suppress(OSError):
        conn.send(("done", report))
    conn.close()


def _stop_requested(conn: Connection) -> bool:
    try:
        if conn.poll():
            conn.recv()
            return True  # "stop"
    except (EOFError, OSError):
        return True  # the parent is gone: stop too
    return False


@dataclass
class _Child:
    process: Any
    conn: Connection
    completed: int = 0
    report: ChildReport | None = None
    ready: bool = False
    finished: bool = False


def run_in_procs(target: Target, load: Load, procs: int, *, progress: ProgressHook | None = None) -> RunResult:
    """Run ``load`` split over ``procs`` worker processes and merge what they measured."""
    started = time.perf_counter()
    state = RunState(limit=load.requests, rate=load.rate, started=started, deadline=None)
    tally = Tally()
    with _parent_signals(state):
        children = _start_children(target, split_load(load, procs))
        started_all = stopping = False
        while not all(child.finished for child in children):
            _collect(children, POLL_S)
            if not started_all and all(child.ready or child.finished for child in children):
                started_all = True
                _send_all(children, "stop" if state.stop_reason is not None else "go")
            state.completed = sum(child.completed for child in children)
            if any(child.report is not None and child.report.stop_reason == "interrupted" for child in children):
                state.stop("interrupted")  # one child was signalled on its own: stop the others too
            if state.stop_reason is not None and started_all and not stopping:
                stopping = True
                _send_all(children, "stop")
            if progress is not None:
                progress(state, tally)
        for child in children:
            child.process.join()
    return _merge(children, state, tally, started)


def _start_children(target: Target, loads: list[Load]) -> list[_Child]:
    import multiprocessing  # here, for start-up: only a run in processes needs it

    context: Any = multiprocessing.get_context(_start_method())  # fork or spawn; typeshed lacks .Process
    for stream in (sys.stdout, sys.stderr):  # a forked child flushes its copy of any pending output on exit
        with suppress(Exception):
            stream.flush()
    children = []
    previous = signal.getsignal(signal.SIGINT) if _in_main_thread() else None
    if previous is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec: covers the child's start-up
    try:
        for share in loads:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=child_main, args=(target, share, child_end), daemon=True)
            process.start()
            child_end.close()
            children.append(_Child(process, parent_end))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return children


def _start_method() -> str:
    """fork where it is safe (Linux, no other thread running): a child is ready in milliseconds instead of
    re-importing httpx and anyio (~0.2-0.4 s on a busy 2-core machine); spawn otherwise (demo, tests)."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _collect(children: list[_Child], timeout: float) -> None:
    live: dict[Any, _Child] = {child.conn: child for child in children if not child.finished}
    from multiprocessing.connection import wait  # here, for start-up (see _start_children)

    for ready in wait(list(live), timeout):
        child = live[ready]
        conn = child.conn
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "progress":
                    child.completed = payload
                elif kind == "ready":
                    child.ready = True
                else:
                    child.report = payload
                    child.completed = payload.tally.total
                    child.finished = True
                    break
        except (EOFError, OSError):
            child.finished = True  # died without a report (its traceback, if any, went to stderr)


def _send_all(children: list[_Child], message: str) -> None:
    for child in children:
        if not child.finished:
            with suppress(OSError):
                child.conn.send(message)


def _merge(children: list[_Child], state: RunState, tally: Tally, started: float) -> RunResult:
    reports = [child.report for child in children if child.report is not None]
    for report in reports:
        tally.merge(report.tally)
    state.completed = state.issued = tally.total
    lost = len(children) - len(reports)
    if lost:
        state.stop(f"{lost} worker process(es) failed")
    reasons = {report.stop_reason for report in reports}
    if "interrupted" in reasons:
        state.stop("interrupted")
    elif state.limit is not None and tally.total >= state.limit:
        state.stop("all requests sent")
    else:
        state.stop(next(iter(sorted(r for r in reasons if r)), "done"))
    elapsed = time.perf_counter() - started
    if reports:
        elapsed = max(report.ended for report in reports) - min(report.began for report in reports)
    for child in children:
        child.conn.close()
    return RunResult(tally=tally, elapsed_s=elapsed, state=state)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _parent_signals(state: RunState) -> Iterator[None]:
    """SIGINT/SIGTERM in the parent: remember which, and stop the run (the loop tells the children)."""
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        state.signal_name = state.signal_name or signal.Signals(signum).name
        state.stop("interrupted")

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)

