"""The resolver agrees with Envoy: every request of ../shared/fixtures/README.md's tables, through a real Envoy.

Each case of test_rules_fixtures.CASES (the README's tables, the tutorial and the edge cases) is resolved by
respy and sent through the sandbox (Envoy 1.40 programmed the way istiod programs the sidecar or the named
gateway). A single declared outcome must be every answer; a weighted split must pass a chi-square test at
α = 0.001 (Envoy draws its own random numbers, which respy cannot seed: the false-failure rate is α per split
case, about 2.5 % for the run, so the test is marked ``stochastic``: a case is sent again only when it
fails, and two chance misses in a row happen about once in 40,000 runs). Known disagreements are listed in
DISAGREEMENTS with their cause and run as strict xfails, so one that goes away is noticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy_harness import require_envoy
from sandbox_conformance import Shape, disagreement, request_count, running, send, tally
from support import stochastic
from test_rules_fixtures import CASES, Case

from respy.rules import load_inputs, resolve

# case id -> why Envoy (as istiod programs it) and respy's resolver differ
NO_PARENT = ("an Istio behaviour: istiod generates one VirtualService per parentRef (route_collections.go), so an "
             "HTTPRoute without parentRefs programs nothing and the request falls to the allow_any passthrough; "
             "respy's resolver assumes the route applies (and warns that it is attached to nothing)")
DISAGREEMENTS: dict[str, str] = {
    **{key: NO_PARENT for key in ("simple-split", "split-1-header", "split-1-other", "split-2", "split-3-zero-weight",
                                  "grpc-split-2")},
}


def _params() -> list[object]:
    out = []
    for key, case in CASES.items():
        marks = [pytest.mark.xfail(reason=DISAGREEMENTS[key], strict=True)] if key in DISAGREEMENTS else []
        out.append(pytest.param(case, id=key, marks=marks))
    return out


@stochastic
@pytest.mark.parametrize("case", _params())
def test_fixture_request_through_envoy(fixtures_dir: Path, case: Case) -> None:
    require_envoy()
    rules = load_inputs([str(fixtures_dir / f) for f in case.files])
    expectation = resolve(rules, url=case.url, headers=case.headers, namespace=case.namespace, gateway=case.gateway)
    shape = Shape(case.url, case.headers, namespace=case.namespace, gateway=case.gateway)
    with running(rules, shape) as mesh:
        observed = tally(send(mesh, shape, request_count(expectation)), expectation)
    problem = disagreement(observed, expectation)
    assert problem is None, f"{problem}; sandbox notes: {mesh.notes}"
