"""``respy analyze FILE|DIR|- ...``: report what in the manifests breaks a traffic split.

Exit codes: 0 nothing at or above --failure-threshold, 1 some finding at or above it, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from respy._errors import RespyError, UsageError
from respy.cli.common import EXIT_USAGE, OneLineParser, Streams, add_istio_version_flag, one_line
from respy.explain.analyze import ERROR, INFO, SEVERITY_RANK, WARNING, Finding, analyze
from respy.report.findings import render_findings
from respy.report.terminal import escape, terminal_columns
from respy.rules import load_each

EXIT_CLEAN, EXIT_FINDINGS = 0, 1

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
  respy analyze examples/weather/weather-rules.yaml examples/tutorial/weather-deployment.yaml
  respy analyze k8s/ -o json
  kubectl get svc,deploy,virtualservice,destinationrule -o yaml | respy analyze -
  respy analyze k8s/ --host weather-backend      (only findings about that host)
  respy analyze k8s/ --suppress 'RSP001=Service default/legacy-*' --failure-threshold error
  respy analyze weather-deployment.yaml --istio-version 1.2   (the port name is a warning before Istio 1.3)

exit codes:
  0 nothing at or above --failure-threshold (default: warning)   1 some finding at or above it
  2 bad input or usage (an unreadable file is reported, the others are still analyzed)
"""

SEVERITIES = (ERROR, WARNING, INFO)


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(prog="respy analyze", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter, streams=streams)
    parser.add_argument("inputs", nargs="+", metavar="FILE|DIR|-",
                        help="YAML (or JSON) files, directories of them (*.yaml, *.yml, *.json), or - for stdin")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table",
                        help="table for people (default) or json: a list of findings with code, istio_code, "
                             "severity, object, where, message, why, fix")
    parser.add_argument("-n", "--namespace", default="default", metavar="NS",
                        help="namespace of objects whose manifest sets none (default: default)")
    add_istio_version_flag(parser)
    parser.add_argument("--host", metavar="HOST",
                        help="only findings that bear on this host (e.g. weather-backend or its FQDN)")
    parser.add_argument("--failure-threshold", choices=SEVERITIES, default=WARNING, metavar="{info,warning,error}",
                        help="the least severe finding that makes the exit code 1 (default: warning; istioctl "
                             "analyze's flag of the same name)")
    parser.add_argument("--suppress", action="append", default=[], metavar="CODE[=OBJECT]",
                        help="leave out findings of this code (RSP... or IST...), on every object or on the ones "
                             "matching OBJECT ('*' matches any text); repeatable. "
                             "Example: --suppress 'IST0118=Service default/legacy-*'")
    return parser


@dataclass(frozen=True)
class Suppression:
    code: str
    object: str | None

    @classmethod
    def parse(cls, text: str) -> Suppression:
        code, sep, target = text.partition("=")
        if not code.strip() or (sep and not target.strip()):
            raise UsageError(f"--suppress {text!r} must look like CODE or CODE=OBJECT, e.g. IST0118=Service default/x")
        return cls(code.strip().upper(), target.strip() if sep else None)

    def covers(self, finding: Finding) -> bool:
        codes = {finding.code.upper(), *(c.strip().upper() for c in (finding.istio_code or "").split("/"))}
        return self.code in codes and (self.object is None or fnmatchcase(finding.object, self.object))


def main(args: list[str], streams: Streams) -> int:
    try:
        options = build_parser(streams).parse_args(args)  # --help: printed, then SystemExit(0)
        suppressions = [Suppression.parse(text) for text in options.suppress]
        _refuse_inline_weights(options.inputs)
    except RespyError as exc:
        print(f"respy analyze: error: {escape(one_line(str(exc)))}", file=streams.err)
        return EXIT_USAGE
    rules, unreadable = load_each(options.inputs, stdin=streams.stdin)
    for error in unreadable:  # reported, and the exit code says so at the end: the other files still count
        print(f"respy analyze: error: {escape(one_line(str(error)))}", file=streams.err)
    if not rules.objects:
        if not unreadable:
            print(f"respy analyze: error: no Kubernetes objects respy analyzes in {escape(', '.join(options.inputs))}",
                  file=streams.err)
        return EXIT_USAGE
    every = analyze(rules, host=options.host, namespace=options.namespace, istio_version=options.istio_version)
    findings = [f for f in every if not any(s.covers(f) for s in suppressions)]
    if options.output == "json":
        print(json.dumps([f.to_dict() for f in findings], indent=2), file=streams.out)
    else:
        print(render_findings(findings, width=terminal_columns(streams.out), objects=len(rules.objects),
                              suppressed=len(every) - len(findings)), file=streams.out)
    if unreadable:
        return EXIT_USAGE
    limit = SEVERITY_RANK[options.failure_threshold]
    return EXIT_FINDINGS if any(SEVERITY_RANK[f.severity] <= limit for f in findings) else EXIT_CLEAN


def _refuse_inline_weights(inputs: Sequence[str]) -> None:
    if any("=" in value and value != "-" and not Path(value).exists() for value in inputs):
        raise RespyError("inline weights (name=weight) have nothing to analyze: give YAML files, directories or -")

