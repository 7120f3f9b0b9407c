"""``respy.explain.analyze``: findings on the shared fixtures (read in place) and on small edited variants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from respy.explain.analyze import ERROR, INFO, WARNING, Finding, analyze, port_protocol
from respy.rules import K8sObject, RuleSet, load_inputs, load_text

ANALYZE = "upstream/istioctl-analyze-testdata/"
SAMPLES = "upstream/istio-samples/"
EDGE = "edge-cases/"
TUTORIAL = ("tutorial/weather-rules.yaml", "tutorial/weather-deployment.yaml")
BOOKINFO = SAMPLES + "bookinfo__platform__kube__bookinfo.yaml"
DR_ALL = SAMPLES + "bookinfo__networking__destination-rule-all.yaml"


def run(fixtures: Path, *files: str, host: str | None = None, istio_version: tuple[int, int] | None = None
        ) -> list[Finding]:
    rules = load_inputs([str(fixtures / f) for f in files], require_routing=False)
    return analyze(rules, host=host, istio_version=istio_version)


def pairs(findings: list[Finding], istio_code: str) -> set[str]:
    return {f.object for f in findings if f.istio_code == istio_code}


# ---------------------------------------------------------------------------------------------------
# istioctl analyze testdata: the codes analyzers_test.go expects


def test_port_names_without_protocol_are_ist0118(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, ANALYZE + "service-no-port-name.yaml")
    assert [f.istio_code for f in findings] == ["IST0118"] * 3
    assert {f.object for f in findings} == {"Service my-namespace1/my-service1", "Service my-namespace2/my-service2"}
    assert all(f.severity == INFO and f.code == "RSP001" for f in findings)  # no weighted route targets them
    assert {f.fix for f in findings} == {'name it "http" or set appProtocol: http',
                                         'rename it "http-foo" or set appProtocol: http'}


def test_named_ports_and_managed_services_are_clean(fixtures_dir: Path) -> None:
    assert run(fixtures_dir, ANALYZE + "service-port-name.yaml") == []


def test_missing_subset_and_mirror_subset_are_ist0101(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, ANALYZE + "virtualservice_destinationrules.yaml")
    assert pairs(findings, "IST0101") == {"VirtualService default/reviews-bogussubset",
                                          "VirtualService default/reviews-mirror-bogussubset"}
    assert all(f.severity == ERROR for f in findings)
    assert "503" in next(f.why for f in findings if f.object.endswith("reviews-bogussubset"))


def test_subset_selecting_no_pod_is_ist0173(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, ANALYZE + "destinationrule-subsets-not-select-pods.yaml")
    assert pairs(findings, "IST0173") == {"DestinationRule default/subsets-not-select-pods"}
    # no workload was supplied: reported, but only as info (it cannot be checked here)
    assert findings[0].severity == INFO


def test_conflicting_mesh_hosts_are_ist0109(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, ANALYZE + "virtualservice_conflictingmeshgatewayhosts.yaml")
    assert pairs(findings, "IST0109") == {
        "VirtualService team3/ratings", "VirtualService team4/ratings", "VirtualService foo/ratings",
        "VirtualService bar/ratings", "VirtualService foo/productpage", "VirtualService foo/bogus-productpage",
    }


def test_destination_hosts_and_ports(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, ANALYZE + "virtualservice_destinationhosts.yaml")
    assert pairs(findings, "IST0101") == {
        "VirtualService default/reviews-bogushost", "VirtualService default/reviews-bookinfo-other",
        "VirtualService default/reviews-mirror-bogushost", "VirtualService default/reviews-bogusport",
        "VirtualService istio-system/cross-namespace-details", "VirtualService hello/hello-export-to-bogus",
    }
    assert pairs(findings, "IST0112") == {"VirtualService default/reviews-2port-missing"}


def test_duplicate_and_shadowed_matches(fixtures_dir: Path) -> None:
    dup = run(fixtures_dir, ANALYZE + "virtualservice_dupmatches.yaml")
    assert pairs(dup, "IST0130") == {
        "VirtualService default/duplicate-match", "VirtualService foo/sample-foo-cluster01",
        "VirtualService default/duplicate-tcp-match", "VirtualService default/duplicate-empty-tcp",
        "VirtualService none/tls-routing",
    }
    assert all(f.severity == WARNING for f in dup if f.istio_code == "IST0130")
    assert {"VirtualService default/almost-duplicate-match", "VirtualService default/almost-duplicate-tcp-match",
            "VirtualService none/tls-routing-almostmatch"} <= pairs(dup, "IST0131")
    overlapping = run(fixtures_dir, ANALYZE + "virtualservice_overlappingmatches.yaml")
    assert pairs(overlapping, "IST0131") == {
        "VirtualService default/non-method-get", "VirtualService default/overlapping-in-single-match",
        "VirtualService default/overlapping-in-two-matches",
        "VirtualService default/overlapping-mathes-with-different-methods",
    }


def test_gateway_not_found_and_host_not_in_gateway(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, ANALYZE + "virtualservice_gateways.yaml")
    assert pairs(findings, "IST0101") == {"VirtualService default/httpbin-bogus"}
    assert pairs(findings, "IST0132") == {"VirtualService default/httpbin", "VirtualService default/cross-test"}


def test_whole_testdata_directory_reports_every_code(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, ANALYZE)
    codes = {f.istio_code for f in findings}
    assert {"IST0118", "IST0101", "IST0173", "IST0109", "IST0130", "IST0131", "IST0132", "IST0112"} <= codes
    assert [f.istio_code for f in findings if f.object.startswith("Service my-")] == ["IST0118"] * 3


# ---------------------------------------------------------------------------------------------------
# samples that should be clean


@pytest.mark.parametrize("files", [
    (BOOKINFO, DR_ALL, SAMPLES + "bookinfo__networking__virtual-service-reviews-90-10.yaml"),
    (BOOKINFO, DR_ALL, SAMPLES + "bookinfo__networking__virtual-service-all-v1.yaml",
     SAMPLES + "bookinfo__networking__bookinfo-gateway.yaml"),
    (BOOKINFO, SAMPLES + "bookinfo__platform__kube__bookinfo-versions.yaml",
     SAMPLES + "bookinfo__gateway-api__route-reviews-90-10.yaml"),
    (SAMPLES + "helloworld__helloworld.yaml", SAMPLES + "helloworld__helloworld-gateway.yaml"),
    (SAMPLES + "tcp-echo__tcp-echo-services.yaml", SAMPLES + "tcp-echo__tcp-echo-20-v2.yaml"),
], ids=["reviews-90-10", "all-v1+gateway", "gateway-api-90-10", "helloworld", "tcp-echo"])
def test_bookinfo_and_samples_are_clean(fixtures_dir: Path, files: tuple[str, ...]) -> None:
    assert run(fixtures_dir, *files) == []


# ---------------------------------------------------------------------------------------------------
# the tutorial's port-name bug


def test_tutorial_port_name_is_info_on_current_istio(fixtures_dir: Path) -> None:
    # istioctl reports IST0118 as Info (pkg/config/analysis/msg/messages.yaml, PortNameIsNotUnderNamingConvention):
    # since Istio 1.3 the port is sniffed and HTTP on it is routed by the HTTP table
    findings = run(fixtures_dir, *TUTORIAL)
    assert [(f.istio_code, f.severity) for f in findings] == [("IST0118", INFO)]
    assert "1.3" in findings[0].why and "VirtualService default/vs-weather-backend" in findings[0].why


def test_tutorial_port_name_is_a_warning_with_its_fix_on_istio_1_2(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, *TUTORIAL, istio_version=(1, 2))
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.code, finding.istio_code, finding.severity) == ("RSP001", "IST0118", WARNING)
    assert finding.object == "Service default/weather-backend"
    assert finding.where.endswith("weather-deployment.yaml:49")
    assert finding.message.startswith('port 5000 is named "backend"')
    assert finding.fix == 'rename it "http-backend" or set appProtocol: http'
    assert "VirtualService default/vs-weather-backend" in finding.why
    assert "sniffing" in finding.why and "1.3" in finding.why
    assert set(finding.to_dict()) == {"code", "istio_code", "severity", "object", "where", "message", "why", "fix"}


def test_port_finding_is_info_without_a_weighted_route(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, "tutorial/weather-deployment.yaml")
    assert [(f.istio_code, f.severity) for f in findings] == [("IST0118", INFO)]


def edited_tutorial(fixtures_dir: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> list[Finding]:
    """The tutorial with its weather-backend Service edited by ``edit`` (written to tmp_path)."""
    docs = list(yaml.safe_load_all((fixtures_dir / TUTORIAL[1]).read_text()))
    for doc in docs:
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "weather-backend":
            edit(doc)
    deployment = tmp_path / "weather-deployment.yaml"
    deployment.write_text(yaml.safe_dump_all(docs))
    rules = load_inputs([str(fixtures_dir / TUTORIAL[0]), str(deployment)], require_routing=False)
    return analyze(rules)


def set_port(**fields: str) -> Callable[[dict[str, Any]], None]:
    def edit(service: dict[str, Any]) -> None:
        service["spec"]["ports"][0].update(fields)

    return edit


def test_renamed_port_is_clean(fixtures_dir: Path, tmp_path: Path) -> None:
    assert edited_tutorial(fixtures_dir, tmp_path, set_port(name="http-backend")) == []


def test_app_protocol_http_is_clean(fixtures_dir: Path, tmp_path: Path) -> None:
    assert edited_tutorial(fixtures_dir, tmp_path, set_port(appProtocol="http")) == []


def test_app_protocol_wins_over_the_name(fixtures_dir: Path, tmp_path: Path) -> None:
    findings = edited_tutorial(fixtures_dir, tmp_path, set_port(name="http-backend", appProtocol="tcp"))
    # a TCP port: no IST0118, but the VirtualService's http rules (and weights) do not apply to it
    assert [(f.code, f.istio_code, f.severity) for f in findings] == [("RSP002", None, WARNING)]
    assert findings[0].object == "VirtualService default/vs-weather-backend"


def test_tutorial_subset_without_pods_names_existing_versions(fixtures_dir: Path, tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((fixtures_dir / TUTORIAL[0]).read_text()))
    dr = next(d for d in docs if d["kind"] == "DestinationRule")
    dr["spec"]["subsets"][1]["labels"] = {"version": "multi"}
    rules_file = tmp_path / "weather-rules.yaml"
    rules_file.write_text(yaml.safe_dump_all(docs))
    rules = load_inputs([str(rules_file), str(fixtures_dir / TUTORIAL[1])])
    findings = [f for f in analyze(rules) if f.istio_code == "IST0173"]
    assert len(findings) == 1
    assert findings[0].severity == ERROR
    assert 'subset "multiple" (version=multi)' in findings[0].message
    assert "version=single" in findings[0].message and "version=multiple" in findings[0].message


def test_host_filter(fixtures_dir: Path) -> None:
    assert len(run(fixtures_dir, *TUTORIAL, host="weather-backend")) == 1
    assert len(run(fixtures_dir, *TUTORIAL, host="weather-backend.default.svc.cluster.local:5000")) == 1
    assert run(fixtures_dir, *TUTORIAL, host="weather-frontend") == []


# ---------------------------------------------------------------------------------------------------
# weights, catch-alls, HTTPRoute


def test_weights_not_summing_to_100_are_info(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, EDGE + "02-vs-weights-relative-not-100.yaml")
    assert [(f.code, f.istio_code, f.severity) for f in findings] == [("RSP010", None, INFO)]
    assert "1.15" in findings[0].why and "25/75" in findings[0].message


def test_all_omitted_weights_are_ist0106(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, EDGE + "03-vs-multi-destination-no-weights-INVALID.yaml")
    assert [(f.istio_code, f.severity) for f in findings] == [("IST0106", ERROR)]


def test_negative_weight_is_ist0106() -> None:
    body = {"spec": {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": -5},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 105},
    ]}]}}
    vs = K8sObject("VirtualService", "networking.istio.io/v1", "reviews", "default", body, "vs.yaml", 1)
    findings = analyze(RuleSet(objects=(vs,)))
    assert [(f.istio_code, f.message) for f in findings] == [("IST0106", "http[0] has a negative weight (-5)")]


def test_missing_subset_edge_case(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, EDGE + "09-vs-missing-subset.yaml")
    assert [(f.istio_code, f.severity) for f in findings] == [("IST0101", ERROR)]
    assert '"v3"' in findings[0].message and "define v1" in findings[0].message


def test_second_catch_all_is_unreachable(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, SAMPLES + "bookinfo__networking__fault-injection-details-v1.yaml")
    assert [(f.istio_code, f.message) for f in findings] == [
        ("IST0130", "http[1] can never match: http[0] before it matches every request")]


def test_rule_after_prefix_slash_is_unreachable() -> None:
    body = {"spec": {"hosts": ["reviews"], "http": [
        {"match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"host": "reviews"}}]},
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews"}}]},
    ]}}
    vs = K8sObject("VirtualService", "networking.istio.io/v1", "reviews", "default", body, "vs.yaml", 1)
    assert [f.istio_code for f in analyze(RuleSet(objects=(vs,)))] == ["IST0130"]


def test_httproute_with_all_weights_zero_answers_500(fixtures_dir: Path) -> None:
    findings = run(fixtures_dir, EDGE + "12-httproute-all-zero-weights.yaml")
    assert [(f.code, f.severity) for f in findings] == [("RSP015", ERROR)]
    assert "500" in findings[0].why


def test_external_name_port_is_ist0150() -> None:
    body = {"spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80, "name": "tcp"}]}}
    svc = K8sObject("Service", "v1", "ext", "default", body, "svc.yaml", 1)
    assert [(f.istio_code, f.severity) for f in analyze(RuleSet(objects=(svc,)))] == [("IST0150", WARNING)]


@pytest.mark.parametrize(("port", "protocol"), [
    ({"name": "http-backend", "port": 5000}, "HTTP"),
    ({"name": "backend", "port": 5000}, ""),
    ({"name": "httpbackend", "port": 5000}, ""),
    ({"name": "tcp-backend", "port": 5000}, "TCP"),
    ({"name": "backend", "appProtocol": "http", "port": 5000}, "HTTP"),
    ({"name": "http", "appProtocol": "kubernetes.io/h2c", "port": 5000}, "HTTP2"),
    ({"name": "GRPC-Web-x", "port": 5000}, "GRPC-Web"),
    ({"port": 3306}, "TCP"),
    ({"name": "dns", "port": 53, "protocol": "UDP"}, "UDP"),
])
def test_port_protocol(port: dict[str, Any], protocol: str) -> None:
    assert port_protocol(port) == protocol


def test_vs_fields_istio_refuses_or_ignores() -> None:
    text = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n"
            "  http:\n  - fault: {abort: {http2Error: REFUSED_STREAM, percent: 5}}\n    route:\n"
            "    - destination: {host: r}\n")
    findings = analyze(RuleSet(objects=tuple(load_text(text, "r.yaml"))))
    assert {(f.code, f.istio_code, f.severity) for f in findings} == {("RSP017", "IST0106", ERROR),
                                                                      ("RSP018", "IST0133", WARNING)}
    assert any("abort.percent was removed" in f.message for f in findings)


def test_httproute_backends_istio_drops() -> None:
    # conversion.go buildDestination: InvalidDestinationNotFound / InvalidDestinationPermit
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: web-v1}\nspec: {ports: [{port: 80}]}\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata: {name: web-v2, namespace: other}\nspec: {ports: [{port: 80}]}\n"
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\nspec:\n"
            "  parentRefs: [{name: gw}]\n  rules:\n  - backendRefs: [{name: web-v1, port: 80}, "
            "{name: web-v3, port: 80}, {name: web-v2, namespace: other, port: 80}]\n")
    findings = [f for f in analyze(RuleSet(objects=tuple(load_text(text, "r.yaml")))) if f.code == "RSP019"]
    assert [f.message for f in findings] == [
        "rules[0]: backend Service default/web-v3 is not among the Services given",
        "rules[0]: backend other/web-v2 is in another namespace and no ReferenceGrant allows it"]


def test_several_sidecars_without_a_selector_in_one_namespace() -> None:
    # IST0111 MultipleSidecarsWithoutWorkloadSelectors (pkg/config/analysis/msg/messages.yaml); one with a
    # workloadSelector, or one in another namespace, is not counted
    def sidecar(name: str, ns: str = "default", selector: str = "") -> str:
        return (f"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\n"
                f"spec:\n{selector}  egress: [{{hosts: ['./*']}}]\n---\n")
    text = (sidecar("a") + sidecar("b") + sidecar("picky", selector="  workloadSelector: {labels: {app: x}}\n")
            + sidecar("c", ns="other"))
    findings = [f for f in analyze(RuleSet(objects=tuple(load_text(text, "r.yaml")))) if f.code == "RSP020"]
    assert [(f.object, f.istio_code, f.severity) for f in findings] == [
        ("Sidecar default/a", "IST0111", ERROR), ("Sidecar default/b", "IST0111", ERROR)]
    assert "2 Sidecars without a workloadSelector in namespace default" in findings[0].message


def test_a_sidecar_istio_refuses_is_reported() -> None:
    # validation.go ValidateSidecar: a short egress host is refused; istioctl reports schema errors as IST0106
    text = ("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\n"
            "spec:\n  egress: [{hosts: ['default/reviews', './*']}]\n---\n"
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: other}\n"
            "spec:\n  egress: [{hosts: ['./*', 'istio-system/*']}]\n")
    findings = [f for f in analyze(RuleSet(objects=tuple(load_text(text, "r.yaml")))) if f.code == "RSP021"]
    assert [(f.object, f.istio_code, f.severity) for f in findings] == [("Sidecar default/default", "IST0106", ERROR)]
    assert findings[0].message == ("is refused by Istio's validation: egress host 'default/reviews': short names "
                                   "(non FQDN) are not allowed")
