"""Printing results: the table a person reads, the JSON a machine reads, and CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from respy.report.table import Column
from respy.report.table import render_table as draw_table
from respy.report.terminal import clip, escape, json_safe, one_line
from respy.tally import Kind, Row

if TYPE_CHECKING:
    from respy.check.assign import Assignment
    from respy.check.verdict import ShareEstimate, Verdict
    from respy.measurement import Measurement
    from respy.rules.expectation import Expectation

TOP_ROWS = 20
LABEL_WIDTH = 60
DIAGNOSIS_WIDTH = 100
PHONE = "☎️"


@dataclass
class Evaluation:
    """Everything a check adds to a measurement (all optional: a plain run has none of it)."""

    expectation: Expectation | None = None
    assignment: Assignment | None = None
    verdict: Verdict | None = None
    verdict_line: str = ""
    diagnosis: list[dict[str, Any]] = field(default_factory=list)
    diagnosis_text: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def can_encode(text: str, stream: TextIO) -> bool:
    encoding = getattr(stream, "encoding", None)
    if encoding is None:  # an in-memory text stream holds any character
        return True
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def header_line(
    url: str, planned: int | None, duration: float | None, stream: TextIO = sys.stdout, *, sequential: bool = False
) -> str:
    """The original respy's signature line: ``☎️   1000 requests to URL...``."""
    icon = PHONE if can_encode(PHONE, stream) else "=>"
    if sequential:
        what = f"up to {planned:,} requests (until the verdict is clear)"
    elif planned is None and duration:
        what = f"requests for {duration:g} s"
    elif duration:
        what = f"up to {planned:,} requests for {duration:g} s"
    else:
        what = f"{planned:,} requests"
    return f"{icon}   {what} to {url}..."


def cut(label: str, width: int = LABEL_WIDTH) -> str:
    """A response label for one table cell: on one line, escaped, at most ``width`` display cells."""
    return clip(one_line(label), width)


def percent(count: int, total: int) -> str:
    """The one rounding rule for a share of a count: one decimal, ``-`` when there is nothing to divide."""
    return f"{100.0 * count / total:.1f}%" if total else "-"


def top_rows(rows: list[Row], limit: int = TOP_ROWS) -> tuple[list[Row], Row | None]:
    """The ``limit`` most frequent rows and one row folding the rest, if any."""
    if len(rows) <= limit:
        return rows, None
    rest = rows[limit:]
    folded = Row(label=f"({len(rest):,} other responses)", count=sum(r.count for r in rest), kind=Kind.OK)
    return rows[:limit], folded


@dataclass(frozen=True)
class TableLine:
    """One line of the distribution table, as its columns read it."""

    label: str
    count: int
    destination: str = ""
    expected: float | None = None  # the destination's declared share, on its first line only
    share: ShareEstimate | None = None  # the verdict's estimate of it, on the same line


@dataclass(frozen=True)
class Field:
    """A column of the distribution table and how it reads a line (``total``: the requests sent)."""

    column: Column
    text: Callable[[TableLine, int], str]


def plain_fields(total: int) -> list[Field]:
    return [
        Field(Column("RESPONSE", align="left", fit="cut", min_width=12), lambda line, _: cut(line.label)),
        Field(Column("COUNT"), lambda line, _: f"{line.count:,}"),
        Field(Column(f"% OF {total:,} REQUESTS"), lambda line, n: percent(line.count, n)),
    ]


def checked_fields(total: int) -> list[Field]:
    """The plain columns plus where each answer came from and the declared and observed shares."""
    response, count, of_total = plain_fields(total)
    return [
        response,
        Field(Column("DESTINATION", align="left", fit="cut", min_width=8), lambda line, _: line.destination),
        count,
        of_total,
        Field(Column("EXPECTED %"), lambda line, _: "" if line.expected is None else f"{100 * line.expected:.1f}%"),
        Field(Column("OBSERVED % (interval)"), lambda line, _: _observed_cell(line.share)),
    ]


def render_table(measurement: Measurement, evaluation: Evaluation | None = None, *, unicode_ok: bool = True,
                 width: int | None = None) -> str:
    """The distribution table, at most ``width`` display cells wide when given (the terminal's)."""
    total = measurement.requests
    shown, folded = top_rows(measurement.rows)
    if folded is not None:
        shown = [*shown, folded]
    if evaluation is not None and evaluation.expectation is not None:
        fields, lines = checked_fields(total), _checked_lines(shown, evaluation)
    else:
        fields, lines = plain_fields(total), [TableLine(r.label, r.count) for r in shown]
    if not lines:
        lines = [TableLine("(no requests completed)", 0)]
    rows = [[field.text(line, total) for field in fields] for line in lines]
    table = draw_table([field.column for field in fields], rows, width=width)
    if not unicode_ok:
        table = table.encode("ascii", errors="replace").decode("ascii")
    return table


def _checked_lines(shown: list[Row], evaluation: Evaluation) -> list[TableLine]:
    expectation = evaluation.expectation
    assert expectation is not None
    claimed = evaluation.assignment.claimed if evaluation.assignment is not None else {}
    shares = {s.name: s for s in evaluation.verdict.shares} if evaluation.verdict is not None else {}
    lines: list[TableLine] = []
    described: set[str] = set()
    for row in shown:
        dest = claimed.get(row.label)
        dest_text = dest if dest else ("(undeclared)" if row.is_ok else "(error)")
        if dest and dest not in described:
            described.add(dest)
            lines.append(TableLine(row.label, row.count, dest_text, expectation.probabilities.get(dest),
                                   shares.get(dest)))
        else:
            lines.append(TableLine(row.label, row.count, dest_text))
    for outcome in expectation.outcomes:
        if outcome.name not in described:
            lines.append(TableLine("(no answers)", 0, outcome.name, outcome.probability, shares.get(outcome.name)))
    return lines


def _observed_cell(share: ShareEstimate | None) -> str:
    if share is None:
        return ""
    return f"{100 * share.observed:.1f}% [{100 * share.low:.1f}–{100 * share.high:.1f}]"


def footer_line(measurement: Measurement) -> str:
    """``1,000 requests in 0.52 s (1,923 req/s); latency p50 …``: rate and latency only when some HTTP answer
    came back (a run of refused connections has neither: its speed is the speed of failing)."""
    parts = [f"{measurement.requests:,} requests in {measurement.elapsed_s:,.2f} s"]
    if measurement.answered:
        parts[0] += f" ({measurement.rate:,.0f} req/s)"
        latency = measurement.latency_ms()
        if latency["p50"] is not None:
            parts.append(
                f"latency p50 {latency['p50']:,.1f} ms, p90 {latency['p90']:,.1f} ms, p99 {latency['p99']:,.1f} ms"
            )
    else:
        parts.append("no HTTP answer came back")
    if measurement.errors:
        parts.append(f"{measurement.errors:,} not 2xx ({percent(measurement.errors, measurement.requests)})")
    return "; ".join(parts)


def interrupted_line(measurement: Measurement) -> str | None:
    if not measurement.interrupted:
        return None
    planned = f" of {measurement.planned:,}" if measurement.planned else ""
    return f"interrupted after {measurement.requests:,}{planned} requests ({measurement.interrupted_by})"


def render_text(measurement: Measurement, evaluation: Evaluation | None = None, *, unicode_ok: bool = True,
                width: int | None = None) -> str:
    """Table, footer, and (with a check) the verdict line and its explanation; at most ``width`` cells wide
    where it can be wrapped. Whatever came from outside is escaped (:func:`respy.report.terminal.escape`)."""
    lines = [render_table(measurement, evaluation, unicode_ok=unicode_ok, width=width), footer_line(measurement)]
    stopped = interrupted_line(measurement)
    if stopped:
        lines.append(stopped)
    if evaluation is not None:
        lines.extend(evaluation.notes)
        if evaluation.verdict_line:
            lines.append(evaluation.verdict_line)
        if evaluation.diagnosis_text:
            fill = min(DIAGNOSIS_WIDTH, width) if width else DIAGNOSIS_WIDTH
            lines.append(textwrap.fill(evaluation.diagnosis_text, width=fill, break_on_hyphens=False))
    text = escape("\n".join(lines), keep_newlines=True)
    return text if unicode_ok else text.encode("ascii", errors="replace").decode("ascii")


def measurement_dict(measurement: Measurement, evaluation: Evaluation | None = None) -> dict[str, Any]:
    total = measurement.requests
    data: dict[str, Any] = {
        "url": measurement.url,
        "requests": total,
        "planned": measurement.planned,
        "concurrency": measurement.concurrency,
        "by": measurement.by,
        "rows": [
            {
                "label": row.label,
                "count": row.count,
                "percent": round(100.0 * row.count / total, 3) if total else 0.0,
                "kind": row.kind.value,
                "status": row.status,
            }
            for row in measurement.rows
        ],
        "errors": measurement.errors,
        "latency_ms": measurement.latency_ms(),
        "elapsed_s": round(measurement.elapsed_s, 6),
        "rate": round(measurement.rate, 3),
        "stop_reason": measurement.stop_reason,
        "interrupted": measurement.interrupted,
        "latency_histogram": measurement.latency.to_state(),
    }
    if measurement.interrupted_by:
        data["interrupted_by"] = measurement.interrupted_by
    data.update(measurement.extra)
    if evaluation is not None:
        data.update(evaluation_dict(evaluation))
    return data


def evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if evaluation.expectation is not None:
        data["expected"] = [
            {
                "outcome": o.name,
                "probability": o.probability,
                "status": o.status,
                "identifiers": list(o.identifiers),
                "source": o.source,
            }
            for o in evaluation.expectation.outcomes
        ]
        data["route"] = evaluation.expectation.route
    if evaluation.assignment is not None:
        data["assignment"] = {
            "claimed": dict(evaluation.assignment.claimed),
            "undeclared": dict(evaluation.assignment.undeclared),
            "unknown": evaluation.assignment.unknown,
        }
    if evaluation.verdict is not None:
        data["verdict"] = evaluation.verdict.to_dict()
    if evaluation.diagnosis:
        data["diagnosis"] = evaluation.diagnosis
    if evaluation.findings:
        data["findings"] = evaluation.findings
    return data


def render_json(measurement: Measurement, evaluation: Evaluation | None = None) -> str:
    """Exact JSON (labels byte for byte) that is still safe to print: see :func:`terminal.json_safe`."""
    return json_safe(json.dumps(measurement_dict(measurement, evaluation), ensure_ascii=False, indent=2))


def render_csv(measurement: Measurement, evaluation: Evaluation | None = None) -> str:
    """One record per label, every text field quoted and kept byte for byte (a label holding control
    characters stays one field); with a check, a trailing ``verdict`` record (its label is the verdict line,
    its count the requests judged) and one ``reason`` record per reason."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    claimed = evaluation.assignment.claimed if evaluation and evaluation.assignment else {}
    checked = evaluation is not None and evaluation.expectation is not None
    header = ["label", "count", "percent", "kind", "status"] + (["destination"] if checked else [])
    writer.writerow(header)
    total = measurement.requests
    for row in measurement.rows:
        values: list[Any] = [row.label, row.count, round(100.0 * row.count / total, 3) if total else 0.0]
        values += [row.kind.value, "" if row.status is None else row.status]
        if checked:
            values.append(claimed.get(row.label, ""))
        writer.writerow(values)
    if evaluation is not None and evaluation.verdict is not None:
        padding = [""] if checked else []
        writer.writerow([evaluation.verdict_line, evaluation.verdict.requests, "", "verdict", "", *padding])
        for reason in evaluation.verdict.reasons:
            writer.writerow([reason, "", "", "reason", "", *padding])
    return buffer.getvalue()
