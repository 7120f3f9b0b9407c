"""A VirtualService's ``http`` rules as Envoy routes, the way istiod translates them.

Source: istio/istio pilot/pkg/networking/core/route/route.go at 86c9f01f (BuildHTTPRoutesForVirtualService,
TranslateRoute, TranslateRouteMatch, applyHTTPRouteDestination, ApplyRedirect, ApplyDirectResponse,
TranslateFault, GetDestinationCluster, IsCatchAllRoute) and pilot/pkg/networking/util/util.go
(ConvertToEnvoyMatch, BuildConfigInfoMetadata). What istiod does and Envoy cannot show here (a retry budget
across pods, mTLS) is left out; what a rule asks for and this module cannot program is put in ``notes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

Json = dict[str, Any]
FAULT_FILTER = "envoy.filters.http.fault"  # wellknown.Fault
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
# route.go ApplyRedirect: the redirect codes Envoy's RedirectAction can send
REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER", 307: "TEMPORARY_REDIRECT",
                  308: "PERMANENT_REDIRECT"}
# the mesh's default HTTP retry policy (mesh.DefaultHttpRetryPolicy: 2 attempts; retry.ConvertPolicy)
DEFAULT_RETRY_POLICY: Json = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
    "host_selection_retry_max_attempts": "5",
    "retriable_status_codes": [503],
}
# fields of an HTTP rule that change answers but are not programmed here (listed, never silently dropped)
NOT_PROGRAMMED = ("corsPolicy", "mirror", "mirrors", "mirrorPercentage", "mirror_percent")


@dataclass(frozen=True)
class RuleSource:
    """The Istio config a route comes from, named as istiod names it in route metadata."""

    kind: str  # kebab-case, as gvk.KebabKind: virtual-service
    namespace: str
    name: str
    gateway_semantics: bool = False  # generated from a Gateway API route (model.UseGatewaySemantics)

    @property
    def config_path(self) -> str:
        """util.BuildConfigInfoMetadata: ``/apis/networking.istio.io/v1/namespaces/<ns>/virtual-service/<name>``."""
        return f"/apis/networking.istio.io/v1/namespaces/{self.namespace}/{self.kind}/{self.name}"


@dataclass
class RouteContext:
    """What translating one VirtualService on one port needs from the registry around it."""

    source: RuleSource
    listen_port: int
    gateway_names: frozenset[str]  # "mesh" for a sidecar, else the gateway's "<ns>/<name>"
    client_namespace: str
    cluster_for: Callable[[Mapping[str, Any], int], str]  # GetDestinationCluster
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        text = f"{self.source.kind} {self.source.namespace}/{self.source.name}: {message}"
        if text not in self.notes:
            self.notes.append(text)


def http_routes(rules: Sequence[Mapping[str, Any]], ctx: RouteContext) -> list[Json]:
    """route.go BuildHTTPRoutesForVirtualService: rules in order, one Envoy route per match; a catch-all ends it."""
    out: list[Json] = []
    for index, rule in enumerate(rules):
        matches = rule.get("match") or []
        catch_all = not matches
        for match in matches or [None]:
            route = translate_route(rule, match, index, ctx)
            if route is None:
                continue
            out.append(route)
            if match is not None and is_catch_all(route):
                # "Routes are matched in order, so we will never go beyond this match"
                catch_all = True
                break
        if catch_all:
            break
    return out


def translate_route(rule: Mapping[str, Any], match: Mapping[str, Any] | None, index: int,
                    ctx: RouteContext) -> Json | None:
    """route.go TranslateRoute (``None`` where the match is for another port, source or gateway)."""
    if match is not None and match.get("port") and match["port"] != ctx.listen_port:
        return None
    if not _source_matches(match, ctx):
        return None
    for key in NOT_PROGRAMMED:
        if rule.get(key) is not None:
            ctx.note(f"http[{index}].{key} is not programmed in the sandbox (it does not change which destination "
                     "answers)")
    envoy_match = translate_match(match, ctx)
    if envoy_match is None:
        return None
    route: Json = {"match": envoy_match, "metadata": {"filter_metadata": {"istio": {"config": ctx.source.config_path}}}}
    name = str(rule.get("name") or "")
    if match is not None and match.get("name"):
        name = f"{name}.{match['name']}"
    if name:
        route["name"] = name
    if rule.get("redirect") is not None:
        if not _apply_redirect(route, rule["redirect"], ctx, index):
            return None
    elif rule.get("directResponse") is not None:
        _apply_direct_response(route, rule["directResponse"])
    elif rule.get("route"):
        if not _apply_destination(route, rule, ctx, index):
            return None
    else:
        ctx.note(f"http[{index}] has no route, redirect or directResponse: not programmed")
        return None
    route["decorator"] = {"operation": _operation(route, ctx)}
    fault = translate_fault(rule.get("fault"), ctx, index)
    if fault is not None:
        route["typed_per_filter_config"] = {FAULT_FILTER: fault}
    _headers(route, rule.get("headers"))
    return route


def _source_matches(match: Mapping[str, Any] | None, ctx: RouteContext) -> bool:
    """route.go sourceMatchHTTP: match.gateways, else sourceLabels (the sandbox's client has none) and namespace."""
    if match is None:
        return True
    gateways = match.get("gateways") or []
    if gateways:
        return any(_gateway_ref(g, ctx.source.namespace) in ctx.gateway_names for g in gateways)
    if match.get("sourceLabels"):
        ctx.note(f"a match on sourceLabels {dict(match['sourceLabels'])}: the sandbox's client has no labels, so "
                 "this match is left out, as istiod leaves it out for a proxy whose labels differ")
        return False
    source_ns = match.get("sourceNamespace")
    return not source_ns or source_ns == ctx.client_namespace


def _gateway_ref(name: str, namespace: str) -> str:
    if name == "mesh":
        return name
    return name if "/" in name else f"{namespace}/{name}"


def translate_match(match: Mapping[str, Any] | None, ctx: RouteContext) -> Json | None:
    """route.go TranslateRouteMatch."""
    out: Json = {"prefix": "/"}
    if match is None:
        out["case_sensitive"] = True
        return out
    headers: list[Json] = []
    for name, spec in (match.get("headers") or {}).items():
        headers.append(header_matcher(str(name), spec, ctx))
    for name, spec in (match.get("withoutHeaders") or {}).items():
        matcher = header_matcher(str(name), spec, ctx)
        matcher["invert_match"] = True
        if not _is_presence(spec):  # treat_missing_header_as_empty conflicts with present_match
            matcher["treat_missing_header_as_empty"] = True
        headers.append(matcher)
    headers.sort(key=lambda h: h["name"])  # "guarantee ordering of headers"
    uri = match.get("uri")
    if isinstance(uri, Mapping) and uri:
        path = _path_specifier(uri, ctx)
        if path is None:
            return None
        out = path
    out["case_sensitive"] = not bool(match.get("ignoreUriCase"))
    for key, pseudo in (("method", ":method"), ("authority", ":authority"), ("scheme", ":scheme")):
        if match.get(key) is not None:
            headers.append(header_matcher(pseudo, match[key], ctx))
    if headers:
        out["headers"] = headers
    params = [query_matcher(str(name), spec, ctx) for name, spec in (match.get("queryParams") or {}).items()]
    if params:
        out["query_parameters"] = params
    if any(m.get("unprogrammable") for m in [*headers, *params]):
        return None
    return out


def _path_specifier(uri: Mapping[str, Any], ctx: RouteContext) -> Json | None:
    if "exact" in uri:
        return {"path": str(uri["exact"])}
    if "prefix" in uri:
        prefix = str(uri["prefix"])
        if ctx.source.gateway_semantics and prefix != "/":
            return {"path_separated_prefix": prefix.rstrip("/")}
        return {"prefix": prefix}
    if "regex" in uri:
        regex = _checked_regex(str(uri["regex"]), ctx)
        return None if regex is None else {"safe_regex": {"regex": regex}}
    return {"prefix": "/"}


def _is_presence(spec: Any) -> bool:
    """route.go canBeConvertedToPresentMatch: no match type, or ``regex: "*"``."""
    if not isinstance(spec, Mapping) or not any(k in spec for k in ("exact", "prefix", "regex")):
        return True
    return spec.get("regex") == "*"


def string_matcher(spec: Mapping[str, Any], ctx: RouteContext) -> Json | None:
    """util.go ConvertToEnvoyMatch."""
    if "exact" in spec:
        return {"exact": str(spec["exact"])}
    if "prefix" in spec:
        return {"prefix": str(spec["prefix"])}
    regex = _checked_regex(str(spec["regex"]), ctx)
    return None if regex is None else {"safe_regex": {"regex": regex}}


def header_matcher(name: str, spec: Any, ctx: RouteContext) -> Json:
    """route.go translateHeaderMatch (a regex RE2 refuses makes the whole match unprogrammable)."""
    if _is_presence(spec):
        return {"name": name, "present_match": True}
    matcher = string_matcher(spec, ctx)
    return {"name": name, "string_match": matcher} if matcher is not None else {"name": name, "unprogrammable": True}


def query_matcher(name: str, spec: Any, ctx: RouteContext) -> Json:
    """route.go translateQueryParamMatch."""
    if _is_presence(spec):
        return {"name": name, "present_match": True}
    matcher = string_matcher(spec, ctx)
    return {"name": name, "string_match": matcher} if matcher is not None else {"name": name, "unprogrammable": True}


def _checked_regex(regex: str, ctx: RouteContext) -> str | None:
    """Envoy compiles safe_regex with RE2 and refuses the whole configuration on an error: check it first."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr; the note says it
    try:
        re2.compile(regex, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        ctx.note(f"regex {regex!r} is not valid RE2 ({reason}): the match using it is not programmed")
        return None
    return regex


def is_catch_all(route: Mapping[str, Any]) -> bool:
    """route.go IsCatchAllRoute: prefix "/" (or regex ".*") with no header, query or metadata match."""
    match = route["match"]
    path_all = (match.get("prefix") == "/" or match.get("path_separated_prefix") == "/"
                or (match.get("safe_regex") or {}).get("regex") == ".*")
    return path_all and not match.get("headers") and not match.get("query_parameters")


# -- actions ------------------------------------------------------------------------------------------------


def _apply_destination(route: Json, rule: Mapping[str, Any], ctx: RouteContext, index: int) -> bool:
    """route.go applyHTTPRouteDestination (False: nothing Envoy would take, the rule is listed instead)."""
    action: Json = {"timeout": str(rule.get("timeout") or "0s")}
    if ctx.source.gateway_semantics:
        # "return 500 for invalid backends" (Gateway API)
        action["cluster_not_found_response_code"] = "INTERNAL_SERVER_ERROR"
    destinations = list(rule["route"])
    if len(destinations) == 1:
        action["cluster"] = ctx.cluster_for(destinations[0].get("destination") or {}, ctx.listen_port)
    else:
        # "Ignore 0 weighted clusters if there are other clusters in the route"
        weighted = [{"name": ctx.cluster_for(d.get("destination") or {}, ctx.listen_port), "weight": int(d["weight"])}
                    for d in destinations if d.get("weight")]
        if not weighted:
            ctx.note(f"http[{index}]: {len(destinations)} destinations and no weight > 0: Istio's validation rejects "
                     "this VirtualService, so it is not programmed")
            return False
        action["weighted_clusters"] = {"clusters": weighted}
    rewrite = rule.get("rewrite") or {}
    if rewrite.get("uri"):
        action["prefix_rewrite"] = str(rewrite["uri"])
    if rewrite.get("authority"):
        action["host_rewrite_literal"] = str(rewrite["authority"])
    action["retry_policy"] = _retry_policy(rule.get("retries"))
    action["max_grpc_timeout"] = action["timeout"]
    route["route"] = action
    return True


def _retry_policy(retries: Mapping[str, Any] | None) -> Json:
    """retry.ConvertPolicy: the VirtualService's retries, else the mesh default; ``attempts: 0`` turns them off."""
    if retries is None:
        return dict(DEFAULT_RETRY_POLICY)
    policy = dict(DEFAULT_RETRY_POLICY)
    policy["num_retries"] = int(retries.get("attempts") or 0)
    if retries.get("retryOn"):
        policy["retry_on"] = str(retries["retryOn"])
    if retries.get("perTryTimeout"):
        policy["per_try_timeout"] = str(retries["perTryTimeout"])
    return policy


def _apply_redirect(route: Json, redirect: Mapping[str, Any], ctx: RouteContext, index: int) -> bool:
    """route.go ApplyRedirect (a code Envoy cannot send leaves the route without an action: not programmed)."""
    code = int(redirect.get("redirectCode") or 301)
    if code not in REDIRECT_CODES:
        ctx.note(f"http[{index}].redirect: redirectCode {code} is not one Envoy can send; istiod leaves the route "
                 "without an action (not programmed)")
        return False
    action: Json = {"response_code": REDIRECT_CODES[code]}
    if redirect.get("authority"):
        action["host_redirect"] = str(redirect["authority"])
    if redirect.get("prefixRewrite"):
        action["prefix_rewrite"] = str(redirect["prefixRewrite"])
    elif redirect.get("uri"):
        action["path_redirect"] = str(redirect["uri"])
    if redirect.get("scheme"):
        action["scheme_redirect"] = str(redirect["scheme"])
    port = redirect.get("port")
    if redirect.get("derivePort") == "FROM_REQUEST_PORT":
        port = ctx.listen_port
    scheme = redirect.get("scheme") or "http"
    if port and not ((port == 80 and scheme == "http") or (port == 443 and scheme == "https")):
        action["port_redirect"] = int(port)
    route["redirect"] = action
    return True


def _apply_direct_response(route: Json, direct: Mapping[str, Any]) -> None:
    """route.go ApplyDirectResponse."""
    action: Json = {"status": int(direct.get("status") or 0)}
    body = direct.get("body") or {}
    if body.get("string") is not None:
        action["body"] = {"inline_string": str(body["string"])}
    elif body.get("bytes") is not None:
        action["body"] = {"inline_bytes": str(body["bytes"])}
    route["direct_response"] = action


def translate_fault(fault: Mapping[str, Any] | None, ctx: RouteContext, index: int) -> Json | None:
    """route.go TranslateFault (percentage.value -> numerator per million)."""
    if not fault:
        return None
    out: Json = {"@type": FAULT_TYPE}
    delay = fault.get("delay")
    if delay:
        if delay.get("fixedDelay"):
            out["delay"] = {"fixed_delay": str(delay["fixedDelay"]), "percentage": _percentage(delay)}
        else:
            ctx.note(f"http[{index}].fault.delay: only fixedDelay is supported by istiod (exponential is dropped)")
    abort = fault.get("abort")
    if abort:
        if abort.get("httpStatus") is not None:
            out["abort"] = {"http_status": int(abort["httpStatus"])}
            if abort.get("percentage") is not None:  # istiod sets none otherwise: Envoy's default, 0 %
                out["abort"]["percentage"] = _fraction(abort["percentage"])
        elif abort.get("grpcStatus") is not None:
            ctx.note(f"http[{index}].fault.abort.grpcStatus is not programmed in the sandbox")
    return out if "delay" in out or "abort" in out else None


def _percentage(delay: Mapping[str, Any]) -> Json:
    if delay.get("percentage") is not None:
        return _fraction(delay["percentage"])
    return {"numerator": int(delay.get("percent") or 0), "denominator": "HUNDRED"}


def _fraction(percentage: Mapping[str, Any]) -> Json:
    """translatePercentToFractionalPercent."""
    return {"numerator": round(float(percentage.get("value") or 0) * 10000), "denominator": "MILLION"}


def _headers(route: Json, headers: Mapping[str, Any] | None) -> None:
    """route.go TranslateHeadersOperations (set = overwrite, add = append)."""
    if not headers:
        return
    for direction, prefix in (("request", "request"), ("response", "response")):
        ops = headers.get(direction) or {}
        adds = [{"header": {"key": str(k), "value": str(v)}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                for k, v in (ops.get("set") or {}).items()]
        adds += [{"header": {"key": str(k), "value": str(v)}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
                 for k, v in (ops.get("add") or {}).items()]
        if adds:
            route[f"{prefix}_headers_to_add"] = adds
        if ops.get("remove"):
            route[f"{prefix}_headers_to_remove"] = [str(h) for h in ops["remove"]]


def _operation(route: Mapping[str, Any], ctx: RouteContext) -> str:
    """route.go GetRouteOperation."""
    match = route["match"]
    path = "/*"
    if "prefix" in match:
        path = match["prefix"] + "*"
    elif "path" in match:
        path = match["path"]
    elif "safe_regex" in match:
        path = match["safe_regex"]["regex"]
    cluster = (route.get("route") or {}).get("cluster", "")
    parts = cluster.split("|")
    if len(parts) == 4:
        return f"{parts[3]}:{parts[1]}{path}"
    return f"{ctx.source.name}:{ctx.listen_port}{path}"
