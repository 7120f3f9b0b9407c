"""``respy.sandbox(...)`` and the ``respy_sandbox`` pytest fixture: a user's routing checked in CI, no cluster.

The split check uses respy's own verdict (2000 requests, α = 0.01); Envoy draws the weighted choice itself
and cannot be seeded; with the independence check beside it the PASS assertion can fail falsely about 2
times in 100: it is marked ``stochastic`` (one rerun on failure: about 1 in 2,500).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from envoy_harness import require_envoy
from support import stochastic

import respy
from respy._errors import UsageError
from respy.sandbox.mesh import Sandbox

SAMPLES = "upstream/istio-samples/"
BOOKINFO = (SAMPLES + "bookinfo__platform__kube__bookinfo.yaml",
            SAMPLES + "bookinfo__networking__destination-rule-all.yaml")


def files(fixtures_dir: Path, *names: str) -> list[str]:
    return [str(fixtures_dir / n) for n in (*BOOKINFO, *names)]


@stochastic
def test_library_sandbox_and_assert_split(fixtures_dir: Path) -> None:
    require_envoy()
    rules = files(fixtures_dir, SAMPLES + "bookinfo__networking__virtual-service-reviews-90-10.yaml")
    with respy.sandbox(*rules, namespace="default") as mesh:
        expectation = respy.Expectation.from_files(*rules, url="http://reviews:9080/")
        verdict = respy.assert_split(mesh.url("reviews", 9080), expectation, requests=2000, concurrency=20)
        admin = httpx.get(f"{mesh.admin_url}/ready", timeout=5)
        envoy = mesh._envoy
        assert envoy is not None and envoy._process is not None
        process = envoy._process
    assert verdict.outcome == "PASS"
    assert admin.text.strip() == "LIVE"
    assert process.poll() is not None  # Envoy stopped with the block


def test_sandbox_url_names_what_it_has(fixtures_dir: Path) -> None:
    require_envoy()
    with respy.sandbox(*files(fixtures_dir)) as mesh:
        with pytest.raises(UsageError, match="no Service 'nope'"):
            mesh.url("nope", 9080)
        with pytest.raises(UsageError, match="no port 80"):
            mesh.url("reviews", 80)
    with pytest.raises(UsageError, match="not running"):
        _ = mesh.admin_url


def test_fixture_starts_and_stops(respy_sandbox: Callable[..., Sandbox], fixtures_dir: Path) -> None:
    require_envoy()
    jason_v2 = SAMPLES + "bookinfo__networking__virtual-service-reviews-jason-v2-v3.yaml"
    mesh = respy_sandbox(*files(fixtures_dir, jason_v2))
    url = mesh.url("reviews", 9080)
    assert httpx.get(url, headers={"end-user": "jason"}, timeout=5, trust_env=False).text == "reviews: v2"
    assert httpx.get(url, timeout=5, trust_env=False).text == "reviews: v3"


def test_inline_weights_are_not_a_sandbox() -> None:
    with pytest.raises(UsageError, match="routing YAML"):
        respy.sandbox("single=90,multiple=10")
