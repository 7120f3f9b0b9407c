"""From a destination to the pods behind it: Service selector ∧ subset labels -> workloads and ready replicas.

An Istio cluster ``outbound|<port>|<subset>|<fqdn>`` holds the Service's ready endpoints (pods its selector
picks) whose labels carry the subset's labels (``pilot/pkg/networking/core/cluster_builder.go``
``buildSubsetCluster``). Without a subset the cluster is ``outbound|<port>||<fqdn>``, every ready endpoint of
the Service, all versions (``pilot/pkg/networking/core/route/route.go`` ``GetDestinationCluster``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from respy.rules.load import K8sObject, RuleSet

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Pod")
# What a controller appends to its name to name a pod: kube-controller-manager's ``pkg/controller``
# (ReplicaSet: ``<deployment>-<pod-template-hash>``, pod: ``<replicaset>-<5 random>``; StatefulSet ordinals)
_POD_SUFFIX = {
    "Deployment": r"-[a-z0-9]{1,10}-[a-z0-9]{5}",
    "ReplicaSet": r"-[a-z0-9]{5}",
    "DaemonSet": r"-[a-z0-9]{5}",
    "StatefulSet": r"-[0-9]+",
    "Pod": "",
}


@dataclass(frozen=True)
class Workload:
    """A set of pods with the same labels: its pods' labels, how many are ready, how their names look."""

    obj: K8sObject
    namespace: str
    labels: Mapping[str, str]
    ready: int
    pod_pattern: str  # a regular expression (Python ``re``) matching its pods' hostnames

    @property
    def name(self) -> str:
        return self.obj.name


def workloads_of(rules: RuleSet, default_namespace: str) -> list[Workload]:
    """Every workload given, once: a ReplicaSet or Pod owned by another workload given is left to its owner."""
    objects = rules.of_kind(*WORKLOAD_KINDS)
    given = {(o.kind, o.ns(default_namespace), o.name) for o in objects}
    out = []
    for obj in objects:
        ns = obj.ns(default_namespace)
        if any((kind, ns, name) in given for kind, name in _owners(obj)):
            continue
        out.append(Workload(obj, ns, pod_labels(obj), ready_replicas(obj), _pod_pattern(obj)))
    return out


def selected(workloads: Sequence[Workload], namespace: str, *selectors: Mapping[str, str]) -> list[Workload]:
    """The workloads in ``namespace`` whose pods carry every label of every selector."""
    return [w for w in workloads if w.namespace == namespace and all(selects(s, w.labels) for s in selectors)]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_labels(workload: K8sObject) -> dict[str, str]:
    """The labels of the pods a workload runs (its template's, or a Pod's own)."""
    if workload.kind == "Pod":
        return _labels(_map(workload.body.get("metadata")).get("labels"))
    return _labels(_map(_map(workload.spec.get("template")).get("metadata")).get("labels"))


def replicas(workload: K8sObject) -> int:
    """Replicas a workload asks for (Kubernetes' default 1; a Pod or DaemonSet counts as 1)."""
    value = workload.spec.get("replicas") if workload.kind in ("Deployment", "StatefulSet", "ReplicaSet") else 1
    if value is None:
        return 1
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


def ready_replicas(workload: K8sObject) -> int:
    """Ready pods: ``status.readyReplicas`` when the object comes from a cluster, else the replicas asked for.

    Only ready endpoints receive traffic (EndpointSlice ``conditions.ready``).
    """
    status = workload.body.get("status")
    if not isinstance(status, Mapping):
        return replicas(workload)
    if workload.kind == "Pod":
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
        ready = [c for c in conditions if c.get("type") == "Ready"]
        return int(not ready or ready[0].get("status") == "True")
    value = status.get("numberReady" if workload.kind == "DaemonSet" else "readyReplicas", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def service_selector(service: K8sObject | None) -> dict[str, str]:
    selector = service.spec.get("selector") if service is not None else None
    return _labels(selector)


def _owners(obj: K8sObject) -> list[tuple[str, str]]:
    """Owner kinds and names; a ReplicaSet ``<deployment>-<hash>`` stands for its Deployment too."""
    refs = _map(obj.body.get("metadata")).get("ownerReferences")
    owners = [(str(r.get("kind")), str(r.get("name"))) for r in refs or [] if isinstance(r, Mapping)]
    return owners + [("Deployment", name.rpartition("-")[0]) for kind, name in owners if kind == "ReplicaSet"]


def _pod_pattern(obj: K8sObject) -> str:
    import re

    return re.escape(obj.name) + _POD_SUFFIX.get(obj.kind, "")


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _map(value).items()}


@dataclass(frozen=True)
class Endpoints:
    """The workloads behind one destination (``None`` facts: not knowable from what was given)."""

    workloads: tuple[Workload, ...]

    @property
    def ready(self) -> int:
        return sum(w.ready for w in self.workloads)

    def identifiers(self) -> tuple[str, ...]:
        """Words naming these pods in an answer: workload names and the label values that tell versions apart."""
        return tuple(dict.fromkeys([*(w.name for w in self.workloads), *self._version_values()]))

    def _version_values(self) -> list[str]:
        if len(self.workloads) < 2:
            return [v for w in self.workloads for k, v in w.labels.items() if k == "version"]
        shared = set.intersection(*(set(w.labels.items()) for w in self.workloads))
        return [v for w in self.workloads for k, v in w.labels.items() if (k, v) not in shared]

    @property
    def pod_patterns(self) -> tuple[str, ...]:
        return tuple(w.pod_pattern for w in self.workloads)

    @property
    def split(self) -> tuple[tuple[str, int], ...]:
        """Ready pods per workload: what the cluster's load balancer gives each on average."""
        return tuple((w.name, w.ready) for w in self.workloads)


def expand_destination(workloads: Sequence[Workload], service: K8sObject | None, namespace: str,
                       subset_labels: Mapping[str, str] | None = None) -> Endpoints | None:
    """The workloads behind a destination: Service selector ∧ subset labels.

    ``None`` when that cannot be known: no workloads given, the Service not given, or a Service without a
    selector (its endpoints are managed by hand).
    """
    selector = service_selector(service)
    if not workloads or service is None or not selector:
        return None
    return Endpoints(tuple(selected(workloads, namespace, selector, subset_labels or {})))
