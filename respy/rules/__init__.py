"""Routing rules -> expectation: read Istio / Gateway API YAML and work out the declared split."""

from respy.rules.load import K8sObject, RuleSet, load_bytes, load_each, load_inputs, load_text, parse_weights
from respy.rules.resolve import resolve

__all__ = ["K8sObject", "RuleSet", "load_bytes", "load_each", "load_inputs", "load_text", "parse_weights", "resolve"]
