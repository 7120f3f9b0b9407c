"""``respy analyze FILE|DIR|- ...``: report what in the manifests breaks a traffic split.

Exit codes: 0 nothing worse than info, 1 at least one error or warning, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from tabulate import tabulate

from respy._errors import RespyError
from respy.cli.common import EXIT_USAGE, OneLineParser, Streams, add_istio_version_flag, one_line
from respy.explain.analyze import ERROR, INFO, WARNING, Finding, analyze
from respy.rules import load_inputs

EXIT_CLEAN, EXIT_FINDINGS = 0, 1
WRAP = {"OBJECT": 34, "FINDING": 72}

DESCRIPTION = """\
Read the routing manifests that --expect reads (Services, Deployments, StatefulSets, ServiceEntries,
Gateways, VirtualServices, DestinationRules, HTTPRoutes) and report what in them breaks, or may
break, a traffic split: ports Istio does not see as HTTP, subsets no DestinationRule defines or no pod
carries, hosts nothing serves, conflicting VirtualServices, invalid weights, rules that can never
match, gateways that never hand the host over.

Each finding has a severity (error, warning, info), a respy code (RSP001...), the istioctl analyze
code it corresponds to where there is one, the object and file:line, why it matters for the split,
and the fix. Checks that need a kind of object (Services, workloads, Gateways, DestinationRules)
only run when some of that kind were given.
"""

EPILOG = """\
examples:
  respy analyze weather-rules.yaml weather-deployment.yaml
  respy analyze k8s/ -o json
  kubectl get svc,deploy,virtualservice,destinationrule -o yaml | respy analyze -
  respy analyze k8s/ --host weather-backend      (only findings about that host)
  respy analyze weather-deployment.yaml --istio-version 1.2   (the port name is a warning before Istio 1.3)

exit codes:
  0 no error or warning (info only, or nothing)   1 at least one error or warning   2 bad input or usage
"""


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(prog="respy analyze", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter, streams=streams)
    parser.add_argument("inputs", nargs="+", metavar="FILE|DIR|-",
                        help="YAML files, directories of them (*.yaml, *.yml), or - for standard input")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table",
                        help="table for people (default) or json: a list of findings with code, istio_code, "
                             "severity, object, where, message, why, fix")
    parser.add_argument("-n", "--namespace", default="default", metavar="NS",
                        help="namespace of objects whose manifest sets none (default: default)")
    add_istio_version_flag(parser)
    parser.add_argument("--host", metavar="HOST",
                        help="only findings that bear on this host (e.g. weather-backend or its FQDN)")
    return parser


def main(args: list[str], streams: Streams) -> int:
    try:
        options = build_parser(streams).parse_args(args)  # --help: printed, then SystemExit(0)
        findings = _findings(options.inputs, options.namespace, options.host, streams.stdin, options.istio_version)
    except RespyError as exc:
        print(f"respy analyze: error: {one_line(str(exc))}", file=streams.err)
        return EXIT_USAGE
    if options.output == "json":
        print(json.dumps([f.to_dict() for f in findings], indent=2), file=streams.out)
    else:
        print(render_table(findings), file=streams.out)
    return EXIT_FINDINGS if any(f.is_problem for f in findings) else EXIT_CLEAN


def _findings(inputs: Sequence[str], namespace: str, host: str | None, stdin: TextIO,
              istio_version: tuple[int, int] | None = None) -> list[Finding]:
    rules = load_inputs(inputs, stdin=stdin, require_routing=False)
    if rules.weights is not None:
        raise RespyError("inline weights (name=weight) have nothing to analyze: give YAML files, directories or -")
    if not rules.objects:
        raise RespyError(f"no Kubernetes objects respy analyzes in {', '.join(inputs)}")
    return analyze(rules, host=host, namespace=namespace, istio_version=istio_version)


MAX_TABLE_ROWS = 200


def render_table(findings: Sequence[Finding]) -> str:
    """The findings as a table (message, why and fix in one wrapped column), then a one-line summary."""
    if not findings:
        return "no findings: nothing in these manifests is known to break a traffic split"

    shown = findings[:MAX_TABLE_ROWS]  # sorted most severe first; nobody reads thousands of rows in a terminal
    rows = [
        [f.severity.upper(), f.code + (f"\n{f.istio_code}" if f.istio_code else ""), f"{f.object}\n{f.where}",
         f"{f.message}\nwhy: {f.why}\nfix: {f.fix}"]
        for f in shown
    ]
    headers = ["SEVERITY", "CODE", "OBJECT", "FINDING"]
    widths = [None, None, WRAP["OBJECT"], WRAP["FINDING"]]
    table = tabulate(rows, headers=headers, tablefmt="grid", maxcolwidths=widths, disable_numparse=True)
    more = len(findings) - len(shown)
    cut = f"\n({more:,} more findings not shown: -o json lists them all)" if more else ""
    return f"{table}{cut}\n{summary(findings)}"


def summary(findings: Sequence[Finding]) -> str:
    counts = Counter(f.severity for f in findings)
    parts = [_plural(counts[s], s) for s in (ERROR, WARNING) if counts[s]]
    if counts[INFO]:
        parts.append(f"{counts[INFO]} info")
    return ", ".join(parts) if parts else "no findings"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
