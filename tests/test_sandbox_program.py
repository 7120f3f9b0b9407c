"""The sandbox's Envoy configuration has istiod's shapes, and the real Envoy takes it and answers as declared.

Shapes checked against istiod's source (cited in respy/sandbox/): route configuration named by the port,
virtual hosts ``<fqdn>:<port>`` with istiod's domain list, ``outbound|<port>|<subset>|<fqdn>`` clusters,
route metadata naming the VirtualService, weighted_clusters, the fault filter, redirects, direct responses.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy_harness import require_envoy

import respy
from respy._errors import EnvoyStartError
from respy.rules import RuleSet, load_inputs, load_text, resolve
from respy.sandbox.inventory import build_inventory
from respy.sandbox.mesh import Sandbox
from respy.sandbox.program import program

SAMPLES = "upstream/istio-samples/"
RULES = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: default}
spec: {template: {metadata: {labels: {app: reviews, version: v1}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: default}
spec: {template: {metadata: {labels: {app: reviews, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: moved
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - match: [{headers: {end-user: {exact: jason}}}]
    fault: {abort: {httpStatus: 555, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
"""


def rules_of(text: str) -> RuleSet:
    return RuleSet(objects=tuple(load_text(text, "rules.yaml")))


def route_config(mesh: Sandbox, name: str) -> dict[str, Any]:
    for listener in mesh.config["static_resources"]["listeners"]:
        config = listener["filter_chains"][0]["filters"][0]["typed_config"].get("route_config")
        if config and config["name"] == name:
            return dict(config)
    raise AssertionError(f"no route configuration {name}")


def test_istiod_shapes_in_envoys_own_config_dump() -> None:
    require_envoy()
    with Sandbox(rules_of(RULES)) as mesh, urllib.request.urlopen(f"{mesh.admin_url}/config_dump", timeout=5) as dumped:
        dump = json.loads(dumped.read())
    routes = next(c for c in dump["configs"] if c["@type"].endswith(".RoutesConfigDump"))
    (config,) = [r["route_config"] for r in routes["static_route_configs"] if r["route_config"]["name"] == "9080"]
    vhost = next(v for v in config["virtual_hosts"] if v["name"] == "reviews.default.svc.cluster.local:9080")
    assert vhost["domains"][:5] == ["reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local.",
                                    "reviews", "reviews.default.svc", "reviews.default"]
    assert config["virtual_hosts"][-1]["name"] == "allow_any"
    redirect, direct, jason, split = vhost["routes"]
    assert redirect["name"] == "moved" and redirect["redirect"]["response_code"] == "PERMANENT_REDIRECT"
    assert direct["direct_response"]["status"] == 418
    assert jason["route"]["cluster"] == "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert jason["typed_per_filter_config"]["envoy.filters.http.fault"]["abort"]["http_status"] == 555
    weighted = split["route"]["weighted_clusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in weighted] == [
        ("outbound|9080|v1|reviews.default.svc.cluster.local", 90),
        ("outbound|9080|v2|reviews.default.svc.cluster.local", 10)]
    assert split["metadata"]["filter_metadata"]["istio"]["config"] == \
        "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"
    clusters = next(c for c in dump["configs"] if c["@type"].endswith(".ClustersConfigDump"))
    names = {c["cluster"]["name"] for c in clusters["static_clusters"]}
    assert {"outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local"} <= names


def test_answers_come_from_the_declared_actions() -> None:
    require_envoy()
    with Sandbox(rules_of(RULES)) as mesh, httpx.Client(follow_redirects=False, trust_env=False) as client:
        url = mesh.listener_url(9080)
        host = {"Host": "reviews"}
        moved = client.get(f"{url}/old", headers=host)
        assert moved.status_code == 308 and moved.headers["location"].endswith("/new")
        teapot = client.get(f"{url}/teapot/x", headers=host)
        assert (teapot.status_code, teapot.text) == (418, "short and stout")
        assert client.get(url, headers={**host, "end-user": "jason"}).status_code == 555
        answer = client.get(f"{url}/", headers=host)
        assert answer.text in ("reviews: v1", "reviews: v2")
        assert answer.headers["x-respy-version"] == answer.text.split(": ")[1]
        direct = client.get(mesh.url("reviews", 9080) + "/")  # by the Service's own address, no Host header
        assert direct.text in ("reviews: v1", "reviews: v2")


def test_what_cannot_be_programmed_is_listed() -> None:
    text = RULES.replace("  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}",
                         "  - match: [{uri: {regex: '(unclosed'}}]\n    route: [{destination: {host: reviews}}]\n"
                         "    corsPolicy: {allowOrigins: [{exact: x}]}\n"
                         "  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}")
    with Sandbox(rules_of(text)) as mesh:
        notes = "\n".join(mesh.notes)
    assert "regex '(unclosed' is not valid RE2" in notes
    assert "corsPolicy is not programmed" in notes


def test_a_config_envoy_rejects_is_envoys_own_error() -> None:
    require_envoy()
    text = RULES.replace("directResponse: {status: 418", "directResponse: {status: 1000")
    with pytest.raises(EnvoyStartError) as raised:
        Sandbox(rules_of(text)).start()
    assert "DirectResponseActionValidationError.Status: value must be inside range [200, 600)" in str(raised.value)
    assert "configuration: " in str(raised.value)
    assert raised.value.exit_code == 2


def test_bookinfo_jason_gets_v2_others_v1(fixtures_dir: Path) -> None:
    """The Bookinfo samples as given (Services, Deployments, DestinationRules, the test-v2 VirtualService)."""
    require_envoy()
    files = [SAMPLES + "bookinfo__platform__kube__bookinfo.yaml",
             SAMPLES + "bookinfo__networking__destination-rule-all.yaml",
             SAMPLES + "bookinfo__networking__virtual-service-reviews-test-v2.yaml"]
    rules = load_inputs([str(fixtures_dir / f) for f in files])
    with Sandbox(rules, namespace="default") as mesh, httpx.Client(trust_env=False) as client:
        url = mesh.listener_url(9080)
        jason = {client.get(url, headers={"Host": "reviews", "end-user": "jason"}).text for _ in range(30)}
        others = {client.get(url, headers={"Host": "reviews"}).text for _ in range(30)}
        assert not mesh.inventory.assumptions  # everything came from the samples
    assert (jason, others) == ({"reviews: v2"}, {"reviews: v1"})


def test_gateway_programs_only_the_gateways_rules(fixtures_dir: Path) -> None:
    require_envoy()
    files = [SAMPLES + "bookinfo__networking__bookinfo-gateway.yaml",
             SAMPLES + "bookinfo__platform__kube__bookinfo.yaml"]
    rules = load_inputs([str(fixtures_dir / f) for f in files])
    with Sandbox(rules, gateway="bookinfo-gateway") as mesh, httpx.Client(trust_env=False) as client:
        config = route_config(mesh, "http.8080")
        url = mesh.listener_url(8080)
        assert client.get(f"{url}/productpage").text == "productpage: v1"
        assert client.get(f"{url}/admin").status_code == 404
    assert [v["domains"] for v in config["virtual_hosts"]] == [["*"]]


def test_istio_1_2_port_without_protocol_prefix_is_tcp_over_all_endpoints() -> None:
    require_envoy()
    text = RULES.replace("{name: http, port: 9080}", "{name: backend, port: 9080}")
    with Sandbox(rules_of(text), istio_1_2=True) as mesh, httpx.Client(trust_env=False) as client:
        listener = mesh.config["static_resources"]["listeners"][0]
        assert listener["filter_chains"][0]["filters"][0]["name"] == "envoy.filters.network.tcp_proxy"
        url = mesh.url("reviews", 9080)
        seen = {client.get(url, headers={"Connection": "close"}).text for _ in range(20)}
        assert any("Istio 1.1/1.2" in n for n in mesh.notes)
    assert seen == {"reviews: v1", "reviews: v2"}  # round robin per connection, the weights never apply


def test_rules_istio_rejects_or_drops_are_listed(fixtures_dir: Path) -> None:
    """What respy refuses (exit 2) the sandbox does as istiod would, and says so."""
    no_weights = load_inputs([str(fixtures_dir / "edge-cases/03-vs-multi-destination-no-weights-INVALID.yaml")])
    conflict = load_inputs([str(fixtures_dir / "upstream/istioctl-analyze-testdata/"
                                               "virtualservice_conflictingmeshgatewayhosts.yaml")])
    def notes(rules: RuleSet, namespace: str) -> str:
        inventory = build_inventory(rules, namespace, 9080)
        return "\n".join(program(rules, inventory, namespace=namespace, backend=lambda s, w: ("127.0.0.1", 1)).notes)

    assert "no weight > 0: Istio's validation rejects this VirtualService" in notes(no_weights, "default")
    assert "already claimed by an older VirtualService" in notes(conflict, "foo")


def test_tcp_rules_are_a_weighted_tcp_proxy_per_connection() -> None:
    """tcp.go / networkfilter.go: a TCP port's VirtualService tcp rule becomes a tcp_proxy's weighted_clusters."""
    require_envoy()
    text = RULES.replace("{name: http, port: 9080}", "{name: tcp, port: 9080}") + (
        "  tcp:\n  - match: [{port: 9080}]\n    route:\n"
        "    - {destination: {host: reviews, subset: v1}, weight: 80}\n"
        "    - {destination: {host: reviews, subset: v2}, weight: 20}\n")
    with Sandbox(rules_of(text)) as mesh, httpx.Client(trust_env=False, limits=httpx.Limits(
            max_keepalive_connections=0)) as client:
        (listener,) = mesh.config["static_resources"]["listeners"]
        proxy = listener["filter_chains"][0]["filters"][0]["typed_config"]
        url = mesh.url("reviews", 9080)
        answers = {client.get(url).text for _ in range(40)}
    assert [(c["name"], c["weight"]) for c in proxy["weighted_clusters"]["clusters"]] == [
        ("outbound|9080|v1|reviews.default.svc.cluster.local", 80),
        ("outbound|9080|v2|reviews.default.svc.cluster.local", 20)]
    assert answers <= {"reviews: v1", "reviews: v2"} and "reviews: v1" in answers


def test_a_sidecar_resource_that_leaves_out_the_tcp_rule_gets_the_services_cluster() -> None:
    """virtualservice.go SelectVirtualServices: a VirtualService the client's Sidecar does not import programs no
    weighted tcp_proxy; the Service's own cluster (every pod) carries the connections."""
    text = RULES.replace("{name: http, port: 9080}", "{name: tcp, port: 9080}") + (
        "  tcp:\n  - match: [{port: 9080}]\n    route:\n"
        "    - {destination: {host: reviews, subset: v1}, weight: 80}\n"
        "    - {destination: {host: reviews, subset: v2}, weight: 20}\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\n"
        "spec:\n  egress: [{hosts: ['istio-system/*']}]\n")
    rules = rules_of(text)
    programmed = program(rules, build_inventory(rules, "default", 80), namespace="default",
                         backend=lambda service, workload: ("127.0.0.1", 1))
    (listener,) = programmed.bootstrap["static_resources"]["listeners"]
    proxy = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert proxy["cluster"] == "outbound|9080||reviews.default.svc.cluster.local"
    assert any("not imported by Sidecar default/default" in n for n in programmed.notes)


def test_destination_rules_for_one_host_are_merged_into_the_clusters() -> None:
    # destination_rule.go mergeDestinationRule: the later rule's new subsets are added (a subset cluster each,
    # cluster_builder.go), the first rule's trafficPolicy is kept (sortConfigBySelectorAndCreationTime: oldest first)
    text = "".join(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: default, creationTimestamp: '{at}'}}\n"
        f"spec:\n  host: reviews\n  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}\n"
        f"  subsets: [{{name: {subset}, labels: {{version: {subset}}}}}]\n---\n"
        for name, at, lb, subset in [("first", "2024-01-01T00:00:00Z", "RANDOM", "v1"),
                                     ("later", "2024-01-02T00:00:00Z", "LEAST_REQUEST", "v2")])
    rules = rules_of(text + "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\n"
                     "spec:\n  selector: {app: reviews}\n  ports: [{port: 9080, name: http}]\n")
    programmed = program(rules, build_inventory(rules, "default", 9080), namespace="default",
                         backend=lambda service, workload: ("127.0.0.1", 1))
    clusters = {c["name"]: c for c in programmed.bootstrap["static_resources"]["clusters"]}
    for subset in ("", "v1", "v2"):
        assert clusters[f"outbound|9080|{subset}|reviews.default.svc.cluster.local"]["lb_policy"] == "RANDOM"


def test_a_redirect_is_labelled_by_its_location_and_counted_for_the_declared_redirect() -> None:
    # Envoy's redirect answer has an empty body; its Location (route redirect, path_redirect /new) says where
    # it sends the client. The declared outcome is matched by its status (one request meets one redirect rule).
    require_envoy()
    rules = rules_of(RULES)
    expectation = resolve(rules, url="http://reviews:9080/old")
    assert expectation.probabilities == {"HTTP 308 (redirect)": 1.0}
    with Sandbox(rules) as mesh:
        measurement = respy.measure(f"{mesh.listener_url(9080)}/old", headers={"Host": "reviews:9080"},
                                    requests=600, concurrency=10)
    assert measurement.counts == {"308 Location: http://reviews:9080/new": 600}
    verdict = measurement.check(expectation)
    assert verdict.outcome == "PASS", verdict.report
