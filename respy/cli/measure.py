"""``respy URL``: flags -> a typed run -> engine -> (check) -> report -> exit code."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from respy._errors import RespyError, UsageError
from respy._options import check_method, check_url, parse_by, parse_header, parse_maps, readable_file
from respy.cli.common import Streams, emit, exit_code, warn
from respy.measurement import Measurement, redact_url
from respy.report.render import header_line
from respy.send.engine import Load, RunResult, RunState, Target, run, run_blocking
from respy.send.load import RunSize
from respy.send.procs import choose_procs, run_in_procs
from respy.tally import Tally

if TYPE_CHECKING:  # the check (numpy, scipy, the rules) is imported only with --expect: a plain run starts fast
    from respy.check.evaluate import CheckSettings, Evaluation
    from respy.check.plan import CheckPlan
    from respy.send.connect_to import ConnectTo

DEFAULT_REQUESTS = 1000


@dataclass(frozen=True)
class CheckRequest:
    """``--expect`` and its settings: what to check the run against."""

    expect: tuple[str, ...]
    settings: CheckSettings
    gateway: str | None = None


@dataclass(frozen=True)
class RunRequest:
    """One ``respy URL`` run, every flag checked and typed (``respy demo`` builds one too)."""

    target: Target
    size: RunSize
    concurrency: int
    rate: float | None = None
    procs: int | None = None
    output: str = "table"
    quiet: bool = False
    check: CheckRequest | None = None


def run_request(args: argparse.Namespace) -> RunRequest:
    """The parsed flags of ``respy URL ...`` as a run."""
    target = target_from_args(args, pick_url(args))
    check = CheckRequest(tuple(args.expect), settings_from_args(args), args.gateway) if args.expect else None
    return RunRequest(
        target=target,
        size=RunSize(requests=args.requests, duration=args.duration, max_requests=args.max_requests),
        concurrency=args.concurrency, rate=args.rate, procs=args.procs, output=args.output, quiet=args.quiet,
        check=check,
    )


def settings_from_args(args: argparse.Namespace, *, alpha: float | None = None,
                       tolerance: float | None = None, mapping: dict[str, str] | None = None) -> CheckSettings:
    """The check flags (``add_check_flags``) as settings; ``alpha``/``tolerance``/``mapping`` fill in for flags
    not given (``respy merge`` takes them from its inputs)."""
    from respy.check.evaluate import CheckSettings  # here, for start-up (see TYPE_CHECKING above)
    from respy.check.verdict import DEFAULT_ALPHA

    return CheckSettings(
        alpha=args.alpha if args.alpha is not None else alpha if alpha is not None else DEFAULT_ALPHA,
        tolerance=args.tolerance if args.tolerance is not None else tolerance,
        strict=args.strict, grace=args.grace, namespace=args.namespace,
        mapping={**(mapping or {}), **parse_maps(args.maps)},
        istio_version=getattr(args, "istio_version", None),
    )


def target_from_args(args: argparse.Namespace, url: str) -> Target:
    return Target(
        url=url,
        method=check_method(args.method),
        headers=tuple(parse_header(h) for h in args.headers),
        data=_body(args.data),
        timeout=args.timeout,
        http2=args.http2,
        verify=not args.insecure,
        cacert=readable_file(args.cacert, "--cacert") if args.cacert else None,
        keepalive=args.keepalive,
        by=parse_by(args.by),
        max_body=args.max_body,
        connect_to=_connect_to(getattr(args, "connect_to", None)),
    )


def _connect_to(value: str | None) -> ConnectTo | None:
    if not value:
        return None
    from respy.send.connect_to import ConnectTo  # here, for start-up: it imports httpx

    return ConnectTo.parse(value)


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data.startswith("@"):
        return Path(readable_file(data[1:], "-d")).read_bytes()
    return data.encode()


def pick_url(args: argparse.Namespace) -> str:
    if args.url and args.u and args.url != args.u:
        raise UsageError(f"two different URLs given ({args.url} and --u {args.u})")
    url = args.url or args.u
    if not url:
        raise UsageError("no URL given: respy URL, or respy --u URL")
    return check_url(url)


class Progress:
    """A one-line progress indicator on stderr, drawn only when stderr is a terminal."""

    def __init__(self, stream: TextIO, planned: int | None) -> None:
        self.stream = stream
        self.planned = planned
        self.started = time.perf_counter()
        self.drawn = False

    def __call__(self, state: RunState, tally: Tally) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        of = f"/{self.planned}" if self.planned else ""
        self.stream.write(f"\r  {state.completed}{of} requests, {state.completed / elapsed:,.0f} req/s   ")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def execute(  # type: ignore[no-untyped-def]
    target: Target, load: Load, streams: Streams, *, quiet: bool, stop_check=None, procs: int | None = None,
    tally: Tally | None = None,
) -> RunResult:
    """Run the load: in worker processes when it is worth it (``procs``: --procs, None = automatic), in this
    process when there is a sequential ``stop_check`` (it must see one growing tally)."""
    show_progress = not quiet and streams.err.isatty()
    progress = Progress(streams.err, load.requests) if show_progress else None
    count = choose_procs(procs, load, sequential=stop_check is not None)

    async def go() -> RunResult:
        return await run(target, load, tally=tally, progress=progress, stop_check=stop_check, check_every=1,
                         handle_signals=True, ramp=stop_check is not None)

    try:
        if count > 1:
            return run_in_procs(target, load, count, progress=progress)
        return run_blocking(go)
    finally:
        if progress is not None:
            progress.clear()



def run_measure(args: argparse.Namespace, streams: Streams) -> int:
    return run_and_report(run_request(args), streams)


def run_and_report(request: RunRequest, streams: Streams) -> int:
    target = request.target
    if target.connect_to is not None:
        from respy.send.connect_to import PORT_FORWARD_NOTE  # here, for start-up: it imports httpx

        print(f"respy: {PORT_FORWARD_NOTE.format(dial=target.connect_to.describe())}", file=streams.err)
    plan = make_plan(request, streams) if request.check is not None else None
    requests = request.size.requests
    if requests is None and not request.size.duration:
        requests = plan.sequential_budget if plan is not None and plan.sequential_budget else DEFAULT_REQUESTS
    load = Load(requests=requests, concurrency=request.concurrency, rate=request.rate, duration=request.size.duration)
    if request.output == "table":
        sequential = plan is not None and plan.sequential is not None
        shown = redact_url(target.url)
        streams.out.write(header_line(shown, load.requests, load.duration, streams.out, sequential=sequential) + "\n")
        streams.out.flush()
    stop_check = plan.stop_check if plan is not None else None
    tally = plan.tally() if plan is not None else None
    result = execute(target, load, streams, quiet=request.quiet, stop_check=stop_check, procs=request.procs,
                     tally=tally)
    measurement = Measurement.from_run(result, target, load)
    with _signals_ignored(measurement.interrupted):
        try:
            evaluation = plan.evaluate(measurement) if plan is not None else None
        except RespyError:  # e.g. an ambiguous label, seen only now: what was measured is still printed
            emit(measurement, None, request.output, streams)
            raise
        report_no_answer(measurement, evaluation, streams)
        emit(measurement, evaluation, request.output, streams)
    return exit_code(measurement, evaluation)


@contextmanager
def _signals_ignored(interrupted: bool) -> Iterator[None]:
    """After an interrupted run, a second Ctrl-C (or SIGTERM) must not cut the output short: the user is
    already getting what was measured, and the exit code (130 / 143) says it was interrupted."""
    if not interrupted or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def make_plan(request: RunRequest, streams: Streams) -> CheckPlan:
    assert request.check is not None
    target, check = request.target, request.check
    from respy.check.plan import RequestShape, plan_check  # here, for start-up (see TYPE_CHECKING above)

    shape = RequestShape(url=target.url, headers=dict(target.headers), method=target.method, gateway=check.gateway)
    plan = plan_check(check.expect, check.settings, shape, request.size, stdin=streams.stdin)
    warn(plan.warnings, streams)
    return plan


def report_no_answer(measurement: Measurement, evaluation: Evaluation | None, streams: Streams) -> None:
    """With not a single HTTP answer there is no split to judge, only the declared one to show (exit code 4)."""
    if evaluation is not None and evaluation.verdict is None and measurement.requests and not measurement.answered:
        print("respy: not a single HTTP answer came back: there is no split to check", file=streams.err)
