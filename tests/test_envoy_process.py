"""The Envoy process harness: a real Envoy starts on OS-chosen ports, answers, and always stops."""

from __future__ import annotations

import urllib.request

import pytest
from envoy_harness import loopback_listener, require_envoy

from respy._errors import EnvoyStartError
from respy.sandbox.envoy import EnvoyProcess


def direct_response_config() -> dict[str, object]:
    route_config = {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "from envoy"}}}]}]}
    return {"static_resources": {"listeners": [loopback_listener("http", route_config)]}}


def test_envoy_starts_answers_and_stops() -> None:
    require_envoy()
    with EnvoyProcess(direct_response_config()) as envoy:
        port = envoy.listener_ports["http"]
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert answer.read() == b"from envoy"
        with urllib.request.urlopen(f"{envoy.admin_url}/server_info", timeout=5) as answer:
            assert b'"state": "LIVE"' in answer.read()
        process = envoy._process
        assert process is not None
    assert process.poll() is not None  # stopped on leaving the block


def test_two_envoys_run_side_by_side() -> None:
    require_envoy()
    with EnvoyProcess(direct_response_config()) as first, EnvoyProcess(direct_response_config()) as second:
        assert first.listener_ports["http"] != second.listener_ports["http"]
        assert first.admin_url != second.admin_url


def test_a_config_envoy_rejects_names_envoys_reason_and_the_config() -> None:
    require_envoy()
    bad = {"static_resources": {"clusters": [{"name": "x", "type": "NOT_A_TYPE"}]}}
    with pytest.raises(EnvoyStartError) as raised:
        EnvoyProcess(bad).start()
    message = str(raised.value)
    assert "NOT_A_TYPE" in message
    assert "configuration: " in message and message.rstrip(")").endswith(".json")
