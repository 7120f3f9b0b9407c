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
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, gammaln, log_expit, xlogy

from respy.check.assign import Assignment
from respy.check.stats import DEFAULT_SEED, Interval, comparisons, error_ceiling, requests_to_confirm
from respy.check.verdict import (
    DEFAULT_ALPHA,
    Band,
    Categories,
    Conclusion,
    ShareEstimate,
    Verdict,
    VerdictOutcome,
    categories,
    common_extra,
    conclude,
    errors_first_reason,
    format_p,
    hard_check,
    independence,
    requests_to_decide,
    resolve_tolerance,
    unserved_reasons,
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
PASS, CONTINUE, FAIL, BLOCKED = 1, 0, -1, 2
_FAR = 27.6  # logit(1 - 1e-12)
_NEWTON_STEPS = 14
_log = math.log
_NEVER = 1 << 62
_ONE_OVER_E = math.exp(-1.0)
_CAP = 4096  # the largest lam one look plans with


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
    outcome: VerdictOutcome | None  # "PASS" or "FAIL" once decided ("INCONCLUSIVE" when errors forbid a PASS)
    p_value: float
    reason: str
    intervals: tuple[Interval, ...]
    requests: int = 0
    log_bf: float = 0.0


def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0


def _lam_for(budget: float, rate: float) -> float:
    """The largest lam with lam x rate < budget (rate: how fast a condition's distance falls per unit lam)."""
    if budget <= 0:
        return 0.0
    return math.inf if rate <= 0 else budget / rate * (1.0 - 1e-9)


def _lbeta_half(a: float, b: float) -> float:
    """ln B(a + 1/2, b + 1/2) - ln B(1/2, 1/2): the Jeffreys Beta mixture of a Bernoulli sequence."""
    return math.lgamma(a + 0.5) + math.lgamma(b + 0.5) - math.lgamma(a + b + 1.0) - math.log(math.pi)


class SequentialTest:
    """The anytime-valid test, updated one answer at a time: ``add`` in O(1), a full look in O(K) (O(K^2) while
    there are unknown answers), made only where a decision may have become possible.

    ``add(category)`` counts one answer (the index of its share among the positive-weight outcomes, or None for
    an error or an answer attributed to no outcome) and ``look()`` decides, as a full look at every answer
    would: PASS, FAIL, CONTINUE, or BLOCKED when the errors alone make a PASS impossible. Weight-0 outcomes are
    no category here: answers from them are the hard check's business (``--grace``), done by the caller.
    Unknown answers bracket each share: its lower end counts them for another share, its upper end for this one.
    """

    def __init__(
        self,
        probs: Sequence[float] | Mapping[str, float],
        alpha: float = DEFAULT_ALPHA,
        tolerance: float | None = None,
        k: float = DEFAULT_K,
        hedge: float = DEFAULT_HEDGE,
    ) -> None:
        values = [float(v) for v in (probs.values() if isinstance(probs, Mapping) else probs)]
        self.names = list(probs) if isinstance(probs, Mapping) else [str(i) for i in range(len(values))]
        self.all_probs = np.asarray(values, dtype=np.float64)
        self.positive = self.all_probs > 0
        total = float(self.all_probs[self.positive].sum())
        self.probs = self.all_probs[self.positive] / total
        self.positive_names = [name for name, keep in zip(self.names, self.positive.tolist(), strict=True) if keep]
        self.index = {name: i for i, name in enumerate(self.positive_names)}
        self.alpha = alpha
        self.k = k
        self.hedge = hedge
        self.delta, self.notes = resolve_tolerance(self.probs.tolist(), tolerance)
        self.error_ceiling = error_ceiling(self.probs.tolist(), self.delta)
        self._p = self.probs.tolist()
        self._a = [k * p for p in self._p]
        self._lnp = [math.log(p) for p in self._p]
        self._tops = [p + self.delta for p in self._p]
        self._bottoms = [p - self.delta for p in self._p]
        self._ln_top = [(math.log(t), math.log1p(-t)) if t < 1 else (0.0, -math.inf) for t in self._tops]
        self._ln_bottom = [(math.log(b), math.log1p(-b)) if b > 0 else (-math.inf, 0.0) for b in self._bottoms]
        self._ln_alpha = math.log(alpha)
        self._ln_weights = (math.log1p(-hedge), math.log(hedge)) if hedge > 0 else (0.0, -math.inf)
        self._set([0] * len(self._p), 0)
        self.max_log_bf = 0.0
        self.state: SequentialState | None = None

    # ---- counting ------------------------------------------------------------------------------------------
    def _set(self, counts: Sequence[int], unknown: int) -> None:
        self.counts = [int(c) for c in counts]
        self.unknown = int(unknown)
        self.n = sum(self.counts) + self.unknown
        self.next_look = 0  # the answer count at which the next look is due (see ``look``)
        self._watch = [_NEVER] * (len(self.counts) + 1)  # per kind of answer (the shares, then unknown): see look
        self._lam = 0.0  # the last look's lam (``_region``): most often it still holds at the next

    def add(self, category: int | None) -> bool:
        """One more answer: from positive-weight share ``category``, or unknown (None). O(1). True when a look
        is due: until some kind of answer passes its allowance, no look can decide (see ``look``)."""
        self.n += 1
        if category is None:
            self.unknown += 1
            if self.unknown >= self._watch[-1]:
                self.next_look = 0
        else:
            count = self.counts[category] + 1
            self.counts[category] = count
            if count >= self._watch[category]:
                self.next_look = 0
        return self.n >= self.next_look

    # ---- deciding ------------------------------------------------------------------------------------------
    def _log_marginal(self, counts: Sequence[int]) -> float:
        """log M_n of the hedged Dirichlet-multinomial mixture for ``counts`` (one allocation)."""
        n, kk = float(self.n), len(counts)
        g_main = sum(math.lgamma(a + c) - math.lgamma(a) for a, c in zip(self._a, counts, strict=True))
        g_unif = sum(math.lgamma(1.0 + c) for c in counts)
        main = g_main + math.lgamma(self.k) - math.lgamma(self.k + n)
        if self._ln_weights[1] == -math.inf:
            return main
        unif = g_unif + math.lgamma(kk) - math.lgamma(kk + n)
        first, second = self._ln_weights[0] + main, self._ln_weights[1] + unif
        top = max(first, second)
        return top + math.log(math.exp(first - top) + math.exp(second - top))

    def _allocations(self) -> list[list[int]]:
        """The counts with every unknown answer given to share j, for each j (one row when there are none)."""
        if not self.unknown:
            return [self.counts]
        rows = []
        for j in range(len(self.counts)):
            row = list(self.counts)
            row[j] += self.unknown
            rows.append(row)
        return rows

    def look(self) -> int:
        """PASS, FAIL, CONTINUE, or BLOCKED (the errors alone make a PASS impossible) for the counts so far.

        Exactly the decision at every answer, at a fraction of the cost: a look that finds no decision also
        works out, per kind of answer (each share, unknown), how many more of it cannot possibly change that
        while the other kinds stay within theirs (``_region``); the next look is due when one kind passes its
        allowance, and looks before then return CONTINUE at once.
        """
        if self.n < self.next_look or self.n == 0:
            return CONTINUE
        code, margins = self._decide()
        n = self.n
        if code != CONTINUE:
            self.next_look = n + 1
            return code
        kinds = (*self.counts, self.unknown)
        rates = [(c + 0.5) / (n + len(kinds) / 2) for c in kinds]
        lam = self._region(margins, rates, max(16.0, n / 4.0), _CAP)
        self._watch = [c + math.floor(lam * r) + 1 for c, r in zip(kinds, rates, strict=True)]
        self.next_look = _NEVER
        return code

    def _decide(self) -> tuple[int, list[tuple[Any, ...]]]:
        """The decision, and per quantity it compares its distance to flipping (for ``_region``)."""
        margins: list[tuple[Any, ...]] = []
        blocked, margin = self._errors_block_pass()
        margins.append(("errors", *margin))
        if blocked:
            return BLOCKED, margins
        if len(self._p) == 1:
            passed, margin = self._look_single()
            margins.append(("single", *margin))
            return (PASS if passed else CONTINUE), margins
        allocations = self._allocations()
        log_bf = math.inf
        flags = []  # per allocation: (low_inside, high_inside, above, below) per share
        for j, counts in enumerate(allocations):
            log_m = self._log_marginal(counts)
            log_bf = min(log_bf, log_m - sum(c * lp for c, lp in zip(counts, self._lnp, strict=True)))
            flags.append(self._flags(counts, log_m + self._ln_alpha, margins, j if self.unknown else None))
        # the largest Bayes factor at the looks made (a skipped answer cannot decide, but may have had a larger
        # one): the anytime p-value, valid taken at any answers
        self.max_log_bf = max(self.max_log_bf, log_bf)
        self._last_log_bf = log_bf
        kk = len(self._p)
        failed, passed = False, True
        for i in range(kk):
            own = flags[i if self.unknown else 0][i]
            others = [flags[j][i] for j in range(kk) if j != i] if self.unknown else [own]
            if all(f[2] for f in others) or own[3]:
                failed = True
            if not (own[1] and all(f[0] for f in others)):
                passed = False
        return (FAIL if failed else PASS if passed else CONTINUE), margins

    def _flags(
        self, counts: Sequence[int], threshold: float, margins: list[tuple[Any, ...]], allocation: int | None = None
    ) -> list[tuple[bool, bool, bool, bool]]:
        """Per share: (lower end inside the band, upper end inside, wholly above, wholly below); appends to
        ``margins`` what ``_region`` needs: (gap, share count, counts, edge) per band edge."""
        n = float(self.n)
        s = sum(_xlogx(c) for c in counts)
        result = []
        mirrored = len(counts) == 2  # share 1's edges are share 0's mirrored: same gaps, already in margins
        for i, c in enumerate(counts):
            rest = n - c
            base = s - _xlogx(c) - _xlogx(rest) - threshold
            estimate = c / n
            top, bottom = self._tops[i], self._bottoms[i]
            out_top = out_bottom = True
            if top < 1:
                ln_t, ln_1t = self._ln_top[i]
                gap = (c * ln_t if c else 0.0) + (rest * ln_1t if rest else 0.0) + base
                out_top = gap <= 0
                if not (mirrored and i == 1):
                    margins.append(((allocation, i, "top"), gap, i, counts, top))
            if bottom > 0:
                ln_b, ln_1b = self._ln_bottom[i]
                gap = (c * ln_b if c else 0.0) + (rest * ln_1b if rest else 0.0) + base
                out_bottom = gap <= 0
                if not (mirrored and i == 1):
                    margins.append(((allocation, i, "bottom"), gap, i, counts, bottom))
            result.append((
                bottom <= 0 or (estimate >= bottom and out_bottom),
                top >= 1 or (estimate <= top and out_top),
                top < 1 and estimate > top and out_top,
                bottom > 0 and estimate < bottom and out_bottom,
            ))
        return result

    def _look_single(self) -> tuple[bool, tuple[Any, ...]]:
        """One positive-weight destination: PASS once the share of answers that are its own is surely >= 1 - delta
        (a Jeffreys-mixture confidence sequence); unknown answers can only forbid a PASS, never make a FAIL."""
        x, u = self.counts[0], self.unknown
        self._last_log_bf = 0.0
        bottom = 1.0 - self.delta
        gap = x * math.log(bottom) + (u * math.log1p(-bottom) if u else 0.0) - _lbeta_half(x, u) - self._ln_alpha
        return x / self.n >= bottom and gap <= 0, (gap, x, u, bottom)

    def _errors_block_pass(self) -> tuple[bool, tuple[Any, ...]]:
        """The error share is surely (anytime-valid, Jeffreys mixture) above ``stats.error_ceiling``."""
        u, rest, limit = self.unknown, self.n - self.unknown, self.error_ceiling
        if limit <= 0:
            return u > 0, (math.inf, u, rest, limit)
        gap = u * math.log(limit) + (rest * math.log1p(-limit) if rest else 0.0) - _lbeta_half(u, rest) - self._ln_alpha
        return u / self.n > limit and gap <= 0, (gap, u, rest, limit)

    # ---- how many answers of each kind cannot change a CONTINUE -------------------------------------------
    # A look that finds no decision gives each kind of answer (each share, then unknown) an allowance,
    # floor(lam x its current rate), such that while no kind passes its allowance no route to a decision can
    # open. Each route needs conditions at the same answer, so each is closed by keeping one condition false:
    # - a PASS needs every band edge it compares outside the confidence sequence (gap <= 0): one edge that
    #   stays inside is enough, so the edge that stays inside longest;
    # - a FAIL needs one edge outside with the share's estimate past it: for every edge, the gap staying > 0
    #   or the estimate staying on its side, whichever holds longer;
    # - BLOCKED needs the error share past its ceiling and the gap of that check <= 0, the same way.
    # A gap falls by at most sum_l d_l x step_l over d_l more answers of kind l (``_step``); an estimate
    # crosses its edge only after more than B answers of the kinds that move it there. The steps are bounded
    # for the allowances themselves, so every answer taken within them is covered. Checked against a full
    # look at every answer in tests/test_sequential_test.py and tests/test_look.py.

    def _region(self, margins: list[tuple[Any, ...]], rates: list[float], start: float, cap: int,
                rounds: int = 3) -> float:
        """A lam <= cap for which allowances floor(lam x rates) keep every route to a decision closed.

        The steps are bounded for the allowances of a trial lam (first the last look's); any lam up to the one
        those bounds allow, and up to the trial, is then safe (the bounds only grow with the allowances). A
        few rounds move the trial towards the largest safe lam."""
        safe, trial = 0.0, min(float(cap), self._lam or start)
        for _ in range(rounds):
            best = self._largest_lam(margins, [math.floor(trial * r) for r in rates], rates)
            if best >= trial:
                safe = trial
                if trial >= cap or best < 1.25 * trial:
                    break
                trial = min(float(cap), best)
            else:
                safe = max(safe, best * (1.0 - 1e-9))
                trial = (safe + trial) / 2.0
        self._lam = safe
        return safe

    def _largest_lam(self, margins: list[tuple[Any, ...]], allowed: list[int], rates: list[float]) -> float:
        """The largest lam for which allowances lam x rates keep every route to a decision closed, with each
        answer's step bounded for the allowances ``allowed``."""
        n, kk = self.n, len(self.counts)
        all_rates = sum(rates)
        passing, failing = 0.0, math.inf
        for key, *margin in margins:
            if key in ("errors", "single"):  # (gap, hits, misses, edge): it fires at hits / n past edge, gap <= 0
                gap, hits, misses, edge = margin
                hit = kk if key == "errors" else 0
                if edge <= 0 or edge >= 1 or not math.isfinite(gap):  # it fires on the first hit
                    lam = (1.0 - 1e-9) / rates[hit] if hits == 0 else 0.0
                else:
                    lam = _lam_for((edge * n - hits) / (1.0 - edge) - 1e-9, rates[hit])
                    if gap > 0:  # a hit lowers the gap by ln((hits + 1/2) / ((n + 1) edge)), a miss likewise
                        up = math.log((hits + allowed[hit] + 0.5) / ((n + 1.0) * edge))
                        down = math.log((misses + sum(allowed) - allowed[hit] + 0.5) / ((n + 1.0) * (1.0 - edge)))
                        step = max(up, 0.0) * rates[hit] + max(down, 0.0) * (all_rates - rates[hit])
                        lam = max(lam, _lam_for(gap, step))
                if key == "single":
                    passing = lam
                else:
                    failing = min(failing, lam)
                continue
            allocation, i, side = key
            gap, i, counts, t = margin
            needed_to_pass = allocation is None or (side == "top") == (allocation == i)
            # the kinds whose answers move share i's estimate towards this edge (unknown ones: if they count
            # for share i in this allocation and the edge is the top, or for another share and it is the bottom)
            rate = rates[i] if side == "top" else all_rates - rates[i] - rates[kk]
            rate += rates[kk] if allocation is None or (allocation == i) == (side == "top") else 0.0
            if side == "top":
                crossing = _lam_for((t * n - counts[i]) / (1.0 - t) - 1e-9, rate)
            else:
                crossing = _lam_for((counts[i] - t * n) / t - 1e-9, rate)
            if not needed_to_pass and crossing >= failing:
                continue
            held = _lam_for(gap, self._step(allocation, i, counts, t, allowed, rates)) if gap > 0 else 0.0
            if needed_to_pass:
                passing = max(passing, held)
            failing = min(failing, max(held, crossing))
        return min(passing, failing)

    def _step(self, allocation: int | None, i: int, counts: Sequence[int], t: float, allowed: list[int],
              rates: list[float]) -> float:
        """How fast edge t's gap for share i can fall per unit of lam: the most one answer of each kind can
        lower it while every kind stays within ``allowed``, weighted by the kinds' rates.

        One answer of share i changes the profile by exactly ln t, one of share l by at least
        ln(1 - t) + ln c_l - ln(n - c_i + 1) (x ln x grows by at least ln x + 1, at most ln(x + 1) + 1); the
        mixture (the threshold) grows by ln of the answer's predictive probability, which is at most the
        larger of its two components' with every allowed answer of that share (and the unknown ones, which
        may count for it) already in. An unknown answer counts for the allocation's share, or any share."""
        n, kk = self.n, len(counts)
        spare = allowed[kk]
        rest = n - counts[i] + 1.0 + sum(allowed) - allowed[i]
        ln_other = math.log(rest) - math.log1p(-t)
        a, k = self._a, self.k
        largest, weighted = 0.0, 0.0
        for cat, c in enumerate(counts):
            grown = allowed[cat] + spare
            pred = max((a[cat] + c + grown) / (k + n + grown), (1.0 + c + grown) / (kk + n + grown))
            # c = 0: x ln x grows by 0 = ln(1/e) + 1
            drop = math.log(pred / t) if cat == i else math.log(pred / max(c, _ONE_OVER_E)) + ln_other
            if drop > 0:
                largest = max(largest, drop)
                weighted += drop * rates[cat]
                if allocation == cat:
                    weighted += drop * rates[kk]
        return weighted + (largest * rates[kk] if allocation is None else 0.0)

    # ---- the full state (intervals, texts): built when a decision is reported ------------------------------
    def update(self, counts: Sequence[int] | Mapping[str, int], unknown: int = 0) -> SequentialState:
        """Set the cumulative counts (a mapping by name, or a sequence aligned with ``names`` or with the
        positive-weight names; weight-0 counts are ignored) and look."""
        self._set(self._aligned(counts), unknown)
        return self.current(self.look())

    def _aligned(self, counts: Sequence[int] | Mapping[str, int]) -> list[int]:
        if isinstance(counts, Mapping):
            return [int(counts.get(name, 0)) for name in self.positive_names]
        values = [int(c) for c in counts]
        if len(values) == len(self.names):
            return [c for c, keep in zip(values, self.positive.tolist(), strict=True) if keep]
        if len(values) == len(self.positive_names):
            return values
        positive = len(self.positive_names)
        raise ValueError(f"{len(values)} counts for {len(self.names)} outcomes ({positive} with weight > 0)")

    def current(self, code: int | None = None) -> SequentialState:
        """The state for the counts so far: decision, anytime p-value, intervals, and the reason in words."""
        if code is None:
            self.next_look = 0
            code = self.look()
        n = self.n
        intervals = self._intervals(_bracketed(self.counts, self.unknown)) if n else \
            tuple(Interval(0.0, 1.0) for _ in self.counts)
        log_bf = getattr(self, "_last_log_bf", 0.0)
        p_value = min(1.0, math.exp(-self.max_log_bf))
        band = f"±{self.delta * 100:g} pp"
        outcome: VerdictOutcome | None = None
        reason = "not decided yet"
        if code == FAIL:
            outside = [j for j, iv in enumerate(intervals) if iv.high < self._bottoms[j] or iv.low > self._tops[j]]
            texts = "; ".join(self._outside_text(j, intervals[j]) for j in outside)
            outcome, reason = "FAIL", f"after {n:,} answers the traffic split does not match the routing rules: {texts}"
        elif code == PASS:
            outcome, reason = "PASS", f"after {n:,} answers every share is within {band} of the declared split"
        elif code == BLOCKED:
            outcome, reason = "INCONCLUSIVE", "the errors alone make a PASS impossible"
        self.state = SequentialState(outcome is not None, outcome, p_value, reason, intervals, n, log_bf)
        return self.state

    def intervals_for(self, counts: Sequence[int] | Mapping[str, int], unknown: int = 0) -> tuple[Interval, ...]:
        """The anytime-valid interval of each share for other counts than the test's own (aligned as in
        :meth:`update`), unknown answers bracketed as in :meth:`current`; the test's state is untouched. With one
        share (its interval needs the test's own counts) or no answers: no information, [0, 1]."""
        aligned = self._aligned(counts)
        if len(self._p) == 1 or sum(aligned) + unknown == 0:
            return tuple(Interval(0.0, 1.0) for _ in aligned)
        return self._intervals(_bracketed(aligned, unknown))

    def _intervals(self, allocations: NDArray[np.float64]) -> tuple[Interval, ...]:
        if len(self._p) == 1:
            return (Interval(self._single_low(), 1.0),)
        low, high = share_intervals(allocations, self.probs, self.alpha, self.k, self.hedge)
        kk = len(self._p)
        if allocations.shape[0] == 1:
            lows, highs = low[0], high[0]
        else:
            lows = np.array([min(low[j, i] for j in range(kk) if j != i) for i in range(kk)])
            highs = high[np.arange(kk), np.arange(kk)]
        return tuple(Interval(float(lo), float(hi)) for lo, hi in zip(lows, highs, strict=True))

    def _single_low(self) -> float:
        x, u = self.counts[0], self.unknown
        if not u:
            return math.exp((_lbeta_half(x, 0) + self._ln_alpha) / x) if x else 0.0
        low, high = 0.0, x / self.n
        threshold = _lbeta_half(x, u) + self._ln_alpha
        for _ in range(60):
            mid = (low + high) / 2
            if x * math.log(mid) + u * math.log1p(-mid) > threshold:
                high = mid
            else:
                low = mid
        return high

    def _outside_text(self, j: int, interval: Interval) -> str:
        return (
            f"{self.positive_names[j]}: anytime-valid interval {interval.low:.1%}–{interval.high:.1%}, "
            f"declared {self.probs[j] * 100:.4g}% ± {self.delta * 100:.4g} pp"
        )


def _bracketed(counts: Sequence[int], unknown: int) -> NDArray[np.float64]:
    """The counts with every unknown answer given to share j, one row per j (one row when there are none)."""
    c = np.asarray(counts, dtype=np.float64)
    return c[None, :] if not unknown else c[None, :] + unknown * np.eye(len(c))


def budget(probs: Sequence[float], alpha: float = DEFAULT_ALPHA, tolerance: float | None = None) -> int:
    """Most requests to spend: 1.7 x the fixed-N requests to confirm the split (P(PASS | right) ~ 0.99).

    Sized as if each share's bound were at alpha / K for K >= 3: the confidence sequence covers all shares at
    once, so it does not gain what the fixed-N PASS gains from needing no Bonferroni."""
    positive = [p for p in probs if p > 0]
    if len(positive) < 2:
        return MAX_BUDGET if not positive else 100
    delta, _ = resolve_tolerance(positive, tolerance)
    fixed = max(requests_to_confirm(p, delta, alpha / comparisons(len(positive))) for p in positive)
    return min(MAX_BUDGET, math.ceil(BUDGET_FACTOR * fixed))


def decide_sequential(
    test: SequentialTest,
    assignment: Assignment,
    expectation: Expectation,
    *,
    grace: int = 0,
    budget: int | None = None,
    batches: Sequence[Mapping[str, int]] | None = None,
    connection_p: float | None = None,
    connection_counts: Sequence[Sequence[int]] | None = None,
    seed: int = DEFAULT_SEED,
) -> Verdict:
    """The verdict of the sequential test on ``assignment``'s counts (``test`` built on ``expectation``).

    Called at the stopping look with the counts of that look: the decision made there is the verdict.
    ``connection_p`` is the anytime-valid p-value of the per-connection check (``ConnectionCheck``) and
    ``connection_counts`` its counts per connection and share.
    """
    hard = hard_check(assignment, expectation, grace)
    cats = categories(assignment, expectation)
    state = test.update(dict(zip(cats.names, cats.counts, strict=True)), unknown=cats.unknown) if cats.total else None
    shares = _shares(cats, state.intervals if state is not None else None)
    checks = independence(assignment, cats, batches=batches, seed=seed, connection_p=connection_p,
                          connection_counts=connection_counts, delta=test.delta, alpha=test.alpha)
    end = conclude(_decision(test, state, shares, cats, assignment, budget), hard=hard, checks=checks, cats=cats,
                   assignment=assignment, notes=test.notes,
                   unserved=unserved_reasons(cats, assignment, test.alpha, test.delta,
                                             bands_for=lambda served: _bands(test, served)))
    extra = {"k": test.k, "hedge": test.hedge, "max_log_bf": test.max_log_bf,
             **common_extra(hard, cats, checks, assignment)}
    return Verdict(
        end.outcome,
        TEST_NAME,
        state.log_bf if state else None,
        None,
        state.p_value if state else None,
        test.alpha,
        test.delta,
        assignment.total,
        requests_needed=end.needed,
        reasons=tuple(end.reasons),
        shares=shares,
        extra=extra,
        independence=checks,
    )


def _decision(
    test: SequentialTest,
    state: SequentialState | None,
    shares: Sequence[ShareEstimate],
    cats: Categories,
    assignment: Assignment,
    budget: int | None,
) -> Conclusion:
    if state is not None and state.outcome in ("PASS", "FAIL"):
        return Conclusion(state.outcome, [f"{state.reason[0].upper()}{state.reason[1:]} (exact match: "
                                          f"{format_p(state.p_value)})."])
    if state is not None and state.outcome == "INCONCLUSIVE":
        return Conclusion("INCONCLUSIVE", [errors_first_reason(cats, test.delta)])
    bands = [Band(share, test.delta) for share in shares]
    needed = requests_to_decide(bands, test.alpha, test.delta, cats.total) if cats.total else None
    spent = budget is not None and assignment.total >= budget
    why = f"the budget of {budget:,} requests ran out" if spent else "the run ended"
    return Conclusion("INCONCLUSIVE", [f"{why.capitalize()} before the split was clearly inside or outside "
                                       f"±{test.delta * 100:g} pp."], needed)


def _shares(cats: Categories, intervals: Sequence[Interval] | None) -> tuple[ShareEstimate, ...]:
    identified = cats.identified
    intervals = intervals or [Interval(0.0, 1.0)] * len(cats.names)
    return tuple(
        ShareEstimate(name, p, x / identified if identified else 0.0, x, interval.low, interval.high)
        for name, p, x, interval in zip(cats.names, cats.probs, cats.counts, intervals, strict=True)
    )


def _bands(test: SequentialTest, cats: Categories) -> tuple[Band, ...]:
    """``cats``' shares against the band with the test's anytime-valid intervals (its state untouched)."""
    return tuple(Band(share, test.delta) for share in _shares(cats, test.intervals_for(cats.counts, cats.unknown)))


class ConnectionCheck:
    """Anytime-valid check that answers do not depend on the connection they came on.

    log E = sum over connections of log DirMult(counts | Jeffreys) - max over a common split of the log
    likelihood. With the true common split in the denominator the ratio is a product of martingales; the
    maximum likelihood only lowers it, so P(ever E >= 1/alpha) <= alpha (universal inference, Wasserman et al.
    2020). The connections' term is kept up to date with one logarithm per answer; the common split's in O(K)
    whenever ``check`` is called (a subset of answers keeps Ville's bound).
    A split made per connection (an L4 balancer) makes it grow fast once each connection has carried a few
    answers.
    """

    PRIOR = 0.5

    def __init__(self, categories: int, alpha: float = DEFAULT_ALPHA) -> None:
        self.k = categories
        self.rows: dict[int, list[int]] = {}
        self.totals = [0] * categories
        self.n = 0
        self.max_log_e = 0.0
        self._rows_log_m = 0.0
        self._row_prior = categories * self.PRIOR
        self._fire_at = math.log(1.0 / alpha)

    def add(self, connection: int, category: int) -> None:
        """Count one answer of share ``category`` that came on ``connection`` (on every answer: kept lean)."""
        row = self.rows.get(connection)
        if row is None:
            row = self.rows[connection] = [0] * (self.k + 1)  # the last cell: the row's total
        x, total = row[category], row[-1]
        row[category] = x + 1
        row[-1] = total + 1
        self.totals[category] += 1
        self.n += 1
        self._rows_log_m += _log((self.PRIOR + x) / (self._row_prior + total))

    def check(self) -> bool:
        """True once the answers surely (at the check's alpha) depend on the connection."""
        pooled = sum(_xlogx(x) for x in self.totals) - _xlogx(self.n)
        self.max_log_e = max(self.max_log_e, self._rows_log_m - pooled)
        return self.max_log_e >= self._fire_at

    @property
    def p_value(self) -> float:
        """Anytime-valid p-value: 1 / the largest e-value seen at a check."""
        return min(1.0, math.exp(-self.max_log_e))

    def table(self) -> list[list[int]]:
        return [row[:-1] for row in self.rows.values()]
