"""The 5xx answers the sidecar gave during the run, per destination: Envoy's per-cluster counters, read back.

Envoy's router charges each answer it gives for a request routed to a cluster to that cluster's
``upstream_rq_<code>`` (and ``upstream_rq_5xx``): the upstream's own answer (``onUpstreamHeaders``), and its own
local 503 when the cluster has no healthy host, after counting ``upstream_cx_none_healthy``
(``Filter::sendNoHealthyUpstreamResponse`` calls ``chargeUpstreamCode(Http::Code::ServiceUnavailable, nullptr,
false)``; source/common/router/router.cc, the stats in source/common/http/codes.cc ``chargeResponseStat``).
A route to a cluster that does not exist answers 503 (``cluster_not_found``) with no cluster to charge: such
errors are in no cluster's counters. The counters are cumulative and count every request through the sidecar,
not only respy's: ``SidecarView`` reads them before and after the run, and this is the difference.

A cluster is the destination ``ProgrammedCluster.label`` names (its subset, else its host's short name, from
istiod's ``outbound|<port>|<subset>|<fqdn>``: ``respy.sidecar.istio_names``), the name the programmed split and
the ``SIDECAR COUNT`` column use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: ``respy.check.assign`` names this module, and must not load httpx
    from respy.sidecar.admin import ClusterCounts
    from respy.sidecar.programmed import Programmed


@dataclass(frozen=True)
class SidecarErrors:
    """Per destination: the 5xx answers the sidecar gave for it during the run, by status, and how many of
    them were its own 503s for want of a healthy endpoint (no version received those requests)."""

    by_status: dict[str, dict[int, int]] = field(default_factory=dict)
    no_healthy: dict[str, int] = field(default_factory=dict)
    clusters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the clusters behind each destination

    def counted(self, status: int) -> dict[str, int]:
        """Answers with ``status`` per destination, those with none left out."""
        return {name: codes[status] for name, codes in self.by_status.items() if codes.get(status, 0) > 0}


def sidecar_errors(counts: Mapping[str, ClusterCounts], programmed: Programmed) -> SidecarErrors:
    """The run's 5xx per destination from the counters' delta (``SidecarView.counts``), for the route's clusters."""
    by_status: dict[str, dict[int, int]] = {}
    no_healthy: dict[str, int] = {}
    clusters: dict[str, tuple[str, ...]] = {}
    for cluster in programmed.clusters:
        clusters[cluster.label] = (*clusters.get(cluster.label, ()), cluster.name)
        delta = counts.get(cluster.name)
        if delta is None:
            continue
        codes = by_status.setdefault(cluster.label, {})
        for code, n in delta.by_status.items():
            if code.isdigit() and 500 <= int(code) <= 599 and n > 0:
                codes[int(code)] = codes.get(int(code), 0) + n
        if delta.no_healthy > 0:
            no_healthy[cluster.label] = no_healthy.get(cluster.label, 0) + delta.no_healthy
    return SidecarErrors(by_status={k: v for k, v in by_status.items() if v}, no_healthy=no_healthy,
                         clusters=clusters)
