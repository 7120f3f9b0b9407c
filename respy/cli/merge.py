"""``respy merge A.json B.json ...``: add up the ``-o json`` results of several runs (e.g. parallel pods).

Counts add per label and kind, ``requests`` add, the elapsed time is the longest run's, the latency
histograms merge. When the inputs were checks (they carry ``expected``) or ``--expect RULES`` is given,
the verdict is decided again on the combined counts. ``-`` reads stdin, which, like any input file, may hold
several JSON objects one after another (what ``kubectl logs -l job-name=respy-parallel`` prints).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from respy._errors import RespyError, UsageError
from respy.cli.main import OneLineParser, Streams, probability, tolerance_value
from respy.measurement import Measurement
from respy.report.render import Evaluation
from respy.rules.expectation import Expectation, Outcome
from respy.tally import Kind, LatencyHistogram, Tally

STDIN = "-"
KINDS = {kind.value: kind for kind in Kind}


class MergeInputError(RespyError):
    """An input that is not a respy ``-o json`` result."""


@dataclass(frozen=True)
class Part:
    """One result read from an input: its JSON object and where it came from (``pod.json#2``)."""

    data: Mapping[str, Any]
    source: str


def merge_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="respy merge",
        description="Combine the JSON results (-o json) of several respy runs: counts and requests add up, "
        "latency histograms merge, the verdict is decided again on the combined counts.",
        epilog="example: kubectl logs -l job-name=respy-parallel -c respy --tail=-1 | respy merge -",
        allow_abbrev=False,
    )
    parser.add_argument("inputs", nargs="+", metavar="RESULT.json",
                        help="files of JSON results (several per file is fine); - reads stdin")
    parser.add_argument("-o", "--output", choices=("table", "json", "csv"), default="table")
    parser.add_argument("--expect", action="append", default=[], metavar="RULES",
                        help="decide against these rules instead of the inputs' own (as for respy --expect)")
    parser.add_argument("--map", dest="maps", action="append", default=[], metavar="LABEL=DEST")
    parser.add_argument("--alpha", type=probability, help="false-alarm rate (default: the inputs', else 0.01)")
    parser.add_argument("--tolerance", type=tolerance_value, metavar="DELTA",
                        help="tolerance band (default: the inputs', else respy's default rule)")
    parser.add_argument("--strict", action="store_true", help="exact-match test only")
    parser.add_argument("--grace", type=int, default=0, metavar="K")
    parser.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="'NAME: VALUE'",
                        help="with --expect RULES: the headers the runs sent (they pick the route)")
    parser.add_argument("--namespace", default=None, help="with --expect RULES: namespace of short host names")
    return parser


def main(args: list[str], streams: Streams, stdin: TextIO | None = None) -> int:
    options = merge_parser().parse_args(args)
    parts = read_inputs(options.inputs, stdin if stdin is not None else sys.stdin, streams.err)
    measurement = merge_measurement(parts)
    _warn_interrupted(parts, streams.err)
    evaluation = evaluate(measurement, parts, options, streams)
    from respy.cli.measure import emit, exit_code

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
            print(f"respy merge: warning: {source}: skipped {skipped} line(s) that are not part of a JSON result",
                  file=err)
        for index, data in enumerate(found, start=1):
            where = f"{source}#{index}" if len(found) > 1 else source
            parts.append(Part(check_result(data, where), where))
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


def check_result(data: Any, where: str) -> Mapping[str, Any]:
    """``data`` if it is a respy result (rows that add up to ``requests``), else a one-line error."""
    if not isinstance(data, Mapping) or not isinstance(data.get("rows"), list) or "requests" not in data:
        raise MergeInputError(f"{where}: not a respy result (no `rows` and `requests`; made with respy -o json?)")
    total = 0
    for row in data["rows"]:
        if not (isinstance(row, Mapping) and isinstance(row.get("label"), str) and _count(row.get("count"))
                and row.get("kind") in KINDS):
            raise MergeInputError(f"{where}: not a respy result (a row without label, count and kind: {row!r:.80})")
        total += row["count"]
    if not _count(data["requests"]) or total != data["requests"]:
        raise MergeInputError(f"{where}: its rows add up to {total}, not to its `requests` ({data['requests']!r})")
    return data


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- adding up -----------------------------------------------------------------------------------------


def merge_measurement(parts: Sequence[Part]) -> Measurement:
    url = _same(parts, "url", "measured different URLs")
    by = _same(parts, "by", "counted answers differently (--by)")
    planned = [p.data.get("planned") for p in parts]
    return Measurement(
        url=str(url),
        tally=merged_tally(parts),
        elapsed_s=max(float(p.data.get("elapsed_s") or 0.0) for p in parts),
        planned=sum(planned) if all(isinstance(n, int) for n in planned) else None,  # type: ignore[arg-type]
        concurrency=sum(int(p.data.get("concurrency") or 0) for p in parts),
        by=str(by or "body"),
        stop_reason="; ".join(dict.fromkeys(str(p.data["stop_reason"]) for p in parts if p.data.get("stop_reason"))),
        extra={"merged": {"results": len(parts), "sources": [p.source for p in parts]}},
    )


def _same(parts: Sequence[Part], key: str, problem: str) -> Any:
    values = list(dict.fromkeys(p.data.get(key) for p in parts))
    if len(values) > 1:
        shown = ", ".join(repr(v) for v in values[:3])
        raise UsageError(f"the results {problem} ({shown}): merging them would mix different things")
    return values[0]


def merged_tally(parts: Sequence[Part]) -> Tally:
    """A Tally holding the summed rows and the merged latency histogram (no per-batch counts: they are per run)."""
    tally = Tally()
    for part in parts:
        for row in part.data["rows"]:
            key = (KINDS[row["kind"]], row["label"])
            status = row.get("status")
            slot = tally._rows.setdefault(key, [0, status if isinstance(status, int) else -1])
            slot[0] += row["count"]
            if slot[1] < 0 and isinstance(status, int):
                slot[1] = status
        tally.total += part.data["requests"]
        tally.latency.merge(_histogram(part))
    return tally


def _histogram(part: Part) -> LatencyHistogram:
    state = part.data.get("latency_histogram")
    if not isinstance(state, Mapping):
        return LatencyHistogram()
    try:
        return LatencyHistogram.from_state(state)
    except (TypeError, ValueError, IndexError):
        raise MergeInputError(f"{part.source}: `latency_histogram` is malformed") from None


def _warn_interrupted(parts: Sequence[Part], err: TextIO) -> None:
    stopped = [p.source for p in parts if p.data.get("interrupted")]
    if stopped:
        print(f"respy merge: warning: {len(stopped)} of {len(parts)} results were interrupted before their planned "
              f"count ({', '.join(stopped[:3])}); their counts are included", file=err)


# --- deciding again ------------------------------------------------------------------------------------


def evaluate(measurement: Measurement, parts: Sequence[Part], options: argparse.Namespace,
             streams: Streams) -> Evaluation | None:
    """The verdict on the merged counts: against --expect RULES, else against the inputs' own expectation."""
    if options.expect:
        return _evaluate_rules(measurement, options, streams)
    expectation = expectation_of(parts)
    if expectation is None:
        if options.maps:
            raise UsageError("--map needs --expect RULES or inputs that were checks")
        return None
    from respy.check.assign import assign
    from respy.check.plan import parse_maps
    from respy.check.verdict import decide, verdict_line

    mapping = {**claimed_of(parts), **parse_maps(options.maps)}
    assignment = assign(measurement.rows, expectation, _known(mapping, expectation))
    verdict = decide(assignment, expectation, alpha=_alpha(options, parts), tolerance=_tolerance(options, parts),
                     strict=options.strict, grace=options.grace)
    return Evaluation(expectation=expectation, assignment=assignment, verdict=verdict,
                      verdict_line=verdict_line(verdict, expectation, assignment))


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


def _known(mapping: Mapping[str, str], expectation: Expectation) -> dict[str, str]:
    names = {o.name for o in expectation.outcomes}
    return {label: dest for label, dest in mapping.items() if dest in names}


def _verdicts(parts: Sequence[Part]) -> Iterator[Mapping[str, Any]]:
    for part in parts:
        verdict = part.data.get("verdict")
        if isinstance(verdict, Mapping):
            yield verdict


def _alpha(options: argparse.Namespace, parts: Sequence[Part]) -> float:
    if options.alpha is not None:
        return float(options.alpha)
    return next((float(v["alpha"]) for v in _verdicts(parts) if isinstance(v.get("alpha"), int | float)), 0.01)


def _tolerance(options: argparse.Namespace, parts: Sequence[Part]) -> float | None:
    if options.tolerance is not None:
        return float(options.tolerance)
    return next((float(v["tolerance"]) for v in _verdicts(parts) if isinstance(v.get("tolerance"), int | float)),
                None)


def _evaluate_rules(measurement: Measurement, options: argparse.Namespace, streams: Streams) -> Evaluation:
    """--expect RULES: the same plan ``respy URL --expect RULES -n N`` would make, applied to the merged counts."""
    from respy.check.plan import plan_check
    from respy.cli.main import build_parser
    from respy.cli.measure import target_from_args

    argv = [measurement.url, "-n", str(max(measurement.requests, 1)), "--grace", str(options.grace)]
    for value in options.expect:
        argv += ["--expect", value]
    for flag, values in (("--map", options.maps), ("-H", options.headers)):
        for value in values:
            argv += [flag, value]
    for flag, value in (("--alpha", options.alpha), ("--tolerance", options.tolerance),
                        ("--namespace", options.namespace)):
        if value is not None:
            argv += [flag, str(value)]
    if options.strict:
        argv.append("--strict")
    args = build_parser().parse_args(argv)
    plan = plan_check(args, target_from_args(args, measurement.url), streams)
    return plan.evaluate(measurement)

