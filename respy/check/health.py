"""Per-destination health: latency and error rate of each declared destination, beside the split.

A split can be right while one version is slow or failing: what a canary analysis (Flagger's
``request-success-rate`` and ``request-duration`` checks, Kayenta's metric comparison) looks at. Each
answer is attributed to the destination its label names (as the verdict does for 2xx answers; a non-2xx
answer counts for the destination its label names, when it names one, and is otherwise not attributed).
A destination gets a note when its median latency is more than ``SLOW_RATIO`` times the other destinations'
(pooled) and at least ``MIN_SLOWER_S`` more, or when its error rate is higher than theirs by a one-sided
Fisher exact test at ``alpha`` (Bonferroni-corrected over the destinations). ``max_error_rate`` /
``max_latency_ratio`` turn a destination over either limit into a breach, which makes the verdict FAIL and
names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from respy._errors import MappingError
from respy.check.assign import Assignment, distinguishing_identifiers, match_destination
from respy.check.verdict import Verdict, format_p
from respy.rules.expectation import Expectation
from respy.tally import Kind, Row, RowLatency, Tally

SLOW_RATIO = 2.0
MIN_ANSWERS = 20  # fewer timed answers on either side: no latency comparison (a median of a handful is noise)
# Medians closer than this are not called slow, whatever their ratio: at a few milliseconds the client's own
# scheduling (C requests in flight on one event loop, a busy machine) moves medians by that much.
MIN_SLOWER_S = 0.005


@dataclass(frozen=True)
class DestinationHealth:
    """One destination's answers: how many, how many were not 2xx, and their latency."""

    name: str
    answers: int
    errors: int
    p50_s: float | None
    p99_s: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.answers if self.answers else None


@dataclass(frozen=True)
class HealthNote:
    """One line after the verdict: a destination that is slower or fails more than the others."""

    destination: str
    kind: Literal["latency", "errors"]
    text: str
    breach: str | None = None  # why it crosses --max-latency-ratio / --max-error-rate, when it does


@dataclass(frozen=True)
class Health:
    destinations: tuple[DestinationHealth, ...]
    notes: tuple[HealthNote, ...]

    @property
    def breaches(self) -> list[str]:
        return [note.breach for note in self.notes if note.breach]

    def of(self, name: str) -> DestinationHealth | None:
        return next((d for d in self.destinations if d.name == name), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "destinations": [
                {"name": d.name, "answers": d.answers, "errors": d.errors, "error_rate": d.error_rate,
                 "latency_ms": {"p50": _ms(d.p50_s), "p99": _ms(d.p99_s)}}
                for d in self.destinations
            ],
            "notes": [{"destination": n.destination, "kind": n.kind, "text": n.text, "breach": n.breach}
                      for n in self.notes],
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def assess(tally: Tally, assignment: Assignment, expectation: Expectation, *, alpha: float,
           max_error_rate: float | None = None, max_latency_ratio: float | None = None) -> Health:
    """The health of each declared destination, and the notes (and breaches) worth a line."""
    names = [d.name for d in expectation.destinations]
    latency = {name: RowLatency() for name in names}
    answers = dict.fromkeys(names, 0)
    errors = dict.fromkeys(names, 0)
    for row in tally.rows():
        name = _destination_of(row, assignment, expectation)
        if name is None:
            continue
        answers[name] += row.count
        errors[name] += 0 if row.kind is Kind.OK else row.count
        latency[name].merge(tally.row_latency(row))
    health = [DestinationHealth(n, answers[n], errors[n], latency[n].quantile(0.5), latency[n].quantile(0.99))
              for n in names]
    notes = [*_latency_notes(names, latency, max_latency_ratio),
             *_error_notes(health, alpha, max_error_rate)]
    return Health(tuple(health), tuple(notes))


def _destination_of(row: Row, assignment: Assignment, expectation: Expectation) -> str | None:
    if row.kind is Kind.TRANSPORT:
        return None  # no answer: nothing says which version it was meant for
    destinations = {d.name for d in expectation.destinations}
    claimed = assignment.claimed.get(row.label)
    if claimed is not None:
        return claimed if claimed in destinations else None  # a status outcome (a fault abort) is no version
    if row.kind is Kind.OK:
        return None
    try:
        return match_destination(row.label, distinguishing_identifiers(expectation.destinations))
    except MappingError:
        return None


def _latency_notes(names: Sequence[str], latency: dict[str, RowLatency],
                   max_ratio: float | None) -> list[HealthNote]:
    notes = []
    for name in names:
        others = RowLatency()
        for other in names:
            if other != name:
                others.merge(latency[other])
        mine, theirs = latency[name].quantile(0.5), others.quantile(0.5)
        if mine is None or theirs is None or latency[name].count < MIN_ANSWERS or others.count < MIN_ANSWERS:
            continue
        ratio = mine / theirs if theirs > 0 else float("inf")
        if mine - theirs < MIN_SLOWER_S:
            continue
        breach = None
        if max_ratio is not None and ratio > max_ratio:
            breach = (f"{name}'s median latency {mine * 1000:,.1f} ms is {ratio:,.1f}× the other destinations' "
                      f"{theirs * 1000:,.1f} ms (--max-latency-ratio {max_ratio:g})")
        if ratio > SLOW_RATIO or breach:
            text = (f"{name} is slow: median latency {mine * 1000:,.1f} ms, {ratio:,.1f}× the other destinations' "
                    f"{theirs * 1000:,.1f} ms")
            notes.append(HealthNote(name, "latency", text, breach))
    return notes


def _error_notes(health: Sequence[DestinationHealth], alpha: float, max_rate: float | None) -> list[HealthNote]:
    from scipy.stats import fisher_exact  # scipy is imported on use: `import respy` stays light

    notes = []
    level = alpha / max(len(health), 1)
    for mine in health:
        rate = mine.error_rate
        if rate is None or mine.errors == 0:
            continue
        other_answers = sum(d.answers for d in health if d is not mine)
        other_errors = sum(d.errors for d in health if d is not mine)
        other_rate = other_errors / other_answers if other_answers else 0.0
        p_value = 1.0
        if other_answers:
            table = [[mine.errors, mine.answers - mine.errors], [other_errors, other_answers - other_errors]]
            p_value = float(fisher_exact(table, alternative="greater").pvalue)
        breach = None
        if max_rate is not None and rate > max_rate:
            breach = (f"{mine.name} answered {rate:.1%} errors ({mine.errors:,} of {mine.answers:,}), over "
                      f"--max-error-rate {max_rate:g}")
        if (p_value < level and rate > other_rate) or breach:
            text = (f"{mine.name} fails more: {rate:.1%} of its answers are not 2xx ({mine.errors:,} of "
                    f"{mine.answers:,}) against {other_rate:.1%} for the other destinations "
                    f"(Fisher's exact test, {format_p(p_value)})")
            notes.append(HealthNote(mine.name, "errors", text, breach))
    return notes


def with_breaches(verdict: Verdict, health: Health) -> Verdict:
    """``verdict`` made FAIL when a destination crossed ``--max-error-rate`` / ``--max-latency-ratio``: the
    split may be right, but a canary that is too slow or fails too often is not fit to take the traffic.
    The breaches come first among the reasons, each naming its destination."""
    breaches = health.breaches
    if not breaches:
        return verdict
    return replace(verdict, outcome="FAIL", requests_needed=None,
                   reasons=(*(f"Health limit crossed: {breach}." for breach in breaches), *verdict.reasons))
