"""Shape checks on routing objects as they are read, so later code can trust the types it walks.

Only structure is checked here (lists are lists, weights are non-negative integers...); whether the
rules make sense for a request (total weight 0, missing subsets) is decided when resolving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from respy.rules.load import K8sObject

P = tuple[str | int, ...]


def check_shape(obj: K8sObject) -> None:
    checker = _CHECKERS.get(obj.kind)
    if checker is None:
        return
    spec = obj.body.get("spec")
    if spec is None:
        raise obj.error("has no `spec`")
    _mapping(obj, spec, ("spec",))
    checker(obj, spec)


def _virtual_service(obj: K8sObject, spec: Mapping[str, Any]) -> None:
    _str_list(obj, spec.get("hosts"), ("spec", "hosts"))
    _str_list(obj, spec.get("gateways"), ("spec", "gateways"))
    _str_list(obj, spec.get("exportTo"), ("spec", "exportTo"))
    for section in ("http", "tcp", "tls"):
        for i, rule in _items(obj, spec.get(section), ("spec", section)):
            _route_rule(obj, rule, ("spec", section, i))


def _route_rule(obj: K8sObject, rule: Mapping[str, Any], path: P) -> None:
    for j, match in _items(obj, rule.get("match"), (*path, "match")):
        _str_list(obj, match.get("gateways"), (*path, "match", j, "gateways"))
        for key in ("headers", "withoutHeaders", "queryParams", "sourceLabels"):
            _optional_mapping(obj, match.get(key), (*path, "match", j, key))
    for k, dest in _items(obj, rule.get("route"), (*path, "route")):
        _optional_mapping(obj, dest.get("destination"), (*path, "route", k, "destination"))
        _weight(obj, dest.get("weight"), (*path, "route", k, "weight"))
    for key in ("fault", "redirect", "directResponse", "delegate"):
        _optional_mapping(obj, rule.get(key), (*path, key))


def _destination_rule(obj: K8sObject, spec: Mapping[str, Any]) -> None:
    if not isinstance(spec.get("host"), str):
        raise obj.error("`spec.host` is missing or not a string", ("spec", "host"))
    for i, subset in _items(obj, spec.get("subsets"), ("spec", "subsets")):
        if not isinstance(subset.get("name"), str):
            raise obj.error("subset without a `name`", ("spec", "subsets", i))
        _optional_mapping(obj, subset.get("labels"), ("spec", "subsets", i, "labels"))


def _route(obj: K8sObject, spec: Mapping[str, Any]) -> None:
    _items(obj, spec.get("parentRefs"), ("spec", "parentRefs"))
    _str_list(obj, spec.get("hostnames"), ("spec", "hostnames"))
    for i, rule in _items(obj, spec.get("rules"), ("spec", "rules")):
        path: P = ("spec", "rules", i)
        for j, match in _items(obj, rule.get("matches"), (*path, "matches")):
            _items(obj, match.get("headers"), (*path, "matches", j, "headers"))
            _items(obj, match.get("queryParams"), (*path, "matches", j, "queryParams"))
            _optional_mapping(obj, match.get("path"), (*path, "matches", j, "path"))
        _items(obj, rule.get("filters"), (*path, "filters"))
        for k, ref in _items(obj, rule.get("backendRefs"), (*path, "backendRefs")):
            _weight(obj, ref.get("weight"), (*path, "backendRefs", k, "weight"))


def _items(obj: K8sObject, value: Any, path: P) -> list[tuple[int, Mapping[str, Any]]]:
    """A list of mappings (None allowed: an omitted field)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise obj.error(f"`{_dotted(path)}` must be a list, not {_kind_of(value)}", path)
    for i, item in enumerate(value):
        _mapping(obj, item, (*path, i))
    return list(enumerate(value))


def _mapping(obj: K8sObject, value: Any, path: P) -> None:
    if not isinstance(value, Mapping):
        raise obj.error(f"`{_dotted(path)}` must be a mapping, not {_kind_of(value)}", path)


def _optional_mapping(obj: K8sObject, value: Any, path: P) -> None:
    if value is not None:
        _mapping(obj, value, path)


def _str_list(obj: K8sObject, value: Any, path: P) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise obj.error(f"`{_dotted(path)}` must be a list of strings", path)


def _weight(obj: K8sObject, value: Any, path: P) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise obj.error(f"weight must be an integer, not {value!r}", path)
    if value < 0:
        # routing-semantics §2.8: "weight -5 < 0" is rejected by Istio validation
        raise obj.error(f"weight {value} < 0: negative weights are invalid", path)


def _dotted(path: P) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _kind_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"[:60]


_CHECKERS: dict[str, Callable[[K8sObject, Mapping[str, Any]], None]] = {
    "VirtualService": _virtual_service,
    "DestinationRule": _destination_rule,
    "HTTPRoute": _route,
    "GRPCRoute": _route,
}
