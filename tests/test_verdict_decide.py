"""The fixed-N verdict: hard checks, bracketing of errors, strict mode, the lines people read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from respy._errors import UsageError
from respy.check.assign import Assignment, assign
from respy.check.verdict import EXIT_CODES, decide, favourable_counts, format_p, pre_run_warning, verdict_line
from respy.rules.expectation import Expectation, Outcome
from respy.tally import Batches, Kind, Row

WEATHER = Expectation(
    outcomes=(
        Outcome("single", 0.9, ("single", "weather-backend")),
        Outcome("multiple", 0.1, ("multiple", "weather-backend")),
    ),
    host="weather-backend",
)


def counted(expectation: Expectation, counts: dict[str, int], unknown: int = 0, **more: object) -> Assignment:
    full = {o.name: counts.get(o.name, 0) for o in expectation.outcomes}
    labels = {"503 upstream connect error": unknown} if unknown else {}
    total = sum(full.values()) + unknown + sum(more.get("undeclared", {}).values())  # type: ignore[attr-defined]
    return Assignment(counts=full, claimed={}, unknown=unknown, unknown_labels=labels, total=total, **more)  # type: ignore[arg-type]


def test_the_original_demo_fails_with_a_readable_line() -> None:
    rows = [Row("weather-backend: single", 501, Kind.OK, 200), Row("weather-backend: multiple", 499, Kind.OK, 200)]
    assignment = assign(rows, WEATHER)
    verdict = decide(assignment, WEATHER)
    assert verdict.outcome == "FAIL" and verdict.exit_code == 1
    assert verdict_line(verdict, WEATHER, assignment) == (
        "FAIL  weather-backend: observed single 50.1% / multiple 49.9%, declared 90% / 10% "
        "(chi-square 1,768.9, df 1, p < 1e-16, 1000 requests)"
    )
    assert "multiple: observed 49.9%" in verdict.reasons[0]


def test_a_correct_split_passes() -> None:
    verdict = decide(counted(WEATHER, {"single": 905, "multiple": 95}), WEATHER)
    assert verdict.outcome == "PASS" and verdict.passed and verdict.exit_code == 0
    assert verdict.p_value is not None and verdict.p_value > 0.5
    assert [s.name for s in verdict.shares] == ["single", "multiple"]


def test_too_few_requests_are_inconclusive_with_the_number_needed() -> None:
    verdict = decide(counted(WEATHER, {"single": 88, "multiple": 12}), WEATHER)
    assert verdict.outcome == "INCONCLUSIVE" and verdict.exit_code == EXIT_CODES["INCONCLUSIVE"]
    assert verdict.requests_needed is not None and 400 < verdict.requests_needed < 2000
    assert f"About {verdict.requests_needed:,} requests are needed to decide" in verdict.reasons[0]


def test_significant_but_within_tolerance_is_a_pass_with_a_note() -> None:
    verdict = decide(counted(WEATHER, {"single": 18_400, "multiple": 1_600}), WEATHER)
    assert verdict.outcome == "PASS"
    assert verdict.p_value is not None and verdict.p_value < 0.01
    assert any("less than the tolerance" in reason for reason in verdict.reasons)


def test_strict_mode_is_the_chi_square_alone() -> None:
    consistent = decide(counted(WEATHER, {"single": 88, "multiple": 12}), WEATHER, strict=True)
    assert consistent.outcome == "CONSISTENT" and consistent.passed
    assert "does not prove it matches" in consistent.reasons[0]
    failed = decide(counted(WEATHER, {"single": 18_400, "multiple": 1_600}), WEATHER, strict=True)
    assert failed.outcome == "FAIL"


def test_an_answer_from_a_weight_zero_destination_fails_at_once() -> None:
    legacy = Expectation(outcomes=(*WEATHER.outcomes, Outcome("legacy", 0.0, ("legacy",))), host="weather-backend")
    verdict = decide(counted(legacy, {"single": 900, "multiple": 100, "legacy": 1}), legacy)
    assert verdict.outcome == "FAIL"
    assert "1 answer came from 'legacy', which has weight 0" in verdict.reasons[0]
    assert verdict.extra["leaks"] == {"legacy": 1}
    forgiven = decide(counted(legacy, {"single": 900, "multiple": 100, "legacy": 1}), legacy, grace=1)
    assert forgiven.outcome == "PASS"


def test_an_undeclared_version_fails_and_suggests_map() -> None:
    assignment = counted(WEATHER, {"single": 900, "multiple": 100}, undeclared={"weather-backend: triple": 4})
    verdict = decide(assignment, WEATHER, strict=True)
    assert verdict.outcome == "FAIL"
    assert "'weather-backend: triple'" in verdict.reasons[0]
    assert "--map 'weather-backend: triple=DESTINATION'" in verdict.reasons[0]
    assert decide(assignment, WEATHER, grace=4).outcome == "PASS"


def test_errors_hitting_one_version_cannot_fake_a_pass() -> None:
    """True split 80/20, but half the canary's answers are 500s: the identified split looks like 90/10."""
    assignment = counted(WEATHER, {"single": 1600, "multiple": 200}, unknown=200)
    naive = decide(counted(WEATHER, {"single": 1600, "multiple": 200}), WEATHER)
    assert naive.outcome == "PASS"  # what dropping the errors would have said
    verdict = decide(assignment, WEATHER)
    assert verdict.outcome == "INCONCLUSIVE"
    assert verdict.requests_needed is None
    assert any("Too many answers were errors or could not be attributed (10.0%)" in r for r in verdict.reasons)
    assert any("200 of 2,000 answers (10.0%) were errors" in r for r in verdict.reasons)
    assert verdict.extra["unknown_rate"] == pytest.approx(0.1)


def test_errors_cannot_fake_a_fail_either() -> None:
    """Exact 90/10, 10% of the canary's answers unidentifiable: identified-only chi-square would reject."""
    assignment = counted(WEATHER, {"single": 18_000, "multiple": 1_800}, unknown=200)
    identified_only = decide(counted(WEATHER, {"single": 18_000, "multiple": 1_800}), WEATHER, strict=True)
    assert identified_only.outcome == "FAIL"
    assert decide(assignment, WEATHER, strict=True).outcome == "CONSISTENT"
    assert decide(assignment, WEATHER).outcome == "PASS"


def test_a_split_wrong_under_every_attribution_of_the_errors_still_fails() -> None:
    verdict = decide(counted(WEATHER, {"single": 500, "multiple": 450}, unknown=50), WEATHER)
    assert verdict.outcome == "FAIL"


def test_favourable_counts_minimise_the_statistic() -> None:
    filled = favourable_counts([1600, 200], [0.9, 0.1], 200)
    assert filled == pytest.approx([1800, 200])
    filled = favourable_counts([10, 50, 30], [0.5, 0.3, 0.2], 10)
    assert sum(filled) == pytest.approx(100) and filled[0] == pytest.approx(20)


def test_status_outcomes_are_categories() -> None:
    faulty = Expectation(
        outcomes=(Outcome("v1", 0.45, ("v1",)), Outcome("v2", 0.45, ("v2",)), Outcome("abort", 0.1, status=500))
    )
    verdict = decide(counted(faulty, {"v1": 4500, "v2": 4480, "abort": 1020}), faulty)
    assert verdict.df == 2 and verdict.outcome == "PASS"
    assert verdict.extra["interval_level"] == pytest.approx(0.98)  # no Bonferroni on the PASS side


def test_dependent_answers_make_the_verdict_inconclusive() -> None:
    rng = np.random.default_rng(5)
    per_connection = np.repeat(
        np.where(rng.random(200) < 0.1, "weather-backend: multiple", "weather-backend: single"), 5
    )
    rows = [Row(label, int(np.sum(per_connection == label)), Kind.OK, 200) for label in set(per_connection)]
    batches = Batches()
    for label in per_connection:
        batches.add(str(label))
    verdict = decide(assign(rows, WEATHER), WEATHER, batches=batches.complete())
    assert verdict.outcome == "INCONCLUSIVE"
    assert "the split changed during the run" in verdict.reasons[0] and "--no-keepalive" in verdict.reasons[0]


def test_tolerance_is_checked_and_capped() -> None:
    assignment = counted(WEATHER, {"single": 900, "multiple": 100})
    assert decide(assignment, WEATHER, tolerance=0.2).tolerance == 0.05
    assert "wider than half the smallest declared share" in decide(assignment, WEATHER, tolerance=0.2).reasons[0]
    with pytest.raises(UsageError):
        decide(assignment, WEATHER, tolerance=0)
    with pytest.raises(UsageError):
        decide(assignment, WEATHER, alpha=0.7)


def test_no_usable_answer_is_inconclusive() -> None:
    verdict = decide(counted(WEATHER, {}), WEATHER)
    assert verdict.outcome == "INCONCLUSIVE"


def test_to_dict_is_json() -> None:
    verdict = decide(counted(WEATHER, {"single": 880, "multiple": 100}, unknown=20), WEATHER)
    data = json.loads(json.dumps(verdict.to_dict()))
    for key in ("outcome", "test", "statistic", "df", "p_value", "alpha", "tolerance", "requests_needed", "reasons"):
        assert key in data
    assert data["requests"] == 1000 and data["shares"][0]["name"] == "single"


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0, "p < 1e-16"),
        (3e-17, "p < 1e-16"),
        (0.00312, "p = 0.0031"),
        (0.41, "p = 0.41"),
        (1.23e-7, "p = 1.2e-7"),
        (1.0, "p = 1"),
    ],
)
def test_p_values_read_well(p: float, text: str) -> None:
    assert format_p(p) == text


def test_pre_run_warning() -> None:
    canary = Expectation.from_weights({"stable": 99, "canary": 1})
    assert pre_run_warning(canary, 1000) == "1000 requests cannot confirm 99/1 within ±0.5 pp; about 9,517 would"
    assert pre_run_warning(Expectation.from_weights({"a": 90, "b": 10}), 1000) is None
    assert pre_run_warning(Expectation.from_weights({"a": 90, "b": 10}), 500) is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    weights=st.sampled_from([(90, 10), (50, 50), (80, 20), (50, 30, 20), (99, 1)]),
    n=st.integers(1, 3000),
    jitter=st.lists(st.floats(-0.12, 0.12), min_size=3, max_size=3),
    rounds=st.integers(1, 200),
    unknown=st.integers(0, 20),
)
def test_more_answers_in_the_declared_proportions_never_turn_a_verdict_into_fail(
    weights: tuple[int, ...], n: int, jitter: list[float], rounds: int, unknown: int
) -> None:
    """Adding requests split exactly as declared (``rounds`` times the weights) moves the observed shares
    towards the declared ones and narrows the intervals: a PASS or INCONCLUSIVE must not become a FAIL."""
    expectation = Expectation.from_weights({f"v{i}": w for i, w in enumerate(weights)})
    names = [o.name for o in expectation.outcomes]
    counts = {
        o.name: max(0, round(n * (o.probability + j))) for o, j in zip(expectation.outcomes, jitter, strict=False)
    }
    assume(sum(counts.values()) > 0)
    before = decide(counted(expectation, counts, unknown=unknown), expectation)
    assert before.p_value is not None and 0.0 <= before.p_value <= 1.0
    for share in before.shares:
        assert share.low <= share.observed <= share.high
    assume(before.outcome != "FAIL")
    more = {name: counts[name] + rounds * w for name, w in zip(names, weights, strict=True)}
    after = decide(counted(expectation, more, unknown=unknown), expectation)
    assert after.outcome != "FAIL", (counts, more, before.shares, after.shares)
