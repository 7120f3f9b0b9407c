"""The expected split of every fixture whose README row or header comment states one, read in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from respy._errors import NotRoutedError, RulesError
from respy.rules import load_inputs, resolve

SAMPLES = "upstream/istio-samples/"
GWAPI = "upstream/gateway-api-examples/"
ANALYZE = "upstream/istioctl-analyze-testdata/"
EDGE = "edge-cases/"
DR_ALL = SAMPLES + "bookinfo__networking__destination-rule-all.yaml"
JASON = {"end-user": "jason"}


@dataclass(frozen=True)
class Case:
    files: tuple[str, ...]
    url: str
    expected: dict[str, float]
    headers: dict[str, str] = field(default_factory=dict)
    namespace: str = "default"
    gateway: str | None = None


def vs(name: str, *extra: str) -> tuple[str, ...]:
    """A Bookinfo VirtualService sample together with the DestinationRules that define its subsets."""
    return (SAMPLES + f"bookinfo__networking__{name}.yaml", DR_ALL, *extra)


CASES: dict[str, Case] = {
    # tutorial/: weather-rules.yaml declares 90/10 single/multiple
    "tutorial-90-10": Case(("tutorial/weather-rules.yaml",), "http://weather-backend:5000/version",
                           {"single": 0.9, "multiple": 0.1}),
    "tutorial-dir": Case(("tutorial",), "http://weather-backend.default.svc:5000/version",
                         {"single": 0.9, "multiple": 0.1}),
    "tutorial-frontend-at-gateway": Case(("tutorial/weather-rules.yaml",), "http://35.1.2.3/",
                                         {"weather-frontend": 1.0}, gateway="gw-weather-frontend"),
    "tutorial-gateway-other-path-404": Case(("tutorial/weather-rules.yaml",), "http://35.1.2.3/x",
                                            {"HTTP 404 (no route matches)": 1.0}, gateway="gw-weather-frontend"),
    # upstream/istio-samples VirtualServices
    "reviews-90-10": Case(vs("virtual-service-reviews-90-10"), "http://reviews:9080/", {"v1": 0.9, "v2": 0.1}),
    "reviews-80-20": Case(vs("virtual-service-reviews-80-20"), "http://reviews:9080/", {"v1": 0.8, "v2": 0.2}),
    "reviews-50-v3": Case(vs("virtual-service-reviews-50-v3"), "http://reviews:9080/", {"v1": 0.5, "v3": 0.5}),
    "reviews-v2-v3": Case(vs("virtual-service-reviews-v2-v3"), "http://reviews:9080/", {"v2": 0.5, "v3": 0.5}),
    "reviews-v3": Case(vs("virtual-service-reviews-v3"), "http://reviews:9080/", {"v3": 1.0}),
    "test-v2-jason": Case(vs("virtual-service-reviews-test-v2"), "http://reviews:9080/", {"v2": 1.0}, JASON),
    "test-v2-others": Case(vs("virtual-service-reviews-test-v2"), "http://reviews:9080/", {"v1": 1.0},
                           {"end-user": "mary"}),
    "jason-v2-v3-jason": Case(vs("virtual-service-reviews-jason-v2-v3"), "http://reviews:9080/", {"v2": 1.0}, JASON),
    "jason-v2-v3-others": Case(vs("virtual-service-reviews-jason-v2-v3"), "http://reviews:9080/", {"v3": 1.0}),
    "all-v1-reviews": Case(vs("virtual-service-all-v1"), "http://reviews:9080/", {"v1": 1.0}),
    "all-v1-details": Case(vs("virtual-service-all-v1"), "http://details:9080/", {"v1": 1.0}),
    "all-v1-productpage": Case(vs("virtual-service-all-v1"), "http://productpage:9080/", {"v1": 1.0}),
    "details-v2": Case(vs("virtual-service-details-v2"), "http://details:9080/", {"v2": 1.0}),
    "ratings-db-reviews": Case(vs("virtual-service-ratings-db"), "http://reviews:9080/", {"v3": 1.0}),
    "ratings-db-ratings": Case(vs("virtual-service-ratings-db"), "http://ratings:9080/", {"v2": 1.0}),
    "ratings-mysql": Case(vs("virtual-service-ratings-mysql"), "http://ratings:9080/", {"v2-mysql": 1.0}),
    "ratings-mysql-vm": Case(vs("virtual-service-ratings-mysql-vm"), "http://ratings:9080/", {"v2-mysql-vm": 1.0}),
    "test-abort-jason": Case(vs("virtual-service-ratings-test-abort"), "http://ratings:9080/",
                             {"HTTP 500 (fault abort)": 1.0, "v1": 0.0}, JASON),
    "test-abort-others": Case(vs("virtual-service-ratings-test-abort"), "http://ratings:9080/", {"v1": 1.0}),
    "test-delay-jason": Case(vs("virtual-service-ratings-test-delay"), "http://ratings:9080/", {"v1": 1.0}, JASON),
    "fault-details-555": Case((SAMPLES + "bookinfo__networking__fault-injection-details-v1.yaml",),
                              "http://details:9080/", {"HTTP 555 (fault abort)": 1.0, "v1": 0.0}),
    "bookinfo-gateway-productpage": Case(vs("bookinfo-gateway"), "http://1.2.3.4:8080/productpage",
                                         {"productpage": 1.0}, gateway="bookinfo-gateway"),
    "bookinfo-gateway-static": Case(vs("bookinfo-gateway"), "http://1.2.3.4:8080/static/app.css",
                                    {"productpage": 1.0}, gateway="bookinfo-gateway"),
    "bookinfo-gateway-404": Case(vs("bookinfo-gateway"), "http://1.2.3.4:8080/admin",
                                 {"HTTP 404 (no route matches)": 1.0}, gateway="bookinfo-gateway"),
    "helloworld-gateway": Case((SAMPLES + "helloworld__helloworld-gateway.yaml",), "http://1.2.3.4/hello",
                               {"helloworld": 1.0}, gateway="helloworld-gateway"),
    "websockets-weight-100": Case((SAMPLES + "websockets__route.yaml",), "http://1.2.3.4/",
                                  {"tornado": 1.0}, gateway="tornado-gateway"),
    # upstream/istio-samples HTTPRoutes
    "gw-reviews-90-10": Case((SAMPLES + "bookinfo__gateway-api__route-reviews-90-10.yaml",), "http://reviews:9080/",
                             {"reviews-v1": 0.9, "reviews-v2": 0.1}),
    "gw-reviews-50-v3": Case((SAMPLES + "bookinfo__gateway-api__route-reviews-50-v3.yaml",), "http://reviews:9080/",
                             {"reviews-v1": 0.5, "reviews-v3": 0.5}),
    "gw-reviews-v1": Case((SAMPLES + "bookinfo__gateway-api__route-reviews-v1.yaml",), "http://reviews:9080/",
                          {"reviews-v1": 1.0}),
    "gw-reviews-v3": Case((SAMPLES + "bookinfo__gateway-api__route-reviews-v3.yaml",), "http://reviews:9080/",
                          {"reviews-v3": 1.0}),
    "gw-all-v1-ratings": Case((SAMPLES + "bookinfo__gateway-api__route-all-v1.yaml",), "http://ratings:9080/",
                              {"ratings-v1": 1.0}),
    "gw-bookinfo-gateway": Case((SAMPLES + "bookinfo__gateway-api__bookinfo-gateway.yaml",),
                                "http://1.2.3.4/api/v1/products/0", {"productpage": 1.0}, gateway="bookinfo-gateway"),
    "gw-helloworld-90-10": Case((SAMPLES + "helloworld__gateway-api__helloworld-route.yaml",), "http://1.2.3.4/hello",
                                {"helloworld-v1": 0.9, "helloworld-v2": 0.1}, gateway="helloworld-gateway"),
    "ambient-90-10": Case((SAMPLES + "ambient-argo__application__route-reviews-90-10.yaml",), "http://reviews:9080/",
                          {"reviews-v1": 0.9, "reviews-v2": 0.1}),
    # tcp rules: per connection (fixtures README: "0.8/0.2 of connections")
    "tcp-echo-20-v2-at-gateway": Case((SAMPLES + "tcp-echo__tcp-echo-20-v2.yaml",), "http://1.2.3.4:31400/",
                                      {"v1": 0.8, "v2": 0.2}, gateway="tcp-echo-gateway"),
    # helloworld with its workloads: the destination without subset is every pod (one ready pod per version)
    "helloworld-gateway-with-workloads": Case((SAMPLES + "helloworld__helloworld-gateway.yaml",
                                               SAMPLES + "helloworld__helloworld.yaml"), "http://1.2.3.4/hello",
                                              {"helloworld": 1.0}, gateway="helloworld-gateway"),
    # upstream/gateway-api-examples
    "simple-split": Case((GWAPI + "standard__traffic-splitting__simple-split.yaml",), "http://foo.example.com/",
                         {"foo-v1": 0.9, "foo-v2": 0.1}),
    "split-1-header": Case((GWAPI + "standard__traffic-splitting__traffic-split-1.yaml",), "http://foo.example.com/",
                           {"foo-v2": 1.0}, {"traffic": "test"}),
    "split-1-other": Case((GWAPI + "standard__traffic-splitting__traffic-split-1.yaml",), "http://foo.example.com/",
                          {"foo-v1": 1.0}),
    "split-2": Case((GWAPI + "standard__traffic-splitting__traffic-split-2.yaml",), "http://foo.example.com/",
                    {"foo-v1": 0.9, "foo-v2": 0.1}),
    "split-3-zero-weight": Case((GWAPI + "standard__traffic-splitting__traffic-split-3.yaml",),
                                "http://foo.example.com/", {"foo-v1": 0.0, "foo-v2": 1.0}),
    "grpc-split-2": Case((GWAPI + "standard__traffic-splitting__grpc-traffic-split-2.yaml",),
                         "http://foo.example.com/pkg.Svc/Get", {"foo-v1": 0.9, "foo-v2": 0.1}),
    "http-routing-foo-login": Case((GWAPI + "standard__http-routing__foo-httproute.yaml",
                                    GWAPI + "standard__http-routing__bar-httproute.yaml"),
                                   "http://foo.example.com/login/x", {"foo-svc": 1.0}, gateway="example-gateway"),
    "http-routing-bar-canary": Case((GWAPI + "standard__http-routing__foo-httproute.yaml",
                                     GWAPI + "standard__http-routing__bar-httproute.yaml"),
                                    "http://bar.example.com/", {"bar-svc-canary": 1.0}, {"env": "canary"},
                                    gateway="example-gateway"),
    "http-routing-bar-default": Case((GWAPI + "standard__http-routing__foo-httproute.yaml",
                                      GWAPI + "standard__http-routing__bar-httproute.yaml"),
                                     "http://bar.example.com/", {"bar-svc": 1.0}, gateway="example-gateway"),
    "conformance-70-30-0": Case((GWAPI + "conformance__tests__httproute-weight.yaml",), "http://gw.example/",
                                {"infra-backend-v1": 0.7, "infra-backend-v2": 0.3, "infra-backend-v3": 0.0},
                                namespace="gateway-conformance-infra", gateway="same-namespace"),
    "conformance-mesh-70-30": Case((GWAPI + "conformance__tests__mesh__httproute-weight.yaml",),
                                   "http://echo.gateway-conformance-mesh/", {"echo-v1": 0.7, "echo-v2": 0.3}),
    "mesh-split-v1": Case((GWAPI + "conformance__tests__mesh__mesh-split.yaml",),
                          "http://echo.gateway-conformance-mesh/v1", {"echo-v1": 1.0}),
    "mesh-split-v2": Case((GWAPI + "conformance__tests__mesh__mesh-split.yaml",),
                          "http://echo/v2", {"echo-v2": 1.0}, namespace="gateway-conformance-mesh"),
    "mesh-split-no-catch-all": Case((GWAPI + "conformance__tests__mesh__mesh-split.yaml",),
                                    "http://echo.gateway-conformance-mesh/v3", {"HTTP 404 (no route matches)": 1.0}),
    # edge-cases/ (expected outcomes from each file's header comment)
    "edge-01-port-name-bug": Case((EDGE + "01-tutorial-port-name-bug.yaml",), "http://backend:8080/",
                                  {"v1": 0.9, "v2": 0.1}, namespace="demo"),
    "edge-02-relative": Case((EDGE + "02-vs-weights-relative-not-100.yaml",), "http://reviews:9080/",
                             {"v1": 0.25, "v2": 0.75}),
    "edge-04-partial": Case((EDGE + "04-vs-partial-weights.yaml",), "http://reviews:9080/", {"v1": 1.0, "v2": 0.0}),
    "edge-05-single": Case((EDGE + "05-vs-single-destination-weight-ignored.yaml",), "http://reviews:9080/",
                           {"v3": 1.0}),
    "edge-06-api": Case((EDGE + "06-vs-first-match-wins-and-prefix-gotcha.yaml",), "http://reviews:9080/api/v2/items",
                        {"v1": 1.0}),
    "edge-06-apiary": Case((EDGE + "06-vs-first-match-wins-and-prefix-gotcha.yaml",), "http://reviews:9080/apiary",
                           {"v1": 1.0}),
    "edge-06-jason": Case((EDGE + "06-vs-first-match-wins-and-prefix-gotcha.yaml",), "http://reviews:9080/x",
                          {"v2": 1.0}, JASON),
    "edge-06-default": Case((EDGE + "06-vs-first-match-wins-and-prefix-gotcha.yaml",), "http://reviews:9080/x",
                            {"v1": 0.5, "v3": 0.5}),
    "edge-07-at-gateway": Case((EDGE + "07-vs-gateway-only-does-not-affect-mesh.yaml",),
                               "http://reviews.example.com/", {"v1": 0.8, "v2": 0.2}, gateway="bookinfo-gateway"),
    "edge-08-client-in-foo": Case((EDGE + "08-vs-short-name-resolves-to-rule-namespace.yaml",), "http://reviews:9080/",
                                  {"v1": 0.9, "v2": 0.1}, namespace="foo"),
    "edge-08-fqdn": Case((EDGE + "08-vs-short-name-resolves-to-rule-namespace.yaml",),
                         "http://reviews.foo.svc.cluster.local:9080/", {"v1": 0.9, "v2": 0.1}),
    "edge-09-missing-subset": Case((EDGE + "09-vs-missing-subset.yaml",), "http://reviews:9080/",
                                   {"v1": 0.5, "HTTP 503 (subset v3 of reviews not defined)": 0.5}),
    "edge-10-abort-plus-split": Case((EDGE + "10-vs-fault-abort-plus-split.yaml",), "http://ratings:9080/",
                                     {"HTTP 500 (fault abort)": 0.2, "v1": 0.4, "v2": 0.4}),
    "edge-11-default-weights": Case((EDGE + "11-httproute-default-weights.yaml",), "http://reviews:9080/",
                                    {"reviews-v1": 0.5, "reviews-v2": 0.5}),
    "edge-12-all-zero": Case((EDGE + "12-httproute-all-zero-weights.yaml",), "http://reviews:9080/",
                             {"HTTP 500 (no backend with weight > 0)": 1.0, "reviews-v1": 0.0, "reviews-v2": 0.0}),
    "edge-13-login-exact": Case((EDGE + "13-httproute-precedence-not-list-order.yaml",), "http://www.example.com/login",
                                {"login-v1": 1.0}, gateway="web-gateway"),
    "edge-13-shop-prefix": Case((EDGE + "13-httproute-precedence-not-list-order.yaml",),
                                "http://www.example.com/shop/cart", {"shop-v1": 0.9, "shop-v2": 0.1},
                                gateway="web-gateway"),
    "edge-13-shopping": Case((EDGE + "13-httproute-precedence-not-list-order.yaml",), "http://www.example.com/shopping",
                             {"web-v1": 1.0}, gateway="web-gateway"),
    # istioctl-analyze-testdata: the one mesh VS for foo/reviews that conflicts with nothing
    "analyze-reviews-no-conflict": Case((ANALYZE + "virtualservice_conflictingmeshgatewayhosts.yaml",),
                                        "http://reviews:9080/", {"reviews": 1.0}, namespace="foo"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_expected_split(fixtures_dir: Path, case: Case) -> None:
    rules = load_inputs([str(fixtures_dir / f) for f in case.files])
    expectation = resolve(rules, url=case.url, headers=case.headers, namespace=case.namespace, gateway=case.gateway)
    assert expectation.probabilities == pytest.approx(case.expected)
    assert sum(expectation.probabilities.values()) == pytest.approx(1.0)


INVALID: dict[str, tuple[str, str, str]] = {
    # (file, url, what the message must say)
    "edge-03-no-weights": (EDGE + "03-vs-multi-destination-no-weights-INVALID.yaml", "http://reviews:9080/",
                           "total destination weight = 0"),
    "ist0109-productpage": (ANALYZE + "virtualservice_conflictingmeshgatewayhosts.yaml", "http://productpage:9080/",
                            "IST0109"),
    "ist0109-ratings": (ANALYZE + "virtualservice_conflictingmeshgatewayhosts.yaml", "http://ratings:9080/",
                        "IST0109"),
}


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_invalid_rules_are_exit_2(fixtures_dir: Path, case: tuple[str, str, str]) -> None:
    file, url, message = case
    rules = load_inputs([str(fixtures_dir / file)])
    gateway = "tcp-echo-gateway" if "tcp-echo" in file else None
    with pytest.raises(RulesError) as caught:
        resolve(rules, url=url, namespace="foo" if "analyze" in file else "default", gateway=gateway)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2
    assert caught.value.file is not None or "IST0109" in message


def test_invalid_weights_name_file_and_line(fixtures_dir: Path) -> None:
    file = fixtures_dir / EDGE / "03-vs-multi-destination-no-weights-INVALID.yaml"
    with pytest.raises(RulesError) as caught:
        resolve(load_inputs([str(file)]), url="http://reviews:9080/")
    assert caught.value.file == str(file)
    assert caught.value.line == 13  # the `- route:` line of http[0]


@pytest.mark.parametrize(
    ("file", "url", "namespace"),
    [
        (EDGE + "07-vs-gateway-only-does-not-affect-mesh.yaml", "http://reviews:9080/", "default"),
        (EDGE + "07-vs-gateway-only-does-not-affect-mesh.yaml", "http://reviews.example.com/", "default"),
        (EDGE + "08-vs-short-name-resolves-to-rule-namespace.yaml", "http://reviews:9080/", "default"),
    ],
)
def test_rules_that_do_not_cover_the_request(fixtures_dir: Path, file: str, url: str, namespace: str) -> None:
    rules = load_inputs([str(fixtures_dir / file)])
    with pytest.raises(NotRoutedError) as caught:
        resolve(rules, url=url, namespace=namespace)
    assert "reviews" in str(caught.value) and "cover" in str(caught.value)
    if "example.com" in url:
        assert "only at gateway bookinfo-gateway" in str(caught.value)


def test_tutorial_outcomes_name_their_manifest(fixtures_dir: Path) -> None:
    rules = load_inputs([str(fixtures_dir / "tutorial" / "weather-rules.yaml")])
    expectation = resolve(rules, url="http://weather-backend:5000/version")
    single = expectation.outcome("single")
    assert single.identifiers == ("single",)
    assert single.source.startswith("VirtualService default/vs-weather-backend (")
    assert single.source.endswith("weather-rules.yaml:35)")
    assert expectation.route == "VirtualService default/vs-weather-backend, http[0]"
    assert expectation.host == "weather-backend.default.svc.cluster.local"
    assert expectation.sources == (str(fixtures_dir / "tutorial" / "weather-rules.yaml"),)


@pytest.mark.parametrize(
    "host", ["weather-backend", "weather-backend.default", "weather-backend.default.svc",
             "weather-backend.default.svc.cluster.local"],
)
def test_every_spelling_of_the_service_is_the_same_host(fixtures_dir: Path, host: str) -> None:
    rules = load_inputs([str(fixtures_dir / "tutorial" / "weather-rules.yaml")])
    expectation = resolve(rules, url=f"http://{host}:5000/version")
    assert expectation.probabilities == pytest.approx({"single": 0.9, "multiple": 0.1})


def test_httproute_identifiers_include_per_version_service_labels(fixtures_dir: Path) -> None:
    rules = load_inputs([
        str(fixtures_dir / SAMPLES / "bookinfo__gateway-api__route-reviews-90-10.yaml"),
        str(fixtures_dir / SAMPLES / "bookinfo__platform__kube__bookinfo-versions.yaml"),
    ])
    expectation = resolve(rules, url="http://reviews:9080/")
    # `app: reviews` is shared by both backends, so it names neither and is left out
    assert expectation.outcome("reviews-v2").identifiers == ("reviews-v2", "v2")
    assert expectation.outcome("reviews-v1").identifiers == ("reviews-v1", "v1")


def test_unreachable_second_catch_all_is_warned(fixtures_dir: Path) -> None:
    rules = load_inputs([str(fixtures_dir / SAMPLES / "bookinfo__networking__fault-injection-details-v1.yaml")])
    expectation = resolve(rules, url="http://details:9080/")
    assert any("IST0130" in w for w in expectation.warnings)
    assert expectation.outcome("HTTP 555 (fault abort)").status == 555


def test_whole_corpus_loads(fixtures_dir: Path) -> None:
    rules = load_inputs([str(p) for p in sorted(fixtures_dir.glob("*/")) if p.name != "upstream"]
                        + [str(p) for p in sorted((fixtures_dir / "upstream").iterdir()) if any(p.glob("*.yaml"))])
    kinds = {o.kind for o in rules.objects}
    assert {"VirtualService", "DestinationRule", "HTTPRoute", "GRPCRoute", "Gateway", "Service", "ServiceEntry",
            "Deployment", "TCPRoute"} <= kinds
    assert all(o.line is not None and o.line >= 1 for o in rules.objects)
