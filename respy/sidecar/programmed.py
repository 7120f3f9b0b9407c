"""The programmed split: what the sidecar's Envoy will do with this request, worked out from its config.

``programmed_for(dump, request)`` walks Envoy's own choices (``envoy_routing``) and reads the result back
into Istio's terms (``istio_names``): the clusters with their weights and the destinations they stand for,
the endpoints healthy/total behind each, the fault the route injects, the VirtualService that produced it.
``Programmed.outcomes()`` lists what a request can end in, with its probability; ``check.programmed`` makes
it the same ``Expectation`` the YAML gives, so the verdict can check an observed split against it. (This
module stays beside ``rules/``, not on top of it: it only reads Envoy's config.)
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from respy.sidecar.dump import ConfigDump, FilterChain, NetworkAction
from respy.sidecar.envoy_routing import (
    EnvoyRequest,
    MatchNotes,
    connection_for,
    find_virtual_host,
    first_route,
    fraction,
    select_filter_chain,
    select_listener,
)
from respy.sidecar.istio_names import (
    BLACKHOLE,
    PASSTHROUGH,
    ConfigRef,
    parse_cluster_name,
    route_source,
    short_host,
)

Json = Mapping[str, Any]
FAULT_FILTER = "envoy.filters.http.fault"
# RedirectAction.RedirectResponseCode -> HTTP status (envoy/config/route/v3/route_components.proto)
REDIRECT_CODES = {"MOVED_PERMANENTLY": 301, "FOUND": 302, "SEE_OTHER": 303, "TEMPORARY_REDIRECT": 307,
                  "PERMANENT_REDIRECT": 308}
# What Envoy answers when the request reaches no route (NR) or a cluster it does not know (NC): router.cc
NO_ROUTE_STATUS = 404
NO_CLUSTER_STATUS = 503


@dataclass(frozen=True)
class ProgrammedCluster:
    """One cluster the route sends to, with its share, the destination it stands for and its endpoints."""

    name: str
    weight: int
    share: float
    host: str = ""
    subset: str = ""
    port: int | None = None
    healthy: int | None = None  # None: the dump had no endpoints for it (no ?include_eds)
    total: int | None = None
    known: bool = True  # False: the cluster is not in the dump (Envoy answers 503, cluster not found)

    @property
    def label(self) -> str:
        if self.name == PASSTHROUGH:
            return "passthrough (original destination)"
        if self.host:
            return self.subset or short_host(self.host)
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "share": round(self.share, 6), "host": self.host,
                "subset": self.subset, "port": self.port, "known": self.known,
                "endpoints": None if self.total is None else {"healthy": self.healthy, "total": self.total}}


@dataclass(frozen=True)
class Programmed:
    """What the sidecar was told to do with this request.

    ``kind``: ``http`` (routed to clusters), ``tcp`` (a TCP proxy: no HTTP routing, per connection),
    ``direct_response`` / ``redirect`` (Envoy answers itself), ``no_route`` / ``no_virtual_host`` (404),
    ``no_listener`` (nothing on that port), ``not_http`` (a chain with neither HCM nor TCP proxy).
    """

    kind: str
    listener: str = ""
    route_config: str = ""
    virtual_host: str = ""
    domains: tuple[str, ...] = ()
    route_name: str = ""
    route_index: int | None = None
    route_match: str = ""
    source: ConfigRef | None = None
    clusters: tuple[ProgrammedCluster, ...] = ()
    status: int | None = None
    abort: tuple[int, float] | None = None  # (HTTP status, fraction)
    delay: tuple[str, float] | None = None  # (duration, fraction)
    steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passthrough(self) -> bool:
        return any(c.name == PASSTHROUGH for c in self.clusters)

    def shares(self) -> dict[str, float]:
        """Share per outcome: clusters by destination (``single``) and Envoy's own answers (``HTTP 404 (...)``)."""
        if not self.checkable:
            return {}
        merged: dict[str, float] = {}
        names = [o.name for o in self.outcomes()]
        for outcome in self.outcomes():
            name = outcome.long_name if names.count(outcome.name) > 1 else outcome.name
            merged[name] = merged.get(name, 0.0) + outcome.probability
        return merged

    @property
    def checkable(self) -> bool:
        """Whether this is a split an observed one can be checked against (passthrough goes anywhere)."""
        return self.kind != "no_listener" and not self.passthrough and self.kind != "not_http"

    @property
    def source_text(self) -> str:
        return self.source.describe() if self.source else "sidecar config"

    def outcomes(self) -> list[ProgrammedOutcome]:
        """What a request can end in: a status Envoy answers itself, a fault abort, or a cluster's share."""
        if self.status is not None:
            return [_status(self.status, self._status_reason(), 1.0)]
        found = []
        forwarded = 1.0
        if self.abort is not None:
            status, share = self.abort
            found.append(_status(status, "fault abort", share))
            forwarded -= share
        found += [_outcome(cluster, forwarded) for cluster in self.clusters]
        return found

    def _status_reason(self) -> str:
        return {"direct_response": "direct response", "redirect": "redirect", "no_route": "no route",
                "no_virtual_host": "no route"}.get(self.kind, self.kind)

    def describe_route(self) -> str:
        if self.kind == "tcp":
            return f"listener {self.listener}: TCP proxy"
        parts = [f"route config {self.route_config!r}" if self.route_config else "",
                 f"virtual host {self.virtual_host}" if self.virtual_host else "",
                 f"route {self.route_name or '#' + str(self.route_index)} ({self.route_match})"
                 if self.route_index is not None else ""]
        return ", ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "listener": self.listener,
            "route_config": self.route_config,
            "virtual_host": self.virtual_host,
            "domains": list(self.domains),
            "route": {"name": self.route_name, "index": self.route_index, "match": self.route_match}
            if self.route_index is not None else None,
            "virtual_service": self.source.describe() if self.source else None,
            "config": self.source.path if self.source else None,
            "clusters": [c.to_dict() for c in self.clusters],
            "status": self.status,
            "fault": {"abort": {"status": self.abort[0], "share": self.abort[1]} if self.abort else None,
                      "delay": {"duration": self.delay[0], "share": self.delay[1]} if self.delay else None}
            if self.abort or self.delay else None,
            "split": self.shares(),
            "steps": list(self.steps),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ProgrammedOutcome:
    """One thing a request can end in, as the sidecar was told: a cluster's destination or an HTTP status."""

    key: str
    name: str
    long_name: str
    probability: float
    identifiers: tuple[str, ...] = ()
    status: int | None = None


def _status(status: int, reason: str, probability: float) -> ProgrammedOutcome:
    name = f"HTTP {status} ({reason})"
    return ProgrammedOutcome(key=f"status {name}", name=name, long_name=name, probability=probability, status=status)


def _outcome(cluster: ProgrammedCluster, forwarded: float) -> ProgrammedOutcome:
    if not cluster.known:
        return _status(NO_CLUSTER_STATUS, f"cluster {cluster.name} not found", forwarded * cluster.share)
    short = cluster.label
    long_name = f"{cluster.host.partition('.')[0]}/{cluster.subset}" if cluster.subset else cluster.name
    return ProgrammedOutcome(key=cluster.name, name=short, long_name=long_name,
                             probability=forwarded * cluster.share,
                             identifiers=tuple(i for i in (cluster.subset, short, cluster.host) if i))


# --- the walk --------------------------------------------------------------------------------------------


@dataclass
class _Walk:
    dump: ConfigDump
    request: EnvoyRequest
    steps: list[str] = field(default_factory=list)
    notes: MatchNotes = field(default_factory=MatchNotes)

    def done(self, kind: str, **fields: Any) -> Programmed:
        return Programmed(kind=kind, steps=tuple(self.steps), notes=tuple(self.notes.items), **fields)


def programmed_for(dump: ConfigDump, request: EnvoyRequest, dial_ip: str | None = None,
                   route_config: str | None = None) -> Programmed:
    """What Envoy configured as ``dump`` does with ``request`` dialled at ``dial_ip``:``request.dial_port``.

    ``route_config`` names the route configuration to use (as ``istioctl proxy-config routes --name``),
    skipping the listener; a dump with no listeners at all (a routes-only dump) is read that way too, with
    the first route configuration that has a virtual host for the request's Host.
    """
    walk = _Walk(dump, request)
    if route_config is not None or "ListenersConfigDump" not in dump.sections:
        return _by_route_config(walk, route_config)
    ip = dial_ip if dial_ip is not None else _literal_ip(request.dial_host)
    if ip is None:
        ip = inferred_service_ip(dump, request)
        if ip is not None:
            walk.steps.append(f"{request.dial_host} does not resolve here: its address {ip} is read from the config")
    listener, how = select_listener(dump.listeners, ip, request.dial_port)
    walk.steps.append(how)
    if listener is None:
        return walk.done("no_listener")
    chain = select_filter_chain(listener, connection_for(request, ip, listener))
    if chain is None:
        walk.steps.append("no filter chain matches the connection: Envoy closes it")
        return walk.done("no_listener", listener=listener.name)
    walk.steps.append(f"filter chain {chain.name or '(unnamed)'}: {_describe_action(chain.action)}")
    if chain.action.kind == "tcp":
        return _tcp(walk, listener.name, chain)
    if chain.action.kind != "http":
        return walk.done("not_http", listener=listener.name)
    return _http(walk, listener.name, chain.action)


def inferred_service_ip(dump: ConfigDump, request: EnvoyRequest) -> str | None:
    """The Service address a name stands for, read from the sidecar's own config when DNS cannot tell (a saved
    dump read outside the pod): istiod lists the cluster IP among a virtual host's domains
    (``generateVirtualHostDomains``), and names a TCP-only port's listener ``<cluster IP>_<port>`` with a TCP
    proxy to ``outbound|<port>||<host>``."""
    name = request.dial_host
    for config in dump.route_configs.values():
        vhost = find_virtual_host(config, name, strip_any_port=True)
        if vhost is None or "*" in (vhost.get("domains") or []):
            continue
        for domain in vhost.get("domains") or []:
            literal = _literal_ip(str(domain))
            if literal is not None:
                return literal
    for listener in dump.listeners:
        if request.dial_port not in listener.ports() or listener.wildcard:
            continue
        for chain in listener.chains:
            for cluster, _ in chain.action.tcp_clusters:
                destination = parse_cluster_name(cluster)
                if destination is not None and name in (destination.host, destination.short_host) \
                        and _literal_ip(listener.address):
                    return _literal_ip(listener.address)
    return None


def _by_route_config(walk: _Walk, name: str | None) -> Programmed:
    if name is not None:
        walk.steps.append(f"route config {name!r} (named, not chosen by a listener)")
        return _http(walk, "", NetworkAction(kind="http", rds_name=name))
    walk.steps.append("the dump has no listeners: the route config is the first with a virtual host for this Host")
    for candidate, config in walk.dump.route_configs.items():
        vhost = find_virtual_host(config, walk.request.authority)
        if vhost is not None and vhost.get("domains") != ["*"]:
            walk.steps.append(f"route config {candidate!r}")
            return _http(walk, "", NetworkAction(kind="http", rds_name=candidate))
    return walk.done("no_virtual_host", status=NO_ROUTE_STATUS)


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _describe_action(action: NetworkAction) -> str:
    if action.kind == "tcp":
        return "TCP proxy to " + ", ".join(name for name, _ in action.tcp_clusters)
    if action.kind == "http":
        if action.rds_name:
            return f"HTTP connection manager, route config {action.rds_name!r} (RDS)"
        return f"HTTP connection manager, inline route config {(action.inline_route or {}).get('name', '')!r}"
    return "neither HTTP nor TCP proxy"


def _tcp(walk: _Walk, listener: str, chain: FilterChain) -> Programmed:
    clusters = _clusters(walk.dump, chain.action.tcp_clusters)
    return walk.done("tcp", listener=listener, clusters=clusters)


def _http(walk: _Walk, listener: str, action: NetworkAction) -> Programmed:
    config = dict(action.inline_route) if action.inline_route is not None else walk.dump.route_config(action.rds_name)
    name = action.rds_name or str((action.inline_route or {}).get("name", ""))
    if config is None:
        walk.steps.append(f"route config {name!r} is not in the config dump (not received from istiod yet)")
        return walk.done("no_virtual_host", listener=listener, route_config=name, status=NO_ROUTE_STATUS)
    vhost = find_virtual_host(config, walk.request.authority, action.strip_any_host_port)
    if vhost is None:
        walk.steps.append(f"no virtual host of route config {name!r} matches Host {walk.request.authority!r}")
        return walk.done("no_virtual_host", listener=listener, route_config=name, status=NO_ROUTE_STATUS)
    vhost_name = str(vhost.get("name", ""))
    domains = tuple(str(d) for d in vhost.get("domains", []) or [])
    walk.steps.append(f"virtual host {vhost_name} (Host {walk.request.authority!r})")
    found = first_route(vhost, walk.request, walk.notes)
    common: dict[str, Any] = {"listener": listener, "route_config": name, "virtual_host": vhost_name,
                              "domains": domains}
    if found is None:
        walk.steps.append(f"no route of virtual host {vhost_name} matches {walk.request.method} {walk.request.path}")
        return walk.done("no_route", status=NO_ROUTE_STATUS, **common)
    index, route = found
    match_text = describe_match(route.get("match", {}) or {}, with_headers=True)
    route_label = f"route #{index}" + (f" {route['name']}" if route.get("name") else "")
    walk.steps.append(f"{route_label} ({match_text or 'any path'})")
    common.update(route_name=str(route.get("name", "")), route_index=index, route_match=match_text,
                  source=route_source(route))
    abort, delay = _fault(route, vhost, action)
    if "direct_response" in route:
        status = int(route["direct_response"].get("status", 200))
        return walk.done("direct_response", status=status, **common)
    if "redirect" in route:
        code = REDIRECT_CODES.get(str(route["redirect"].get("response_code", "MOVED_PERMANENTLY")), 301)
        return walk.done("redirect", status=code, **common)
    target = route.get("route") or {}
    clusters = _clusters(walk.dump, _route_clusters(target, walk))
    if any(c.name == BLACKHOLE for c in clusters):
        walk.notes.items.append("the route sends to BlackHoleCluster: Envoy answers 502/503")
    return walk.done("http", clusters=clusters, abort=abort, delay=delay, **common)


def _route_clusters(action: Json, walk: _Walk) -> list[tuple[str, int]]:
    if "cluster" in action:
        return [(str(action["cluster"]), 1)]
    weighted = action.get("weighted_clusters")
    if isinstance(weighted, Mapping):
        return [(str(c.get("name", "")), int(c.get("weight", 0) or 0)) for c in weighted.get("clusters", []) or []]
    if "cluster_header" in action:
        walk.notes.items.append(f"the cluster is named by header {action['cluster_header']!r} of each request")
    return []


def _clusters(dump: ConfigDump, weighted: list[tuple[str, int]] | tuple[tuple[str, int], ...]) -> tuple[
        ProgrammedCluster, ...]:
    # Envoy picks a weighted cluster with probability weight / sum of weights (WeightedClusterSpecifier);
    # the deprecated total_weight must equal that sum, so the sum is what counts.
    total = sum(weight for _, weight in weighted)
    have_clusters = "ClustersConfigDump" in dump.sections
    out = []
    for name, weight in weighted:
        destination = parse_cluster_name(name)
        endpoints = dump.endpoints_of(name)
        out.append(ProgrammedCluster(
            name=name, weight=weight, share=weight / total if total else 0.0,
            host=destination.host if destination else "", subset=destination.subset if destination else "",
            port=destination.port if destination else None,
            healthy=sum(1 for e in endpoints if e.healthy) if endpoints is not None else None,
            total=len(endpoints) if endpoints is not None else None,
            known=name in dump.clusters or not have_clusters,
        ))
    return tuple(out)


def _fault(route: Json, vhost: Json, action: NetworkAction) -> tuple[tuple[int, float] | None,
                                                                    tuple[str, float] | None]:
    """The fault filter's config for this route: per route, else per virtual host, else the filter's own."""
    config = None
    for holder in (route, vhost):
        per_filter = holder.get("typed_per_filter_config")
        if isinstance(per_filter, Mapping) and isinstance(per_filter.get(FAULT_FILTER), Mapping):
            config = per_filter[FAULT_FILTER]
            break
    config = config or action.fault
    if not isinstance(config, Mapping):
        return None, None
    abort = config.get("abort")
    delay = config.get("delay")
    abort_out = None
    if isinstance(abort, Mapping) and "http_status" in abort:
        abort_out = (int(abort["http_status"]), fraction(abort.get("percentage")))
    delay_out = None
    if isinstance(delay, Mapping) and "fixed_delay" in delay:
        delay_out = (str(delay["fixed_delay"]), fraction(delay.get("percentage")))
    return abort_out, delay_out


def describe_match(match: Json, *, with_headers: bool = False) -> str:
    """A route match the way ``istioctl proxy-config routes`` prints it (``describeMatch``), optionally with
    its header and query conditions (istioctl leaves those out)."""
    conditions = []
    if match.get("prefix"):
        conditions.append(f"{match['prefix']}*")
    if match.get("path_separated_prefix"):
        conditions.append(f"PathPrefix:{match['path_separated_prefix']}")
    if match.get("path"):
        conditions.append(str(match["path"]))
    if isinstance(match.get("safe_regex"), Mapping):
        conditions.append(f"regex {match['safe_regex'].get('regex', '')}")
    if with_headers:
        for header in match.get("headers", []) or []:
            conditions.append(f"header {_describe_condition(header)}")
        for param in match.get("query_parameters", []) or []:
            conditions.append(f"query {_describe_condition(param)}")
    return " ".join(conditions)


def _describe_condition(matcher: Json) -> str:
    name = str(matcher.get("name", ""))
    negate = "not " if matcher.get("invert_match") else ""
    string = matcher.get("string_match")
    if isinstance(string, Mapping):
        for key in ("exact", "prefix", "suffix", "contains"):
            if key in string:
                return f"{name} {negate}{key} {string[key]!r}"
        if isinstance(string.get("safe_regex"), Mapping):
            return f"{name} {negate}regex {string['safe_regex'].get('regex', '')!r}"
    if "present_match" in matcher:
        return f"{name} {negate}present" if matcher["present_match"] else f"{name} {negate}absent"
    for key in ("exact_match", "prefix_match", "suffix_match", "contains_match"):
        if key in matcher:
            return f"{name} {negate}{key.removesuffix('_match')} {matcher[key]!r}"
    if isinstance(matcher.get("safe_regex_match"), Mapping):
        return f"{name} {negate}regex {matcher['safe_regex_match'].get('regex', '')!r}"
    return name


def resolve_ip(host: str, timeout: float = 0.5) -> str | None:
    """The address a connection to ``host`` goes to (a Service's cluster IP in a pod), within ``timeout``.

    The lookup runs in a daemon thread so a hung resolver costs at most ``timeout``.
    """
    literal = _literal_ip(host)
    if literal is not None or not host:
        return literal
    found: list[str] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return
        found.extend(str(info[4][0]) for info in infos)

    worker = threading.Thread(target=lookup, daemon=True, name="respy-resolve")
    worker.start()
    worker.join(timeout)
    return found[0] if found else None
