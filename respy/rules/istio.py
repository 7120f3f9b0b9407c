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
from respy.rules.request import host_rank, resolved_host, rule_host, short_host

IGNORED_HEADER_KEYS = frozenset({"uri", "scheme", "method", "authority"})


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
        ns = vs.ns(ctx.namespace)
        ranked = [(host_rank(rule_host(h, ns), ctx.names), rule_host(h, ns)) for h in vs.spec.get("hosts") or []]
        best = max(((r, p) for r, p in ranked if r is not None), default=None)
        if best is not None:
            hits.append(HostHit(best[0], vs, best[1]))
    return hits


def covered_hosts(ctx: Context) -> list[str]:
    """Every host some VirtualService names, with where it applies (for 'not routed' messages)."""
    out = []
    for vs in ctx.rules.of_kind("VirtualService"):
        ns = vs.ns(ctx.namespace)
        where = ", ".join(_top_gateways(vs))
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
        _validate_weights(hit.obj)
    if chosen[0].pattern == "*" and ctx.vantage.is_mesh:
        ctx.warn(f"{ctx.ref(chosen[0].obj)}: host '*' is not allowed for VirtualServices bound to the mesh")
    host = resolved_host(chosen[0].pattern, ctx.names)
    rules = _rule_list(ctx, [h.obj for h in chosen])
    if not rules:
        raise _tcp_only(chosen[0].obj)
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
    return Resolution(candidates, found.chain, host, used, ctx.warnings)


# -- which VirtualServices apply -------------------------------------------------------------------


def _top_gateways(vs: K8sObject) -> list[str]:
    # routing-semantics §2.2: omitted gateways == [mesh]
    return list(vs.spec.get("gateways") or ["mesh"])


def _applies_here(ctx: Context, vs: K8sObject) -> bool:
    ns = vs.ns(ctx.namespace)
    names = _top_gateways(vs) + [g for m in _all_matches(vs) for g in m.get("gateways") or []]
    if not ctx.vantage.bound_by(names, ns):
        return False
    return not ctx.vantage.is_mesh or _exported_to(vs, ns, ctx.namespace)


def _all_matches(vs: K8sObject) -> Iterator[Mapping[str, Any]]:
    for rule in vs.spec.get("http") or []:
        yield from rule.get("match") or []


def _exported_to(vs: K8sObject, ns: str, client_ns: str) -> bool:
    # routing-semantics §2.3: no exportTo = everywhere; "." = own namespace
    export = vs.spec.get("exportTo") or ["*"]
    return "*" in export or client_ns in export or ("." in export and ns == client_ns)


# -- validation done when a VS is used --------------------------------------------------------------


def _validate_weights(vs: K8sObject) -> None:
    """routing-semantics §2.8: >= 2 destinations whose weights add up to 0 are rejected by Istio."""
    for section in ("http", "tcp", "tls"):
        for i, rule in enumerate(vs.spec.get(section) or []):
            route = rule.get("route") or []
            if len(route) > 1 and sum(d.get("weight") or 0 for d in route) == 0:
                raise vs.error(f"{section}[{i}]: total destination weight = 0 ({len(route)} destinations, none "
                               "with a weight > 0); Istio rejects this, it is not an equal split",
                               ("spec", section, i, "route"))


def _tcp_only(vs: K8sObject) -> RulesError:
    return vs.error("has no http rules, only tcp/tls ones: Envoy picks their destination per TCP connection, "
                    "not per request (routing-semantics §2.9), so respy cannot predict a per-request split")


# -- walking the rules --------------------------------------------------------------------------------


def _rule_list(ctx: Context, vss: Sequence[K8sObject]) -> list[tuple[K8sObject, int, Mapping[str, Any]]]:
    rules = [(vs, i, rule) for vs in vss for i, rule in enumerate(vs.spec.get("http") or [])]
    if len(vss) > 1:
        # routing-semantics §2.4: at a gateway VSs are merged, order across them undefined, catch-alls last
        ctx.warn("several VirtualServices cover this host at the gateway: their relative order is undefined ("
                 + ", ".join(ctx.ref(vs) for vs in vss) + ")")
        rules.sort(key=lambda item: _is_catch_all(item[2]))
    return rules


def _is_catch_all(rule: Mapping[str, Any]) -> bool:
    matches = rule.get("match")
    if not matches:
        return True
    return any(_block_is_catch_all(m) for m in matches)


def _block_is_catch_all(block: Mapping[str, Any]) -> bool:
    rest = {k: v for k, v in block.items() if k not in ("name", "uri")}
    uri = block.get("uri")
    return not rest and (uri is None or uri in ({"prefix": "/"}, {"regex": ".*"}))


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
    """routing-semantics §2.6: the delegate's rules replace the root rule in place (one level only)."""
    ref = rule["delegate"]
    name, ns = ref.get("name"), ref.get("namespace") or root.ns(ctx.namespace)
    for vs in ctx.rules.of_kind("VirtualService"):
        if vs.name == name and vs.ns(ctx.namespace) == ns:
            _validate_weights(vs)
            for i, sub in enumerate(vs.spec.get("http") or []):
                blocks = sub.get("match") or [None]
                if any(_block_matches(ctx, vs, b, ("spec", "http", i, "match", j)) for j, b in enumerate(blocks)):
                    return RuleHit(vs, i, sub, f"{chain} -> {ctx.ref(vs)}, http[{i}]")
            return None
    raise root.error(f"delegate VirtualService {ns}/{name} is not among the inputs")


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
    if not ctx.vantage.bound_by(list(block.get("gateways") or _top_gateways(vs)), ns):
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
        # the whole Service is the destination: its name names it (an answer "productpage: v1" is productpage's)
        return Candidate((host, None, port), short, host, share, (short,), source=source)
    subset = str(subset)
    labels = _subset_labels(ctx, vs, host, subset, used)
    if labels is None:
        # routing-semantics §2.7: undefined subset -> that share gets 503 (NC, cluster not found)
        ctx.warn(f"{ctx.ref(vs)}: subset {subset!r} of {host} is not defined by any DestinationRule given (IST0101): "
                 "its share answers 503")
        return status_outcome(503, f"subset {subset} of {short} not defined", share, source)
    ids = (subset, *labels.values(), *host_ids)
    return Candidate((host, subset, port), subset, f"{short}/{subset}", share, ids, source=source)


def _subset_labels(ctx: Context, vs: K8sObject, host: str, subset: str,
                   used: list[K8sObject]) -> dict[str, str] | None:
    subsets = ctx.subsets(host)
    if subsets is None:
        ctx.warn(f"no DestinationRule for {host} among the inputs: subset names are taken on trust "
                 "(a subset no DestinationRule defines answers 503)")
        return {}
    for dr in ctx.rules.of_kind("DestinationRule"):
        if dr not in used and any(s.get("name") == subset for s in dr.spec.get("subsets") or []) \
                and host_rank(rule_host(dr.spec["host"], dr.ns(ctx.namespace)), (host,)):
            used.append(dr)
    return subsets.get(subset)


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
    elif abort.get("percent") is not None:  # the deprecated int field of v1alpha3
        value = abort["percent"]
    else:
        ctx.warn(f"{ctx.ref(vs)}: fault.abort without percentage.value: no request is aborted (taken as 0%)")
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise vs.error(f"fault abort percentage must be a number from 0 to 100, not {value!r}", path)
    return float(value) / 100.0


def _int(vs: K8sObject, value: Any, path: tuple[str | int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise vs.error(f"HTTP status must be an integer from 100 to 599, not {value!r}", path)
    return value
