"""Anytime-valid sequential test: stop as soon as the split is clearly right or clearly wrong.

The Dirichlet-multinomial mixture of Lindon & Malek (NeurIPS 2022). With prior Dirichlet(a), a = k p0, the
Bayes factor BF_n against the declared split p0 is a non-negative martingale under H0, so checking it after
every batch of requests keeps P(ever BF >= 1/alpha) <= alpha (Ville). Its confidence sequence, projected
on each share in closed form, is compared with the tolerance band: PASS inside, FAIL wholly outside.
Formulas: shared/notes/statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, gammaln, log_expit, xlogy

from respy.check.assign import Assignment
from respy.check.stats import DEFAULT_SEED, DispersionResult, Interval, requests_to_confirm
from respy.check.verdict import (
    DEFAULT_ALPHA,
    Categories,
    HardCheck,
    ShareEstimate,
    Verdict,
    VerdictOutcome,
    _Band,
    _dispersion,
    _unknown_reason,
    categories,
    format_p,
    hard_check,
    requests_to_decide,
    resolve_tolerance,
)
from respy.rules import Expectation

TEST_NAME = "sequential Dirichlet-multinomial"
DEFAULT_K = 100.0
# Share of the prior on a uniform Dirichlet(1, ..., 1). A prior concentrated at p0 alone (k = 100) is slow to
# show that a far-off split is wrong: 90/10 declared, true 50/50 stopped at a median of 70 requests, 30 with
# this hedge, while P(PASS) and the PASS stopping time for a correct split did not change (2,000 runs each).
# A mixture of two such martingales is one, so the test stays anytime-valid.
DEFAULT_HEDGE = 0.1
BUDGET_FACTOR = 1.7
MAX_BUDGET = 100_000
PASS, CONTINUE, FAIL = 1, 0, -1
_FAR = 27.6  # logit(1 - 1e-12)
_NEWTON_STEPS = 14


def log_mixture(counts: ArrayLike, prior: ArrayLike) -> NDArray[np.float64]:
    """log of the Dirichlet-multinomial marginal likelihood (without the multinomial coefficient)."""
    c = np.asarray(counts, dtype=np.float64)
    a = np.asarray(prior, dtype=np.float64)
    n = c.sum(axis=-1)
    return gammaln(a.sum()) - gammaln(a.sum() + n) + np.sum(gammaln(a + c) - gammaln(a), axis=-1)


def log_marginal(counts: ArrayLike, probs: ArrayLike, k: float = DEFAULT_K, hedge: float = DEFAULT_HEDGE) -> NDArray:
    """log M_n: the prior is (1 - hedge) Dirichlet(k p0) + hedge Dirichlet(1, ..., 1)."""
    p = np.asarray(probs, dtype=np.float64)
    main = log_mixture(counts, k * p)
    if hedge <= 0:
        return main
    uniform = log_mixture(counts, np.ones_like(p))
    return np.logaddexp(math.log1p(-hedge) + main, math.log(hedge) + uniform)


def log_bayes_factor(
    counts: ArrayLike, probs: ArrayLike, k: float = DEFAULT_K, hedge: float = DEFAULT_HEDGE
) -> NDArray[np.float64]:
    """log BF_n of the mixture against p0; works on stacks of count vectors (last axis = categories)."""
    c = np.asarray(counts, dtype=np.float64)
    return log_marginal(c, probs, k, hedge) - np.sum(xlogy(c, np.asarray(probs, dtype=np.float64)), axis=-1)


def _profile(counts: NDArray[np.float64], t: ArrayLike, threshold: NDArray[np.float64]) -> NDArray[np.float64]:
    """f_j(t) - threshold: > 0 exactly where share j = t lies inside the confidence sequence."""
    n = counts.sum(axis=-1, keepdims=True)
    rest = n - counts
    tt = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    others = np.sum(xlogy(counts, counts), axis=-1, keepdims=True) - xlogy(counts, counts) - xlogy(rest, rest)
    return xlogy(counts, tt) + xlogy(rest, 1.0 - tt) + others - threshold[..., None]


def _threshold(
    counts: NDArray[np.float64], probs: NDArray[np.float64], alpha: float, k: float, hedge: float
) -> NDArray:
    return log_marginal(counts, probs, k, hedge) + math.log(alpha)


def _estimate(counts: NDArray[np.float64]) -> NDArray[np.float64]:
    n = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, n, out=np.full_like(counts, 0.5), where=n > 0)


@dataclass(frozen=True)
class BandFlags:
    """Per share (last axis): where its confidence-sequence interval lies against the band p0 ± delta."""

    low_inside: NDArray[np.bool_]  # lower bound >= p0 - delta
    high_inside: NDArray[np.bool_]  # upper bound <= p0 + delta
    above: NDArray[np.bool_]  # lower bound > p0 + delta
    below: NDArray[np.bool_]  # upper bound < p0 - delta


def band_flags(
    counts: ArrayLike, probs: ArrayLike, delta: float, alpha: float, k: float = DEFAULT_K, hedge: float = DEFAULT_HEDGE
) -> BandFlags:
    """Compare each share's interval with the band by evaluating the concave profile at the band edges only
    (no root finding: cheap enough for every grid point of a simulation)."""
    c = np.asarray(counts, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    threshold = _threshold(c, p, alpha, k, hedge)
    estimate = _estimate(c)
    top, bottom = p + delta, p - delta
    outside_top = _profile(c, top, threshold) <= 0
    outside_bottom = _profile(c, bottom, threshold) <= 0
    return BandFlags(
        low_inside=(bottom <= 0) | ((estimate >= bottom) & outside_bottom),
        high_inside=(top >= 1) | ((estimate <= top) & outside_top),
        above=(top < 1) & (estimate > top) & outside_top,
        below=(bottom > 0) & (estimate < bottom) & outside_bottom,
    )


def decisions(
    counts: ArrayLike, probs: ArrayLike, delta: float, alpha: float, k: float = DEFAULT_K, hedge: float = DEFAULT_HEDGE
) -> NDArray:
    """PASS (1) when every share's interval is inside the band, FAIL (-1) when one is wholly outside, else 0."""
    flags = band_flags(counts, probs, delta, alpha, k, hedge)
    passed = np.all(flags.low_inside & flags.high_inside, axis=-1)
    failed = np.any(flags.above | flags.below, axis=-1)
    return np.where(failed, FAIL, np.where(passed, PASS, CONTINUE))


def share_intervals(
    counts: ArrayLike, probs: ArrayLike, alpha: float, k: float = DEFAULT_K, hedge: float = DEFAULT_HEDGE
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The confidence sequence projected on each share: {t : f_j(t) > log M_n + ln alpha}.

    f_j is concave in u = logit(t), so Newton's method started outside the interval climbs to each end
    without overshooting: the ends found are never inside the true ones (the interval errs wide).
    """
    c = np.asarray(counts, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    threshold = _threshold(c, p, alpha, k, hedge)
    n = c.sum(axis=-1, keepdims=True)
    rest = n - c
    offset = np.sum(xlogy(c, c), axis=-1, keepdims=True) - xlogy(c, c) - xlogy(rest, rest) - threshold[..., None]
    low = _newton_end(c, rest, offset, -_FAR)
    high = _newton_end(c, rest, offset, _FAR)
    return low, high


def _newton_end(
    c: NDArray[np.float64], rest: NDArray[np.float64], offset: NDArray[np.float64], start: float
) -> NDArray:
    """The end of {u : c log s(u) + rest log s(-u) + offset > 0} on the side of ``start`` (as a share)."""
    u = np.full_like(c, start)
    gap = c * log_expit(u) + rest * log_expit(-u) + offset
    at_edge = gap > 0  # the interval reaches (within 1e-12 of) 0 or 1
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(_NEWTON_STEPS):
            gap = c * log_expit(u) + rest * log_expit(-u) + offset
            slope = c - (c + rest) * expit(u)
            u = np.where(at_edge | (gap >= 0), u, u - gap / slope)
    edge = 0.0 if start < 0 else 1.0
    return np.where(at_edge, edge, expit(u))


@dataclass(frozen=True)
class SequentialState:
    decided: bool
    outcome: VerdictOutcome | None  # "PASS" or "FAIL" once decided
    p_value: float
    reason: str
    intervals: tuple[Interval, ...]
    requests: int = 0
    log_bf: float = 0.0


class SequentialTest:
    """Feed it the running counts (aligned with ``probs``) as often as you like; it says when to stop.

    ``update`` takes the cumulative counts so far, not increments. Unknown answers (errors, unattributed)
    bracket each share: its lower end counts them for another share, its upper end for this one.
    """

    def __init__(
        self,
        probs: Sequence[float] | Mapping[str, float],
        alpha: float = DEFAULT_ALPHA,
        tolerance: float | None = None,
        k: float = DEFAULT_K,
        hedge: float = DEFAULT_HEDGE,
    ) -> None:
        values = list(probs.values()) if isinstance(probs, Mapping) else list(probs)
        self.names = list(probs) if isinstance(probs, Mapping) else [str(i) for i in range(len(values))]
        self.all_probs = np.asarray(values, dtype=np.float64)
        self.positive = self.all_probs > 0
        self.probs = self.all_probs[self.positive] / self.all_probs[self.positive].sum()
        self.alpha = alpha
        self.k = k
        self.hedge = hedge
        self.delta, self.notes = resolve_tolerance(self.probs.tolist(), tolerance)
        self.max_log_bf = 0.0
        self.state: SequentialState | None = None
        self.first_decision: SequentialState | None = None  # where the run was told to stop

    def _allocations(self, counts: NDArray[np.float64], unknown: int) -> NDArray[np.float64]:
        """Row j: the counts with every unknown answer given to share j (one row when there are none)."""
        if unknown <= 0:
            return counts[None, :]
        return counts[None, :] + unknown * np.eye(len(counts))

    def update(self, counts: Sequence[int], unknown: int = 0) -> SequentialState:
        c_all = np.asarray(counts, dtype=np.float64)
        n = int(c_all.sum()) + unknown
        leaked = [self.names[i] for i in np.flatnonzero(~self.positive & (c_all > 0))]
        if leaked:
            reason = f"answers came from {', '.join(leaked)}, declared with weight 0"
            self.state = SequentialState(True, "FAIL", 0.0, reason, (), n, math.inf)
            return self.state
        allocations = self._allocations(c_all[self.positive], unknown)
        log_bf = float(np.min(log_bayes_factor(allocations, self.probs, self.k, self.hedge)))
        self.max_log_bf = max(self.max_log_bf, log_bf)
        p_value = min(1.0, math.exp(-self.max_log_bf))
        intervals = self._intervals(allocations)
        outcome, reason = self._decide(allocations, intervals, n)
        self.state = SequentialState(outcome is not None, outcome, p_value, reason, intervals, n, log_bf)
        if self.state.decided and self.first_decision is None:
            self.first_decision = self.state
        return self.state

    def _pick(self, per_allocation: NDArray, own: bool) -> NDArray:
        """Per share j: the value from allocation j (own) or the least favourable other allocation."""
        if per_allocation.shape[0] == 1:
            return per_allocation[0]
        k = per_allocation.shape[1]
        if own:
            return per_allocation[np.arange(k), np.arange(k)]
        others = ~np.eye(k, dtype=bool)
        return np.array([per_allocation[others[:, j], j] for j in range(k)])

    def _intervals(self, allocations: NDArray[np.float64]) -> tuple[Interval, ...]:
        low, high = share_intervals(allocations, self.probs, self.alpha, self.k, self.hedge)
        lows = self._pick(low, own=False)
        lows = lows.min(axis=-1) if lows.ndim > 1 else lows
        highs = self._pick(high, own=True)
        return tuple(Interval(float(lo), float(hi)) for lo, hi in zip(lows, highs, strict=True))

    def _decide(
        self, allocations: NDArray[np.float64], intervals: Sequence[Interval], n: int
    ) -> tuple[VerdictOutcome | None, str]:
        flags = band_flags(allocations, self.probs, self.delta, self.alpha, self.k, self.hedge)
        low_inside = self._pick(flags.low_inside, own=False)
        above = self._pick(flags.above, own=False)
        if low_inside.ndim > 1:
            low_inside, above = np.all(low_inside, axis=-1, keepdims=False), np.all(above, axis=-1)
        high_inside = self._pick(flags.high_inside, own=True)
        below = self._pick(flags.below, own=True)
        band = f"±{self.delta * 100:g} pp"
        if np.any(above | below):
            texts = "; ".join(self._outside_text(j, intervals[j]) for j in np.flatnonzero(above | below).tolist())
            return "FAIL", f"after {n:,} requests the traffic split does not match the routing rules: {texts}"
        if np.all(low_inside & high_inside):
            return "PASS", f"after {n:,} requests every share is within {band} of the declared split"
        return None, "not decided yet"

    def _outside_text(self, j: int, interval: Interval) -> str:
        return (
            f"{self._names()[j]}: anytime-valid interval {interval.low:.1%}–{interval.high:.1%}, "
            f"declared {self.probs[j] * 100:.4g}% ± {self.delta * 100:.4g} pp"
        )

    def _names(self) -> list[str]:
        return [name for name, keep in zip(self.names, self.positive, strict=True) if keep]


def budget(probs: Sequence[float], alpha: float = DEFAULT_ALPHA, tolerance: float | None = None) -> int:
    """Most requests to spend: 1.7 x the fixed-N requests to confirm the split (P(PASS | right) ~ 0.99)."""
    positive = [p for p in probs if p > 0]
    if len(positive) < 2:
        return MAX_BUDGET if not positive else 100
    delta, _ = resolve_tolerance(positive, tolerance)
    fixed = max(requests_to_confirm(p, delta, alpha, len(positive)) for p in positive)
    return min(MAX_BUDGET, math.ceil(BUDGET_FACTOR * fixed))


def decide_sequential(
    test: SequentialTest,
    assignment: Assignment,
    expectation: Expectation,
    *,
    grace: int = 0,
    budget: int | None = None,
    batches: Sequence[Mapping[str, int]] | None = None,
    seed: int = DEFAULT_SEED,
) -> Verdict:
    """The verdict at the end of a sequential run (``test`` built on ``expectation``'s probabilities)."""
    hard = hard_check(assignment, expectation, grace)
    cats = categories(assignment, expectation)
    stopped_at = test.first_decision
    state = test.update(list(cats.counts), unknown=cats.unknown) if cats.total else None
    shares = _shares(cats.names, cats.probs, cats.counts, state)
    outcome: VerdictOutcome = "INCONCLUSIVE"
    needed: int | None = None
    reasons = list(test.notes)
    # The decision that stopped the run stands: it is valid at that stopping time, and the answers still in
    # flight then (they arrive after it) may move the intervals back over a band edge without undoing it.
    decided = stopped_at if stopped_at is not None and stopped_at.outcome is not None else state
    if decided is not None and decided.decided and decided.outcome is not None:
        outcome = decided.outcome
        reasons.append(f"{decided.reason[0].upper()}{decided.reason[1:]} (exact match: {format_p(decided.p_value)}).")
    else:
        bands = [_Band(share, test.delta) for share in shares]
        needed = requests_to_decide(bands, test.alpha, test.delta, cats.total) if cats.total else None
        spent = budget is not None and assignment.total >= budget
        why = f"the budget of {budget:,} requests ran out" if spent else "the run ended"
        reasons.append(f"{why.capitalize()} before the split was clearly inside or outside ±{test.delta * 100:g} pp.")
    dispersion = _dispersion(batches, assignment, cats, seed)
    if dispersion is not None and dispersion.fired and not hard.failed:
        outcome, needed = "INCONCLUSIVE", None
        reasons.insert(0, "Answers are not independent: the split may be per connection; try --no-keepalive.")
    if hard.failed:
        outcome, needed = "FAIL", None
        reasons = hard.reasons() + reasons
    reasons += _unknown_reason(cats, assignment) if cats.total else []
    return Verdict(
        outcome,
        TEST_NAME,
        state.log_bf if state else None,
        None,
        state.p_value if state else None,
        test.alpha,
        test.delta,
        assignment.total,
        requests_needed=needed,
        reasons=tuple(reasons),
        shares=shares,
        extra=_extra(test, hard, cats, dispersion),
        dispersion=dispersion,
    )


def _extra(
    test: SequentialTest, hard: HardCheck, cats: Categories, dispersion: DispersionResult | None
) -> dict[str, object]:
    extra: dict[str, object] = {
        "k": test.k,
        "hedge": test.hedge,
        "max_log_bf": test.max_log_bf,
        "unknown": cats.unknown,
        "unknown_rate": cats.unknown / cats.total if cats.total else 0.0,
        "leaks": dict(hard.leaks),
        "undeclared": dict(hard.undeclared),
    }
    if dispersion is not None:
        extra["dispersion_p"] = dispersion.p_value
        extra["dispersion_batches"] = dispersion.batches
    return extra


def _shares(
    names: Sequence[str], probs: Sequence[float], counts: Sequence[int], state: SequentialState | None
) -> tuple[ShareEstimate, ...]:
    identified = sum(counts)
    intervals = state.intervals if state is not None and state.intervals else [Interval(0.0, 1.0)] * len(names)
    return tuple(
        ShareEstimate(name, p, x / identified if identified else 0.0, x, interval.low, interval.high)
        for name, p, x, interval in zip(names, probs, counts, intervals, strict=True)
    )
