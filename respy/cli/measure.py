"""``respy URL``: flags -> a typed run -> engine -> (check) -> report -> exit code."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from respy._errors import RespyError, UsageError
from respy._options import check_method, check_proxy, check_url, parse_by, parse_header, parse_maps, readable_file
from respy.cli.common import Streams, emit, exit_code, warn
from respy.measurement import Measurement, redact_url
from respy.report.header import header_line
from respy.report.progress import ProgressLine
from respy.send.engine import Load, RunResult, Target, run, run_blocking
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
class SidecarRequest:
    """``--envoy-admin`` / ``--config-dump``: where to read the sidecar's config (``admin`` None: probe the
    default), and how to check the run against the programmed split when nothing was declared."""

    admin: str | None
    config_dump: str | None
    settings: Callable[[], CheckSettings]  # made on use: a plain run must not load the check's modules


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
    sidecar: SidecarRequest | None = None  # None: the sidecar is not read (``--envoy-admin none``, the demo)


def run_request(args: argparse.Namespace) -> RunRequest:
    """The parsed flags of ``respy URL ...`` as a run."""
    target = target_from_args(args, pick_url(args))
    check = CheckRequest(tuple(args.expect), settings_from_args(args), args.gateway) if args.expect else None
    return RunRequest(
        target=target,
        size=RunSize(requests=args.requests, duration=args.duration, max_requests=args.max_requests),
        concurrency=args.concurrency, rate=args.rate, procs=args.procs, output=args.output, quiet=args.quiet,
        check=check, sidecar=_sidecar_request(args),
    )


def _sidecar_wanted(request: SidecarRequest, target: Target) -> bool:
    """Named (``--envoy-admin URL``, ``--config-dump``), or the default probe for a non-loopback address: a
    sidecar does not capture loopback traffic, so its config says nothing about such a request."""
    if request.admin is not None or request.config_dump is not None:
        if target.proxy:
            raise UsageError("--proxy with --envoy-admin or --config-dump: the sidecar routes the connection to "
                             "the proxy, not to the URL, so its config says nothing about this request")
        return True
    if target.proxy:
        return False  # the sidecar would route the connection to the proxy: its config says nothing of the URL
    host = (urlsplit(target.url).hostname or "").strip("[]")
    if target.connect_to is not None and target.connect_to.addr:
        host = target.connect_to.addr.strip("[]")
    try:
        return host != "localhost" and not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def _sidecar_request(args: argparse.Namespace) -> SidecarRequest | None:
    if args.config_dump is None and args.envoy_admin is not None and args.envoy_admin.lower() == "none":
        return None
    return SidecarRequest(args.envoy_admin, args.config_dump, lambda: settings_from_args(args))


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
        max_error_rate=args.max_error_rate, max_latency_ratio=args.max_latency_ratio,
        istio_version=getattr(args, "istio_version", None),
    )


def target_from_args(args: argparse.Namespace, url: str) -> Target:
    return Target(
        url=url,
        method=check_method(args.method),
        headers=_headers(args),
        data=_body(args.data),
        timeout=args.timeout,
        http2=args.http2,
        verify=not args.insecure,
        cacert=readable_file(args.cacert, "--cacert") if args.cacert else None,
        keepalive=args.keepalive,
        by=parse_by(args.by),
        max_body=args.max_body,
        connect_to=_connect_to(getattr(args, "connect_to", None)),
        proxy=_proxy(args),
    )


def _proxy(args: argparse.Namespace) -> str | None:
    if not args.proxy:
        return None
    if getattr(args, "connect_to", None):
        raise UsageError("--proxy and --connect-to both given: with a proxy, the proxy picks where to connect")
    return check_proxy(args.proxy, "--proxy")


def _headers(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    headers = tuple(parse_header(h) for h in args.headers)
    host = getattr(args, "host_header", None)
    if host:
        if any(name.lower() == "host" for name, _ in headers):
            raise UsageError("--host and -H 'Host: ...' both given: say the Host header once")
        headers += parse_header(f"Host: {host}"),
    return headers


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


def execute(  # type: ignore[no-untyped-def]
    target: Target, load: Load, streams: Streams, *, quiet: bool, stop_check=None, procs: int | None = None,
    sequential: bool = False,
    tally: Tally | None = None,
) -> RunResult:
    """Run the load: in worker processes when it is worth it (``procs``: --procs, None = automatic), in this
    process when there is a sequential ``stop_check`` (it must see one growing tally)."""
    show_progress = not quiet and streams.err.isatty()
    progress = ProgressLine(streams.err, load.requests, duration=load.duration, sequential=sequential) \
        if show_progress else None
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
    sidecar = None
    if request.sidecar is not None and _sidecar_wanted(request.sidecar, target):
        # on use, for start-up time: reading Envoy's admin loads httpx, anyio and the statistics
        from respy.cli.sidecar_run import open_sidecar, programmed_plan

        sidecar = open_sidecar(request.sidecar, target, streams)
        if plan is None:
            plan = programmed_plan(sidecar, request.sidecar.settings())
        elif sidecar.before is not None:  # its counters are read again after the run: they may attribute errors
            plan.errors_attributed_after_run()
    requests = request.size.requests
    if requests is None and not request.size.duration:
        requests = plan.sequential_budget if plan is not None and plan.sequential_budget else DEFAULT_REQUESTS
    load = Load(requests=requests, concurrency=request.concurrency, rate=request.rate, duration=request.size.duration)
    sequential = plan is not None and plan.sequential is not None
    if request.output in ("table", "wide"):
        shown = redact_url(target.url)
        streams.out.write(header_line(shown, load.requests, load.duration, streams.out, sequential=sequential) + "\n")
        streams.out.flush()
    stop_check = plan.stop_check if plan is not None else None
    # nothing will check this run's independence (no --expect, no sidecar): the tally need not keep what it reads
    tally = plan.tally() if plan is not None else Tally(independence=False) if sidecar is None else None
    result = execute(target, load, streams, quiet=request.quiet, stop_check=stop_check, procs=request.procs,
                     sequential=sequential, tally=tally)
    measurement = Measurement.from_run(result, target, load)
    with _signals_ignored(measurement.interrupted):
        seen = None
        if sidecar is not None:
            from respy.cli.sidecar_run import errors_after_run  # loaded already, with open_sidecar

            seen = errors_after_run(sidecar)  # the counters, read before the verdict: they attribute errors
        try:
            evaluation = plan.evaluate(measurement, seen) if plan is not None else None
        except RespyError:  # e.g. an ambiguous label, seen only now: what was measured is still printed
            emit(measurement, None, request.output, streams)
            raise
        report_no_answer(measurement, evaluation, streams)
        report = None
        if sidecar is not None:
            from respy.cli.sidecar_run import finish_sidecar  # loaded already, with open_sidecar

            report = finish_sidecar(sidecar, evaluation, measurement, plan, seen,
                                    declared_given=request.check is not None)
        emit(measurement, evaluation, request.output, streams, report)
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
