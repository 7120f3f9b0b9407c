"""What every resolver needs to know about one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from respy.rules.destination_rules import MergedRule, destination_rule, has_workload_selector
from respy.rules.load import K8sObject, RuleSet
from respy.rules.request import Request, Vantage
from respy.rules.semantics import ROOT_NAMESPACE, IstioVersion, request_names, rule_host, service_fqdn
from respy.rules.sidecar_scope import client_scope, selector_sidecars, sidecar_problems
from respy.rules.workloads import Workload, workloads_of


@dataclass(frozen=True)
class HostHit:
    """A VirtualService or route whose hosts cover the request, and how specifically (``rank``, compared
    across VirtualServices and HTTPRoutes alike: the more specific host wins)."""

    rank: tuple[int, int]
    obj: K8sObject
    pattern: str


@dataclass
class Context:
    rules: RuleSet
    request: Request
    vantage: Vantage
    namespace: str  # the client's namespace, and the namespace of objects that set none
    warnings: list[str] = field(default_factory=list)
    istio_version: IstioVersion | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, ...]:
        """The names the request's Host can match a virtual host by.

        At a sidecar, every spelling the client's DNS search path gives (``request_names``). At a gateway only
        the Host as sent: its virtual hosts list each host exactly as the VirtualService gives it, short names
        made FQDNs (``pilot/pkg/networking/core/gateway.go`` ``buildGatewayHTTPRouteConfig``:
        ``Domains: []string{hostname.String()}``), so ``Host: reviews`` is no ``reviews.<ns>.svc.cluster.local``.
        """
        if not self.vantage.is_mesh:
            return (self.request.host,)
        return request_names(self.request.host, self.namespace)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def note(self, message: str) -> None:
        """A fact the expectation rests on, or one that was not available (shown, never a warning)."""
        if message not in self.notes:
            self.notes.append(message)

    def source(self, obj: K8sObject) -> str:
        return obj.describe(self.namespace)

    def ref(self, obj: K8sObject) -> str:
        return obj.ref_in(self.namespace)

    def check_sidecar_import(self, obj: K8sObject, hosts: list[str], *, gateway_semantics: bool = False) -> None:
        """Warn when the client's Sidecar resource does not import ``obj`` (a VirtualService, or an HTTPRoute as
        the VirtualService istiod makes of it: ``gateway_semantics``) with ``hosts`` (FQDNs): the client's sidecar
        gets no route from it (``sidecar_scope``). The declared split stays the expectation, so the check fails
        as the mesh does; the warning says why, and what to add."""
        for sidecar in self.rules.of_kind("Sidecar"):
            problems = sidecar_problems(sidecar) if sidecar.ns(self.namespace) in (self.namespace, ROOT_NAMESPACE) \
                else []
            if problems:
                self.warn(f"{self.ref(sidecar)} is refused by Istio's validation ({problems[0]}), so it is not "
                          "applied")
        for sidecar in selector_sidecars(self.rules, self.namespace):
            labels = dict((sidecar.spec.get("workloadSelector") or {}).get("labels") or {})
            self.warn(f"{self.ref(sidecar)} has a workloadSelector: it scopes only client pods with the labels "
                      f"{labels}, which respy does not know; it is not used")
        scope = client_scope(self.rules, self.namespace, self.request.port)
        namespace = obj.ns(self.namespace)
        if scope is None or scope.imports(namespace, hosts, gateway_semantics=gateway_semantics):
            return
        entries = ", ".join(f"{namespace}/{h}" for h in hosts)
        self.warn(f"{scope.describe(self.ref(scope.sidecar))} does not import {self.ref(obj)} for clients in "
                  f"namespace {self.namespace}: their sidecars get no route from it, so Kubernetes spreads the "
                  f"requests over the Service's pods whatever its weights say (add {entries} to the egress hosts); "
                  "the declared split stays the expectation")

    def destination_rule(self, host: str) -> MergedRule | None:
        """The DestinationRule the client uses for ``host``, merged as istiod merges several for one host
        (``destination_rules``: Istio's merge and lookup order)."""
        drs = self.rules.of_kind("DestinationRule")
        found = destination_rule(drs, host, client_namespace=self.namespace, default_namespace=self.namespace)
        for dr in drs:
            if has_workload_selector(dr) and dr.ns(self.namespace) == self.namespace \
                    and rule_host(str(dr.spec.get("host", "")), self.namespace) == host:
                self.warn(f"{self.ref(dr)} has a workloadSelector: it applies only to client pods with the labels "
                          f"{dict(dr.spec['workloadSelector'].get('matchLabels') or {})}, which respy does not know; "
                          "it is not used")
        if found is not None and len(found.rules) > 1:
            self.note(f"DestinationRules {', '.join(self.ref(dr) for dr in found.rules)} for {host} are merged as "
                      f"istiod merges them: the subsets of all, the trafficPolicy of {self.ref(found.first)}")
        return found

    def subsets(self, host: str) -> dict[str, dict[str, str]] | None:
        """Subset name -> labels of the DestinationRule the client uses for ``host``; ``None`` when none."""
        dr = self.destination_rule(host)
        return dr.subsets if dr is not None else None

    @cached_property
    def workloads(self) -> list[Workload]:
        return workloads_of(self.rules, self.namespace)

    def service(self, *hosts: str) -> K8sObject | None:
        """The Service whose FQDN is one of ``hosts``, when it was given."""
        for svc in self.rules.of_kind("Service"):
            if service_fqdn(svc.name, svc.ns(self.namespace)) in hosts:
                return svc
        return None
