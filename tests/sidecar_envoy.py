"""A real Envoy configured the way istiod programs a sidecar for the tutorial's weather-backend.

The shapes follow istiod's output (pilot/pkg/networking/core: listener per port with ``tls_inspector`` and
``http_inspector``, an HTTP filter chain for ``http/1.1``/``h2c`` with route configuration ``"5000"``,
``ignore_port_in_host_matching``, virtual host ``<fqdn>:5000`` with the domains ``generateVirtualHostDomains``
lists, the ``allow_any`` catch-all to ``PassthroughCluster``, route metadata naming the VirtualService,
clusters ``outbound|5000|<subset>|<fqdn>``). Only what cannot be dynamic here differs: the configuration is
static (no istiod to serve xDS), so clusters are STATIC with their endpoints inline, and the listener binds
to a loopback port chosen for the test instead of receiving connections from iptables.
"""

from __future__ import annotations

import socket
from typing import Any

FQDN = "weather-backend.default.svc.cluster.local"
VS_PATH = "/apis/networking.istio.io/v1/namespaces/default/virtual-service/weather-backend"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def cluster_name(subset: str = "") -> str:
    return f"outbound|5000|{subset}|{FQDN}"


def free_port() -> int:
    """A loopback port free right now (Envoy's config dump shows the configured port, so it is chosen first)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def weighted_route(weights: dict[str, int]) -> dict[str, Any]:
    clusters = [{"name": cluster_name(subset), "weight": weight} for subset, weight in weights.items()]
    return {
        "match": {"prefix": "/"},
        "route": {"weighted_clusters": {"clusters": clusters}, "timeout": "0s",
                  "max_grpc_timeout": "0s"},
        "metadata": {"filter_metadata": {"istio": {"config": VS_PATH}}},
        "decorator": {"operation": "weather-backend:5000/*"},
    }


def route_config(routes: list[dict[str, Any]]) -> dict[str, Any]:
    domains = [FQDN, "weather-backend", "weather-backend.default.svc", "weather-backend.default", "10.96.0.12"]
    return {
        "name": "5000",
        "virtual_hosts": [
            {"name": f"{FQDN}:5000", "domains": domains, "routes": routes, "include_request_attempt_count": True},
            {"name": "allow_any", "domains": ["*"], "include_request_attempt_count": True, "routes": [
                {"name": "allow_any", "match": {"prefix": "/"},
                 "route": {"cluster": "PassthroughCluster", "timeout": "0s", "max_grpc_timeout": "0s"}}]},
        ],
        "validate_clusters": False,
        "ignore_port_in_host_matching": True,
    }


def _inspectors() -> list[dict[str, Any]]:
    return [
        {"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
        {"name": "envoy.filters.listener.http_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}},
    ]


def _passthrough_chain() -> dict[str, Any]:
    return {"name": "PassthroughFilterChain", "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
        "@type": TCP_TYPE, "stat_prefix": "PassthroughCluster", "cluster": "PassthroughCluster"}}]}


def http_listener(port: int, routes: list[dict[str, Any]]) -> dict[str, Any]:
    """istiod's outbound listener for an HTTP port: HCM with route config "5000", passthrough otherwise."""
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": "outbound_0.0.0.0_5000",
        "route_config": route_config(routes),
        "http_filters": [
            {"name": "envoy.filters.http.fault", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    return {
        "name": "0.0.0.0_5000",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "traffic_direction": "OUTBOUND",
        "listener_filters": _inspectors(),
        "filter_chains": [{
            "name": "0.0.0.0_5000",
            "filter_chain_match": {"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
        }],
        "default_filter_chain": _passthrough_chain(),
    }


def tcp_listener(port: int) -> dict[str, Any]:
    """Istio 1.2 for a Service port named ``backend``: a TCP proxy over all the Service's endpoints."""
    return {
        "name": "10.96.0.12_5000",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": TCP_TYPE, "stat_prefix": cluster_name(), "cluster": cluster_name()}}]}],
    }


def cluster(name: str, ports: list[int]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
            for p in ports]}] if ports else []},
    }


def passthrough_cluster() -> dict[str, Any]:
    return {"name": "PassthroughCluster", "type": "ORIGINAL_DST", "connect_timeout": "1s",
            "lb_policy": "CLUSTER_PROVIDED"}


def sidecar_config(listener: dict[str, Any], single: int, multiple: int | None) -> dict[str, Any]:
    """The bootstrap: the listener given, and the three clusters istiod makes for weather-backend:5000.

    ``multiple=None`` leaves subset ``multiple`` without endpoints (its pods are gone or not ready).
    """
    both = [single] + ([multiple] if multiple is not None else [])
    clusters = [
        cluster(cluster_name(), both),
        cluster(cluster_name("single"), [single]),
        cluster(cluster_name("multiple"), [multiple] if multiple is not None else []),
        passthrough_cluster(),
    ]
    return {"static_resources": {"listeners": [listener], "clusters": clusters}}
