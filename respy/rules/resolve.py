"""From a request to the ``Expectation`` the routing rules declare for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from respy._errors import NotRoutedError
from respy.rules import gateway_api, istio
from respy.rules.context import Context
from respy.rules.expectation import Expectation
from respy.rules.load import RuleSet
from respy.rules.outcomes import Resolution, finish
from respy.rules.request import Request, Vantage


def resolve(
    rules: RuleSet,
    *,
    url: str,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    namespace: str = "default",
    gateway: str | None = None,
) -> Expectation:
    """The declared split for one request, seen from the mesh (``gateway=None``) or from a named gateway.

    Raises ``RulesError`` for rules Istio would reject and ``NotRoutedError`` when no rule covers the host.
    """
    if rules.weights is not None:
        return _from_weights(rules)
    ctx = Context(rules, Request.build(url, headers, method), Vantage.of(gateway), namespace,
                  warnings=list(rules.warnings))
    return _expectation(_resolution(ctx))


def _from_weights(rules: RuleSet) -> Expectation:
    expectation = Expectation.from_weights(rules.weights or {})
    if rules.routing:
        refs = ", ".join(o.ref for o in rules.routing)
        note = f"inline weights given: they are the expectation; the routing rules read ({refs}) are not used for it"
        return replace(expectation, warnings=(*expectation.warnings, note))
    return expectation


def _resolution(ctx: Context) -> Resolution:
    vs_hits = istio.host_hits(ctx)
    route_hits = gateway_api.route_hits(ctx)
    if not vs_hits and not route_hits:
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


def _expectation(found: Resolution) -> Expectation:
    return Expectation(
        outcomes=finish(found.candidates),
        host=found.host,
        route=found.route,
        sources=tuple(dict.fromkeys(o.file for o in found.used)),
        warnings=tuple(found.warnings),
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
