"""Reading Envoy's ``/config_dump`` (``envoy.admin.v3.*ConfigDump``) into the parts routing needs.

The dump is a list of typed sections (listeners, clusters, routes, endpoints, ...), each with static and
dynamic entries; Envoy's JSON omits every field at its default value (proto3), so nothing here is required.
Only the shapes that decide where a request goes are kept: listeners with their filter chains (an HTTP
connection manager with its RDS name or inline route configuration, or a TCP proxy), route configurations
by name, clusters, and (with ``?include_eds``) endpoints with their health.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from respy._errors import RespyError

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
# Envoy load-balances over HEALTHY hosts; UNKNOWN (the default, no health checking) counts as healthy
# (envoy/config/core/v3/health_check.proto, HealthStatus).
USABLE_HEALTH = ("HEALTHY", "UNKNOWN", "")

Json = Mapping[str, Any]


class ConfigDumpError(RespyError):
    """A config dump that is not one: not JSON, or JSON without Envoy's ``configs`` list."""


@dataclass(frozen=True)
class ChainMatch:
    """``filter_chain_match``: the criteria Envoy uses to pick a listener's filter chain for a connection."""

    destination_port: int | None = None
    prefix_ranges: tuple[tuple[str, int], ...] = ()
    server_names: tuple[str, ...] = ()
    transport_protocol: str = ""
    application_protocols: tuple[str, ...] = ()
    source_constrained: bool = False


@dataclass(frozen=True)
class NetworkAction:
    """What a filter chain does with the connection: HTTP routing (an HCM) or a TCP proxy."""

    kind: str  # "http" | "tcp" | "other"
    rds_name: str = ""
    inline_route: Json | None = None
    strip_any_host_port: bool = False
    tcp_clusters: tuple[tuple[str, int], ...] = ()  # (cluster, weight)
    fault: Json | None = None  # an HCM-level fault filter's config (rare; istiod puts faults on routes)


@dataclass(frozen=True)
class FilterChain:
    name: str
    match: ChainMatch
    action: NetworkAction


@dataclass(frozen=True)
class Listener:
    """A listener: its addresses (``address`` and ``additional_addresses``, as ``(ip, port)``) and chains."""

    name: str
    addresses: tuple[tuple[str, int | None], ...]
    use_original_dst: bool
    bind_to_port: bool
    chains: tuple[FilterChain, ...]
    default_chain: FilterChain | None
    listener_filters: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return self.addresses[0][0] if self.addresses else ""

    @property
    def port(self) -> int | None:
        return self.addresses[0][1] if self.addresses else None

    @property
    def wildcard(self) -> bool:
        return self.address in WILDCARD_ADDRESSES

    def ports(self) -> set[int]:
        return {port for _, port in self.addresses if port is not None}


@dataclass(frozen=True)
class Endpoint:
    address: str
    health: str
    weight: int = 1

    @property
    def healthy(self) -> bool:
        return self.health in USABLE_HEALTH


@dataclass(frozen=True)
class Cluster:
    name: str
    kind: str  # EDS, STATIC, STRICT_DNS, ORIGINAL_DST, ...


@dataclass
class ConfigDump:
    """The parts of one Envoy's configuration that decide where a request goes."""

    listeners: list[Listener] = field(default_factory=list)
    route_configs: dict[str, Json] = field(default_factory=dict)
    unnamed_route_configs: list[Json] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    endpoints: dict[str, list[Endpoint]] | None = None  # None: the dump had no endpoints (no ?include_eds)
    sections: set[str] = field(default_factory=set)  # which kinds of config the dump held
    version: str = ""

    def bound(self, statuses: Mapping[str, list[tuple[str, int | None]]]) -> None:
        """Listeners configured on port 0 get the ports the OS gave them (Envoy's ``/listeners``)."""
        for index, listener in enumerate(self.listeners):
            actual = statuses.get(listener.name)
            if actual and len(actual) == len(listener.addresses) and 0 in {p for _, p in listener.addresses}:
                self.listeners[index] = replace(listener, addresses=tuple(actual))

    def route_config(self, name: str) -> Json | None:
        return self.route_configs.get(name)

    def endpoints_of(self, cluster: str) -> list[Endpoint] | None:
        """The cluster's endpoints; None when the dump cannot say (EDS clusters in a dump without include_eds)."""
        if self.endpoints is not None and cluster in self.endpoints:
            return self.endpoints[cluster]
        return [] if "EndpointsConfigDump" in self.sections else None


def parse_config_dump(text: str | bytes) -> ConfigDump:
    """Parse the body of ``/config_dump`` (or a saved copy of it)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ConfigDumpError(f"not a config dump: not JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("configs"), list):
        raise ConfigDumpError("not a config dump: no 'configs' list (is this Envoy's /config_dump?)")
    return from_configs(data["configs"])


def from_configs(configs: Iterable[Any]) -> ConfigDump:
    dump = ConfigDump()
    readers = {
        "ListenersConfigDump": _read_listeners,
        "RoutesConfigDump": _read_routes,
        "ClustersConfigDump": _read_clusters,
        "EndpointsConfigDump": _read_endpoints,
        "BootstrapConfigDump": _read_bootstrap,
    }
    for section in configs:
        if not isinstance(section, Mapping):
            continue
        kind = str(section.get("@type", "")).rsplit(".", 1)[-1]
        reader = readers.get(kind)
        if reader is not None:
            dump.sections.add(kind)
            reader(section, dump)
    return dump


def _dicts(value: Any) -> list[Json]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _dict(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


def _read_bootstrap(section: Json, dump: ConfigDump) -> None:
    node = _dict(_dict(section.get("bootstrap")).get("node"))
    metadata = _dict(node.get("metadata"))
    dump.version = str(metadata.get("ISTIO_VERSION") or _dict(node.get("user_agent_build_version")).get("version")
                       or "")


def _read_listeners(section: Json, dump: ConfigDump) -> None:
    for entry in _dicts(section.get("static_listeners")):
        _add_listener(dump, _dict(entry.get("listener")))
    for entry in _dicts(section.get("dynamic_listeners")):
        # The active state is what serves connections; warming/draining ones do not (yet, any more).
        _add_listener(dump, _dict(_dict(entry.get("active_state")).get("listener")))


def _add_listener(dump: ConfigDump, raw: Json) -> None:
    if not raw:
        return
    extra = [_dict(a.get("address")) for a in _dicts(raw.get("additional_addresses"))]
    default = raw.get("default_filter_chain")
    dump.listeners.append(Listener(
        name=str(raw.get("name", "")),
        addresses=tuple(socket_address(a) for a in [_dict(raw.get("address")), *extra]),
        use_original_dst=bool(raw.get("use_original_dst", False)),
        bind_to_port=_bool_value(raw.get("bind_to_port"), default=True),
        chains=tuple(_filter_chain(chain) for chain in _dicts(raw.get("filter_chains"))),
        default_chain=_filter_chain(default) if isinstance(default, Mapping) else None,
        listener_filters=tuple(str(f.get("name", "")) for f in _dicts(raw.get("listener_filters"))),
    ))


def socket_address(address: Json) -> tuple[str, int | None]:
    """``{"socket_address": {"address": ..., "port_value": ...}}`` as ``(ip, port)``."""
    socket = _dict(address.get("socket_address"))
    return str(socket.get("address", "")), _uint(socket.get("port_value"), None)


def _bool_value(value: Any, *, default: bool) -> bool:
    """A ``google.protobuf.BoolValue``: JSON gives the bare boolean, or ``{"value": ...}`` in some dumps."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return bool(value.get("value", False))
    return default


def _uint(value: Any, default: int | None) -> Any:
    """A ``google.protobuf.UInt32Value``: a bare number in Envoy's JSON, ``{"value": n}`` in some tools' dumps."""
    if isinstance(value, Mapping):
        value = value.get("value")
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _filter_chain(raw: Json) -> FilterChain:
    match = _dict(raw.get("filter_chain_match"))
    port = _uint(match.get("destination_port"), None)
    ranges = tuple((str(r.get("address_prefix", "")), _uint(r.get("prefix_len"), 0))
                   for r in _dicts(match.get("prefix_ranges")))
    chain_match = ChainMatch(
        destination_port=port,
        prefix_ranges=ranges,
        server_names=tuple(str(s) for s in match.get("server_names", []) or []),
        transport_protocol=str(match.get("transport_protocol", "")),
        application_protocols=tuple(str(a) for a in match.get("application_protocols", []) or []),
        source_constrained=bool(match.get("source_prefix_ranges") or match.get("source_ports")
                                or match.get("direct_source_prefix_ranges")
                                or match.get("source_type") not in (None, "ANY")),
    )
    return FilterChain(name=str(raw.get("name", "")), match=chain_match, action=_network_action(raw))


def _network_action(chain: Json) -> NetworkAction:
    for network_filter in _dicts(chain.get("filters")):
        config = _dict(network_filter.get("typed_config"))
        type_url = str(config.get("@type", ""))
        name = str(network_filter.get("name", ""))
        if name == HCM or type_url.endswith(".HttpConnectionManager"):
            return _hcm(config)
        if name == TCP_PROXY or type_url.endswith(".TcpProxy"):
            return _tcp_proxy(config)
    return NetworkAction(kind="other")


def _hcm(config: Json) -> NetworkAction:
    rds = _dict(config.get("rds"))
    fault = None
    for http_filter in _dicts(config.get("http_filters")):
        if str(http_filter.get("name", "")) == "envoy.filters.http.fault":
            typed = _dict(http_filter.get("typed_config"))
            if typed.get("abort") or typed.get("delay"):
                fault = typed
    inline = config.get("route_config")
    return NetworkAction(
        kind="http",
        rds_name=str(rds.get("route_config_name", "")),
        inline_route=inline if isinstance(inline, Mapping) else None,
        strip_any_host_port=bool(config.get("strip_any_host_port", False)),
        fault=fault,
    )


def _tcp_proxy(config: Json) -> NetworkAction:
    weighted = _dicts(_dict(config.get("weighted_clusters")).get("clusters"))
    if weighted:
        clusters = tuple((str(c.get("name", "")), int(c.get("weight", 0) or 0)) for c in weighted)
    else:
        clusters = ((str(config.get("cluster", "")), 1),)
    return NetworkAction(kind="tcp", tcp_clusters=clusters)


def _read_routes(section: Json, dump: ConfigDump) -> None:
    for entry in [*_dicts(section.get("dynamic_route_configs")), *_dicts(section.get("static_route_configs"))]:
        config = _dict(entry.get("route_config"))
        if not config:
            continue
        name = str(config.get("name", ""))
        if name and name not in dump.route_configs:
            dump.route_configs[name] = config
        elif not name:
            dump.unnamed_route_configs.append(config)


def _read_clusters(section: Json, dump: ConfigDump) -> None:
    entries = [*_dicts(section.get("static_clusters")), *_dicts(section.get("dynamic_active_clusters"))]
    for entry in entries:
        raw = _dict(entry.get("cluster"))
        name = str(raw.get("name", ""))
        if name:
            kind = str(raw.get("type") or _dict(raw.get("cluster_type")).get("name") or "EDS")
            dump.clusters[name] = Cluster(name=name, kind=kind)
        inline = _dict(raw.get("load_assignment"))
        if inline and name:
            # STATIC/DNS clusters carry their endpoints inline; a dump without include_eds still shows them.
            dump.endpoints = dump.endpoints if dump.endpoints is not None else {}
            dump.endpoints.setdefault(name, _lb_endpoints(inline))


def _read_endpoints(section: Json, dump: ConfigDump) -> None:
    dump.endpoints = dump.endpoints if dump.endpoints is not None else {}
    for entry in [*_dicts(section.get("static_endpoint_configs")), *_dicts(section.get("dynamic_endpoint_configs"))]:
        assignment = _dict(entry.get("endpoint_config"))
        name = str(assignment.get("cluster_name", ""))
        if name:
            dump.endpoints[name] = _lb_endpoints(assignment)  # EDS is the live view: it wins over inline


def _lb_endpoints(assignment: Json) -> list[Endpoint]:
    found = []
    for locality in _dicts(assignment.get("endpoints")):
        for lb in _dicts(locality.get("lb_endpoints")):
            address = _dict(_dict(lb.get("endpoint")).get("address"))
            found.append(Endpoint(
                address=_address_text(address),
                health=str(lb.get("health_status", "")),
                weight=_uint(lb.get("load_balancing_weight"), 1),
            ))
    return found


def _address_text(address: Json) -> str:
    socket = _dict(address.get("socket_address"))
    if socket:
        host = str(socket.get("address", ""))
        port = socket.get("port_value")
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port}" if port is not None else host
    pipe = _dict(address.get("pipe"))
    if pipe:
        return str(pipe.get("path", ""))
    internal = _dict(address.get("envoy_internal_address"))
    if internal:
        return f"envoy://{internal.get('server_listener_name', '')}/{internal.get('endpoint_id', '')}"
    return ""
