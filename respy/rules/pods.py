"""A destination with the pods behind it: names, versions and ready counts, or 503 when it has none."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from respy.rules.context import Context
from respy.rules.outcomes import Candidate, status_outcome
from respy.rules.semantics import host_namespace, short_host
from respy.rules.workloads import expand_destination


def pods_behind(ctx: Context, found: Candidate, host: str, subset: tuple[str, Mapping[str, str]] | None) -> Candidate:
    """The destination with its pods (names, versions, ready counts); 503 when it has no ready pod.

    A cluster without endpoints answers 503 (UH, no healthy upstream): a subset whose labels select no pod
    (IST0173), or a Service with no ready pod.
    """
    service = ctx.service(host)
    endpoints = expand_destination(ctx.workloads, service, host_namespace(host) or ctx.namespace,
                                   subset[1] if subset else None)
    short = short_host(host)
    if endpoints is None:
        missing = "workloads (Deployments, StatefulSets, Pods)" if service is not None else "its Service"
        # one note per host (not per destination): the same missing manifest, said once
        ctx.note(f"{short}: {missing} not given, so which pods answer its destinations is not known; answers are "
                 "matched to destinations by name only (add the manifests, or --expect cluster)")
        return found
    what = f"subset {subset[0]} of {short}" if subset else f"Service {short}"
    if endpoints.ready == 0:
        ctx.warn(f"{what} has no ready pod among the workloads given (IST0173 for a subset): its share answers 503 "
                 "(no healthy upstream)")
        return replace(status_outcome(503, f"{what} has no pod", found.probability, found.source), key=found.key)
    if subset is None and len(endpoints.workloads) > 1:
        split = ", ".join(f"{name} {count} ({100 * count / endpoints.ready:.0f}%)" for name, count in endpoints.split)
        ctx.note(f"{found.name} has no subset: every ready pod of {short} answers it, so its versions split by pod "
                 f"count on average: {split}; shown, not judged")
    return replace(found, identifiers=(*found.identifiers, *endpoints.identifiers()), pods=endpoints.pod_patterns,
                   endpoints=endpoints.split)
