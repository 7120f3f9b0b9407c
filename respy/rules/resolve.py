"""From a request to the ``Expectation`` the routing rules declare for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from respy._errors import NotRoutedError
from respy.rules import gateway_api, istio
from respy.rules.context import Context
from respy.rules.expectation import Expectation
from respy.rules.load import K8sObject, RuleSet
from respy.rules.outcomes import Resolution, finish
from respy.rules.request import Request, Vantage
from respy.rules.semantics import (
    L4_PROTOCOLS,
    IstioVersion,
    http_routed,
    parse_istio_version,
    port_protocol,
    service_port,
    version_text,
)


def resolve(
    rules: RuleSet,
    *,
    url: str,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    namespace: str = "default",
    gateway: str | None = None,
    istio_version: str | IstioVersion | None = None,
) -> Expectation:
    """The declared split for one request, seen from the mesh (``gateway=None``) or from a named gateway.

    ``namespace`` is the client's (its DestinationRules and exports come first); ``istio_version``
    (``"1.2"``) selects the behaviour of that release where it changed, else today's Istio.
    Raises ``RulesError`` for rules Istio would reject and ``NotRoutedError`` when no rule covers the host.
    """
    if rules.weights is not None:
        return _from_weights(rules)
    version = parse_istio_version(istio_version) if isinstance(istio_version, str) else istio_version
    ctx = Context(rules, Request.build(url, headers, method), Vantage.of(gateway), namespace,
                  warnings=list(rules.warnings), istio_version=version)
    return _expectation(_resolution(ctx), ctx)


def _from_weights(rules: RuleSet) -> Expectation:
    expectation = Expectation.from_weights(rules.weights or {})
    if rules.routing:
        refs = ", ".join(o.ref for o in rules.routing)
        note = f"inline weights given: they are the expectation; the routing rules read ({refs}) are not used for it"
        return replace(expectation, warnings=(*expectation.warnings, note))
    return expectation


def _resolution(ctx: Context) -> Resolution:
    if not ctx.vantage.is_mesh:
        _check_gateway_port(ctx)
    vs_hits = istio.host_hits(ctx)
    tcp = _tcp_port(ctx)
    if tcp is not None:
        return istio.resolve_tcp(ctx, tcp[0], tcp[1], vs_hits)
    route_hits = gateway_api.route_hits(ctx)
    if not vs_hits and not route_hits:
        if not ctx.vantage.is_mesh and istio.gateway_is_known(ctx):
            # a gateway's listener takes the request, and no virtual host lists its Host: Envoy answers 404 (NR).
            # A sidecar instead passes an unknown host through (allow_any): no prediction there.
            return istio.gateway_no_route(ctx)
        raise _not_routed(ctx)
    if vs_hits and route_hits:
        vs_best, route_best = max(h.rank for h in vs_hits), max(h.rank for h in route_hits)
        if vs_best > route_best:
            return istio.resolve_virtual_services(ctx, vs_hits)
        if vs_best == route_best:
            # routing-semantics §4.3: mixing VirtualService and HTTPRoute for one host is undefined in Istio
            ctx.warn("both a VirtualService and an HTTPRoute cover this host: Istio's behaviour is undefined; "
                     "the HTTPRoute is used")
    return gateway_api.resolve_routes(ctx, route_hits) if route_hits else istio.resolve_virtual_services(ctx, vs_hits)


def _check_gateway_port(ctx: Context) -> None:
    """A gateway listens only on its servers' ports (``pilot/pkg/networking/core/gateway.go``
    ``buildGatewayListeners``: one listener per server port): a request to another port reaches no listener."""
    ports = istio.gateway_ports(ctx)
    if ports is not None and ctx.request.port not in ports:
        served = ", ".join(map(str, ports)) or "none"
        example = ports[0] if ports else 80
        raise NotRoutedError(f"gateway {ctx.vantage.gateway} has no server on port {ctx.request.port} (its server "
                             f"ports: {served}): the connection reaches no listener; dial one of those ports "
                             f"(through a port-forward or a stand-in server: a URL on port {example} and --connect-to "
                             f"HOST:{example}:ADDR:PORT)")


def _tcp_port(ctx: Context) -> tuple[K8sObject, Mapping[str, Any]] | None:
    """The Service and port when the port dialled is declared TCP (``None`` otherwise).

    A port named ``tcp-*`` (or ``appProtocol: tcp``) is TCP: its traffic never reaches the HTTP route table
    (``pilot/pkg/networking/core/listener.go`` ``buildSidecarOutboundTCPListenerOpts``: a tcp_proxy filter
    chain), so the expectation is the per-connection split over all pods. A port whose name names no protocol
    was TCP too before Istio 1.3 (no sniffing); there the declared split stays the expectation, so the check
    FAILs as the mesh does, and a warning says why (the tutorial's story).
    """
    if not ctx.vantage.is_mesh:
        return None
    service = ctx.service(*ctx.names)
    port = service_port(service, ctx.request.port) if service is not None else None
    if service is None or port is None:
        return None
    protocol = port_protocol(port)
    if protocol in L4_PROTOCOLS:
        return service, port
    if not http_routed(protocol, ctx.istio_version):
        ctx.warn(f"port {port.get('port')} of {ctx.ref(service)} is named {port.get('name')!r}, which names no "
                 f"protocol: on {version_text(ctx.istio_version)} (no protocol sniffing before 1.3) it is plain TCP, "
                 "so these http rules are not applied and Kubernetes spreads connections over all pods; name it "
                 "http-… or set appProtocol: http")
    return None


def _expectation(found: Resolution, ctx: Context) -> Expectation:
    return Expectation(
        outcomes=finish(found.candidates),
        host=found.host,
        route=found.route,
        sources=tuple(dict.fromkeys(o.file for o in found.used)),
        warnings=tuple(found.warnings),
        notes=tuple(ctx.notes),
    )


def _not_routed(ctx: Context) -> NotRoutedError:
    covered = istio.covered_hosts(ctx) + gateway_api.covered_hosts(ctx)
    listing = "; ".join(covered) if covered else "none"
    host = ctx.request.host
    hint = _gateway_hint(ctx)
    return NotRoutedError(
        f"no routing rule covers host {host!r} for {ctx.vantage.describe()} (client namespace "
        f"{ctx.namespace!r}); the rules cover: {listing}{hint}"
    )


def _gateway_hint(ctx: Context) -> str:
    """When mesh traffic is not routed but the rules would route it at a gateway, say which one."""
    if not ctx.vantage.is_mesh:
        return ""
    for name in _gateway_names(ctx):
        at_gateway = Context(ctx.rules, ctx.request, Vantage.of(name), ctx.namespace)
        if istio.host_hits(at_gateway) or gateway_api.route_hits(at_gateway):
            return f". Rules for this host apply only at gateway {name}: pass that gateway to predict ingress traffic"
    return ""


def _gateway_names(ctx: Context) -> list[str]:
    names = [g for vs in ctx.rules.of_kind("VirtualService") for g in vs.spec.get("gateways") or [] if g != "mesh"]
    names += [str(ref.get("name")) for route in ctx.rules.of_kind("HTTPRoute", "GRPCRoute")
              for ref in route.spec.get("parentRefs") or [] if ref.get("kind", "Gateway") == "Gateway"]
    return list(dict.fromkeys(names))
