"""Turning weighted destinations and status answers into ``Outcome``s with probabilities."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace

from respy.rules.expectation import Outcome
from respy.rules.load import K8sObject


@dataclass(frozen=True)
class Candidate:
    """A destination (or a status answer standing in for one) with its share of the route.

    ``key`` identifies the destination: the same key listed twice has its probabilities added.
    ``long_name`` replaces ``name`` when two different destinations share a display name.
    """

    key: Hashable
    name: str
    long_name: str
    probability: float
    identifiers: tuple[str, ...] = ()
    status: int | None = None
    source: str = ""
    pods: tuple[str, ...] = ()
    endpoints: tuple[tuple[str, int], ...] = ()


def status_outcome(status: int, reason: str, probability: float, source: str) -> Candidate:
    name = f"HTTP {status} ({reason})"
    return Candidate(key=("status", name), name=name, long_name=name, probability=probability, status=status,
                     source=source)


def scale(candidates: Sequence[Candidate], factor: float) -> list[Candidate]:
    return [replace(c, probability=c.probability * factor) for c in candidates]


def finish(candidates: Sequence[Candidate]) -> tuple[Outcome, ...]:
    """Merge repeats, make names unique, drop identifiers every destination shares."""
    merged = _merge(candidates)
    names = _display_names(merged)
    shared = _shared_identifiers([c for c in merged if c.status is None])
    return tuple(
        Outcome(
            name=names[i],
            probability=c.probability,
            identifiers=tuple(x for x in dict.fromkeys(c.identifiers) if x and x not in shared),
            status=c.status,
            source=c.source,
            pods=c.pods,
            endpoints=c.endpoints,
        )
        for i, c in enumerate(merged)
    )


def _merge(candidates: Sequence[Candidate]) -> list[Candidate]:
    # routing-semantics §2.8: the same destination listed twice -> probabilities added
    merged: dict[Hashable, Candidate] = {}
    for c in candidates:
        earlier = merged.get(c.key)
        merged[c.key] = c if earlier is None else replace(earlier, probability=earlier.probability + c.probability)
    return list(merged.values())


def _display_names(candidates: Sequence[Candidate]) -> list[str]:
    counts: dict[str, int] = {}
    for c in candidates:
        counts[c.name] = counts.get(c.name, 0) + 1
    names = [c.long_name if counts[c.name] > 1 else c.name for c in candidates]
    seen: dict[str, int] = {}
    unique = []
    for name in names:  # last resort: two destinations identical in name and long name (ports differ)
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def _shared_identifiers(destinations: Sequence[Candidate]) -> set[str]:
    """Words every destination carries (e.g. ``app: reviews``) name none of them."""
    if len(destinations) < 2:
        return set()
    common = set(destinations[0].identifiers)
    for c in destinations[1:]:
        common &= set(c.identifiers)
    return common


@dataclass
class Resolution:
    """What a rules module found for one request, before it becomes an ``Expectation``."""

    candidates: list[Candidate]
    route: str
    host: str
    used: list[K8sObject]  # the objects whose files and bodies back the answer
    warnings: list[str]
    notes: list[str] = field(default_factory=list)
