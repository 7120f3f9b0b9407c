"""Routing rules -> expectation: read Istio / Gateway API YAML and work out the declared split.

This package is the only door other stages use: the resolver (``resolve``), the objects read (``load_*``,
``RuleSet``) and the one copy of the routing semantics (``semantics``: hosts, exportTo, DestinationRule
lookup, catch-alls, port protocols, Istio versions; ``destination_rules``: how istiod merges and picks
DestinationRules; ``workloads``: destinations -> pods; ``sidecar_scope``: what a Sidecar resource imports) that
``analyze``
and the diagnosis share with the resolver.
"""

from typing import TYPE_CHECKING, Any

from respy.rules import semantics
from respy.rules.destination_rules import MergedRule, destination_rule
from respy.rules.expectation import Expectation, Outcome
from respy.rules.load import K8sObject, RuleSet, load_bytes, load_each, load_inputs, load_text, parse_weights
from respy.rules.resolve import resolve
from respy.rules.semantics import (
    L4_PROTOCOLS,
    SNIFFING,
    IstioVersion,
    backend_weight,
    binds_mesh,
    has,
    hosts_overlap,
    is_catch_all_block,
    is_partial_service_name,
    parse_istio_version,
    port_protocol,
    request_names,
    rule_host,
    service_exports,
    service_fqdn,
    short_host,
    unknown_fields,
    visible,
)
from respy.rules.sidecar_scope import EgressScope, client_scope, sidecar_problems, vs_hosts
from respy.rules.workloads import (
    WORKLOAD_KINDS,
    Workload,
    expand_destination,
    pod_labels,
    replicas,
    selects,
    workloads_of,
)

if TYPE_CHECKING:
    from respy.rules.cluster import load_cluster

__all__ = [
    "L4_PROTOCOLS",
    "SNIFFING",
    "WORKLOAD_KINDS",
    "EgressScope",
    "Expectation",
    "IstioVersion",
    "K8sObject",
    "MergedRule",
    "Outcome",
    "RuleSet",
    "Workload",
    "backend_weight",
    "binds_mesh",
    "client_scope",
    "destination_rule",
    "expand_destination",
    "has",
    "hosts_overlap",
    "is_catch_all_block",
    "is_partial_service_name",
    "load_bytes",
    "load_cluster",
    "load_each",
    "load_inputs",
    "load_text",
    "parse_istio_version",
    "parse_weights",
    "pod_labels",
    "port_protocol",
    "replicas",
    "request_names",
    "resolve",
    "rule_host",
    "selects",
    "semantics",
    "service_exports",
    "service_fqdn",
    "short_host",
    "sidecar_problems",
    "unknown_fields",
    "visible",
    "vs_hosts",
    "workloads_of",
]


def __getattr__(name: str) -> Any:
    # the Kubernetes API reader is imported only when --expect cluster asks for it
    if name == "load_cluster":
        from respy.rules.cluster import load_cluster

        return load_cluster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
