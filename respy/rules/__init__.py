"""Routing rules -> expectation: read Istio / Gateway API YAML and work out the declared split.

This package is the only door other stages use: the resolver (``resolve``), the objects read (``load_*``,
``RuleSet``) and the one copy of the routing semantics (``semantics``: hosts, exportTo, DestinationRule
lookup, catch-alls, port protocols, Istio versions; ``workloads``: destinations -> pods) that ``analyze``
and the diagnosis share with the resolver.
"""

from respy.rules import semantics
from respy.rules.expectation import Expectation, Outcome
from respy.rules.load import K8sObject, RuleSet, load_bytes, load_inputs, load_text, parse_weights
from respy.rules.resolve import resolve
from respy.rules.semantics import IstioVersion, parse_istio_version, short_host
from respy.rules.workloads import Workload, expand_destination, pod_labels, replicas, workloads_of

__all__ = [
    "Expectation",
    "IstioVersion",
    "K8sObject",
    "Outcome",
    "RuleSet",
    "Workload",
    "expand_destination",
    "load_bytes",
    "load_inputs",
    "load_text",
    "parse_istio_version",
    "parse_weights",
    "pod_labels",
    "replicas",
    "resolve",
    "semantics",
    "short_host",
    "workloads_of",
]
