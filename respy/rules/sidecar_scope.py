"""Which Sidecar resource scopes the client's proxy, and whether its egress hosts import a VirtualService.

istiod gives a sidecar proxy only the configuration its Sidecar resource imports (istio/istio @86c9f01f):

* which Sidecar: ``push_context.go`` ``doGetSidecarScope``: in the proxy's namespace, one whose
  ``workloadSelector`` matches the pod's labels, else the first without a selector (selector ones first, then by
  ``creationTimestamp``); else the root namespace's Sidecar without a selector (``meshRootSidecarConfig``),
  read with the *proxy's* namespace as its own (so ``./*`` there means the client's namespace); else none,
  and everything is imported. Gateways never use a Sidecar (``DefaultSidecarScopeForGateway``).
* which egress listener: ``sidecar.go`` ``GetEgressListenerForRDS``: the first whose port is the dialled one,
  or the first without a port (the catch-all); a Sidecar without ``egress`` imports ``*/*``.
* which hosts: ``convertIstioListenerToWrapper``: ``namespace/dnsName`` entries, ``.`` the proxy's namespace,
  ``*`` any; an entry whose namespace starts with ``~`` excludes (``~/*``: nothing is imported).
* which VirtualServices: ``virtualservice.go`` ``SelectVirtualServices``: a VirtualService in namespace N is
  imported when one of its hosts (as FQDNs) is listed for N or for ``*`` (``hostClassification.VSMatches``:
  exact names by equality, wildcards either way round, ``Name.Matches``) and not excluded there
  (``Excluded``: the host is a subset of an excluded name).

A VirtualService the Sidecar does not import gives the client's proxy no route: Kubernetes balances the
requests over the Service's pods whatever the weights say.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from respy.rules.destination_rules import creation_order, has_workload_selector
from respy.rules.load import K8sObject, RuleSet
from respy.rules.semantics import ROOT_NAMESPACE, hosts_overlap, rule_host

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # labels.IsDNS1123Label


@dataclass(frozen=True)
class _Imports:
    """One namespace's entries (``hostClassification``): names imported and names excluded."""

    names: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EgressScope:
    """The Sidecar that scopes a client in ``namespace``, and its egress hosts for the dialled port."""

    sidecar: K8sObject
    namespace: str  # the client's: what ``.`` names, also in the root namespace's Sidecar
    hosts: tuple[str, ...]  # the listener's ``hosts`` as written; () when no listener takes the port
    port: int | None = None

    def imports(self, namespace: str, hosts: Sequence[str], *, gateway_semantics: bool = False) -> bool:
        """Whether a VirtualService in ``namespace`` with ``hosts`` (FQDNs) is imported. ``gateway_semantics``:
        one istiod made of an HTTPRoute, whose hosts must each fall within an entry (``Name.SubsetOf``), where a
        VirtualService's wildcards may match either way round (``Name.Matches``)."""
        by_namespace = self._by_namespace()
        entries = [found for found in (by_namespace.get(namespace), by_namespace.get("*")) if found is not None]
        matches = _subset_matches if gateway_semantics else _vs_matches
        return any(any(matches(host, e.names) for e in entries) and not any(_excluded(host, e.excluded)
                                                                            for e in entries) for host in hosts)

    def describe(self, ref: str) -> str:
        """``Sidecar default/default (egress hosts istio-system/*)`` for messages."""
        if not self.hosts:
            return f"{ref} (no egress listener for port {self.port})"
        return f"{ref} (egress hosts {', '.join(self.hosts)})"

    def _by_namespace(self) -> dict[str, _Imports]:
        found: dict[str, _Imports] = {}
        for entry in self.hosts:
            if entry.count("/") != 1:
                continue  # istiod logs "Illegal host in sidecar resource" and skips it
            ns, name = entry.split("/")
            excluded = ns.startswith("~")
            if excluded:
                ns = ns[1:] or "*"
            ns = self.namespace if ns == "." else ns
            imports = found.setdefault(ns, _Imports())
            (imports.excluded if excluded else imports.names).append(name.lower())
        return found


def client_scope(rules: RuleSet, namespace: str, port: int | None,
                 root_namespace: str = ROOT_NAMESPACE) -> EgressScope | None:
    """The egress scope of a sidecar client in ``namespace`` dialling ``port`` (``None``: the catch-all
    listener), or ``None`` when no Sidecar applies (everything is imported). A Sidecar Istio's validation
    refuses (``sidecar_problems``) never reaches istiod, so it is not one that applies."""
    sidecars = [s for s in rules.of_kind("Sidecar") if not has_workload_selector(s) and not sidecar_problems(s)]
    plain = creation_order([s for s in sidecars if s.ns(namespace) == namespace], namespace)
    if not plain:
        plain = [s for s in sidecars if s.ns(namespace) == root_namespace]
    if not plain:
        return None
    sidecar = plain[0]
    return EgressScope(sidecar, namespace, _listener_hosts(sidecar.spec.get("egress"), port), port)


def sidecar_problems(sidecar: K8sObject) -> list[str]:
    """Why Istio's validation refuses a Sidecar's outbound side (``pkg/config/validation/validation.go``
    ``ValidateSidecar``, ``agent/validation.go`` ``ValidateNamespaceSlashWildcardHostname``); [] when it does not."""
    spec = sidecar.spec
    if not any(spec.get(key) for key in ("egress", "ingress", "outboundTrafficPolicy", "inboundConnectionPool")):
        return ["empty configuration provided"]
    egress = spec.get("egress") or []
    if not isinstance(egress, list):
        return ["egress must be a list of listeners"]
    problems: list[str] = []
    ports: set[int] = set()
    for index, listener in enumerate(egress):
        if not isinstance(listener, Mapping):
            problems.append("egress listener may not be null")
            continue
        port = listener.get("port")
        if not port:
            if index != len(egress) - 1:
                problems.append("the egress listener with empty port should be the last listener in the list")
        elif isinstance(port, Mapping) and isinstance(port.get("number"), int) and port["number"] > 0:
            if port["number"] in ports:
                problems.append("ports on IP bound listeners must be unique")
            ports.add(port["number"])
        hosts = listener.get("hosts") or []
        if not hosts:
            problems.append("egress listener must contain at least one host")
        problems += [f"egress host {h!r}: {why}" for h in hosts if (why := _host_problem(str(h)))]
    return problems


def _host_problem(entry: str) -> str | None:
    namespace, slash, name = entry.partition("/")
    if not slash:
        return "host must be of form namespace/dnsName"
    if not namespace or not name:
        return "config namespace and dnsName in host entry cannot be empty"
    bare = namespace.removeprefix("~")
    if bare not in ("", "*", ".") and not _DNS_LABEL.fullmatch(bare):
        return f"invalid namespace value {namespace!r}"
    if name != "*" and "." not in name:
        return "short names (non FQDN) are not allowed"
    if "*" in name and name != "*" and not name.startswith("*."):
        return f"partial wildcard {name!r} not allowed"
    return None


def selector_sidecars(rules: RuleSet, namespace: str) -> list[K8sObject]:
    """Sidecars in ``namespace`` with a ``workloadSelector``: they scope the client only if its pod has their
    labels, which respy does not know, so ``client_scope`` leaves them out."""
    return [s for s in rules.of_kind("Sidecar") if s.ns(namespace) == namespace and has_workload_selector(s)]


def _listener_hosts(egress: Any, port: int | None) -> tuple[str, ...]:
    if not egress:
        return ("*/*",)
    for listener in egress if isinstance(egress, list) else []:
        if not isinstance(listener, Mapping):
            continue
        number = (listener.get("port") or {}).get("number") if isinstance(listener.get("port"), Mapping) else None
        if number is None or (port is not None and number == port):
            return tuple(str(h) for h in listener.get("hosts") or [])
    return ()


def vs_hosts(vs: K8sObject, default_namespace: str) -> list[str]:
    """A VirtualService's hosts as istiod indexes them: short names made FQDNs in its namespace."""
    ns = vs.ns(default_namespace)
    return [rule_host(str(h), ns).lower() for h in vs.spec.get("hosts") or []]


def _vs_matches(host: str, names: Sequence[str]) -> bool:
    if host in names:
        return True
    wild = host.startswith("*")
    return any((wild or name.startswith("*")) and hosts_overlap(host, name) for name in names)


def _subset_matches(host: str, names: Sequence[str]) -> bool:
    return any(_subset_of(host, name) for name in names)


def _excluded(host: str, excluded: Sequence[str]) -> bool:
    return any(_subset_of(host, name) for name in excluded)


def _subset_of(host: str, pattern: str) -> bool:
    """``Name.SubsetOf``: every name ``host`` matches is matched by ``pattern``."""
    if pattern == "*" or host == pattern:
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return False
