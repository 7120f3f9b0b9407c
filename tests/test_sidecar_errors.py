"""The sidecar's per-cluster 5xx counters attribute the errors the answers alone do not (issue 17).

Pure logic: cluster names -> destinations, the counters' delta, and when the counters do or do not account for
the errors respy saw. The same paths through a real Envoy are in tests/test_sidecar_envoy.py.
"""

from __future__ import annotations

from respy.check.assign import Assignment, assign, attribute_by_sidecar
from respy.check.sequential import SequentialTest, decide_sequential
from respy.check.verdict import decide
from respy.rules.expectation import Expectation, Outcome
from respy.sidecar.admin import ClusterCounts, parse_cluster_stats, stats_delta
from respy.sidecar.errors import SidecarErrors, sidecar_errors
from respy.sidecar.programmed import Programmed, ProgrammedCluster
from respy.tally import Kind, Row

FQDN = "weather-backend.default.svc.cluster.local"
WEATHER = Expectation(outcomes=(Outcome("single", 0.9, ("single", "weather-backend")),
                                Outcome("multiple", 0.1, ("multiple", "weather-backend"))), host="weather-backend")


def cluster(subset: str, share: float) -> ProgrammedCluster:
    return ProgrammedCluster(name=f"outbound|5000|{subset}|{FQDN}", weight=int(share * 100), share=share, host=FQDN,
                             subset=subset, port=5000)


PROGRAMMED = Programmed(kind="http", clusters=(cluster("single", 0.9), cluster("multiple", 0.1)))


def stats(**per_subset: str) -> str:
    """Envoy's text /stats lines for the named subsets' clusters: ``single="upstream_rq_200: 5, ..."``."""
    lines = []
    for subset, counters in per_subset.items():
        for pair in counters.split(","):
            name, value = pair.split(":")
            lines.append(f"cluster.outbound|5000|{subset}|{FQDN}.{name.strip()}: {value.strip()}")
    return "\n".join(lines)


def test_the_counters_delta_is_mapped_to_destinations_by_istiods_cluster_names() -> None:
    before = parse_cluster_stats(stats(single="upstream_rq_200: 100", multiple="upstream_rq_503: 7"))
    after = parse_cluster_stats(stats(
        single="upstream_rq_200: 1900, upstream_rq_total: 1800",
        multiple="upstream_rq_503: 207, upstream_rq_500: 3, upstream_rq_200: 9, upstream_cx_none_healthy: 200"))
    seen = sidecar_errors(stats_delta(before, after), PROGRAMMED)
    assert seen.by_status == {"multiple": {503: 200, 500: 3}}  # cumulative counters: only the run's change
    assert seen.no_healthy == {"multiple": 200}
    assert seen.clusters["multiple"] == (f"outbound|5000|multiple|{FQDN}",)


def test_a_cluster_outside_the_route_is_not_a_destination() -> None:
    counts = {"outbound|9080||ratings.default.svc.cluster.local": ClusterCounts(by_status={"503": 50})}
    assert sidecar_errors(counts, PROGRAMMED).by_status == {}


def rows(single: int, anonymous_503: int, named_503: int = 0) -> list[Row]:
    found = [Row("weather-backend: single", single, Kind.OK, 200),
             Row("503 service unavailable", anonymous_503, Kind.HTTP_ERROR, 503)]
    if named_503:
        found.append(Row("503 multiple is down", named_503, Kind.HTTP_ERROR, 503))
    return found


def test_one_destinations_counters_attribute_respys_unattributed_errors() -> None:
    answers = rows(1800, 200)
    seen = SidecarErrors(by_status={"multiple": {503: 230}})  # 30 more: other traffic, still one destination
    result = attribute_by_sidecar(assign(answers, WEATHER), answers, seen)
    assert result.errors == {"multiple": 200} and result.sidecar_errors == {"multiple": 200}
    assert result.unknown == 0 and result.unknown_labels == {}
    assert result.claimed["503 service unavailable"] == "multiple"  # so the health check sees multiple fail
    assert result.unserved == {} and result.sidecar_notes == ()


def test_errors_named_by_their_body_are_taken_off_the_counters_first() -> None:
    answers = rows(1800, 100, named_503=50)
    short = attribute_by_sidecar(assign(answers, WEATHER), answers, SidecarErrors(by_status={"multiple": {503: 120}}))
    assert short.errors == {"multiple": 50} and short.unknown == 100  # 120 - 50 named = 70 < 100: not accounted
    assert "do not account for 100 503 answers" in short.sidecar_notes[0]
    enough = attribute_by_sidecar(assign(answers, WEATHER), answers, SidecarErrors(by_status={"multiple": {503: 150}}))
    assert enough.errors == {"multiple": 150} and enough.sidecar_errors == {"multiple": 100}


def test_several_destinations_exactly_accounting_for_the_errors_share_them() -> None:
    answers = rows(1700, 300)
    seen = SidecarErrors(by_status={"single": {503: 100}, "multiple": {503: 200}})
    result = attribute_by_sidecar(assign(answers, WEATHER), answers, seen)
    assert result.errors == {"single": 100, "multiple": 200} and result.unknown == 0
    assert "503 service unavailable" not in result.claimed  # one label, two destinations: no label owner


def test_more_counted_on_several_destinations_than_respy_saw_is_ambiguous() -> None:
    answers = rows(1700, 300)
    seen = SidecarErrors(by_status={"single": {503: 150}, "multiple": {503: 200}})
    result = attribute_by_sidecar(assign(answers, WEATHER), answers, seen)
    assert result.errors == {} and result.unknown == 300
    assert "other traffic went through the sidecar" in result.sidecar_notes[0]


def test_no_counts_for_the_errors_leaves_them_unattributed_with_a_note() -> None:
    answers = rows(1800, 200)
    result = attribute_by_sidecar(assign(answers, WEATHER), answers, SidecarErrors(clusters={"multiple": ("c",)}))
    assert result.errors == {} and result.unknown == 200
    assert result.sidecar_notes and "they show 0 503s" in result.sidecar_notes[0]
    verdict = decide(result, WEATHER)
    assert result.sidecar_notes[0] in verdict.reasons and verdict.extra["errors_by_sidecar"] == {}


def test_no_healthy_upstream_errors_make_the_split_unservable() -> None:
    """As routed the split is 90/10 (PASS counting the 503s where they went); as served, multiple got none."""
    answers = rows(1800, 200)
    seen = SidecarErrors(by_status={"multiple": {503: 200}}, no_healthy={"multiple": 200})
    result = attribute_by_sidecar(assign(answers, WEATHER), answers, seen)
    assert result.unserved == {"multiple": 200}
    verdict = decide(result, WEATHER)
    assert verdict.outcome == "FAIL"
    assert verdict.reasons[0].startswith("'multiple' served none of 200 answers routed to it")
    assert "200 errors attributed to 'multiple' by the sidecar's counters" in " ".join(verdict.reasons)
    assert verdict.extra["unserved_by_sidecar"] == {"multiple": 200}


def test_a_few_unserved_requests_do_not_fail_a_split_that_is_served() -> None:
    answers = [Row("weather-backend: single", 1800, Kind.OK, 200), Row("weather-backend: multiple", 195, Kind.OK, 200),
               Row("503 no healthy upstream", 5, Kind.HTTP_ERROR, 503)]
    seen = SidecarErrors(by_status={"multiple": {503: 5}}, no_healthy={"multiple": 5})
    verdict = decide(attribute_by_sidecar(assign(answers, WEATHER), answers, seen), WEATHER)
    assert verdict.outcome == "PASS", verdict.reasons


def test_a_destination_mostly_without_healthy_endpoints_fails_too() -> None:
    answers = [Row("weather-backend: single", 1795, Kind.OK, 200), Row("weather-backend: multiple", 5, Kind.OK, 200),
               Row("503 no healthy upstream", 200, Kind.HTTP_ERROR, 503)]
    seen = SidecarErrors(by_status={"multiple": {503: 200}}, no_healthy={"multiple": 200})
    verdict = decide(attribute_by_sidecar(assign(answers, WEATHER), answers, seen), WEATHER)
    assert verdict.outcome == "FAIL"
    assert verdict.reasons[0].startswith("'multiple' served only 5 answers, and not 200 answers routed to it")


def unservable(answers: int) -> tuple[Assignment, SidecarErrors]:
    """``answers`` routed 90/10, every one routed to multiple the sidecar's own 503 (no healthy endpoint)."""
    single = answers * 9 // 10
    found = [Row("weather-backend: single", single, Kind.OK, 200),
             Row("503 no healthy upstream", answers - single, Kind.HTTP_ERROR, 503)]
    seen = SidecarErrors(by_status={"multiple": {503: answers - single}}, no_healthy={"multiple": answers - single})
    return attribute_by_sidecar(assign(found, WEATHER), found, seen), seen


def test_a_sequential_run_judges_the_unserved_share_with_its_anytime_valid_interval() -> None:
    """The sequential run stopped when the data said so, where a fixed-N bound does not hold its error rate: at
    150 answers (0 of 15 served) the exact bound (3.5 %) is below the band, the anytime-valid one is not; at
    500 (0 of 50) both are, and the reason gives the anytime-valid bound."""
    early, _ = unservable(150)
    assert decide(early, WEATHER).outcome == "FAIL"  # the fixed-N test's own stopping point is fixed
    sequential = decide_sequential(SequentialTest(WEATHER.probabilities), early, WEATHER)
    assert sequential.outcome == "INCONCLUSIVE", sequential.reasons
    late, _ = unservable(500)
    test = SequentialTest(WEATHER.probabilities)
    failed = decide_sequential(test, late, WEATHER)
    assert failed.outcome == "FAIL"
    high = test.intervals_for([450, 0])[1].high
    assert 0.02 < high < 0.05 and f"interval up to {high * 100:.1f}%" in failed.reasons[0]


def test_intervals_for_other_counts_are_the_tests_own_intervals_for_them() -> None:
    test = SequentialTest(WEATHER.probabilities)
    before = test.update([100, 20])
    assert test.intervals_for([450, 50], unknown=7) == SequentialTest(WEATHER.probabilities).update(
        [450, 50], unknown=7).intervals
    assert test.update([100, 20]).intervals == before.intervals  # intervals_for left the test's state alone


def test_counters_for_destinations_the_expectation_does_not_name_are_said_so() -> None:
    # Inline weights named v1/v2 while the route's subsets are single/multiple: the counters cannot be used,
    # and the note names both sets of names rather than only saying 0 were counted.
    inline = Expectation(outcomes=(Outcome("v1", 0.9, ("v1",)), Outcome("v2", 0.1, ("v2",))), host="weather-backend")
    answers = [Row("v1", 1800, Kind.OK, 200), Row("503 service unavailable", 200, Kind.HTTP_ERROR, 503)]
    result = attribute_by_sidecar(assign(answers, inline), answers, SidecarErrors(by_status={"multiple": {503: 200}}))
    assert result.unknown == 200 and result.sidecar_errors == {}
    (note,) = result.sidecar_notes
    assert "200 on 'multiple'; declared: 'v1', 'v2'" in note
    declared_names = attribute_by_sidecar(assign(rows(1800, 200), WEATHER), rows(1800, 200),
                                          SidecarErrors(by_status={"ratings": {503: 5}}))
    assert "do not account for 200 503 answers" in declared_names.sidecar_notes[0]
    assert "5 on 'ratings'" in declared_names.sidecar_notes[0]
