"""The resolver agrees with Envoy on the project's own edge cases (test_rules_semantics' rules and requests).

Same method as test_sandbox_conformance: respy resolves the request, the sandbox's real Envoy answers it;
a single outcome must be every answer, a split must pass chi-square at α = 0.001 (Envoy's random draws
cannot be seeded). Known disagreements are strict xfails with their cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from envoy_harness import require_envoy
from sandbox_conformance import Shape, disagreement, request_count, running, send, tally
from support import stochastic
from test_rules_semantics import DR, MATCH_FIELD_CASES, ONE_RULE, PRECEDENCE_CASES, PRECEDENCE_RULES, route, vs

from respy._errors import NotRoutedError
from respy.rules import RuleSet, load_text, resolve

TWO = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
ORED = ("  - match:\n    - {uri: {prefix: /a}, method: {exact: POST}}\n    - {uri: {prefix: /b}}\n"
        "    route:\n    - destination: {host: reviews, subset: v2}\n"
        "  - route:\n    - destination: {host: reviews, subset: v1}\n")
GATEWAY_VS = DR + vs(TWO, hosts='["reviews.example.com"]', extra="  gateways: [istio-system/ingress, mesh]\n")
PER_MATCH = DR + vs("  - match:\n    - {gateways: [ingress]}\n    route:\n"
                    "    - destination: {host: reviews, subset: v2}\n"
                    "  - route:\n    - destination: {host: reviews, subset: v1}\n",
                    extra="  gateways: [mesh, ingress]\n")
DELEGATE = DR + vs("  - match:\n    - uri: {prefix: /api}\n    delegate: {name: reviews-api}\n"
                   "  - route:\n    - destination: {host: reviews, subset: v1}\n") + (
    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
    "metadata: {name: reviews-api, namespace: default}\nspec:\n  http:\n"
    "  - match:\n    - uri: {prefix: /api/v2}\n    route:\n    - destination: {host: reviews, subset: v2}\n")
# one route table per server port (gateway.go buildGatewayHTTPRouteConfig, route "http.<port>"): a.example.com is
# served on port 80 only, b.example.com on 8080 only; match.port picks the rule by the server's port
TWO_PORTS = ("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n"
             "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n"
             "  - port: {number: 8080, name: http-alt, protocol: HTTP}\n    hosts: [b.example.com]\n---\n"
             + DR + vs("  - match:\n    - {port: 8080}\n    route:\n    - destination: {host: reviews, subset: v2}\n"
                       "  - route:\n    - destination: {host: reviews, subset: v1}\n",
                       hosts="[a.example.com, b.example.com]", extra="  gateways: [gw]\n"))
# destination_rule.go mergeDestinationRule: two DestinationRules for reviews in one namespace merge their subsets
DR_PARTS = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            "metadata: {name: reviews-%s, namespace: default}\nspec:\n  host: reviews\n"
            "  subsets:\n  - {name: %s, labels: {version: %s, app: reviews}}\n---\n")
MERGED_DRS = DR_PARTS % ("v1", "v1", "v1") + DR_PARTS % ("v2", "v2", "v2") + vs(
    "  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 50\n"
    "    - destination: {host: reviews, subset: v2}\n      weight: 50\n")
METHOD_ROUTE = route("  - backendRefs: [{name: any, port: 80}]\n"
                     "  - matches: [{method: POST}]\n    backendRefs: [{name: posts, port: 80}]\n")


@dataclass(frozen=True)
class Case:
    yaml: str
    url: str = "http://reviews:9080/"
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    gateway: str | None = None
    namespace: str = "default"


CASES: dict[str, Case] = {
    **{f"match-{i}-{m[:30]}": Case(DR + vs(ONE_RULE.format(match=m)), url, dict(h or {}))
       for i, (m, url, h, _) in enumerate(MATCH_FIELD_CASES)},
    **{f"httproute-precedence-{i}": Case(route(PRECEDENCE_RULES), url, dict(h or {}))
       for i, (url, h, _) in enumerate(PRECEDENCE_CASES)},
    "ored-a-get": Case(DR + vs(ORED), "http://reviews/a"),
    "ored-a-post": Case(DR + vs(ORED), "http://reviews/a", method="POST"),
    "ored-b": Case(DR + vs(ORED), "http://reviews/b"),
    "no-rule-404": Case(DR + vs("  - match:\n    - uri: {exact: /a}\n    route:\n"
                                "    - destination: {host: reviews, subset: v1}\n"), "http://reviews/b"),
    "redirect-301": Case(vs("  - redirect: {uri: /new}\n")),
    "redirect-308": Case(vs("  - redirect: {uri: /new, redirectCode: 308}\n")),
    "direct-418": Case(vs("  - directResponse: {status: 418}\n")),
    "abort-without-percentage": Case(DR + vs("  - fault: {abort: {httpStatus: 503}}\n    route:\n"
                                             "    - destination: {host: reviews, subset: v1}\n")),
    "relative-weights-3-1": Case(DR + vs("  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 3\n"
                                         "    - destination: {host: reviews, subset: v2}\n      weight: 1\n")),
    "same-destination-twice": Case(DR + vs(
        "  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 30\n"
        "    - destination: {host: reviews, subset: v2}\n      weight: 40\n"
        "    - destination: {host: reviews, subset: v1}\n      weight: 30\n")),
    "two-hosts-same-subset": Case(vs("  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 50\n"
                                     "    - destination: {host: ratings, subset: v1}\n      weight: 50\n")),
    "gateway-vantage": Case(GATEWAY_VS, "http://reviews.example.com/", gateway="istio-system/ingress"),
    "gateway-bare-name": Case(GATEWAY_VS, "http://reviews.example.com/", gateway="ingress"),
    "gateway-vs-from-mesh": Case(GATEWAY_VS, "http://reviews.example.com/"),
    # gateway.go buildGatewayHTTPRouteConfig: the virtual host is the VS host's FQDN only (Domains: []string{hostname}):
    # a short Host is 404 (NR) there, the FQDN routes
    "per-match-gateway-at-gateway": Case(PER_MATCH, gateway="ingress"),
    "per-match-gateway-at-gateway-fqdn": Case(PER_MATCH, "http://reviews.default.svc.cluster.local/",
                                              gateway="ingress"),
    "per-match-gateway-in-mesh": Case(PER_MATCH),
    "gateway-port-80-host-a": Case(TWO_PORTS, "http://a.example.com/", gateway="gw"),
    "gateway-port-80-host-b-404": Case(TWO_PORTS, "http://b.example.com/", gateway="gw"),
    "gateway-port-8080-host-b": Case(TWO_PORTS, "http://b.example.com:8080/", gateway="gw"),
    "gateway-port-8080-host-a-404": Case(TWO_PORTS, "http://a.example.com:8080/", gateway="gw"),
    "export-to-own-namespace": Case(vs(TWO, hosts="[reviews.default.svc.cluster.local]", extra="  exportTo: ['.']\n")),
    "wildcard-host": Case(vs("  - route:\n    - destination: {host: reviews.default.svc.cluster.local, subset: v1}\n",
                             hosts='["*.default.svc.cluster.local"]'), "http://reviews.default/"),
    "delegate-v2": Case(DELEGATE, "http://reviews/api/v2/x"),
    "delegate-falls-through": Case(DELEGATE, "http://reviews/api/v1/x"),
    "source-labels": Case(DR + vs(ONE_RULE.format(match="sourceLabels: {app: productpage}"))),
    "destination-rules-merged": Case(MERGED_DRS),
    "httproute-method-post": Case(METHOD_ROUTE, method="POST"),
    "httproute-method-get": Case(METHOD_ROUTE),
    "httproute-no-rule-404": Case(route("  - matches: [{path: {type: Exact, value: /only}}]\n"
                                        "    backendRefs: [{name: a, port: 80}]\n")),
    "httproute-redirect-302": Case(route("  - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n")),
}

# case id -> why Envoy (as istiod programs it) and respy's resolver differ (none known today; a case added here runs
# as a strict xfail, so one that goes away is noticed)
DISAGREEMENTS: dict[str, str] = {}


def _params() -> list[object]:
    return [pytest.param(case, id=key, marks=[pytest.mark.xfail(reason=DISAGREEMENTS[key], strict=True)]
                         if key in DISAGREEMENTS else []) for key, case in CASES.items()]


@stochastic
@pytest.mark.parametrize("case", _params())
def test_edge_case_through_envoy(case: Case) -> None:
    require_envoy()
    rules = RuleSet(objects=tuple(load_text(case.yaml, "rules.yaml")))
    expectation = resolve(rules, url=case.url, headers=case.headers, method=case.method, namespace=case.namespace,
                          gateway=case.gateway)
    shape = Shape(case.url, case.headers, case.method, case.namespace, case.gateway)
    with running(rules, shape) as mesh:
        observed = tally(send(mesh, shape, request_count(expectation)), expectation)
    problem = disagreement(observed, expectation)
    assert problem is None, f"{problem}; sandbox notes: {mesh.notes}"


def test_a_port_the_parent_ref_does_not_name_passes_through_envoy() -> None:
    """conversion.go augmentPortMatch: a parentRef port puts the HTTPRoute on that port only. ``http://reviews/``
    dials port 80, which no route takes: respy says it is not routed, and Envoy passes the request through (the
    sandbox's PassthroughCluster has no endpoints: 503), never to the route's backend."""
    require_envoy()
    case = Case(route("  - backendRefs: [{name: a, port: 80}]\n"), "http://reviews/")
    rules = RuleSet(objects=tuple(load_text(case.yaml, "rules.yaml")))
    with pytest.raises(NotRoutedError):
        resolve(rules, url=case.url, headers=case.headers, method=case.method, namespace=case.namespace)
    shape = Shape(case.url, case.headers, case.method, case.namespace, case.gateway)
    with running(rules, shape) as mesh:
        answers = send(mesh, shape, 20)
    assert answers == {(503, "no healthy upstream"): 20}, answers
