"""Which DestinationRule a client uses for a host, after istiod has merged the rules for one host.

istio/istio @86c9f01f, ``pilot/pkg/model``:

- ``push_context.go`` ``setDestinationRules``: the rules are sorted (``sortConfigBySelectorAndCreationTime``:
  with a ``workloadSelector`` first, then by ``creationTimestamp``, then name, then namespace) and, per
  namespace, merged by host into a namespace-local index (rules visible in their own namespace), an exported
  index (rules not private to their namespace) and the root namespace's private rules.
- ``destination_rule.go`` ``mergeDestinationRule`` (``ENABLE_ENHANCED_DESTINATIONRULE_MERGE``, on by default):
  a rule for a host that already has one merges into it when their ``exportTo`` sets are equal (or its set is
  a superset of a non-empty one): subsets whose names are new are appended, the first rule's top-level
  ``trafficPolicy`` is kept (the later one's only when the first has none); otherwise it stays a separate
  entry. Hosts are compared as written after ``ResolveShortnameToFQDN``: ``reviews`` and
  ``*.default.svc.cluster.local`` never merge.
- ``push_context.go`` ``destinationRule()``: the client's namespace first, then the service's namespace
  (exported rules only), then the root namespace (exported only); the first level with a host match wins
  (``config.go`` ``MostSpecificHostMatch``: exact over wildcard, the longest wildcard), nothing merges across
  levels. ``sidecar.go`` ``SidecarScope.DestinationRule`` takes the last entry without a workload selector.

A rule with a ``workloadSelector`` applies only to the client pods it selects (and is never exported); respy
does not know the client's labels, so such rules are left out and the caller says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from respy.rules.load import K8sObject
from respy.rules.semantics import ROOT_NAMESPACE, export_list, host_namespace, host_rank, rule_host


@dataclass
class MergedRule:
    """One entry of istiod's index: a DestinationRule and the later ones merged into it (``ConsolidatedDestRule``)."""

    rules: list[K8sObject]
    host: str
    exports: frozenset[str]
    subsets: dict[str, dict[str, str]] = field(default_factory=dict)
    traffic_policy: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, dr: K8sObject, host: str, exports: frozenset[str]) -> MergedRule:
        merged = cls([dr], host, exports, traffic_policy=_traffic_policy(dr))
        merged.subsets = subsets_of(dr)
        return merged

    def merge(self, dr: K8sObject) -> MergedRule:
        """``mergeDestinationRule`` on a copy: new subset names appended, the first traffic policy kept."""
        merged = MergedRule([*self.rules, dr], self.host, self.exports, dict(self.subsets), self.traffic_policy)
        for name, labels in subsets_of(dr).items():
            merged.subsets.setdefault(name, labels)
        if merged.traffic_policy is None:
            merged.traffic_policy = _traffic_policy(dr)
        return merged

    @property
    def first(self) -> K8sObject:
        return self.rules[0]


def subsets_of(dr: K8sObject) -> dict[str, dict[str, str]]:
    """Subset name -> labels of one DestinationRule (a repeated name: the first one counts)."""
    out: dict[str, dict[str, str]] = {}
    for subset in dr.spec.get("subsets") or []:
        if isinstance(subset, Mapping) and isinstance(subset.get("name"), str):
            labels = subset.get("labels") or {}
            out.setdefault(subset["name"], {str(k): str(v) for k, v in labels.items()})
    return out


def has_workload_selector(dr: K8sObject) -> bool:
    return bool(dr.spec.get("workloadSelector"))


def destination_rule(drs: Sequence[K8sObject], host: str, *, client_namespace: str, default_namespace: str,
                     root_namespace: str = ROOT_NAMESPACE) -> MergedRule | None:
    """The (merged) DestinationRule a client in ``client_namespace`` uses for ``host``, as istiod picks it."""
    index = _Index(drs, default_namespace, root_namespace)
    levels: list[list[MergedRule] | None] = []
    if client_namespace != root_namespace:
        levels.append(_most_specific(index.local.get(client_namespace, {}), host))
    else:
        levels.append(_most_specific(index.root_local, host))
    for owner in (host_namespace(host), root_namespace):
        if owner is not None:
            levels.append(_exported_to(_most_specific(index.exported.get(owner, {}), host), client_namespace))
    for entries in levels:
        if entries:
            return entries[-1]  # sidecar.go DestinationRule: the last entry without a workload selector
    return None


def creation_order(drs: Sequence[K8sObject], default_namespace: str) -> list[K8sObject]:
    """``sortConfigBySelectorAndCreationTime``: selector rules first, then creationTimestamp, name, namespace.

    A rule without a creationTimestamp (a file not yet applied) sorts as istiod's zero time: files applied in
    the same second tie on the timestamp too, and the name decides.
    """
    def key(dr: K8sObject) -> tuple[int, str, str, str]:
        created = (dr.body.get("metadata") or {}).get("creationTimestamp")
        return (0 if has_workload_selector(dr) else 1, str(created or ""), dr.name, dr.ns(default_namespace))

    return sorted(drs, key=key)


Entries = dict[str, list[MergedRule]]  # resolved host -> merged entries, in order


class _Index:
    """``setDestinationRules``: the namespace-local, exported and root-private indexes, merged per host."""

    def __init__(self, drs: Sequence[K8sObject], default_namespace: str, root_namespace: str) -> None:
        self.local: dict[str, Entries] = {}
        self.exported: dict[str, Entries] = {}
        self.root_local: Entries = {}
        for dr in creation_order([d for d in drs if not has_workload_selector(d)], default_namespace):
            ns = dr.ns(default_namespace)
            host = rule_host(str(dr.spec.get("host", "")), ns)
            exports = frozenset(export_list(dr))
            if not exports or exports & {"*", ".", ns}:
                _merge_into(self.local.setdefault(ns, {}), dr, host, exports)
            # no exportTo: meshConfig.defaultDestinationRuleExportTo, "*" unless set otherwise
            private = len(exports) == 1 and bool(exports & {".", ns})
            if not private:
                _merge_into(self.exported.setdefault(ns, {}), dr, host, exports)
            elif ns == root_namespace:
                _merge_into(self.root_local, dr, host, exports)


def _merge_into(entries: Entries, dr: K8sObject, host: str, exports: frozenset[str]) -> None:
    """``mergeDestinationRule`` with the enhanced merge; every rule here has no workload selector, so a rule
    merges into each entry whose exportTo it equals or contains and is appended only when the last entry it
    met could not take it."""
    found = entries.get(host)
    if not found:
        entries[host] = [MergedRule.of(dr, host, exports)]
        return
    append = True
    for i, entry in enumerate(found):
        if not (exports == entry.exports or (entry.exports and exports > entry.exports)):
            append = True
            continue
        append = False  # bothWithoutSelector
        found[i] = entry.merge(dr)
    if append:
        found.append(MergedRule.of(dr, host, exports))


def _most_specific(entries: Entries, host: str) -> list[MergedRule] | None:
    """``MostSpecificHostMatch``: the exact host, else the most specific wildcard matching it."""
    ranked = [(rank, pattern) for pattern in entries if (rank := host_rank(pattern, (host,))) is not None]
    return entries[max(ranked)[1]] if ranked else None


def _exported_to(entries: list[MergedRule] | None, client_namespace: str) -> list[MergedRule] | None:
    """``getExportedDestinationRuleFromNamespace``: entries whose exportTo includes the client's namespace."""
    if entries is None:
        return None
    return [e for e in entries if not e.exports or "*" in e.exports or client_namespace in e.exports]


def _traffic_policy(dr: K8sObject) -> Mapping[str, Any] | None:
    policy = dr.spec.get("trafficPolicy")
    return policy if isinstance(policy, Mapping) else None
