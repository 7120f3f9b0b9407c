"""Istio VirtualService + DestinationRule: which rule a request hits and how it splits (routing-semantics §2, §3)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from respy._errors import RulesError
from respy.rules.context import Context, HostHit
from respy.rules.load import K8sObject
from respy.rules.match import is_presence, string_match
from respy.rules.outcomes import Candidate, Resolution, scale, status_outcome
from respy.rules.pods import pods_behind
from respy.rules.request import resolved_host
from respy.rules.semantics import (
    host_intersection,
    host_rank,
    is_catch_all_rule,
    is_partial_service_name,
    request_names,
    rule_host,
    service_fqdn,
    short_host,
    top_gateways,
    unknown_fields,
    version_text,
    visible,
)
from respy.rules.sidecar_scope import vs_hosts

IGNORED_HEADER_KEYS = frozenset({"uri", "scheme", "method", "authority"})
# pilot/pkg/model/virtualservice.go mergeHTTPRoute: what a delegate's rule takes from its root rule when unset
INHERITED_FROM_ROOT = ("rewrite", "timeout", "retries", "fault", "mirror", "mirrorPercentage", "corsPolicy",
                       "mirrors", "headers")


@dataclass(frozen=True)
class RuleHit:
    """The ``http[]`` rule a request lands on (``chain`` names root and delegate rules)."""

    vs: K8sObject
    index: int
    rule: Mapping[str, Any]
    chain: str


def host_hits(ctx: Context) -> list[HostHit]:
    """VirtualServices that apply at this vantage point and cover the request's host."""
    hits = []
    for vs in ctx.rules.of_kind("VirtualService"):
        if not vs.group.startswith("networking.istio.io") or not _applies_here(ctx, vs):
            continue
        ranked = [(host_rank(key, ctx.names), key) for key in _vhost_keys(ctx, vs)]
        best = max(((r, p) for r, p in ranked if r is not None), default=None)
        if best is not None:
            hits.append(HostHit(best[0], vs, best[1]))
    return hits


def _vhost_keys(ctx: Context, vs: K8sObject) -> list[str]:
    """The virtual-host names a VirtualService's hosts give at this vantage point.

    Mesh: each host as istiod reads it; ``*`` is refused by validation (``pkg/config/validation/validation.go``
    ``ValidateVirtualService``: "wildcard host * is not allowed for virtual services bound to the mesh
    gateway"); a dotted partial name (``reviews.default``) is not a Service, and on ports other than 80 a host
    that names no Service is dropped (``pilot/pkg/networking/core/httproute.go`` ``selectVirtualServices``).
    Gateway: the intersection of a server's hosts with the VirtualService's (``pilot/pkg/networking/core/
    gateway.go``; ``pkg/config/host/names.go`` ``Intersection``); a host outside every server gets no route.
    """
    ns = vs.ns(ctx.namespace)
    hosts = [rule_host(h, ns) for h in vs.spec.get("hosts") or []]
    if ctx.vantage.is_mesh:
        if "*" in hosts:
            ctx.warn(f"{ctx.ref(vs)}: host '*' is not allowed for VirtualServices bound to the mesh: Istio refuses "
                     "the VirtualService (\"wildcard host * is not allowed ...\"), so it is not used")
            return []
        keys = []
        for host in hosts:
            if is_partial_service_name(host):
                ctx.warn(f"{ctx.ref(vs)}: host {host!r} has a dot, so istiod does not expand it: it is not the "
                         f"Service {host.split('.')[0]}.{host.split('.')[1]}.svc.cluster.local (use the full name)")
                if ctx.request.port != 80:
                    continue
            keys.append(host)
        return keys
    servers = _gateway_server_hosts(ctx, vs)
    if servers is None:
        return hosts
    keys = _intersections(hosts, servers)
    if hosts and not keys:
        elsewhere = sorted({p for p, s in _gateway_server_hosts_by_port(ctx, vs).items() if _intersections(hosts, s)})
        if elsewhere:
            ctx.warn(f"{ctx.ref(vs)}: the servers of gateway {ctx.vantage.gateway} take its hosts on port(s) "
                     f"{', '.join(map(str, elsewhere))} only, not on port {ctx.request.port} (one route table per "
                     "server port): no route here")
        else:
            ctx.warn(f"{ctx.ref(vs)}: none of its hosts ({', '.join(hosts)}) is among the hosts of the servers of "
                     f"gateway {ctx.vantage.gateway}: the gateway gives it no route (IST0132)")
    return keys


def _intersections(hosts: Sequence[str], servers: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(k for h in hosts for s in servers if (k := host_intersection(s, h)) is not None))


def _gateway_server_hosts(ctx: Context, vs: K8sObject) -> list[str] | None:
    """The hosts that the servers on the request's port, of the Gateway this vantage names, take from ``vs``;
    ``None`` when that Gateway was not given.

    ``pilot/pkg/networking/core/gateway.go`` ``buildGatewayHTTPRouteConfig`` builds one route table per server
    port (``http.<port>``: ``pilot/pkg/model/gateway.go`` ``gatewayRDSRouteName``) from the servers on that port
    only, so a VirtualService host that only a server on another port takes gets no virtual host here.
    """
    gateway = _gateway_object(ctx, vs)
    return None if gateway is None else _gateway_server_hosts_by_port(ctx, vs).get(ctx.request.port, [])


def _gateway_server_hosts_by_port(ctx: Context, vs: K8sObject) -> dict[int, list[str]]:
    gateway = _gateway_object(ctx, vs)
    if gateway is None:
        return {}
    vs_ns, gw_ns = vs.ns(ctx.namespace), gateway.ns(ctx.namespace)
    out: dict[int, list[str]] = {}
    for server in gateway.spec.get("servers") or []:
        if not isinstance(server, Mapping) or (number := server_port(server)) is None:
            continue
        for entry in server.get("hosts") or []:
            scope, _, pattern = str(entry).rpartition("/")
            # "ns/host": the server takes VirtualServices of that namespace only ("." = the Gateway's own)
            # (pkg/config/host/names.go NamesForNamespace)
            if scope in ("", "*") or (gw_ns if scope == "." else scope) == vs_ns:
                out.setdefault(number, []).append(pattern.lower())
    return out


def server_port(server: Mapping[str, Any]) -> int | None:
    port = server.get("port")
    number = port.get("number") if isinstance(port, Mapping) else None
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def vantage_gateways(ctx: Context) -> list[K8sObject]:
    """The Gateways among the inputs (Istio's or the Gateway API's) that the vantage point names."""
    want_ns, _, want_name = (ctx.vantage.gateway or "").rpartition("/")
    return [gw for gw in ctx.rules.of_kind("Gateway")
            if gw.name == want_name and (not want_ns or gw.ns(ctx.namespace) == want_ns)]


def gateway_ports(ctx: Context) -> list[int] | None:
    """The ports the named gateway listens on: its Gateway's server (or listener) ports; ``None`` when no such
    Gateway was given (then every port is taken to be served)."""
    gateways = vantage_gateways(ctx)
    if not gateways:
        return None
    ports = [number for gw in gateways for server in gw.spec.get("servers") or [] if isinstance(server, Mapping)
             and (number := server_port(server)) is not None]
    ports += [int(listener["port"]) for gw in gateways for listener in gw.spec.get("listeners") or []
              if isinstance(listener, Mapping) and isinstance(listener.get("port"), int)]
    return sorted(set(ports))


def gateway_no_route(ctx: Context) -> Resolution:
    """A request the gateway's listener takes whose Host no virtual host lists: Envoy answers 404 (NR).

    ``gateway.go`` ``buildGatewayHTTPRouteConfig``: the route table holds one virtual host per host both a server
    and a VirtualService name, each with ``Domains: []string{hostname}`` (no short names, no search path), and
    a ``blackhole`` virtual host with no routes when there is none; Envoy's router answers a request no route
    takes with 404 and an empty body (``source/common/router/router.cc`` ``Filter::decodeHeaders``:
    ``sendLocalReply(Http::Code::NotFound, "", ...)``, response flag NR).
    """
    gateway = ctx.vantage.gateway or ""
    found = vantage_gateways(ctx)
    source = ctx.source(found[0]) if found else f"gateway {gateway}"
    _hint_unexpanded_host(ctx)
    return Resolution([status_outcome(404, "no route", 1.0, source)],
                      f"gateway {gateway}, port {ctx.request.port}: no virtual host for Host {ctx.request.host!r}",
                      ctx.request.host, found[:1], ctx.warnings)


def _hint_unexpanded_host(ctx: Context) -> None:
    """When a sidecar would have reached a VirtualService host through the DNS search path, say so."""
    names = request_names(ctx.request.host, ctx.namespace)
    for vs in ctx.rules.of_kind("VirtualService"):
        if not _applies_here(ctx, vs):
            continue
        for key in _vhost_keys(ctx, vs):
            if key != ctx.request.host and host_rank(key, names) is not None and "*" not in key:
                ctx.warn(f"at gateway {ctx.vantage.gateway} the Host is matched as sent: {ctx.request.host!r} is "
                         f"not expanded to {key!r} (only a sidecar's DNS search path does that), so {ctx.ref(vs)} "
                         f"does not apply; send Host: {key}")
                return


def gateway_is_known(ctx: Context) -> bool:
    """Whether the inputs name the vantage's gateway (its Gateway, or a rule bound to it)."""
    if vantage_gateways(ctx):
        return True
    routes = ctx.rules.of_kind("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")
    return any(ctx.vantage.bound_by(top_gateways(vs), vs.ns(ctx.namespace))
               for vs in ctx.rules.of_kind("VirtualService")) or any(
        ctx.vantage.bound_by([f"{ref.get('namespace') or r.ns(ctx.namespace)}/{ref.get('name')}"], r.ns(ctx.namespace))
        for r in routes for ref in r.spec.get("parentRefs") or []
        if isinstance(ref, Mapping) and ref.get("kind", "Gateway") == "Gateway")


def _gateway_object(ctx: Context, vs: K8sObject) -> K8sObject | None:
    want_ns, _, want_name = (ctx.vantage.gateway or "").rpartition("/")
    for ref in top_gateways(vs):
        ns, _, name = ref.rpartition("/")
        if name != want_name or (want_ns and want_ns != (ns or vs.ns(ctx.namespace))):
            continue
        for gateway in ctx.rules.of_kind("Gateway"):
            if gateway.group.startswith("networking.istio.io") and gateway.name == name \
                    and gateway.ns(ctx.namespace) == (ns or vs.ns(ctx.namespace)):
                return gateway
    return None


def covered_hosts(ctx: Context) -> list[str]:
    """Every host some VirtualService names, with where it applies (for 'not routed' messages)."""
    out = []
    for vs in ctx.rules.of_kind("VirtualService"):
        ns = vs.ns(ctx.namespace)
        where = ", ".join(top_gateways(vs))
        out += [f"{rule_host(h, ns)} ({ctx.ref(vs)}, gateways: {where})" for h in vs.spec.get("hosts") or []]
    return out


def resolve_virtual_services(ctx: Context, hits: Sequence[HostHit]) -> Resolution:
    best = max(h.rank for h in hits)
    chosen = [h for h in hits if h.rank == best]
    if ctx.vantage.is_mesh and len(chosen) > 1:
        # routing-semantics §2.4: sidecars keep one VS per host and drop the rest (IST0109): undefined
        refs = "; ".join(f"{ctx.ref(h.obj)} ({h.obj.where})" for h in chosen)
        raise RulesError(f"{len(chosen)} VirtualServices claim host {chosen[0].pattern} for mesh traffic: {refs}. "
                         "Which one sidecars use is undefined (IST0109); keep one")
    for hit in chosen:
        validate(ctx, hit.obj)
    host = resolved_host(chosen[0].pattern, ctx.names)
    rules = _rule_list(ctx, [h.obj for h in chosen])
    if not rules:
        return _tcp_routes(ctx, chosen[0].obj, host)
    used = [h.obj for h in chosen]
    found = _first_match(ctx, rules)
    if found is None:
        # routing-semantics §2.5: no rule matches -> Envoy answers 404 (NR); no fallback to the Service
        refs = ", ".join(ctx.ref(vs) for vs in used)
        return Resolution([status_outcome(404, "no route matches", 1.0, ctx.source(used[0]))],
                          f"{refs}: no http rule matches", host, used, ctx.warnings)
    if found.vs not in used:
        used.append(found.vs)
    candidates = _action(ctx, found, used)
    _warn_unreachable(ctx, found)
    if ctx.vantage.is_mesh:
        _warn_not_imported(ctx, used)
    return Resolution(candidates, found.chain, host, used, ctx.warnings)


def resolve_tcp(ctx: Context, service: K8sObject, port: Mapping[str, Any], hits: Sequence[HostHit]) -> Resolution:
    """A TCP port: ``http`` rules do not apply; ``tcp`` rules (or the Service itself) pick a destination per
    connection (``tcp_proxy`` weighted clusters; routing-semantics §6.3), so the split is over connections."""
    name = port.get("appProtocol") or port.get("name") or "(no name)"
    why = (f"port {port.get('port')} of {ctx.ref(service)} is TCP for {version_text(ctx.istio_version)} "
           f"({name!r}): http rules do not apply and the destination is picked per connection, not per request")
    ctx.warn(f"{why}; rerun with --no-keepalive so each request opens its own connection")
    host = service_fqdn(service.name, service.ns(ctx.namespace))
    vs_list = [h.obj for h in hits]
    rule = next((r for vs in vs_list for r in _tcp_rules(vs, ctx.request.port)), None)
    if rule is None:
        whole = Candidate((host, None, None), service.name, host, 1.0, source=ctx.source(service))
        return Resolution([pods_behind(ctx, whole, host, None)], f"{ctx.ref(service)} (TCP, every pod)", host,
                          [service], ctx.warnings)
    vs, index, tcp_rule = rule
    validate(ctx, vs)
    ctx.check_sidecar_import(vs, vs_hosts(vs, ctx.namespace))
    used = [vs]
    candidates = _destinations(ctx, vs, tcp_rule["route"], ("spec", "tcp", index, "route"), used)
    return Resolution(candidates, f"{ctx.ref(vs)}, tcp[{index}] (per connection)", host, used, ctx.warnings)


def _tcp_rules(vs: K8sObject, port: int) -> Iterator[tuple[K8sObject, int, Mapping[str, Any]]]:
    for i, rule in enumerate(vs.spec.get("tcp") or []):
        matches = rule.get("match") or [{}]
        if rule.get("route") and any(m.get("port") in (None, port) for m in matches):
            yield vs, i, rule


# -- which VirtualServices apply -------------------------------------------------------------------


def _applies_here(ctx: Context, vs: K8sObject) -> bool:
    """Top-level ``gateways`` decide which proxies get a VirtualService (``push_context.go`` ``getGatewayNames``);
    ``match.gateways`` only filters within those, it cannot add ``mesh``. ``exportTo`` counts at sidecars (the
    client's namespace) and at gateways (the gateway's namespace: ``VirtualServicesForGateway``)."""
    ns = vs.ns(ctx.namespace)
    if not ctx.vantage.bound_by(top_gateways(vs), ns):
        return False
    return visible(_exports(vs), ns, _proxy_namespace(ctx, vs))


def _exports(vs: K8sObject) -> list[str]:
    return [e for e in vs.spec.get("exportTo") or [] if isinstance(e, str)]


def _proxy_namespace(ctx: Context, vs: K8sObject) -> str:
    """The namespace of the proxy that routes: the client's, or the named Gateway's (its pods run there)."""
    if ctx.vantage.is_mesh:
        return ctx.namespace
    want_ns, _, want_name = (ctx.vantage.gateway or "").rpartition("/")
    for ref in top_gateways(vs):
        ns, _, name = ref.rpartition("/")
        if name == want_name:
            return want_ns or ns or vs.ns(ctx.namespace)
    return want_ns or vs.ns(ctx.namespace)


# -- validation done when a VS is used --------------------------------------------------------------


def validate(ctx: Context, vs: K8sObject) -> None:
    """What Istio's validation refuses (a ``RulesError``) or ignores (a warning naming the field)."""
    _validate_weights(vs)
    _validate_faults(vs)
    for message in unknown_fields(vs):
        ctx.warn(f"{ctx.ref(vs)}: {message}")


def _validate_faults(vs: K8sObject) -> None:
    """``pkg/config/validation/validation.go`` ``validateHTTPFaultInjectionAbort``: an ``http2Error`` abort is
    refused ("HTTP/2 abort fault injection not supported yet"), so the whole VirtualService is invalid."""
    for i, rule in enumerate(vs.spec.get("http") or []):
        abort = (rule.get("fault") or {}).get("abort")
        if isinstance(abort, Mapping) and "http2Error" in abort:
            raise vs.error(f"http[{i}].fault.abort.http2Error: Istio refuses this VirtualService (\"HTTP/2 abort "
                           "fault injection not supported yet\"), so none of its routing applies",
                           ("spec", "http", i, "fault", "abort"))


def _validate_weights(vs: K8sObject) -> None:
    """routing-semantics §2.8: >= 2 destinations whose weights add up to 0 are rejected by Istio."""
    for section in ("http", "tcp", "tls"):
        for i, rule in enumerate(vs.spec.get(section) or []):
            route = rule.get("route") or []
            if len(route) > 1 and sum(d.get("weight") or 0 for d in route) == 0:
                raise vs.error(f"{section}[{i}]: total destination weight = 0 ({len(route)} destinations, none "
                               "with a weight > 0); Istio rejects this, it is not an equal split",
                               ("spec", section, i, "route"))


def _tcp_routes(ctx: Context, vs: K8sObject, host: str) -> Resolution:
    """A VirtualService with only tcp/tls rules: its tcp route's weights, per connection (routing-semantics §2.9)."""
    found = next(_tcp_rules(vs, ctx.request.port), None)
    if found is None:
        raise vs.error("has no http rules and no tcp rule for this port (tls rules route by SNI, which respy does "
                       "not predict)")
    ctx.warn(f"{ctx.ref(vs)} routes this port with tcp rules only: Envoy picks the destination per TCP "
             "connection, not per request; rerun with --no-keepalive so each request opens its own connection")
    _, index, rule = found
    validate(ctx, vs)
    used = [vs]
    candidates = _destinations(ctx, vs, rule["route"], ("spec", "tcp", index, "route"), used)
    return Resolution(candidates, f"{ctx.ref(vs)}, tcp[{index}] (per connection)", host, used, ctx.warnings)


# -- walking the rules --------------------------------------------------------------------------------


def _rule_list(ctx: Context, vss: Sequence[K8sObject]) -> list[tuple[K8sObject, int, Mapping[str, Any]]]:
    rules = [(vs, i, rule) for vs in vss for i, rule in enumerate(vs.spec.get("http") or [])]
    if len(vss) > 1:
        # routing-semantics §2.4: at a gateway VSs are merged, order across them undefined, catch-alls last
        ctx.warn("several VirtualServices cover this host at the gateway: their relative order is undefined ("
                 + ", ".join(ctx.ref(vs) for vs in vss) + ")")
        rules.sort(key=lambda item: is_catch_all_rule(item[2]))  # route.go SortVHostRoutes
    return rules


def _first_match(ctx: Context, rules: Sequence[tuple[K8sObject, int, Mapping[str, Any]]]) -> RuleHit | None:
    # routing-semantics §2.5: the first rule matching the request is used
    for vs, i, rule in rules:
        for j, block in enumerate(rule.get("match") or [None]):
            if not _block_matches(ctx, vs, block, ("spec", "http", i, "match", j)):
                continue
            chain = f"{ctx.ref(vs)}, http[{i}]" + (f" ({rule['name']})" if isinstance(rule.get("name"), str) else "")
            if rule.get("delegate") is None:
                return RuleHit(vs, i, rule, chain)
            hit = _delegate_match(ctx, vs, rule, chain)
            if hit is not None:
                return hit
    return None


def _delegate_match(ctx: Context, root: K8sObject, rule: Mapping[str, Any], chain: str) -> RuleHit | None:
    """routing-semantics §2.6: the delegate's rules replace the root rule in place (one level only).

    Each delegate rule inherits the root rule's fault, retries, rewrite, mirror... when it sets none of its own
    (``pilot/pkg/model/virtualservice.go`` ``mergeHTTPRoute``).
    """
    ref = rule["delegate"]
    name, ns = ref.get("name"), ref.get("namespace") or root.ns(ctx.namespace)
    for vs in ctx.rules.of_kind("VirtualService"):
        if vs.name == name and vs.ns(ctx.namespace) == ns:
            validate(ctx, vs)
            for i, sub in enumerate(vs.spec.get("http") or []):
                blocks = sub.get("match") or [None]
                if any(_block_matches(ctx, vs, b, ("spec", "http", i, "match", j)) for j, b in enumerate(blocks)):
                    return RuleHit(vs, i, _merged(rule, sub), f"{chain} -> {ctx.ref(vs)}, http[{i}]")
            return None
    raise root.error(f"delegate VirtualService {ns}/{name} is not among the inputs")


def _merged(root: Mapping[str, Any], delegate: Mapping[str, Any]) -> Mapping[str, Any]:
    inherited = {k: root[k] for k in INHERITED_FROM_ROOT if root.get(k) is not None and delegate.get(k) is None}
    return {**inherited, **delegate}


def _block_matches(ctx: Context, vs: K8sObject, block: Mapping[str, Any] | None, path: tuple[str | int, ...]) -> bool:
    if block is None:
        return True
    try:
        return _applies_to_vantage(ctx, vs, block) and _request_matches(ctx, block)
    except RulesError as exc:
        if exc.file is None:
            raise vs.error(exc.message, path) from None
        raise


def _applies_to_vantage(ctx: Context, vs: K8sObject, block: Mapping[str, Any]) -> bool:
    """Config-time filters (routing-semantics §2.5): gateways, port, sourceNamespace, sourceLabels."""
    ns = vs.ns(ctx.namespace)
    if not ctx.vantage.bound_by(list(block.get("gateways") or top_gateways(vs)), ns):
        return False
    port = block.get("port")
    if port is not None and port != ctx.request.port:
        return False
    if not ctx.vantage.is_mesh or block.get("gateways"):
        return True
    source_ns = block.get("sourceNamespace")
    if source_ns is not None and source_ns != ctx.namespace:
        return False
    if block.get("sourceLabels"):
        ctx.warn(f"{ctx.ref(vs)}: a match on sourceLabels {dict(block['sourceLabels'])} depends on the client pod's "
                 "labels, which respy does not know: assumed not to match")
        return False
    return True


def _request_matches(ctx: Context, block: Mapping[str, Any]) -> bool:
    req = ctx.request
    if "uri" in block and not string_match(block["uri"], req.path, ignore_case=bool(block.get("ignoreUriCase"))):
        return False
    pseudo = {"scheme": req.scheme, "method": req.method, "authority": req.authority}
    if any(key in block and not string_match(block[key], value) for key, value in pseudo.items()):
        return False
    return (_headers_match(block.get("headers") or {}, req.headers)
            and _without_headers_match(block.get("withoutHeaders") or {}, req.headers)
            and all(string_match(spec, req.query_param(str(key)))
                    for key, spec in (block.get("queryParams") or {}).items()))


def _headers_match(specs: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    return all(
        string_match(spec, headers.get(str(key).lower()))
        for key, spec in specs.items() if str(key).lower() not in IGNORED_HEADER_KEYS
    )


def _without_headers_match(specs: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    for key, spec in specs.items():
        value = headers.get(str(key).lower())
        if is_presence(spec):
            if value is not None:
                return False
        # a missing header counts as empty here (treat_missing_header_as_empty)
        elif string_match(spec, value if value is not None else ""):
            return False
    return True


def _warn_not_imported(ctx: Context, used: Sequence[K8sObject]) -> None:
    """A VirtualService the client's Sidecar resource does not import gives its proxy no route (``sidecar_scope``):
    the declared split stays the expectation, so the check fails as the mesh does, and a warning says why."""
    for vs in (obj for obj in used if obj.kind == "VirtualService"):
        ctx.check_sidecar_import(vs, vs_hosts(vs, ctx.namespace))


def _warn_unreachable(ctx: Context, hit: RuleHit) -> None:
    later = len(hit.vs.spec.get("http") or []) - hit.index - 1
    if not hit.rule.get("match") and later > 0:
        ctx.warn(f"{ctx.ref(hit.vs)}: http[{hit.index}] has no match, so the {later} rule(s) after it are "
                 "unreachable (IST0130)")


# -- the action of the chosen rule -------------------------------------------------------------------


def _action(ctx: Context, hit: RuleHit, used: list[K8sObject]) -> list[Candidate]:
    rule, vs = hit.rule, hit.vs
    path = ("spec", "http", hit.index)
    source = ctx.source(vs)
    actions = [key for key in ("route", "redirect", "directResponse") if rule.get(key) not in (None, [])]
    if len(actions) > 1:
        raise vs.error(f"http[{hit.index}] combines {' and '.join(actions)}; Istio allows only one", path)
    if not actions:
        raise vs.error(f"http[{hit.index}]: HTTP route, redirect or direct_response is required", path)
    if actions[0] == "redirect":
        status = _int(vs, rule["redirect"].get("redirectCode", 301), (*path, "redirect"))
        return [status_outcome(status, "redirect", 1.0, source)]
    if actions[0] == "directResponse":
        status = _int(vs, rule["directResponse"].get("status"), (*path, "directResponse"))
        return [status_outcome(status, "direct response", 1.0, source)]
    destinations = _destinations(ctx, vs, rule["route"], (*path, "route"), used)
    return _apply_abort(ctx, vs, rule, destinations, path)


def _destinations(ctx: Context, vs: K8sObject, route: Sequence[Mapping[str, Any]], path: tuple[str | int, ...],
                  used: list[K8sObject]) -> list[Candidate]:
    weights = [d.get("weight") or 0 for d in route]
    if len(route) == 1:
        shares = [1.0]  # routing-semantics §2.8: a single destination gets 100% whatever its weight
    else:
        total = sum(weights)
        shares = [w / total for w in weights]  # relative weights; omitted = 0 (total 0 was refused earlier)
        if total != 100:
            ctx.warn(f"{ctx.ref(vs)}: destination weights add up to {total}, not 100 (legal since Istio 1.15; "
                     "they are relative)")
    hosts = [_dest_host(ctx, vs, d, (*path, k)) for k, d in enumerate(route)]
    several_hosts = len(set(hosts)) > 1
    return [
        _destination(ctx, vs, hosts[k], d["destination"], share, several_hosts, used)
        for k, (d, share) in enumerate(zip(route, shares, strict=True))
    ]


def _dest_host(ctx: Context, vs: K8sObject, dest: Mapping[str, Any], path: tuple[str | int, ...]) -> str:
    target = dest.get("destination")
    if not isinstance(target, Mapping) or not isinstance(target.get("host"), str):
        raise vs.error("route destination without destination.host", path)
    return rule_host(target["host"], vs.ns(ctx.namespace))


def _destination(ctx: Context, vs: K8sObject, host: str, target: Mapping[str, Any], share: float,
                 several_hosts: bool, used: list[K8sObject]) -> Candidate:
    short = short_host(host)
    subset = target.get("subset")
    port = (target.get("port") or {}).get("number") if isinstance(target.get("port"), Mapping) else None
    source = ctx.source(vs)
    host_ids = (short,) if several_hosts else ()
    if not subset:
        # route.go GetDestinationCluster: outbound|<port>||<fqdn>, every ready endpoint of the Service
        found = Candidate((host, None, port), short, host, share, host_ids, source=source)
        return pods_behind(ctx, found, host, None)
    subset = str(subset)
    labels = _subset_labels(ctx, vs, host, subset, used)
    if labels is None:
        # routing-semantics §2.7: undefined subset -> that share gets 503 (NC, cluster not found)
        ctx.warn(f"{ctx.ref(vs)}: subset {subset!r} of {host} is not defined by the DestinationRule this client "
                 "uses (IST0101): its share answers 503")
        return status_outcome(503, f"subset {subset} of {short} not defined", share, source)
    ids = (subset, *labels.values(), *host_ids)
    found = Candidate((host, subset, port), subset, f"{short}/{subset}", share, ids, source=source)
    return pods_behind(ctx, found, host, (subset, labels))


def _subset_labels(ctx: Context, vs: K8sObject, host: str, subset: str,
                   used: list[K8sObject]) -> dict[str, str] | None:
    dr = ctx.destination_rule(host)
    if dr is None:
        ctx.warn(f"no DestinationRule for {host} visible from namespace {ctx.namespace} among the inputs: subset "
                 "names are taken on trust (a subset no DestinationRule defines answers 503)")
        return {}
    used.extend(rule for rule in dr.rules if rule not in used)
    return dr.subsets.get(subset)


def _apply_abort(ctx: Context, vs: K8sObject, rule: Mapping[str, Any], destinations: list[Candidate],
                 path: tuple[str | int, ...]) -> list[Candidate]:
    """routing-semantics §2.6: abort with probability a -> P(status) = a, destinations scaled by 1 - a."""
    abort = (rule.get("fault") or {}).get("abort")
    if not isinstance(abort, Mapping):
        return destinations
    fraction = _abort_fraction(ctx, vs, abort, (*path, "fault", "abort"))
    if "httpStatus" in abort:
        status = _int(vs, abort["httpStatus"], (*path, "fault", "abort", "httpStatus"))
        reason = "fault abort"
    else:
        status, reason = 200, f"fault abort, gRPC {abort.get('grpcStatus') or abort.get('http2Error')}"
    return [*scale(destinations, 1.0 - fraction), status_outcome(status, reason, fraction, ctx.source(vs))]


def _abort_fraction(ctx: Context, vs: K8sObject, abort: Mapping[str, Any], path: tuple[str | int, ...]) -> float:
    percentage = abort.get("percentage")
    if isinstance(percentage, Mapping) and percentage.get("value") is not None:
        value = percentage["value"]
    else:
        # abort.percent was removed from the API (reserved): istiod reads only percentage (route.go TranslateFault)
        ctx.warn(f"{ctx.ref(vs)}: fault.abort without percentage.value: no request is aborted (taken as 0%)")
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise vs.error(f"fault abort percentage must be a number from 0 to 100, not {value!r}", path)
    return float(value) / 100.0


def _int(vs: K8sObject, value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise vs.error(f"HTTP status must be an integer from 100 to 599, not {value!r}", path)
    return value
