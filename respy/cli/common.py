"""What every respy subcommand shares: the parser class, the streams, the exit codes, and the flags that more
than one command takes (declared here once, so they mean the same everywhere)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

from respy import _options
from respy._errors import UsageError
from respy.report.header import can_encode
from respy.report.terminal import escape, terminal_columns

if TYPE_CHECKING:
    from respy.check.evaluate import Evaluation
    from respy.explain.sidecar import SidecarReport
    from respy.measurement import Measurement

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_NO_ANSWER = 0, 1, 2, 3, 4
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
OUTPUTS = ("table", "wide", "json", "csv")

T = TypeVar("T")


@dataclass
class Streams:
    """Where a command reads and writes: the process's own streams, or a test's."""

    out: TextIO
    err: TextIO
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    @classmethod
    def system(cls) -> Streams:
        return cls(sys.stdout, sys.stderr, sys.stdin)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2, and ``--help`` / ``--version`` are
    written to the command's own streams."""

    def __init__(self, *args: Any, streams: Streams | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.streams = streams

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")

    def _print_message(self, message: str, file: Any = None) -> None:
        if self.streams is not None and message:
            file = self.streams.err if file is sys.stderr else self.streams.out
        super()._print_message(message, file)


def argument_type(check: Callable[[str], T]) -> Callable[[str], T]:
    """An ``_options`` check as an argparse ``type=``: its UsageError becomes argparse's one-line message."""

    def parse(text: str) -> T:
        try:
            return check(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = check.__name__  # argparse names the type in its messages
    return parse


count = argument_type(_options.count_text)
non_negative = argument_type(lambda text: _options.count_text(text, least=0))
positive_number = argument_type(_options.positive_text)
probability = argument_type(_options.probability_text)


def _istio_version_text(text: str) -> tuple[int, int]:
    from respy.rules import parse_istio_version  # rules/ loads yaml: only when the flag is given

    return parse_istio_version(text)


istio_version = argument_type(_istio_version_text)


def add_istio_version_flag(group: argparse._ActionsContainer) -> None:
    group.add_argument("--istio-version", type=istio_version, metavar="X.Y",
                       help="judge the rules as this Istio release does where behaviour changed (default: today's "
                            "Istio, or the version read with --expect cluster). Example: --istio-version 1.2 "
                            "(before 1.3 a port named e.g. 'backend' was TCP: no HTTP routing)")
duration = argument_type(_options.duration_text)
tolerance = argument_type(_options.tolerance_text)


# --- flags more than one command takes ----------------------------------------------------------------


def add_count_flags(group: argparse._ActionsContainer, *, requests_help: str, concurrency: int,
                    concurrency_help: str | None = None) -> None:
    group.add_argument("-n", "--requests", "--n", dest="requests", type=count, metavar="N", help=requests_help)
    group.add_argument("-c", "--concurrency", "--c", dest="concurrency", type=count, default=concurrency,
                       metavar="C", help=concurrency_help)


def add_output_flag(group: argparse._ActionsContainer, choices: tuple[str, ...] = OUTPUTS,
                    help: str | None = None) -> None:
    group.add_argument("-o", "--output", choices=choices, default="table", help=help)


def add_header_flag(group: argparse._ActionsContainer, help: str) -> None:
    group.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="'NAME: VALUE'",
                       help=help)


def add_check_flags(group: argparse._ActionsContainer) -> None:
    """``--expect`` and how to decide: the same flags, defaults and meaning for ``respy URL`` and ``respy merge``."""
    group.add_argument("--expect", action="append", default=[], metavar="RULES",
                       help="the routing you declared: a YAML file, a directory, - (stdin), 'cluster', or weights "
                            "like single=90,multiple=10; repeatable. Example: --expect weather-rules.yaml")
    group.add_argument("--map", dest="maps", action="append", default=[], metavar="LABEL=DEST",
                       help="say which destination a response label comes from; repeatable. "
                            "Example: --map 'weather-backend: single=single'")
    group.add_argument("--alpha", type=probability, default=None,
                       help="false-alarm rate of the tests (default 0.01; respy merge: the inputs')")
    group.add_argument("--tolerance", type=tolerance, metavar="DELTA",
                       help="how far a share may be from its declared weight and still PASS: 0.05, 5%% or 5pp "
                            "(default: the smaller of 5 pp and half the smallest declared share)")
    group.add_argument("--strict", action="store_true",
                       help="exact-match test only: FAIL when chi-square rejects, else CONSISTENT")
    group.add_argument("--grace", type=non_negative, default=0, metavar="K",
                       help="ignore up to K answers from undeclared or weight-0 destinations (default 0)")
    group.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                       help="the client's namespace: its DestinationRules come first; also for rules without one "
                            "and short host names (default: $POD_NAMESPACE or 'default')")
    add_istio_version_flag(group)
    group.add_argument("--max-error-rate", type=probability, metavar="R",
                       help="FAIL when a destination's share of non-2xx answers is above R (a fraction), naming it. "
                            "Example: --max-error-rate 0.01")
    group.add_argument("--max-latency-ratio", type=positive_number, metavar="X",
                       help="FAIL when a destination's median latency is more than X times the other destinations', "
                            "naming it. Example: --max-latency-ratio 2")


def warn(warnings: list[str], streams: Streams, prog: str = "respy") -> None:
    for warning in warnings:  # they may quote YAML strings or labels: escaped like everything from outside
        print(f"{prog}: warning: {escape(warning)}", file=streams.err)


def emit(measurement: Measurement, evaluation: Evaluation | None, output: str, streams: Streams,
         sidecar: SidecarReport | None = None) -> None:
    # on use, for start-up: a run prints nothing of this before its first request
    from respy.report.render import TableOptions, measurement_dict, render_csv, render_json, render_text

    if output == "json":
        text = render_json(measurement, evaluation, sidecar)
        if not can_encode(text, streams.out):  # e.g. a non-UTF-8 body on an ASCII stdout: escape, still valid JSON
            text = json.dumps(measurement_dict(measurement, evaluation, sidecar), ensure_ascii=True, indent=2)
    elif output == "csv":
        text = render_csv(measurement, evaluation)
        if not can_encode(text, streams.out):
            encoding = getattr(streams.out, "encoding", None) or "ascii"
            text = text.encode(encoding, errors="replace").decode(encoding)
    else:
        width = terminal_columns(streams.out)
        options = TableOptions(wide=output == "wide", bars=width is not None,
                               unicode_ok=can_encode("☎️…–█│", streams.out), width=width)
        text = render_text(measurement, evaluation, options=options, sidecar=sidecar)
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


def one_line(text: str) -> str:
    return " ".join(text.split())
