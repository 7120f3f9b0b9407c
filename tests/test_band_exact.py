"""The fixed-N band decision's error rates at the band edges, by exact enumeration (no simulation, no seed).

For two shares with counts (N - x, x) the decision depends on x only through exact (Clopper-Pearson) bounds,
which rise with x, so the PASS set is an interval [a, b] of x and the FAIL set is [0, c] U [d, N]. The
thresholds come from binomial quantiles (the definition of the exact bounds); the implementation
(``stats.band_outcomes``) is asked at both sides of every threshold, and for small N at every x, so a
disagreement fails the test. Then P(PASS) and P(FAIL) under a true share on the band edge are sums of
binomial probabilities, exact up to floating point.

A share on the edge (p0 +- delta) makes a PASS wrong (it is not inside the band) and a FAIL wrong (it is
not outside): both must stay <= alpha for every N. N runs over 100..1,000 one by one, then every 20th to
50,000.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from respy.check.stats import band_outcomes, default_tolerance

ALPHA = 0.01
SIZES = np.concatenate([np.arange(100, 1_001), np.arange(1_020, 50_001, 20)])
SPLITS = {"99/1": 0.01, "90/10": 0.10, "50/50": 0.50}


def thresholds(n: NDArray[np.int64], p: float, delta: float) -> dict[str, NDArray[np.int64]]:
    """For the minority count x: PASS iff a <= x <= b; FAIL iff x <= c or x >= d (alpha one-sided, K = 2)."""
    bottom, top = p - delta, p + delta
    # exact lower bound >= bottom  <=>  P(X >= x | bottom) <= alpha ; upper bound <= top  <=>  P(X <= x | top) <= alpha
    a = stats.binom.isf(ALPHA, n, bottom).astype(np.int64) + 1
    b = stats.binom.ppf(ALPHA, n, top).astype(np.int64)
    b = np.where(stats.binom.cdf(b, n, top) <= ALPHA, b, b - 1)
    # FAIL: upper bound < bottom  <=>  P(X <= x | bottom) < alpha ; lower bound > top  <=>  P(X >= x | top) < alpha
    c = stats.binom.ppf(ALPHA, n, bottom).astype(np.int64)
    c = np.where(stats.binom.cdf(c, n, bottom) < ALPHA, c, c - 1)
    d = stats.binom.isf(ALPHA, n, top).astype(np.int64) + 1
    return {"a": a, "b": b, "c": c, "d": d}


def outcome(n: NDArray[np.int64], x: NDArray[np.int64], p: float, delta: float) -> NDArray[np.int64]:
    """The implementation's decision for counts (N - x, x) against (1 - p, p) +- delta."""
    x = np.clip(x, 0, n)
    counts = np.stack([n - x, x], axis=-1)
    return band_outcomes(counts, np.zeros_like(n), [1 - p, p], delta, ALPHA)


def test_the_thresholds_are_the_implementation_s_decisions_at_every_x_for_small_n() -> None:
    for name, p in SPLITS.items():
        delta = default_tolerance([1 - p, p])
        for n in range(100, 160):
            x = np.arange(n + 1)
            decided = outcome(np.full_like(x, n), x, p, delta)
            t = {k: int(v[0]) for k, v in thresholds(np.array([n]), p, delta).items()}
            expected = np.where((x <= t["c"]) | (x >= t["d"]), -1, np.where((x >= t["a"]) & (x <= t["b"]), 1, 0))
            assert np.array_equal(decided, expected), (name, n)


@pytest.mark.parametrize("name", list(SPLITS))
def test_wrong_pass_and_wrong_fail_stay_below_alpha_at_every_band_edge(name: str) -> None:
    p = SPLITS[name]
    delta = default_tolerance([1 - p, p])
    t = thresholds(SIZES, p, delta)
    # the implementation agrees on both sides of every threshold, for every N
    assert np.all(outcome(SIZES, t["a"], p, delta)[t["a"] <= t["b"]] == 1)
    assert np.all(outcome(SIZES, t["a"] - 1, p, delta) != 1)
    assert np.all(outcome(SIZES, t["b"], p, delta)[t["a"] <= t["b"]] == 1)
    assert np.all(outcome(SIZES, t["b"] + 1, p, delta) != 1)
    assert np.all(outcome(SIZES, t["c"], p, delta)[t["c"] >= 0] == -1)
    assert np.all(outcome(SIZES, t["c"] + 1, p, delta) != -1)
    assert np.all(outcome(SIZES, t["d"], p, delta)[t["d"] <= SIZES] == -1)
    assert np.all(outcome(SIZES, t["d"] - 1, p, delta) != -1)
    worst_pass = worst_fail = 0.0
    for truth in (p - delta, p + delta):
        if truth <= 0:
            continue
        cdf, sf = stats.binom.cdf, stats.binom.sf  # 0 and 1 below the support: no nan at x = -1
        passes = np.where(t["a"] <= t["b"], cdf(t["b"], SIZES, truth) - cdf(t["a"] - 1, SIZES, truth), 0.0)
        fails = cdf(t["c"], SIZES, truth) + sf(t["d"] - 1, SIZES, truth)
        worst_pass, worst_fail = max(worst_pass, float(passes.max())), max(worst_fail, float(fails.max()))
    assert worst_pass <= ALPHA, worst_pass
    assert worst_fail <= ALPHA, worst_fail
    assert worst_fail > ALPHA / 2  # the enumeration reaches the edge: the bound is used, not idle
    print(f"{name}: worst wrong PASS {worst_pass:.4%}, worst wrong FAIL {worst_fail:.4%} over N = 100..50,000")


def test_the_same_enumeration_catches_wilson_bounds_exceeding_alpha() -> None:
    """What respy used before: one-sided Wilson bounds. Enumerated the same way for 99/1 (N = 100..2,000), a
    wrong FAIL at the upper edge exceeds alpha several times over: the enumeration tells a bad bound from a good one."""
    p, delta = 0.01, 0.005
    z = stats.norm.isf(ALPHA)
    n = np.arange(100, 2_001)[:, None]
    x = np.arange(0, 300)[None, :]
    center = (x + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * np.sqrt(np.maximum(x * (n - x) / n, 0) + z * z / 4)
    low = np.where(x <= 0, 0.0, center - half)
    fails = (low > p + delta) & (x <= n)
    wrong_fail = (stats.binom.pmf(x, n, p + delta) * fails).sum(axis=1)
    assert wrong_fail.max() > 2 * ALPHA, wrong_fail.max()
