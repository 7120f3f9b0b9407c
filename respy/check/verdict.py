"""The verdict: does the observed split match the declared one? (PASS / FAIL / INCONCLUSIVE / CONSISTENT)"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from respy._errors import UsageError
from respy.check.assign import Assignment
from respy.rules import Expectation, short_host

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
    dispersion: DispersionResult | None = field(default=None, compare=False)  # the independence check, if run
    report: str = field(default="", compare=False, repr=False)  # the CLI's table and verdict line, when known

    def __str__(self) -> str:
        """The table and verdict line the CLI prints (set by ``respy.assert_split`` / ``Measurement.check``)."""
        if self.report:
            return self.report
        return "\n".join([f"{self.outcome}  ({self.test}, {self.requests} requests)", *self.reasons])

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
    counts: tuple[int, ...]
    unknown: int

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
    leaks = {o.name: assignment.counts.get(o.name, 0) for o in expectation.outcomes if o.probability <= 0}
    leaks = {name: count for name, count in leaks.items() if count > 0}
    named = sum(assignment.counts.get(o.name, 0) for o in expectation.destinations)
    return HardCheck(leaks=leaks, undeclared=dict(assignment.undeclared), grace=grace, named=named)


def categories(assignment: Assignment, expectation: Expectation) -> Categories:
    positive = [o for o in expectation.outcomes if o.probability > 0]
    total_p = sum(o.probability for o in positive)
    return Categories(
        names=tuple(o.name for o in positive),
        probs=tuple(o.probability / total_p for o in positive),
        counts=tuple(assignment.counts.get(o.name, 0) for o in positive),
        unknown=assignment.unknown,
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
class _Band:
    """A share's bracketed interval against its declared value ± tolerance."""

    share: ShareEstimate
    delta: float

    @property
    def within(self) -> bool:
        low, high = self.share.expected - self.delta, self.share.expected + self.delta
        return low <= self.share.low and self.share.high <= high

    @property
    def outside(self) -> bool:
        low, high = self.share.expected - self.delta, self.share.expected + self.delta
        return self.share.high < low or self.share.low > high


def share_estimates(cats: Categories, level: float) -> tuple[ShareEstimate, ...]:
    """Observed shares among identified answers; intervals bracketed over where the unknown answers belong."""
    from respy.check.stats import wilson_interval

    n_all, identified = cats.total, cats.identified
    shares = []
    for name, p, x in zip(cats.names, cats.probs, cats.counts, strict=True):
        low = wilson_interval(x, n_all, level).low
        high = wilson_interval(x + cats.unknown, n_all, level).high
        observed = x / identified if identified else 0.0
        shares.append(ShareEstimate(name=name, expected=p, observed=observed, count=x, low=low, high=high))
    return tuple(shares)


def requests_to_decide(bands: Sequence[_Band], alpha: float, delta: float, n: int) -> int:
    """About how many requests in all would settle the undecided shares.

    First the fixed-N figure for a split that is exactly as declared (requests_to_confirm for the hardest
    share); once that many have been sent without a decision, the observed shares' distance to the band edge.
    """
    from respy.check.stats import DEFAULT_BETA, confirm_factor, requests_to_confirm

    undecided = [band for band in bands if not (band.within or band.outside)]
    declared = max((requests_to_confirm(b.share.expected, delta, alpha, len(bands)) for b in undecided), default=0)
    if declared > n:
        return declared
    factor = confirm_factor(alpha, len(bands), DEFAULT_BETA) ** 2
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


def _unknown_reason(cats: Categories, assignment: Assignment) -> list[str]:
    if not cats.unknown:
        return []
    labels = sorted(assignment.unknown_labels.items(), key=lambda item: -item[1])
    listed = ", ".join(f"{label} ({count:,})" for label, count in labels[:5])
    more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
    return [
        f"{cats.unknown:,} of {cats.total:,} answers ({_pct(cats.unknown / cats.total)}) were errors or could not "
        f"be attributed: {listed}{more}. They are not dropped: each share is bracketed between counting none "
        "and all of them as its own."
    ]


def _tost(
    bands: Sequence[_Band], cats: Categories, alpha: float, delta: float, level: float
) -> tuple[VerdictOutcome, list[str], int | None]:
    """The equivalence decision: PASS inside the band, FAIL wholly outside, INCONCLUSIVE in between."""
    failing = [b for b in bands if b.outside]
    if failing:
        texts = "; ".join(_share_text(b.share, level, delta) for b in failing)
        return "FAIL", [f"The traffic split does not match the routing rules: {texts}."], None
    if all(b.within for b in bands):
        return "PASS", [f"Every share is within ±{_pp(delta)} of the declared split."], None
    undecided = "; ".join(_share_text(b.share, level, delta) for b in bands if not b.within)
    unknown_share = cats.unknown / cats.total
    if unknown_share >= delta:
        return (
            "INCONCLUSIVE",
            [
                f"Too many answers could not be attributed ({_pct(unknown_share)}) to confirm the split within "
                f"±{_pp(delta)}, whichever version they came from; fix the errors first. {undecided}."
            ],
            None,
        )
    needed = requests_to_decide(bands, alpha, delta - unknown_share, cats.total)
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
    detectable = max(smallest_tolerance(n, p, alpha, len(cats.probs)) for p in cats.probs)
    return "CONSISTENT", [
        f"No evidence that the split differs from the declared one ({format_p(exact.p_value)} ≥ alpha = {alpha:g}). "
        f"That does not prove it matches: {n:,} requests reliably detect only deviations larger than about "
        f"±{_pp(detectable)}."
    ]


def _dispersion(
    batches: Sequence[Mapping[str, int]] | None, assignment: Assignment, cats: Categories, seed: int
) -> DispersionResult | None:
    from respy.check.stats import dispersion_check

    if not batches:
        return None
    wanted = set(cats.names)
    table = []
    for batch in batches:
        row = dict.fromkeys(cats.names, 0)
        for label, count in batch.items():
            owner = assignment.claimed.get(label)
            if owner in wanted:
                row[owner] += count
        table.append([row[name] for name in cats.names])
    return dispersion_check(table, seed=seed)


def decide(
    assignment: Assignment,
    expectation: Expectation,
    *,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float | None = None,
    strict: bool = False,
    grace: int = 0,
    batches: Sequence[Mapping[str, int]] | None = None,
    seed: int | None = None,
) -> Verdict:
    """The fixed-N verdict: hard checks, the exact-match chi-square, then the tolerance (TOST) decision.

    ``strict`` decides on the chi-square alone (FAIL when p < alpha, else CONSISTENT). ``batches`` are
    per-batch label counts (``Tally.batches.complete()``) for the independence check.
    """
    from respy.check.stats import DEFAULT_SEED, chi_square, interval_level

    _check_alpha(alpha)
    cats = categories(assignment, expectation)
    delta, notes = resolve_tolerance(cats.probs, tolerance)
    hard = hard_check(assignment, expectation, grace)
    if cats.total == 0:
        reasons = hard.reasons() or ["No answer could be attributed to a declared outcome: nothing to test."]
        return Verdict(
            "FAIL" if hard.failed else "INCONCLUSIVE",
            "none",
            None,
            None,
            None,
            alpha,
            delta,
            assignment.total,
            reasons=tuple(reasons),
            extra=_extra(hard, cats, None, None),
        )
    level = interval_level(alpha, len(cats.probs))
    exact = chi_square(
        favourable_counts(cats.counts, cats.probs, cats.unknown),
        cats.probs,
        alpha=alpha,
        rng_seed=DEFAULT_SEED if seed is None else seed,
    )
    shares = share_estimates(cats, level)
    bands = [_Band(share, delta) for share in shares]
    needed: int | None = None
    if strict:
        outcome, reasons = _strict(exact, alpha, cats.total, cats)
    else:
        outcome, reasons, needed = _tost(bands, cats, alpha, delta, level)
        if outcome == "PASS" and exact.p_value < alpha:
            reasons.append(
                f"The split differs measurably from the declared one ({format_p(exact.p_value)}), "
                "but by less than the tolerance."
            )
    dispersion = _dispersion(batches, assignment, cats, DEFAULT_SEED if seed is None else seed)
    if dispersion is not None and dispersion.fired and not hard.failed:
        outcome, needed = "INCONCLUSIVE", None
        reasons.insert(
            0,
            "Answers are not independent: the split may be per connection; try --no-keepalive "
            f"(batch-to-batch variation {format_p(dispersion.p_value)}).",
        )
    if hard.failed:
        outcome, needed = "FAIL", None
        reasons = hard.reasons() + reasons
    reasons = notes + reasons + _unknown_reason(cats, assignment)
    return Verdict(
        outcome,
        "chi-square",
        exact.statistic,
        exact.df,
        exact.p_value,
        alpha,
        delta,
        assignment.total,
        requests_needed=needed,
        reasons=tuple(reasons),
        shares=shares,
        extra=_extra(hard, cats, exact, dispersion, level),
        dispersion=dispersion,
    )


def _extra(
    hard: HardCheck,
    cats: Categories,
    exact: ChiSquareResult | None,
    dispersion: DispersionResult | None,
    level: float | None = None,
) -> dict[str, object]:
    extra: dict[str, object] = {
        "p_method": exact.method if exact else "none",
        "unknown": cats.unknown,
        "unknown_rate": cats.unknown / cats.total if cats.total else 0.0,
        "leaks": dict(hard.leaks),
        "undeclared": dict(hard.undeclared),
    }
    if level is not None:
        extra["interval_level"] = level
    if dispersion is not None:
        extra["dispersion_p"] = dispersion.p_value
        extra["dispersion_batches"] = dispersion.batches
    return extra


def verdict_line(verdict: Verdict, expectation: Expectation, assignment: Assignment) -> str:
    """One line for people, e.g. ``FAIL  weather-backend: observed single 50.1% / multiple 49.9%, declared
    90% / 10% (chi-square 1,104.9, df 1, p < 1e-16, 1000 requests)``."""
    what = short_host(expectation.host) or expectation.route or "split"
    shares = verdict.shares or share_estimates(categories(assignment, expectation), 0.95)
    names = " / ".join(f"{s.name} {_pct(s.observed)}" for s in shares)
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
    details.append(f"{verdict.requests} requests")
    line = f"{verdict.outcome}  {what}: observed {names}, declared {declared} ({', '.join(details)})"
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
    needed = max(requests_to_confirm(p, delta, alpha, len(probs)) for p in probs)
    if needed <= n:
        return None
    return f"{n} requests cannot confirm {split_text(probs)} within ±{_pp(delta)}; about {needed:,} would"
