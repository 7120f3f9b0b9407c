"""Istio's and the Gateway API's lookup rules, decided once for the resolver, ``analyze`` and the diagnosis.

Host names, visibility (``exportTo``), catch-all matches, HTTPRoute default weights, a Service port's
protocol, and what changed between Istio releases (which DestinationRule a client uses: ``destination_rules``).
Each function cites where istiod decides the same thing (istio/istio @86c9f01f unless said otherwise).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from respy._errors import UsageError

if TYPE_CHECKING:
    from respy.rules.load import K8sObject

CLUSTER_DOMAIN = "cluster.local"
ROOT_NAMESPACE = "istio-system"  # meshConfig.rootNamespace's default

# -- Istio versions --------------------------------------------------------------------------------------

IstioVersion = tuple[int, int]

# Behaviours that changed between releases: the first release that has today's behaviour.
SNIFFING = (1, 3)  # outbound protocol sniffing: an unnamed port's HTTP is routed by the HTTP table
INVALID_BACKEND_500 = (1, 15)  # an invalid HTTPRoute backendRef answers 500 for its share
PREFIX_SLASH_TIE = (1, 18)  # PathPrefix "/shop/" ranks as "/shop" (conversion.go createURIMatch)
GAMMA_CONSUMER = (1, 19)  # GAMMA consumer routes and parentRef ports


def parse_istio_version(text: str) -> IstioVersion:
    """``1.2``, ``1.22.3`` or ``v1.19`` -> ``(1, 2)``; a one-line ``UsageError`` otherwise."""
    parts = text.strip().lstrip("vV").split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise UsageError(f"--istio-version {text!r}: expected MAJOR.MINOR, e.g. 1.22")
    return int(parts[0]), int(parts[1])


def has(version: IstioVersion | None, since: IstioVersion) -> bool:
    """Whether a mesh of ``version`` behaves as Istio has since ``since`` (unknown version: today's Istio)."""
    return version is None or version >= since


def version_text(version: IstioVersion | None) -> str:
    return "current Istio" if version is None else f"Istio {version[0]}.{version[1]}"


# -- host names ------------------------------------------------------------------------------------------


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def rule_host(host: str, namespace: str) -> str:
    """How istiod reads a host in a rule (``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN``).

    ``*`` and IPs stay; a name with a dot is taken as already complete (``reviews.default`` is NOT expanded
    and matches no Service); a short name becomes ``<name>.<rule namespace>.svc.cluster.local``.
    """
    host = host.lower().rstrip(".")
    if host == "*" or "." in host or is_ip(host):
        return host
    return f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}"


def is_partial_service_name(host: str) -> bool:
    """``reviews.default`` or ``reviews.default.svc``: a dotted name istiod does not expand to the Service."""
    labels = host.split(".")
    return not host.endswith("." + CLUSTER_DOMAIN) and (len(labels) == 2 or (len(labels) == 3 and labels[2] == "svc"))


def request_names(host: str, client_namespace: str) -> tuple[str, ...]:
    """The names a client's DNS lookup of ``host`` can reach (Kubernetes search path).

    Istio's virtual host domains for a Service are its FQDN, ``name.ns.svc``, ``name.ns`` and (same namespace)
    ``name`` (``pilot/pkg/networking/core/httproute.go`` ``generateVirtualHostDomains``): every spelling of
    the Service reaches ``name.ns.svc.cluster.local``.
    """
    if is_ip(host):
        return (host,)
    names = [host]
    if not host.endswith("." + CLUSTER_DOMAIN):
        names += [f"{host}.{client_namespace}.svc.{CLUSTER_DOMAIN}", f"{host}.svc.{CLUSTER_DOMAIN}",
                  f"{host}.{CLUSTER_DOMAIN}"]
    return tuple(dict.fromkeys(names))


def host_rank(pattern: str, names: Sequence[str]) -> tuple[int, int] | None:
    """How well a (possibly wildcard) host pattern matches any of ``names``; ``None`` when it does not.

    Envoy picks the virtual host by exact > suffix wildcard > ``*``, longest first (``VirtualHost.domains``).
    """
    if pattern == "*":
        return (1, 0)
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return (2, len(pattern)) if any(n.endswith(suffix) and len(n) > len(suffix) for n in names) else None
    return (3, len(pattern)) if pattern in names else None


def hosts_overlap(a: str, b: str) -> bool:
    """Whether two host patterns can name the same host (``pkg/config/host/name.go`` ``Name.Matches``)."""
    a, b = a.lower(), b.lower()
    if a == b or a == "*" or b == "*":
        return True
    if a.startswith("*") and b.startswith("*"):
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if a.startswith("*"):
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return False


def host_intersection(a: str, b: str) -> str | None:
    """The more specific of two overlapping host patterns (``pkg/config/host/names.go`` ``Intersection``)."""
    if not hosts_overlap(a, b):
        return None
    if a.startswith("*") and not b.startswith("*"):
        return b
    if b.startswith("*") and not a.startswith("*"):
        return a
    return a if len(a) >= len(b) else b


def service_fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def short_host(host: str) -> str:
    """How people name a Service: ``reviews`` for ``reviews.ns.svc.cluster.local`` or ``reviews.ns.svc``."""
    labels = host.split(".")
    if len(labels) >= 3 and labels[2] == "svc" and (len(labels) == 3 or host.endswith(".svc." + CLUSTER_DOMAIN)):
        return labels[0]
    return host


def host_namespace(host: str) -> str | None:
    """The namespace a Service FQDN names (``reviews.prod.svc.cluster.local`` -> ``prod``)."""
    labels = host.split(".")
    return labels[1] if len(labels) >= 3 and labels[2] == "svc" else None


# -- visibility ------------------------------------------------------------------------------------------


def visible(exports: Iterable[str], own_namespace: str, namespace: str) -> bool:
    """Whether an object exported to ``exports`` is seen from ``namespace`` (``[]`` = everywhere).

    ``pilot/pkg/model/push_context.go`` (``initVirtualServices``, ``getExportedDestinationRuleFromNamespace``):
    ``*`` is public, ``.`` the object's own namespace, else a namespace name.
    """
    exports = list(exports)
    if not exports or "*" in exports:
        return True
    return any((own_namespace if e == "." else e) == namespace for e in exports)


def export_list(obj: K8sObject) -> list[str]:
    value = obj.spec.get("exportTo")
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def service_exports(service: K8sObject) -> list[str]:
    """A Service's ``networking.istio.io/exportTo`` annotation, as a list."""
    annotations = (service.body.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get("networking.istio.io/exportTo") if isinstance(annotations, Mapping) else None
    return [part.strip() for part in raw.split(",") if part.strip()] if isinstance(raw, str) else []


# -- VirtualService rules --------------------------------------------------------------------------------


def top_gateways(vs: K8sObject) -> list[str]:
    """``pilot/pkg/model/push_context.go`` ``getGatewayNames``: no gateways means ``[mesh]``."""
    value = vs.spec.get("gateways")
    return [g for g in value if isinstance(g, str)] if value else ["mesh"]


def binds_mesh(vs: K8sObject) -> bool:
    return "mesh" in top_gateways(vs)


def is_catch_all_block(block: Mapping[str, Any]) -> bool:
    """A match block that matches every request: nothing but ``uri: {prefix: /}`` or ``{regex: .*}``.

    ``pilot/pkg/networking/core/route/route.go`` ``IsCatchAllRoute`` (no header or query match, prefix ``/``
    or regex ``.*``); ``SortVHostRoutes`` moves such routes last when gateway VirtualServices merge.
    """
    rest = {k: v for k, v in block.items() if k not in ("name", "uri", "ignoreUriCase")}
    uri = block.get("uri")
    return not rest and (not uri or uri in ({"prefix": "/"}, {"regex": ".*"}))


def is_catch_all_rule(rule: Mapping[str, Any]) -> bool:
    matches = rule.get("match")
    if not matches:
        return True
    return any(is_catch_all_block(m) for m in matches if isinstance(m, Mapping))


# Fields of the networking.istio.io API (istio/api networking/v1alpha3/virtual_service.proto): anything else is
# unknown or removed, and ignored by istiod.
VS_FIELDS = {
    "spec": {"hosts", "gateways", "http", "tls", "tcp", "exportTo"},
    "http": {"name", "match", "route", "redirect", "directResponse", "delegate", "rewrite", "timeout", "retries",
             "fault", "mirror", "mirrors", "mirrorPercent", "mirrorPercentage", "mirror_percent", "corsPolicy",
             "headers"},
    "match": {"name", "uri", "scheme", "method", "authority", "headers", "port", "sourceLabels", "gateways",
              "queryParams", "ignoreUriCase", "withoutHeaders", "sourceNamespace", "statPrefix"},
    "route": {"destination", "weight", "headers"},
    "destination": {"host", "subset", "port"},
    "fault": {"delay", "abort"},
    "abort": {"httpStatus", "grpcStatus", "http2Error", "percentage"},
}
VS_REMOVED_FIELDS = {("abort", "percent"): "abort.percent was removed from the API (a reserved field): use "
                                        "percentage.value; istiod ignores it"}

def unknown_fields(vs: K8sObject) -> list[str]:
    """Fields the VirtualService API does not have (misspelt, or removed like ``abort.percent``)."""
    found = [f"unknown field spec.{k}: ignored by Istio" for k in vs.spec if k not in VS_FIELDS["spec"]]
    for i, rule in enumerate(vs.spec.get("http") or []):
        found += _unknown(rule, "http", f"http[{i}]")
        for j, block in enumerate(rule.get("match") or []):
            found += _unknown(block, "match", f"http[{i}].match[{j}]")
        for k, dest in enumerate(rule.get("route") or []):
            found += _unknown(dest, "route", f"http[{i}].route[{k}]")
            found += _unknown(dest.get("destination"), "destination", f"http[{i}].route[{k}].destination")
        fault = rule.get("fault")
        found += _unknown(fault, "fault", f"http[{i}].fault")
        if isinstance(fault, Mapping):
            found += _unknown(fault.get("abort"), "abort", f"http[{i}].fault.abort")
    return found


def _unknown(value: Any, kind: str, where: str) -> list[str]:
    if not isinstance(value, Mapping):
        return []
    out = []
    for key in value:
        if key in VS_FIELDS[kind]:
            continue
        removed = VS_REMOVED_FIELDS.get((kind, str(key)))
        out.append(f"{where}: {removed}" if removed else f"unknown field {where}.{key}: ignored by Istio")
    return out


# -- HTTPRoute -------------------------------------------------------------------------------------------


def backend_weight(ref: Mapping[str, Any]) -> int:
    """An HTTPRoute backendRef's weight: omitted means 1 (``conversion.go`` ``buildHTTPDestination``)."""
    weight = ref.get("weight")
    if weight is None:
        return 1
    return weight if isinstance(weight, int) and not isinstance(weight, bool) else 0


def reference_granted(grants: Sequence[K8sObject], route: K8sObject, *, target_namespace: str, kind: str,
                      group: str, name: str, default_namespace: str) -> bool:
    """Whether a ReferenceGrant in ``target_namespace`` lets ``route`` refer to that object (GEP-709;
    ``pilot/pkg/config/kube/gateway/conversion.go`` ``buildDestination`` asks ``Grants.BackendAllowed``)."""
    route_ns = route.ns(default_namespace)
    for grant in grants:
        if grant.ns(default_namespace) != target_namespace:
            continue
        froms = [f for f in grant.spec.get("from") or [] if isinstance(f, Mapping)]
        tos = [t for t in grant.spec.get("to") or [] if isinstance(t, Mapping)]
        if any(f.get("kind") == route.kind and f.get("namespace") == route_ns for f in froms) \
                and any(t.get("kind") == kind and t.get("group", "") == group and t.get("name") in (None, name)
                        for t in tos):
            return True
    return False


# -- Service ports ---------------------------------------------------------------------------------------

# ``pkg/config/protocol/instance.go`` ``Parse``: the text before the first "-" of the port name (or appProtocol)
KNOWN_PROTOCOLS = {
    "tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP", "http_proxy": "HTTP_PROXY",
    "http2": "HTTP2", "https": "HTTPS", "tls": "TLS", "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL",
}
K8S_APP_PROTOCOLS = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP", "kubernetes.io/wss": "HTTPS"}
WELL_KNOWN_TCP_PORTS = {25, 53, 3306, 27017}
L4_PROTOCOLS = frozenset({"TCP", "TLS", "HTTPS", "Mongo", "Redis", "MySQL", "UDP"})


def port_protocol(port: Mapping[str, Any]) -> str:
    """Istio's protocol for a Service port (``pkg/config/kube/conversion.go`` ``ConvertProtocol``).

    ``""`` means unrecognised: sniffed (since Istio 1.3), so HTTP on it is routed by the HTTP table.
    """
    if str(port.get("protocol", "")).upper() == "UDP":
        return "UDP"
    name = str(port.get("appProtocol") or port.get("name") or "")
    if name in K8S_APP_PROTOCOLS:
        return K8S_APP_PROTOCOLS[name]
    if name.lower().startswith("grpc-web"):
        return "GRPC-Web"
    protocol = KNOWN_PROTOCOLS.get(name.partition("-")[0].lower(), "")
    if not protocol and port.get("port") in WELL_KNOWN_TCP_PORTS:
        return "TCP"
    return protocol


def http_routed(protocol: str, version: IstioVersion | None) -> bool:
    """Whether HTTP on a port of this protocol goes through the HTTP route table.

    An unrecognised protocol is sniffed since Istio 1.3: ``pilot/pkg/networking/core/listener.go``
    ``buildSidecarOutboundListener`` gives such a port an HTTP filter chain picked by the HTTP inspector, with
    a TCP fallthrough; before 1.3 it was plain TCP and ``http`` rules did not apply.
    """
    if protocol in L4_PROTOCOLS:
        return False
    return bool(protocol) or has(version, SNIFFING)


def service_port(service: K8sObject, number: int) -> Mapping[str, Any] | None:
    for port in service.spec.get("ports") or []:
        if isinstance(port, Mapping) and port.get("port") == number:
            return port
    return None
