"""The sidecar admin client against hostile admin endpoints on 127.0.0.1 (real sockets, raw TCP servers).

A hung, huge or garbled admin costs at most its time box and one line; it never raises into the run.
The bounds asserted are the time box plus a generous margin for a loaded machine, never a tight timing.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from faultserver import FaultServer, read_head, reply, response_head, serve_each
from support import stochastic

from respy.sidecar.admin import (
    CALL_TIMEOUT_S,
    MAX_DUMP_BYTES,
    ClusterCounts,
    parse_cluster_stats,
    stats_delta,
)
from respy.sidecar.view import SidecarView

SERVER_INFO = json.dumps({"version": "abc/1.40.0/Clean/RELEASE/BoringSSL", "state": "LIVE"}).encode()
MARGIN_S = 4.0


def open_view(url: str) -> tuple[SidecarView, float]:
    started = time.monotonic()
    view = SidecarView.open(admin=url.rstrip("/"), config_dump=None, url="http://weather-backend:5000/",
                            headers={})
    return view, time.monotonic() - started


def hang(server: FaultServer, conn: socket.socket, index: int) -> None:
    read_head(conn)
    server.stopping.wait(60)  # holds the connection open, answering nothing


def test_an_admin_that_never_answers_costs_its_time_box_and_one_line() -> None:
    with FaultServer(hang) as server:
        view, spent = open_view(server.url)
    assert spent < CALL_TIMEOUT_S + MARGIN_S
    assert view.dump is None and view.programmed is None
    assert len(view.problems) == 1 and "did not answer within" in view.problems[0]


def info_then(dump_body: bytes | None, *, trickle: bool = False):  # type: ignore[no-untyped-def]
    """Answers /server_info like Envoy, then /config_dump with ``dump_body`` (streamed without a length)."""

    def answer(server: FaultServer, conn: socket.socket, index: int) -> bool:
        if index == 0:
            reply(conn, SERVER_INFO)
            return True
        conn.sendall(response_head(200, {"Connection": "close"}))
        body = dump_body or b""
        step = 1 if trickle else 1 << 20
        for start in range(0, len(body), step):
            if server.stopping.is_set():
                return False
            try:
                conn.sendall(body[start:start + step])
            except OSError:
                return False
            if trickle:
                time.sleep(0.2)
        return False

    return serve_each(answer)


def test_fifty_megabytes_of_json_is_refused_at_the_size_limit() -> None:
    huge = b'{"configs": [], "padding": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    assert len(huge) > MAX_DUMP_BYTES
    with FaultServer(info_then(huge)) as server:
        view, spent = open_view(server.url)
    assert spent < CALL_TIMEOUT_S + MARGIN_S
    assert view.server is not None and view.dump is None
    assert len(view.problems) == 1 and "limit: not read" in view.problems[0]


def test_not_json_is_one_line() -> None:
    with FaultServer(info_then(b"<html>hello</html>")) as server:
        view, _ = open_view(server.url)
    assert view.dump is None
    assert len(view.problems) == 1 and "not JSON" in view.problems[0]


def test_a_trickling_admin_is_cut_at_its_time_box() -> None:
    with FaultServer(info_then(b'{"configs": []}' + b" " * 1000, trickle=True)) as server:
        view, spent = open_view(server.url)
    assert spent < CALL_TIMEOUT_S + MARGIN_S
    assert view.dump is None and "did not answer within" in view.problems[0]


def test_something_else_on_the_admin_port_is_not_taken_for_envoy() -> None:
    with FaultServer(serve_each(lambda s, conn, i: reply(conn, b'{"hello": "world"}') or True)) as server:
        view, _ = open_view(server.url)
    assert view.server is None and "not Envoy's" in view.problems[0]


def test_nothing_listening_is_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    view, _ = open_view(f"http://127.0.0.1:{port}")
    assert len(view.problems) == 1 and "connection refused" in view.problems[0]


def test_none_turns_the_sidecar_off() -> None:
    view = SidecarView.open(admin="none", config_dump=None, url="http://x:1/", headers={})
    assert (view.origin, view.problems, view.programmed) == ("", [], None)


def test_cluster_counters_and_their_difference() -> None:
    name = "outbound|5000|single|weather-backend.default.svc.cluster.local"
    before = parse_cluster_stats(f"cluster.{name}.upstream_rq_200: 5\ncluster.{name}.upstream_rq_total: 5\n"
                                 f"cluster.{name}.external.upstream_rq_200: 5\n", known={name})
    after = parse_cluster_stats(f"cluster.{name}.upstream_rq_200: 95\ncluster.{name}.upstream_rq_503: 2\n"
                                f"cluster.{name}.upstream_rq_total: 97\n", known={name})
    assert set(before) == {name}  # the ".external" copy is not a cluster of its own
    delta = stats_delta(before, after)
    assert delta[name] == ClusterCounts(requests=92, by_status={"200": 90, "503": 2})
    assert delta[name].answered == 92


@pytest.mark.parametrize("body", [b"", b"not json", b"{" * 50_000])
def test_config_dump_file_errors_are_usage_errors(tmp_path, body: bytes) -> None:  # type: ignore[no-untyped-def]
    from respy._errors import UsageError

    path = tmp_path / "dump.json"
    path.write_bytes(body)
    with pytest.raises(UsageError) as raised:
        SidecarView.open(admin=None, config_dump=str(path), url="http://x:1/", headers={})
    assert "not a config dump" in str(raised.value)


def test_in_a_pod_no_sidecar_means_the_mesh_is_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    from respy.explain.sidecar import BYPASS, locate

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr("respy.sidecar.view.DEFAULT_ADMIN", refused)  # deterministic: nothing on it
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    view = SidecarView.open(admin=None, config_dump=None, url="http://weather-backend:5000/", headers={})
    found = locate(view=view, declared=None, host_port="weather-backend:5000")
    assert [f.where for f in found] == [BYPASS]
    assert "respy's requests bypass the mesh (is this pod injected?)" in found[0].message
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    outside = SidecarView.open(admin=None, config_dump=None, url="http://weather-backend:5000/", headers={})
    assert (outside.absent, outside.problems) == (False, [])  # outside a pod, no sidecar is expected


def test_auto_detection_leaves_loopback_urls_alone() -> None:
    view = SidecarView.open(admin=None, config_dump=None, url="http://127.0.0.1:8080/", headers={})
    assert (view.origin, view.problems, view.absent) == ("", [], False)


@stochastic
@pytest.mark.parametrize("hostile", ["hangs", "50 MB", "not JSON"])
def test_a_hostile_admin_leaves_the_measurement_and_verdict_alone(serve, hostile: str) -> None:  # type: ignore[no-untyped-def]
    """The same seeded 90/10 backend measured with and without a hostile admin: same counts, same verdict,
    one more line (the admin's), and at most the time box more."""
    from support import run_cli, weighted_handler

    behaviours = {"hangs": hang,
                  "50 MB": info_then(b'{"configs": [], "pad": "' + b"x" * (50 * 1024 * 1024) + b'"}'),
                  "not JSON": info_then(b"\x00\xff garbage")}
    argv = ["-n", "2000", "-c", "4", "--expect", "single=90,multiple=10", "-q"]
    plain_server = serve(weighted_handler({"weather-backend: single": 90, "weather-backend: multiple": 10}, seed=3))
    plain = run_cli(plain_server.url + "/", *argv, "--envoy-admin", "none")
    with FaultServer(behaviours[hostile]) as admin:
        server = serve(weighted_handler({"weather-backend: single": 90, "weather-backend: multiple": 10}, seed=3))
        started = time.monotonic()
        hostile_run = run_cli(server.url + "/", *argv, "--envoy-admin", admin.url.rstrip("/"))
        spent = time.monotonic() - started
    assert hostile_run.code == plain.code
    verdict_line = next(line for line in plain.out.splitlines() if line.startswith(("PASS", "INCONCLUSIVE")))
    assert verdict_line.split("(")[0] in hostile_run.out  # the same counts (a seeded server), the same verdict
    extra = [line for line in hostile_run.out.splitlines() if line.startswith("sidecar")]
    assert len(extra) == 1, hostile_run.out
    assert spent < 2 * CALL_TIMEOUT_S + 30  # one time box (reading the config), plus the run itself
    assert "Traceback" not in hostile_run.err


def test_an_envoy_not_yet_live_is_said_first() -> None:
    """``/server_info`` state PRE_INITIALIZING: istiod's config has not all arrived (the control plane)."""
    from respy.explain.sidecar import CONTROL_PLANE, locate
    from respy.sidecar.admin import ServerInfo
    from respy.sidecar.programmed import Programmed

    view = SidecarView(server=ServerInfo(version="x/1.40.0/Clean", state="PRE_INITIALIZING"),
                       programmed=Programmed(kind="no_listener"))
    found = locate(view=view, declared=None, host_port="weather-backend:5000")
    assert found[0].where == CONTROL_PLANE and "PRE_INITIALIZING, not LIVE" in found[0].message
