"""Printing results: the table a person reads, the JSON a machine reads, and CSV."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from typing import TYPE_CHECKING, Any, TextIO

from respy.tally import Kind, Row

if TYPE_CHECKING:
    from respy.check.evaluate import Evaluation
    from respy.measurement import Measurement

TOP_ROWS = 20
LABEL_WIDTH = 60
DIAGNOSIS_WIDTH = 100
PHONE = "☎️"


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
    url: str, planned: int | None, duration: float | None, stream: TextIO, *, sequential: bool = False
) -> str:
    """The original respy's signature line: ``☎️   1000 requests to URL...``."""
    icon = PHONE if can_encode(PHONE, stream) else "=>"
    if sequential:
        what = f"up to {planned} requests (until the verdict is clear)"
    elif planned is None and duration:
        what = f"requests for {duration:g} s"
    elif duration:
        what = f"up to {planned} requests for {duration:g} s"
    else:
        what = f"{planned} requests"
    return f"{icon}   {what} to {url}..."


def cut(label: str, width: int = LABEL_WIDTH) -> str:
    single_line = " ".join(label.split()) if ("\n" in label or "\r" in label) else label
    return single_line if len(single_line) <= width else single_line[: width - 1] + "…"


def percent(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f}%" if total else "-"


def top_rows(rows: list[Row], limit: int = TOP_ROWS) -> tuple[list[Row], Row | None]:
    """The ``limit`` most frequent rows and one row folding the rest, if any."""
    if len(rows) <= limit:
        return rows, None
    rest = rows[limit:]
    folded = Row(label=f"({len(rest)} other responses)", count=sum(r.count for r in rest), kind=Kind.OK)
    return rows[:limit], folded


def render_table(measurement: Measurement, evaluation: Evaluation | None = None, *, unicode_ok: bool = True) -> str:
    from tabulate import tabulate  # on use, for start-up time: respy --help and -o json do without it

    total = measurement.requests
    shown, folded = top_rows(measurement.rows)
    if folded is not None:
        shown = [*shown, folded]
    pct_header = f"% OF {total} REQUESTS"
    if evaluation is not None:
        headers, body = _rows_with_expectation(shown, total, evaluation, pct_header)
    else:
        headers = ["RESPONSE", "COUNT", pct_header]
        body = [[cut(r.label), r.count, percent(r.count, total)] for r in shown]
    if not body:
        body = [["(no requests completed)", 0, "-"] + [""] * (len(headers) - 3)]
    colalign = ["left" if header in ("RESPONSE", "DESTINATION") else "right" for header in headers]
    table = tabulate(body, headers=headers, tablefmt="pretty", colalign=colalign, disable_numparse=True)
    if not unicode_ok:
        table = table.encode("ascii", errors="replace").decode("ascii")
    return table


def _rows_with_expectation(
    shown: list[Row], total: int, evaluation: Evaluation, pct_header: str
) -> tuple[list[str], list[list[Any]]]:
    expectation = evaluation.expectation
    claimed = evaluation.assignment.claimed if evaluation.assignment is not None else {}
    shares = {s.name: s for s in evaluation.verdict.shares} if evaluation.verdict is not None else {}
    headers = ["RESPONSE", "DESTINATION", "COUNT", pct_header, "EXPECTED %", "OBSERVED % (interval)"]
    body: list[list[Any]] = []
    described: set[str] = set()
    for row in shown:
        dest = claimed.get(row.label)
        dest_text = dest if dest else ("(undeclared)" if row.is_ok else "(error)")
        expected, observed = "", ""
        if dest and dest not in described:
            described.add(dest)
            expected, observed = _share_cells(expectation.probabilities.get(dest), shares.get(dest))
        body.append([cut(row.label), dest_text, row.count, percent(row.count, total), expected, observed])
    for outcome in expectation.outcomes:
        if outcome.name not in described:
            expected, observed = _share_cells(outcome.probability, shares.get(outcome.name))
            body.append(["(no answers)", outcome.name, 0, percent(0, total), expected, observed])
    return headers, body


def _share_cells(expected: float | None, share: Any) -> tuple[str, str]:
    expected_text = f"{100 * expected:.1f}%" if expected is not None else ""
    if share is None:
        return expected_text, ""
    return expected_text, f"{100 * share.observed:.1f}% [{100 * share.low:.1f}–{100 * share.high:.1f}]"


def footer_line(measurement: Measurement) -> str:
    latency = measurement.latency_ms()
    parts = [f"{measurement.requests:,} requests in {measurement.elapsed_s:.2f} s ({measurement.rate:,.0f} req/s)"]
    if latency["p50"] is not None:
        parts.append(
            f"latency p50 {latency['p50']:.1f} ms, p90 {latency['p90']:.1f} ms, p99 {latency['p99']:.1f} ms"
        )
    if measurement.errors:
        parts.append(f"{measurement.errors:,} not 2xx ({percent(measurement.errors, measurement.requests)})")
    return "; ".join(parts)


def interrupted_line(measurement: Measurement) -> str | None:
    if not measurement.interrupted:
        return None
    planned = f" of {measurement.planned}" if measurement.planned else ""
    return f"interrupted after {measurement.requests}{planned} requests ({measurement.interrupted_by})"


def render_text(measurement: Measurement, evaluation: Evaluation | None = None, *, unicode_ok: bool = True) -> str:
    """Table, footer, and (with a check) the verdict line and its explanation."""
    lines = [render_table(measurement, evaluation, unicode_ok=unicode_ok), footer_line(measurement)]
    stopped = interrupted_line(measurement)
    if stopped:
        lines.append(stopped)
    if evaluation is not None:
        lines.extend(evaluation.notes)
        if evaluation.verdict_line:
            lines.append(evaluation.verdict_line)
        diagnosis = evaluation.diagnosis.text() if evaluation.diagnosis is not None else ""
        if diagnosis:
            lines.append(textwrap.fill(diagnosis, width=DIAGNOSIS_WIDTH, break_on_hyphens=False))
    text = "\n".join(lines)
    return text if unicode_ok else text.encode("ascii", errors="replace").decode("ascii")


def measurement_dict(measurement: Measurement, evaluation: Evaluation | None = None) -> dict[str, Any]:
    """``-o json``: the measurement (``Measurement.to_dict``) and what the check added."""
    data = measurement.to_dict()
    if evaluation is not None:
        if evaluation.sequential_budget is not None:
            data["sequential"] = {"budget": evaluation.sequential_budget, "stop_reason": measurement.stop_reason}
        data.update(evaluation_dict(evaluation))
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
    return data


def render_json(measurement: Measurement, evaluation: Evaluation | None = None) -> str:
    return json.dumps(measurement_dict(measurement, evaluation), ensure_ascii=False, indent=2)


def render_csv(measurement: Measurement, evaluation: Evaluation | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    claimed = evaluation.assignment.claimed if evaluation and evaluation.assignment else {}
    header = ["label", "count", "percent", "kind", "status"] + (["destination"] if claimed else [])
    writer.writerow(header)
    total = measurement.requests
    for row in measurement.rows:
        values: list[Any] = [row.label, row.count, f"{100.0 * row.count / total:.3f}" if total else "0"]
        values += [row.kind.value, "" if row.status is None else row.status]
        if claimed:
            values.append(claimed.get(row.label, ""))
        writer.writerow(values)
    return buffer.getvalue()
