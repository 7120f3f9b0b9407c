"""--expect end to end: the real client against seeded weighted-random servers on 127.0.0.1.

The servers draw each answer from a seeded RNG, so the counts of a fixed -n run repeat; at c > 1 the order the
answers arrive in does not, and the independence checks and a sequential run's stopping look see that order,
so the verdict tests are marked ``stochastic`` (support.py states the rate). The verdict's own error rates
are covered by the calibration tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import run_cli, stochastic, verdict_line_of, weighted_handler

SINGLE, MULTIPLE = "weather-backend: single", "weather-backend: multiple"


@pytest.fixture
def tutorial_rules(fixtures_dir: Path) -> str:
    return str(fixtures_dir / "tutorial" / "weather-rules.yaml")


@stochastic
def test_tutorial_rules_pass_at_90_10(serve, tutorial_rules: str) -> None:
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=7))
    result = run_cli(server.url + "/version", "-n", "2000", "-c", "20", "-H", "Host: weather-backend",
                     "--expect", tutorial_rules, "-o", "json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["verdict"]["outcome"] == "PASS"
    assert {e["outcome"]: e["probability"] for e in data["expected"]} == {"single": 0.9, "multiple": 0.1}
    assert data["assignment"]["claimed"] == {SINGLE: "single", MULTIPLE: "multiple"}


@stochastic
def test_tutorial_rules_fail_at_50_50_with_a_verdict_line(serve, tutorial_rules: str) -> None:
    server = serve(weighted_handler({SINGLE: 50, MULTIPLE: 50}, seed=7))
    result = run_cli(server.url + "/version", "-n", "1000", "-c", "20", "-H", "Host: weather-backend",
                     "--expect", tutorial_rules)
    assert result.code == 1
    verdict = [line for line in result.out.splitlines() if line.startswith("FAIL")]
    assert len(verdict) == 1
    assert "observed single 5" in verdict[0] and "declared 90% / 10%" in verdict[0]
    assert "1,000 requests" in verdict[0]
    header = result.out.splitlines()[2]
    for column in ("RESPONSE", "DESTINATION", "EXPECTED %", "OBSERVED % (interval)"):
        assert column in header


def test_an_undeclared_third_body_fails_and_is_named(serve, tutorial_rules: str) -> None:
    server = serve(weighted_handler({SINGLE: 85, MULTIPLE: 10, "weather-backend: canary": 5}, seed=3))
    result = run_cli(server.url, "-n", "400", "-H", "Host: weather-backend", "--expect", tutorial_rules, "-o", "json")
    assert result.code == 1
    reasons = " ".join(result.json()["verdict"]["reasons"])
    assert "weather-backend: canary" in reasons
    assert "--map" in reasons


@stochastic
def test_inline_weights(serve) -> None:
    server = serve(weighted_handler({"v1": 70, "v2": 30}, seed=11))
    result = run_cli(server.url, "-n", "3000", "--expect", "v1=70,v2=30", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["verdict"]["outcome"] == "PASS"
    wrong = run_cli(server.url, "-n", "3000", "--expect", "v1=30,v2=70", "-o", "json")
    assert wrong.code == 1


@stochastic
def test_kind_list_on_stdin(serve, fixtures_dir: Path) -> None:
    import yaml

    documents = list(yaml.safe_load_all((fixtures_dir / "tutorial" / "weather-rules.yaml").read_text()))
    listing = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": documents})
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=5))
    proc = subprocess.run(
        [sys.executable, "-m", "respy", server.url, "-n", "2000", "-H", "Host: weather-backend", "--expect", "-"],
        input=listing, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert verdict_line_of(proc.stdout).startswith("PASS")


def test_rules_that_do_not_route_this_request_exit_2_naming_the_hosts(serve, tutorial_rules: str) -> None:
    server = serve(weighted_handler({SINGLE: 1}, seed=1))
    result = run_cli(server.url, "-n", "10", "-H", "Host: reviews", "--expect", tutorial_rules)
    assert result.code == 2
    assert "weather-backend" in result.err
    assert server.stats.requests == 0  # nothing is sent when the rules cannot be used


@stochastic
def test_map_names_a_destination_for_a_label(serve) -> None:
    server = serve(weighted_handler({"blue": 50, "green": 50}, seed=2))
    result = run_cli(server.url, "-n", "2000", "--expect", "v1=50,v2=50", "--map", "blue=v1", "--map", "green=v2",
                     "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["assignment"]["claimed"] == {"blue": "v1", "green": "v2"}
    bad = run_cli(server.url, "-n", "10", "--expect", "v1=50,v2=50", "--map", "blue=v9")
    assert bad.code == 2 and "v9" in bad.err


def test_a_warning_before_the_run_when_n_cannot_confirm(serve) -> None:
    server = serve(weighted_handler({"a": 99, "b": 1}, seed=2))
    result = run_cli(server.url, "-n", "200", "--expect", "a=99,b=1")
    assert "cannot confirm 99/1" in result.err
    assert result.code == 3  # too few requests to decide: INCONCLUSIVE
    assert "requests are needed to decide" in result.out


@stochastic
def test_sequential_fail_at_50_50_stops_early_and_json_says_how_many(serve, tutorial_rules: str) -> None:
    server = serve(weighted_handler({SINGLE: 50, MULTIPLE: 50}, seed=9))
    result = run_cli(server.url, "-c", "10", "-H", "Host: weather-backend", "--expect", tutorial_rules, "-o", "json")
    assert result.code == 1
    data = result.json()
    assert data["verdict"]["outcome"] == "FAIL"
    assert data["requests"] <= 200
    assert data["requests"] == server.stats.requests
    assert data["verdict"]["test"] == "sequential Dirichlet-multinomial"


@stochastic
def test_sequential_pass_at_90_10_within_the_budget(serve, tutorial_rules: str) -> None:
    server = serve(weighted_handler({SINGLE: 90, MULTIPLE: 10}, seed=9))
    result = run_cli(server.url, "-c", "10", "-H", "Host: weather-backend", "--expect", tutorial_rules, "-o", "json")
    assert result.code == 0, result.out
    data = result.json()
    assert data["requests"] < data["sequential"]["budget"]
    assert data["sequential"]["stop_reason"].startswith("verdict clear after")


@stochastic
def test_strict_mode_is_consistent_or_fail(serve) -> None:
    server = serve(weighted_handler({"v1": 90, "v2": 10}, seed=4))
    result = run_cli(server.url, "-n", "500", "--expect", "v1=90,v2=10", "--strict", "-o", "json")
    assert result.json()["verdict"]["outcome"] == "CONSISTENT"
    assert result.code == 0


@stochastic
def test_by_header_works_with_expect(serve) -> None:
    import random

    from respy.demo.localserver import Request, Response

    rng = random.Random(8)

    async def handler(request: Request) -> Response:
        version = rng.choices(["v1", "v2"], weights=[80, 20])[0]
        return Response(200, b"same body from every version", [("x-version", version)])

    server = serve(handler)
    result = run_cli(server.url, "-n", "3000", "--by", "header:x-version", "--expect", "v1=80,v2=20", "-o", "json")
    assert result.code == 0, result.out
    assert result.json()["assignment"]["claimed"] == {"v1": "v1", "v2": "v2"}


def test_a_label_that_names_two_destinations_is_exit_2_naming_them(serve) -> None:
    server = serve(weighted_handler({"v1 and v2 both": 1}, seed=1))
    result = run_cli(server.url, "-n", "20", "--expect", "v1=50,v2=50")
    assert result.code == 2
    error = result.err.splitlines()[-1]
    assert error.startswith("respy: error: ") and "v1 and v2 both" in error and "(v1, v2)" in error
    assert "| v1 and v2 both |    20 |" in result.out  # what was measured is not lost


def test_nothing_reachable_with_expect_is_exit_4_without_a_verdict() -> None:
    result = run_cli("http://127.0.0.1:9/", "-n", "5", "--expect", "v1=90,v2=10", "-o", "json")
    assert result.code == 4
    data = result.json()
    assert "verdict" not in data
    assert [e["outcome"] for e in data["expected"]] == ["v1", "v2"]  # the declared split is still shown
    assert "no split to check" in result.err
