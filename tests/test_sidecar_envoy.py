"""End to end through a real Envoy shaped as istiod programs a sidecar (tests/sidecar_envoy.py).

respy sends its requests through the Envoy to two local backends (``weather-backend: single`` and
``weather-backend: multiple``), reads the Envoy's admin API before and after, and must name the verdict and
locate the cause. Envoy draws its weighted choice at random (not seedable), so every check here runs at
``--alpha 0.001``: a correct split is failed at most 0.1 % of the time (plus the independence checks' 0.1 % each;
those tests are marked ``stochastic``: one rerun on failure); the failing cases differ from their
expectation by 40 percentage points, by a status that is never allowed, or by a destination that served none
of its ~200 requests (0 % served against 10 % ± 5 pp), so they fail every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from envoy_harness import require_envoy
from sidecar_envoy import cluster_name, free_port, http_listener, sidecar_config, tcp_listener, weighted_route
from support import CliResult, run_cli, stochastic

from respy.demo.localserver import Handler, LocalServer, Request, Response, fixed
from respy.sandbox.envoy import EnvoyProcess

RULES = Path(__file__).resolve().parents[1] / "respy" / "examples" / "weather" / "weather-rules.yaml"
N = "2000"


@pytest.fixture
def backends() -> Iterator[tuple[LocalServer, LocalServer]]:
    with LocalServer(fixed("weather-backend: single")) as single, \
            LocalServer(fixed("weather-backend: multiple")) as multiple:
        yield single, multiple


def weighted_90_10(single: int, multiple: int | None) -> tuple[dict[str, Any], int]:
    """istiod's sidecar config for the tutorial's 90/10 VirtualService, and the listener's port."""
    port = free_port()
    return sidecar_config(http_listener(port, [weighted_route({"single": 90, "multiple": 10})]), single, multiple), port


def run_through(config: dict[str, Any], port: int, *extra: str) -> tuple[CliResult, str]:
    require_envoy()
    with EnvoyProcess(config) as envoy:
        result = run_cli(f"http://127.0.0.1:{port}/version", "-H", "Host: weather-backend:5000", "-n", N, "-c", "10",
                         "--alpha", "0.001", "--envoy-admin", envoy.admin_url, "-o", "json", "-q", *extra)
        return result, envoy.admin_url


@stochastic
def test_weighted_90_10_declared_programmed_observed_agree(backends: tuple[LocalServer, LocalServer]) -> None:
    single, multiple = backends
    config, port = weighted_90_10(single.port, multiple.port)
    result, _ = run_through(config, port, "--expect", str(RULES))
    data = result.json()
    assert result.code == 0, result.err
    assert data["verdict"]["outcome"] == "PASS"
    programmed = data["programmed"]
    assert programmed["kind"] == "http" and programmed["route_config"] == "5000"
    assert programmed["virtual_host"] == "weather-backend.default.svc.cluster.local:5000"
    assert programmed["virtual_service"] == "VirtualService default/weather-backend"
    assert programmed["split"] == {"single": 0.9, "multiple": 0.1}
    assert [c["endpoints"] for c in programmed["clusters"]] == [{"healthy": 1, "total": 1}] * 2
    counts = data["sidecar_counts"]
    routed = counts[cluster_name("single")]["requests"] + counts[cluster_name("multiple")]["requests"]
    assert routed == int(N)  # the sidecar's own counters saw every request respy sent
    assert data["located"] == []


@stochastic
def test_istio_1_2_tcp_proxy_fails_and_is_located_at_the_control_plane(
        backends: tuple[LocalServer, LocalServer]) -> None:
    single, multiple = backends
    port = free_port()
    # a connection per request: with keep-alive, answers that stick to their connection are not independent and
    # respy's dispersion check may rightly say INCONCLUSIVE instead of FAIL
    result, _ = run_through(sidecar_config(tcp_listener(port), single.port, multiple.port), port,
                            "--expect", str(RULES), "--no-keepalive")
    data = result.json()
    assert result.code == 1 and data["verdict"]["outcome"] == "FAIL"
    assert data["programmed"]["kind"] == "tcp"
    first = data["located"][0]
    assert first["where"] == "control plane"
    assert "no HTTP route for weather-backend:5000 (port 5000 is proxied as TCP)" in first["message"]
    assert "istiod did not apply VirtualService default/weather-backend" in first["message"]
    assert data["sidecar_counts"][cluster_name()]["connections"] >= 2  # per connection, over both endpoints


@stochastic
def test_a_subset_without_endpoints_fails_named_by_the_sidecars_counters(
        backends: tuple[LocalServer, LocalServer]) -> None:
    """No --expect: the programmed split is the expectation. From the answers alone its 10 % of 503s ("no healthy
    upstream") could be any version's, so they were unattributed and the verdict INCONCLUSIVE. Envoy charges each
    of those local 503s to the subset's cluster (``upstream_rq_503``, after ``upstream_cx_none_healthy``): the
    counters attribute them to ``multiple``, and since it served none of its share, the check FAILs naming it."""
    single, _ = backends
    config, port = weighted_90_10(single.port, None)
    result, _ = run_through(config, port)
    data = result.json()
    assert result.code == 1 and data["verdict"]["outcome"] == "FAIL", result.out
    assert {e["outcome"]: e["probability"] for e in data["expected"]} == {"single": 0.9, "multiple": 0.1}
    counted = data["sidecar_counts"][cluster_name("multiple")]
    errors = sum(row["count"] for row in data["rows"] if row["status"] == 503)
    assert counted["by_status"] == {"503": errors} and counted["no_healthy_upstream"] == errors
    extra = data["verdict"]["extra"]
    assert extra["errors_by_sidecar"] == {"multiple": errors} == extra["unserved_by_sidecar"]
    assert extra["unknown"] == 0
    reasons = data["verdict"]["reasons"]
    assert reasons[0].startswith(f"'multiple' served none of {errors:,} answers routed to it")
    assert f"{errors:,} errors attributed to 'multiple' by the sidecar's counters" in " ".join(reasons)
    first = data["located"][0]
    assert first["where"] == "data plane"
    assert f"cluster {cluster_name('multiple')} has 0 healthy endpoints" in first["message"]


@stochastic
def test_a_declared_split_that_differs_from_the_programmed_one(
        backends: tuple[LocalServer, LocalServer], tmp_path: Path) -> None:
    single, multiple = backends
    declared = tmp_path / "weather-80-20.yaml"
    declared.write_text(RULES.read_text().replace("weight: 90", "weight: 80").replace("weight: 10", "weight: 20"))
    config, port = weighted_90_10(single.port, multiple.port)
    result, _ = run_through(config, port, "--expect", str(declared))
    data = result.json()
    assert result.code == 1 and data["verdict"]["outcome"] == "FAIL"
    first = data["located"][0]
    assert first["where"] == "control plane"
    assert first["message"].startswith("programmed 90/10 (single/multiple) (by VirtualService default/weather-backend)"
                                       " and observed 90/10, but declared 80/20 (single/multiple)")


@stochastic
def test_the_table_shows_programmed_and_sidecar_columns(backends: tuple[LocalServer, LocalServer]) -> None:
    """As in the pod: the URL names the Service; ``--connect-to`` stands in for iptables, sending the connection
    to the sidecar's listener, and the sidecar's route is looked up for the address really dialled."""
    single, multiple = backends
    config, port = weighted_90_10(single.port, multiple.port)
    require_envoy()
    with EnvoyProcess(config) as envoy:
        result = run_cli("http://weather-backend:5000/version",
                         "--connect-to", f"weather-backend:5000:127.0.0.1:{port}", "-n", "500", "-c", "10",
                         "--envoy-admin", envoy.admin_url, "-q", "--expect", str(RULES))
    assert result.code in (0, 3), result.out + result.err  # 500 answers may not decide (respy warns); never FAIL
    assert "PROGRAMMED %" in result.out and "SIDECAR COUNT" in result.out
    single_row = next(line for line in result.out.splitlines() if "weather-backend: single" in line)
    assert "90.0%" in single_row
    assert "sidecar (admin http://127.0.0.1:" in result.out and "from VirtualService default/weather-backend" in \
        result.out


def test_proxy_config_reads_the_live_admin_without_sending(backends: tuple[LocalServer, LocalServer]) -> None:
    single, multiple = backends
    port = free_port()
    routes = [
        {"match": {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]},
         "route": {"cluster": cluster_name("multiple")}},
        weighted_route({"single": 90, "multiple": 10}),
    ]
    config = sidecar_config(http_listener(port, routes), single.port, multiple.port)
    require_envoy()
    with EnvoyProcess(config) as envoy:
        jason = run_cli("proxy-config", f"http://127.0.0.1:{port}/version", "-H", "Host: weather-backend",
                        "-H", "end-user: jason", "--envoy-admin", envoy.admin_url, "-o", "json")
        table = run_cli("proxy-config", f"http://127.0.0.1:{port}/version", "-H", "Host: weather-backend",
                        "--envoy-admin", envoy.admin_url)
        requests_seen = single.stats.requests + multiple.stats.requests
    assert jason.code == 0, jason.err
    assert jason.json()["route"]["index"] == 0 and jason.json()["split"] == {"multiple": 1.0}
    assert table.code == 0 and "outbound|5000|single|weather-backend.default.svc.cluster.local" in table.out
    assert "from VirtualService default/weather-backend" in table.out
    assert requests_seen == 0  # proxy-config only reads the admin


def test_a_saved_dump_from_stdin_gives_the_same_answer(backends: tuple[LocalServer, LocalServer]) -> None:
    import urllib.request

    single, multiple = backends
    config, port = weighted_90_10(single.port, multiple.port)
    require_envoy()
    with EnvoyProcess(config) as envoy:
        with urllib.request.urlopen(f"{envoy.admin_url}/config_dump?include_eds", timeout=10) as answer:
            saved = answer.read().decode()
        live = run_cli("proxy-config", f"http://127.0.0.1:{port}/", "-H", "Host: weather-backend",
                       "--envoy-admin", envoy.admin_url, "-o", "json").json()
    offline = run_cli("proxy-config", f"http://127.0.0.1:{port}/", "-H", "Host: weather-backend",
                      "--config-dump", "-", "-o", "json", stdin=saved).json()
    assert {k: v for k, v in offline.items() if k != "origin"} == {k: v for k, v in live.items() if k != "origin"}


@stochastic
def test_programmed_but_not_observed_is_located_at_the_data_plane(backends: tuple[LocalServer, LocalServer]) -> None:
    """Subset ``single``'s endpoints include a ``multiple`` pod (a mislabelled Deployment): the sidecar does
    what it was told (90/10 by cluster), yet the answers are not 90/10. No --expect: checked against the
    programmed split, which FAILs, and the cause is placed after the control plane."""
    from sidecar_envoy import cluster

    single, multiple = backends
    config, port = weighted_90_10(single.port, multiple.port)
    clusters = config["static_resources"]["clusters"]
    clusters[1] = cluster(cluster_name("single"), [single.port, multiple.port])
    result, _ = run_through(config, port)
    data = result.json()
    assert result.code == 1 and data["verdict"]["outcome"] == "FAIL", result.out
    first = data["located"][0]
    assert first["where"] == "data plane"
    assert first["message"].startswith("the sidecar was programmed 90/10 (single/multiple) but the answers differ")
    assert "the sidecar itself routed" in first["message"]


def test_listeners_on_os_chosen_ports_and_additional_addresses(backends: tuple[LocalServer, LocalServer]) -> None:
    """The way ``respy sandbox`` runs Envoy: listeners configured on port 0 (the dump says 0; ``/listeners``
    says where the OS put them), one with a second address standing for the Service's cluster IP."""
    import json
    import urllib.request

    single, multiple = backends
    config, _ = weighted_90_10(single.port, multiple.port)
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = 0
    listener["additional_addresses"] = [{"address": {"socket_address": {"address": "127.0.0.2", "port_value": 0}}}]
    require_envoy()
    with EnvoyProcess(config) as envoy:
        with urllib.request.urlopen(f"{envoy.admin_url}/listeners?format=json", timeout=10) as answer:
            status = json.loads(answer.read())["listener_statuses"][0]
        vip_port = status["additional_local_addresses"][0]["socket_address"]["port_value"]
        main = run_cli("proxy-config", f"http://127.0.0.1:{envoy.listener_ports['0.0.0.0_5000']}/",
                       "-H", "Host: weather-backend", "--envoy-admin", envoy.admin_url, "-o", "json").json()
        vip = run_cli("proxy-config", f"http://127.0.0.2:{vip_port}/", "-H", "Host: weather-backend",
                      "--envoy-admin", envoy.admin_url, "-o", "json").json()
    for found in (main, vip):
        assert (found["kind"], found["listener"], found["split"]) == \
            ("http", "0.0.0.0_5000", {"single": 0.9, "multiple": 0.1})
    assert vip["steps"][0] == f"listener 0.0.0.0_5000 (127.0.0.2:{vip_port})"


def flaky_multiple(every: int) -> tuple[Handler, dict[str, int]]:
    """``multiple``, answering every ``every``-th request 503 with a body that names no version (as a Flask
    app's default error page would), the others 200 naming itself; and the count of what it sent."""
    sent = {"503": 0, "requests": 0}

    async def handler(request: Request) -> Response:
        sent["requests"] += 1
        if sent["requests"] % every == 0:
            sent["503"] += 1
            return Response(503, b"Service Unavailable")
        return Response(200, b"weather-backend: multiple")

    return handler, sent


@stochastic
def test_a_version_answering_503_itself_is_named_by_the_counters() -> None:
    """``multiple``'s own backend answers a third of its requests 503 with an anonymous body: the answers alone
    cannot say whose they are; the sidecar's counters for ``multiple``'s cluster can. The split is as declared
    (the requests reached ``multiple``), so they count for its share, the health note names it failing, and the
    output says where the errors came from."""
    handler, sent_by_multiple = flaky_multiple(3)
    with LocalServer(fixed("weather-backend: single")) as single, LocalServer(handler) as multiple:
        config, port = weighted_90_10(single.port, multiple.port)
        result, _ = run_through(config, port, "--expect", str(RULES))
        sent = sent_by_multiple["503"]
    data = result.json()
    assert sent > 0
    extra = data["verdict"]["extra"]
    assert extra["errors_by_sidecar"] == {"multiple": sent} == extra["errors_by_destination"]
    assert extra["unserved_by_sidecar"] == {} and extra["unknown"] == 0
    assert data["sidecar_counts"][cluster_name("multiple")]["by_status"]["503"] == sent
    assert f"{sent:,} error{'' if sent == 1 else 's'} attributed to 'multiple' by the sidecar's counters" in \
        " ".join(data["verdict"]["reasons"])
    health = {d["name"]: d for d in data["health"]["destinations"]}
    assert health["multiple"]["errors"] == sent and health["single"]["errors"] == 0
    assert data["verdict"]["outcome"] != "FAIL", data["verdict"]["reasons"]  # the routing is right


@stochastic
def test_errors_no_cluster_counted_stay_unattributed_with_a_note(backends: tuple[LocalServer, LocalServer]) -> None:
    """The route sends 10 % to subset ``multiple`` but its cluster is not defined (the DestinationRule lacks the
    subset): Envoy answers 503 ``cluster_not_found`` and charges no cluster. Checked against the declared 90/10
    (against the programmed split those 503s are an outcome of their own), the counters do not account for the
    503s: they stay unattributed (INCONCLUSIVE, as from the answers alone), and a note says why."""
    single, multiple = backends
    config, port = weighted_90_10(single.port, multiple.port)
    clusters = config["static_resources"]["clusters"]
    config["static_resources"]["clusters"] = [c for c in clusters if c["name"] != cluster_name("multiple")]
    result, _ = run_through(config, port, "--expect", str(RULES))
    data = result.json()
    errors = sum(row["count"] for row in data["rows"] if row["status"] == 503)
    assert errors > 0 and cluster_name("multiple") not in (data["sidecar_counts"] or {})
    assert result.code == 3 and data["verdict"]["outcome"] == "INCONCLUSIVE", data["verdict"]["reasons"]
    extra = data["verdict"]["extra"]
    assert extra["errors_by_sidecar"] == {} and extra["unknown"] == errors
    note = next(r for r in data["verdict"]["reasons"] if r.startswith("The sidecar's counters do not account"))
    assert f"for {errors:,} 503 answers that name no destination: they show 0 503s" in note
    assert any("is routed to but not defined" in found["message"] for found in data["located"])
    assert not any("healthy endpoints" in found["message"] for found in data["located"])  # no endpoints to count


@stochastic
def test_a_sequential_check_fails_a_subset_without_endpoints_too(backends: tuple[LocalServer, LocalServer]) -> None:
    """The pod's usual run: ``--expect`` and no ``-n``, so the check stops once it is clear. From the answers alone
    the unattributed 503s stop it early, INCONCLUSIVE ("fix the errors first"); the counters, read after the run,
    attribute the 503s the stopping look saw as well, and it FAILs naming ``multiple``."""
    single, _ = backends
    config, port = weighted_90_10(single.port, None)
    require_envoy()
    with EnvoyProcess(config) as envoy:
        result = run_cli(f"http://127.0.0.1:{port}/version", "-H", "Host: weather-backend:5000", "-c", "10",
                         "--alpha", "0.001", "--envoy-admin", envoy.admin_url, "-o", "json", "-q",
                         "--expect", str(RULES))
    data = result.json()
    verdict = data["verdict"]
    assert verdict["test"] == "sequential Dirichlet-multinomial"
    assert result.code == 1 and verdict["outcome"] == "FAIL", verdict["reasons"]
    assert verdict["reasons"][0].startswith("'multiple' served none of")
    assert set(verdict["extra"]["unserved_by_sidecar"]) == {"multiple"}
