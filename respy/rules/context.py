"""What every resolver needs to know about one request."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from respy.rules.load import K8sObject, RuleSet
from respy.rules.request import Request, Vantage
from respy.rules.semantics import IstioVersion, destination_rule, request_names, service_fqdn, subsets_of
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

    def destination_rule(self, host: str) -> K8sObject | None:
        """The DestinationRule the client uses for ``host`` (semantics.destination_rule: Istio's lookup order)."""
        return destination_rule(self.rules.of_kind("DestinationRule"), host, client_namespace=self.namespace,
                                default_namespace=self.namespace)

    def subsets(self, host: str) -> dict[str, dict[str, str]] | None:
        """Subset name -> labels of the DestinationRule the client uses for ``host``; ``None`` when none."""
        dr = self.destination_rule(host)
        return subsets_of(dr) if dr is not None else None

    @cached_property
    def workloads(self) -> list[Workload]:
        return workloads_of(self.rules, self.namespace)

    def service(self, *hosts: str) -> K8sObject | None:
        """The Service whose FQDN is one of ``hosts``, when it was given."""
        for svc in self.rules.of_kind("Service"):
            if service_fqdn(svc.name, svc.ns(self.namespace)) in hosts:
                return svc
        return None
