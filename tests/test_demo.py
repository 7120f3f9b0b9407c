"""``respy demo``: the tutorial's weather-backend on 127.0.0.1, routed 90/10 or (``--broken``) round-robin.

The demo's router draws from a seeded RNG (``--seed``), so the counts are deterministic.
CI runs these in the fresh virtual environment that ``.ci/run`` creates.
"""

from __future__ import annotations

import json
import subprocess
import sys


def demo(*argv: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "respy", "demo", *argv], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def shares(data: dict) -> dict[str, float]:  # type: ignore[type-arg]
    return {row["label"]: row["count"] / data["requests"] for row in data["rows"]}


def test_demo_shows_about_90_10_and_passes() -> None:
    code, out, err = demo("--seed", "1", "-n", "1000", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    observed = shares(data)
    assert abs(observed["weather-backend: single"] - 0.9) < 0.03
    assert abs(observed["weather-backend: multiple"] - 0.1) < 0.03
    assert data["verdict"]["outcome"] == "PASS"


def test_demo_broken_shows_50_50_and_fails() -> None:
    code, out, err = demo("--broken", "-n", "1000", "-o", "json")
    assert code == 1, err
    data = json.loads(out)
    assert shares(data) == {"weather-backend: single": 0.5, "weather-backend: multiple": 0.5}  # round-robin
    assert data["verdict"]["outcome"] == "FAIL"


def test_demo_table_for_people_is_sequential_by_default() -> None:
    code, out, _ = demo("--seed", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("☎️   up to ") and "(until the verdict is clear)" in lines[0]
    assert lines[-1].startswith("PASS  weather-backend")
    code, out, _ = demo("--broken")
    assert code == 1
    assert any(line.startswith("FAIL  weather-backend") for line in out.splitlines())


def test_demo_without_check_only_counts() -> None:
    code, out, _ = demo("--seed", "1", "-n", "200", "--no-check")
    assert code == 0
    assert "DESTINATION" not in out and "| weather-backend: single " in out


def test_demo_broken_tells_the_tutorials_istio_1_2_story() -> None:
    # since Istio 1.3 the port named "backend" is sniffed and routed: the tutorial's bug is Istio 1.1/1.2 behaviour
    code, out, err = demo("--broken", "-n", "1000", "-o", "json")
    assert code == 1, err
    assert "Istio 1.1/1.2" in err
    best = [c for c in json.loads(out)["diagnosis"] if c.get("best")]
    assert "Likely causes for Istio 1.2, most likely first: 1) the Service port's name" in best[0]["explanation"]
