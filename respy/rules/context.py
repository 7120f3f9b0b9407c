"""What every resolver needs to know about one request."""

from __future__ import annotations

from dataclasses import dataclass, field

from respy.rules.load import K8sObject, RuleSet
from respy.rules.request import Request, Vantage, host_rank, request_names, rule_host


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

    @property
    def names(self) -> tuple[str, ...]:
        return request_names(self.request.host, self.namespace)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def source(self, obj: K8sObject) -> str:
        return obj.describe(self.namespace)

    def ref(self, obj: K8sObject) -> str:
        return obj.ref_in(self.namespace)

    def subsets(self, host: str) -> dict[str, dict[str, str]] | None:
        """Subset name -> labels over the DestinationRules for ``host``; ``None`` when no DR covers it.

        routing-semantics §3: client namespace first, then the service's, then the rest; the first
        definition of a subset name wins.
        """
        ranked = sorted(self._destination_rules(host), key=lambda dr: self._dr_order(dr, host))
        if not ranked:
            return None
        subsets: dict[str, dict[str, str]] = {}
        for dr in ranked:
            for subset in dr.spec.get("subsets") or []:
                labels = subset.get("labels") or {}
                subsets.setdefault(subset["name"], {str(k): str(v) for k, v in labels.items()})
        return subsets

    def _destination_rules(self, host: str) -> list[K8sObject]:
        return [
            dr for dr in self.rules.of_kind("DestinationRule")
            if host_rank(rule_host(dr.spec["host"], dr.ns(self.namespace)), (host,)) is not None
        ]

    def _dr_order(self, dr: K8sObject, host: str) -> int:
        ns = dr.ns(self.namespace)
        if ns == self.namespace:
            return 0
        return 1 if host.split(".")[1:2] == [ns] else 2
