"""The verdict: does the observed split match the declared one? (PASS / FAIL / INCONCLUSIVE / CONSISTENT)"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from respy._errors import UsageError
from respy.check.assign import Assignment
from respy.rules import Expectation, short_host
from respy.tally import format_percent

if TYPE_CHECKING:
    from respy.check.stats import ChiSquareResult, DispersionResult

VerdictOutcome = Literal["PASS", "FAIL", "INCONCLUSIVE", "CONSISTENT"]

EXIT_CODES: dict[str, int] = {"PASS": 0, "CONSISTENT": 0, "FAIL": 1, "INCONCLUSIVE": 3}


@dataclass(frozen=True)
class ShareEstimate:
    """One declared outcome: its expected and observed share, with the observed share's interval."""

    name: str
    expected: float
    observed: float
    count: int
    low: float
    high: float


@dataclass(frozen=True)
class Verdict:
    outcome: VerdictOutcome
    test: str
    statistic: float | None
    df: int | None
    p_value: float | None
    alpha: float
    tolerance: float
    requests: int
    requests_needed: int | None = None
    reasons: tuple[str, ...] = ()
    shares: tuple[ShareEstimate, ...] = ()
    extra: dict[str, object] = field(default_factory=dict, compare=False)
    independence: Independence | None = field(default=None, compare=False)  # the independence checks, if run
    decided_after: int | None = None  # sequential: the answers the stopping look decided on (requests - in flight)
    report: str = field(default="", compare=False, repr=False)  # the CLI's table and verdict line, when known

    def __str__(self) -> str:
        """The table and verdict line the CLI prints (set by ``respy.assert_split`` / ``Measurement.check``)."""
        if self.report:
            return self.report
        return "\n".join([f"{self.outcome}  ({self.test}, {self.requests:,} requests)", *self.reasons])

    @property
    def in_flight(self) -> int | None:
        """Answers that came back after the stopping look: counted, never used to re-decide."""
        return None if self.decided_after is None else self.requests - self.decided_after

    @property
    def passed(self) -> bool:
        return self.outcome in ("PASS", "CONSISTENT")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly summary (the shape of ``--json`` output)."""
        return {
            "outcome": self.outcome,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "df": self.df,
            "p_value": _finite(self.p_value),
            "alpha": self.alpha,
            "tolerance": self.tolerance,
            "requests": self.requests,
            "requests_needed": self.requests_needed,
            "reasons": list(self.reasons),
            "shares": [asdict(share) for share in self.shares],
            "decided_after": self.decided_after,
            "in_flight": self.in_flight,
            "extra": dict(self.extra),
        }


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


# ----------------------------------------------------------------------------------------------------------------
# Decisions. numpy/scipy (via respy.check.stats) are imported inside the functions: importing this module for the
# dataclasses above must stay cheap.

DEFAULT_ALPHA = 0.01


@dataclass(frozen=True)
class Categories:
    """The declared outcomes with a positive probability, their counts, and the answers attributed to none."""

    names: tuple[str, ...]
    probs: tuple[float, ...]
    counts: tuple[int, ...]  # answers routed to each destination: its 2xx answers and the errors naming it
    unknown: int
    errors: dict[str, int] = field(default_factory=dict)  # of the counts, errors that named their destination

    @property
    def identified(self) -> int:
        return sum(self.counts)

    @property
    def total(self) -> int:
        return self.identified + self.unknown


@dataclass(frozen=True)
class HardCheck:
    """Answers that no declared split allows: from a weight-0 destination, or matching no destination."""

    leaks: dict[str, int]
    undeclared: dict[str, int]
    grace: int
    named: int = 0  # answers attributed to a declared destination

    @property
    def stray(self) -> int:
        return sum(self.leaks.values()) + sum(self.undeclared.values())

    @property
    def failed(self) -> bool:
        return self.stray > self.grace

    def reasons(self) -> list[str]:
        if not self.failed:
            return []
        found = [self._nothing_named()] if self.undeclared and not self.named and not self.leaks else []
        found += [
            f"{_answers(c)} came from {name!r}, which has weight 0 in the routing rules."
            for name, c in self.leaks.items()
        ]
        for label, count in self.undeclared.items():
            found.append(
                f"{_answers(count)} ({label!r}) match no declared destination: a version the rules do not "
                f"declare is serving traffic; if it is a declared one, say which with --map '{label}=DESTINATION'."
            )
        if self.grace:
            found.append(f"(Up to {self.grace} such answers are forgiven by --grace; there were {self.stray}.)")
        return found


    def _nothing_named(self) -> str:
        """Said first: when no answer names any destination, the labels (not the split) are the problem."""
        seen = ", ".join(repr(label) for label in list(self.undeclared)[:5])
        more = f" and {len(self.undeclared) - 5} more" if len(self.undeclared) > 5 else ""
        return (f"No answer named a destination (labels seen: {seen}{more}): use --map LABEL=DESTINATION or "
                "--by regex:PATTERN to say which answer is which destination, or give the workloads' manifests "
                "so pod hostnames are matched to their versions.")


def _answers(count: int) -> str:
    return f"{count:,} answer" + ("" if count == 1 else "s")


def hard_check(assignment: Assignment, expectation: Expectation, grace: int = 0) -> HardCheck:
    leaks = {o.name: assignment.counts.get(o.name, 0) + assignment.errors.get(o.name, 0)
             for o in expectation.outcomes if o.probability <= 0}
    leaks = {name: count for name, count in leaks.items() if count > 0}
    named = sum(assignment.counts.get(o.name, 0) for o in expectation.destinations)
    return HardCheck(leaks=leaks, undeclared=dict(assignment.undeclared), grace=grace, named=named)


def categories(assignment: Assignment, expectation: Expectation) -> Categories:
    positive = [o for o in expectation.outcomes if o.probability > 0]
    total_p = sum(o.probability for o in positive)
    return Categories(
        names=tuple(o.name for o in positive),
        probs=tuple(o.probability / total_p for o in positive),
        counts=tuple(assignment.counts.get(o.name, 0) + assignment.errors.get(o.name, 0) for o in positive),
        unknown=assignment.unknown,
        errors={name: count for name, count in assignment.errors.items() if count},
    )


def resolve_tolerance(probs: Sequence[float], tolerance: float | None) -> tuple[float, list[str]]:
    """The tolerance band half-width to use, and a note when the requested one had to be narrowed."""
    from respy.check.stats import default_tolerance, max_tolerance

    if tolerance is None:
        return default_tolerance(probs), []
    if not 0 < tolerance < 1:
        raise UsageError(f"the tolerance must lie between 0 and 1 (a share, e.g. 0.05 for ±5 pp), not {tolerance}")
    cap = max_tolerance(probs)
    if tolerance > cap:
        return cap, [
            f"A tolerance of ±{_pp(tolerance)} is wider than half the smallest declared share, so it could not "
            f"tell a missing version from a present one; ±{_pp(cap)} is used instead."
        ]
    return tolerance, []


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 0.5:
        raise UsageError(f"alpha must lie between 0 and 0.5, not {alpha}")


def favourable_counts(counts: Sequence[float], probs: Sequence[float], unknown: float) -> list[float]:
    """Spread ``unknown`` answers over the categories so the chi-square statistic is smallest.

    Minimising sum (y_j - N p_j)^2 / (N p_j) subject to y_j >= x_j and sum y = N gives y_j = max(x_j, c p_j).
    If the split is rejected even then, it is rejected under every attribution of the unknown answers.
    """
    if unknown <= 0:
        return [float(c) for c in counts]
    total = sum(counts) + unknown
    low, high = 0.0, total / min(probs)
    for _ in range(200):
        mid = (low + high) / 2
        if sum(max(x, mid * p) for x, p in zip(counts, probs, strict=True)) < total:
            low = mid
        else:
            high = mid
    filled = [max(x, high * p) for x, p in zip(counts, probs, strict=True)]
    scale = total / sum(filled)
    return [x + (y - x) * scale if y > x else float(x) for x, y in zip(counts, filled, strict=True)]


@dataclass(frozen=True)
class Band:
    """A share's bracketed interval against its declared value ± tolerance.

    ``share.low``/``share.high`` decide PASS; ``fail_low``/``fail_high`` (one-sided at alpha / m in the fixed-N
    test, the same simultaneous interval in the sequential one) decide FAIL.
    """

    share: ShareEstimate
    delta: float
    fail_low: float | None = None
    fail_high: float | None = None

    @property
    def within(self) -> bool:
        low, high = self.share.expected - self.delta, self.share.expected + self.delta
        return low <= self.share.low and self.share.high <= high

    @property
    def outside(self) -> bool:
        low, high = self.share.expected - self.delta, self.share.expected + self.delta
        fail_low = self.share.low if self.fail_low is None else self.fail_low
        fail_high = self.share.high if self.fail_high is None else self.fail_high
        return fail_high < low or fail_low > high


def share_bands(cats: Categories, alpha: float, delta: float) -> tuple[Band, ...]:
    """Observed shares among identified answers, with exact (Clopper-Pearson) bounds bracketed over where the
    unknown answers belong: PASS bounds one-sided at alpha, FAIL bounds at alpha / m (stats.comparisons)."""
    from respy.check.stats import clopper_pearson_bounds, comparisons

    n_all, identified = cats.total, cats.identified
    side = alpha / comparisons(len(cats.probs))
    bands = []
    for name, p, x in zip(cats.names, cats.probs, cats.counts, strict=True):
        low, _ = clopper_pearson_bounds(x, n_all, alpha)
        _, high = clopper_pearson_bounds(x + cats.unknown, n_all, alpha)
        fail_low, _ = clopper_pearson_bounds(x, n_all, side)
        _, fail_high = clopper_pearson_bounds(x + cats.unknown, n_all, side)
        observed = x / identified if identified else 0.0
        share = ShareEstimate(name=name, expected=p, observed=observed, count=x, low=float(low), high=float(high))
        bands.append(Band(share, delta, float(fail_low), float(fail_high)))
    return tuple(bands)


def share_estimates(cats: Categories, level: float) -> tuple[ShareEstimate, ...]:
    """Observed shares with two-sided exact intervals at ``level`` (for display when no verdict has them)."""
    alpha = (1.0 - level) / 2.0
    return tuple(band.share for band in share_bands(cats, alpha, 0.0))


def requests_to_decide(bands: Sequence[Band], alpha: float, delta: float, n: int) -> int:
    """About how many requests in all would settle the undecided shares.

    First the fixed-N figure for a split that is exactly as declared (requests_to_confirm for the hardest
    share); once that many have been sent without a decision, the observed shares' distance to the band edge.
    """
    from respy.check.stats import confirm_factor, requests_to_confirm

    undecided = [band for band in bands if not (band.within or band.outside)]
    declared = max((requests_to_confirm(b.share.expected, delta, alpha) for b in undecided), default=0)
    if declared > n:
        return declared
    factor = confirm_factor(alpha) ** 2
    needed = [n + 1]
    for band in undecided:
        p = min(max(band.share.observed, 1.0 / (n + 1)), 1.0 - 1.0 / (n + 1))
        margin = max(abs(delta - abs(band.share.observed - band.share.expected)), delta / 4)
        needed.append(math.ceil(p * (1 - p) * factor / margin**2))
    return max(needed)


def _pp(share: float) -> str:
    return f"{_num(share * 100)} pp"


def _num(value: float, digits: int = 2) -> str:
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    return text or "0"


def _pct(share: float, digits: int = 1) -> str:
    return f"{share * 100:.{digits}f}%"


def format_p(p: float | None) -> str:
    """``p < 1e-16`` when tiny, else two significant digits (``p = 0.0031``): the one p-value format of every
    output (verdict line, reasons, diagnosis)."""
    if p is None or math.isnan(p):
        return "p n/a"
    if p < 1e-16:
        return "p < 1e-16"
    text = f"{p:.2g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return f"p = {text}"


def _share_text(share: ShareEstimate, level: float, delta: float) -> str:
    return (
        f"{share.name}: observed {_pct(share.observed)} ({_num(level * 100, 1)}% interval "
        f"{_pct(share.low)}–{_pct(share.high)}), declared {_num(share.expected * 100)}% ± {_pp(delta)}"
    )


def unknown_reason(cats: Categories, assignment: Assignment) -> list[str]:
    """Say how many answers were errors or unattributed, and which destinations named errors came from."""
    found = []
    by_answer = {name: c - assignment.sidecar_errors.get(name, 0) for name, c in assignment.errors.items()}
    by_answer = {name: c for name, c in by_answer.items() if c > 0}
    if by_answer:
        named = ", ".join(f"{_answers(c)} from {name!r}" for name, c in sorted(by_answer.items()))
        found.append(
            f"Errors that name the destination they came from: {named}. They count as routed there, and the "
            "version that produced them is the one to fix."
        )
    found += sidecar_reasons(assignment)
    if not cats.unknown or not cats.total:
        return found
    labels = sorted(assignment.unknown_labels.items(), key=lambda item: -item[1])
    listed = ", ".join(f"{label} ({count:,})" for label, count in labels[:5])
    more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
    return [
        *found,
        f"{cats.unknown:,} of {cats.total:,} answers ({_pct(cats.unknown / cats.total)}) were errors or could not "
        f"be attributed: {listed}{more}. They are not dropped: each share is bracketed between counting none "
        "and all of them as its own.",
    ]


def sidecar_reasons(assignment: Assignment) -> list[str]:
    """Errors the sidecar's counters attributed (``assign.attribute_by_sidecar``), and why any were not."""
    found = []
    for name, count in sorted(assignment.sidecar_errors.items()):
        unserved = assignment.unserved.get(name, 0)
        own = (f", all of them the sidecar's own 503s for want of a healthy endpoint: no {name!r} pod received "
               "those requests" if unserved == count else
               f", {unserved:,} of them the sidecar's own 503s for want of a healthy endpoint" if unserved else "")
        found.append(f"{count:,} error{'' if count == 1 else 's'} attributed to {name!r} by the sidecar's counters "
                     f"(Envoy's upstream_rq_5xx for its cluster over the run){own}. They count as routed there"
                     + (", and the version that produced them is the one to fix." if not unserved else "."))
    return [*found, *assignment.sidecar_notes]


def unserved_reasons(
    cats: Categories,
    assignment: Assignment,
    alpha: float,
    delta: float,
    bands_for: Callable[[Categories], Sequence[Band]] | None = None,
) -> list[str]:
    """FAIL reasons for a destination whose requests, by the sidecar's counters, mostly found no healthy endpoint:
    counting only the answers it really served, its share is wholly below the declared band. The routing chose
    it, but the declared split cannot be served (its share answers 503 "no healthy upstream").

    ``bands_for`` gives the served counts' bands with the test's own intervals (the sequential test's
    anytime-valid ones: its run stopped at a time the data chose); by default the fixed-N test's exact bounds.
    """
    if not assignment.unserved or not cats.total:
        return []
    served = tuple(max(count - assignment.unserved.get(name, 0), 0) for name, count in zip(cats.names, cats.counts,
                                                                                           strict=True))
    served_cats = replace(cats, counts=served)
    bands = bands_for(served_cats) if bands_for is not None else share_bands(served_cats, alpha, delta)
    found = []
    for band in bands:
        unserved = assignment.unserved.get(band.share.name, 0)
        if unserved and band.outside and band.share.observed < band.share.expected:
            found.append(_unserved_text(band, unserved, delta))
    return found


def _unserved_text(band: Band, unserved: int, delta: float) -> str:
    share = band.share
    served = f"served none of {_answers(unserved)} routed to it" if share.count == 0 else \
        f"served only {share.count:,} answers, and not {_answers(unserved)} routed to it"
    high = share.high if band.fail_high is None else band.fail_high
    return (f"{share.name!r} {served}: the sidecar answered them 503 itself, for want of a healthy endpoint (its "
            f"counters' upstream_cx_none_healthy). Counting only the answers it served, its share is "
            f"{_pct(share.observed)} (interval up to {_pct(high)}), declared {_num(share.expected * 100)}% ± "
            f"{_pp(delta)}: the declared split cannot be served.")


def errors_first_reason(cats: Categories, delta: float) -> str:
    """The INCONCLUSIVE reason when the errors leave too little of the band for a PASS."""
    from respy.check.stats import error_ceiling

    ceiling = error_ceiling(cats.probs, delta)
    return (
        f"Too many answers were errors or could not be attributed ({_pct(cats.unknown / cats.total)}) to confirm the "
        f"split within ±{_pp(delta)} whichever version they came from (a PASS needs fewer than {_pct(ceiling)}): "
        "fix the errors first."
    )


def errors_block_pass(cats: Categories, delta: float) -> bool:
    """Fixed-N: the observed error share is at or above ``stats.error_ceiling`` (only the INCONCLUSIVE text
    depends on it)."""
    from respy.check.stats import error_ceiling

    return bool(cats.unknown) and cats.unknown / cats.total >= error_ceiling(cats.probs, delta)


def _tost(
    bands: Sequence[Band], cats: Categories, alpha: float, delta: float, level: float
) -> tuple[VerdictOutcome, list[str], int | None]:
    """The equivalence decision: PASS inside the band, FAIL wholly outside, INCONCLUSIVE in between."""
    failing = [b for b in bands if b.outside]
    if failing:
        texts = "; ".join(_share_text(b.share, level, delta) for b in failing)
        return "FAIL", [f"The traffic split does not match the routing rules: {texts}."], None
    if all(b.within for b in bands):
        return "PASS", [f"Every share is within ±{_pp(delta)} of the declared split."], None
    undecided = "; ".join(_share_text(b.share, level, delta) for b in bands if not b.within)
    if errors_block_pass(cats, delta):
        return "INCONCLUSIVE", [f"{errors_first_reason(cats, delta)} {undecided}."], None
    unknown_share = cats.unknown / cats.total
    needed = requests_to_decide(bands, alpha, max(delta - unknown_share, delta / 4), cats.total)
    return (
        "INCONCLUSIVE",
        [f"Not enough evidence either way: {undecided}. About {needed:,} requests are needed to decide."],
        needed,
    )


def _strict(exact: ChiSquareResult, alpha: float, n: int, cats: Categories) -> tuple[VerdictOutcome, list[str]]:
    from respy.check.stats import smallest_tolerance

    if exact.p_value < alpha:
        return "FAIL", [
            f"The observed split differs from the declared one (chi-square {_num(exact.statistic, 1)}, df {exact.df}, "
            f"{format_p(exact.p_value)} < alpha = {alpha:g})."
        ]
    detectable = max(smallest_tolerance(n, p, alpha) for p in cats.probs)
    return "CONSISTENT", [
        f"No evidence that the split differs from the declared one ({format_p(exact.p_value)} ≥ alpha = {alpha:g}). "
        f"That does not prove it matches: {n:,} requests reliably detect only deviations larger than about "
        f"±{_pp(detectable)}."
    ]


CONNECTION_DEPENDENCE = (
    "Answers depend on the connection: the split is made per connection; run with --no-keepalive"
)


@dataclass(frozen=True)
class Independence:
    """Are answers independent draws? Over time (batches in send order) and across connections.

    ``batches``: the homogeneity chi-square of consecutive batches (a split drifting during the run).
    ``connections``: answers grouped by the connection they came on; a chi-square in the fixed-N test, the
    anytime-valid e-value in the sequential one (``connection_p`` = 1 / max e-value).
    """

    batches: DispersionResult | None = None
    connections: DispersionResult | None = None
    connection_p: float | None = None
    per_connection_fail: str | None = None  # the split is wrong even counting each connection once

    @property
    def per_connection(self) -> bool:
        from respy.check.stats import DISPERSION_ALPHA

        if self.connection_p is not None:
            return self.connection_p < DISPERSION_ALPHA
        return self.connections is not None and self.connections.fired

    @property
    def drifted(self) -> bool:
        return self.batches is not None and self.batches.fired

    @property
    def fired(self) -> bool:
        return self.per_connection or self.drifted

    def reasons(self) -> list[str]:
        found = []
        if self.per_connection:
            p = self.connection_p if self.connection_p is not None else self.connections.p_value  # type: ignore[union-attr]
            found.append(f"{CONNECTION_DEPENDENCE} (connection-to-connection variation {format_p(p)}).")
        if self.drifted:
            assert self.batches is not None
            found.append(
                "Answers are not independent: the split changed during the run (batch-to-batch variation "
                f"{format_p(self.batches.p_value)}); if the rules were just applied, run again once they have "
                "propagated; if it is made per connection, try --no-keepalive."
            )
        return found

    def extra(self) -> dict[str, object]:
        extra: dict[str, object] = {}
        if self.batches is not None:
            extra["dispersion_p"] = self.batches.p_value
            extra["dispersion_batches"] = self.batches.batches
        p = self.connection_p if self.connection_p is not None else (
            self.connections.p_value if self.connections is not None else None
        )
        if p is not None:
            extra["connection_p"] = p
        return extra


def category_table(
    groups: Sequence[Mapping[str, int]] | None, assignment: Assignment, cats: Categories
) -> list[list[int]]:
    """Label counts per group (batch or connection) as counts per positive-weight category."""
    wanted = set(cats.names)
    table = []
    for group in groups or ():
        row = dict.fromkeys(cats.names, 0)
        for label, count in group.items():
            owner = assignment.claimed.get(label)
            if owner in wanted:
                row[owner] += count
        table.append([row[name] for name in cats.names])
    return table


def independence(
    assignment: Assignment,
    cats: Categories,
    *,
    batches: Sequence[Mapping[str, int]] | None,
    connections: Sequence[Mapping[str, int]] | None = None,
    seed: int,
    connection_p: float | None = None,
    connection_counts: Sequence[Sequence[int]] | None = None,
    delta: float | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Independence:
    """Both independence checks: on label counts per batch and per connection (fixed-N: chi-squares), or
    with the sequential test's anytime ``connection_p`` and its per-connection ``connection_counts``."""
    from respy.check.stats import dispersion_check

    over_time = dispersion_check(category_table(batches, assignment, cats), seed=seed) if batches else None
    table = list(connection_counts) if connection_counts is not None else category_table(connections, assignment,
                                                                                         cats)
    by_connection = dispersion_check(table, seed=seed) if table and connection_p is None else None
    checks = Independence(over_time, by_connection, connection_p)
    if checks.per_connection and delta is not None:
        checks = replace(checks, per_connection_fail=_per_connection_fail(table, cats, delta, alpha))
    return checks


def _per_connection_fail(table: Sequence[Sequence[int]], cats: Categories, delta: float, alpha: float) -> str | None:
    """When the split is made per connection, each connection is one draw: count each once (its shares of the
    answers it carried) and run the band test on those. A sum of independent shares in [0, 1] is never
    more spread than the binomial with the same mean (Hoeffding 1956), so its FAIL keeps its error rate."""
    from respy.check.stats import FAIL_CODE, band_outcomes

    rows = [row for row in table if sum(row)]
    if len(rows) < 2:
        return None
    shares = [sum(row[j] / sum(row) for row in rows) for j in range(len(cats.names))]
    if band_outcomes([shares], [0], cats.probs, delta, alpha)[0] != FAIL_CODE:
        return None
    observed = " / ".join(f"{name} {_pct(x / len(rows))}" for name, x in zip(cats.names, shares, strict=True))
    declared = " / ".join(f"{_num(p * 100)}%" for p in cats.probs)
    return (
        f"Counting each of the {len(rows)} connections once, as a split made per connection must be counted, the "
        f"split still does not match the routing rules: {observed} of the connections, declared {declared} "
        f"± {_pp(delta)}."
    )


@dataclass(frozen=True)
class Conclusion:
    """What both tests hand to ``conclude``: the statistical outcome, its reasons, requests still needed."""

    outcome: VerdictOutcome
    reasons: list[str]
    needed: int | None = None


def conclude(
    decision: Conclusion,
    *,
    hard: HardCheck,
    checks: Independence,
    cats: Categories,
    assignment: Assignment,
    notes: Sequence[str] = (),
    unserved: Sequence[str] = (),
) -> Conclusion:
    """The end every verdict shares: the hard checks and a destination the sidecar could not serve
    (``unserved_reasons``) win (FAIL), dependent answers make it INCONCLUSIVE, then notes, the test's
    reasons and the account of errors and unattributed answers."""
    outcome, reasons, needed = decision.outcome, list(decision.reasons), decision.needed
    if checks.fired and not hard.failed:
        # dependent answers void the per-answer test: FAIL only if it fails counting each connection once
        outcome, needed = ("FAIL" if checks.per_connection_fail and not checks.drifted else "INCONCLUSIVE"), None
        found = checks.reasons() + ([checks.per_connection_fail] if checks.per_connection_fail else [])
        reasons = found + reasons
    if hard.failed:
        outcome, needed = "FAIL", None
        reasons = hard.reasons() + reasons
    if unserved:
        if outcome == "PASS":  # as routed, the split holds; as served, it does not: say both, served first
            reasons = [f"As routed (each error counted where the sidecar sent it): {reason[0].lower()}{reason[1:]}"
                       for reason in reasons]
        outcome, needed = "FAIL", None
        reasons = [*unserved, *reasons]
    return Conclusion(outcome, [*notes, *reasons, *unknown_reason(cats, assignment)], needed)


def common_extra(hard: HardCheck, cats: Categories, checks: Independence, assignment: Assignment) -> dict[str, object]:
    """The ``extra`` fields both tests report (the JSON's ``verdict.extra``)."""
    return {
        "unknown": cats.unknown,
        "unknown_rate": cats.unknown / cats.total if cats.total else 0.0,
        "leaks": dict(hard.leaks),
        "undeclared": dict(hard.undeclared),
        "errors_by_destination": dict(cats.errors),
        "errors_by_sidecar": dict(assignment.sidecar_errors),
        "unserved_by_sidecar": dict(assignment.unserved),
        **checks.extra(),
    }


def decide(
    assignment: Assignment,
    expectation: Expectation,
    *,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float | None = None,
    strict: bool = False,
    grace: int = 0,
    batches: Sequence[Mapping[str, int]] | None = None,
    connections: Sequence[Mapping[str, int]] | None = None,
    seed: int | None = None,
) -> Verdict:
    """The fixed-N verdict: hard checks, the exact-match chi-square, then the tolerance (TOST) decision.

    ``strict`` decides on the chi-square alone (FAIL when p < alpha, else CONSISTENT). ``batches`` are
    per-batch label counts (``Tally.batches.complete()``) and ``connections`` per-connection label counts
    (``Tally.connections.table()``) for the independence checks.
    """
    from respy.check.stats import DEFAULT_SEED, chi_square, interval_level

    _check_alpha(alpha)
    cats = categories(assignment, expectation)
    delta, notes = resolve_tolerance(cats.probs, tolerance)
    hard = hard_check(assignment, expectation, grace)
    seed = DEFAULT_SEED if seed is None else seed
    if cats.total == 0:
        nothing = Conclusion("INCONCLUSIVE", ["No answer could be attributed to a declared outcome: nothing to test."])
        end = conclude(nothing, hard=hard, checks=Independence(), cats=cats, assignment=assignment)
        extra = {"p_method": "none", **common_extra(hard, cats, Independence(), assignment)}
        return Verdict(end.outcome, "none", None, None, None, alpha, delta, assignment.total,
                       reasons=tuple(end.reasons), extra=extra)
    level = interval_level(alpha)
    exact = chi_square(favourable_counts(cats.counts, cats.probs, cats.unknown), cats.probs, alpha=alpha, rng_seed=seed)
    bands = share_bands(cats, alpha, delta)
    if strict:
        decision = Conclusion(*_strict(exact, alpha, cats.total, cats))
    else:
        decision = Conclusion(*_tost(bands, cats, alpha, delta, level))
        if decision.outcome == "PASS" and exact.p_value < alpha:
            decision.reasons.append(
                f"The split differs measurably from the declared one ({format_p(exact.p_value)}), "
                "but by less than the tolerance."
            )
    checks = independence(assignment, cats, batches=batches, connections=connections, seed=seed, delta=delta,
                          alpha=alpha)
    end = conclude(decision, hard=hard, checks=checks, cats=cats, assignment=assignment, notes=notes,
                   unserved=unserved_reasons(cats, assignment, alpha, delta))
    extra = {"p_method": exact.method, **common_extra(hard, cats, checks, assignment), "interval_level": level}
    return Verdict(
        end.outcome,
        "chi-square",
        exact.statistic,
        exact.df,
        exact.p_value,
        alpha,
        delta,
        assignment.total,
        requests_needed=end.needed,
        reasons=tuple(end.reasons),
        shares=tuple(band.share for band in bands),
        extra=extra,
        independence=checks,
    )


def verdict_line(verdict: Verdict, expectation: Expectation, assignment: Assignment, against: str = "declared") -> str:
    """One line for people, e.g. ``FAIL  weather-backend: observed single 50.1% / multiple 49.9%, declared
    90% / 10% (chi-square 1,104.9, df 1, p < 1e-16, 1000 requests)``; ``against`` names where the expected
    split came from (``programmed``: the sidecar's config)."""
    what = short_host(expectation.host) or expectation.route or "split"
    shares = verdict.shares or share_estimates(categories(assignment, expectation), 0.95)
    identified = sum(s.count for s in shares)
    names = " / ".join(f"{s.name} {format_percent(s.count, identified)}" for s in shares)
    if not identified:
        names = "no answer from any declared destination"
    declared = " / ".join(f"{_num(s.expected * 100)}%" for s in shares)
    details = (
        [verdict.test]
        if verdict.statistic is None or verdict.df is None
        else [
            f"{verdict.test} {verdict.statistic:,.1f}",
            f"df {verdict.df}",
        ]
    )
    if verdict.p_value is not None:
        details.append(format_p(verdict.p_value))
    details.append(f"{verdict.requests:,} requests")
    line = f"{verdict.outcome}  {what}: observed {names}, {against} {declared} ({', '.join(details)})"
    if verdict.decided_after is not None:
        line += f"; decided after {verdict.decided_after:,} answers; {verdict.in_flight:,} more were in flight"
    if verdict.requests_needed:
        line += f"; about {verdict.requests_needed:,} requests are needed to decide"
    return line


def split_text(probs: Sequence[float]) -> str:
    """``99/1`` for declared shares 0.99 and 0.01."""
    return "/".join(_num(p * 100) for p in probs)


def pre_run_warning(
    expectation: Expectation, n: int, alpha: float = DEFAULT_ALPHA, tolerance: float | None = None
) -> str | None:
    """Before a run: say when ``n`` requests cannot confirm the declared split within the tolerance."""
    from respy.check.stats import requests_to_confirm

    probs = [o.probability for o in expectation.outcomes if o.probability > 0]
    if len(probs) < 2:
        return None
    delta, _ = resolve_tolerance(probs, tolerance)
    needed = max(requests_to_confirm(p, delta, alpha) for p in probs)
    if needed <= n:
        return None
    return f"{n:,} requests cannot confirm {split_text(probs)} within ±{_pp(delta)}; about {needed:,} would"
