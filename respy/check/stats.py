"""Statistical primitives for the verdict: chi-square with an exact-enough p-value, exact (Clopper-Pearson) bounds,
sample sizes, and a check that answers are independent. Figures and choices: shared/notes/statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

DEFAULT_SEED = 20_190_611
MONTE_CARLO_DRAWS = 50_000
DISPERSION_DRAWS = 2_000
DISPERSION_ALPHA = 0.001  # the time-drift batch check: at 0.01 it false-alarmed in several live runs per suite
MIN_BATCHES = 5
DEFAULT_BETA = 0.01
MAX_TOLERANCE = 0.05
# Monte Carlo ties: a simulated statistic equal to the observed one up to rounding counts as "as extreme".
_TIE = 1.0 - 64 * np.finfo(float).eps


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    df: int
    p_value: float
    method: str  # "asymptotic", "monte-carlo" or "trivial" (a single category)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class DispersionResult:
    statistic: float
    df: int
    p_value: float
    batches: int
    method: str

    @property
    def fired(self) -> bool:
        return self.p_value < DISPERSION_ALPHA


def _pearson(observed: NDArray[np.float64], expected: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.sum((observed - expected) ** 2 / expected, axis=-1)


def min_expected(alpha: float) -> float:
    """Smallest expected count for which the asymptotic chi-square p-value is trusted."""
    return 10.0 if alpha <= 0.01 else 5.0


@lru_cache(maxsize=32)
def _null_statistics(n: int, probs: tuple[float, ...], draws: int, seed: int) -> NDArray[np.float64]:
    """Sorted Pearson statistics of ``draws`` multinomial samples under H0 (cached: they depend only on these)."""
    p = np.asarray(probs)
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(n, p, size=draws).astype(np.float64)
    return np.sort(_pearson(samples, n * p))


def monte_carlo_p(statistic: float, n: int, probs: Sequence[float], draws: int, seed: int) -> float:
    """p = (1 + #{T_sim >= T_obs}) / (B + 1), with T_sim drawn under the multinomial null."""
    null = _null_statistics(n, tuple(float(p) for p in probs), draws, seed)
    as_extreme = draws - int(np.searchsorted(null, statistic * _TIE, side="left"))
    return (1 + as_extreme) / (draws + 1)


def chi_square(
    counts: ArrayLike,
    probs: ArrayLike,
    *,
    alpha: float,
    rng_seed: int = DEFAULT_SEED,
    draws: int = MONTE_CARLO_DRAWS,
) -> ChiSquareResult:
    """Pearson goodness of fit of ``counts`` to ``probs`` over the categories with a positive probability.

    The asymptotic p-value is used when every expected count is >= 5 (>= 10 when alpha <= 0.01); otherwise
    the p-value of the same statistic by seeded Monte Carlo. Counts may be fractional (bracketed unknowns).
    Categories with probability 0 must have been checked (and removed) by the caller.
    """
    obs = np.asarray(counts, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if np.any(obs[p <= 0] > 0):
        raise ValueError("answers in a category of probability 0: that is a hard failure, not a chi-square")
    obs, p = obs[p > 0], p[p > 0] / p[p > 0].sum()
    n = float(obs.sum())
    if len(p) < 2 or n <= 0:
        return ChiSquareResult(statistic=0.0, df=0, p_value=1.0, method="trivial")
    expected = n * p
    df = len(p) - 1
    if expected.min() >= min_expected(alpha):
        result = stats.chisquare(obs, f_exp=expected)
        return ChiSquareResult(float(result.statistic), df, float(result.pvalue), "asymptotic")
    statistic = float(_pearson(obs, expected))
    # Fractional totals come from bracketing; the null is drawn at the nearest whole number of requests.
    p_value = monte_carlo_p(statistic, round(n), p.tolist(), draws, rng_seed)
    return ChiSquareResult(statistic, df, p_value, "monte-carlo")


@lru_cache(maxsize=256)
def _z(q: float) -> float:
    return float(special.ndtri(q))


def comparisons(k: int) -> int:
    """Bonferroni multiplicity of the FAIL side for K shares: K when K >= 3; for two shares one determines the
    other. The PASS side needs none: PASS requires every share inside its band (an intersection-union test,
    Berger 1982), so each share's one-sided bounds at alpha already keep a wrong PASS <= alpha."""
    return k if k >= 3 else 1


def interval_level(alpha: float) -> float:
    """Level of each share's displayed (and PASS-deciding) interval: 1 - 2 alpha, whatever K (see comparisons)."""
    return 1.0 - 2.0 * alpha


def clopper_pearson_bounds(
    count: ArrayLike, n: ArrayLike, side_alpha: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact (Clopper-Pearson) one-sided bounds, each missing the true share with chance <= ``side_alpha``
    for every share and every n (vectorised). Wilson bounds are anti-conservative for small shares: the
    band's wrong PASS reached 1.43 % and wrong FAIL 3.24 % at alpha = 1 % (issue 17); these never exceed it."""
    x = np.asarray(count, dtype=np.float64)
    size = np.asarray(n, dtype=np.float64)
    x, size = np.broadcast_arrays(x, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, special.betaincinv(np.maximum(x, 1e-300), size - x + 1.0, side_alpha), 0.0)
        high = np.where(x < size, special.betaincinv(x + 1.0, np.maximum(size - x, 1e-300), 1.0 - side_alpha), 1.0)
    empty = size <= 0
    return np.where(empty, 0.0, low), np.where(empty, 1.0, high)


def clopper_pearson(count: float, n: float, level: float) -> Interval:
    """The two-sided exact interval at ``level`` (each side (1 - level) / 2)."""
    low, high = clopper_pearson_bounds(count, n, (1.0 - level) / 2.0)
    return Interval(float(low), float(high))


PASS_CODE, UNDECIDED_CODE, FAIL_CODE = 1, 0, -1


def band_outcomes(
    counts: ArrayLike, unknown: ArrayLike, probs: Sequence[float], delta: float, alpha: float
) -> NDArray[np.int64]:
    """The fixed-N equivalence decision for stacks of count vectors (last axis = shares): 1 PASS, -1 FAIL, 0.

    A share's lower bounds count none of the ``unknown`` answers as its own, its upper bounds all of them.
    PASS: every share's one-sided bounds at alpha lie inside p0 +- delta. FAIL: some share's one-sided bound
    at alpha / m (m = comparisons(K)) lies wholly outside. Both error rates are <= alpha at every band edge
    (tests/test_band_exact.py enumerates them exactly).
    """
    x = np.asarray(counts, dtype=np.float64)
    u = np.asarray(unknown, dtype=np.float64)[..., None]
    p = np.asarray(probs, dtype=np.float64)
    n = x.sum(axis=-1, keepdims=True) + u
    pass_low, _ = clopper_pearson_bounds(x, n, alpha)
    _, pass_high = clopper_pearson_bounds(x + u, n, alpha)
    side = alpha / comparisons(p.shape[-1])
    fail_low, _ = clopper_pearson_bounds(x, n, side)
    _, fail_high = clopper_pearson_bounds(x + u, n, side)
    inside = np.all((pass_low >= p - delta) & (pass_high <= p + delta), axis=-1)
    outside = np.any((fail_low > p + delta) | (fail_high < p - delta), axis=-1)
    return np.where(outside, FAIL_CODE, np.where(inside, PASS_CODE, UNDECIDED_CODE)).astype(np.int64)


def unknown_limit(probs: Sequence[float], delta: float) -> float:
    """The largest share of unattributed answers (errors) with which a PASS is still possible at all.

    PASS needs every share's bracket [x_j / N, (x_j + u) / N] inside [p_j - delta, p_j + delta] (clipped to
    [0, 1]) with sum_j x_j = N - u: feasible exactly when e = u / N is at most each band's width, at most
    1 - sum of the lower edges, and at most (sum of the upper edges - 1) / (K - 1).
    """
    p = [q for q in probs if q > 0]
    lows = [max(0.0, q - delta) for q in p]
    highs = [min(1.0, q + delta) for q in p]
    limits = [h - lo for h, lo in zip(highs, lows, strict=True)] + [1.0 - sum(lows)]
    if len(p) > 1:
        limits.append((sum(highs) - 1.0) / (len(p) - 1))
    return max(0.0, min(limits))


def error_ceiling(probs: Sequence[float], delta: float) -> float:
    """The error share above which respy says "fix the errors first": half of ``unknown_limit``. Beyond it the
    errors eat more than half the band, and the intervals must shrink below half the tolerance: more than
    4 x the requests a clean split needs, past the sequential budget (1.7 x). For two shares this is delta."""
    return unknown_limit(probs, delta) / 2.0


def confirm_factor(alpha: float, beta: float = DEFAULT_BETA) -> float:
    """z_{1-alpha} + z_{1-beta/2}: PASS needs each share's one-sided bounds at alpha (no Bonferroni)."""
    return _z(1.0 - alpha) + _z(1.0 - beta / 2.0)


def requests_to_confirm(p: float, delta: float, alpha: float, beta: float = DEFAULT_BETA) -> int:
    """Requests needed for a share truly equal to ``p`` to PASS within ±``delta`` with chance 1 - beta."""
    return math.ceil(p * (1.0 - p) * confirm_factor(alpha, beta) ** 2 / delta**2)


def smallest_tolerance(n: int, p: float, alpha: float, beta: float = DEFAULT_BETA) -> float:
    """The narrowest tolerance that ``n`` requests confirm for a share truly equal to ``p`` (chance 1 - beta)."""
    if n <= 0:
        return math.inf
    return confirm_factor(alpha, beta) * math.sqrt(p * (1.0 - p) / n)


def default_tolerance(probs: Sequence[float]) -> float:
    """±5 pp, but never more than half the smallest declared share (±5 pp on a 1% canary means nothing)."""
    positive = [p for p in probs if p > 0]
    return min(MAX_TOLERANCE, min(positive) / 2.0) if positive else MAX_TOLERANCE


def max_tolerance(probs: Sequence[float]) -> float:
    positive = [p for p in probs if p > 0 and p < 1]
    return min(positive) / 2.0 if positive else 0.5


def _homogeneity(table: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson statistic of batches x categories against the pooled split; works on stacks of tables."""
    sizes = table.sum(axis=-1, keepdims=True)
    pooled = table.sum(axis=-2, keepdims=True) / table.sum(axis=(-2, -1), keepdims=True)
    expected = sizes * pooled
    terms = np.divide((table - expected) ** 2, expected, out=np.zeros_like(table), where=expected > 0)
    return terms.sum(axis=(-2, -1))


def dispersion_check(
    batches: ArrayLike | Sequence[Mapping[str, int]],
    categories: Sequence[str] | None = None,
    *,
    seed: int = DEFAULT_SEED,
    draws: int = DISPERSION_DRAWS,
) -> DispersionResult | None:
    """Are answers independent? A homogeneity chi-square of consecutive batches against the pooled split.

    If the split happens per connection, requests on one connection share one draw and batch counts vary
    far more than a multinomial allows. The pooled split (not the declared one) is the reference, so a
    wrong split does not pass for dependence. df = (B - 1)(K - 1); when expected cells are small the p-value
    is by seeded simulation of tables with the same margins (exact up to 1/draws; ~25 ms for 25 batches).
    Returns None with fewer than 5 usable batches.
    """
    table = _batch_table(batches, categories)
    table = table[table.sum(axis=1) > 0]
    table = table[:, table.sum(axis=0) > 0]
    n_batches, k = table.shape
    if n_batches < MIN_BATCHES or k < 2:
        return None
    statistic = float(_homogeneity(table))
    df = (n_batches - 1) * (k - 1)
    sizes = table.sum(axis=1)
    pooled = table.sum(axis=0) / table.sum()
    if (np.outer(sizes, pooled)).min() >= 5:
        return DispersionResult(statistic, df, float(stats.chi2.sf(statistic, df)), n_batches, "asymptotic")
    sims = _conditional_tables(sizes.astype(np.int64), table.sum(axis=0).astype(np.int64), draws, seed)
    null = _homogeneity(sims)
    p_value = (1 + int(np.count_nonzero(null >= statistic * _TIE))) / (draws + 1)
    return DispersionResult(statistic, df, p_value, n_batches, "monte-carlo")


def _conditional_tables(sizes: NDArray[np.int64], totals: NDArray[np.int64], draws: int, seed: int) -> NDArray:
    """Random batch x category tables with the observed margins (the exact conditional null, as if the
    answers had been shuffled across batches): batch by batch, category by category, hypergeometric draws."""
    rng = np.random.default_rng(seed)
    remaining = np.broadcast_to(totals, (draws, len(totals))).copy()
    tables = np.zeros((draws, len(sizes), len(totals)), dtype=np.int64)
    for b, size in enumerate(sizes):
        left = np.full(draws, size, dtype=np.int64)
        for j in range(len(totals) - 1):
            others = remaining[:, j + 1 :].sum(axis=1)
            tables[:, b, j] = rng.hypergeometric(remaining[:, j], others, left)
            left -= tables[:, b, j]
        tables[:, b, -1] = left
        remaining -= tables[:, b]
    return tables.astype(np.float64)


def _batch_table(batches: ArrayLike | Sequence[Mapping[str, int]], categories: Sequence[str] | None) -> NDArray:
    if isinstance(batches, Sequence) and batches and all(isinstance(b, Mapping) for b in batches):
        maps = [b for b in batches if isinstance(b, Mapping)]
        names = list(categories) if categories is not None else sorted({k for b in maps for k in b})
        rows = [[float(batch.get(name, 0)) for name in names] for batch in maps]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names))
    table = np.asarray(batches, dtype=np.float64)
    return table.reshape(0, 0) if table.size == 0 else table
