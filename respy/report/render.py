"""Printing results: the table a person reads, the JSON a machine reads, and CSV."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from respy.report.summary import histogram_lines, latency_summary_line, status_line
from respy.report.table import Column, fits
from respy.report.table import render_table as draw_table
from respy.report.terminal import clip, escape, json_safe, one_line
from respy.tally import Kind, Row, format_percent

if TYPE_CHECKING:
    from respy.check.evaluate import Evaluation
    from respy.check.verdict import ShareEstimate
    from respy.explain.sidecar import SidecarReport
    from respy.measurement import Measurement

TOP_ROWS = 20
LABEL_WIDTH = 60
DIAGNOSIS_WIDTH = 100


def cut(label: str, width: int = LABEL_WIDTH) -> str:
    """A response label for one table cell: on one line, escaped, at most ``width`` display cells."""
    return clip(one_line(label), width)


def percent(count: int, total: int) -> str:
    """The one rounding rule for a share of a count (:func:`respy.tally.format_percent`)."""
    return format_percent(count, total)


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
    p50_s: float | None = None  # this line's answers' latency
    p99_s: float | None = None
    error_rate: float | None = None  # the destination's share of non-2xx answers, on its first line only


@dataclass(frozen=True)
class Field:
    """A column of the distribution table and how it reads a line (``total``: the requests sent)."""

    column: Column
    text: Callable[[TableLine, int], str]


@dataclass(frozen=True)
class TableOptions:
    """How the table is drawn: ``wide`` adds latency (and, with a check, error-rate) columns (``-o wide``);
    ``bars`` draws the observed split as a bar with a mark at the expected share (on a terminal); ``width``
    is the terminal's, when there is one."""

    wide: bool = False
    bars: bool = False
    unicode_ok: bool = True
    width: int | None = None


def plain_fields(total: int) -> list[Field]:
    return [
        Field(Column("RESPONSE", align="left", fit="cut", min_width=12), lambda line, _: cut(line.label)),
        Field(Column("COUNT"), lambda line, _: f"{line.count:,}"),
        Field(Column(f"% OF {total:,} REQUESTS"), lambda line, n: percent(line.count, n)),
    ]


def checked_fields(total: int, identified: int, options: TableOptions) -> list[Field]:
    """The plain columns plus where each answer came from and the declared and observed shares. The observed
    share is of the answers the verdict judged (attributed to a declared destination, and for a sequential
    check those in by its decision): when that is not every request, the header says how many, so two
    percentages on one line never disagree silently."""
    response, count, of_total = plain_fields(total)
    observed = "OBSERVED % (interval)" if identified == total else f"OBSERVED % OF {identified:,} JUDGED (interval)"
    return [
        response,
        Field(Column("DESTINATION", align="left", fit="cut", min_width=8), lambda line, _: line.destination),
        count,
        of_total,
        Field(Column("EXPECTED %"), lambda line, _: "" if line.expected is None else f"{100 * line.expected:.1f}%"),
        Field(Column(observed), lambda line, _: _observed_cell(line, options, identified)),
    ]


def wide_fields(checked: bool) -> list[Field]:
    """``-o wide``: each line's latency and, with a check, each destination's error rate."""
    fields = [Field(Column("P50 MS"), lambda line, _: _ms(line.p50_s)),
              Field(Column("P99 MS"), lambda line, _: _ms(line.p99_s))]
    if checked:
        fields.append(Field(Column("ERRORS %"),
                            lambda line, _: "" if line.error_rate is None else f"{100 * line.error_rate:.1f}%"))
    return fields


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:,.1f}"


def sidecar_fields(sidecar: SidecarReport, expected_names: set[str]) -> list[Field]:
    """What the sidecar was told (PROGRAMMED %) and counted (SIDECAR COUNT), on each destination's first line."""
    return [_sidecar_field(header, cell) for header, cell in sidecar.columns(expected_names)]


def _sidecar_field(header: str, cell: Callable[[str], str]) -> Field:
    return Field(Column(header), lambda line, _: cell(line.destination) if line.expected is not None else "")


def render_table(measurement: Measurement, evaluation: Evaluation | None = None, *, unicode_ok: bool = True,
                 width: int | None = None, options: TableOptions | None = None,
                 sidecar: SidecarReport | None = None) -> str:
    """The distribution table, at most ``width`` display cells wide when given (the terminal's); with the
    sidecar read, its columns stand before OBSERVED %."""
    options = options or TableOptions(unicode_ok=unicode_ok, width=width)
    total = measurement.requests
    shown, folded = top_rows(measurement.rows)
    if folded is not None:
        shown = [*shown, folded]
    checked = evaluation is not None
    if evaluation is not None:
        shares = evaluation.verdict.shares if evaluation.verdict is not None else ()
        identified = sum(share.count for share in shares) if shares else total
        fields, lines = checked_fields(total, identified, options), _checked_lines(shown, evaluation, measurement)
        if sidecar is not None:
            fields[-1:-1] = sidecar_fields(sidecar, set(evaluation.expectation.probabilities))
    else:
        fields, lines = plain_fields(total), [_plain_line(row, measurement) for row in shown]
    if options.wide:
        fields += wide_fields(checked)
    if not lines:
        lines = [TableLine("(no requests completed)", 0)]
    columns = [field.column for field in fields]
    rows = [[field.text(line, total) for field in fields] for line in lines]
    if options.bars and not fits(columns, rows, options.width):  # the bars are a picture: first to go
        return render_table(measurement, evaluation, options=replace(options, bars=False), sidecar=sidecar)
    table = draw_table(columns, rows, width=options.width)
    if not options.unicode_ok:
        table = table.encode("ascii", errors="replace").decode("ascii")
    return table


def _line(row: Row, measurement: Measurement, destination: str = "", expected: float | None = None,
          share: ShareEstimate | None = None, error_rate: float | None = None) -> TableLine:
    histogram = measurement.tally.row_latency(row)
    return TableLine(row.label, row.count, destination, expected, share, histogram.quantile(0.5),
                     histogram.quantile(0.99), error_rate)


def _plain_line(row: Row, measurement: Measurement) -> TableLine:
    return _line(row, measurement)


def _checked_lines(shown: list[Row], evaluation: Evaluation, measurement: Measurement) -> list[TableLine]:
    expectation = evaluation.expectation
    claimed = evaluation.assignment.claimed if evaluation.assignment is not None else {}
    shares = {s.name: s for s in evaluation.verdict.shares} if evaluation.verdict is not None else {}
    health = evaluation.health
    lines: list[TableLine] = []
    described: set[str] = set()
    for row in shown:
        dest = claimed.get(row.label)
        dest_text = dest if dest else ("(undeclared)" if row.is_ok else "(error)")
        if dest and dest not in described:
            described.add(dest)
            state = health.of(dest) if health is not None else None
            lines.append(_line(row, measurement, dest_text, expectation.probabilities.get(dest), shares.get(dest),
                               state.error_rate if state else None))
        else:
            lines.append(_line(row, measurement, dest_text))
    for outcome in expectation.outcomes:
        if outcome.name not in described:
            lines.append(TableLine("(no answers)", 0, outcome.name, outcome.probability, shares.get(outcome.name)))
    return lines


def _observed_cell(line: TableLine, options: TableOptions, identified: int) -> str:
    share = line.share
    if share is None:
        return ""
    text = f"{percent(share.count, identified)} [{100 * share.low:.1f}–{100 * share.high:.1f}]"
    if options.bars:
        text += " " + split_bar(share.observed, line.expected, unicode_ok=options.unicode_ok)
    return text


BAR_CELLS = 10
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def split_bar(observed: float, expected: float | None, *, cells: int = BAR_CELLS, unicode_ok: bool = True) -> str:
    """A bar of ``cells`` cells filled to ``observed`` with a mark at ``expected``: ``█████▌  │ ``. Where the
    terminal cannot show block elements: ``#####   | ``."""
    observed = min(max(observed, 0.0), 1.0)
    eighths = round(observed * cells * 8)
    if unicode_ok:
        bar = list("█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else ""))
    else:
        bar = list("#" * round(observed * cells))
    bar += [" "] * (cells - len(bar))
    if expected is not None:
        mark = min(int(expected * cells), cells - 1)
        bar[mark] = ("┃" if bar[mark] == "█" else "│") if unicode_ok else "|"
    return "".join(bar)


def footer_line(measurement: Measurement) -> str:
    """``1,000 requests in 0.52 s (1,923 req/s); latency p50 …``: rate and latency only when some HTTP answer
    came back (a run of refused connections has neither: its speed is the speed of failing)."""
    parts = [f"{measurement.requests:,} requests in {measurement.elapsed_s:,.2f} s"]
    if not measurement.rate_known:
        parts[0] += " of sending, by runs that did not overlap in time (no combined rate)"
    if measurement.answered:
        if measurement.rate_known:
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
                width: int | None = None, options: TableOptions | None = None, verdict_first: bool = False,
                sidecar: SidecarReport | None = None) -> str:
    """Table, footer, (with the sidecar) what it was told, and (with a check) the verdict line, its reasons,
    where the split goes wrong first and what the counts fit; at most ``width`` cells wide where it can be
    wrapped. Whatever came from outside (answers, the sidecar's admin) is escaped (one sanitiser:
    :func:`respy.report.terminal.escape`), so no byte of a response drives the terminal."""
    options = options or TableOptions(unicode_ok=unicode_ok, width=width)
    lines = [render_table(measurement, evaluation, options=options, sidecar=sidecar), footer_line(measurement)]
    hint = many_labels_hint(measurement)
    if hint:
        lines.append(hint)
    if options.wide:
        lines.extend(wide_lines(measurement, unicode_ok=options.unicode_ok))
    stopped = interrupted_line(measurement)
    if stopped:
        lines.append(stopped)
    if sidecar is not None:
        lines.extend(sidecar.lines)
    if evaluation is not None:
        lines.extend(evaluation.notes)
        if verdict_first:  # a failing test's message: pytest's summary shows its first line
            lines = [*verdict_block(evaluation, options.width, sidecar), "", *lines]
        else:
            lines.extend(verdict_block(evaluation, options.width, sidecar))
    elif sidecar is not None:
        lines.extend(_located_lines(sidecar, options.width))
    text = escape("\n".join(lines), keep_newlines=True)
    return text if options.unicode_ok else text.encode("ascii", errors="replace").decode("ascii")


def many_labels_hint(measurement: Measurement) -> str | None:
    """More distinct answers than the table shows, when counting by body: usually a timestamp or a request id
    in every body, which no split can be read from. Say how to count by what names the version."""
    if measurement.by != "body" or len(measurement.rows) <= TOP_ROWS:
        return None
    return (f"hint: {len(measurement.rows):,} different answers; if the bodies differ by a timestamp or an id, count "
            "by what names the version: --by header:NAME or --by 'regex:version=(\\w+)'")


def wide_lines(measurement: Measurement, *, unicode_ok: bool = True) -> list[str]:
    """``-o wide``'s summaries under the footer: latency (hey's and oha's figures), status codes, histogram."""
    lines = [status_line(measurement.status_codes())]
    if measurement.latency.count:
        lines.append(latency_summary_line(measurement.latency_summary_ms()))
        lines.extend(histogram_lines(measurement.latency, unicode_ok=unicode_ok))
    return lines


def _located_lines(sidecar: SidecarReport, width: int | None) -> list[str]:
    fill = min(DIAGNOSIS_WIDTH, width) if width else DIAGNOSIS_WIDTH
    return [textwrap.fill(line, width=fill, break_on_hyphens=False, subsequent_indent="  ")
            for line in sidecar.located_lines()]


def verdict_block(evaluation: Evaluation, width: int | None = None, sidecar: SidecarReport | None = None) -> list[str]:
    """The verdict line, then why (each of the verdict's reasons, indented), then any destination that is slow
    or failing, then where the split goes wrong first (with the sidecar read), then what the counts fit
    instead (the diagnosis)."""
    fill = min(DIAGNOSIS_WIDTH, width) if width else DIAGNOSIS_WIDTH
    lines = []
    if evaluation.verdict_line:
        lines.append(evaluation.verdict_line)
    reasons = list(evaluation.verdict.reasons) if evaluation.verdict is not None else []
    for reason in reasons:
        lines.append(textwrap.fill(reason, width=fill, initial_indent="  - ", subsequent_indent="    ",
                                   break_on_hyphens=False))
    if evaluation.health is not None:
        for note in evaluation.health.notes:
            lines.append(textwrap.fill(f"note: {note.text}", width=fill, subsequent_indent="    ",
                                       break_on_hyphens=False))
    if sidecar is not None:
        lines.extend(_located_lines(sidecar, width))
    diagnosis = evaluation.diagnosis.text() if evaluation.diagnosis is not None else ""
    if diagnosis:
        lines.append(textwrap.fill(diagnosis, width=fill, break_on_hyphens=False))
    return lines


def measurement_dict(measurement: Measurement, evaluation: Evaluation | None = None,
                     sidecar: SidecarReport | None = None) -> dict[str, Any]:
    """``-o json``: the measurement (``Measurement.to_dict``), what the check added, what the sidecar showed."""
    data = measurement.to_dict()
    if evaluation is not None:
        if evaluation.sequential_budget is not None:
            data["sequential"] = {"budget": evaluation.sequential_budget, "stop_reason": measurement.stop_reason}
        data.update(evaluation_dict(evaluation))
    if sidecar is not None:
        data.update(sidecar.to_dict())
    return data


def evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    data: dict[str, Any] = {}
    data["expected"] = [
        {
            "outcome": o.name,
            "probability": o.probability,
            "status": o.status,
            "identifiers": list(o.identifiers),
            "source": o.source,
            **({"pods": list(o.pods), "endpoints": dict(o.endpoints)} if o.endpoints else {}),
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
    if evaluation.diagnosis is not None:
        candidates = evaluation.diagnosis.to_list()
        if candidates:
            data["diagnosis"] = candidates
        if evaluation.diagnosis.findings:
            data["findings"] = [f.to_dict() for f in evaluation.diagnosis.findings]
    if evaluation.health is not None:
        data["health"] = evaluation.health.to_dict()
    return data


def render_json(measurement: Measurement, evaluation: Evaluation | None = None,
                sidecar: SidecarReport | None = None) -> str:
    """Exact JSON (labels byte for byte) that is still safe to print: see :func:`terminal.json_safe`."""
    return json_safe(json.dumps(measurement_dict(measurement, evaluation, sidecar), ensure_ascii=False, indent=2))


def render_csv(measurement: Measurement, evaluation: Evaluation | None = None) -> str:
    """One record per label, every text field quoted and kept byte for byte (a label holding control
    characters stays one field); with a check, a trailing ``verdict`` record (its label is the verdict line,
    its count the requests judged) and one ``reason`` record per reason."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    claimed = evaluation.assignment.claimed if evaluation and evaluation.assignment else {}
    checked = evaluation is not None
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
