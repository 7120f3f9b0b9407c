"""Findings on routing manifests: what in them breaks (or may break) a traffic split, and how to fix it.

Each check mirrors an ``istioctl analyze`` analyzer where one exists (shared/notes/routing-semantics.md §5.1)
and reads only the objects given: checks that need a kind of object (Services, workloads, Gateways,
DestinationRules) stay silent when none of that kind was supplied, so a partial set of files does not
drown the user in "not found".
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from respy.rules import (
    L4_PROTOCOLS,
    SNIFFING,
    WORKLOAD_KINDS,
    IstioVersion,
    K8sObject,
    RuleSet,
    backend_weight,
    binds_mesh,
    destination_rule,
    has,
    hosts_overlap,
    is_catch_all_block,
    is_partial_service_name,
    pod_labels,
    port_protocol,
    replicas,
    request_names,
    rule_host,
    selects,
    semantics,
    service_exports,
    service_fqdn,
    short_host,
    sidecar_problems,
    unknown_fields,
    visible,
)

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_RANK = {ERROR: 0, WARNING: 1, INFO: 2}
ISTIO_GROUP = "networking.istio.io"
CONTROL_PLANE_ISTIO_LABELS = {"pilot", "istiod", "ingressgateway", "egressgateway", "eastwestgateway"}
MAP_MATCHES = ("headers", "withoutHeaders", "queryParams", "sourceLabels")
MANAGED_LABELS = ("gateway.istio.io/managed", "gateway.networking.k8s.io/gateway-name", "istio.io/gateway-name")


@dataclass(frozen=True)
class Finding:
    """One problem found in the manifests. ``hosts`` (FQDNs it bears on) drives ``analyze(host=...)``."""

    code: str
    istio_code: str | None
    severity: str
    object: str
    where: str
    message: str
    why: str
    fix: str
    hosts: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "istio_code": self.istio_code,
            "severity": self.severity,
            "object": self.object,
            "where": self.where,
            "message": self.message,
            "why": self.why,
            "fix": self.fix,
        }

    @property
    def is_problem(self) -> bool:
        """An error or a warning: what makes ``respy analyze`` exit 1."""
        return self.severity in (ERROR, WARNING)


def analyze(rules: RuleSet, *, host: str | None = None, namespace: str = "default",
            istio_version: IstioVersion | None = None) -> list[Finding]:
    """Every finding on ``rules``, worst first; with ``host``, only those that bear on that host.

    ``namespace`` stands for objects whose manifest sets none (as ``kubectl apply -n`` would);
    ``istio_version`` judges behaviours that changed between releases (None: today's Istio).
    """
    index = Inputs(rules, namespace, istio_version)
    findings = [finding for check in CHECKS for finding in check(index)]
    if host is not None:
        names = _names_of(host, namespace)
        # a bare "*" host (a gateway catch-all) is not taken to bear on every host
        findings = [f for f in findings if any(hosts_overlap(h, n) for h in f.hosts if h != "*" for n in names)]
    return sorted(findings, key=_order)


def _order(finding: Finding) -> tuple[int, str, int, str]:
    file, _, line = finding.where.rpartition(":")
    if not line.isdigit():
        file, line = finding.where, "0"
    return SEVERITY_RANK[finding.severity], file, int(line), finding.code


def _names_of(host: str, namespace: str) -> tuple[str, ...]:
    bare = host.lower().rstrip(".")
    if ":" in bare and not bare.startswith("["):
        bare = bare.rpartition(":")[0]
    return request_names(bare, namespace)


# ---------------------------------------------------------------------------------------------------
# the inputs, indexed


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _map(value).items()}


@dataclass(frozen=True)
class Dest:
    """One destination of a VirtualService route (or a mirror), with the host as istiod reads it."""

    vs: K8sObject
    section: str
    rule: int
    path: tuple[str | int, ...]
    host: str
    subset: str | None
    port: int | None
    mirror: bool
    weighted: bool  # its rule splits traffic between >= 2 destinations of weight > 0


class Inputs:
    """The supplied objects by kind, with the look-ups the checks share."""

    def __init__(self, rules: RuleSet, namespace: str, istio_version: IstioVersion | None = None) -> None:
        self.rules = rules
        self.namespace = namespace
        self.istio_version = istio_version
        self.services = rules.of_kind("Service")
        self.entries = rules.of_kind("ServiceEntry")
        self.workloads = rules.of_kind(*WORKLOAD_KINDS)
        self.drs = rules.of_kind("DestinationRule")
        self.vss = rules.of_kind("VirtualService")
        self.routes = rules.of_kind("HTTPRoute", "GRPCRoute")
        self.gateways = [g for g in rules.of_kind("Gateway") if g.group == ISTIO_GROUP]
        self.by_fqdn = {self.fqdn(s): s for s in self.services}
        self.dests = [d for vs in self.vss for d in _vs_dests(vs, self.ns(vs))]

    def ns(self, obj: K8sObject) -> str:
        return obj.ns(self.namespace)

    def fqdn(self, service: K8sObject) -> str:
        return service_fqdn(service.name, self.ns(service))

    def vs_hosts(self, vs: K8sObject) -> tuple[str, ...]:
        return tuple(rule_host(h, self.ns(vs)) for h in _list(vs.spec.get("hosts")) if isinstance(h, str))

    def subsets(self, host: str, client_namespace: str | None = None) -> dict[str, dict[str, str]] | None:
        """Subset name -> labels of the DestinationRule a client in ``client_namespace`` uses for ``host``
        (Istio's merge and lookup order: ``destination_rules.destination_rule``); ``None`` when none covers it."""
        dr = destination_rule(self.drs, host, client_namespace=client_namespace or self.namespace,
                              default_namespace=self.namespace)
        return dr.subsets if dr is not None else None

    def templates(self, namespace: str, selector: Mapping[str, str]) -> list[tuple[K8sObject, dict[str, str]]]:
        """Workloads in ``namespace`` whose pod labels carry ``selector``, with those labels."""
        found = []
        for workload in self.workloads:
            labels = pod_labels(workload)
            if self.ns(workload) == namespace and selects(selector, labels):
                found.append((workload, labels))
        return found

    def host_known(self, host: str, from_namespaces: Iterable[str]) -> bool:
        spaces = list(from_namespaces)
        service = self.by_fqdn.get(host)
        if service is not None and all(visible(service_exports(service), self.ns(service), n) for n in spaces):
            return True
        for entry in self.entries:
            exports = _strings(entry.spec.get("exportTo"))
            if not all(visible(exports, self.ns(entry), n) for n in spaces):
                continue
            if any(hosts_overlap(rule_host(h, self.ns(entry)), host) for h in _strings(entry.spec.get("hosts"))):
                return True
        return False


def _strings(value: Any) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]


def _export_scope(vs: K8sObject, namespace: str) -> str:
    exports = _strings(vs.spec.get("exportTo"))
    if not exports or "*" in exports:
        return "*"
    return ",".join(sorted({namespace if e == "." else e for e in exports}))


def _vs_dests(vs: K8sObject, namespace: str) -> Iterator[Dest]:
    for section in ("http", "tcp", "tls"):
        for i, rule in enumerate(_list(vs.spec.get(section))):
            if isinstance(rule, Mapping):
                yield from _rule_dests(vs, namespace, section, i, rule)


def _rule_dests(vs: K8sObject, namespace: str, section: str, i: int, rule: Mapping[str, Any]) -> Iterator[Dest]:
    route = [d for d in _list(rule.get("route")) if isinstance(d, Mapping)]
    weighted = sum(1 for d in route if _int(d.get("weight")) > 0) >= 2
    base: tuple[str | int, ...] = ("spec", section, i)
    for k, item in enumerate(route):
        yield _dest(vs, namespace, section, i, (*base, "route", k, "destination"), item.get("destination"),
                    mirror=False, weighted=weighted)
    if section != "http":
        return
    if isinstance(rule.get("mirror"), Mapping):
        yield _dest(vs, namespace, section, i, (*base, "mirror"), rule["mirror"], mirror=True, weighted=False)
    for k, item in enumerate(_list(rule.get("mirrors"))):
        yield _dest(vs, namespace, section, i, (*base, "mirrors", k, "destination"), _map(item).get("destination"),
                    mirror=True, weighted=False)


def _dest(vs: K8sObject, namespace: str, section: str, i: int, path: tuple[str | int, ...], target: Any, *,
          mirror: bool, weighted: bool) -> Dest:
    target = _map(target)
    raw = target.get("host")
    port = _map(target.get("port")).get("number")
    return Dest(
        vs=vs, section=section, rule=i, path=path, mirror=mirror, weighted=weighted,
        host=rule_host(raw, namespace) if isinstance(raw, str) and raw else "",
        subset=str(target["subset"]) if target.get("subset") else None,
        port=port if isinstance(port, int) and not isinstance(port, bool) else None,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _where(obj: K8sObject, path: Sequence[str | int] = ()) -> str:
    line = obj.line_of(path)
    return f"{obj.file}:{line}" if line else obj.file


def _ref(index: Inputs, obj: K8sObject) -> str:
    return f"{obj.kind} {index.ns(obj)}/{obj.name}"


# ---------------------------------------------------------------------------------------------------
# Service ports (IST0118 / IST0150) and HTTP rules on L4 ports


def _skipped_service(service: K8sObject, namespace: str) -> bool:
    """Istio control-plane, gateway-managed and waypoint Services, which istioctl's PortNameAnalyzer skips."""
    labels = _labels(_map(service.body.get("metadata")).get("labels"))
    if any(key in labels for key in MANAGED_LABELS):
        return True
    return namespace == "istio-system" and (labels.get("istio") in CONTROL_PLANE_ISTIO_LABELS
                                            or labels.get("app") == "istiod")


def _weighted_targets(index: Inputs) -> dict[str, list[tuple[K8sObject, int | None]]]:
    """Service FQDN -> (route, port or None) for every rule that splits traffic by weight to it."""
    targets: dict[str, list[tuple[K8sObject, int | None]]] = defaultdict(list)
    for dest in index.dests:
        if dest.weighted and dest.section == "http":
            targets[dest.host].append((dest.vs, dest.port))
    for route in index.routes:
        for rule in _list(route.spec.get("rules")):
            refs = [r for r in _list(_map(rule).get("backendRefs")) if isinstance(r, Mapping)]
            if sum(1 for r in refs if backend_weight(r) > 0) < 2:
                continue
            for ref in [*refs, *_service_parents(route)]:
                if ref.get("kind", "Service") == "Service" and isinstance(ref.get("name"), str):
                    fqdn = service_fqdn(ref["name"], str(ref.get("namespace") or index.ns(route)))
                    targets[fqdn].append((route, _int(ref.get("port")) or None))
    return targets


def _service_parents(route: K8sObject) -> list[Mapping[str, Any]]:
    return [p for p in _list(route.spec.get("parentRefs")) if isinstance(p, Mapping) and p.get("kind") == "Service"]


def check_port_names(index: Inputs) -> Iterator[Finding]:
    targets = _weighted_targets(index)
    for service in index.services:
        ns = index.ns(service)
        if _skipped_service(service, ns):
            continue
        fqdn = index.fqdn(service)
        for i, port in enumerate(_list(service.spec.get("ports"))):
            if not isinstance(port, Mapping):
                continue
            protocol = port_protocol(port)
            external = service.spec.get("type") == "ExternalName"
            if external and (not protocol or port.get("name") == "tcp"):
                yield _external_name_port(index, service, i, port, fqdn)
            elif not protocol and not external:
                routes = [r for r, p in targets.get(fqdn, []) if p in (None, port.get("port"))]
                yield _unnamed_port(index, service, i, port, fqdn, routes)


def _port_text(port: Mapping[str, Any]) -> str:
    number = port.get("port")
    name = port.get("name")
    app = port.get("appProtocol")
    if app:
        return f'port {number} has appProtocol "{app}"'
    return f'port {number} is named "{name}"' if name else f"port {number} has no name"


def _port_fix(port: Mapping[str, Any]) -> str:
    name = str(port.get("name") or "")
    new = f"http-{name}" if name else "http"
    verb = "rename it" if name else "name it"
    if port.get("appProtocol"):
        return 'set appProtocol: http (appProtocol wins over the port name)'
    return f'{verb} "{new}" or set appProtocol: http'


def _unnamed_port(index: Inputs, service: K8sObject, i: int, port: Mapping[str, Any], fqdn: str,
                  routes: list[K8sObject]) -> Finding:
    """IST0118 is Info, as istioctl reports it (``pkg/config/analysis/msg/messages.yaml``): since Istio 1.3 an
    unnamed port is sniffed and HTTP on it is routed by the HTTP table. Only for an older mesh
    (``--istio-version`` < 1.3), where such a port was plain TCP, does it break a weighted split."""
    text = f"{_port_text(port)}, which does not tell Istio it is HTTP"
    sniffed = has(index.istio_version, SNIFFING)
    if routes and not sniffed:
        names = ", ".join(dict.fromkeys(_ref(index, r) for r in routes))
        why = (f"{names} splits traffic to this Service by weight, and weights are HTTP routing. On Istio "
               f"{index.istio_version[0]}.{index.istio_version[1]} (before 1.3, no protocol sniffing) a port whose "
               "name names no protocol is plain TCP: the http routes and their weights are ignored and Kubernetes "
               "spreads connections over all pods (about an equal split across versions, by replica count)."
               if index.istio_version else "")
        return Finding("RSP001", "IST0118", WARNING, _ref(index, service), _where(service, ("spec", "ports", i)),
                       text, why, _port_fix(port), (fqdn,))
    why = ("Istio takes the protocol from the port name (or appProtocol); this one names none, so Istio sniffs it. "
           "Since Istio 1.3 sniffing detects HTTP and the http routes (weights, matches) apply; on Istio 1.1/1.2 "
           "the port was plain TCP and they did not. Naming it makes the protocol explicit.")
    if routes:
        why += " A weighted route targets it: " + ", ".join(dict.fromkeys(_ref(index, r) for r in routes)) + "."
    return Finding("RSP001", "IST0118", INFO, _ref(index, service), _where(service, ("spec", "ports", i)),
                   text, why, _port_fix(port), (fqdn,))


def _external_name_port(index: Inputs, service: K8sObject, i: int, port: Mapping[str, Any],
                        fqdn: str) -> Finding:
    return Finding(
        "RSP001", "IST0150", WARNING, _ref(index, service), _where(service, ("spec", "ports", i)),
        f"{_port_text(port)} on an ExternalName Service",
        "Istio treats an ExternalName Service whose port names no protocol (or is just \"tcp\") as TCP "
        "passthrough: HTTP routing rules, and their weights, do not apply to it.",
        _port_fix(port), (fqdn,),
    )


def check_l4_ports(index: Inputs) -> Iterator[Finding]:
    """A VirtualService with ``http`` rules for a Service whose every port Istio reads as TCP/TLS."""
    for vs in index.vss:
        if not _list(vs.spec.get("http")) or not binds_mesh(vs):
            continue
        for host in index.vs_hosts(vs):
            service = index.by_fqdn.get(host)
            if service is None:
                continue
            ports = [p for p in _list(service.spec.get("ports")) if isinstance(p, Mapping)]
            protocols = {port_protocol(p) for p in ports}
            if ports and protocols <= L4_PROTOCOLS:
                yield Finding(
                    "RSP002", None, WARNING, _ref(index, vs), _where(vs, ("spec", "http")),
                    f"has http rules for {short_host(host)}, whose Service ports Istio reads as "
                    f"{'/'.join(sorted(protocols))}",
                    f"Istio applies http rules only to HTTP ports; {_ref(index, service)} declares no HTTP port "
                    "(by name or appProtocol), so these rules and their weights are ignored and traffic is "
                    "balanced per connection over all pods.",
                    "name the port http-<name> (or set appProtocol: http), or route it with tcp rules",
                    (host,),
                )


# ---------------------------------------------------------------------------------------------------
# DestinationRule subsets (IST0101 subset, IST0173, IST0174)


def check_missing_subsets(index: Inputs) -> Iterator[Finding]:
    if not index.drs:
        return
    for dest in index.dests:
        if dest.subset is None or not dest.host:
            continue
        subsets = index.subsets(dest.host, index.ns(dest.vs))
        if subsets is not None and dest.subset in subsets:
            continue
        yield _missing_subset(index, dest, subsets)


def _missing_subset(index: Inputs, dest: Dest, subsets: dict[str, dict[str, str]] | None) -> Finding:
    short = short_host(dest.host)
    verb = "mirrors" if dest.mirror else "routes"
    defined = (f"the DestinationRules for it define {', '.join(sorted(subsets))}" if subsets
               else "no DestinationRule given is for this host")
    if dest.mirror:
        why = "Requests mirrored to an undefined subset go nowhere: the mirror silently receives no traffic."
    else:
        why = ("Istio builds no cluster for a subset that no DestinationRule defines, so this destination's share "
               "of requests answers 503 (NC, no cluster) instead of reaching a version.")
    return Finding(
        "RSP003", "IST0101", ERROR, _ref(index, dest.vs), _where(dest.vs, dest.path),
        f'{verb} to subset "{dest.subset}" of {short}, which no DestinationRule defines ({defined})',
        why,
        f'add subset "{dest.subset}" (with the version labels of its pods) to the DestinationRule for {short}, '
        "or route to a subset that exists",
        (*index.vs_hosts(dest.vs), dest.host),
    )


def check_subsets_without_pods(index: Inputs) -> Iterator[Finding]:
    routed = {(d.host, d.subset) for d in index.dests if d.subset}
    for dr in index.drs:
        host = rule_host(dr.spec["host"], index.ns(dr))
        service = index.by_fqdn.get(host)
        selector = _labels(service.spec.get("selector")) if service is not None else {}
        if service is None or not selector:
            continue
        templates = index.templates(index.ns(service), selector)
        for i, subset in enumerate(_list(dr.spec.get("subsets"))):
            name, labels = str(subset.get("name")), _labels(subset.get("labels"))
            if any(selects(labels, pod) for _, pod in templates):
                continue
            # with pods to check against, an unused subset changes no split: report it only when routed to
            # (or when no route was given at all, as istioctl does)
            if index.workloads and index.dests and (host, name) not in routed:
                continue
            yield _subset_without_pods(index, dr, i, name, labels, service, templates)


def _subset_without_pods(index: Inputs, dr: K8sObject, i: int, name: str, labels: dict[str, str],
                         service: K8sObject, templates: list[tuple[K8sObject, dict[str, str]]]) -> Finding:
    wanted = ", ".join(f"{k}={v}" for k, v in labels.items()) or "(no labels)"
    host = index.fqdn(service)
    where = _where(dr, ("spec", "subsets", i))
    fix = f'set the labels of subset "{name}" to those of an existing version, or deploy pods labelled {wanted}'
    if not index.workloads:
        return Finding(
            "RSP004", "IST0173", INFO, _ref(index, dr), where,
            f'subset "{name}" ({wanted}) cannot be checked against pods: no Deployment, StatefulSet or Pod was given',
            "If no pod of the Service carries these labels, the subset has no endpoints and its share of requests "
            "answers 503 (UH, no healthy upstream); istioctl analyze reports this against the cluster.",
            "pass the workloads' manifests too, or " + fix, (host,))
    found = _versions(labels, templates)
    exists = f"the pods of {_ref(index, service)} carry {found}" if found else (
        f"no workload given matches the selector of {_ref(index, service)}")
    return Finding(
        "RSP004", "IST0173", ERROR, _ref(index, dr), where,
        f'subset "{name}" ({wanted}) selects no pod among the workloads given; {exists}',
        "A subset without endpoints has no healthy upstream: the share of requests routed to it answers 503 (UH).",
        fix, (host,))


def _versions(labels: Mapping[str, str], templates: list[tuple[K8sObject, dict[str, str]]]) -> str:
    """``version=v1 (reviews-v1), version=v2 (reviews-v2)``: what the workloads carry for the subset's keys."""
    parts = []
    for workload, pod in templates:
        shown = ", ".join(f"{k}={pod[k]}" for k in labels if k in pod) or "none of these labels"
        parts.append(f"{shown} ({workload.name})")
    return "; ".join(dict.fromkeys(parts))


def check_unknown_dr_hosts(index: Inputs) -> Iterator[Finding]:
    if not index.services:
        return
    for dr in index.drs:
        host = rule_host(dr.spec["host"], index.ns(dr))
        if "*" in host or index.host_known(host, [index.ns(dr)]):
            continue
        yield Finding(
            "RSP005", "IST0174", WARNING, _ref(index, dr), _where(dr, ("spec", "host")),
            f"host {dr.spec['host']} ({host}) matches no Service or ServiceEntry given",
            "Istio ignores a DestinationRule for a host it does not know, so its subsets are undefined and routes "
            "to them answer 503. A short name is read in the DestinationRule's own namespace.",
            "fix the host (use the FQDN name.namespace.svc.cluster.local across namespaces)", (host,))


# ---------------------------------------------------------------------------------------------------
# route hosts and ports (IST0101 host, host:port; IST0112)


def check_route_hosts(index: Inputs) -> Iterator[Finding]:
    if not index.services:
        return
    for dest in index.dests:
        spaces = _export_namespaces(index, dest.vs)
        if not dest.host:
            yield _bad_host(index, dest, "has a route destination without a host")
        elif not index.host_known(dest.host, spaces):
            yield _bad_host(index, dest, f"{'mirrors' if dest.mirror else 'routes'} to host {dest.host}, "
                                         f"which matches no Service or ServiceEntry given (visible from "
                                         f"{', '.join(spaces)})")
        else:
            yield from _port_problems(index, dest)


def _export_namespaces(index: Inputs, vs: K8sObject) -> list[str]:
    own = index.ns(vs)
    exports = _strings(vs.spec.get("exportTo"))
    if not exports or "*" in exports:
        return [own]
    return list(dict.fromkeys(own if e == "." else e for e in exports))


def _bad_host(index: Inputs, dest: Dest, message: str) -> Finding:
    return Finding(
        "RSP006", "IST0101", ERROR, _ref(index, dest.vs), _where(dest.vs, dest.path), message,
        "A destination Istio cannot resolve has no endpoints: its share of requests fails (503) instead of "
        "reaching a version. Short names are read in the VirtualService's namespace; a name with a dot is taken "
        "as already complete (reviews.default is not reviews.default.svc.cluster.local).",
        "use the Service's FQDN (name.namespace.svc.cluster.local), or add a ServiceEntry for an external host",
        (*index.vs_hosts(dest.vs), dest.host) if dest.host else index.vs_hosts(dest.vs))


def _port_problems(index: Inputs, dest: Dest) -> Iterator[Finding]:
    service = index.by_fqdn.get(dest.host)
    if service is None:
        return
    numbers = [p.get("port") for p in _list(service.spec.get("ports")) if isinstance(p, Mapping)]
    hosts = (*index.vs_hosts(dest.vs), dest.host)
    if dest.port is not None and dest.port not in numbers:
        yield Finding(
            "RSP007", "IST0101", ERROR, _ref(index, dest.vs), _where(dest.vs, dest.path),
            f"routes to port {dest.port} of {short_host(dest.host)}, which exposes {_ports(numbers)}",
            "No cluster exists for a port the Service does not expose: this destination's share fails (503).",
            f"use one of the Service's ports ({_ports(numbers)})", hosts)
    elif dest.port is None and len(numbers) > 1:
        yield Finding(
            "RSP007", "IST0112", ERROR, _ref(index, dest.vs), _where(dest.vs, dest.path),
            f"routes to {short_host(dest.host)} without a port, but the Service exposes {_ports(numbers)}",
            "With several ports Istio picks the port the client called, which may not be the one you meant; "
            "istioctl requires destination.port here.",
            "set destination.port.number", hosts)


def _ports(numbers: Sequence[Any]) -> str:
    return ", ".join(str(n) for n in numbers) or "no ports"


# ---------------------------------------------------------------------------------------------------
# VirtualService structure (IST0109, IST0106, weights, IST0130/IST0131)


def check_duplicate_hosts(index: Inputs) -> Iterator[Finding]:
    claims: dict[tuple[str, str], list[K8sObject]] = defaultdict(list)
    for vs in index.vss:
        if not binds_mesh(vs):
            continue
        scope = _export_scope(vs, index.ns(vs))
        for host in dict.fromkeys(index.vs_hosts(vs)):
            claims[(scope, host)].append(vs)
    for (_, host), owners in claims.items():
        if len(owners) < 2:
            continue
        for vs in owners:
            others = [_ref(index, o) for o in owners if o is not vs]
            yield Finding(
                "RSP008", "IST0109", ERROR, _ref(index, vs), _where(vs, ("spec", "hosts")),
                f"claims host {host} for the mesh, as {', '.join(others)} {'does' if len(others) == 1 else 'do'}",
                "Sidecars apply only one VirtualService per host; which one is undefined, so the split you "
                "measure may come from the other one (its weights, or no split at all).",
                "merge them into one VirtualService for the host (or bind all but one to gateways only)", (host,))


def check_sidecars_without_selector(index: Inputs) -> Iterator[Finding]:
    """IST0111 MultipleSidecarsWithoutWorkloadSelectors: istiod uses the oldest (``push_context.go``
    ``doGetSidecarScope`` returns the first, sorted by creationTimestamp); respy reads the same one."""
    by_namespace: dict[str, list[K8sObject]] = defaultdict(list)
    for sidecar in index.rules.of_kind("Sidecar"):
        if not _map(sidecar.spec.get("workloadSelector")):
            by_namespace[index.ns(sidecar)].append(sidecar)
    for namespace, sidecars in by_namespace.items():
        if len(sidecars) < 2:
            continue
        names = ", ".join(_ref(index, s) for s in sidecars)
        for sidecar in sidecars:
            yield Finding(
                "RSP020", "IST0111", ERROR, _ref(index, sidecar), _where(sidecar, ("spec",)),
                f"is one of {len(sidecars)} Sidecars without a workloadSelector in namespace {namespace} ({names})",
                "Only one Sidecar scopes the namespace's pods (istiod takes the oldest): which VirtualServices "
                "their sidecars import, and so whether a split applies, depends on which one that is.",
                "merge them into one Sidecar for the namespace, or give all but one a workloadSelector")


def check_sidecar_validation(index: Inputs) -> Iterator[Finding]:
    """IST0106 SchemaValidationError for a Sidecar: Istio's validation refuses it (``sidecar_problems``), so it
    scopes no pod and every VirtualService stays visible, which its author did not mean."""
    for sidecar in index.rules.of_kind("Sidecar"):
        problems = sidecar_problems(sidecar)
        if problems:
            yield Finding(
                "RSP021", "IST0106", ERROR, _ref(index, sidecar), _where(sidecar, ("spec", "egress")),
                f"is refused by Istio's validation: {'; '.join(problems)}",
                "A refused Sidecar is never applied: its namespace's pods import every VirtualService (or the root "
                "namespace's Sidecar applies), not what it lists.",
                "write each egress host as namespace/FQDN (`./*`, `istio-system/*`, `prod/reviews.prod.svc.cluster."
                "local`), with the listener without a port last")


def check_weights(index: Inputs) -> Iterator[Finding]:
    for vs in index.vss:
        for section in ("http", "tcp", "tls"):
            for i, rule in enumerate(_list(vs.spec.get(section))):
                route = [d for d in _list(_map(rule).get("route")) if isinstance(d, Mapping)]
                if len(route) >= 2:
                    yield from _weight_problems(index, vs, ("spec", section, i), route)


def _weight_problems(index: Inputs, vs: K8sObject, path: tuple[str | int, ...],
                     route: list[Mapping[str, Any]]) -> Iterator[Finding]:
    weights = [_int(d.get("weight")) for d in route]
    hosts = index.vs_hosts(vs)
    rule = f"{path[1]}[{path[2]}]"
    negative = [w for w in weights if w < 0]
    if negative:
        yield Finding("RSP009", "IST0106", ERROR, _ref(index, vs), _where(vs, path),
                      f"{rule} has a negative weight ({negative[0]})",
                      "Istio rejects the VirtualService (\"weight < 0\"): none of its routing applies.",
                      "use weights >= 0", hosts)
    elif sum(weights) == 0:
        yield Finding("RSP009", "IST0106", ERROR, _ref(index, vs), _where(vs, path),
                      f"{rule} has {len(route)} destinations and no weight above 0",
                      "Istio rejects it (\"total destination weight = 0\"): an omitted weight is 0, not an equal "
                      "share, so the VirtualService is not applied at all.",
                      "give each destination its weight, e.g. 50 and 50", hosts)
    elif sum(weights) != 100:
        shares = "/".join(f"{100 * w / sum(weights):g}" for w in weights)
        yield Finding("RSP010", None, INFO, _ref(index, vs), _where(vs, path),
                      f"{rule} weights add up to {sum(weights)}, not 100 (relative shares {shares})",
                      "Since Istio 1.15 weights are relative (w / sum); Istio before 1.15 rejected a total other "
                      "than 100, so on an older mesh this VirtualService is not applied.",
                      "make the weights add up to 100", hosts)


def _match_key(match: Mapping[str, Any]) -> str:
    # istiod compares match blocks without their name (validation.go: asJSON)
    return json.dumps({k: v for k, v in match.items() if k != "name"}, sort_keys=True, default=str)


def check_unreachable_rules(index: Inputs) -> Iterator[Finding]:
    for vs in index.vss:
        for section in ("http", "tcp", "tls"):
            rules = [_map(r) for r in _list(vs.spec.get(section))]
            yield from _section_reachability(index, vs, section, rules)


def _section_reachability(index: Inputs, vs: K8sObject, section: str,
                          rules: list[Mapping[str, Any]]) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    earlier: list[Mapping[str, Any]] = []
    catch_all: int | None = None
    for i, rule in enumerate(rules):
        matches = [_map(m) for m in _list(rule.get("match"))]
        reason = _unreachable_reason(matches, seen, catch_all, section)
        if reason:
            yield _unreachable(index, vs, section, i, reason)
        else:
            yield from _ineffective(index, vs, section, i, matches, seen, earlier)
        for match in matches:
            seen.setdefault(_match_key(match), i)
        earlier.extend(matches)
        if catch_all is None and (not matches or (section == "http" and any(map(is_catch_all_block, matches)))):
            catch_all = i


def _unreachable_reason(matches: list[Mapping[str, Any]], seen: Mapping[str, int], catch_all: int | None,
                        section: str) -> str:
    if catch_all is not None:
        return f"{section}[{catch_all}] before it matches every request"
    if matches and all(_match_key(m) in seen for m in matches):
        rules = sorted({seen[_match_key(m)] for m in matches})
        return "all its matches are used by " + ", ".join(f"{section}[{r}]" for r in rules)
    return ""


def _unreachable(index: Inputs, vs: K8sObject, section: str, i: int, reason: str) -> Finding:
    return Finding(
        "RSP011", "IST0130", WARNING, _ref(index, vs), _where(vs, ("spec", section, i)),
        f"{section}[{i}] can never match: {reason}",
        "The first matching rule wins, so this rule (and any split it declares) never applies; requests you "
        "meant for it follow the earlier rule.",
        "move the more specific rule before the catch-all, or remove the duplicate", index.vs_hosts(vs))


def _ineffective(index: Inputs, vs: K8sObject, section: str, i: int, matches: list[Mapping[str, Any]],
                 seen: Mapping[str, int], earlier: list[Mapping[str, Any]]) -> Iterator[Finding]:
    for j, match in enumerate(matches):
        if _match_key(match) in seen:
            by = f"{section}[{seen[_match_key(match)]}]"
        elif section == "http" and (cover := _covering_prefix(match, [*earlier, *matches[:j]])):
            by = f'the earlier prefix "{cover}"'
        else:
            continue
        yield Finding(
            "RSP012", "IST0131", INFO, _ref(index, vs), _where(vs, ("spec", section, i, "match", j)),
            f"{section}[{i}] match {j} never decides anything: {by} already matches those requests",
            "Requests it describes are taken by an earlier match; the rule still applies through its other matches.",
            "remove the shadowed match, or move it before the broader one", index.vs_hosts(vs))


def _covering_prefix(match: Mapping[str, Any], earlier: list[Mapping[str, Any]]) -> str | None:
    prefix = _map(match.get("uri")).get("prefix")
    if not isinstance(prefix, str):
        return None
    rest = {k: v for k, v in match.items() if k not in ("name", "uri")}
    for other in earlier:
        other_prefix = _map(other.get("uri")).get("prefix")
        other_rest = {k: v for k, v in other.items() if k not in ("name", "uri")}
        if isinstance(other_prefix, str) and prefix.startswith(other_prefix) and _looser(other_rest, rest):
            return other_prefix
    return None


def _looser(broad: Mapping[str, Any], narrow: Mapping[str, Any]) -> bool:
    """Whether every condition of ``broad`` is also in ``narrow`` (so ``broad`` matches at least as much)."""
    for key, value in broad.items():
        other = narrow.get(key)
        if key in MAP_MATCHES and isinstance(value, Mapping) and isinstance(other, Mapping):
            if any(other.get(k) != v for k, v in value.items()):
                return False
        elif other != value:
            return False
    return True


# ---------------------------------------------------------------------------------------------------
# gateways (IST0101 gateway, IST0132) and Gateway API weights


def check_gateways(index: Inputs) -> Iterator[Finding]:
    if not index.gateways:
        return
    known = {(index.ns(g), g.name): g for g in index.gateways}
    for vs in index.vss:
        ns = index.ns(vs)
        for i, ref in enumerate(_strings(vs.spec.get("gateways"))):
            if ref == "mesh":
                continue
            gw_ns, _, name = ref.rpartition("/")
            gateway = known.get((gw_ns or ns, name))
            if gateway is None:
                yield _gateway_missing(index, vs, i, ref)
            elif not _gateway_accepts(index, gateway, vs):
                yield _gateway_host_missing(index, vs, i, gateway)


def _gateway_missing(index: Inputs, vs: K8sObject, i: int, ref: str) -> Finding:
    return Finding(
        "RSP013", "IST0101", ERROR, _ref(index, vs), _where(vs, ("spec", "gateways", i)),
        f'is bound to gateway "{ref}", which is not among the Gateways given',
        "A VirtualService bound only to gateways that do not exist applies nowhere: no request follows its routes.",
        "fix the gateway name (namespace/name for a Gateway in another namespace)", index.vs_hosts(vs))


def _gateway_accepts(index: Inputs, gateway: K8sObject, vs: K8sObject) -> bool:
    vs_ns = index.ns(vs)
    vs_hosts = [str(h).lower() for h in _strings(vs.spec.get("hosts"))]
    for server in _list(gateway.spec.get("servers")):
        for entry in _strings(_map(server).get("hosts")):
            scope, _, pattern = entry.rpartition("/")
            if scope not in ("", "*") and (index.ns(gateway) if scope == "." else scope) != vs_ns:
                continue
            if any(hosts_overlap(pattern, h) for h in vs_hosts):
                return True
    return False


def _gateway_host_missing(index: Inputs, vs: K8sObject, i: int, gateway: K8sObject) -> Finding:
    hosts = ", ".join(_strings(vs.spec.get("hosts"))) or "(none)"
    return Finding(
        "RSP014", "IST0132", WARNING, _ref(index, vs), _where(vs, ("spec", "gateways", i)),
        f"none of its hosts ({hosts}) is accepted by any server of {_ref(index, gateway)}",
        "The gateway only hands requests for its servers' hosts to VirtualServices, so this one never applies "
        "there: its routes and weights are not used for requests entering through that gateway.",
        f"add the host to a server of {gateway.name}, or change the VirtualService's hosts", index.vs_hosts(vs))


def check_route_zero_weights(index: Inputs) -> Iterator[Finding]:
    for route in index.routes:
        for i, rule in enumerate(_list(route.spec.get("rules"))):
            refs = [r for r in _list(_map(rule).get("backendRefs")) if isinstance(r, Mapping)]
            if refs and all(backend_weight(r) == 0 for r in refs) and not _has_redirect(rule):
                yield _zero_route(index, route, i, len(refs))


def _has_redirect(rule: Any) -> bool:
    return any(_map(f).get("type") == "RequestRedirect" for f in _list(_map(rule).get("filters")))


def _zero_route(index: Inputs, route: K8sObject, i: int, count: int) -> Finding:
    hosts = [service_fqdn(str(p["name"]), str(p.get("namespace") or index.ns(route)))
             for p in _service_parents(route) if isinstance(p.get("name"), str)]
    hosts += [str(h).lower() for h in _strings(route.spec.get("hostnames"))]
    return Finding(
        "RSP015", None, ERROR, _ref(index, route), _where(route, ("spec", "rules", i, "backendRefs")),
        f"rules[{i}] gives all {count} backends weight 0",
        "With no backend of weight > 0, the Gateway API says every matching request gets HTTP 500 (Istio turns "
        "the rule into a direct 500 response).",
        "give at least one backend a weight above 0 (an omitted weight is 1)", tuple(hosts))


def check_partial_hosts(index: Inputs) -> Iterator[Finding]:
    """A VirtualService host with a dot that is not a full Service name (``reviews.default``): istiod does not
    expand it (``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN``), so it names no Service."""
    for vs in index.vss:
        for i, host in enumerate(_strings(vs.spec.get("hosts"))):
            if is_partial_service_name(host.lower()):
                name, ns = host.split(".")[:2]
                yield Finding(
                    "RSP016", "IST0101", WARNING, _ref(index, vs), _where(vs, ("spec", "hosts", i)),
                    f"host {host} is not a Service name: istiod does not expand a name with a dot",
                    "Only a short name (no dot) is completed to name.namespace.svc.cluster.local; reviews.default "
                    "matches no Service, so sidecars on the Service's port never use this VirtualService.",
                    f"write {name}.{ns}.svc.cluster.local (or the short name {name} in namespace {ns})",
                    (host.lower(), service_fqdn(name, ns)))


def check_vs_fields(index: Inputs) -> Iterator[Finding]:
    """Fields Istio refuses (an ``http2Error`` abort) or ignores (unknown and removed fields)."""
    for vs in index.vss:
        for i, rule in enumerate(_list(vs.spec.get("http"))):
            abort = _map(_map(_map(rule).get("fault")).get("abort"))
            if "http2Error" in abort:
                yield Finding(
                    "RSP017", "IST0106", ERROR, _ref(index, vs), _where(vs, ("spec", "http", i, "fault", "abort")),
                    f"http[{i}] aborts with http2Error",
                    "Istio's validation refuses it (\"HTTP/2 abort fault injection not supported yet\", "
                    "validation.go validateHTTPFaultInjectionAbort): the whole VirtualService is not applied.",
                    "abort with httpStatus (or grpcStatus) instead", index.vs_hosts(vs))
        for message in unknown_fields(vs):
            yield Finding("RSP018", "IST0133", WARNING, _ref(index, vs), _where(vs, ("spec",)), message,
                          "Istio ignores fields its API does not have: what they seem to say does not happen.",
                          "remove the field, or use the field the API has", index.vs_hosts(vs))


def check_route_backends(index: Inputs) -> Iterator[Finding]:
    """HTTPRoute backends Istio drops (``conversion.go`` ``buildDestination``): a Service not among those given,
    or one in another namespace without a ReferenceGrant when the route is attached to a Gateway."""
    if not index.services:
        return
    known = {(index.ns(s), s.name) for s in index.services}
    for route in index.routes:
        at_gateway = any(p.get("kind", "Gateway") == "Gateway" for p in _list(route.spec.get("parentRefs"))
                         if isinstance(p, Mapping))
        for i, rule in enumerate(_list(route.spec.get("rules"))):
            for k, ref in enumerate(_list(_map(rule).get("backendRefs"))):
                if not isinstance(ref, Mapping) or ref.get("kind", "Service") != "Service":
                    continue
                ns = str(ref.get("namespace") or index.ns(route))
                why = ""
                if (ns, str(ref.get("name"))) not in known:
                    why = f"backend Service {ns}/{ref.get('name')} is not among the Services given"
                elif at_gateway and ns != index.ns(route) and not _granted(index, route, ns, ref):
                    why = f"backend {ns}/{ref.get('name')} is in another namespace and no ReferenceGrant allows it"
                if why:
                    yield Finding(
                        "RSP019", None, ERROR, _ref(index, route),
                        _where(route, ("spec", "rules", i, "backendRefs", k)), f"rules[{i}]: {why}",
                        "Istio drops an invalid backend and answers 500 for its share of requests (503 before "
                        "Istio 1.15); the other backends keep theirs.",
                        "fix the backend's name or namespace, or add a ReferenceGrant in its namespace",
                        tuple(str(h).lower() for h in _strings(route.spec.get("hostnames"))))


def _granted(index: Inputs, route: K8sObject, namespace: str, ref: Mapping[str, Any]) -> bool:
    return semantics.reference_granted(index.rules.of_kind("ReferenceGrant"), route, target_namespace=namespace,
                                       kind="Service", group=str(ref.get("group", "")), name=str(ref.get("name")),
                                       default_namespace=index.namespace)


CHECKS = (
    check_port_names,
    check_route_backends,
    check_partial_hosts,
    check_vs_fields,
    check_l4_ports,
    check_missing_subsets,
    check_subsets_without_pods,
    check_unknown_dr_hosts,
    check_route_hosts,
    check_duplicate_hosts,
    check_sidecars_without_selector,
    check_sidecar_validation,
    check_weights,
    check_unreachable_rules,
    check_gateways,
    check_route_zero_weights,
)

__all__ = ["ERROR", "INFO", "WARNING", "Finding", "Inputs", "analyze", "pod_labels", "port_protocol",
           "replicas"]
