"""A Sidecar resource's egress hosts decide which VirtualServices the client's proxy gets.

Each case rests on istio/istio @86c9f01f: ``pilot/pkg/model/push_context.go`` ``doGetSidecarScope`` (which
Sidecar), ``pilot/pkg/model/sidecar.go`` ``GetEgressListenerForRDS`` and ``convertIstioListenerToWrapper``
(which listener, how its hosts read), ``pilot/pkg/model/virtualservice.go`` ``SelectVirtualServices`` (which
VirtualServices). A VirtualService left out gives the client's sidecar no route, so the declared split stays
the expectation (the check fails as the mesh does) and a warning names the Sidecar; the expectation never
changes here, which each test asserts too.
"""

from __future__ import annotations

import pytest

from respy.rules import RuleSet, client_scope, load_text, resolve

VS = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\n"
      "spec:\n  hosts: [reviews]\n  http:\n  - route:\n"
      "    - {destination: {host: reviews, subset: v1}, weight: 90}\n"
      "    - {destination: {host: reviews, subset: v2}, weight: 10}\n---\n"
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\n"
      "spec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n")
FQDN = "reviews.default.svc.cluster.local"


def sidecar(egress: str, *, ns: str = "default", name: str = "default", extra: str = "") -> str:
    return (f"---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}"
            f"{extra}}}\nspec:\n{egress}")


def hosts(*entries: str, port: int | None = None) -> str:
    listener = f"  - port: {{number: {port}, protocol: HTTP, name: http}}\n    hosts: {list(entries)}\n" if port \
        else f"  - hosts: {list(entries)}\n"
    return "  egress:\n" + listener


def warnings(text: str, url: str = "http://reviews:9080/", namespace: str = "default", **kwargs: str) -> list[str]:
    expectation = resolve(RuleSet(objects=tuple(load_text(text, "rules.yaml"))), url=url, namespace=namespace,
                          **kwargs)  # type: ignore[arg-type]
    assert {k: round(v, 6) for k, v in expectation.probabilities.items()} == {"v1": 0.9, "v2": 0.1}
    return [w for w in expectation.warnings if "Sidecar" in w]


def left_out(text: str, **kwargs: str) -> bool:
    found = warnings(text, **kwargs)
    return any("does not import VirtualService default/reviews" in w for w in found)


@pytest.mark.parametrize(("egress", "imported"), [
    (hosts("./*"), True),  # "." is the proxy's namespace
    (hosts("default/*"), True),
    (hosts("*/*"), True),
    (hosts(f"default/{FQDN}"), True),  # exact names by equality (hostClassification.VSMatches)
    (hosts("*/*.default.svc.cluster.local"), True),  # a wildcard either way round (Name.Matches)
    (hosts("istio-system/*"), False),  # the tutorial's namespace left out
    (hosts("default/ratings.default.svc.cluster.local"), False),
    (hosts("*/*", f"~default/{FQDN}"), False),  # "~" excludes (Excluded: the host is a subset of it)
    (hosts("~/*"), False),  # imports nothing
    ("  outboundTrafficPolicy: {mode: ALLOW_ANY}\n", True),  # no egress: "*/*" (initSidecarScopeInternalIndexes)
])
def test_egress_hosts_import_the_virtual_service_as_istiod_selects_it(egress: str, imported: bool) -> None:
    assert left_out(VS + sidecar(egress)) is not imported


@pytest.mark.parametrize(("egress", "why"), [
    (hosts("default/reviews"), "egress host 'default/reviews': short names (non FQDN) are not allowed"),
    (hosts("default/rev*.example.com"), "partial wildcard 'rev*.example.com' not allowed"),
    (hosts("Default/*"), "invalid namespace value 'Default'"),
    (hosts("*"), "host must be of form namespace/dnsName"),
    (hosts("./*") + hosts("istio-system/*", port=9080)[len("  egress:\n"):],
     "the egress listener with empty port should be the last listener in the list"),
    ("  egress:\n  - port: {number: 9080, protocol: HTTP, name: http}\n",
     "egress listener must contain at least one host"),
    ("  workloadSelector: null\n", "empty configuration provided"),
])
def test_a_sidecar_istio_refuses_is_not_applied(egress: str, why: str) -> None:
    # validation.go ValidateSidecar / agent/validation.go ValidateNamespaceSlashWildcardHostname: the webhook
    # refuses it, so istiod never sees it; the root namespace's Sidecar applies instead, if there is one
    found = warnings(VS + sidecar(egress))
    assert len(found) == 1 and "Sidecar default/default is refused by Istio's validation (" in found[0]
    assert why in found[0] and found[0].endswith("so it is not applied")
    assert left_out(VS + sidecar(egress) + sidecar(hosts("istio-system/*"), ns="istio-system"))


def test_the_warning_names_the_sidecar_its_hosts_and_what_to_add() -> None:
    (warning,) = warnings(VS + sidecar(hosts("istio-system/*")))
    assert warning.startswith("Sidecar default/default (egress hosts istio-system/*) does not import "
                              "VirtualService default/reviews for clients in namespace default")
    assert f"add default/{FQDN} to the egress hosts" in warning and "the declared split stays" in warning


def test_the_listener_for_the_dialled_port_decides_else_the_catch_all() -> None:
    # GetEgressListenerForRDS: the first listener whose port is the dialled one, else the first without a port
    egress = hosts("istio-system/*", port=9080) + hosts("./*")[len("  egress:\n"):]
    assert left_out(VS + sidecar(egress), url="http://reviews:9080/")
    assert not left_out(VS + sidecar(egress), url="http://reviews:80/")
    only_other_port = hosts("./*", port=8080)
    (warning,) = warnings(VS + sidecar(only_other_port), url="http://reviews:9080/")
    assert "(no egress listener for port 9080)" in warning


def test_the_root_namespace_sidecar_applies_when_the_clients_namespace_has_none() -> None:
    # meshRootSidecarConfig, converted with the proxy's namespace: "./*" there means the client's namespace
    root_own = sidecar(hosts("./*"), ns="istio-system")
    assert not left_out(VS + root_own)
    root_system = sidecar(hosts("istio-system/*"), ns="istio-system")
    assert left_out(VS + root_system)
    assert not left_out(VS + root_system + sidecar(hosts("default/*")))  # the namespace's own wins


def test_a_sidecar_with_a_workload_selector_is_left_out_with_a_warning() -> None:
    selector = sidecar("  workloadSelector: {labels: {app: client}}\n" + hosts("istio-system/*"), name="picky")
    found = warnings(VS + selector)
    assert len(found) == 1 and "Sidecar default/picky has a workloadSelector" in found[0]
    assert left_out(VS + selector + sidecar(hosts("istio-system/*")))


def test_the_oldest_sidecar_without_a_selector_is_used() -> None:
    # doGetSidecarScope returns the first; sidecars are sorted by creationTimestamp (then name)
    older = sidecar(hosts("istio-system/*"), name="b-older", extra=", creationTimestamp: '2026-01-01T00:00:00Z'")
    newer = sidecar(hosts("./*"), name="a-newer", extra=", creationTimestamp: '2026-06-01T00:00:00Z'")
    assert left_out(VS + newer + older)


def test_a_gateway_uses_no_sidecar() -> None:
    # doGetSidecarScope: Router proxies get DefaultSidecarScopeForGateway, whatever Sidecars exist
    gateway = ("---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\n"
               "spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
               "  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}\n")
    at_gateway = VS.replace("  hosts: [reviews]\n", "  hosts: [reviews.example.com]\n  gateways: [gw]\n", 1)
    assert warnings(at_gateway + gateway + sidecar(hosts("istio-system/*")), url="http://reviews.example.com/",
                    gateway="default/gw") == []


def test_client_scope_is_none_without_a_sidecar() -> None:
    assert client_scope(RuleSet(objects=tuple(load_text(VS, "rules.yaml"))), "default", 9080) is None


GAMMA = ("apiVersion: v1\nkind: Service\nmetadata: {name: reviews-v1, namespace: default}\n"
         "spec: {ports: [{port: 9080}]}\n---\n"
         "apiVersion: v1\nkind: Service\nmetadata: {name: reviews-v2, namespace: default}\n"
         "spec: {ports: [{port: 9080}]}\n---\n"
         "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: reviews, namespace: default}\n"
         "spec:\n  parentRefs: [{group: '', kind: Service, name: reviews, port: 9080}]\n  rules:\n"
         "  - backendRefs: [{name: reviews-v1, port: 9080, weight: 90}, {name: reviews-v2, port: 9080, weight: 10}]\n")


@pytest.mark.parametrize(("egress", "imported"), [
    (hosts("./*"), True),
    (hosts("*/*.svc.cluster.local"), True),  # the parent Service's FQDN within the entry (Name.SubsetOf)
    (hosts(f"default/{FQDN}"), True),
    (hosts("istio-system/*"), False),
    (hosts("other/*"), False),  # the route's namespace counts, as the VirtualService istiod makes keeps it
])
def test_a_gamma_route_is_imported_as_the_virtual_service_istiod_makes_of_it(egress: str, imported: bool) -> None:
    # route_collections.go: one VirtualService per parent host, in the route's namespace, hosts [the Service's
    # FQDN]; SelectVirtualServices matches it with gateway semantics (UseGatewaySemantics)
    expectation = resolve(RuleSet(objects=tuple(load_text(GAMMA + sidecar(egress), "rules.yaml"))),
                          url="http://reviews:9080/")
    assert {k: round(v, 6) for k, v in expectation.probabilities.items()} == {"reviews-v1": 0.9, "reviews-v2": 0.1}
    found = [w for w in expectation.warnings if "does not import HTTPRoute default/reviews" in w]
    assert bool(found) is not imported


TCP = ("apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo, namespace: default}\n"
       "spec: {selector: {app: tcp-echo}, ports: [{port: 9000, name: tcp}]}\n---\n"
       "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: tcp-echo, namespace: default}\n"
       "spec:\n  host: tcp-echo\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
       "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tcp-echo, namespace: default}\n"
       "spec:\n  hosts: [tcp-echo]\n  tcp:\n  - match: [{port: 9000}]\n    route:\n"
       "    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}\n"
       "    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}\n")


@pytest.mark.parametrize(("egress", "imported"), [(hosts("./*"), True), (hosts("istio-system/*"), False)])
def test_tcp_rules_are_scoped_too(egress: str, imported: bool) -> None:
    # the tcp_proxy's weighted clusters come from a VirtualService the Sidecar must import like any other
    expectation = resolve(RuleSet(objects=tuple(load_text(TCP + "---\n" + sidecar(egress)[4:], "rules.yaml"))),
                          url="http://tcp-echo:9000/")
    assert {k: round(v, 6) for k, v in expectation.probabilities.items()} == {"v1": 0.8, "v2": 0.2}
    found = [w for w in expectation.warnings if "does not import VirtualService default/tcp-echo" in w]
    assert bool(found) is not imported
