"""Envoy's route selection as respy models it, on small hand-written route configurations.

Each case is a rule of Envoy's (source/common/router/config_impl.cc, header_utility.cc) that decides which
virtual host and route a request gets; the real-Envoy tests (test_sidecar_envoy.py) check the whole walk
against a running Envoy.
"""

from __future__ import annotations

from typing import Any

import pytest

from respy.check.programmed import programmed_expectation
from respy.sidecar.dump import parse_config_dump
from respy.sidecar.envoy_routing import EnvoyRequest, find_virtual_host, first_route
from respy.sidecar.istio_names import parse_cluster_name, route_source
from respy.sidecar.programmed import programmed_for


def vhosts(*domain_lists: list[str]) -> dict[str, Any]:
    return {"virtual_hosts": [{"name": f"vh{i}", "domains": domains, "routes": []}
                              for i, domains in enumerate(domain_lists)]}


@pytest.mark.parametrize(("host", "chosen"), [
    ("api.foo.com", "vh0"),          # exact beats every wildcard
    ("x.api.foo.com", "vh1"),        # longest suffix wildcard first
    ("x.foo.com", "vh2"),
    ("foo.com", "vh4"),              # "*.foo.com" needs one character before ".foo.com"
    ("api.bar", "vh3"),              # prefix wildcard after suffix wildcards
    ("API.FOO.COM", "vh0"),          # hosts are lower-cased
    ("other", "vh4"),                # "*" last
])
def test_virtual_host_order(host: str, chosen: str) -> None:
    config = vhosts(["api.foo.com"], ["*.api.foo.com"], ["*.foo.com"], ["api.*"], ["*"])
    assert find_virtual_host(config, host)["name"] == chosen  # type: ignore[index]


def test_port_in_host_matters_unless_ignored() -> None:
    config = vhosts(["weather-backend"], ["*"])
    assert find_virtual_host(config, "weather-backend:5000")["name"] == "vh1"  # type: ignore[index]
    config["ignore_port_in_host_matching"] = True  # istiod sets it on sidecar route configs
    assert find_virtual_host(config, "weather-backend:5000")["name"] == "vh0"  # type: ignore[index]


def test_no_virtual_host_without_a_catch_all() -> None:
    assert find_virtual_host(vhosts(["a"]), "b") is None


def route_index(routes: list[dict[str, Any]], url: str, headers: dict[str, str] | None = None) -> int | None:
    found = first_route({"routes": routes}, EnvoyRequest.build(url, headers))
    return None if found is None else found[0]


def test_first_matching_route_wins_in_order() -> None:
    routes = [{"match": {"prefix": "/api"}}, {"match": {"path": "/api/v1"}}, {"match": {"prefix": "/"}}]
    assert route_index(routes, "http://h/api/v1") == 0
    assert route_index(routes, "http://h/x") == 2


def test_path_kinds() -> None:
    routes = [
        {"match": {"path": "/exact"}},
        {"match": {"path_separated_prefix": "/seg"}},
        {"match": {"safe_regex": {"regex": "/v[0-9]+/items"}}},
        {"match": {"prefix": "/CaSe", "case_sensitive": False}},
    ]
    assert route_index(routes, "http://h/exact?q=1") == 0      # path ignores the query
    assert route_index(routes, "http://h/exact/") is None
    assert route_index(routes, "http://h/seg") == 1
    assert route_index(routes, "http://h/seg/more") == 1
    assert route_index(routes, "http://h/segment") is None     # a whole segment, not a string prefix
    assert route_index(routes, "http://h/v12/items") == 2
    assert route_index(routes, "http://h/v12/items/x") is None  # the regex matches the whole path
    assert route_index(routes, "http://h/case/x") == 3


def test_regex_is_re2_not_python() -> None:
    # Python's re accepts backreferences and lookarounds, RE2 does not: Envoy would never serve such a route
    routes = [{"match": {"safe_regex": {"regex": "/(a)\\1"}}}, {"match": {"prefix": "/"}}]
    assert route_index(routes, "http://h/aa") == 1


def test_headers_and_query_parameters() -> None:
    routes = [
        {"match": {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]}},
        {"match": {"prefix": "/", "headers": [{"name": "x-canary", "present_match": True, "invert_match": True}],
                   "query_parameters": [{"name": "v", "string_match": {"prefix": "2"}}]}},
        {"match": {"prefix": "/", "headers": [{"name": "x-debug", "string_match": {"exact": ""},
                                               "treat_missing_header_as_empty": True}]}},
        {"match": {"prefix": "/"}},
    ]
    assert route_index(routes, "http://h/", {"end-user": "jason"}) == 0
    assert route_index(routes, "http://h/", {"End-User": "Jason"}) == 2  # values are case-sensitive
    assert route_index(routes, "http://h/?v=2&v=1") == 1
    assert route_index(routes, "http://h/?v=1&v=2") == 2  # only the first value counts
    assert route_index(routes, "http://h/?v=2", {"x-canary": "1"}) == 2
    assert route_index(routes, "http://h/", {"x-debug": "on"}) == 3


def test_cluster_names_and_config_paths() -> None:
    destination = parse_cluster_name("outbound|5000|single|weather-backend.default.svc.cluster.local")
    assert destination is not None
    assert (destination.port, destination.subset, destination.short_host) == (5000, "single", "weather-backend")
    srv = parse_cluster_name("outbound_.9080_.v2_.reviews.default.svc.cluster.local")
    assert srv is not None and (srv.port, srv.subset, srv.host) == (9080, "v2", "reviews.default.svc.cluster.local")
    assert parse_cluster_name("PassthroughCluster") is None
    source = route_source({"metadata": {"filter_metadata": {"istio": {
        "config": "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews"}}}})
    assert source is not None and source.describe() == "VirtualService shop/reviews"
    assert source.istioctl() == "reviews.shop"


def sidecar_dump(listeners: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None) -> str:
    import json

    configs: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "dynamic_listeners": [{"name": x["name"], "active_state": {"listener": x}} for x in listeners]},
    ]
    if routes is not None:
        configs.append({"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                        "dynamic_route_configs": [{"route_config": r} for r in routes]})
    return json.dumps({"configs": configs})


def hcm_chain(rds: str, **match: Any) -> dict[str, Any]:
    return {"filter_chain_match": match, "filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                                  "HttpConnectionManager", "rds": {"route_config_name": rds}}}]}


def tcp_chain(cluster: str, **match: Any) -> dict[str, Any]:
    return {"filter_chain_match": match, "filters": [{
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                         "cluster": cluster}}]}


def listener(name: str, address: str, port: int, chains: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": {"socket_address": {"address": address, "port_value": port}},
            "filter_chains": chains, **extra}


def test_vip_listener_beats_the_wildcard_one_and_sniffing_picks_the_http_chain() -> None:
    """istiod's listeners for a port of unknown protocol (sniffed): ``<VIP>_<port>`` with an HTTP chain for
    ``http/1.1``/``h2c`` and a TCP chain for the rest, beside ``0.0.0.0_<port>`` for other services."""
    inspectors = {"listener_filters": [{"name": "envoy.filters.listener.tls_inspector"},
                                       {"name": "envoy.filters.listener.http_inspector"}]}
    vip = listener("10.96.0.12_5000", "10.96.0.12", 5000, [
        hcm_chain("weather-backend.default.svc.cluster.local:5000", application_protocols=["http/1.1", "h2c"]),
        tcp_chain("outbound|5000||weather-backend.default.svc.cluster.local"),
    ], **inspectors)
    wildcard = listener("0.0.0.0_5000", "0.0.0.0", 5000, [hcm_chain("5000")], **inspectors)
    route = {"name": "weather-backend.default.svc.cluster.local:5000", "virtual_hosts": [
        {"name": "wb", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {
            "cluster": "outbound|5000||weather-backend.default.svc.cluster.local"}}]}]}
    dump = parse_config_dump(sidecar_dump([wildcard, vip], [route]))
    request = EnvoyRequest.build("http://weather-backend:5000/version")
    to_vip = programmed_for(dump, request, "10.96.0.12")
    assert (to_vip.kind, to_vip.listener, to_vip.route_config) == \
        ("http", "10.96.0.12_5000", "weather-backend.default.svc.cluster.local:5000")
    elsewhere = programmed_for(dump, request, "10.96.0.99")
    assert (elsewhere.listener, elsewhere.kind, elsewhere.status) == ("0.0.0.0_5000", "no_virtual_host", 404)


def test_tcp_only_port_is_a_tcp_proxy_over_all_endpoints() -> None:
    tcp = listener("10.96.0.12_5000", "10.96.0.12", 5000,
                   [tcp_chain("outbound|5000||weather-backend.default.svc.cluster.local")])
    programmed = programmed_for(parse_config_dump(sidecar_dump([tcp])),
                                EnvoyRequest.build("http://weather-backend:5000/"), "10.96.0.12")
    assert programmed.kind == "tcp"
    assert [(c.host, c.subset, c.share) for c in programmed.clusters] == \
        [("weather-backend.default.svc.cluster.local", "", 1.0)]


def test_no_listener_on_the_port_stays_on_virtual_outbound() -> None:
    outbound = listener("virtualOutbound", "0.0.0.0", 15001, [tcp_chain("PassthroughCluster")],
                        use_original_dst=True)
    programmed = programmed_for(parse_config_dump(sidecar_dump([outbound])),
                                EnvoyRequest.build("http://weather-backend:5000/"), "10.96.0.12")
    assert programmed.listener == "virtualOutbound" and programmed.passthrough and not programmed.checkable


def test_fault_abort_and_weights_make_the_programmed_expectation() -> None:
    fault = {"envoy.filters.http.fault": {"abort": {"http_status": 500, "percentage": {
        "numerator": 200000, "denominator": "MILLION"}}}}
    route = {"name": "8080", "virtual_hosts": [{"name": "r", "domains": ["*"], "routes": [{
        "match": {"prefix": "/"}, "typed_per_filter_config": fault,
        "route": {"weighted_clusters": {"clusters": [
            {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "weight": 75},
            {"name": "outbound|9080|v2|reviews.default.svc.cluster.local", "weight": 25}]}}}]}]}
    dump = parse_config_dump(sidecar_dump([listener("0.0.0.0_8080", "0.0.0.0", 8080, [hcm_chain("8080")])], [route]))
    programmed = programmed_for(dump, EnvoyRequest.build("http://reviews:8080/"))
    shares = programmed_expectation(programmed).probabilities
    assert shares == pytest.approx({"HTTP 500 (fault abort)": 0.2, "v1": 0.6, "v2": 0.2})


def test_a_dump_without_eds_does_not_claim_empty_clusters() -> None:
    """``/config_dump`` without ``include_eds`` lists EDS clusters without endpoints: that is no evidence of 0."""
    import json

    clusters = {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "static_clusters": [{"cluster": {"name": "agent", "type": "STATIC", "load_assignment": {
                    "cluster_name": "agent", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": 15020}}}}]}]}}}],
                "dynamic_active_clusters": [{"cluster": {"name": "outbound|9080|v1|reviews.default.svc.cluster.local",
                                                         "type": "EDS"}}]}
    without = parse_config_dump(json.dumps({"configs": [clusters]}))
    assert without.endpoints_of("outbound|9080|v1|reviews.default.svc.cluster.local") is None
    assert [e.address for e in without.endpoints_of("agent") or []] == ["127.0.0.1:15020"]
    eds = {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": []}
    with_eds = parse_config_dump(json.dumps({"configs": [clusters, eds]}))
    assert with_eds.endpoints_of("outbound|9080|v1|reviews.default.svc.cluster.local") == []


def test_a_saved_dump_read_outside_the_pod_finds_the_service_address_in_the_config() -> None:
    """``weather-backend`` does not resolve on a laptop: the VIP comes from istiod's domains, or from the
    ``<VIP>_<port>`` listener whose TCP proxy goes to the Service."""
    vip = listener("10.96.0.12_5000", "10.96.0.12", 5000,
                   [tcp_chain("outbound|5000||weather-backend.default.svc.cluster.local")])
    wildcard = listener("0.0.0.0_5000", "0.0.0.0", 5000, [hcm_chain("5000")])
    tcp_only = parse_config_dump(sidecar_dump([wildcard, vip], [{"name": "5000", "virtual_hosts": []}]))
    request = EnvoyRequest.build("http://weather-backend:5000/version")
    found = programmed_for(tcp_only, request)
    assert (found.kind, found.listener) == ("tcp", "10.96.0.12_5000")
    assert "its address 10.96.0.12 is read from the config" in found.steps[0]
    routes = {"name": "5000", "ignore_port_in_host_matching": True, "virtual_hosts": [
        {"name": "wb", "domains": ["weather-backend", "10.96.0.7"],
         "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "x"}}]}]}
    http_vip = listener("10.96.0.7_5000", "10.96.0.7", 5000, [hcm_chain("5000")])
    other = listener("10.96.0.12_5000", "10.96.0.12", 5000,
                     [tcp_chain("outbound|5000||other.default.svc.cluster.local")])
    http = programmed_for(parse_config_dump(sidecar_dump([other, http_vip], [routes])), request)
    assert (http.kind, http.listener) == ("http", "10.96.0.7_5000")
