"""Property-based tests (hypothesis, derandomized: the same examples on every run, so no flaky failures).

* the rules engine, on arbitrary VirtualService / DestinationRule / HTTPRoute-shaped YAML, either returns an
  expectation whose probabilities sum to 1 or raises respy's own ``RulesError`` (``NotRoutedError`` included);
* merging results (``Tally.merge`` and ``respy merge``) is associative and commutative and keeps the totals;
* the verdict's p-values and intervals lie in [0, 1], and a decided verdict does not flip when the counts are
  scaled up in proportion (towards certainty about the same split).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from respy._errors import RulesError
from respy.check.assign import assign
from respy.check.verdict import decide
from respy.rules import RuleSet, load_text, parse_weights, resolve
from respy.rules.expectation import Expectation
from respy.tally import Kind, Row, Tally

SETTINGS = settings(
    derandomize=True,  # a fixed sequence of examples: a failure is reproducible, a pass is not luck
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)

# ------------------------------------------------------------------------------------------------ rules

HOSTS = st.sampled_from([
    "weather-backend", "weather-backend.default.svc.cluster.local", "weather-backend.default", "*",
    "*.svc.cluster.local", "*.default.svc.cluster.local", "other", "weather-backend.other", "WEATHER-Backend",
    "", "*.local", "10.0.0.1", "weather-backend:5000", "a..b", "*.*",
])
NAMES = st.sampled_from(["weather-backend", "single", "multiple", "v1", "v2", "", "x" * 300, "ünïcode", "a b"])
NAMESPACES = st.sampled_from(["default", "other", "istio-system", ""])
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def kinds(junk: bool) -> dict[str, st.SearchStrategy[dict[str, Any]]]:
    """Strategies per kind; with ``junk``, any value may instead be junk of any type."""

    def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(strategy, JUNK) if junk else strategy

    def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({}, optional=fields)

    weight = st.one_of(st.integers(0, 100), st.integers(0, 100), st.integers(-5, 5), st.integers(10**9, 10**20),
                       st.floats(), st.none(), st.text(max_size=3))
    string_match = st.dictionaries(
        st.sampled_from(["exact", "prefix", "regex"]),
        st.sampled_from(["jason", "/", "/version", "", ".*", "*", "(", "[a-", "v\\d+", "^/v(1|2)$", "a" * 50]),
        max_size=2,
    )
    port = st.one_of(st.integers(-1, 70000), st.sampled_from([80, 5000, 8080]))
    gateways = st.lists(st.sampled_from(["mesh", "gw", "default/gw", "other/gw"]), max_size=2)
    destination = st.fixed_dictionaries(
        {"host": maybe(HOSTS)}, optional={"subset": maybe(NAMES), "port": maybe(optional(number=maybe(port)))}
    )
    headers = st.dictionaries(st.sampled_from(["end-user", "x-version", ":authority", "host"]), maybe(string_match),
                              max_size=2)
    istio_match = optional(
        headers=maybe(headers),
        withoutHeaders=maybe(st.dictionaries(st.just("end-user"), maybe(string_match), max_size=1)),
        uri=maybe(string_match),
        method=maybe(string_match),
        queryParams=maybe(st.dictionaries(st.sampled_from(["v", "q"]), maybe(string_match), max_size=1)),
        ignoreUriCase=maybe(st.booleans()),
        gateways=maybe(gateways),
        port=maybe(port),
        sourceLabels=maybe(st.dictionaries(st.just("app"), st.text(max_size=3), max_size=1)),
    )
    route = st.fixed_dictionaries({"destination": maybe(destination)}, optional={"weight": weight})
    abort = st.fixed_dictionaries({"httpStatus": maybe(st.integers(-1, 700))},
                                  optional={"percentage": maybe(optional(value=maybe(st.floats(-10, 200))))})
    http_rule = optional(
        match=maybe(st.lists(maybe(istio_match), max_size=3)),
        route=maybe(st.lists(maybe(route), max_size=4)),
        fault=maybe(optional(abort=maybe(abort))),
        redirect=maybe(optional(uri=st.text(max_size=4), redirectCode=port)),
        directResponse=maybe(st.fixed_dictionaries({"status": maybe(st.integers(-1, 700))})),
        delegate=maybe(st.fixed_dictionaries({"name": NAMES}, optional={"namespace": NAMESPACES})),
        mirror=maybe(destination),
        name=st.text(max_size=4),
    )
    metadata = st.fixed_dictionaries({"name": NAMES}, optional={"namespace": NAMESPACES})
    virtual_service = st.fixed_dictionaries({
        "apiVersion": st.sampled_from(["networking.istio.io/v1", "networking.istio.io/v1beta1"]),
        "kind": st.just("VirtualService"),
        "metadata": metadata,
        "spec": maybe(optional(
            hosts=maybe(st.lists(HOSTS, max_size=3)),
            gateways=maybe(gateways),
            http=maybe(st.lists(maybe(http_rule), max_size=4)),
            exportTo=maybe(st.lists(st.sampled_from([".", "*", "other"]), max_size=2)),
        )),
    })
    subset = st.fixed_dictionaries(
        {"name": maybe(NAMES)}, optional={"labels": maybe(st.dictionaries(st.just("version"), NAMES, max_size=1))}
    )
    destination_rule = st.fixed_dictionaries({
        "apiVersion": st.just("networking.istio.io/v1"),
        "kind": st.just("DestinationRule"),
        "metadata": metadata,
        "spec": maybe(st.fixed_dictionaries({"host": maybe(HOSTS)},
                                            optional={"subsets": maybe(st.lists(maybe(subset), max_size=3))})),
    })
    backend_ref = st.fixed_dictionaries({"name": maybe(NAMES)}, optional={
        "port": maybe(port), "weight": weight, "kind": maybe(st.sampled_from(["Service", "ServiceImport", "Other"])),
        "group": maybe(st.sampled_from(["", "core", "x.io"])), "namespace": maybe(NAMESPACES),
    })
    path_match = optional(
        type=maybe(st.sampled_from(["PathPrefix", "Exact", "RegularExpression", "Bogus"])),
        value=maybe(st.sampled_from(["/", "/version", "", "(", "/v[0-9]+", "version"])),
    )
    header_match = st.fixed_dictionaries(
        {"name": maybe(st.sampled_from(["end-user", "Host"])), "value": maybe(st.text(max_size=5))},
        optional={"type": st.sampled_from(["Exact", "RegularExpression"])},
    )
    gateway_match = optional(
        path=maybe(path_match),
        headers=maybe(st.lists(maybe(header_match), max_size=2)),
        method=maybe(st.sampled_from(["GET", "POST", "get"])),
        queryParams=maybe(st.lists(maybe(st.fixed_dictionaries({"name": st.just("v"), "value": st.text(max_size=3)})),
                                   max_size=1)),
    )
    parent_ref = st.fixed_dictionaries({"name": maybe(NAMES)}, optional={
        "kind": maybe(st.sampled_from(["Service", "Gateway"])),
        "group": maybe(st.sampled_from(["", "gateway.networking.k8s.io"])),
        "port": maybe(port), "namespace": maybe(NAMESPACES), "sectionName": st.text(max_size=3),
    })
    route_filter = st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["RequestRedirect", "RequestMirror", "URLRewrite", "RequestHeaderModifier"]))},
        optional={"requestRedirect": maybe(optional(statusCode=port))},
    )
    route_rule = optional(
        matches=maybe(st.lists(maybe(gateway_match), max_size=2)),
        backendRefs=maybe(st.lists(maybe(backend_ref), max_size=3)),
        filters=maybe(st.lists(maybe(route_filter), max_size=2)),
    )
    http_route = st.fixed_dictionaries({
        "apiVersion": st.sampled_from(["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]),
        "kind": st.just("HTTPRoute"),
        "metadata": metadata,
        "spec": maybe(optional(
            parentRefs=maybe(st.lists(maybe(parent_ref), max_size=2)),
            hostnames=maybe(st.lists(HOSTS, max_size=2)),
            rules=maybe(st.lists(maybe(route_rule), max_size=3)),
        )),
    })
    service_port = st.fixed_dictionaries({"port": maybe(port)},
                                         optional={"name": st.sampled_from(["http", "tcp", "grpc"])})
    service = st.fixed_dictionaries({
        "apiVersion": st.just("v1"), "kind": st.just("Service"), "metadata": metadata,
        "spec": maybe(optional(selector=maybe(st.dictionaries(st.just("app"), NAMES, max_size=1)),
                               ports=maybe(st.lists(maybe(service_port), max_size=2)))),
    })
    return {"VirtualService": virtual_service, "DestinationRule": destination_rule, "HTTPRoute": http_route,
            "Service": service}


def routing_objects(junk: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    by_kind = kinds(junk)
    one = st.one_of(by_kind["VirtualService"], by_kind["VirtualService"], by_kind["DestinationRule"],
                    by_kind["HTTPRoute"], by_kind["Service"])
    return st.lists(one, min_size=1, max_size=5)


OBJECTS = routing_objects(junk=True)  # junk anywhere: mostly refused, which must be a RulesError
SANE_OBJECTS = routing_objects(junk=False)  # well-typed, odd values (weights, regexes, hosts): many resolve
ROUTES = st.lists(st.one_of(kinds(False)["VirtualService"], kinds(False)["HTTPRoute"]), min_size=1, max_size=3)

REQUEST = st.fixed_dictionaries({
    "url": st.sampled_from([
        "http://weather-backend:5000/version", "http://weather-backend/", "http://127.0.0.1:8080/version?v=1",
        "https://weather-backend.default.svc.cluster.local/x", "http://other/",
    ]),
    "headers": st.dictionaries(st.sampled_from(["Host", "end-user", "x-version"]),
                               st.sampled_from(["weather-backend", "jason", "v2", "other:80", ""]), max_size=2),
    "method": st.sampled_from(["GET", "POST"]),
    "namespace": st.sampled_from(["default", "other"]),
    "gateway": st.sampled_from([None, "gw", "default/gw"]),
})


def assert_is_a_distribution(expectation: Expectation) -> None:
    probabilities = [o.probability for o in expectation.outcomes]
    assert probabilities, expectation
    assert all(isinstance(p, float | int) and math.isfinite(p) and 0 <= p <= 1 for p in probabilities), probabilities
    assert abs(sum(probabilities) - 1) <= 1e-9, probabilities


def check_rules(objects: list[dict[str, Any]], request: dict[str, Any]) -> None:
    text = yaml.safe_dump_all(objects, allow_unicode=True)
    try:
        rules = RuleSet(objects=tuple(load_text(text, "generated.yaml")))
        expectation = resolve(rules, **request)
    except RulesError as exc:  # NotRoutedError is a RulesError
        event(f"refused: {type(exc).__name__}")
        return
    event(f"resolved to {min(len(expectation.outcomes), 3)}{'+' if len(expectation.outcomes) >= 3 else ''} outcome(s)")
    assert_is_a_distribution(expectation)


@SETTINGS
@given(objects=OBJECTS, request=REQUEST)
def test_rules_with_junk_anywhere_give_a_distribution_or_a_rules_error(
    objects: list[dict[str, Any]], request: dict[str, Any]
) -> None:
    check_rules(objects, request)


@SETTINGS
@given(objects=SANE_OBJECTS, request=REQUEST)
def test_mostly_well_typed_rules_give_a_distribution_or_a_rules_error(
    objects: list[dict[str, Any]], request: dict[str, Any]
) -> None:
    check_rules(objects, request)


@SETTINGS
@given(objects=ROUTES, weights=st.lists(st.integers(0, 1000), min_size=1, max_size=4))
def test_well_formed_weighted_routes_always_resolve_to_a_distribution(
    objects: list[dict[str, Any]], weights: list[int]
) -> None:
    """A plain weighted route for the request's host is always a distribution (or a weight-0 RulesError)."""
    route = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "the-real-one", "namespace": "default"},
             "spec": {"hosts": ["weather-backend"], "http": [{"route": [
                 {"destination": {"host": "weather-backend", "subset": f"s{i}"}, "weight": w}
                 for i, w in enumerate(weights)]}]}}
    text = yaml.safe_dump_all([*objects, route])
    try:
        rules = RuleSet(objects=tuple(load_text(text, "generated.yaml")))
        expectation = resolve(rules, url="http://weather-backend:5000/version")
    except RulesError as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event(f"resolved to {min(len(expectation.outcomes), 3)}{'+' if len(expectation.outcomes) >= 3 else ''} outcome(s)")
    assert_is_a_distribution(expectation)


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from("abc=,.0123456789-e inf nan"), max_size=30))
def test_inline_weights_give_a_distribution_or_a_rules_error(text: str) -> None:
    try:
        expectation = resolve(RuleSet(objects=(), weights=parse_weights(text)), url="http://x/")
    except RulesError:
        return
    assert_is_a_distribution(expectation)


@SETTINGS
@given(junk=st.recursive(JUNK, lambda inner: st.lists(inner, max_size=3), max_leaves=8))
def test_any_yaml_document_at_all_loads_or_is_a_rules_error(junk: Any) -> None:
    text = yaml.safe_dump(junk, allow_unicode=True)
    with contextlib.suppress(RulesError):
        load_text(text, "junk.yaml")


def test_the_rules_property_can_fail() -> None:
    """The property is not vacuous: a sane rule set does resolve, to 90/10."""
    text = yaml.safe_dump({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                           "metadata": {"name": "vs"}, "spec": {"hosts": ["weather-backend"], "http": [{"route": [
                               {"destination": {"host": "weather-backend", "subset": "single"}, "weight": 90},
                               {"destination": {"host": "weather-backend", "subset": "multiple"}, "weight": 10}]}]}})
    expectation = resolve(RuleSet(objects=tuple(load_text(text, "x.yaml"))), url="http://weather-backend/")
    assert expectation.probabilities == pytest.approx({"single": 0.9, "multiple": 0.1})


# ------------------------------------------------------------------------------------------------ merging

LABELS = [("weather-backend: single", Kind.OK, 200), ("weather-backend: multiple", Kind.OK, 200),
          ("503 no healthy upstream", Kind.HTTP_ERROR, 503), ("error: connection reset", Kind.TRANSPORT, None),
          ("error: timeout", Kind.TRANSPORT, None), ("x" * 200, Kind.OK, 201)]
ANSWERS = st.lists(st.tuples(st.sampled_from(range(len(LABELS))), st.floats(1e-6, 30.0)), max_size=60)


def tally_of(answers: list[tuple[int, float]]) -> Tally:
    tally = Tally()
    for index, latency in answers:
        label, kind, status = LABELS[index]
        tally.add(label, kind, status, latency)
    return tally


def merged(*tallies: Tally) -> Tally:
    result = Tally()
    for tally in tallies:
        result.merge(tally)
    return result


def summary(tally: Tally) -> tuple[Any, ...]:
    state = tally.latency.to_state()
    return (sorted((r.label, r.kind.value, r.count, r.status) for r in tally.rows()), tally.total,
            state["buckets"], state["count"], state["max_s"], round(float(state["total_s"]), 6))  # type: ignore[arg-type]


@SETTINGS
@given(a=ANSWERS, b=ANSWERS, c=ANSWERS)
def test_tally_merge_is_associative_commutative_and_keeps_totals(a, b, c) -> None:  # type: ignore[no-untyped-def]
    ta, tb, tc = tally_of(a), tally_of(b), tally_of(c)
    left = merged(merged(ta, tb), tc)
    right = merged(ta, merged(tb, tc))
    assert summary(left) == summary(right)
    for order in itertools.permutations((a, b, c)):
        assert summary(merged(*(tally_of(x) for x in order))) == summary(left)
    assert left.total == len(a) + len(b) + len(c) == sum(r.count for r in left.rows())
    assert left.latency.count == left.total
    assert summary(left) == summary(tally_of(a + b + c))  # merging equals measuring it all in one run


def result_json(answers: list[tuple[int, float]]) -> dict[str, Any]:
    """A ``respy -o json`` result of a run with these answers (what ``respy merge`` reads)."""
    from respy.measurement import Measurement
    from respy.report.render import measurement_dict

    tally = tally_of(answers)
    measurement = Measurement(url="http://weather-backend:5000/version", tally=tally, elapsed_s=1.0,
                              planned=tally.total, concurrency=2, stop_reason="all requests sent")
    return json.loads(json.dumps(measurement_dict(measurement)))


def merge_results(*results: Mapping[str, Any]) -> dict[str, Any]:
    """What ``respy merge A B ... -o json`` prints, as data (it can be merged again)."""
    from respy.cli.merge import Part, merge_measurement
    from respy.measurement import Measurement
    from respy.report.render import measurement_dict

    parts = [Part(r, f"r{i}", Measurement.from_dict(r, f"r{i}")) for i, r in enumerate(results)]
    return json.loads(json.dumps(measurement_dict(merge_measurement(parts))))


def merge_summary(data: Mapping[str, Any]) -> tuple[Any, ...]:
    histogram = data["latency_histogram"]
    return (sorted((r["label"], r["kind"], r["count"], r["status"]) for r in data["rows"]), data["requests"],
            data["errors"], histogram["buckets"], histogram["count"], histogram["max_s"],
            round(histogram["total_s"], 6))


@SETTINGS
@given(a=ANSWERS, b=ANSWERS, c=ANSWERS)
def test_respy_merge_is_associative_commutative_and_keeps_totals(a, b, c) -> None:  # type: ignore[no-untyped-def]
    ra, rb, rc = result_json(a), result_json(b), result_json(c)
    flat = merge_results(ra, rb, rc)
    assert merge_summary(merge_results(merge_results(ra, rb), rc)) == merge_summary(flat)
    assert merge_summary(merge_results(ra, merge_results(rb, rc))) == merge_summary(flat)
    for order in itertools.permutations((ra, rb, rc)):
        assert merge_summary(merge_results(*order)) == merge_summary(flat)
    assert flat["requests"] == len(a) + len(b) + len(c) == sum(row["count"] for row in flat["rows"])
    assert merge_summary(flat) == merge_summary(result_json(a + b + c))


# ------------------------------------------------------------------------------------------------ the verdict

SPLITS = st.lists(st.integers(1, 20), min_size=2, max_size=4)


def rows_for(names: list[str], counts: list[int], unknown: int = 0) -> list[Row]:
    rows = [Row(label=f"weather-backend: {name}", count=count, kind=Kind.OK, status=200)
            for name, count in zip(names, counts, strict=True) if count]
    if unknown:
        rows.append(Row(label="error: connection reset", count=unknown, kind=Kind.TRANSPORT))
    return rows


def verdict_for(weights: list[int], counts: list[int], unknown: int = 0, **options: Any):  # type: ignore[no-untyped-def]
    names = [f"v{i}" for i in range(len(weights))]
    expectation = Expectation.from_weights(dict(zip(names, weights, strict=True)))
    assignment = assign(rows_for(names, counts, unknown), expectation)
    return decide(assignment, expectation, **options)


def in_unit_interval(value: Any) -> bool:
    return isinstance(value, float | int) and 0.0 <= value <= 1.0


@SETTINGS
@given(weights=SPLITS, data=st.data(), unknown=st.integers(0, 50), strict=st.booleans(),
       alpha=st.sampled_from([0.001, 0.01, 0.05, 0.2]), batched=st.booleans())
def test_p_values_and_intervals_lie_in_0_1(weights, data, unknown, strict, alpha, batched) -> None:  # type: ignore[no-untyped-def]
    counts = data.draw(st.lists(st.integers(0, 5000), min_size=len(weights), max_size=len(weights)))
    batches = None
    if batched:
        names = [f"weather-backend: v{i}" for i in range(len(weights))]
        batch = st.dictionaries(st.sampled_from(names), st.integers(1, 20), min_size=len(names), max_size=len(names))
        batches = data.draw(st.lists(batch, min_size=2, max_size=12))
    verdict = verdict_for(weights, counts, unknown, alpha=alpha, strict=strict, batches=batches)
    assert verdict.outcome in ("PASS", "FAIL", "INCONCLUSIVE", "CONSISTENT")
    assert verdict.p_value is None or in_unit_interval(verdict.p_value), verdict.p_value
    for key in ("dispersion_p", "interval_level"):
        value = verdict.extra.get(key)
        assert value is None or in_unit_interval(value), (key, value)
    for share in verdict.shares:
        assert 0.0 <= share.low <= share.high <= 1.0, share
        assert in_unit_interval(share.observed) and in_unit_interval(share.expected), share
        if share.count:
            assert share.low <= share.observed + 1e-12 and share.observed <= share.high + 1e-12, share


@SETTINGS
@given(weights=SPLITS, start=st.integers(1, 40))
def test_counts_exactly_as_declared_never_fail_and_once_passing_keep_passing(weights, start) -> None:  # type: ignore[no-untyped-def]
    outcomes = []
    for scale in (start * 2**k for k in range(12)):  # up to ~80,000 x the weights: a few million requests
        outcomes.append(verdict_for(weights, [w * scale for w in weights]).outcome)
    assert "FAIL" not in outcomes, outcomes
    if "PASS" in outcomes:
        first = outcomes.index("PASS")
        assert set(outcomes[first:]) == {"PASS"}, outcomes
    assert outcomes[-1] == "PASS", outcomes  # with enough requests an exact split is confirmed


@SETTINGS
@given(weights=SPLITS, data=st.data(), factor=st.sampled_from([2, 3, 10, 100]), unknown=st.integers(0, 3))
def test_a_decided_verdict_does_not_flip_when_counts_scale_up_in_proportion(weights, data, factor, unknown) -> None:  # type: ignore[no-untyped-def]
    counts = data.draw(st.lists(st.integers(0, 3000), min_size=len(weights), max_size=len(weights)))
    assume(sum(counts) > 0)
    before = verdict_for(weights, counts, unknown).outcome
    after = verdict_for(weights, [c * factor for c in counts], unknown * factor).outcome
    if before in ("PASS", "FAIL"):
        assert after == before, (before, after, counts, factor)


@SETTINGS
@given(weights=SPLITS, data=st.data(), steps=st.integers(2, 6))
def test_moving_counts_towards_the_declared_split_never_turns_a_pass_into_a_fail(weights, data, steps) -> None:  # type: ignore[no-untyped-def]
    """Counts at a fixed total moved step by step from an arbitrary split onto the declared one: a PASS on the
    way is never followed by a FAIL closer to the declared split."""
    total = data.draw(st.integers(100, 20000))
    counts = data.draw(st.lists(st.integers(0, 100), min_size=len(weights), max_size=len(weights)))
    assume(sum(counts) > 0)
    start = [total * c / sum(counts) for c in counts]
    target = [total * w / sum(weights) for w in weights]
    outcomes = []
    for step in range(steps + 1):
        t = step / steps
        mixed = [round((1 - t) * s + t * g) for s, g in zip(start, target, strict=True)]
        outcomes.append(verdict_for(weights, mixed).outcome)
    if "PASS" in outcomes:
        assert "FAIL" not in outcomes[outcomes.index("PASS"):], outcomes
