"""Statistical primitives: exact bounds, sample sizes, the chi-square p-value, the dispersion check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from respy.check.stats import (
    band_outcomes,
    chi_square,
    clopper_pearson,
    comparisons,
    default_tolerance,
    dispersion_check,
    error_ceiling,
    interval_level,
    requests_to_confirm,
    smallest_tolerance,
    unknown_limit,
)
from respy.tally import Batches


@pytest.mark.parametrize(("count", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (87, 1000), (999, 1000), (3, 7)])
@pytest.mark.parametrize("level", [0.9, 0.98, 0.995])
def test_clopper_pearson_matches_scipy(count: int, n: int, level: float) -> None:
    ours = clopper_pearson(count, n, level)
    theirs = stats.binomtest(count, n).proportion_ci(confidence_level=level, method="exact")
    assert ours.low == pytest.approx(theirs.low, abs=1e-12)
    assert ours.high == pytest.approx(theirs.high, abs=1e-12)


def test_clopper_pearson_with_no_data_says_nothing() -> None:
    assert (clopper_pearson(0, 0, 0.98).low, clopper_pearson(0, 0, 0.98).high) == (0.0, 1.0)


def test_bonferroni_only_on_the_fail_side_from_three_shares() -> None:
    assert [comparisons(k) for k in (1, 2, 3, 5)] == [1, 1, 3, 5]
    assert interval_level(0.01) == pytest.approx(0.98)  # PASS intervals: no Bonferroni whatever K


def test_unknown_limit_is_where_a_pass_stops_being_possible() -> None:
    assert unknown_limit([0.9, 0.1], 0.05) == pytest.approx(0.1)  # 2 delta
    assert unknown_limit([1 / 3] * 3, 0.05) == pytest.approx(0.075)  # (sum of upper edges - 1) / (K - 1)
    assert unknown_limit([1.0], 0.05) == pytest.approx(0.05)
    # Below the limit a PASS is possible: 86/6 identified and 8 % errors fit 90/10 ± 5 pp however they split
    assert band_outcomes(np.array([[86_000, 6_000]]), np.array([8_000]), [0.9, 0.1], 0.05, 0.01)[0] == 1
    assert error_ceiling([0.9, 0.1], 0.05) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("p", "delta", "expected"),
    [(0.1, 0.02, 5408), (0.5, 0.02, 15020), (0.01, 0.005, 9517), (0.1, 0.05, 866)],
)
def test_requests_to_confirm_matches_the_notes(p: float, delta: float, expected: int) -> None:
    # statistics.md: "90/10 ±2 pp: 5,408; 50/50 ±2 pp: 15,020; 99/1 ±0.5 pp: 9,517; 90/10 ±5 pp: about 866"
    assert abs(requests_to_confirm(p, delta, alpha=0.01) - expected) <= 1


def test_smallest_tolerance_matches_the_notes() -> None:
    assert smallest_tolerance(1000, 0.1, alpha=0.01) == pytest.approx(0.0465, abs=5e-5)


def test_default_tolerance_is_capped_at_half_the_smallest_share() -> None:
    assert default_tolerance([0.9, 0.1]) == 0.05
    assert default_tolerance([0.99, 0.01]) == 0.005
    assert default_tolerance([1.0, 0.0]) == 0.05


def test_chi_square_uses_scipy_when_expected_counts_are_large() -> None:
    result = chi_square([501, 499], [0.9, 0.1], alpha=0.01)
    reference = stats.chisquare([501, 499], f_exp=[900, 100])
    assert result.method == "asymptotic" and result.df == 1
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)


def test_chi_square_drops_weight_zero_categories_without_answers() -> None:
    result = chi_square([60, 40, 0], [0.5, 0.5, 0.0], alpha=0.05)
    assert result.df == 1
    with pytest.raises(ValueError, match="probability 0"):
        chi_square([60, 40, 1], [0.5, 0.5, 0.0], alpha=0.05)


def test_chi_square_switches_to_monte_carlo_with_small_expected_counts() -> None:
    # 99/1 at N = 100: the canary expects 1 answer. Threshold 10 at alpha <= 0.01, 5 above.
    assert chi_square([98, 2], [0.99, 0.01], alpha=0.01).method == "monte-carlo"
    assert chi_square([92, 8], [0.92, 0.08], alpha=0.05).method == "asymptotic"
    assert chi_square([92, 8], [0.92, 0.08], alpha=0.01).method == "monte-carlo"


def test_monte_carlo_p_value_is_seeded_and_close_to_exact() -> None:
    first = chi_square([97, 3], [0.99, 0.01], alpha=0.01)
    assert first == chi_square([97, 3], [0.99, 0.01], alpha=0.01)
    assert first != chi_square([97, 3], [0.99, 0.01], alpha=0.01, rng_seed=7)
    # Exact: P(T >= T_obs) under Binomial(100, 0.01); T is monotone in |x - 1| here, and x = 3 -> T = 4.04.
    exact = sum(stats.binom.pmf(x, 100, 0.01) for x in range(101) if (x - 1) ** 2 / 0.99 >= (3 - 1) ** 2 / 0.99)
    assert first.p_value == pytest.approx(exact, abs=0.005)


def test_a_single_category_is_trivially_consistent() -> None:
    assert chi_square([10], [1.0], alpha=0.01).p_value == 1.0


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 400), min_size=2, max_size=5),
    weights=st.lists(st.integers(1, 100), min_size=5, max_size=5),
    alpha=st.sampled_from([0.001, 0.01, 0.05]),
)
def test_chi_square_p_value_is_a_probability(counts: list[int], weights: list[int], alpha: float) -> None:
    probs = np.asarray(weights[: len(counts)], dtype=float)
    result = chi_square(counts, probs / probs.sum(), alpha=alpha, draws=2_000)
    assert 0.0 <= result.p_value <= 1.0
    assert result.statistic >= 0 and math.isfinite(result.statistic)


def _batches(labels: np.ndarray) -> list[dict[str, int]]:
    """Batch the labels as the request loop does (respy.tally.Batches)."""
    batches = Batches()
    for label in labels:
        batches.add(str(label))
    return batches.complete()


def _multinomial_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.1, "multiple", "single")


def _per_connection_labels(rng: np.random.Generator, n: int, per_connection: int = 5) -> np.ndarray:
    return np.repeat(_multinomial_labels(rng, n // per_connection), per_connection)


def test_dispersion_check_fires_on_per_connection_splits() -> None:
    """90/10, N = 1000, 5 requests per keep-alive connection: the check should fire almost every time."""
    rng = np.random.default_rng(11)
    fired = [dispersion_check(_batches(_per_connection_labels(rng, 1000)), ["single", "multiple"]) for _ in range(100)]
    rate = np.mean([result is not None and result.fired for result in fired])
    assert rate >= 0.9, rate


def test_dispersion_check_rarely_fires_on_independent_requests() -> None:
    """Nominal false-alarm rate 1% (p < 0.01; measured 1.4% over 1,000 runs); allowed up to 3% over 200 runs."""
    rng = np.random.default_rng(12)
    results = [dispersion_check(_batches(_multinomial_labels(rng, 1000)), ["single", "multiple"]) for _ in range(200)]
    assert all(result is not None for result in results)
    rate = np.mean([result.fired for result in results if result is not None])
    assert rate <= 0.03, rate


def test_dispersion_check_ignores_a_wrong_split() -> None:
    """The reference is the pooled split: a 50/50 answer to a 90/10 declaration is not 'dependence'."""
    rng = np.random.default_rng(13)
    labels = np.where(rng.random(1000) < 0.5, "multiple", "single")
    result = dispersion_check(_batches(labels), ["single", "multiple"])
    assert result is not None and not result.fired


def test_dispersion_check_needs_five_batches() -> None:
    assert dispersion_check([[9, 1]] * 4) is None
    assert dispersion_check([[9, 1]] * 5) is not None
