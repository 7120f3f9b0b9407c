"""Istio ``StringMatch`` evaluation (routing-semantics §2.5), shared by uri/header/query matching."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from respy._errors import RulesError
from respy.rules.request import full_match


def is_presence(spec: Any) -> bool:
    """An empty StringMatch, or ``regex: "*"``, only checks that the header/param is present."""
    if spec is None or spec == {} or spec == "":
        return True
    return isinstance(spec, Mapping) and set(spec) == {"regex"} and spec["regex"] == "*"


def string_match(spec: Any, value: str | None, *, ignore_case: bool = False) -> bool:
    """Whether ``value`` (``None`` = absent) satisfies an Istio StringMatch."""
    if is_presence(spec):
        return value is not None
    if value is None:
        return False
    if not isinstance(spec, Mapping):
        raise RulesError(f"a string match must be a mapping with exact, prefix or regex, not {spec!r}")
    kind = next((k for k in ("exact", "prefix", "regex") if k in spec), None)
    if kind is None:
        raise RulesError(f"a string match needs exact, prefix or regex, got {sorted(spec)}")
    if isinstance(spec[kind], bool) or not isinstance(spec[kind], (str, int, float)):
        raise RulesError(f"{kind}: {spec[kind]!r} is not a string (quote it in the YAML)")
    if "exact" in spec:
        want = str(spec["exact"])
        return value.lower() == want.lower() if ignore_case else value == want
    if "prefix" in spec:
        want = str(spec["prefix"])
        # a CHARACTER prefix: "/api" matches "/apiary" (routing-semantics §2.5, uri.prefix)
        return value.lower().startswith(want.lower()) if ignore_case else value.startswith(want)
    # ignoreUriCase has no effect on regex (routing-semantics §2.5)
    return full_match(str(spec["regex"]), value)
