"""The ``respy`` command: parse flags, run, print, and map the result onto an exit code.

Exit codes: 0 measured (or PASS / CONSISTENT), 1 FAIL, 2 usage or input error, 3 INCONCLUSIVE,
4 not a single HTTP answer came back, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO
from urllib.parse import urlsplit

from respy import __version__
from respy._errors import RespyError, UsageError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_NO_ANSWER = 0, 1, 2, 3, 4
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
SUBCOMMANDS = ("demo", "analyze", "merge", "sandbox")

DESCRIPTION = """\
respy sends N HTTP requests to a URL, C at a time, and shows how the answers are split:
which response came back how often. With --expect it reads the routing you declared (Istio
VirtualService + DestinationRule, Gateway API HTTPRoute, or plain weights), works out the split
this request should see, and says whether the observed split matches: PASS, FAIL or INCONCLUSIVE.

other commands:
  respy demo [--broken]        run against a local 90/10 weather-backend (no cluster needed)
  respy analyze FILE|DIR|- ... find what in the manifests breaks a traffic split
  respy merge A.json B.json    combine JSON results of several runs (e.g. parallel pods)
  respy sandbox RULES...       program a real Envoy with your routing YAML, as istiod would, and try it
"""

EPILOG = """\
examples:
  respy http://weather-backend:5000/version
  respy --u http://weather-backend:5000/version --n 1000 --c 100      (the original flags)
  respy -n 2000 -c 20 -H "Host: weather-backend" http://127.0.0.1:8080/version
  respy http://weather-backend:5000/version --expect weather-rules.yaml
  respy http://weather-backend:5000/version --expect single=90,multiple=10
  kubectl get virtualservice,destinationrule -o yaml | respy URL --expect -
  respy URL --by header:x-version -o json

exit codes:
  0 measured / PASS   1 FAIL   2 usage or input error   3 INCONCLUSIVE
  4 no HTTP answer at all   130 interrupted (Ctrl-C)   143 terminated (SIGTERM)
"""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def probability(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def duration(text: str) -> float:
    """``30``, ``30s``, ``500ms``, ``2m`` or ``1h`` as seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return positive_float(text[: -len(suffix)]) * units[suffix]
    return positive_float(text)


def tolerance_value(text: str) -> float:
    """``0.05``, ``5%`` or ``5pp`` as a fraction."""
    stripped = text.strip().lower()
    for suffix in ("%", "pp"):
        if stripped.endswith(suffix):
            return probability(str(float(stripped[: -len(suffix)]) / 100))
    return probability(stripped)


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="respy",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("url", nargs="?", help="the URL to send requests to, e.g. http://weather-backend:5000/version")
    parser.add_argument("--u", dest="u", metavar="URL", help="the URL (the original respy's flag; same as URL)")
    parser.add_argument("--version", action="version", version=f"respy {__version__}")
    _add_load_flags(parser)
    _add_request_flags(parser)
    _add_output_flags(parser)
    _add_check_flags(parser)
    return parser


def _add_load_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how much to send")
    group.add_argument("-n", "--requests", "--n", dest="requests", type=positive_int, metavar="N",
                       help="total requests, exactly (default 1000; with --expect and no -n: until the verdict "
                            "is clear). Example: -n 5000")
    group.add_argument("-c", "--concurrency", "--c", dest="concurrency", type=positive_int, default=100, metavar="C",
                       help="requests in flight at once, never more (default 100). Example: -c 10")
    group.add_argument("--rate", type=positive_float, metavar="RPS",
                       help="total requests per second across all workers (default: as fast as possible). "
                            "Example: --rate 50")
    group.add_argument("-z", "--duration", type=duration, metavar="TIME",
                       help="send for this long (30, 30s, 2m); -n then caps the count, else no cap. Example: -z 30s")
    group.add_argument("--procs", type=positive_int, metavar="P",
                       help="worker processes sharing the load (default: automatic)")


def _add_request_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("what each request looks like")
    group.add_argument("-X", "--method", default="GET", help="HTTP method (default GET). Example: -X POST")
    group.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="'NAME: VALUE'",
                       help="add a header; repeatable; a Host header is sent as given and picks the routing rule. "
                            "Example: -H 'Host: weather-backend' -H 'end-user: jason'")
    group.add_argument("-d", "--data", metavar="BODY",
                       help="request body; @FILE reads it from a file. Example: -d '{}'")
    group.add_argument("-t", "--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                       help="limit for each whole request, connect to last byte (default 10). Example: -t 2")
    group.add_argument("--http2", action="store_true", help="use HTTP/2 where the server offers it (TLS, ALPN)")
    group.add_argument("-k", "--insecure", action="store_true", help="do not verify the server's TLS certificate")
    group.add_argument("--cacert", metavar="FILE", help="trust this CA bundle (PEM) for TLS. Example: --cacert ca.pem")
    group.add_argument("--no-keepalive", dest="keepalive", action="store_false",
                       help="a new connection for every request: needed to sample splits made per connection (L4)")


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how answers are counted and shown")
    group.add_argument("--by", default="body", metavar="WHAT",
                       help="tally responses by: body (default), status, header:NAME, regex:PATTERN (first group). "
                            "Example: --by header:x-version, --by 'regex:version=(\\w+)'")
    group.add_argument("-o", "--output", choices=("table", "json", "csv"), default="table",
                       help="table (default, for people), json (one object, for machines), csv (a row per label)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress line on stderr")


def _add_check_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("checking the split (--expect)")
    group.add_argument("--expect", action="append", default=[], metavar="RULES",
                       help="the routing you declared: a YAML file, a directory, - (stdin), 'cluster', or weights "
                            "like single=90,multiple=10; repeatable. Example: --expect weather-rules.yaml")
    group.add_argument("--map", dest="maps", action="append", default=[], metavar="LABEL=DEST",
                       help="say which destination a response label comes from; repeatable. "
                            "Example: --map 'weather-backend: single=single'")
    group.add_argument("--alpha", type=probability, default=0.01,
                       help="false-alarm rate of the tests (default 0.01)")
    group.add_argument("--tolerance", type=tolerance_value, metavar="DELTA",
                       help="how far a share may be from its declared weight and still PASS: 0.05, 5%% or 5pp "
                            "(default: the smaller of 5 pp and half the smallest declared share)")
    group.add_argument("--strict", action="store_true",
                       help="exact-match test only: FAIL when chi-square rejects, else CONSISTENT")
    group.add_argument("--grace", type=int, default=0, metavar="K",
                       help="ignore up to K answers from undeclared or weight-0 destinations (default 0)")
    group.add_argument("--max-requests", type=positive_int, metavar="N",
                       help="budget of the sequential check (no -n): stop with INCONCLUSIVE after N requests")
    group.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                       help="namespace for rules and short host names (default: $POD_NAMESPACE or 'default')")
    group.add_argument("--gateway", metavar="NAME",
                       help="the request enters through this Istio Gateway (default: a sidecar in the mesh)")


@dataclass
class Streams:
    out: TextIO
    err: TextIO


def fail_usage(message: str) -> NoReturn:
    raise UsageError(message)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        fail_usage(f"URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        fail_usage(f"URL {url!r} has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        fail_usage(f"URL {url!r} has an invalid port")
    return url


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        fail_usage(f"header {text!r} must look like 'Name: value'")
    return name.strip(), value.strip()


def main(argv: Sequence[str] | None = None, streams: Streams | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    streams = streams or Streams(sys.stdout, sys.stderr)
    try:
        if args and args[0] in SUBCOMMANDS:
            return _subcommand(args[0], args[1:], streams)
        parsed = build_parser().parse_args(args)  # --help and --version end here, before httpx is imported
        from respy.cli.measure import run_measure

        return run_measure(parsed, streams)
    except RespyError as exc:
        print(f"respy: error: {_one_line(str(exc))}", file=streams.err)
        return exc.exit_code
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("respy: interrupted", file=streams.err)
        return EXIT_SIGNAL["SIGINT"]
    except BrokenPipeError:
        return EXIT_OK


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _subcommand(name: str, args: list[str], streams: Streams) -> int:
    if name == "demo":
        from respy.cli.measure import run_demo

        return run_demo(args, streams)
    if name == "sandbox":
        from respy.cli.sandbox import main as sandbox_main

        return sandbox_main(args, streams)
    if name == "analyze":
        from respy.cli.analyze import main as analyze_main

        return analyze_main(args, streams)
    from respy.cli.merge import main as merge_main

    return merge_main(args, streams)


def entry_point() -> None:
    sys.exit(main())
