"""Gateway API HTTPRoute (and GRPCRoute): attachment, precedence and backend weights (routing-semantics §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from respy._errors import RulesError
from respy.rules.context import Context, HostHit
from respy.rules.load import K8sObject
from respy.rules.outcomes import Candidate, Resolution, status_outcome
from respy.rules.pods import pods_behind
from respy.rules.request import full_match, resolved_host
from respy.rules.semantics import (
    GAMMA_CONSUMER,
    INVALID_BACKEND_500,
    PREFIX_SLASH_TIE,
    backend_weight,
    has,
    host_rank,
    reference_granted,
    service_fqdn,
    version_text,
)

ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")
GATEWAY_GROUP = "gateway.networking.k8s.io"
PATH_RANK = {"Exact": 3, "PathPrefix": 2, "RegularExpression": 1}
ROOT_PREFIX = {"type": "PathPrefix", "value": "/"}


@dataclass(frozen=True)
class _Entry:
    route: K8sObject
    rule_index: int
    match: Mapping[str, Any]  # normalised to HTTPRoute match shape
    rule: Mapping[str, Any]


def route_hits(ctx: Context) -> list[HostHit]:
    hits = []
    for route in ctx.rules.of_kind(*ROUTE_KINDS):
        if route.group != GATEWAY_GROUP:
            continue
        attached = _attachment(ctx, route)
        if attached is not None:
            hits.append(HostHit(attached[0], route, attached[1]))
    return _consumer_override(ctx, hits)


def _consumer_override(ctx: Context, hits: list[HostHit]) -> list[HostHit]:
    """GAMMA (GEP-1294): a route in the client's namespace attached to a Service of another namespace (a
    consumer route) replaces that Service's producer routes, for clients of that namespace only. Istio puts
    consumer routes first and drops the rest (``pilot/pkg/model/push_context.go`` ``VirtualServicesForGateway``,
    "consumer override"); before Istio 1.19 consumer routes were not supported and only producer routes count.
    """
    if not ctx.vantage.is_mesh:
        return hits
    consumer = [h for h in hits if _is_consumer(ctx, h)]
    if not has(ctx.istio_version, GAMMA_CONSUMER):
        if consumer:
            ctx.warn(f"{version_text(ctx.istio_version)} does not apply consumer routes (GAMMA, Istio >= 1.19): "
                     + ", ".join(ctx.ref(h.obj) for h in consumer) + " ignored")
        return [h for h in hits if h not in consumer]
    if consumer:
        producers = [h for h in hits if h not in consumer]
        if producers:
            ctx.warn("consumer route(s) " + ", ".join(ctx.ref(h.obj) for h in consumer) + f" in namespace "
                     f"{ctx.namespace} replace the Service's own route(s) "
                     + ", ".join(ctx.ref(h.obj) for h in producers) + " for clients of this namespace")
        return consumer
    return hits


def _is_consumer(ctx: Context, hit: HostHit) -> bool:
    route_ns = hit.obj.ns(ctx.namespace)
    service_ns = hit.pattern.split(".")[1] if hit.pattern.count(".") >= 2 else route_ns
    return route_ns == ctx.namespace and service_ns != route_ns


def covered_hosts(ctx: Context) -> list[str]:
    out = []
    for route in ctx.rules.of_kind(*ROUTE_KINDS):
        ns = route.ns(ctx.namespace)
        for ref in route.spec.get("parentRefs") or []:
            if _is_service_ref(ref):
                out.append(f"{service_fqdn(str(ref.get('name')), ref.get('namespace') or ns)} ({ctx.ref(route)}, mesh)")
            else:
                hosts = ", ".join(route.spec.get("hostnames") or ["*"])
                out.append(f"{hosts} ({ctx.ref(route)}, gateway {ref.get('namespace') or ns}/{ref.get('name')})")
        if not route.spec.get("parentRefs"):
            out.append(f"{', '.join(route.spec.get('hostnames') or ['*'])} ({ctx.ref(route)}, no parentRefs)")
    return out


def resolve_routes(ctx: Context, hits: Sequence[HostHit]) -> Resolution:
    best = max(h.rank for h in hits)
    chosen = sorted((h.obj for h in hits if h.rank == best), key=_route_order)
    for route in chosen:
        if not route.spec.get("parentRefs"):
            ctx.warn(f"{ctx.ref(route)} has no parentRefs: attached to nothing in a real cluster; taken to apply here")
    host = resolved_host(next(h.pattern for h in hits if h.rank == best), ctx.names)
    entry = _first_match(ctx, _entries(chosen, has(ctx.istio_version, PREFIX_SLASH_TIE)))
    if entry is None:
        # routing-semantics §4.2: no matching rule -> 404
        refs = ", ".join(ctx.ref(r) for r in chosen)
        return Resolution([status_outcome(404, "no route matches", 1.0, ctx.source(chosen[0]))],
                          f"{refs}: no rule matches", host, list(chosen), ctx.warnings)
    candidates = _action(ctx, entry)
    if ctx.vantage.is_mesh and entry.route.spec.get("parentRefs"):
        ctx.check_sidecar_import(entry.route, [host], gateway_semantics=True)
    described = f"{ctx.ref(entry.route)}, rules[{entry.rule_index}]"
    return Resolution(candidates, described, host, [entry.route], ctx.warnings)


# -- attachment ----------------------------------------------------------------------------------------


def _is_service_ref(ref: Mapping[str, Any]) -> bool:
    return ref.get("kind") == "Service" and ref.get("group", "") in ("", "core")


def _attachment(ctx: Context, route: K8sObject) -> tuple[tuple[int, int], str] | None:
    refs = route.spec.get("parentRefs") or []
    if not refs:
        return _hostname_rank(ctx, route)
    ranks = [r for r in (_parent_rank(ctx, route, ref) for ref in refs) if r is not None]
    return max(ranks, default=None)


def _parent_rank(ctx: Context, route: K8sObject, ref: Mapping[str, Any]) -> tuple[tuple[int, int], str] | None:
    ns = route.ns(ctx.namespace)
    parent_ns = str(ref.get("namespace") or ns)
    if _is_service_ref(ref):
        # routing-semantics §4.3: GAMMA, the route applies to mesh traffic addressed to that Service
        port = ref.get("port") if has(ctx.istio_version, GAMMA_CONSUMER) else None  # parentRef ports: >= 1.19
        # the dialled port (the URL's, or the scheme's default) must be the parentRef's: istiod programs the route
        # on that port's route table only (conversion.go augmentPortMatch), other ports pass through
        if not ctx.vantage.is_mesh or (port and port != ctx.request.port):
            return None
        fqdn = service_fqdn(str(ref.get("name")), parent_ns)
        rank = host_rank(fqdn, ctx.names)
        return (rank, fqdn) if rank is not None else None
    if ref.get("kind", "Gateway") != "Gateway" or ctx.vantage.is_mesh:
        return None
    if not ctx.vantage.bound_by([f"{parent_ns}/{ref.get('name')}"], ns):
        return None
    return _hostname_rank(ctx, route)


def _hostname_rank(ctx: Context, route: K8sObject) -> tuple[tuple[int, int], str] | None:
    hostnames = [h.lower() for h in route.spec.get("hostnames") or []]
    if not hostnames:
        return (1, 0), ctx.request.host
    ranked = [(host_rank(h, (ctx.request.host,)), h) for h in hostnames]
    return max(((r, h) for r, h in ranked if r is not None), default=None)


def _route_order(route: K8sObject) -> tuple[str, str]:
    # routing-semantics §4.2 ties across routes: oldest creationTimestamp, then "{namespace}/{name}"
    created = (route.body.get("metadata") or {}).get("creationTimestamp")
    return (str(created) if created is not None else "", f"{route.namespace or ''}/{route.name}")


# -- precedence and matching ----------------------------------------------------------------------------


def _entries(routes: Sequence[K8sObject], trim_slash: bool = True) -> list[_Entry]:
    entries = [
        _Entry(route, i, _normalise(route, match), rule)
        for route in routes
        for i, rule in enumerate(route.spec.get("rules") or [])
        for match in rule.get("matches") or [{}]  # no matches = a PathPrefix "/" match
    ]
    # routing-semantics §4.2: Exact > longer PathPrefix > method > more headers > more query params; stable
    # (conversion.go sortHTTPRoutes)
    entries.sort(key=lambda e: _precedence(e.match, trim_slash))
    return entries


def _normalise(route: K8sObject, match: Mapping[str, Any]) -> Mapping[str, Any]:
    if route.kind != "GRPCRoute":
        return {**match, "path": match.get("path") or ROOT_PREFIX}
    method = match.get("method") or {}
    service, name = method.get("service"), method.get("method")
    if method.get("type") == "RegularExpression":
        path = {"type": "RegularExpression", "value": f"/{service or '.+'}/{name or '.+'}"}
    elif service and name:
        path = {"type": "Exact", "value": f"/{service}/{name}"}
    elif service:
        path = {"type": "PathPrefix", "value": f"/{service}"}
    elif name:
        path = {"type": "RegularExpression", "value": f"/[^/]+/{name}"}
    else:
        path = ROOT_PREFIX
    return {"path": path, "headers": match.get("headers") or []}


def _precedence(match: Mapping[str, Any], trim_slash: bool) -> tuple[int, int, int, int, int]:
    """``conversion.go`` ``sortHTTPRoutes`` ranks the converted match: ``createURIMatch`` has already dropped a
    PathPrefix's trailing ``/`` ("When specified, a trailing `/` is ignored"; Istio >= 1.18), so ``/shop/``
    and ``/shop`` tie on length and the method match decides."""
    path = match["path"]
    kind, value = path.get("type", "PathPrefix"), str(path.get("value", "/"))
    if trim_slash and kind == "PathPrefix" and value != "/":
        value = value.rstrip("/")
    return (
        -PATH_RANK.get(kind, 0),
        -len(value),
        -int(match.get("method") is not None),
        -len(match.get("headers") or []),
        -len(match.get("queryParams") or []),
    )


def _first_match(ctx: Context, entries: Sequence[_Entry]) -> _Entry | None:
    for entry in entries:
        try:
            if _matches(ctx, entry.match):
                return entry
        except RulesError as exc:
            raise entry.route.error(exc.message, ("spec", "rules", entry.rule_index)) from None
    return None


def _matches(ctx: Context, match: Mapping[str, Any]) -> bool:
    req = ctx.request
    method = match.get("method")
    if method is not None and str(method).upper() != req.method:
        return False
    return (_path_matches(match["path"], req.path)
            and _headers_match(match.get("headers") or [], req.headers)
            and all(_value_matches(q, req.query_param(str(q.get("name")))) for q in match.get("queryParams") or []))


def _path_matches(path: Mapping[str, Any], value: str) -> bool:
    kind, want = path.get("type", "PathPrefix"), str(path.get("value", "/"))
    if kind == "Exact":
        return value == want
    if kind == "PathPrefix":
        # a path-ELEMENT prefix: /abc matches /abc and /abc/def, not /abcd (routing-semantics §4.2)
        prefix = want.rstrip("/")
        return not prefix or value == prefix or value.startswith(prefix + "/")
    if kind == "RegularExpression":
        return full_match(want, value)
    raise RulesError(f"unknown path match type {kind!r}")


def _headers_match(specs: Sequence[Mapping[str, Any]], headers: Mapping[str, str]) -> bool:
    seen: set[str] = set()
    for spec in specs:
        name = str(spec.get("name", "")).lower()
        if name in seen:  # only the first entry with an equivalent name counts
            continue
        seen.add(name)
        if not _value_matches(spec, headers.get(name)):
            return False
    return True


def _value_matches(spec: Mapping[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    kind, want = spec.get("type", "Exact"), str(spec.get("value", ""))
    if kind == "Exact":
        return value == want
    if kind == "RegularExpression":
        return full_match(want, value)
    raise RulesError(f"unknown match type {kind!r}")


# -- the action -----------------------------------------------------------------------------------------


def _action(ctx: Context, entry: _Entry) -> list[Candidate]:
    route, rule = entry.route, entry.rule
    source = ctx.source(route)
    redirect = next((f for f in rule.get("filters") or [] if f.get("type") == "RequestRedirect"), None)
    if redirect is not None:
        status = (redirect.get("requestRedirect") or {}).get("statusCode") or 302
        return [status_outcome(int(status), "redirect", 1.0, source)]
    backends = rule.get("backendRefs") or []
    weights = [backend_weight(b) for b in backends]
    total = sum(weights)
    shares = [w / total if total else 0.0 for w in weights]
    candidates = [_backend(ctx, route, b, share) for b, share in zip(backends, shares, strict=True)]
    if total == 0:
        # routing-semantics §4.1: no backend with weight > 0 -> Istio answers 500 for every request
        ctx.warn(f"{ctx.ref(route)}: rules[{entry.rule_index}] has no backend with weight > 0: every request gets 500")
        candidates.append(status_outcome(500, "no backend with weight > 0", 1.0, source))
    elif len(backends) > 1 and total != 100 and all(b.get("weight") is not None for b in backends):
        ctx.warn(f"{ctx.ref(route)}: backend weights add up to {total}, not 100 (they are relative)")
    return candidates


def _backend(ctx: Context, route: K8sObject, ref: Mapping[str, Any], share: float) -> Candidate:
    route_ns = route.ns(ctx.namespace)
    name = str(ref.get("name", ""))
    ns = str(ref.get("namespace") or route_ns)
    kind = ref.get("kind", "Service")
    key = (ref.get("group", ""), kind, ns, name, ref.get("port"))
    invalid = _invalid_backend(ctx, route, name, ns, kind, ref)
    if invalid:
        return replace(_invalid_outcome(ctx, route, f"{ns}/{name}", invalid, share), key=key)
    ids = (name, *_selector_values(ctx, name, ns))
    found = Candidate(key, name, f"{ns}/{name}", share, ids, source=ctx.source(route))
    return pods_behind(ctx, found, service_fqdn(name, ns), None) if kind == "Service" else found


def _invalid_backend(ctx: Context, route: K8sObject, name: str, ns: str, kind: str,
                     ref: Mapping[str, Any]) -> str:
    """Why Istio drops a backendRef (``conversion.go`` ``buildDestination``), or ``""``.

    Across namespaces at a Gateway a ReferenceGrant in the backend's namespace must allow it
    (InvalidDestinationPermit; mesh routes need none, GEP-1294); a Service that does not exist is
    InvalidDestinationNotFound (decided only when Services were given).
    """
    route_ns = route.ns(ctx.namespace)
    granted = reference_granted(ctx.rules.of_kind("ReferenceGrant"), route, target_namespace=ns, kind=kind,
                                group=str(ref.get("group", "")), name=name, default_namespace=ctx.namespace)
    if ns != route_ns and not ctx.vantage.is_mesh and not granted:
        return f"backend {ns}/{name} is in another namespace and no ReferenceGrant there allows it"
    services = ctx.rules.of_kind("Service")
    if kind == "Service" and ref.get("group", "") in ("", "core") and services \
            and not any(s.name == name and s.ns(ctx.namespace) == ns for s in services):
        return f"backend Service {ns}/{name} is not among the Services given"
    return ""


def _invalid_outcome(ctx: Context, route: K8sObject, backend: str, why: str, share: float) -> Candidate:
    """Istio >= 1.15 answers 500 for an invalid backend's share (``route.go`` ``applyHTTPRouteDestination`` sets
    ``cluster_not_found_response_code: INTERNAL_SERVER_ERROR`` for Gateway API routes); before, Envoy's
    default 503 for a cluster that does not exist."""
    status = 500 if has(ctx.istio_version, INVALID_BACKEND_500) else 503
    ctx.warn(f"{ctx.ref(route)}: {why}: its share answers {status}")
    return status_outcome(status, f"invalid backend {backend}", share, ctx.source(route))


def _selector_values(ctx: Context, name: str, namespace: str) -> tuple[str, ...]:
    """Label values of a per-version Service's selector (``reviews-v2`` -> ``v2``), when it was given."""
    for svc in ctx.rules.of_kind("Service"):
        if svc.name == name and svc.ns(ctx.namespace) == namespace:
            selector = svc.spec.get("selector")
            if isinstance(selector, Mapping):
                return tuple(str(v) for v in selector.values())
    return ()
