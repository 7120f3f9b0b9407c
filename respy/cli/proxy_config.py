"""``respy proxy-config [URL]``: what the sidecar's Envoy will do with a request, without sending it.

With a URL: the listener, route configuration, virtual host, route and the VirtualService behind it, the
clusters with their weights and the destinations they stand for, and the endpoints healthy/total behind each.
Without one: every route, in the columns of ``istioctl proxy-config routes -o wide``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from respy._errors import UsageError
from respy._options import check_url, parse_header
from respy.cli.common import EXIT_OK, OneLineParser, Streams
from respy.sidecar.admin import DEFAULT_ADMIN
from respy.sidecar.listing import route_rows
from respy.sidecar.programmed import Programmed
from respy.sidecar.view import SidecarView

EXAMPLES = """\
examples:
  respy proxy-config http://weather-backend:5000/version
  respy proxy-config http://reviews:9080/ -H 'end-user: jason' -o json
  kubectl exec POD -c istio-proxy -- curl -s localhost:15000/config_dump | respy proxy-config URL --config-dump -
  respy proxy-config --config-dump dump.json          (every route, as istioctl proxy-config routes -o wide)
"""


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog="respy proxy-config",
        description="Show what the sidecar's Envoy will do with a request to URL, worked out from its\n"
        "configuration the way Envoy does it (listener, virtual host, first matching route), without\n"
        "sending the request. Reads the sidecar's admin (default http://127.0.0.1:15000) or a saved\n"
        "/config_dump. Exit 0; 2 when no sidecar config could be read.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        streams=streams,
    )
    parser.add_argument("url", nargs="?", help="the request's URL; without it, every route is listed")
    parser.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="'NAME: VALUE'",
                        help="a request header (a Host header picks the virtual host); repeatable")
    parser.add_argument("-X", "--method", default="GET", help="HTTP method (default GET)")
    parser.add_argument("--envoy-admin", metavar="URL", help="the sidecar's admin (default http://127.0.0.1:15000)")
    parser.add_argument("--config-dump", metavar="FILE|-", help="read a saved /config_dump (- for stdin)")
    parser.add_argument("--route", metavar="NAME", help="use this route config (as istioctl's --name), not the "
                        "one the listener for the URL's port names. Example: --route 5000")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    return parser


def main(argv: list[str], streams: Streams) -> int:
    args = build_parser(streams).parse_args(argv)
    if args.envoy_admin is not None and args.envoy_admin.lower() == "none" and args.config_dump is None:
        raise UsageError("proxy-config needs the sidecar's config: --envoy-admin URL or --config-dump FILE")
    url = check_url(args.url) if args.url else "http://localhost/"
    headers = dict(parse_header(h) for h in args.headers)
    view = SidecarView.open(admin=args.envoy_admin or DEFAULT_ADMIN, config_dump=args.config_dump, url=url,
                            headers=headers, method=args.method, stdin=streams.stdin, stats=False,
                            route_config=args.route)
    if view.dump is None:
        reason = view.problems[0] if view.problems else "no sidecar config"
        raise UsageError(f"cannot read the sidecar's config: {reason}")
    if not args.url:
        rows = [row.to_dict() for row in route_rows(view.dump)]
        streams.out.write((json.dumps(rows, indent=2) if args.output == "json" else routes_table(rows)) + "\n")
        return EXIT_OK
    assert view.programmed is not None
    if args.output == "json":
        data = {"url": args.url, "origin": view.origin, **view.programmed.to_dict()}
        streams.out.write(json.dumps(data, indent=2) + "\n")
    else:
        streams.out.write(programmed_text(view.programmed, view.origin) + "\n")
    return EXIT_OK


def routes_table(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate  # on use, for start-up time (as report/render.py)

    headers = ["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]
    body = [[r["name"], r["virtual_host"], r["domains"], r["match"], r["virtual_service"]] for r in rows]
    return tabulate(body, headers=headers, tablefmt="plain", disable_numparse=True)


def programmed_text(programmed: Programmed, origin: str) -> str:
    """The walk, then the clusters as a table."""
    from tabulate import tabulate  # on use, for start-up time (as report/render.py)

    lines = [f"from the sidecar's config ({origin}):"]
    lines += [f"  {step}" for step in programmed.steps]
    if programmed.source is not None:
        lines.append(f"  from {programmed.source.describe()}")
    if programmed.kind == "tcp":
        lines.append("  no HTTP routing on this port: each connection goes to one endpoint of the cluster")
    if programmed.status is not None:
        lines.append(f"  Envoy answers HTTP {programmed.status} itself ({programmed.kind.replace('_', ' ')})")
    if programmed.abort is not None:
        lines.append(f"  fault: abort with HTTP {programmed.abort[0]} for {programmed.abort[1] * 100:.4g}% of requests")
    if programmed.delay is not None:
        lines.append(f"  fault: delay {programmed.delay[0]} for {programmed.delay[1] * 100:.4g}% of requests")
    lines += [f"  note: {note}" for note in programmed.notes]
    if programmed.clusters:
        body = [[c.label, c.name, c.weight, f"{c.share * 100:.1f}%", _endpoints(c.healthy, c.total, c.known)]
                for c in programmed.clusters]
        headers = ["DESTINATION", "CLUSTER", "WEIGHT", "SHARE", "ENDPOINTS HEALTHY/TOTAL"]
        lines.append(tabulate(body, headers=headers, tablefmt="pretty", disable_numparse=True,
                              colalign=("left", "left", "right", "right", "right")))
    return "\n".join(lines)


def _endpoints(healthy: int | None, total: int | None, known: bool) -> str:
    if not known:
        return "cluster not defined"
    if total is None:
        return "(not in the dump)"
    return f"{healthy}/{total}"
