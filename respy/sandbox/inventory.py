"""What istiod's service registry would hold for the inputs: Services, their ports' protocols, workloads.

A sidecar is programmed from the registry, not from the routing YAML alone, so the sandbox needs one. Objects
that are given (Service, Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod) are used as they are; what the
routing names but the inputs do not define is made up, and each made-up thing is listed in ``assumptions``:

- a host a route or rule names with no Service among the inputs becomes a Service with the ``default_port``
  (and every port a destination names for it);
- a host whose routes name subsets, with no DestinationRule for it among the inputs, gets one subset per name,
  selecting the label ``version: <subset>``;
- a Service whose pods are not among the inputs gets one workload per DestinationRule subset (labelled as the
  subset selects), or one workload when no subset names it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from respy.rules import K8sObject, RuleSet, destination_rule

CLUSTER_DOMAIN = "cluster.local"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
# pkg/config/protocol/instance.go: the protocols istiod parses from a port name (prefix before the first "-")
HTTP_PROTOCOLS = frozenset({"http", "http2", "grpc", "grpc-web"})
KNOWN_PROTOCOLS = HTTP_PROTOCOLS | {"https", "tcp", "tls", "mongo", "redis", "mysql", "udp", "hbone"}
# pkg/config/kube/conversion.go wellKnownPorts: SMTP, DNS, MySQL, MongoDB default to TCP when the name says nothing
WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})
VIP_BASE = ipaddress.ip_address("127.1.0.1")


@dataclass(frozen=True)
class ServicePort:
    number: int
    name: str
    protocol: str  # "http" (HTTP family), "sniffed" (istiod detects per connection) or an L4 protocol

    @property
    def routes_http(self) -> bool:
        """Istio >= 1.3: HTTP ports and sniffed ports both get HTTP routing (Protocol.IsHTTPOrSniffed)."""
        return self.protocol in ("http", "sniffed")


@dataclass
class Service:
    name: str
    namespace: str
    ports: list[ServicePort]
    selector: dict[str, str] | None
    vip: str

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.number == number), None)


@dataclass(frozen=True)
class Workload:
    """A set of pods with the same labels; the sandbox runs one backend for it."""

    name: str
    namespace: str
    labels: Mapping[str, str]

    @property
    def version(self) -> str:
        return self.labels.get("version") or self.name


@dataclass
class Inventory:
    services: dict[str, Service] = field(default_factory=dict)  # by FQDN
    workloads: list[Workload] = field(default_factory=list)
    subsets: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # FQDN -> subset -> labels
    assumptions: list[str] = field(default_factory=list)

    def endpoints(self, service: Service, subset_labels: Mapping[str, str] | None = None) -> list[Workload]:
        """The workloads behind a Service (and a subset of it): the pods its selector and the subset select."""
        if service.selector is None:
            return []
        wanted = {**service.selector, **(subset_labels or {})}
        return [w for w in self.workloads if w.namespace == service.namespace and _selects(wanted, w.labels)]


def protocol_of(number: int, name: str, app_protocol: str | None) -> str:
    """pkg/config/kube/conversion.go ConvertProtocol: appProtocol wins, else the name's prefix before '-'."""
    text = (app_protocol or name or "").lower()
    if text in ("kubernetes.io/h2c", "kubernetes.io/ws"):
        return "http"
    if text.startswith("grpc-web"):
        return "http"
    prefix = text.split("-", 1)[0]
    if prefix in HTTP_PROTOCOLS:
        return "http"
    if prefix in KNOWN_PROTOCOLS:
        return prefix
    return "tcp" if number in WELL_KNOWN_TCP_PORTS else "sniffed"


def fqdn(host: str, namespace: str) -> str:
    """pilot/pkg/model/config.go ResolveShortnameToFQDN: a name without a dot is short for ``<name>.<ns>.svc``."""
    host = host.lower().rstrip(".")
    if host.startswith("*") or "." in host or _is_ip(host):
        return host
    return f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}"


def build_inventory(rules: RuleSet, namespace: str, default_port: int) -> Inventory:
    inventory = Inventory()
    vips = _vips()
    for obj in rules.of_kind("Service"):
        service = _service(obj, namespace, next(vips))
        inventory.services[service.fqdn] = service
    inventory.workloads = [w for obj in rules.objects for w in _workloads(obj, namespace)]
    wanted = _named_hosts(rules, namespace)
    for host, ports in wanted.items():
        _ensure_service(inventory, host, ports or {default_port}, next(vips))
    inventory.subsets = subsets_by_host(rules, namespace, inventory.services)
    _ensure_subsets(inventory, _named_subsets(rules, namespace))
    for service in inventory.services.values():
        _ensure_workloads(inventory, service, inventory.subsets.get(service.fqdn, {}))
    return inventory


def subsets_by_host(rules: RuleSet, namespace: str,
                    services: Iterable[str] = ()) -> dict[str, dict[str, dict[str, str]]]:
    """FQDN -> subset -> labels of the DestinationRule the client in ``namespace`` uses for each Service (and each
    host a DestinationRule names): istiod's lookup and merge (``rules.destination_rule``; cluster_builder.go builds
    a subset cluster per subset of that rule only)."""
    drs = rules.of_kind("DestinationRule")
    hosts = [*services, *(fqdn(str(dr.spec.get("host", "")), dr.ns(namespace)) for dr in drs)]
    out: dict[str, dict[str, dict[str, str]]] = {}
    for host in dict.fromkeys(h for h in hosts if not h.startswith("*")):
        merged = destination_rule(drs, host, client_namespace=namespace, default_namespace=namespace)
        if merged is not None:
            out[host] = merged.subsets
    return out


def _vips() -> Iterator[str]:
    """Each Service gets its own loopback address, as each gets its own ClusterIP in a cluster."""
    index = 0
    while True:
        yield str(VIP_BASE + index)
        index += 1


def _service(obj: K8sObject, namespace: str, vip: str) -> Service:
    ports = []
    for port in obj.spec.get("ports") or []:
        if not isinstance(port, Mapping) or not isinstance(port.get("port"), int):
            continue
        if str(port.get("protocol", "TCP")).upper() == "UDP":
            continue
        name = str(port.get("name") or "")
        app_protocol = port.get("appProtocol")
        ports.append(ServicePort(port["port"], name, protocol_of(port["port"], name, app_protocol)))
    selector = obj.spec.get("selector")
    labels = {str(k): str(v) for k, v in selector.items()} if isinstance(selector, Mapping) else None
    return Service(obj.name, obj.ns(namespace), ports, labels, vip)


def _workloads(obj: K8sObject, namespace: str) -> Iterator[Workload]:
    if obj.kind == "Pod":
        labels = (obj.body.get("metadata") or {}).get("labels") or {}
    elif obj.kind in WORKLOAD_KINDS:
        labels = ((obj.spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    else:
        return
    if isinstance(labels, Mapping) and labels:
        yield Workload(obj.name, obj.ns(namespace), {str(k): str(v) for k, v in labels.items()})


def _named_hosts(rules: RuleSet, namespace: str) -> dict[str, set[int]]:
    """Every cluster-local host the routing names, with the ports it names for it."""
    hosts: dict[str, set[int]] = {}

    def add(host: str, port: Any = None) -> None:
        if host.startswith("*") or _is_ip(host) or not host.endswith(f".svc.{CLUSTER_DOMAIN}"):
            return
        ports = hosts.setdefault(host, set())
        if isinstance(port, int) and not isinstance(port, bool):
            ports.add(port)

    for vs in rules.of_kind("VirtualService"):
        ns = vs.ns(namespace)
        for host in vs.spec.get("hosts") or []:
            add(fqdn(host, ns))
        for section in ("http", "tcp", "tls"):
            for rule in vs.spec.get(section) or []:
                for dest in rule.get("route") or []:
                    target = dest.get("destination") or {}
                    if isinstance(target.get("host"), str):
                        add(fqdn(target["host"], ns), (target.get("port") or {}).get("number"))
    for route in rules.of_kind("HTTPRoute", "GRPCRoute"):
        ns = route.ns(namespace)
        for ref in route.spec.get("parentRefs") or []:
            if ref.get("kind") == "Service":
                add(fqdn(str(ref.get("name")), str(ref.get("namespace") or ns)), ref.get("port"))
        for rule in route.spec.get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if ref.get("kind", "Service") == "Service":
                    add(fqdn(str(ref.get("name")), str(ref.get("namespace") or ns)), ref.get("port"))
    return hosts


def _named_subsets(rules: RuleSet, namespace: str) -> dict[str, list[str]]:
    """FQDN -> the subset names VirtualService destinations use for it."""
    out: dict[str, list[str]] = {}
    for vs in rules.of_kind("VirtualService"):
        ns = vs.ns(namespace)
        for section in ("http", "tcp", "tls"):
            for rule in vs.spec.get(section) or []:
                for dest in rule.get("route") or []:
                    target = dest.get("destination") or {}
                    if isinstance(target.get("host"), str) and target.get("subset"):
                        names = out.setdefault(fqdn(target["host"], ns), [])
                        if str(target["subset"]) not in names:
                            names.append(str(target["subset"]))
    return out


def _ensure_subsets(inventory: Inventory, named: Mapping[str, list[str]]) -> None:
    for host, names in named.items():
        if host in inventory.subsets:
            continue  # a DestinationRule is given: a subset it does not define stays undefined (503, as in Istio)
        inventory.subsets[host] = {name: {"version": name} for name in names}
        inventory.assumptions.append(f"no DestinationRule for {host} given: assumed subsets "
                                     f"{', '.join(names)} selecting version=<subset>")


def _ensure_service(inventory: Inventory, host: str, ports: Iterable[int], vip: str) -> None:
    existing = inventory.services.get(host)
    if existing is not None:
        return
    name, namespace = host.split(".")[:2]
    made = [ServicePort(p, "http", "http") for p in sorted(ports)]
    inventory.services[host] = Service(name, namespace, made, {"app": name}, vip)
    listed = ", ".join(str(p.number) for p in made)
    inventory.assumptions.append(f"no Service {namespace}/{name} given: assumed one with HTTP port(s) {listed}")


def _ensure_workloads(inventory: Inventory, service: Service, subsets: Mapping[str, Mapping[str, str]]) -> None:
    if service.selector is None or inventory.endpoints(service):
        return
    made: list[Workload] = []
    for subset, labels in subsets.items():
        merged = {**service.selector, **labels}
        if not any(_selects(merged, w.labels) for w in made):
            made.append(Workload(f"{service.name}-{subset}", service.namespace, merged))
    if not made:
        made.append(Workload(service.name, service.namespace, dict(service.selector)))
    inventory.workloads.extend(made)
    versions = ", ".join(w.version for w in made)
    inventory.assumptions.append(f"no pods of {service.namespace}/{service.name} given: assumed one backend per "
                                 f"version ({versions})")


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
