"""``respy demo [--broken]``: the tutorial's weather-backend on 127.0.0.1, measured (and checked) by respy."""

from __future__ import annotations

from pathlib import Path

from respy.check.evaluate import CheckSettings
from respy.check.plan import RunSize
from respy.cli.common import OneLineParser, Streams, add_count_flags, add_output_flag
from respy.cli.measure import CheckRequest, RunRequest, run_and_report
from respy.demo.weather import weather_app
from respy.send.engine import Target

DEMO_HOST = "weather-backend"
DEMO_RULES = Path(__file__).parents[1] / "examples" / "weather" / "weather-rules.yaml"
TUTORIAL_ISTIO = (1, 2)


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog="respy demo",
        description="Start the tutorial's weather-backend on 127.0.0.1 (a router splitting 90/10 between "
        "'single' and 'multiple', as Envoy does) and measure it. --broken makes the router round-robin, "
        "the tutorial's 50/50 symptom: what Istio 1.1/1.2 gave for a Service port named 'backend' (current "
        "Istio sniffs the protocol and applies the 90/10); the check is judged as Istio 1.2.",
        streams=streams,
    )
    parser.add_argument("--broken", action="store_true", help="round-robin instead of 90/10 (the tutorial's bug)")
    add_count_flags(parser, requests_help="requests to send (default: until the verdict is clear)", concurrency=10)
    add_output_flag(parser)
    parser.add_argument("--seed", type=int, help="seed of the router's random choice (for repeatable demos)")
    parser.add_argument("--no-check", action="store_true", help="only count; do not check against the demo's rules")
    return parser


def main(argv: list[str], streams: Streams) -> int:
    options = build_parser(streams).parse_args(argv)
    with weather_app(broken=options.broken, seed=options.seed) as app:
        # the tutorial's story is Istio 1.1/1.2's: without protocol sniffing its port named "backend" was TCP
        settings = CheckSettings(istio_version=TUTORIAL_ISTIO if options.broken else None)
        check = None if options.no_check else CheckRequest((str(DEMO_RULES),), settings)
        request = RunRequest(
            target=Target(url=app.url, headers=(("Host", DEMO_HOST),)),
            size=RunSize(requests=options.requests),
            concurrency=options.concurrency,
            output=options.output,
            check=check,
        )
        if check is not None:
            routing = ("round-robin, as Istio 1.1/1.2 routed the tutorial's port named 'backend'" if options.broken
                       else "routed 90/10")
            print(f"respy demo: a local weather-backend at {app.url}, {routing}; checking it against "
                  f"{DEMO_RULES}", file=streams.err)
        return run_and_report(request, streams)
