"""``respy.explain.diagnosis``: every candidate explanation of a failed split, on seeded multinomial counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from respy.explain.diagnosis import destination_replicas, diagnose, diagnose_verdict, errors_by_destination
from respy.rules import RuleSet, load_inputs, load_text, resolve
from respy.rules.expectation import Expectation

TUTORIAL = ("tutorial/weather-rules.yaml", "tutorial/weather-deployment.yaml")
URL = "http://weather-backend:5000/version"
N = 1000


def draw(probs: list[float], names: tuple[str, ...] = ("single", "multiple"), seed: int = 7,
         n: int = N) -> dict[str, int]:
    counts = np.random.default_rng(seed).multinomial(n, probs)
    return {name: int(c) for name, c in zip(names, counts, strict=True)}


@pytest.fixture()
def tutorial(fixtures_dir: Path) -> tuple[RuleSet, Expectation]:
    rules = load_inputs([str(fixtures_dir / f) for f in TUTORIAL])
    return rules, resolve(rules, url=URL)


def with_replicas(fixtures_dir: Path, tmp_path: Path, single: int, multiple: int) -> RuleSet:
    docs: list[dict[str, Any]] = list(yaml.safe_load_all((fixtures_dir / TUTORIAL[1]).read_text()))
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "weather-backend-single":
            doc["spec"]["replicas"] = single
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "weather-backend-multiple":
            doc["spec"]["replicas"] = multiple
    edited = tmp_path / "weather-deployment.yaml"
    edited.write_text(yaml.safe_dump_all(docs))
    return load_inputs([str(fixtures_dir / TUTORIAL[0]), str(edited)])


def test_equal_split_fits_50_50_declared_90_10(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    diagnosis = diagnose(draw([0.5, 0.5]), expectation, rules=rules)
    assert diagnosis.best is not None and diagnosis.best.name == "equal"
    assert diagnosis.best.fits and diagnosis.best.p_value >= 0.01
    assert diagnosis.best.probabilities == {"single": 0.5, "multiple": 0.5}
    swapped = next(c for c in diagnosis.candidates if c.name == "swapped")
    assert not swapped.fits


def test_tutorial_text_explains_and_gives_the_port_fix(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    text = diagnose({"single": 501, "multiple": 499}, expectation, rules=rules).text()
    assert text.startswith("Observed 50.1% single / 49.9% multiple fits an equal split across 2 versions (p = 0.95), "
                           "not the declared 90/10: Istio's route rules are probably not applied to weather-backend")
    assert 'Service default/weather-backend port 5000 is named "backend"' in text
    assert 'rename it "http-backend" or set appProtocol: http.' in text


def test_replica_ratio_fits(fixtures_dir: Path, tmp_path: Path) -> None:
    rules = with_replicas(fixtures_dir, tmp_path, 3, 1)
    expectation = resolve(rules, url=URL)
    assert destination_replicas(rules, expectation.host, expectation.destinations) == {"single": 3, "multiple": 1}
    diagnosis = diagnose(draw([0.75, 0.25]), expectation, rules=rules)
    assert diagnosis.best is not None and diagnosis.best.name == "replicas"
    assert diagnosis.best.probabilities == {"single": 0.75, "multiple": 0.25}
    assert "replica ratio 3:1" in diagnosis.text()
    equal = next(c for c in diagnosis.candidates if c.name == "equal")
    assert not equal.fits


def test_equal_replicas_are_not_listed_twice(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    names = [c.name for c in diagnose(draw([0.5, 0.5]), expectation, rules=rules).candidates]
    assert names.count("equal") == 1 and "replicas" not in names  # 1:1 replicas = the equal split


def test_replicas_through_httproute_backends(fixtures_dir: Path) -> None:
    samples = fixtures_dir / "upstream/istio-samples"
    rules = load_inputs([str(samples / f) for f in ("bookinfo__platform__kube__bookinfo.yaml",
                                                    "bookinfo__platform__kube__bookinfo-versions.yaml",
                                                    "bookinfo__gateway-api__route-reviews-90-10.yaml")])
    expectation = resolve(rules, url="http://reviews:9080/")
    assert destination_replicas(rules, expectation.host, expectation.destinations) == {"reviews-v1": 1,
                                                                                        "reviews-v2": 1}


def test_swapped_weights_fit(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    diagnosis = diagnose(draw([0.1, 0.9]), expectation, rules=rules)
    assert diagnosis.best is not None and diagnosis.best.name == "swapped"
    assert diagnosis.best.probabilities == {"single": 0.1, "multiple": 0.9}
    assert "swapped (10/90)" in diagnosis.text()


def test_swapped_among_three_destinations() -> None:
    expectation = Expectation.from_weights({"v1": 70, "v2": 20, "v3": 10})
    diagnosis = diagnose(draw([0.1, 0.2, 0.7], ("v1", "v2", "v3")), expectation, rules=None)
    assert diagnosis.best is not None and diagnosis.best.name == "swapped"
    assert diagnosis.best.probabilities == pytest.approx({"v1": 0.1, "v2": 0.2, "v3": 0.7})


def test_a_version_missing(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    diagnosis = diagnose({"single": 903, "multiple": 0}, expectation, rules=rules)
    assert diagnosis.best is not None and diagnosis.best.name == "missing"
    assert "multiple never answered" in diagnosis.text()
    assert not any(c.name == "equal" for c in diagnosis.candidates)  # only one version answered


def test_one_version_failing_with_errors(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    routed = draw([0.9, 0.1], seed=11)
    failed = int(np.random.default_rng(12).binomial(routed["multiple"], 0.6))
    counts = {"single": routed["single"], "multiple": routed["multiple"] - failed}
    diagnosis = diagnose(counts, expectation, rules=rules, errors_by_destination={"multiple": failed})
    assert diagnosis.best is not None and diagnosis.best.name == "failing"
    assert f"multiple answered {failed} errors" in diagnosis.text()


def test_dependent_answers(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    diagnosis = diagnose(draw([0.8, 0.2]), expectation, rules=rules, dependent=True)
    assert diagnosis.best is not None and diagnosis.best.name == "dependent"
    assert diagnosis.text().startswith("Answers were not independent")
    entry = next(d for d in diagnosis.to_list() if d["name"] == "dependent")
    assert entry["p_value"] is None and entry["best"] is True
    json.dumps(diagnosis.to_list())


def test_nothing_fits(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    diagnosis = diagnose(draw([0.7, 0.3]), expectation, rules=rules)
    assert diagnosis.best is None
    assert "fits neither the declared 90/10 nor any usual cause" in diagnosis.text()


def test_small_counts_use_the_same_test_as_the_verdict(tutorial: tuple[RuleSet, Expectation]) -> None:
    _, expectation = tutorial
    diagnosis = diagnose(draw([0.5, 0.5], n=12, seed=3), expectation, rules=None)
    swapped = next(c for c in diagnosis.candidates if c.name == "swapped")
    assert 0 <= swapped.p_value <= 1  # expected count 1.2 < 10: Monte Carlo p-value, not asymptotic
    assert diagnosis.findings == []


def test_to_list_is_json_ready(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    entries = diagnose(draw([0.5, 0.5]), expectation, rules=rules).to_list()
    assert {e["name"] for e in entries} == {"equal", "swapped"}
    assert sum(e["best"] for e in entries) == 1
    assert set(entries[0]) == {"name", "description", "probabilities", "statistic", "p_value", "fits",
                               "explanation", "best"}
    json.dumps(entries)


def test_findings_bear_on_the_host(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    findings = diagnose(draw([0.5, 0.5]), expectation, rules=rules).findings
    assert [f.istio_code for f in findings] == ["IST0118"]


def test_diagnose_verdict_counts_errors_back_to_their_destination(tutorial: tuple[RuleSet, Expectation]) -> None:
    from respy.check.assign import assign
    from respy.tally import Kind, Row

    rules, expectation = tutorial
    rows = [Row("weather-backend: single", 897, Kind.OK, 200), Row("weather-backend: multiple", 41, Kind.OK, 200),
            Row("503 upstream error from weather-backend: multiple", 62, Kind.HTTP_ERROR, 503)]
    assignment = assign(rows, expectation)
    diagnosis = diagnose_verdict(None, assignment, expectation, rules)
    assert diagnosis.best is not None and diagnosis.best.name == "failing"
    assert errors_by_destination(assignment, expectation) == {"multiple": 62}
    assert diagnosis.text().startswith("Observed")
    assert [f.istio_code for f in diagnosis.findings] == ["IST0118"]


def test_equal_split_causes_on_an_unknown_istio_version_put_the_sidecar_first(
        tutorial: tuple[RuleSet, Expectation]) -> None:
    # since Istio 1.3 (outbound protocol sniffing) the port name no longer breaks HTTP routing: it comes last
    rules, expectation = tutorial
    best = diagnose(draw([0.5, 0.5]), expectation, rules=rules).best
    assert best is not None and best.name == "equal"
    assert "1) the client has no sidecar" in best.explanation
    assert "IST0102/IST0103" in best.explanation
    assert "2) the VirtualService is not visible to clients in namespace default" in best.explanation
    assert "4) the Service port's name" in best.explanation
    assert "only if the mesh runs Istio 1.1/1.2" in best.explanation
    assert "version unknown: give --istio-version" in best.explanation


def test_equal_split_causes_on_istio_1_2_put_the_port_name_first(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    diagnosis = diagnose(draw([0.5, 0.5]), expectation, rules=rules, istio_version=(1, 2))
    assert diagnosis.best is not None
    assert "Likely causes for Istio 1.2, most likely first: 1) the Service port's name" in diagnosis.best.explanation
    assert [(f.istio_code, f.severity) for f in diagnosis.findings] == [("IST0118", "warning")]


def test_a_missing_sidecar_seen_in_the_pod_is_named_as_the_cause(tutorial: tuple[RuleSet, Expectation]) -> None:
    rules, expectation = tutorial
    best = diagnose(draw([0.5, 0.5]), expectation, rules=rules, sidecar=False).best
    assert best is not None and "no sidecar admin port at 127.0.0.1:15000 in this pod" in best.explanation


def test_a_sidecar_egress_that_leaves_out_the_namespace_is_named(fixtures_dir: Path) -> None:
    sidecar = ("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\n"
               "spec:\n  egress:\n  - hosts: ['istio-system/*']\n")
    rules = load_inputs([str(fixtures_dir / f) for f in TUTORIAL])
    rules = RuleSet(objects=(*rules.objects, *load_text(sidecar, "sidecar.yaml")))
    best = diagnose(draw([0.5, 0.5]), resolve(rules, url=URL), rules=rules).best
    assert best is not None
    assert ("most likely first: 1) the client's Sidecar resource does not import the VirtualService, so the "
            "client's sidecar gets no route from it: Sidecar default/default (egress hosts istio-system/*) leaves "
            "out default/weather-backend.default.svc.cluster.local") in best.explanation


def test_a_client_namespace_without_injection_is_named(fixtures_dir: Path) -> None:
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {team: a}}\n"
    rules = load_inputs([str(fixtures_dir / f) for f in TUTORIAL])
    rules = RuleSet(objects=(*rules.objects, *load_text(namespace, "ns.yaml")))
    best = diagnose(draw([0.5, 0.5]), resolve(rules, url=URL), rules=rules).best
    assert best is not None
    assert "namespace default is given without istio-injection=enabled" in best.explanation
