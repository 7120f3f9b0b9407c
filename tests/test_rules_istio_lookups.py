"""Issue 16: the split Istio and the Gateway API really give. One small YAML, one request and the expected split
per behaviour; each test names the istio/istio (@86c9f01f) or gateway-api source line it rests on."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from respy._errors import NotRoutedError, RulesError
from respy.check.assign import assign
from respy.rules import Expectation, RuleSet, load_text, resolve
from respy.tally import Kind, Row


def rules(text: str) -> RuleSet:
    return RuleSet(objects=tuple(load_text(text, "rules.yaml")))


def split(text: str, url: str = "http://reviews:9080/", headers: Mapping[str, str] | None = None,
          **kwargs: object) -> dict[str, float]:
    return {k: round(v, 6) for k, v in expect(text, url, headers, **kwargs).probabilities.items()}


def expect(text: str, url: str = "http://reviews:9080/", headers: Mapping[str, str] | None = None,
           **kwargs: object) -> Expectation:
    return resolve(rules(text), url=url, headers=headers, **kwargs)  # type: ignore[arg-type]


def service(name: str = "reviews", ns: str = "default", port: str = "{port: 9080, name: http}",
            selector: str = "{app: reviews}") -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  selector: {selector}\n  ports: [{port}]\n---\n")


def deployment(name: str, version: str, replicas: int = 1, app: str = "reviews", ns: str = "default") -> str:
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {app}, version: {version}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {app}, version: {version}}}}}\n---\n")


def dr(name: str, ns: str, host: str, subsets: str, extra: str = "") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  host: {host}\n{extra}  subsets: {subsets}\n---\n")


def vs(http: str, *, hosts: str = "[reviews]", ns: str = "default", name: str = "reviews", extra: str = "") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  hosts: {hosts}\n{extra}  http:\n{http}---\n")


SPLIT_90_10 = ("  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}\n"
               "    - {destination: {host: reviews, subset: v2}, weight: 10}\n")
TO_V2 = "  - route:\n    - destination: {host: reviews.default.svc.cluster.local, subset: v2}\n"
SUBSETS = "[{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]"
WORKLOADS = service() + deployment("reviews-v1", "v1") + deployment("reviews-v2", "v2", replicas=3)


def ok(*labels: str) -> list[Row]:
    return [Row(label=label, count=10, kind=Kind.OK, status=200) for label in labels]


# -- 1. destinations -> pods (cluster_builder.go buildSubsetCluster; route.go GetDestinationCluster) ------------


def test_destination_without_subset_is_answered_by_every_pod_of_the_service() -> None:
    # route.go GetDestinationCluster: no subset -> outbound|9080||reviews...: every ready endpoint, all versions
    text = WORKLOADS + vs("  - route:\n    - destination: {host: reviews}\n")
    expectation = expect(text)
    assert expectation.probabilities == {"reviews": 1.0}
    (reviews,) = expectation.outcomes
    assert reviews.endpoints == (("reviews-v1", 1), ("reviews-v2", 3))  # the secondary split: by ready pods
    assert any("reviews-v1 1 (25%), reviews-v2 3 (75%)" in n and "not judged" in n for n in expectation.notes)
    assignment = assign(ok("reviews v1", "reviews v2", "reviews-v2-6c8d9e0f1-klmno"), expectation)
    assert assignment.counts == {"reviews": 30} and not assignment.undeclared


def test_subset_whose_labels_select_no_pod_answers_503_for_its_share() -> None:
    # an empty cluster: Envoy answers 503 UH (no healthy upstream); istioctl's IST0173 says the same
    text = service() + deployment("reviews-v1", "v1") + dr("reviews", "default", "reviews", SUBSETS) + vs(SPLIT_90_10)
    assert split(text) == {"v1": 0.9, "HTTP 503 (subset v2 of reviews has no pod)": 0.1}


def test_without_workloads_the_split_is_todays_and_the_missing_facts_are_said() -> None:
    text = dr("reviews", "default", "reviews", SUBSETS) + vs(SPLIT_90_10)
    expectation = expect(text)
    assert expectation.probabilities == {"v1": 0.9, "v2": 0.1}
    missing = [n for n in expectation.notes if "its Service not given" in n]
    assert len(missing) == 1 and missing[0].startswith("reviews: ")  # one note for the host, not one per subset


def test_pod_hostnames_are_matched_through_their_owners() -> None:
    text = WORKLOADS + dr("reviews", "default", "reviews", SUBSETS) + vs(SPLIT_90_10)
    expectation = expect(text)
    rows = ok("reviews-v1-5f7d8c9b4-abcde", "Hello from reviews-v2-6c8d9e0f1-klmno")
    assert assign(rows, expectation).counts == {"v1": 10, "v2": 10}


def test_statefulset_pods_are_named_by_ordinal() -> None:
    sts = ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db-v2}\nspec:\n  replicas: 2\n"
           "  template:\n    metadata: {labels: {app: reviews, version: v2}}\n---\n")
    text = service() + deployment("reviews-v1", "v1") + sts + dr("reviews", "default", "reviews", SUBSETS) \
        + vs(SPLIT_90_10)
    assert assign(ok("db-v2-1"), expect(text)).counts == {"v1": 0, "v2": 10}


# -- 2. the lookups Istio does ---------------------------------------------------------------------------------


def two_level_drs(client_subsets: str = "[{name: v1, labels: {version: v1}}]") -> str:
    return (dr("client-side", "frontend", "reviews.default.svc.cluster.local", client_subsets)
            + dr("reviews", "default", "reviews", SUBSETS)
            + vs("  - route:\n    - destination: {host: reviews.default.svc.cluster.local, subset: v2}\n",
                 hosts="[reviews.default.svc.cluster.local]", ns="frontend"))


def test_destination_rule_in_the_clients_namespace_wins_and_levels_do_not_merge() -> None:
    # push_context.go destinationRule(): client namespace first; the first level with a DR for the host wins
    url = "http://reviews.default.svc.cluster.local:9080/"
    assert split(two_level_drs(), url, namespace="frontend") == {"HTTP 503 (subset v2 of reviews not defined)": 1.0}
    assert split(two_level_drs(), url, namespace="default") == {"v2": 1.0}


def test_destination_rule_of_the_service_namespace_needs_to_be_exported() -> None:
    # push_context.go getExportedDestinationRuleFromNamespace: exportTo hides it; the root namespace comes next
    text = (dr("reviews", "default", "reviews", "[{name: v1, labels: {version: v1}}]", extra="  exportTo: ['.']\n")
            + dr("global", "istio-system", "reviews.default.svc.cluster.local", SUBSETS)
            + vs(TO_V2, hosts="[reviews.default.svc.cluster.local]", ns="frontend"))
    assert split(text, "http://reviews.default.svc.cluster.local/", namespace="frontend") == {"v2": 1.0}


def test_within_a_level_the_exact_host_beats_a_wildcard() -> None:
    # config.go MostSpecificHostMatch: an exact host wins, no merging with the wildcard rule
    text = (dr("exact", "default", "reviews", "[{name: v1, labels: {version: v1}}]")
            + dr("wild", "default", "'*.default.svc.cluster.local'", SUBSETS) + vs(TO_V2))
    assert split(text) == {"HTTP 503 (subset v2 of reviews not defined)": 1.0}


def dr_at(name: str, ns: str, host: str, subsets: str, at: str, extra: str = "") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}, "
            f"creationTimestamp: '{at}'}}\nspec:\n  host: {host}\n{extra}  subsets: {subsets}\n---\n")


V1_ONLY = "[{name: v1, labels: {version: v1}}]"
V2_ONLY = "[{name: v2, labels: {version: v2}}]"
HALF_HALF = ("  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 50}\n"
             "    - {destination: {host: reviews, subset: v2}, weight: 50}\n")


def test_several_destination_rules_for_one_host_merge_their_subsets() -> None:
    # destination_rule.go mergeDestinationRule: "Unique subsets (based on subset name) are concatenated to the
    # original rule's list of subsets" (same namespace, same exportTo); before, respy used the first DR only and
    # gave v2's share 503
    text = dr("reviews-v1", "default", "reviews", V1_ONLY) + dr("reviews-v2", "default", "reviews", V2_ONLY) \
        + vs(HALF_HALF)
    expectation = expect(text)
    assert split(text) == {"v1": 0.5, "v2": 0.5}
    assert any("are merged as istiod merges them" in n for n in expectation.notes)


def test_a_repeated_subset_name_keeps_the_first_rules_labels() -> None:
    # mergeDestinationRule: a subset whose name is already there is not appended (DuplicatedSubsets metric);
    # setDestinationRules sorts by creationTimestamp first (sortConfigBySelectorAndCreationTime)
    newer = dr_at("b-newer", "default", "reviews", "[{name: v1, labels: {version: v2}}]", "2024-01-02T00:00:00Z")
    older = dr_at("z-older", "default", "reviews", V1_ONLY, "2024-01-01T00:00:00Z")
    text = service() + deployment("reviews-v1", "v1") + deployment("reviews-v2", "v2") + newer + older \
        + vs("  - route:\n    - destination: {host: reviews, subset: v1}\n")
    (outcome,) = expect(text).outcomes
    assert outcome.endpoints == (("reviews-v1", 1),)  # the older rule's labels: version v1


def test_without_timestamps_the_name_breaks_the_tie() -> None:
    # sortConfigBySelectorAndCreationTime: equal (zero) creation times -> strings.Compare(a.Name, b.Name)
    text = service() + deployment("reviews-v1", "v1") + deployment("reviews-v2", "v2") \
        + dr("b", "default", "reviews", "[{name: v1, labels: {version: v2}}]") \
        + dr("a", "default", "reviews", V1_ONLY) \
        + vs("  - route:\n    - destination: {host: reviews, subset: v1}\n")
    (outcome,) = expect(text).outcomes
    assert outcome.endpoints == (("reviews-v1", 1),)


def test_destination_rules_with_different_export_to_do_not_merge() -> None:
    # mergeDestinationRule (ENABLE_ENHANCED_DESTINATIONRULE_MERGE, default on): exportTo sets that differ stay
    # separate entries; SidecarScope.DestinationRule (sidecar.go) takes the last one without a workloadSelector
    private = dr_at("private", "default", "reviews", V1_ONLY, "2024-01-01T00:00:00Z", extra="  exportTo: ['.']\n")
    public = dr_at("public", "default", "reviews", V2_ONLY, "2024-01-02T00:00:00Z", extra="  exportTo: ['*']\n")
    assert split(private + public + vs(HALF_HALF)) == {"HTTP 503 (subset v1 of reviews not defined)": 0.5,
                                                       "v2": 0.5}
    # a client in another namespace sees the exported rule only (getExportedDestinationRuleFromNamespace)
    url = "http://reviews.default.svc.cluster.local/"
    other = vs(HALF_HALF.replace("host: reviews,", "host: reviews.default.svc.cluster.local,"),
               hosts="[reviews.default.svc.cluster.local]", ns="frontend")
    assert split(private + public + other, url, namespace="frontend") == {
        "HTTP 503 (subset v1 of reviews not defined)": 0.5, "v2": 0.5}


def test_a_destination_rule_with_a_workload_selector_is_not_used_and_said() -> None:
    # sidecar.go DestinationRule: a workloadSelector DR applies only to the client pods it selects
    selected = dr("for-some-clients", "default", "reviews", V2_ONLY,
                  extra="  workloadSelector: {matchLabels: {app: productpage}}\n")
    text = selected + dr("reviews", "default", "reviews", V1_ONLY) + vs(HALF_HALF)
    expectation = expect(text)
    assert expectation.probabilities == {"v1": 0.5, "HTTP 503 (subset v2 of reviews not defined)": 0.5}
    assert any("workloadSelector" in w and "app': 'productpage" in w for w in expectation.warnings)


GATEWAY = ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\n"
           "spec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*.example.com']\n---\n")


def test_export_to_counts_at_gateways_too() -> None:
    # push_context.go VirtualServicesForGateway(proxyNamespace, gateway): only VSs exported to the gateway's namespace
    route = "  - route:\n    - destination: {host: web.apps.svc.cluster.local}\n"
    hidden = vs(route, hosts="[web.example.com]", ns="apps", name="web",
                extra="  gateways: [istio-system/gw]\n  exportTo: ['.']\n")
    assert split(GATEWAY + hidden, "http://web.example.com/", gateway="istio-system/gw") == {
        "HTTP 404 (no route)": 1.0}
    shown = hidden.replace("exportTo: ['.']", "exportTo: ['.', istio-system]")
    assert split(GATEWAY + shown, "http://web.example.com/", gateway="istio-system/gw") == {
        "web": 1.0}


def test_a_dotted_partial_host_is_not_expanded_and_matches_no_service() -> None:
    # config.go ResolveShortnameToFQDN keeps "reviews.default"; httproute.go selectVirtualServices drops it on 9080
    text = vs(TO_V2, hosts="[reviews.default]")
    with pytest.raises(NotRoutedError):
        expect(text, "http://reviews.default:9080/")
    from respy.explain.analyze import analyze

    assert [f.code for f in analyze(rules(text))] == ["RSP016"]


def test_match_gateways_cannot_add_mesh() -> None:
    # push_context.go getGatewayNames: the top-level gateways decide which proxies get the VirtualService
    text = vs("  - match: [{gateways: [mesh]}]\n    route:\n    - destination: {host: reviews}\n",
              extra="  gateways: [gw]\n")
    with pytest.raises(NotRoutedError):
        expect(text)


def test_a_star_host_is_refused_for_the_mesh() -> None:
    # validation.go ValidateVirtualService: "wildcard host * is not allowed for virtual services bound to the mesh"
    with pytest.raises(NotRoutedError):
        expect(vs(TO_V2, hosts="['*']"))


def test_delegates_inherit_the_root_rules_fault() -> None:
    # virtualservice.go mergeHTTPRoute: `if delegate.Fault == nil { delegate.Fault = root.Fault }`
    root = vs("  - match: [{uri: {prefix: /}}]\n    delegate: {name: reviews-delegate}\n"
              "    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}\n")
    delegate = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: reviews-delegate, namespace: default}\nspec:\n  http:\n"
                "  - route:\n    - destination: {host: reviews, subset: v2}\n---\n")
    text = dr("reviews", "default", "reviews", SUBSETS) + root + delegate
    assert split(text) == {"v2": 0.5, "HTTP 503 (fault abort)": 0.5}


def test_abort_percent_was_removed_and_is_a_warning_naming_the_field() -> None:
    # route.go TranslateFault reads only abort.Percentage; `percent` is a reserved field of the API
    text = dr("reviews", "default", "reviews", SUBSETS) + vs(
        "  - fault: {abort: {httpStatus: 500, percent: 50}}\n    route:\n    - destination: {host: reviews, "
        "subset: v1}\n")
    expectation = expect(text)
    assert expectation.probabilities == {"v1": 1.0, "HTTP 500 (fault abort)": 0.0}
    assert any("http[0].fault.abort: abort.percent was removed" in w for w in expectation.warnings)


def test_an_http2_error_abort_makes_the_virtual_service_invalid() -> None:
    # validation.go validateHTTPFaultInjectionAbort: "HTTP/2 abort fault injection not supported yet"
    text = vs("  - fault: {abort: {http2Error: REFUSED_STREAM, percentage: {value: 10}}}\n"
              "    route:\n    - destination: {host: reviews}\n")
    with pytest.raises(RulesError, match="HTTP/2 abort fault injection not supported yet"):
        expect(text)


def test_unknown_fields_are_warnings_naming_the_field() -> None:
    text = vs("  - route:\n    - destination: {host: reviews}\n      wieght: 10\n")
    assert any("unknown field http[0].route[0].wieght" in w for w in expect(text).warnings)


@pytest.mark.parametrize(("regex", "path", "expected"), [
    ("'(?i)/API/.*'", "/api/x", "v2"),   # RE2 inline flag
    ("'/v[0-9]+'", "/v12/x", "v1"),      # full match only
])
def test_regexes_are_re2(regex: str, path: str, expected: str) -> None:
    # Envoy matches safe_regex with RE2; Istio validates with Go regexp (RE2 syntax)
    text = dr("reviews", "default", "reviews", SUBSETS) + vs(
        f"  - match: [{{uri: {{regex: {regex}}}}}]\n    route:\n    - destination: {{host: reviews, subset: v2}}\n"
        "  - route:\n    - destination: {host: reviews, subset: v1}\n")
    assert split(text, f"http://reviews{path}") == {expected: 1.0}


def test_a_regex_re2_refuses_is_an_error() -> None:
    text = vs("  - match: [{uri: {regex: '/(?!admin).*'}}]\n    route:\n    - destination: {host: reviews}\n")
    with pytest.raises(RulesError, match="invalid perl operator"):
        expect(text)


def test_the_port_is_the_one_dialled_never_the_host_headers() -> None:
    # the listener (and so the route table) is picked by the connection's destination port
    text = dr("reviews", "default", "reviews", SUBSETS) + vs(
        "  - match: [{port: 5000}]\n    route:\n    - destination: {host: reviews, subset: v2}\n"
        "  - route:\n    - destination: {host: reviews, subset: v1}\n")
    assert split(text, "http://10.0.0.7:5000/", {"Host": "reviews"}) == {"v2": 1.0}
    assert split(text, "http://10.0.0.7:5000/", {"Host": "reviews:9080"}) == {"v2": 1.0}
    assert split(text, "http://reviews/", {"Host": "reviews:5000"}) == {"v1": 1.0}


def test_a_virtual_service_host_outside_the_gateways_servers_gets_404() -> None:
    # gateway.go: the virtual host is the intersection of server hosts and VS hosts (host/names.go Intersection)
    text = GATEWAY + vs("  - route:\n    - destination: {host: web}\n", hosts="['*']",
                        extra="  gateways: [istio-system/gw]\n")
    assert split(text, "http://web.example.com/", gateway="istio-system/gw") == {"web": 1.0}
    outside = text.replace("hosts: ['*']", "hosts: [web.other.org]")
    assert split(outside, "http://web.example.com/", gateway="istio-system/gw") == {
        "HTTP 404 (no route)": 1.0}


TWO_SERVERS = ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\n"
               "spec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['a.example.com']\n"
               "  - port: {number: 8080, name: http-alt, protocol: HTTP}\n    hosts: ['b.example.com']\n---\n")


def test_a_gateway_routes_a_host_only_on_the_ports_whose_servers_take_it() -> None:
    # gateway.go buildGatewayHTTPRouteConfig: one route table per server port (model/gateway.go gatewayRDSRouteName
    # "http.<port>"), built from the servers on that port; match.port is the server's port (route.go)
    text = TWO_SERVERS + vs("  - match: [{port: 8080}]\n    route:\n    - destination: {host: alt}\n"
                            "  - route:\n    - destination: {host: web}\n",
                            hosts="[a.example.com, b.example.com]", extra="  gateways: [istio-system/gw]\n")
    assert split(text, "http://a.example.com/", gateway="istio-system/gw") == {"web": 1.0}
    assert split(text, "http://b.example.com:8080/", gateway="istio-system/gw") == {"alt": 1.0}
    on_80 = expect(text, "http://b.example.com/", gateway="istio-system/gw")
    assert on_80.probabilities == {"HTTP 404 (no route)": 1.0}
    assert split(text, "http://a.example.com:8080/", gateway="istio-system/gw") == {"HTTP 404 (no route)": 1.0}
    only_b = text.replace("hosts: [a.example.com, b.example.com]", "hosts: [b.example.com]")
    assert any("on port(s) 8080 only, not on port 80" in w
               for w in expect(only_b, "http://b.example.com/", gateway="istio-system/gw").warnings)


def test_a_port_no_server_of_the_gateway_declares_reaches_no_listener() -> None:
    # gateway.go buildGatewayListeners: a listener per server port, none on other ports
    text = TWO_SERVERS + vs("  - route:\n    - destination: {host: web}\n", hosts="[a.example.com]",
                            extra="  gateways: [istio-system/gw]\n")
    with pytest.raises(NotRoutedError, match="gateway gw has no server on port 9090 \\(its server ports: 80, 8080\\)"):
        expect(text, "http://a.example.com:9090/", gateway="gw")


def test_a_gateway_without_its_gateway_object_takes_every_port() -> None:
    # the Gateway was not given: its servers are unknown, so the request's port is taken to be served
    text = vs("  - route:\n    - destination: {host: web}\n", hosts="[a.example.com]", extra="  gateways: [gw]\n")
    assert split(text, "http://a.example.com:9090/", gateway="gw") == {"web": 1.0}
    assert split(text, "http://c.example.com:9090/", gateway="gw") == {"HTTP 404 (no route)": 1.0}


def test_gateway_virtual_services_on_one_host_merge_with_catch_alls_last() -> None:
    # route.go SortVHostRoutes: catch-all routes move to the end of the merged virtual host
    first = vs("  - route:\n    - destination: {host: web}\n", hosts="[web.example.com]", name="a",
               extra="  gateways: [istio-system/gw]\n")
    second = vs("  - match: [{uri: {prefix: /shop}}]\n    route:\n    - destination: {host: shop}\n",
                hosts="[web.example.com]", name="b", extra="  gateways: [istio-system/gw]\n")
    assert split(GATEWAY + first + second, "http://web.example.com/shop", gateway="istio-system/gw") == {"shop": 1.0}


# -- Gateway API (conversion.go) --------------------------------------------------------------------------------


def route(backends: str, *, parent: str = "{name: gw}", ns: str = "default", name: str = "web",
          matches: str = "") -> str:
    return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  parentRefs: [{parent}]\n  rules:\n  - {matches}backendRefs: {backends}\n---\n")


WEB_SERVICES = service("web-v1", selector="{app: web, version: v1}", port="{port: 80, name: http}") \
    + service("web-v2", "other", selector="{app: web, version: v2}", port="{port: 80, name: http}")


def test_a_backend_service_that_does_not_exist_answers_500() -> None:
    # conversion.go buildDestination: InvalidDestinationNotFound; route.go applyHTTPRouteDestination sets
    # cluster_not_found_response_code INTERNAL_SERVER_ERROR for Gateway API routes (Istio >= 1.15)
    text = WEB_SERVICES + route("[{name: web-v1, port: 80, weight: 80}, {name: web-v3, port: 80, weight: 20}]")
    assert split(text, "http://web.example.com/", gateway="gw") == {
        "web-v1": 0.8, "HTTP 500 (invalid backend default/web-v3)": 0.2}
    assert split(text, "http://web.example.com/", gateway="gw", istio_version="1.14") == {
        "web-v1": 0.8, "HTTP 503 (invalid backend default/web-v3)": 0.2}


GRANT = ("apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: other}\n"
         "spec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]\n"
         "  to: [{group: '', kind: Service}]\n---\n")
CROSS = route("[{name: web-v1, port: 80, weight: 50}, {name: web-v2, namespace: other, port: 80, weight: 50}]")


def test_a_cross_namespace_backend_at_a_gateway_needs_a_reference_grant() -> None:
    # conversion.go buildDestination: enforceRefGrant -> InvalidDestinationPermit without a grant
    assert split(WEB_SERVICES + CROSS, "http://web.example.com/", gateway="gw") == {
        "web-v1": 0.5, "HTTP 500 (invalid backend other/web-v2)": 0.5}
    assert split(WEB_SERVICES + CROSS + GRANT, "http://web.example.com/", gateway="gw") == {
        "web-v1": 0.5, "web-v2": 0.5}


def test_mesh_routes_need_no_reference_grant() -> None:
    # GEP-1294: a route attached to a Service is a mesh route; Istio does not enforce ReferenceGrants for it
    mesh = CROSS.replace("parentRefs: [{name: gw}]", "parentRefs: [{kind: Service, group: '', name: web-v1}]")
    assert split(WEB_SERVICES + mesh, "http://web-v1/") == {"web-v1": 0.5, "web-v2": 0.5}


def test_path_prefix_ignores_a_trailing_slash_when_ranking() -> None:
    # conversion.go createURIMatch: "When specified, a trailing `/` is ignored" -> /shop/ and /shop tie on length
    # in sortHTTPRoutes, then the method match wins (Istio >= 1.18)
    rules_text = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: shop}\n"
                  "spec:\n  parentRefs: [{name: gw}]\n  rules:\n"
                  "  - matches: [{path: {type: PathPrefix, value: /shop/}}]\n    backendRefs: [{name: slash}]\n"
                  "  - matches: [{path: {type: PathPrefix, value: /shop}, method: GET}]\n"
                  "    backendRefs: [{name: get}]\n")
    assert split(rules_text, "http://x/shop/cart", gateway="gw") == {"get": 1.0}
    assert split(rules_text, "http://x/shop/cart", gateway="gw", istio_version="1.17") == {"slash": 1.0}


def gamma(route_ns: str, backend: str) -> str:
    return route(f"[{{name: {backend}, namespace: bookinfo, port: 9080}}]", ns=route_ns, name=f"r-{route_ns}",
                 parent="{kind: Service, group: '', name: reviews, namespace: bookinfo, port: 9080}")


def test_a_gamma_consumer_route_replaces_producer_routes_for_its_namespace_only() -> None:
    # GEP-1294 consumer routes; push_context.go VirtualServicesForGateway puts same-namespace routes first
    text = gamma("bookinfo", "reviews-v1") + gamma("frontend", "reviews-v2")
    url = "http://reviews.bookinfo:9080/"
    assert split(text, url, namespace="frontend") == {"reviews-v2": 1.0}
    assert split(text, url, namespace="bookinfo") == {"reviews-v1": 1.0}
    assert split(text, url, namespace="frontend", istio_version="1.18") == {"reviews-v1": 1.0}


# -- TCP ports and Istio versions -------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["{port: 9080, name: tcp-reviews}", "{port: 9080, name: web, appProtocol: tcp}"])
def test_on_a_tcp_port_http_rules_do_not_apply(port: str) -> None:
    # listener.go buildSidecarOutboundTCPListenerOpts: a tcp_proxy filter chain, a destination per connection
    text = service(port=port) + deployment("reviews-v1", "v1") + deployment("reviews-v2", "v2") \
        + dr("reviews", "default", "reviews", SUBSETS) + vs(SPLIT_90_10)
    expectation = expect(text)
    assert expectation.probabilities == {"reviews": 1.0}
    assert expectation.outcomes[0].endpoints == (("reviews-v1", 1), ("reviews-v2", 1))
    assert any("per connection" in w and "--no-keepalive" in w for w in expectation.warnings)


def test_an_unnamed_port_is_http_since_istio_1_3_and_tcp_before() -> None:
    # outbound protocol sniffing (Istio 1.3): an unrecognised port name is sniffed, HTTP goes to the HTTP routes.
    # On 1.2 the declared split stays the expectation (the check FAILs, as the tutorial's mesh did) with a warning.
    text = service(port="{port: 9080, name: backend}") + dr("reviews", "default", "reviews", SUBSETS) + vs(SPLIT_90_10)
    assert expect(text).probabilities == {"v1": 0.9, "v2": 0.1} and not expect(text).warnings
    on_1_2 = expect(text, istio_version="1.2")
    assert on_1_2.probabilities == {"v1": 0.9, "v2": 0.1}
    assert any("on Istio 1.2 (no protocol sniffing before 1.3) it is plain TCP" in w for w in on_1_2.warnings)


def test_a_bad_istio_version_is_a_usage_error() -> None:
    from respy._errors import UsageError

    with pytest.raises(UsageError, match=r"MAJOR\.MINOR"):
        expect(vs(TO_V2), istio_version="latest")


# -- 3. YAML ---------------------------------------------------------------------------------------------------


def test_duplicate_keys_are_an_error_naming_key_and_line() -> None:
    # kubectl refuses duplicate keys (strict decoding); two files joined without --- give exactly this
    with pytest.raises(RulesError) as caught:
        load_text(vs(TO_V2).rstrip("-\n") + "\n" + service().rstrip("-\n") + "\n", "joined.yaml")
    assert "duplicate key 'apiVersion'" in caught.value.message and caught.value.line == 9
