"""``respy analyze FILE|DIR|- ...``: report what in the manifests breaks a traffic split.

Exit codes: 0 nothing worse than info, 1 at least one error or warning, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from respy._errors import RespyError
from respy.explain.analyze import Finding, analyze
from respy.report.findings import render_findings
from respy.report.terminal import terminal_columns

if TYPE_CHECKING:
    from respy.cli.main import Streams

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

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

exit codes:
  0 no error or warning (info only, or nothing)   1 at least one error or warning   2 bad input or usage
"""


def build_parser() -> argparse.ArgumentParser:
    from respy.cli.main import OneLineParser

    parser = OneLineParser(prog="respy analyze", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("inputs", nargs="+", metavar="FILE|DIR|-",
                        help="YAML files, directories of them (*.yaml, *.yml), or - for standard input")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table",
                        help="table for people (default) or json: a list of findings with code, istio_code, "
                             "severity, object, where, message, why, fix")
    parser.add_argument("-n", "--namespace", default="default", metavar="NS",
                        help="namespace of objects whose manifest sets none (default: default)")
    parser.add_argument("--host", metavar="HOST",
                        help="only findings that bear on this host (e.g. weather-backend or its FQDN)")
    return parser


def main(args: list[str], streams: Streams) -> int:
    parser = build_parser()
    if "-h" in args or "--help" in args:
        print(parser.format_help(), file=streams.out, end="")
        return EXIT_CLEAN
    try:
        options = parser.parse_args(args)
        findings = _findings(options.inputs, options.namespace, options.host)
    except RespyError as exc:
        print(f"respy analyze: error: {_one_line(str(exc))}", file=streams.err)
        return EXIT_USAGE
    if options.output == "json":
        print(json.dumps([f.to_dict() for f in findings], indent=2), file=streams.out)
    else:
        print(render_findings(findings, width=terminal_columns(streams.out)), file=streams.out)
    return EXIT_FINDINGS if any(f.is_problem for f in findings) else EXIT_CLEAN


def _findings(inputs: Sequence[str], namespace: str, host: str | None) -> list[Finding]:
    from respy.rules import load_inputs

    rules = load_inputs(inputs, require_routing=False)
    if rules.weights is not None:
        raise RespyError("inline weights (name=weight) have nothing to analyze: give YAML files, directories or -")
    if not rules.objects:
        raise RespyError(f"no Kubernetes objects respy analyzes in {', '.join(inputs)}")
    return analyze(rules, host=host, namespace=namespace)


def _one_line(text: str) -> str:
    return " ".join(text.split())
