"""Every route and endpoint of a config dump, in the rows ``istioctl proxy-config`` prints.

Follows istioctl (istio/istio istioctl/pkg/writer/envoy/configdump/route.go ``PrintRouteSummary`` with
``--name`` unset and verbose output; endpoint.go ``PrintEndpointsSummary``): RDS route configurations first,
then static ones; a route to ``PassthroughCluster`` is left out; a virtual host without routes shows ``/*``
and ``404``; domains are summarised by ``describeRouteDomains`` (no ``:port`` variants, ``.svc`` /
``.svc.cluster.local`` expansions folded, at most two then ``+ N more...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from respy.sidecar.dump import ConfigDump
from respy.sidecar.istio_names import PASSTHROUGH, route_source
from respy.sidecar.programmed import describe_match

MAX_DOMAINS = 2


@dataclass(frozen=True)
class RouteRow:
    name: str
    virtual_host: str
    domains: str
    match: str
    virtual_service: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "virtual_host": self.virtual_host, "domains": self.domains, "match": self.match,
                "virtual_service": self.virtual_service}


@dataclass(frozen=True)
class EndpointRow:
    address: str
    status: str
    cluster: str


def route_rows(dump: ConfigDump) -> list[RouteRow]:
    rows = []
    for config in _sorted_configs(dump):
        name = str(config.get("name", ""))
        for vhost in config.get("virtual_hosts", []) or []:
            vhost_name = str(vhost.get("name", ""))
            domains = describe_domains([str(d) for d in vhost.get("domains", []) or []])
            routes = vhost.get("routes", []) or []
            for route in routes:
                if _passthrough(route):
                    continue
                source = route_source(route)
                rows.append(RouteRow(name, vhost_name, domains, describe_match(route.get("match", {}) or {}),
                                     source.istioctl() if source else ""))
            if not routes:
                rows.append(RouteRow(name, vhost_name, domains, "/*", "404"))
    return rows


def _sorted_configs(dump: ConfigDump) -> list[Mapping[str, Any]]:
    """Numeric names (ports) in order, as istioctl sorts them; the others keep the dump's order."""
    named = list(dump.route_configs.values())
    numeric = sorted((c for c in named if str(c.get("name", "")).isdigit()), key=lambda c: int(c["name"]))
    others = [c for c in named if not str(c.get("name", "")).isdigit()]
    return [*numeric, *others, *dump.unnamed_route_configs]


def _passthrough(route: Mapping[str, Any]) -> bool:
    action = route.get("route")
    return isinstance(action, Mapping) and action.get("cluster") == PASSTHROUGH


def describe_domains(domains: list[str]) -> str:
    """istioctl's ``describeRouteDomains``."""
    if not domains:
        return ""
    if len(domains) == 1:
        return domains[0]
    without_port = [d for d in domains if ":" not in d or (d.count(":") > 2 and d.endswith("]"))]
    folded = _unexpand(without_port)
    if len(folded) > MAX_DOMAINS:
        return f"{', '.join(folded[:MAX_DOMAINS])} + {len(folded) - MAX_DOMAINS} more..."
    return ", ".join(folded)


def _unexpand(domains: list[str]) -> list[str]:
    present = set(domains)
    redundant = set()
    for domain in domains:
        for suffix in (".svc.cluster.local", ".svc"):
            stripped = domain.removesuffix(suffix)
            if stripped != domain and stripped in present:
                redundant.add(domain)
    return [d for d in domains if d not in redundant]


def endpoint_rows(dump: ConfigDump) -> list[EndpointRow]:
    rows = []
    for cluster, endpoints in (dump.endpoints or {}).items():
        for endpoint in endpoints:
            rows.append(EndpointRow(endpoint.address, endpoint.health or "UNKNOWN", cluster))
    return rows
