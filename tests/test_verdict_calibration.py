"""Calibration of the fixed-N verdict, simulated with seeded numpy Generators (no network).

Each test states the false-decision rate it allows. alpha = 0.01 throughout; with R runs the observed rate
of an event of true probability alpha has a standard error of about sqrt(alpha / R) (0.22 pp for 2,000).
"""

from __future__ import annotations

import numpy as np

from respy.check.assign import Assignment
from respy.check.verdict import Verdict, decide
from respy.rules.expectation import Expectation

ALPHA = 0.01
RUNS = 2_000


def simulate(
    weights: dict[str, float], true: list[float], n: int, runs: int, seed: int, **options: object
) -> list[Verdict]:
    expectation = Expectation.from_weights(weights)
    names = [o.name for o in expectation.outcomes]
    draws = np.random.default_rng(seed).multinomial(n, true, size=runs)
    verdicts = []
    for row in draws:
        assignment = Assignment(counts=dict(zip(names, row.tolist(), strict=True)), claimed={}, total=n)
        verdicts.append(decide(assignment, expectation, alpha=ALPHA, **options))  # type: ignore[arg-type]
    return verdicts


def rate(verdicts: list[Verdict], outcome: str) -> float:
    return sum(v.outcome == outcome for v in verdicts) / len(verdicts)


def test_a_correct_90_10_split_rarely_fails_at_1000_requests() -> None:
    """True = declared 90/10, N = 1000: FAIL allowed in <= 2 alpha of 2,000 runs, tolerance and strict mode."""
    tolerant = simulate({"single": 90, "multiple": 10}, [0.9, 0.1], 1000, RUNS, seed=1)
    strict = simulate({"single": 90, "multiple": 10}, [0.9, 0.1], 1000, RUNS, seed=2, strict=True)
    assert all(v.extra["p_method"] == "asymptotic" for v in strict)
    assert rate(tolerant, "FAIL") <= 2 * ALPHA, rate(tolerant, "FAIL")
    assert rate(strict, "FAIL") <= 2 * ALPHA, rate(strict, "FAIL")
    assert rate(tolerant, "PASS") >= 0.97  # 1000 requests confirm 90/10 within ±5 pp


def test_a_correct_99_1_split_rarely_fails_at_100_requests_thanks_to_monte_carlo() -> None:
    """True = declared 99/1, N = 100 (canary expects 1 answer): the asymptotic p-value would reject ~1.8%;
    the Monte Carlo p-value must be used and FAIL stay <= 2 alpha of 2,000 runs."""
    strict = simulate({"stable": 99, "canary": 1}, [0.99, 0.01], 100, RUNS, seed=3, strict=True)
    assert all(v.extra["p_method"] == "monte-carlo" for v in strict)
    assert rate(strict, "FAIL") <= 2 * ALPHA, rate(strict, "FAIL")
    tolerant = simulate({"stable": 99, "canary": 1}, [0.99, 0.01], 100, RUNS, seed=4)
    assert rate(tolerant, "FAIL") <= 2 * ALPHA, rate(tolerant, "FAIL")


def test_a_share_at_the_tolerance_edge_rarely_passes() -> None:
    """True canary share = declared + delta (15% for 10% ± 5 pp): PASS allowed in <= 2 alpha of 2,000 runs.
    N = 20,000 makes the intervals narrow enough for the edge to matter."""
    verdicts = simulate({"single": 90, "multiple": 10}, [0.85, 0.15], 20_000, RUNS, seed=5)
    assert rate(verdicts, "PASS") <= 2 * ALPHA, rate(verdicts, "PASS")


def test_three_shares_at_the_tolerance_edges_rarely_pass() -> None:
    """50/30/20 declared, true 45/35/20 (two shares at the edge, Bonferroni over 3): PASS <= 2 alpha."""
    verdicts = simulate({"a": 50, "b": 30, "c": 20}, [0.45, 0.35, 0.20], 20_000, RUNS, seed=6)
    assert rate(verdicts, "PASS") <= 2 * ALPHA, rate(verdicts, "PASS")


def test_a_50_50_split_declared_90_10_fails_at_100_requests() -> None:
    """Power: FAIL in >= 99% of 2,000 runs."""
    verdicts = simulate({"single": 90, "multiple": 10}, [0.5, 0.5], 100, RUNS, seed=7)
    assert rate(verdicts, "FAIL") >= 0.99, rate(verdicts, "FAIL")
