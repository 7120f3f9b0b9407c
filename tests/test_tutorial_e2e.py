"""The tutorial end to end: its own manifests against a local round-robin server (what Kubernetes does when
Istio's rules are not applied). The server alternates deterministically and respy sends over one connection
(-c 1: several kept-alive connections in lock-step could each see one version only, which respy rightly calls
connection-dependent and would make the verdict depend on scheduling), so nothing here is random."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from support import run_cli

from respy.demo.localserver import Request, Response

BODIES = ("weather-backend: single", "weather-backend: multiple")


def round_robin():  # type: ignore[no-untyped-def]
    cycle = itertools.cycle(BODIES)

    async def handler(request: Request) -> Response:
        return Response(200, next(cycle).encode())

    return handler


@pytest.fixture
def tutorial(fixtures_dir: Path) -> tuple[str, str]:
    folder = fixtures_dir / "tutorial"
    return str(folder / "weather-rules.yaml"), str(folder / "weather-deployment.yaml")


def check(server_url: str, *rules: str, output: str = "table", extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    argv = [f"{server_url}/version", "-n", "1000", "-c", "1", "-H", "Host: weather-backend", "-o", output, *extra]
    for path in rules:
        argv += ["--expect", path]
    return run_cli(*argv)


def test_round_robin_fails_with_the_equal_split_explanation_and_the_port_fix(serve, tutorial) -> None:
    server = serve(round_robin())
    result = check(server.url, *tutorial)
    assert result.code == 1, result.err
    assert "FAIL  weather-backend" in result.out
    text = " ".join(result.out.split())  # the explanation is wrapped for the terminal
    assert "fits an equal split across 2 versions" in text
    assert "not the declared 90/10" in text
    assert 'Service default/weather-backend port 5000 is named "backend"' in text
    assert "http-backend" in text and "appProtocol: http" in text


def test_json_carries_the_diagnosis_and_the_findings(serve, tutorial) -> None:
    server = serve(round_robin())
    data = check(server.url, *tutorial, output="json").json()
    assert data["verdict"]["outcome"] == "FAIL"
    best = [c for c in data["diagnosis"] if c.get("best")] or data["diagnosis"][:1]
    assert "equal" in best[0]["name"]
    # current Istio sniffs the port: IST0118 is Info (as istioctl reports it), the sidecar comes first among causes
    assert any(f["istio_code"] == "IST0118" and f["severity"] == "info" for f in data["findings"])
    assert "1) the client has no sidecar" in best[0]["explanation"]


@pytest.mark.parametrize("fix", ["rename", "appProtocol"])
def test_with_the_port_fixed_the_finding_is_gone(serve, tutorial, tmp_path: Path, fix: str) -> None:
    rules, deployment = tutorial
    documents = list(yaml.safe_load_all(Path(deployment).read_text()))
    for doc in documents:
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "weather-backend":
            port = doc["spec"]["ports"][0]
            if fix == "rename":
                port["name"] = "http-backend"
            else:
                port["appProtocol"] = "http"
    fixed = tmp_path / "weather-deployment.yaml"
    fixed.write_text(yaml.safe_dump_all(documents))
    server = serve(round_robin())
    data = check(server.url, rules, str(fixed), output="json").json()
    assert data["verdict"]["outcome"] == "FAIL"  # the server still round-robins
    assert not any(f["istio_code"] == "IST0118" for f in data.get("findings", []))


def test_on_istio_1_2_the_port_name_is_the_first_cause_and_a_warning(serve, tutorial) -> None:
    server = serve(round_robin())
    data = check(server.url, *tutorial, output="json", extra=("--istio-version", "1.2")).json()
    best = [c for c in data["diagnosis"] if c.get("best")]
    assert "Likely causes for Istio 1.2, most likely first: 1) the Service port's name" in best[0]["explanation"]
    assert any(f["istio_code"] == "IST0118" and f["severity"] == "warning" for f in data["findings"])


def test_connect_to_routes_as_the_service_and_dials_the_stand_in(serve, tutorial) -> None:
    # the request (URL, Host) is weather-backend:5000, so the rules route it as the mesh would; the connection
    # goes to the local stand-in server
    seen: list[str] = []
    cycle = itertools.cycle(BODIES)

    async def handler(request: Request) -> Response:
        seen.append(request.headers.get("host", ""))
        return Response(200, next(cycle).encode())

    server = serve(handler)
    port = server.url.rsplit(":", 1)[1]
    result = run_cli("http://weather-backend:5000/version", "-n", "200", "--expect", tutorial[0],
                     "--connect-to", f"weather-backend:5000:127.0.0.1:{port}", "-o", "json")
    assert result.code == 1, result.err  # round-robin: FAIL against 90/10, but every request arrived
    assert set(seen) == {"weather-backend:5000"} and len(seen) == 200
    assert "port-forward reaches one pod" in result.err
