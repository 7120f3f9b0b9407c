"""The Envoy bootstrap istiod's xDS would amount to, for one sidecar (or one named gateway).

Sources (istio/istio at 86c9f01f):
- pilot/pkg/networking/core/httproute.go: a route configuration per outbound HTTP port, named by the port
  (``"9080"``); BuildSidecarOutboundVirtualHosts (a virtual host per VirtualService host and per Service on the
  port, named ``<host>:<port>``, dedupeDomains), generateVirtualHostDomains / GenerateAltVirtualHosts (the
  domain list: FQDN, absolute FQDN, the short names the client's namespace allows, the Service's address),
  buildCatchAllVirtualHost (``allow_any`` -> PassthroughCluster), ``validate_clusters: false``,
  ``ignore_port_in_host_matching: true``.
- pilot/pkg/networking/core/route/route.go: BuildSidecarVirtualHostWrapper / separateVSHostsAndServices
  (which Services a VirtualService claims; Services without one get buildSidecarVirtualHostForService's
  default route), selectVirtualServices (off port 80 only hosts that are Services).
- pilot/pkg/networking/core/gateway.go buildGatewayHTTPRouteConfig: route ``http.<port>``, one virtual host per
  host both the Gateway server and the VirtualService name, routes of several VirtualServices appended, then
  SortVHostRoutes (catch-alls last); no host at all -> ``blackhole:<port>`` with no routes (404).
- pilot/pkg/model/service.go BuildSubsetKey: clusters ``outbound|<port>|<subset>|<fqdn>``.
- pilot/pkg/model/push_context.go getGatewayNames: no ``gateways`` = ``mesh``; sortConfigByCreationTime.
- pilot/pkg/model/sidecar.go, virtualservice.go SelectVirtualServices: a sidecar gets only the VirtualServices its
  Sidecar resource imports (``respy.rules.sidecar_scope``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from respy.rules import EgressScope, K8sObject, RuleSet, client_scope, destination_rule
from respy.sandbox.httproute import GeneratedVirtualService, from_http_routes
from respy.sandbox.inventory import CLUSTER_DOMAIN, Inventory, Service, Workload, fqdn
from respy.sandbox.routes import FAULT_FILTER, Json, RouteContext, RuleSource, http_routes

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
PASSTHROUGH = "PassthroughCluster"
LB_POLICIES = {"ROUND_ROBIN": "ROUND_ROBIN", "RANDOM": "RANDOM", "LEAST_REQUEST": "LEAST_REQUEST",
               "LEAST_CONN": "LEAST_REQUEST"}
BackendAddress = Callable[[Service, Workload], tuple[str, int]]


@dataclass
class Programmed:
    """The bootstrap, and what a user must know about it."""

    bootstrap: Json
    mode: str  # "sidecar" or "gateway <ns>/<name>"
    http_ports: dict[int, str] = field(default_factory=dict)  # Service (or Gateway server) port -> listener name
    tcp_listeners: dict[tuple[str, int], str] = field(default_factory=dict)  # (FQDN, port) -> listener name
    notes: list[str] = field(default_factory=list)  # what the rules ask for and the sandbox does not program
    tcp_ports: set[int] = field(default_factory=set)  # of http_ports: gateway ports served by a tcp_proxy


def program(rules: RuleSet, inventory: Inventory, *, namespace: str, backend: BackendAddress,
            gateway: str | None = None, istio_1_2: bool = False, bind_vips: bool | None = None) -> Programmed:
    """An Envoy bootstrap for the client in ``namespace`` (a sidecar), or for ``gateway``.

    ``istio_1_2`` programs a port whose name has no protocol prefix as Istio 1.1/1.2 did: plain TCP (no protocol
    sniffing before 1.3), a ``tcp_proxy`` over all the Service's endpoints.
    """
    bind_vips = sys.platform.startswith("linux") if bind_vips is None else bind_vips
    notes: list[str] = []
    virtual_services = _virtual_services(rules, namespace, notes)
    builder = _Builder(inventory, namespace, virtual_services, notes, istio_1_2, bind_vips,
                       lambda port: client_scope(rules, namespace, port) if gateway is None else None)
    if gateway is None:
        listeners, mode = builder.sidecar_listeners(), "sidecar"
    else:
        key = _gateway_key(rules, gateway, namespace)
        listeners, mode = builder.gateway_listeners(rules, key), f"gateway {key}"
    # Istio 1.1/1.2's default load balancer was ROUND_ROBIN (LEAST_REQUEST is today's, cluster_traffic_policy.go)
    clusters = _clusters(rules, inventory, namespace, backend, "ROUND_ROBIN" if istio_1_2 else "LEAST_REQUEST")
    bootstrap = {"static_resources": {"listeners": listeners, "clusters": clusters}}
    return Programmed(bootstrap, mode, builder.http_ports, builder.tcp_listeners, notes, builder.tcp_ports)


# -- VirtualServices as istiod holds them -------------------------------------------------------------------------


def _virtual_services(rules: RuleSet, namespace: str, notes: list[str]) -> list[GeneratedVirtualService]:
    by_name = {(vs.ns(namespace), vs.name): vs for vs in rules.of_kind("VirtualService")}
    out = []
    for vs in rules.of_kind("VirtualService"):
        if not vs.group.startswith("networking.istio.io"):
            continue
        ns = vs.ns(namespace)
        hosts = [fqdn(str(h), ns) for h in vs.spec.get("hosts") or []]
        if not hosts:
            continue  # a delegate: merged into its root below (no hosts of its own)
        gateways = [_gateway_ref(str(g), ns) for g in vs.spec.get("gateways") or ["mesh"]]
        http = _merge_delegates(vs, ns, by_name, notes)
        if vs.spec.get("tls"):
            notes.append(f"{vs.ref_in(namespace)}: tls rules are not programmed in the sandbox (it serves no TLS)")
        export = [str(e) for e in vs.spec.get("exportTo") or ["*"]]
        created = str((vs.body.get("metadata") or {}).get("creationTimestamp") or "")
        generated = GeneratedVirtualService(RuleSource("virtual-service", ns, vs.name), hosts, gateways, http, created,
                                            export, vs.describe(namespace))
        generated.tcp = [_resolve_hosts(rule, ns) for rule in vs.spec.get("tcp") or []]
        out.append(generated)
    routes = rules.of_kind("HTTPRoute", "GRPCRoute")
    out += from_http_routes(routes, namespace, notes)
    # push_context.go sortConfigByCreationTime: oldest first, then namespace/name
    out.sort(key=lambda v: (v.created, v.source.namespace, v.source.name))
    return out


def _merge_delegates(vs: K8sObject, ns: str, by_name: Mapping[tuple[str, str], K8sObject],
                     notes: list[str]) -> list[Mapping[str, Any]]:
    """pilot/pkg/model/virtualservice.go mergeVirtualServicesIfNeeded: a delegate's rules replace the rule that names
    it, each delegate match merged with the root's (mergeHTTPMatchRequests)."""
    out: list[Mapping[str, Any]] = []
    for rule in vs.spec.get("http") or []:
        ref = rule.get("delegate")
        if not ref:
            out.append(_resolve_hosts(rule, ns))
            continue
        key = (str(ref.get("namespace") or ns), str(ref.get("name")))
        delegate = by_name.get(key)
        if delegate is None:
            notes.append(f"{vs.ref_in(ns)}: delegate VirtualService {key[0]}/{key[1]} is not among the inputs: its "
                         "rules are not programmed")
            continue
        for sub in delegate.spec.get("http") or []:
            merged = _merge_matches(rule.get("match") or [], sub.get("match") or [])
            if merged is None:
                continue
            out.append({**_resolve_hosts(sub, key[0]), "match": merged})
    return out


def _merge_matches(root: Sequence[Mapping[str, Any]], delegate: Sequence[Mapping[str, Any]]) -> list[Any] | None:
    if not root:
        return list(delegate)
    if not delegate:
        return list(root)
    merged = []
    for r in root:
        for d in delegate:
            m = {**r, **d}
            for key in ("headers", "queryParams", "withoutHeaders"):
                if r.get(key) or d.get(key):
                    m[key] = {**(r.get(key) or {}), **(d.get(key) or {})}
            merged.append(m)
    return merged or None


def _resolve_hosts(rule: Mapping[str, Any], ns: str) -> Mapping[str, Any]:
    """push_context.go resolveVirtualServiceShortnames: destination hosts become FQDNs in the rule's namespace."""
    if not rule.get("route"):
        return rule
    route = []
    for dest in rule["route"]:
        target = dict(dest.get("destination") or {})
        if isinstance(target.get("host"), str):
            target["host"] = fqdn(target["host"], ns)
        route.append({**dest, "destination": target})
    return {**rule, "route": route}


def _gateway_ref(name: str, namespace: str) -> str:
    if name == "mesh":
        return name
    return name if "/" in name else f"{namespace}/{name}"


def _exported_to(vs: GeneratedVirtualService, client_namespace: str) -> bool:
    export = vs.export_to
    return "*" in export or client_namespace in export or ("." in export and vs.source.namespace == client_namespace)


# -- listeners and route configurations ----------------------------------------------------------------------------


class _Builder:
    def __init__(self, inventory: Inventory, namespace: str, virtual_services: list[GeneratedVirtualService],
                 notes: list[str], istio_1_2: bool, bind_vips: bool,
                 scope_for: Callable[[int], EgressScope | None] = lambda port: None) -> None:
        self.inventory = inventory
        self.scope_for = scope_for  # the client's Sidecar resource, per port (sidecar.go GetEgressListenerForRDS)
        self.namespace = namespace
        self.virtual_services = virtual_services
        self.notes = notes
        self.istio_1_2 = istio_1_2
        self.bind_vips = bind_vips
        self.http_ports: dict[int, str] = {}
        self.tcp_listeners: dict[tuple[str, int], str] = {}
        self.tcp_ports: set[int] = set()  # gateway ports that are TCP (a tcp_proxy picks per connection)

    # sidecar ---------------------------------------------------------------------------------------------------

    def sidecar_listeners(self) -> list[Json]:
        listeners: list[Json] = []
        http_ports: dict[int, list[Service]] = {}
        for service in self.inventory.services.values():
            for port in service.ports:
                if port.routes_http and not (self.istio_1_2 and port.protocol == "sniffed"):
                    http_ports.setdefault(port.number, []).append(service)
                else:
                    listeners.append(self._tcp_listener(service, port.number, port.protocol))
        for number, services in sorted(http_ports.items()):
            name = f"0.0.0.0_{number}"
            route_config = self.sidecar_route_config(number)
            listener = _http_listener(name, route_config, f"outbound_0.0.0.0_{number}")
            if self.bind_vips:
                listener["additional_addresses"] = [{"address": _address(s.vip)} for s in services]
            listeners.append(listener)
            self.http_ports[number] = name
        self._note_unused_mesh_rules()
        return listeners

    def _tcp_listener(self, service: Service, number: int, protocol: str) -> Json:
        """A TCP port: a listener on the Service's address with a tcp_proxy over all its endpoints (tcp.go)."""
        address = service.vip if self.bind_vips else "127.0.0.1"
        name = f"{service.vip}_{number}"
        cluster = f"outbound|{number}||{service.fqdn}"
        self.tcp_listeners[(service.fqdn, number)] = name
        if self.istio_1_2 and protocol == "sniffed":
            self.notes.append(f"Istio 1.1/1.2: port {number} of {service.namespace}/{service.name} has no protocol "
                              "prefix in its name, so it is TCP (protocol sniffing came in 1.3): a tcp_proxy over all "
                              "endpoints, and the http rules of its VirtualService do not apply")
        rule = None if self.istio_1_2 else self._tcp_rule(service.fqdn, number, frozenset({"mesh"}))
        return _tcp_proxy_listener(name, address, self._tcp_proxy(rule, number) if rule else {"cluster": cluster})

    def _tcp_rule(self, host: str | None, port: int, gateways: frozenset[str]) -> Mapping[str, Any] | None:
        """tcp.go / gateway.go buildGatewayNetworkFiltersFromTCPRoutes: the first tcp rule of a VirtualService for
        the host whose match (port, gateways) holds here."""
        scope = self.scope_for(port) if "mesh" in gateways else None
        for vs in self.virtual_services:
            if not (gateways & set(vs.gateways)) or (host is not None and not any(_covers(h, host) for h in vs.hosts)):
                continue
            if vs.tcp and not self._imported(vs, scope):
                continue
            for rule in vs.tcp:
                matches = rule.get("match") or [{}]
                if rule.get("route") and any(_l4_match(m, port, gateways, vs.source.namespace) for m in matches):
                    return rule
        return None

    def _tcp_proxy(self, rule: Mapping[str, Any], port: int) -> Json:
        """networkfilter.go buildOutboundNetworkFilters: one cluster, or weighted_clusters without weight-0 ones."""
        routes = list(rule["route"])
        if len(routes) == 1:
            return {"cluster": self._cluster_for(routes[0].get("destination") or {}, port)}
        return {"weighted_clusters": {"clusters": [
            {"name": self._cluster_for(r.get("destination") or {}, port), "weight": int(r["weight"])}
            for r in routes if r.get("weight")]}}

    def sidecar_route_config(self, port: int) -> Json:
        registry = {s.fqdn: s for s in self.inventory.services.values()
                    if (p := s.port(port)) is not None and p.routes_http}
        claimed: set[str] = set()
        vhosts: list[Json] = []
        seen_names: set[str] = set()
        seen_domains: set[str] = set()
        scope = self.scope_for(port)
        for vs in self.virtual_services:
            if "mesh" not in vs.gateways or not _exported_to(vs, self.namespace) or not self._imported(vs, scope):
                continue
            hosts, services = self._separate(vs, registry, claimed)
            if port != 80 and not services:
                continue  # httproute.go selectVirtualServices: off port 80 only VirtualServices for Services
            routes = http_routes(vs.http, self._context(vs, port, frozenset({"mesh"})))
            if not routes:
                continue
            for host in hosts:
                self._add_vhost(vhosts, seen_names, seen_domains, f"{host}:{port}", [host], routes, vs)
            for service in services:
                self._add_vhost(vhosts, seen_names, seen_domains, f"{service.fqdn}:{port}",
                                self._domains(service), routes, vs)
                claimed.add(service.fqdn)
        for fqdn_, service in sorted(registry.items()):
            if fqdn_ not in claimed:
                self._add_vhost(vhosts, seen_names, seen_domains, f"{fqdn_}:{port}", self._domains(service),
                                [_default_route(service, port)], None)
        vhosts.sort(key=lambda v: v["name"])  # util.SortVirtualHosts
        vhosts.append(_allow_any())
        return {"name": str(port), "virtual_hosts": vhosts, "validate_clusters": False,
                "ignore_port_in_host_matching": True}

    def _separate(self, vs: GeneratedVirtualService, registry: Mapping[str, Service],
                  claimed: set[str]) -> tuple[list[str], list[Service]]:
        """route.go separateVSHostsAndServices (a Service already claimed by an older VirtualService is skipped)."""
        hosts: list[str] = []
        services: list[Service] = []
        for host in vs.hosts:
            if host.startswith("*"):
                found = [s for f, s in registry.items() if _covers(host, f)]
                services += [s for s in found if s.fqdn not in claimed]
                if not found:
                    hosts.append(host)
            elif host in registry:
                if host not in claimed:
                    services.append(registry[host])
                else:
                    self._note(f"{vs.origin}: host {host} is already claimed by an older VirtualService; sidecars "
                               "keep one VirtualService per host (IST0109), so this one is not used for it")
            else:
                hosts.append(host)
        return hosts, services

    def _domains(self, service: Service) -> list[str]:
        """httproute.go generateVirtualHostDomains for a sidecar (ports are ignored in host matching)."""
        name, ns = service.name, service.namespace
        domains = [service.fqdn, f"{service.fqdn}."]  # EnableAbsoluteFqdnVhostDomain (default true)
        if ns == self.namespace:  # generateAltVirtualHostsForKubernetesService: same namespace
            domains += [name, f"{name}.{ns}.svc", f"{name}.{ns}"]
        else:
            domains += [f"{name}.{ns}", f"{name}.{ns}.svc"]
        return [*domains, service.vip]

    @staticmethod
    def _add_vhost(vhosts: list[Json], names: set[str], domains_seen: set[str], name: str, domains: list[str],
                   routes: list[Json], vs: GeneratedVirtualService | None) -> None:
        if name in names:
            return
        names.add(name)
        domains = [d for d in domains if d.lower() not in domains_seen]  # dedupeDomains
        if not domains:
            return
        domains_seen.update(d.lower() for d in domains)
        vhosts.append({"name": name, "domains": domains, "routes": routes, "include_request_attempt_count": True})

    def _imported(self, vs: GeneratedVirtualService, scope: EgressScope | None) -> bool:
        """virtualservice.go SelectVirtualServices: the client's Sidecar resource imports the VirtualService."""
        if scope is None or scope.imports(vs.source.namespace, [h.lower() for h in vs.hosts],
                                          gateway_semantics=vs.source.gateway_semantics):
            return True
        self._note(f"{vs.origin}: not imported by {scope.describe(scope.sidecar.ref_in(self.namespace))} on port "
                   f"{scope.port}: not programmed for this sidecar")
        return False

    def _note_unused_mesh_rules(self) -> None:
        for vs in self.virtual_services:
            if "mesh" in vs.gateways and not _exported_to(vs, self.namespace):
                self._note(f"{vs.origin}: exportTo {vs.export_to} does not include namespace {self.namespace}: "
                           "not visible to this sidecar")

    # gateway ---------------------------------------------------------------------------------------------------

    def gateway_listeners(self, rules: RuleSet, key: str) -> list[Json]:
        listeners = []
        tcp_ports = _gateway_tcp_ports(rules, key, self.namespace)
        if tcp_ports and not any(g.name == key.rpartition("/")[2] for g in rules.of_kind("Gateway")):
            self._note(f"Gateway {key} is not among the inputs: assumed TCP server port(s) "
                       f"{', '.join(map(str, tcp_ports))} (the ports its VirtualServices' tcp rules match)")
        for port in sorted(tcp_ports):
            rule = self._tcp_rule(None, port, frozenset({key}))
            name = f"0.0.0.0_{port}"
            if rule is None:
                self._note(f"gateway {key}: no tcp rule of a VirtualService bound to it matches port {port}: not "
                           "programmed")
                continue
            listeners.append(_tcp_proxy_listener(name, "127.0.0.1", self._tcp_proxy(rule, port)))
            self.http_ports[port] = name
            self.tcp_ports.add(port)
        for port, server_hosts in sorted(_gateway_servers(rules, key, self.namespace, self.notes).items()):
            name = f"0.0.0.0_{port}"
            route_config = self.gateway_route_config(key, port, server_hosts)
            listeners.append(_http_listener(name, route_config, f"outbound_0.0.0.0_{port}"))
            self.http_ports[port] = name
        return listeners

    def gateway_route_config(self, key: str, port: int, server_hosts: list[str]) -> Json:
        vhosts: dict[str, Json] = {}
        for vs in self.virtual_services:
            if key not in vs.gateways:
                continue
            hosts = _intersection(server_hosts, vs.hosts)
            if not hosts:
                continue
            routes = http_routes(vs.http, self._context(vs, port, frozenset({key})))
            for host in hosts:
                if host in vhosts:
                    vhosts[host]["routes"] = [*vhosts[host]["routes"], *routes]
                else:
                    vhosts[host] = {"name": f"{host}:{port}", "domains": [host], "routes": list(routes),
                                    "include_request_attempt_count": True}
        listing: list[Json]
        if not vhosts:
            listing = [{"name": f"blackhole:{port}", "domains": ["*"], "routes": []}]
        else:
            listing = sorted(vhosts.values(), key=lambda v: v["name"])
            for vhost in listing:
                vhost["routes"] = _catch_alls_last(vhost["routes"])
        return {"name": f"http.{port}", "virtual_hosts": listing, "validate_clusters": False,
                "ignore_port_in_host_matching": True}

    # shared ----------------------------------------------------------------------------------------------------

    def _context(self, vs: GeneratedVirtualService, port: int, gateways: frozenset[str]) -> RouteContext:
        return RouteContext(vs.source, port, gateways, self.namespace, self._cluster_for, self.notes)

    def _cluster_for(self, destination: Mapping[str, Any], listen_port: int) -> str:
        """route.go GetDestinationCluster: the destination's port, else the Service's only port, else the listener's."""
        host = str(destination.get("host") or "")
        if not host:
            return "UnknownService"
        service = self.inventory.services.get(host)
        port = listen_port
        number = (destination.get("port") or {}).get("number")
        if number:
            port = int(number)
        elif service is not None and len(service.ports) == 1:
            port = service.ports[0].number
        return f"outbound|{port}|{destination.get('subset') or ''}|{host}"

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)


def _tcp_proxy_listener(name: str, address: str, target: Json) -> Json:
    stat = target.get("cluster") or name
    return {
        "name": name,
        "address": _address(address),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": TCP_PROXY_TYPE, "stat_prefix": stat, **target}}]}],
    }


def _l4_match(match: Mapping[str, Any], port: int, gateways: frozenset[str], namespace: str) -> bool:
    """gateway.go l4SingleMatch: the match's port (if any) and gateways (if any) hold."""
    if match.get("port") and int(match["port"]) != port:
        return False
    names = [_gateway_ref(str(g), namespace) for g in match.get("gateways") or []]
    return not names or bool(gateways & set(names))


def _http_listener(name: str, route_config: Json, stat_prefix: str) -> Json:
    return {
        "name": name,
        "address": _address("127.0.0.1"),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": stat_prefix,
            "normalize_path": True,
            "route_config": route_config,
            "http_filters": [
                {"name": FAULT_FILTER, "typed_config": {"@type": FAULT_TYPE}},
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
            ],
        }}]}],
    }


def _address(host: str, port: int = 0) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _default_route(service: Service, port: int) -> Json:
    """route.go buildSidecarVirtualHostForService / BuildDefaultHTTPOutboundRoute."""
    from respy.sandbox.routes import DEFAULT_RETRY_POLICY

    cluster = f"outbound|{port}||{service.fqdn}"
    return {"name": "default", "match": {"prefix": "/", "case_sensitive": True},
            "route": {"cluster": cluster, "timeout": "0s", "retry_policy": dict(DEFAULT_RETRY_POLICY),
                      "max_grpc_timeout": "0s"},
            "decorator": {"operation": f"{service.fqdn}:{port}/*"}}


def _allow_any() -> Json:
    """httproute.go buildCatchAllVirtualHost with outboundTrafficPolicy ALLOW_ANY (the default)."""
    return {"name": "allow_any", "domains": ["*"], "routes": [{
        "name": "allow_any", "match": {"prefix": "/"},
        "route": {"cluster": PASSTHROUGH, "timeout": "0s", "max_grpc_timeout": "0s"}}],
        "include_request_attempt_count": True}


def _catch_alls_last(routes: list[Json]) -> list[Json]:
    """route.go SortVHostRoutes."""
    from respy.sandbox.routes import is_catch_all

    return [r for r in routes if not is_catch_all(r)] + [r for r in routes if is_catch_all(r)]


def _covers(pattern: str, name: str) -> bool:
    """host.Name.Matches: ``*`` covers all, ``*.foo.com`` covers names (and narrower wildcards) under foo.com."""
    if pattern == name or pattern == "*":
        return True
    if pattern.startswith("*"):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return False


def _intersection(server_hosts: Sequence[str], vs_hosts: Sequence[str]) -> list[str]:
    """host.Names.Intersection: where one covers the other, the more specific name."""
    out: list[str] = []
    for s in server_hosts:
        for v in vs_hosts:
            if _covers(s, v):
                out.append(v)
            elif _covers(v, s):
                out.append(s)
    return list(dict.fromkeys(out))


# -- gateways ------------------------------------------------------------------------------------------------------


def _gateway_key(rules: RuleSet, gateway: str, namespace: str) -> str:
    """``name`` or ``ns/name``: a bare name matches a Gateway of that name in any namespace of the inputs."""
    if "/" in gateway:
        return gateway
    for gw in rules.of_kind("Gateway"):
        if gw.name == gateway:
            return f"{gw.ns(namespace)}/{gw.name}"
    for obj in [*rules.of_kind("VirtualService"), *rules.of_kind("HTTPRoute", "GRPCRoute")]:
        ns = obj.ns(namespace)
        names = [str(g) for g in obj.spec.get("gateways") or []]
        names += [f"{r.get('namespace') or ns}/{r.get('name')}" for r in obj.spec.get("parentRefs") or []
                  if r.get("kind", "Gateway") == "Gateway"]
        for name in names:
            ref = _gateway_ref(name, ns)
            if ref.rpartition("/")[2] == gateway:
                return ref
    return f"{namespace}/{gateway}"


def _gateway_servers(rules: RuleSet, key: str, namespace: str, notes: list[str]) -> dict[int, list[str]]:
    """Port -> hosts of the named Gateway's plain-HTTP servers (Istio Gateway) or listeners (Gateway API)."""
    want_ns, _, want_name = key.rpartition("/")
    ports: dict[int, list[str]] = {}
    found = False
    for gw in rules.of_kind("Gateway"):
        if gw.name != want_name or gw.ns(namespace) != want_ns:
            continue
        found = True
        for server in gw.spec.get("servers") or []:
            port = server.get("port") or {}
            if str(port.get("protocol", "")).upper() in ("TCP", "MONGO", "MYSQL", "REDIS"):
                continue  # a tcp_proxy listener (_gateway_tcp_ports)
            if str(port.get("protocol", "")).upper() not in ("HTTP", "HTTP2", "GRPC"):
                notes.append(f"{gw.ref_in(namespace)}: server on port {port.get('number')} ({port.get('protocol')}) "
                             "is not programmed: the sandbox serves plain HTTP only")
                continue
            hosts = [str(h).rpartition("/")[2].lower() for h in server.get("hosts") or ["*"]]
            hosts = [fqdn(h, gw.ns(namespace)) if h != "*" else h for h in hosts]
            ports.setdefault(int(port["number"]), []).extend(hosts)
        for listener in gw.spec.get("listeners") or []:
            if str(listener.get("protocol", "")).upper() not in ("HTTP",):
                notes.append(f"{gw.ref_in(namespace)}: listener {listener.get('name')} ({listener.get('protocol')}) "
                             "is not programmed: the sandbox serves plain HTTP only")
                continue
            ports.setdefault(int(listener["port"]), []).append(str(listener.get("hostname") or "*").lower())
    if not found and not _gateway_tcp_ports(rules, key, namespace):
        notes.append(f"Gateway {key} is not among the inputs: assumed one plain-HTTP server on port 80 for all hosts")
        ports[80] = ["*"]
    return ports


def _gateway_tcp_ports(rules: RuleSet, key: str, namespace: str) -> list[int]:
    """The named Gateway's TCP server ports; when the Gateway is not among the inputs, the ports the tcp rules of
    VirtualServices bound to it match (it is assumed to serve them)."""
    want_ns, _, want_name = key.rpartition("/")
    gateways = [gw for gw in rules.of_kind("Gateway") if gw.name == want_name and gw.ns(namespace) == want_ns]
    if gateways:
        return [int((s.get("port") or {})["number"]) for gw in gateways for s in gw.spec.get("servers") or []
                if str((s.get("port") or {}).get("protocol", "")).upper() in ("TCP", "MONGO", "MYSQL", "REDIS")]
    ports = []
    for vs in rules.of_kind("VirtualService"):
        ns = vs.ns(namespace)
        if key in [_gateway_ref(str(g), ns) for g in vs.spec.get("gateways") or []]:
            ports += [int(m["port"]) for rule in vs.spec.get("tcp") or [] for m in rule.get("match") or []
                      if isinstance(m.get("port"), int)]
    return sorted(set(ports))


# -- clusters ------------------------------------------------------------------------------------------------------


def _clusters(rules: RuleSet, inventory: Inventory, namespace: str, backend: BackendAddress,
              default_lb: str) -> list[Json]:
    """Every ``outbound|<port>|<subset>|<fqdn>`` cluster istiod builds for the registry (cluster_builder.go)."""
    subsets = inventory.subsets
    policies = _lb_policies(rules, namespace, list(inventory.services))
    clusters: list[Json] = [{"name": PASSTHROUGH, "type": "STATIC", "connect_timeout": "10s",
                             "load_assignment": {"cluster_name": PASSTHROUGH, "endpoints": []}}]
    for service in inventory.services.values():
        for port in service.ports:
            names = [("", None)] + [(name, labels) for name, labels in subsets.get(service.fqdn, {}).items()]
            for subset, labels in names:
                name = f"outbound|{port.number}|{subset}|{service.fqdn}"
                workloads = inventory.endpoints(service, labels)
                endpoints = [{"endpoint": {"address": _address(*backend(service, w))}} for w in workloads]
                clusters.append({
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "10s",  # meshconfig connectTimeout default
                    "lb_policy": policies.get(service.fqdn, default_lb),
                    "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
                })
    return clusters


def _lb_policies(rules: RuleSet, namespace: str, hosts: Sequence[str]) -> dict[str, str]:
    """The load balancer of the DestinationRule the client uses per host: of several merged rules, the first one's
    trafficPolicy (destination_rule.go mergeDestinationRule)."""
    out = {}
    drs = rules.of_kind("DestinationRule")
    for host in hosts:
        merged = destination_rule(drs, host, client_namespace=namespace, default_namespace=namespace)
        simple = ((merged.traffic_policy or {}).get("loadBalancer") or {}).get("simple") if merged else None
        if simple in LB_POLICIES:
            out[host] = LB_POLICIES[simple]
    return out


__all__ = ["CLUSTER_DOMAIN", "Programmed", "program"]
