"""Declared, programmed and observed agree on a Sidecar resource that leaves the VirtualService out.

Bookinfo's reviews 90/10 with a Sidecar whose egress hosts are ``istio-system/*`` only: respy's resolver warns
before sending that the client's sidecar gets no route from the VirtualService (``respy.rules.sidecar_scope``,
istio/istio @86c9f01f ``virtualservice.go`` ``SelectVirtualServices``); the sandbox programs a real Envoy as
istiod would (no route from it: the Service's default route over every pod), which respy reads back from
Envoy's admin; respy run through that Envoy FAILs, says the route is from no VirtualService, and its diagnosis
names the Sidecar first.

Envoy's choice among the pods cannot be seeded, but the FAIL cannot come by chance: 600 answers over three
pods with no weighted route would have to come out 90/10 between v1 and v2 (p far below 1e-16).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from envoy_harness import require_envoy

import respy

SAMPLES = "upstream/istio-samples/"
BOOKINFO = (SAMPLES + "bookinfo__platform__kube__bookinfo.yaml",
            SAMPLES + "bookinfo__networking__destination-rule-all.yaml",
            SAMPLES + "bookinfo__networking__virtual-service-reviews-90-10.yaml")
SIDECAR = ("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: default}}\n"
           "spec:\n  egress:\n  - hosts: [{hosts}]\n")


def inputs(fixtures_dir: Path, tmp_path: Path, hosts: str) -> list[str]:
    sidecar = tmp_path / "sidecar.yaml"
    sidecar.write_text(SIDECAR.format(hosts=hosts))
    return [*(str(fixtures_dir / name) for name in BOOKINFO), str(sidecar)]


def test_a_sidecar_that_leaves_out_the_virtual_service_fails_the_split_and_is_named(
        fixtures_dir: Path, tmp_path: Path) -> None:
    require_envoy()
    rules = inputs(fixtures_dir, tmp_path, "'istio-system/*'")
    with respy.sandbox(*rules, namespace="default") as mesh:
        assert any("VirtualService default/reviews" in n and "not imported by Sidecar default/default" in n
                   for n in mesh.notes)
        address = mesh.url("reviews", 9080).split("//")[1].rstrip("/")
        run = subprocess.run([sys.executable, "-m", "respy", "http://reviews:9080/", "--connect-to",
                              f"reviews:9080:{address}", "--envoy-admin", mesh.admin_url,
                              *(a for r in rules for a in ("--expect", r)), "-n", "600", "-c", "10"],
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert ("warning: Sidecar default/default (egress hosts istio-system/*) does not import VirtualService "
            "default/reviews") in run.stderr
    rows = {line.split("|")[1].strip() for line in run.stdout.splitlines() if line.startswith("| reviews: v")}
    assert rows == {"reviews: v1", "reviews: v2", "reviews: v3"}  # every pod answers: no weighted route
    assert "FAIL  reviews" in run.stdout
    explanation = " ".join(run.stdout.split())
    # the programmed view: the sidecar's route is istiod's default for the Service, from no VirtualService
    assert ("where it goes wrong: [control plane] programmed 100 (reviews) by no VirtualService (istiod's default "
            "route for the Service) and observed 100, but declared 90/10 (v1/v2): VirtualService default/reviews "
            "is not applied to this pod") in explanation
    assert ("most likely first: 1) the client's Sidecar resource does not import the VirtualService, so the "
            "client's sidecar gets no route from it: Sidecar default/default (egress hosts istio-system/*)"
            ) in explanation


def test_a_sidecar_that_imports_the_namespace_programs_the_route(fixtures_dir: Path, tmp_path: Path) -> None:
    require_envoy()
    with respy.sandbox(*inputs(fixtures_dir, tmp_path, "'./*', 'istio-system/*'"), namespace="default") as mesh:
        assert not any("not imported" in n for n in mesh.notes)
        answers = respy.measure(mesh.url("reviews", 9080), requests=200, concurrency=4).counts
    # the weighted route is programmed: v3, which only the Service's default route reaches, never answers
    assert sum(answers.values()) == 200 and set(answers) <= {"reviews: v1", "reviews: v2"}
