"""The ``respy`` command: parse flags, run, print, and map the result onto an exit code.

Exit codes: 0 measured (or PASS / CONSISTENT), 1 FAIL, 2 usage or input error, 3 INCONCLUSIVE,
4 not a single HTTP answer came back, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib import import_module

from respy import __version__, _options
from respy._errors import RespyError
from respy.cli.common import (
    EXIT_OK,
    EXIT_SIGNAL,
    EXIT_USAGE,
    OneLineParser,
    Streams,
    add_check_flags,
    add_count_flags,
    add_header_flag,
    add_output_flag,
    argument_type,
    count,
    duration,
    one_line,
    positive_number,
)
from respy.cli.peers import refuse_rate_q
from respy.report.terminal import escape

byte_size = argument_type(_options.size_text)
DEFAULT_MAX_BODY = 64 * 1024 * 1024  # respy.send.load's default (not imported: --help stays light)

# each a module respy.cli.NAME (a dash read as "_") with main(args, streams)
SUBCOMMANDS = ("demo", "analyze", "merge", "sandbox", "proxy-config")

DESCRIPTION = """\
respy sends N HTTP requests to a URL, C at a time, and shows how the answers are split:
which response came back how often. With --expect it reads the routing you declared (Istio
VirtualService + DestinationRule, Gateway API HTTPRoute, or plain weights), works out the split
this request should see, and says whether the observed split matches: PASS, FAIL or INCONCLUSIVE.

other commands:
  respy demo [--broken]        run against a local 90/10 weather-backend on a real Envoy (no cluster needed)
  respy analyze FILE|DIR|- ... find what in the manifests breaks a traffic split
  respy merge A.json B.json    combine JSON results of several runs (e.g. parallel pods)
  respy sandbox RULES...       program a real Envoy with your routing YAML, as istiod would, and try it
  respy proxy-config URL       what the sidecar's Envoy will do with this request (no request sent)

In a pod with an istio-proxy sidecar, respy also reads the sidecar's Envoy admin (127.0.0.1:15000):
the split the mesh programmed for this request is shown beside the observed one (and is the
expectation when no --expect is given), and a failure is located: control plane, data plane or bypass.
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

what a verdict guarantees (--expect at default flags, alpha 0.01; benchmarks/calibration.py, 2,000 seeded
runs each of 90/10, 50/50, 99/1, 70/20/10 and 34/33/33):
  A wrong FAIL when the split is the declared one happens in at most alpha of runs (measured: 0.00 %).
  A wrong PASS when a share is just outside the tolerance happens in at most alpha of runs (measured: 0.40 %).
  A correct split ends INCONCLUSIVE within the default budget in at most 1.45 % of runs (measured), and a
  decision once made is never lost to the answers still in flight.

exit codes:
  0 measured / PASS   1 FAIL   2 usage or input error   3 INCONCLUSIVE
  4 no HTTP answer at all   130 interrupted (Ctrl-C)   143 terminated (SIGTERM)
"""


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog="respy",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        streams=streams,
    )
    parser.add_argument("url", nargs="?", help="the URL to send requests to, e.g. http://weather-backend:5000/version")
    parser.add_argument("--u", dest="u", metavar="URL", help="the URL (the original respy's flag; same as URL)")
    parser.add_argument("--version", action="version", version=f"respy {__version__}")
    _add_load_flags(parser)
    _add_request_flags(parser)
    _add_output_flags(parser)
    _add_check_flags(parser)
    _add_sidecar_flags(parser)
    return parser


def _add_load_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how much to send")
    add_count_flags(group, concurrency=100,
                    requests_help="total requests, exactly (default 1000; with --expect and no -n: until the verdict "
                                  "is clear). Example: -n 5000",
                    concurrency_help="requests in flight at once, never more (default 100); a sequential check starts "
                                     "with 4 and grows to C while the verdict is open. Example: -c 10")
    group.add_argument("--rate", type=positive_number, metavar="RPS",
                       help="total requests per second across all workers (default: as fast as possible). "
                            "Example: --rate 50")
    group.add_argument("-z", "--duration", type=duration, metavar="TIME",
                       help="send for this long (30, 30s, 2m); -n then caps the count, else no cap. Example: -z 30s")
    group.add_argument("--procs", type=count, metavar="P",
                       help="worker processes sharing the load (default: automatic)")


def _add_request_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("what each request looks like")
    group.add_argument("-X", "-m", "--method", default="GET",
                       help="HTTP method (default GET; -m as in hey and oha). Example: -X POST")
    add_header_flag(group, "add a header; repeatable; a Host header is sent as given and picks the routing rule. "
                           "Example: -H 'Host: weather-backend' -H 'end-user: jason'")
    group.add_argument("-d", "--data", metavar="BODY",
                       help="request body; @FILE reads it from a file. Example: -d '{}'")
    group.add_argument("-t", "--timeout", type=positive_number, default=10.0, metavar="SECONDS",
                       help="limit for each whole request, connect to last byte (default 10). Example: -t 2")
    group.add_argument("--http2", action="store_true", help="use HTTP/2 where the server offers it (TLS, ALPN)")
    group.add_argument("-k", "--insecure", action="store_true", help="do not verify the server's TLS certificate")
    group.add_argument("--cacert", metavar="FILE", help="trust this CA bundle (PEM) for TLS. Example: --cacert ca.pem")
    group.add_argument("-x", "--proxy", metavar="URL",
                       help="send every request through this HTTP proxy (as hey's -x and curl's -x; https goes "
                            "through a CONNECT tunnel). HTTP_PROXY and the like are not read. "
                            "Example: -x http://proxy:3128")
    group.add_argument("--no-keepalive", "--disable-keepalive", dest="keepalive", action="store_false",
                       help="a new connection for every request: needed to sample splits made per connection (L4)")
    group.add_argument("--host", dest="host_header", metavar="HOST",
                       help="the Host header (as hey's -host and oha's --host; same as -H 'Host: HOST'). "
                            "Example: --host weather-backend")
    group.add_argument("--max-body", type=byte_size, default=DEFAULT_MAX_BODY, metavar="SIZE",
                       help="read at most this much of one answer's body (the label keeps the first 64 KiB); "
                            "past it the connection is dropped and the row says why (default 64MiB). "
                            "Example: --max-body 1GiB")
    group.add_argument("--connect-to", metavar="HOST:PORT:ADDR:PORT2",
                       help="as curl's: send (and route) the request as HOST:PORT, connect to ADDR:PORT2 (a "
                            "port-forward, a stand-in server). "
                            "Example: --connect-to weather-backend:5000:127.0.0.1:8080")


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how answers are counted and shown")
    group.add_argument("--by", default="body", metavar="WHAT",
                       help="tally responses by: body (default; a redirect by its Location), status, header:NAME, "
                            "regex:PATTERN (first group). "
                            "Example: --by header:x-version, --by 'regex:version=(\\w+)'")
    add_output_flag(group, help="table (default, for people), wide (the table plus latency per row, error rate per "
                                "destination, latency and status-code summaries, a latency histogram), json (one "
                                "object, for machines), csv (a record per label; with --expect, then the verdict and "
                                "its reasons)")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="no progress line on stderr (-q NUMBER, hey's and oha's rate, is refused: use --rate)")


def _add_check_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("checking the split (--expect)")
    add_check_flags(group)
    group.add_argument("--max-requests", type=count, metavar="N",
                       help="budget of the sequential check (no -n): stop with INCONCLUSIVE after N requests")
    group.add_argument("--gateway", metavar="NAME",
                       help="the request enters through this Istio Gateway (default: a sidecar in the mesh)")


def _add_sidecar_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the sidecar's view (Envoy admin)")
    group.add_argument("--envoy-admin", metavar="URL|none",
                       help="the sidecar's Envoy admin API (default: http://127.0.0.1:15000 when it answers within "
                            "200 ms and is Envoy; none: do not read it). Example: --envoy-admin none")
    group.add_argument("--config-dump", metavar="FILE|-",
                       help="read the sidecar's config from a saved /config_dump instead of its admin. Example: "
                            "kubectl exec POD -c istio-proxy -- curl -s localhost:15000/config_dump > dump.json")


def main(argv: Sequence[str] | None = None, streams: Streams | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    streams = streams or Streams.system()
    try:
        if args and args[0] in SUBCOMMANDS:
            # imported on use, for start-up time: a subcommand's module loads httpx, numpy or yaml
            return int(import_module(f"respy.cli.{args[0].replace('-', '_')}").main(args[1:], streams))
        refuse_rate_q(args)
        parsed = build_parser(streams).parse_args(args)  # --help and --version end here, before httpx is imported
        return int(import_module("respy.cli.measure").run_measure(parsed, streams))  # httpx: only for a run
    except RespyError as exc:
        print(f"respy: error: {escape(one_line(str(exc)))}", file=streams.err)
        return exc.exit_code
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("respy: interrupted", file=streams.err)
        return EXIT_SIGNAL["SIGINT"]
    except BrokenPipeError:
        return EXIT_OK


def entry_point() -> None:
    code = main()
    # Done: a Ctrl-C pressed now (a second one, while the output was written) must not turn exit code 130 into
    # death by SIGINT at shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader that went away, or a stream already closed
        pass
    # Everything is written and every resource released (main's context managers closed them): skip the
    # interpreter's teardown of its modules, which costs a plain run ~10 % of its start-up and stop time.
    os._exit(code)
