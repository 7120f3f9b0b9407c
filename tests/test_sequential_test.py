"""The anytime-valid sequential test: unit behaviour and calibration (seeded, vectorised simulations).

Simulations check every 10 requests: cumulative multinomial counts on the grid, Bayes factors and band
decisions computed for every grid point at once.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from respy.check.assign import Assignment
from respy.check.sequential import (
    BLOCKED,
    FAIL,
    PASS,
    TEST_NAME,
    SequentialTest,
    budget,
    decide_sequential,
    decisions,
    log_bayes_factor,
    share_intervals,
)
from respy.rules.expectation import Expectation

ALPHA = 0.01
P0 = np.array([0.9, 0.1])
STEP = 10


def cumulative(true: list[float] | np.ndarray, runs: int, steps: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multinomial(STEP, true, size=(runs, steps)).cumsum(axis=1)


def first_decision(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per run: the outcome (1 PASS, -1 FAIL, 0 none) and the request count at the first decision."""
    decided = grid != 0
    index = np.where(decided.any(axis=1), decided.argmax(axis=1), -1)
    outcome = np.where(index >= 0, grid[np.arange(len(grid)), index], 0)
    return outcome, (index + 1) * STEP


def test_a_correct_split_is_rarely_rejected_however_often_one_looks() -> None:
    """True = declared 90/10, checked every 10 requests up to 10,000, 2,000 runs: the Bayes factor ever
    reaching 1/alpha (the exact-match rejection), and a FAIL decision, are each allowed in <= 1.5 alpha."""
    counts = cumulative(P0, 2_000, 1_000, seed=21)
    rejected = (log_bayes_factor(counts, P0) >= math.log(1 / ALPHA)).any(axis=1).mean()
    assert rejected <= 1.5 * ALPHA, rejected
    outcome, _ = first_decision(decisions(counts, P0, 0.05, ALPHA))
    assert (outcome == FAIL).mean() <= 1.5 * ALPHA


def test_a_50_50_split_declared_90_10_fails_fast() -> None:
    """Median stopping time <= 60 requests (measured: 30), every run FAILs within 1,000."""
    outcome, stopped = first_decision(decisions(cumulative([0.5, 0.5], 2_000, 100, seed=22), P0, 0.05, ALPHA))
    assert (outcome == FAIL).all()
    assert np.median(stopped) <= 60, np.median(stopped)


def test_a_correct_split_passes_within_the_budget() -> None:
    """True 90/10 at ±5 pp: PASS within budget (1,473 requests) in >= 98% of 2,000 runs."""
    limit = budget([0.9, 0.1], ALPHA, 0.05)
    assert limit == 1_473
    outcome, stopped = first_decision(decisions(cumulative(P0, 2_000, limit // STEP, seed=23), P0, 0.05, ALPHA))
    assert (outcome == PASS).mean() >= 0.98, (outcome == PASS).mean()
    assert np.median(stopped[outcome == PASS]) < 866  # quicker than the fixed-N design


def test_intervals_cover_the_true_shares_at_every_look() -> None:
    """The projected confidence sequence holds for all n at once: coverage failures <= alpha (1,000 runs)."""
    counts = cumulative([0.7, 0.2, 0.1], 1_000, 200, seed=24)
    low, high = share_intervals(counts, [0.5, 0.3, 0.2], ALPHA)
    truth = np.array([0.7, 0.2, 0.1])
    missed = ((low > truth) | (high < truth)).any(axis=(1, 2)).mean()
    assert missed <= ALPHA, missed


def test_band_decisions_agree_with_the_intervals() -> None:
    counts = cumulative([0.8, 0.2], 200, 100, seed=25)
    low, high = share_intervals(counts, P0, ALPHA)
    inside = np.all((low >= P0 - 0.05) & (high <= P0 + 0.05), axis=-1)
    outside = np.any((low > P0 + 0.05) | (high < P0 - 0.05), axis=-1)
    grid = decisions(counts, P0, 0.05, ALPHA)
    assert np.array_equal(grid == PASS, inside & ~outside)
    assert np.array_equal(grid == FAIL, outside)


def test_update_keeps_the_running_maximum_bayes_factor() -> None:
    test = SequentialTest({"single": 0.9, "multiple": 0.1}, alpha=ALPHA)
    first = test.update([14, 16])
    assert first.decided and first.outcome == "FAIL" and first.p_value < ALPHA
    later = test.update([900, 100 + 16])
    assert later.p_value == first.p_value  # min over all looks: the p-value never rises
    assert len(later.intervals) == 2 and later.intervals[1].low < 0.116 < later.intervals[1].high


def test_update_passes_a_correct_split_and_reports_intervals() -> None:
    test = SequentialTest([0.9, 0.1], alpha=ALPHA, tolerance=0.05)
    state = test.update([1350, 150])
    assert state.decided and state.outcome == "PASS" and state.requests == 1500
    for interval, p in zip(state.intervals, (0.9, 0.1), strict=True):
        assert p - 0.05 <= interval.low < p < interval.high <= p + 0.05


def test_the_test_itself_ignores_weight_zero_outcomes_the_hard_check_judges_them() -> None:
    """Leaks are the hard check's business (it honours --grace); the test sees only positive-weight shares."""
    state = SequentialTest({"v1": 0.9, "v2": 0.1, "v0": 0.0}).update({"v1": 1350, "v2": 150, "v0": 1})
    assert state.outcome == "PASS" and len(state.intervals) == 2
    aligned_with_all = SequentialTest({"v1": 0.9, "v2": 0.1, "v0": 0.0}).update([1350, 150, 1])
    assert aligned_with_all.outcome == "PASS"


@pytest.mark.parametrize(("probs", "true"), [([0.9, 0.1], [0.5, 0.5]), ([0.9, 0.1], [0.9, 0.1]),
                                             ([0.5, 0.3, 0.2], [0.5, 0.3, 0.2]), ([0.5, 0.3, 0.2], [0.4, 0.4, 0.2])])
def test_the_incremental_look_decides_as_the_vectorised_test_at_every_answer(
    probs: list[float], true: list[float]
) -> None:
    """add() + look() after every answer gives, answer by answer, the decisions of ``decisions`` (no unknowns)."""
    rng = np.random.default_rng(27)
    categories = rng.choice(len(probs), size=600, p=true)
    test = SequentialTest(probs, alpha=ALPHA)
    looks = []
    for category in categories.tolist():
        test.add(category)
        looks.append(test.look())
    counts = np.cumsum(np.eye(len(probs), dtype=int)[categories], axis=0)
    assert looks == decisions(counts, probs, test.delta, ALPHA).tolist()


@pytest.mark.parametrize(("probs", "errors"), [([1.0], 0.03), ([0.6, 0.3, 0.1], 0.03), ([0.9, 0.1], 0.08)])
def test_the_incremental_look_with_unknowns_matches_a_full_look_at_every_answer(probs: list[float],
                                                                                errors: float) -> None:
    """The skipped looks (the ones that provably cannot decide) never hide a decision: a fresh test, which
    looks in full, agrees at every answer; with errors, one destination, and errors that block a PASS."""
    rng = np.random.default_rng(28)
    test = SequentialTest(probs, alpha=ALPHA)
    outcomes = {1: "PASS", -1: "FAIL", 0: None, 2: "INCONCLUSIVE"}
    for _ in range(1_500):
        test.add(None if rng.random() < errors else int(rng.choice(len(probs), p=probs)))
        incremental = test.look()
        again = SequentialTest(probs, alpha=ALPHA).update(test.counts, unknown=test.unknown)
        assert outcomes[incremental] == again.outcome, (test.n, test.counts, test.unknown)


def test_errors_that_forbid_a_pass_stop_the_test() -> None:
    """90/10 ± 5 pp with 10 % errors: a PASS needs fewer than 5 %; the anytime bound says so early."""
    test = SequentialTest([0.9, 0.1], alpha=ALPHA)
    rng = np.random.default_rng(29)
    for _ in range(2_000):
        test.add(None if rng.random() < 0.10 else int(rng.random() < 0.1))
        if test.look() == BLOCKED:
            break
    assert test.n < 1_000, test.n
    assert test.current().outcome == "INCONCLUSIVE"


def test_unknown_answers_widen_the_intervals() -> None:
    plain = SequentialTest([0.9, 0.1]).update([900, 100])
    bracketed = SequentialTest([0.9, 0.1]).update([900, 100], unknown=60)
    for narrow, wide in zip(plain.intervals, bracketed.intervals, strict=True):
        assert wide.high - wide.low > narrow.high - narrow.low


def test_budget_is_capped() -> None:
    assert budget([0.99, 0.01]) == math.ceil(1.7 * 9_517)
    assert budget([0.999, 0.001], tolerance=0.0005) == 100_000


def test_decide_sequential_gives_a_verdict() -> None:
    expectation = Expectation.from_weights({"single": 90, "multiple": 10})
    test = SequentialTest(expectation.probabilities, alpha=ALPHA)
    passed = decide_sequential(test, Assignment({"single": 1350, "multiple": 150}, {}, total=1500), expectation)
    assert passed.outcome == "PASS" and passed.test == TEST_NAME
    assert passed.p_value is not None and 0 <= passed.p_value <= 1
    test = SequentialTest(expectation.probabilities, alpha=ALPHA)
    ran_out = decide_sequential(
        test, Assignment({"single": 130, "multiple": 20}, {}, total=150), expectation, budget=150
    )
    assert ran_out.outcome == "INCONCLUSIVE"
    assert "budget of 150 requests ran out" in ran_out.reasons[-1]
    assert ran_out.requests_needed is not None and ran_out.requests_needed > 150


def test_decide_sequential_applies_the_hard_checks() -> None:
    expectation = Expectation.from_weights({"single": 90, "multiple": 10})
    test = SequentialTest(expectation.probabilities)
    assignment = Assignment({"single": 1350, "multiple": 150}, {}, undeclared={"triple": 2}, total=1502)
    verdict = decide_sequential(test, assignment, expectation)
    assert verdict.outcome == "FAIL" and "'triple'" in verdict.reasons[0]


@pytest.mark.parametrize("probs", [[0.5, 0.5], [0.9, 0.1], [0.6, 0.3, 0.1]])
def test_p_values_stay_probabilities(probs: list[float]) -> None:
    test = SequentialTest(probs)
    rng = np.random.default_rng(26)
    counts = np.zeros(len(probs), dtype=int)
    for _ in range(50):
        counts += rng.multinomial(10, rng.dirichlet(np.ones(len(probs))))
        assert 0.0 <= test.update(counts.tolist()).p_value <= 1.0
