"""Routing semantics on small hand-written rules: matching, weights, outcomes, vantage points."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from respy._errors import NotRoutedError, RulesError, UsageError
from respy.rules import RuleSet, load_text, resolve
from respy.rules.expectation import Expectation

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1, app: reviews}}
  - {name: v2, labels: {version: v2, app: reviews}}
---
"""


def vs(http: str, *, hosts: str = "[reviews]", extra: str = "", namespace: str = "default") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            f"metadata: {{name: reviews, namespace: {namespace}}}\n"
            f"spec:\n  hosts: {hosts}\n{extra}  http:\n{http}")


ONE_RULE = "  - match:\n    - {match}\n    route:\n    - destination: {{host: reviews, subset: v2}}\n" \
           "  - route:\n    - destination: {{host: reviews, subset: v1}}\n"


def expect(text: str, url: str = "http://reviews:9080/", headers: Mapping[str, str] | None = None,
           **kwargs: str) -> Expectation:
    rules = RuleSet(objects=tuple(load_text(text, "rules.yaml")))
    return resolve(rules, url=url, headers=headers, **kwargs)


def winner(text: str, url: str = "http://reviews:9080/", headers: Mapping[str, str] | None = None,
           **kwargs: str) -> str:
    expectation = expect(text, url, headers, **kwargs)
    (best,) = [o.name for o in expectation.outcomes if o.probability == 1.0]
    return best


# (match, url, headers, expected winner); the sandbox conformance test sends these through Envoy too
MATCH_FIELD_CASES: list[tuple[str, str, dict[str, str] | None, str]] = [
    ("uri: {exact: /a}", "http://reviews/a?x=1", None, "v2"),  # query string stripped
    ("uri: {exact: /a}", "http://reviews/a/", None, "v1"),
    ("uri: {exact: /A}", "http://reviews/a", None, "v1"),  # case-sensitive by default
    ("{uri: {exact: /A}, ignoreUriCase: true}", "http://reviews/a", None, "v2"),
    ("uri: {prefix: /api}", "http://reviews/apiary", None, "v2"),  # character prefix
    ("uri: {regex: '/v[0-9]+'}", "http://reviews/v12", None, "v2"),
    ("uri: {regex: '/v[0-9]+'}", "http://reviews/v12/x", None, "v1"),  # full match only
    ("headers: {end-user: {exact: jason}}", "http://reviews/", {"End-User": "jason"}, "v2"),
    ("headers: {end-user: {exact: jason}}", "http://reviews/", {"end-user": "Jason"}, "v1"),
    ("headers: {x-canary: {prefix: 'yes'}}", "http://reviews/", {"x-canary": "yes-please"}, "v2"),
    ("headers: {x-canary: {regex: 'a.c'}}", "http://reviews/", {"x-canary": "abc"}, "v2"),
    ("headers: {x-canary: {}}", "http://reviews/", {"x-canary": ""}, "v2"),  # presence
    ("headers: {x-canary: {}}", "http://reviews/", None, "v1"),
    ("headers: {x-canary: {regex: '*'}}", "http://reviews/", {"x-canary": "z"}, "v2"),
    ("withoutHeaders: {x-canary: {exact: a}}", "http://reviews/", None, "v2"),  # missing counts as empty
    ("withoutHeaders: {x-canary: {exact: a}}", "http://reviews/", {"x-canary": "a"}, "v1"),
    ("withoutHeaders: {x-canary: {}}", "http://reviews/", {"x-canary": "a"}, "v1"),
    ("method: {exact: POST}", "http://reviews/", None, "v1"),
    ("authority: {exact: reviews}", "http://reviews/", None, "v2"),
    ("authority: {exact: reviews}", "http://reviews:9080/", None, "v1"),  # authority keeps :port
    ("scheme: {exact: https}", "http://reviews/", None, "v1"),
    ("queryParams: {debug: {exact: '1'}}", "http://reviews/?debug=1&debug=2", None, "v2"),
    ("queryParams: {debug: {exact: '2'}}", "http://reviews/?debug=1&debug=2", None, "v1"),  # first value only
    ("queryParams: {debug: {exact: ''}}", "http://reviews/?debug", None, "v2"),
    ("queryParams: {debug: {}}", "http://reviews/?other=1", None, "v1"),
    ("port: 9080", "http://reviews:9080/", None, "v2"),
    ("port: 9080", "http://reviews/", None, "v1"),
    ("sourceNamespace: other", "http://reviews/", None, "v1"),
]


@pytest.mark.parametrize(("match", "url", "headers", "expected"), MATCH_FIELD_CASES)
def test_virtual_service_match_fields(match: str, url: str, headers: dict[str, str] | None, expected: str) -> None:
    assert winner(DR + vs(ONE_RULE.format(match=match)), url, headers) == expected


def test_match_blocks_are_ored_and_fields_anded() -> None:
    http = ("  - match:\n    - {uri: {prefix: /a}, method: {exact: POST}}\n    - {uri: {prefix: /b}}\n"
            "    route:\n    - destination: {host: reviews, subset: v2}\n"
            "  - route:\n    - destination: {host: reviews, subset: v1}\n")
    assert winner(DR + vs(http), "http://reviews/a") == "v1"
    assert winner(DR + vs(http), "http://reviews/a", method="post") == "v2"
    assert winner(DR + vs(http), "http://reviews/b") == "v2"


def test_no_rule_matches_is_404() -> None:
    http = "  - match:\n    - uri: {exact: /a}\n    route:\n    - destination: {host: reviews, subset: v1}\n"
    expectation = expect(DR + vs(http), "http://reviews/b")
    assert expectation.probabilities == {"HTTP 404 (no route matches)": 1.0}
    assert expectation.outcomes[0].status == 404


def test_host_header_overrides_url_host() -> None:
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    assert winner(DR + vs(http), "http://10.0.0.7:9080/", {"HOST": "reviews"}) == "v1"
    with pytest.raises(NotRoutedError):
        expect(DR + vs(http), "http://reviews:9080/", {"Host": "ratings"})


def test_identifiers_hold_subset_and_label_values_but_not_shared_ones() -> None:
    http = ("  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 3\n"
            "    - destination: {host: reviews, subset: v2}\n      weight: 1\n")
    expectation = expect(DR + vs(http))
    assert expectation.probabilities == pytest.approx({"v1": 0.75, "v2": 0.25})
    assert expectation.outcome("v1").identifiers == ("v1",)  # app=reviews and the host name every one shares
    assert expectation.outcome("v2").identifiers == ("v2",)
    assert any("not 100" in w for w in expectation.warnings)


def test_same_destination_twice_adds_up() -> None:
    http = ("  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 30\n"
            "    - destination: {host: reviews, subset: v2}\n      weight: 40\n"
            "    - destination: {host: reviews, subset: v1}\n      weight: 30\n")
    assert expect(DR + vs(http)).probabilities == pytest.approx({"v1": 0.6, "v2": 0.4})


def test_same_subset_name_on_two_hosts_is_disambiguated() -> None:
    http = ("  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 50\n"
            "    - destination: {host: ratings, subset: v1}\n      weight: 50\n")
    expectation = expect(vs(http))
    assert set(expectation.probabilities) == {"reviews/v1", "ratings/v1"}
    assert expectation.outcome("ratings/v1").identifiers == ("ratings",)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("redirect: {uri: /new}", {"HTTP 301 (redirect)": 1.0}),
        ("redirect: {uri: /new, redirectCode: 308}", {"HTTP 308 (redirect)": 1.0}),
        ("directResponse: {status: 418}", {"HTTP 418 (direct response)": 1.0}),
    ],
)
def test_status_actions(action: str, expected: dict[str, float]) -> None:
    expectation = expect(vs(f"  - {action}\n"))
    assert expectation.probabilities == expected
    assert not expectation.destinations


def test_rule_with_two_actions_is_invalid() -> None:
    http = "  - redirect: {uri: /x}\n    route:\n    - destination: {host: reviews}\n"
    with pytest.raises(RulesError, match="combines route and redirect"):
        expect(vs(http))


def test_rule_without_any_action_is_invalid() -> None:
    with pytest.raises(RulesError, match="route, redirect or direct_response is required"):
        expect(vs("  - route: []\n"))


def test_fault_abort_without_percentage_aborts_nothing_and_warns() -> None:
    http = "  - fault: {abort: {httpStatus: 503}}\n    route:\n    - destination: {host: reviews, subset: v1}\n"
    expectation = expect(DR + vs(http))
    assert expectation.probabilities == pytest.approx({"v1": 1.0, "HTTP 503 (fault abort)": 0.0})
    assert any("percentage" in w for w in expectation.warnings)


def test_fault_abort_percentage_out_of_range_names_line() -> None:
    http = ("  - fault: {abort: {httpStatus: 503, percentage: {value: 150}}}\n"
            "    route:\n    - destination: {host: reviews}\n")
    with pytest.raises(RulesError) as caught:
        expect(vs(http))
    assert caught.value.file == "rules.yaml" and caught.value.line == 7  # the `- fault:` line


def test_yaml_booleans_are_not_strings_to_match() -> None:
    with pytest.raises(RulesError, match="string"):
        expect(vs(ONE_RULE.format(match="headers: {x-canary: {exact: yes}}")), headers={"x-canary": "True"})


def test_invalid_regex_is_a_rules_error_with_file() -> None:
    with pytest.raises(RulesError) as caught:
        expect(vs(ONE_RULE.format(match="uri: {regex: '(unclosed'}")))
    assert caught.value.file == "rules.yaml"


def test_gateway_vantage() -> None:
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    text = DR + vs(http, hosts='["reviews.example.com"]', extra="  gateways: [istio-system/ingress, mesh]\n")
    assert winner(text, "http://reviews.example.com/", gateway="istio-system/ingress") == "v1"
    assert winner(text, "http://reviews.example.com/", gateway="ingress") == "v1"
    assert winner(text, "http://reviews.example.com/") == "v1"
    with pytest.raises(NotRoutedError):
        expect(text, "http://reviews.example.com/", gateway="other-ns/ingress")


def test_mesh_vs_does_not_apply_at_a_gateway() -> None:
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    with pytest.raises(NotRoutedError, match="reviews"):
        expect(DR + vs(http), gateway="ingress")


def test_per_match_gateways_override_top_level() -> None:
    http = ("  - match:\n    - {gateways: [ingress]}\n    route:\n    - destination: {host: reviews, subset: v2}\n"
            "  - route:\n    - destination: {host: reviews, subset: v1}\n")
    text = DR + vs(http, extra="  gateways: [mesh, ingress]\n")
    assert winner(text, "http://reviews.default.svc.cluster.local/", gateway="ingress") == "v2"
    assert winner(text) == "v1"


def test_at_a_gateway_a_short_host_is_not_expanded_and_gets_404() -> None:
    # gateway.go buildGatewayHTTPRouteConfig: a gateway's virtual host lists the VirtualService host as istiod
    # reads it (reviews -> reviews.default.svc.cluster.local: Domains: []string{hostname}), no search path, so
    # Envoy answers "Host: reviews" 404 (NR); a sidecar's domains hold every short spelling (generateVirtualHostDomains)
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    text = DR + vs(http, extra="  gateways: [mesh, ingress]\n")
    at_gateway = expect(text, gateway="ingress")
    assert at_gateway.probabilities == {"HTTP 404 (no route)": 1.0}
    assert at_gateway.outcomes[0].status == 404
    assert any("not expanded to 'reviews.default.svc.cluster.local'" in w for w in at_gateway.warnings)
    fqdn = {"Host": "reviews.default.svc.cluster.local"}
    assert winner(text, "http://reviews:9080/", fqdn, gateway="ingress") == "v1"
    assert winner(text) == "v1"  # the same request from a sidecar


def test_at_a_sidecar_an_unknown_host_passes_through_unpredicted() -> None:
    # httproute.go buildCatchAllVirtualHost: allow_any -> PassthroughCluster; no rule decides what answers
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    with pytest.raises(NotRoutedError, match="no routing rule covers host 'ratings'"):
        expect(DR + vs(http, extra="  gateways: [mesh, ingress]\n"), "http://ratings:9080/")


def test_a_gateway_nothing_names_is_not_predicted() -> None:
    # neither a Gateway nor a rule names "other": respy cannot know that a gateway of that name exists
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    with pytest.raises(NotRoutedError, match="gateway other"):
        expect(DR + vs(http, extra="  gateways: [mesh, ingress]\n"), gateway="other")


def test_export_to_own_namespace_hides_vs_from_other_clients() -> None:
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    text = vs(http, hosts="[reviews.default.svc.cluster.local]", extra="  exportTo: ['.']\n")
    assert winner(text) == "v1"
    with pytest.raises(NotRoutedError):
        expect(text, "http://reviews.default:9080/", namespace="other")


def test_wildcard_host() -> None:
    http = "  - route:\n    - destination: {host: reviews.default.svc.cluster.local, subset: v1}\n"
    assert winner(vs(http, hosts='["*.default.svc.cluster.local"]'), "http://reviews.default/") == "v1"


def test_two_mesh_vs_for_one_host_is_undefined() -> None:
    http = "  - route:\n    - destination: {host: reviews, subset: v1}\n"
    other = vs(http).replace("name: reviews, namespace", "name: reviews-2, namespace")
    with pytest.raises(RulesError, match="IST0109"):
        expect(vs(http) + "---\n" + other)


def test_delegate_rules_replace_the_root_rule() -> None:
    root = vs("  - match:\n    - uri: {prefix: /api}\n    delegate: {name: reviews-api}\n"
              "  - route:\n    - destination: {host: reviews, subset: v1}\n")
    delegate = ("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: reviews-api, namespace: default}\nspec:\n  http:\n"
                "  - match:\n    - uri: {prefix: /api/v2}\n"
                "    route:\n    - destination: {host: reviews, subset: v2}\n")
    assert winner(DR + root + delegate, "http://reviews/api/v2/x") == "v2"
    assert winner(DR + root + delegate, "http://reviews/api/v1/x") == "v1"  # falls through to the next root rule
    expectation = expect(DR + root + delegate, "http://reviews/api/v2/x")
    assert "-> VirtualService default/reviews-api, http[0]" in expectation.route


def test_source_labels_cannot_be_known_and_warn() -> None:
    expectation = expect(DR + vs(ONE_RULE.format(match="sourceLabels: {app: productpage}")))
    assert expectation.probabilities["v1"] == 1.0
    assert any("sourceLabels" in w for w in expectation.warnings)


def test_url_must_be_http() -> None:
    with pytest.raises(UsageError):
        expect(vs("  - route:\n    - destination: {host: reviews}\n"), "ftp://reviews/")


# -- HTTPRoute ----------------------------------------------------------------------------------------

def route(rules: str, *, parent: str = "{group: '', kind: Service, name: reviews, port: 9080}") -> str:
    return ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: reviews}\n"
            f"spec:\n  parentRefs:\n  - {parent}\n  rules:\n{rules}")


PRECEDENCE_RULES = (
    "  - backendRefs: [{name: catch-all, port: 80}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /abc/}, headers: [{name: x-env, value: canary}]}]\n"
    "    backendRefs: [{name: header, port: 80}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /abc/}, headers: [{name: x-env, value: canary}],\n"
    "               queryParams: [{name: v, value: '2'}]}]\n"
    "    backendRefs: [{name: header-query, port: 80}]\n"
    "  - matches: [{path: {type: PathPrefix, value: /abc}}]\n"
    "    backendRefs: [{name: prefix, port: 80}]\n"
    "  - matches: [{path: {type: Exact, value: /abc}}]\n"
    "    backendRefs: [{name: exact, port: 80}]\n"
)
# (url, headers, expected winner) against PRECEDENCE_RULES
PRECEDENCE_CASES: list[tuple[str, dict[str, str] | None, str]] = [
    ("http://reviews:9080/abc", None, "exact"),
    ("http://reviews:9080/abc/", None, "prefix"),
    ("http://reviews:9080/abcd", None, "catch-all"),  # PathPrefix is per path element
    ("http://reviews:9080/abc/def", {"X-Env": "canary"}, "header"),  # header names are case-insensitive
    ("http://reviews:9080/abc/def?v=2", {"x-env": "canary"}, "header-query"),  # more query params win the tie
]


@pytest.mark.parametrize(("url", "headers", "expected"), PRECEDENCE_CASES)
def test_httproute_precedence(url: str, headers: dict[str, str] | None, expected: str) -> None:
    assert winner(route(PRECEDENCE_RULES), url, headers) == expected


def test_httproute_method_beats_list_order() -> None:
    rules = ("  - backendRefs: [{name: any, port: 80}]\n"
             "  - matches: [{method: POST}]\n    backendRefs: [{name: posts, port: 80}]\n")
    assert winner(route(rules), method="POST") == "posts"
    assert winner(route(rules)) == "any"


def test_httproute_no_rule_matches_is_404() -> None:
    rules = "  - matches: [{path: {type: Exact, value: /only}}]\n    backendRefs: [{name: a, port: 80}]\n"
    assert expect(route(rules)).probabilities == {"HTTP 404 (no route matches)": 1.0}


def test_httproute_redirect_filter_defaults_to_302() -> None:
    rules = "  - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n"
    assert expect(route(rules)).probabilities == {"HTTP 302 (redirect)": 1.0}


def test_httproute_parent_port_must_match_the_dialled_port() -> None:
    # conversion.go augmentPortMatch: a parentRef port puts the route on that port only; a URL without a port
    # dials the scheme's default (80), which the sidecar passes through (shown against Envoy: httproute-port-80)
    rules = "  - backendRefs: [{name: a, port: 80}]\n"
    with pytest.raises(NotRoutedError):
        expect(route(rules), "http://reviews:8080/")
    with pytest.raises(NotRoutedError):
        expect(route(rules), "http://reviews/")
    assert winner(route(rules), "http://reviews:9080/") == "a"


def test_httproute_with_gateway_parent_needs_that_gateway() -> None:
    rules = "  - backendRefs: [{name: a, port: 80}]\n"
    text = route(rules, parent="{name: public}").replace("spec:\n", "spec:\n  hostnames: ['*.example.com']\n")
    assert winner(text, "http://shop.example.com/", gateway="public") == "a"
    with pytest.raises(NotRoutedError, match="only at gateway public"):
        expect(text, "http://shop.example.com/")
    # a wildcard needs a label in front (Envoy's suffix wildcards never match the empty string): the gateway's
    # listener takes the request and no virtual host does, so Envoy answers 404 (gateway.go blackhole / NR)
    assert expect(text, "http://example.com/", gateway="public").probabilities == {"HTTP 404 (no route)": 1.0}


def test_not_routed_names_the_covered_hosts() -> None:
    with pytest.raises(NotRoutedError) as caught:
        expect(vs("  - route:\n    - destination: {host: reviews}\n", hosts="[reviews, ratings]"), "http://details/")
    assert "reviews.default.svc.cluster.local" in str(caught.value)
    assert "ratings.default.svc.cluster.local" in str(caught.value)
