"""``respy merge A.json B.json ...``: add up the ``-o json`` results of several runs (e.g. parallel pods).

Counts add per label and kind, ``requests`` add, the elapsed time is the longest run's, the latency
histograms merge. When the inputs were checks (they carry ``expected``) or ``--expect RULES`` is given,
the verdict is decided again on the combined counts. ``-`` reads stdin, which, like any input file, may hold
several JSON objects one after another (what ``kubectl logs -l job-name=respy-parallel`` prints).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from respy._errors import ResultFormatError, UsageError
from respy._options import check_mapping, parse_header
from respy.check.evaluate import Evaluation, evaluate
from respy.check.plan import RequestShape, RunSize, plan_check
from respy.cli.common import OneLineParser, Streams, add_check_flags, add_header_flag, add_output_flag, emit, exit_code
from respy.cli.measure import settings_from_args, warn
from respy.measurement import Measurement
from respy.rules.expectation import Expectation, Outcome
from respy.tally import Tally

STDIN = "-"
PROG = "respy merge"

MergeInputError = ResultFormatError  # an input that is not a respy ``-o json`` result


@dataclass(frozen=True)
class Part:
    """One result read from an input: its JSON object, the measurement in it, and where it came from
    (``pod.json#2``)."""

    data: Mapping[str, Any]
    source: str
    measurement: Measurement


def build_parser(streams: Streams | None = None) -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Combine the JSON results (-o json) of several respy runs: counts and requests add up, "
        "latency histograms merge, the verdict is decided again on the combined counts. The check flags mean "
        "what they mean for respy URL; --alpha and --tolerance default to the inputs' own.",
        epilog="example: kubectl logs -l job-name=respy-parallel -c respy --tail=-1 | respy merge -",
        streams=streams,
    )
    parser.add_argument("inputs", nargs="+", metavar="RESULT.json",
                        help="files of JSON results (several per file is fine); - reads stdin")
    add_output_flag(parser)
    group = parser.add_argument_group("deciding again (as for respy URL --expect)")
    add_check_flags(group)
    add_header_flag(group, "with --expect RULES: the headers the runs sent (they pick the route)")
    return parser


def main(args: list[str], streams: Streams) -> int:
    options = build_parser(streams).parse_args(args)
    parts = read_inputs(options.inputs, streams.stdin, streams.err)
    measurement = merge_measurement(parts)
    _warn_interrupted(parts, streams.err)
    evaluation = evaluate_merged(measurement, parts, options, streams)
    emit(measurement, evaluation, options.output, streams)
    return exit_code(measurement, evaluation)


# --- reading -------------------------------------------------------------------------------------------


def read_inputs(values: Sequence[str], stdin: TextIO, err: TextIO) -> list[Part]:
    parts: list[Part] = []
    for value in values:
        text, source = _read_text(value, stdin)
        found, skipped = split_objects(text)
        if not found:
            raise MergeInputError(f"{source}: not JSON: no `respy -o json` result found")
        if skipped:
            print(f"{PROG}: warning: {source}: skipped {skipped} line(s) that are not part of a JSON result",
                  file=err)
        for index, data in enumerate(found, start=1):
            where = f"{source}#{index}" if len(found) > 1 else source
            parts.append(Part(data, where, Measurement.from_dict(data, where)))
    return parts


def _read_text(value: str, stdin: TextIO) -> tuple[str, str]:
    if value == STDIN:
        try:
            return stdin.read(), "<stdin>"
        except UnicodeDecodeError:
            raise MergeInputError("<stdin>: not UTF-8 text, not JSON") from None
    try:
        return Path(value).read_text(encoding="utf-8"), value
    except UnicodeDecodeError:
        raise MergeInputError(f"{value}: not UTF-8 text, not JSON") from None
    except OSError as exc:
        raise MergeInputError(f"{value}: cannot read: {exc.strerror or exc}") from None


def split_objects(text: str) -> tuple[list[Any], int]:
    """The JSON objects of a text, one after another; and how many lines between them were not JSON.

    After something that is not JSON (a log line, a result cut short) reading resumes at the next line that
    starts with ``{``: respy's results start there, and their nested objects never do.
    """
    decoder = json.JSONDecoder()
    found: list[Any] = []
    skipped, pos = 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return found, skipped
        if text[pos] == "{":
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                pass
            else:
                found.append(value)
                continue
        following = text.find("\n{", pos)
        end = len(text) if following < 0 else following + 1
        skipped += text.count("\n", pos, end) + (following < 0)
        pos = end


# --- adding up -----------------------------------------------------------------------------------------


def merge_measurement(parts: Sequence[Part]) -> Measurement:
    url = _same(parts, "url", "measured different URLs")
    by = _same(parts, "by", "counted answers differently (--by)")
    planned = [p.measurement.planned for p in parts]
    tally = Tally()
    for part in parts:  # summed rows and merged latency histograms (no per-batch counts: they are per run)
        for row in part.measurement.rows:
            tally.add_count(row.label, row.kind, row.count, row.status)
        tally.latency.merge(part.measurement.latency)
    return Measurement(
        url=str(url),
        tally=tally,
        elapsed_s=max(p.measurement.elapsed_s for p in parts),
        planned=sum(n for n in planned if n is not None) if None not in planned else None,
        concurrency=sum(p.measurement.concurrency for p in parts),
        by=str(by or "body"),
        stop_reason="; ".join(dict.fromkeys(p.measurement.stop_reason for p in parts if p.measurement.stop_reason)),
        merged=tuple(p.source for p in parts),
    )


def _same(parts: Sequence[Part], key: str, problem: str) -> Any:
    values = list(dict.fromkeys(p.data.get(key) for p in parts))
    if len(values) > 1:
        shown = ", ".join(repr(v) for v in values[:3])
        raise UsageError(f"the results {problem} ({shown}): merging them would mix different things")
    return values[0]


def _warn_interrupted(parts: Sequence[Part], err: TextIO) -> None:
    stopped = [p.source for p in parts if p.data.get("interrupted")]
    if stopped:
        print(f"{PROG}: warning: {len(stopped)} of {len(parts)} results were interrupted before their planned "
              f"count ({', '.join(stopped[:3])}); their counts are included", file=err)


# --- deciding again ------------------------------------------------------------------------------------


def evaluate_merged(measurement: Measurement, parts: Sequence[Part], options: argparse.Namespace,
                    streams: Streams) -> Evaluation | None:
    """The verdict on the merged counts: against --expect RULES, else against the inputs' own expectation.
    Either way it is ``evaluate``: the same verdict and diagnosis a single run of these counts gets."""
    if options.expect:
        return _evaluate_rules(measurement, options, streams)
    expectation = expectation_of(parts)
    if expectation is None:
        if options.maps:
            raise UsageError("--map needs --expect RULES or inputs that were checks")
        return None
    names = {o.name for o in expectation.outcomes}
    claimed = {label: dest for label, dest in claimed_of(parts).items() if dest in names}
    settings = settings_from_args(options, alpha=_alpha(parts), tolerance=_tolerance(parts), mapping=claimed)
    check_mapping(settings.mapping, names)
    return evaluate(measurement, expectation, settings)


def expectation_of(parts: Sequence[Part]) -> Expectation | None:
    """The inputs' ``expected`` outcomes; they must agree (results of the same check)."""
    found: dict[tuple[Outcome, ...], Part] = {}
    for part in parts:
        entries = part.data.get("expected")
        if entries:
            found.setdefault(_outcomes(entries, part.source), part)
    if not found:
        return None
    if len(found) > 1:
        sources = ", ".join(p.source for p in list(found.values())[:2])
        raise UsageError(f"the results were checked against different expectations ({sources}); "
                         "give the rules to decide against: respy merge ... --expect RULES")
    outcomes, part = next(iter(found.items()))
    return Expectation(outcomes=outcomes, route=str(part.data.get("route") or ""))


def _outcomes(entries: Any, source: str) -> tuple[Outcome, ...]:
    try:
        return tuple(
            Outcome(name=str(e["outcome"]), probability=float(e["probability"]),
                    identifiers=tuple(str(i) for i in e.get("identifiers") or ()),
                    status=None if e.get("status") is None else int(e["status"]), source=str(e.get("source") or ""),
                    pods=tuple(str(p) for p in e.get("pods") or ()),
                    endpoints=tuple((str(k), int(v)) for k, v in (e.get("endpoints") or {}).items()))
            for e in entries
        )
    except (TypeError, KeyError, ValueError, AttributeError):
        raise MergeInputError(f"{source}: `expected` is not a list of outcomes") from None


def claimed_of(parts: Sequence[Part]) -> dict[str, str]:
    """Labels the runs attributed to a destination (their --map included); a label claimed two ways is dropped."""
    claimed: dict[str, str] = {}
    conflicting: set[str] = set()
    for part in parts:
        assignment = part.data.get("assignment")
        entries = assignment.get("claimed") if isinstance(assignment, Mapping) else None
        for label, dest in (entries or {}).items():
            if claimed.setdefault(str(label), str(dest)) != str(dest):
                conflicting.add(str(label))
    return {label: dest for label, dest in claimed.items() if label not in conflicting}


def _verdicts(parts: Sequence[Part]) -> Iterator[Mapping[str, Any]]:
    for part in parts:
        verdict = part.data.get("verdict")
        if isinstance(verdict, Mapping):
            yield verdict


def _alpha(parts: Sequence[Part]) -> float | None:
    return next((float(v["alpha"]) for v in _verdicts(parts) if isinstance(v.get("alpha"), int | float)), None)


def _tolerance(parts: Sequence[Part]) -> float | None:
    return next((float(v["tolerance"]) for v in _verdicts(parts) if isinstance(v.get("tolerance"), int | float)),
                None)


def _evaluate_rules(measurement: Measurement, options: argparse.Namespace, streams: Streams) -> Evaluation:
    """--expect RULES: the same plan ``respy URL --expect RULES -n N`` would make, applied to the merged counts."""
    request = RequestShape(url=measurement.url, headers=dict(parse_header(h) for h in options.headers))
    plan = plan_check(options.expect, settings_from_args(options), request,
                      RunSize(requests=max(measurement.requests, 1)), stdin=streams.stdin)
    warn(plan.warnings, streams)
    return plan.evaluate(measurement)
