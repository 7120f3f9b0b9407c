"""Issue 16 end to end: answers naming pods (hostnames, versions) checked against destinations expanded to pods.

The servers draw each answer from a seeded RNG (support.weighted_handler), so the counts of a fixed -n run repeat;
the arrival order at c > 1 does not, so the verdict tests are marked ``stochastic`` (support.py states the rate).
"""

from __future__ import annotations

from pathlib import Path

from support import run_cli, stochastic, weighted_handler

RULES = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
spec:
  replicas: 1
  template:
    metadata: {labels: {app: reviews, version: v1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2}
spec:
  replicas: 1
  template:
    metadata: {labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"""
POD_V1, POD_V2 = "reviews-v1-5f7d8c9b4-abcde", "reviews-v2-6c8d9e0f1-klmno"


@stochastic
def test_pod_hostnames_of_two_deployments_pass_with_the_workloads_given(serve, tmp_path: Path) -> None:
    rules = tmp_path / "reviews.yaml"
    rules.write_text(RULES)
    server = serve(weighted_handler({POD_V1: 80, POD_V2: 20}, seed=5))
    result = run_cli(server.url, "-n", "2000", "-c", "20", "-H", "Host: reviews", "--expect", str(rules), "-o", "json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["verdict"]["outcome"] == "PASS"
    assert data["assignment"]["claimed"] == {POD_V1: "v1", POD_V2: "v2"}


def test_pod_hostnames_without_the_workloads_say_no_answer_named_a_destination(serve, tmp_path: Path) -> None:
    rules = tmp_path / "reviews.yaml"
    rules.write_text("---\n".join(RULES.split("---\n")[3:]))  # only the DestinationRule and the VirtualService
    server = serve(weighted_handler({POD_V1: 80, POD_V2: 20}, seed=5))
    result = run_cli(server.url, "-n", "200", "-H", "Host: reviews", "--expect", str(rules), "-o", "json")
    assert result.code == 1
    reasons = result.json()["verdict"]["reasons"]
    assert reasons[0].startswith("No answer named a destination")
    assert POD_V1 in reasons[0] and "--map" in reasons[0] and "--by regex:" in reasons[0]


@stochastic
def test_helloworld_without_subsets_passes_against_versions_by_endpoint_count(serve, fixtures_dir: Path) -> None:
    samples = fixtures_dir / "upstream" / "istio-samples"
    bodies = {"Hello version: v1, instance: helloworld-v1-77cb56d4b4-9sz4p\n": 1,
              "Hello version: v2, instance: helloworld-v2-6d9f8d5c7b-ktwvx\n": 1}  # one ready pod each
    server = serve(weighted_handler(bodies, seed=3))
    # the gateway's server is on port 80: the request is sent (and routed) as port 80, the connection goes to the
    # stand-in server (gateway.go: one listener per server port)
    stand_in = f"helloworld.example:80:127.0.0.1:{server.port}"
    result = run_cli("http://helloworld.example/hello", "--connect-to", stand_in, "-n", "400",
                     "--gateway", "helloworld-gateway",
                     "--expect", str(samples / "helloworld__helloworld-gateway.yaml"),
                     "--expect", str(samples / "helloworld__helloworld.yaml"), "-o", "json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["verdict"]["outcome"] == "PASS"
    assert set(data["assignment"]["claimed"].values()) == {"helloworld"}
    assert not data["assignment"].get("undeclared")
