"""``respy analyze``'s table: one row per finding (message, why and fix wrapped in one column), fitted to
the terminal's width, then a one-line summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from respy.explain.analyze import ERROR, INFO, WARNING
from respy.report.table import Column, render_table

MAX_TABLE_ROWS = 200
COLUMNS = (
    Column("SEVERITY CODE", align="left"),  # one column: at 80 columns the finding's text needs the room
    Column("OBJECT", align="left", fit="wrap", min_width=14, max_width=34),
    Column("FINDING", align="left", fit="wrap", min_width=28, max_width=72),
)


class FindingLike(Protocol):
    """What the table reads of a finding (``respy.explain.analyze.Finding``)."""

    @property
    def code(self) -> str: ...
    @property
    def istio_code(self) -> str | None: ...
    @property
    def severity(self) -> str: ...
    @property
    def object(self) -> str: ...
    @property
    def where(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def why(self) -> str: ...
    @property
    def fix(self) -> str: ...


def render_findings(findings: Sequence[FindingLike], *, width: int | None = None,
                    objects: int | None = None, suppressed: int = 0) -> str:
    """The findings (most severe first, at most ``MAX_TABLE_ROWS``), at most ``width`` cells wide, then
    the summary line (with ``objects``: ``analyzed 7 objects: 1 warning``)."""
    analyzed = f"analyzed {_plural(objects, 'object')}: " if objects is not None else ""
    hidden = f" ({suppressed:,} suppressed)" if suppressed else ""
    if not findings:
        return f"{analyzed}no findings: nothing in these manifests is known to break a traffic split{hidden}"
    shown = findings[:MAX_TABLE_ROWS]  # nobody reads thousands of rows in a terminal: -o json has them all
    rows = [
        [f"{f.severity.upper()}\n{f.code}" + (f"\n{f.istio_code}" if f.istio_code else ""), f"{f.object}\n{f.where}",
         f"{f.message}\nwhy: {f.why}\nfix: {f.fix}"]
        for f in shown
    ]
    table = render_table(COLUMNS, rows, width=width, style="grid")
    more = len(findings) - len(shown)
    cut = f"\n({more:,} more findings not shown: -o json lists them all)" if more else ""
    return f"{table}{cut}\n{analyzed}{summary(findings)}{hidden}"


def summary(findings: Sequence[FindingLike]) -> str:
    counts = Counter(f.severity for f in findings)
    parts = [_plural(counts[s], s) for s in (ERROR, WARNING) if counts[s]]
    if counts[INFO]:
        parts.append(f"{counts[INFO]:,} info")
    return ", ".join(parts) if parts else "no findings"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"
