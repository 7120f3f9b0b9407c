"""Matching response labels to declared outcomes (destinations and HTTP statuses).

A 2xx label belongs to a destination when it names one of the destination's pods (a pod hostname, matched
through its owner's name: ``reviews-v2-6c8d9e0f1-klmno`` is a pod of Deployment ``reviews-v2``; known when the
workloads were given), else when one of the destination's distinguishing identifiers appears in it as a whole
token; ``--map LABEL=DEST`` overrides both. A non-2xx answer belongs to a status outcome with the
same status (a fault abort, a direct response). Everything else is reported, never dropped silently:
unclaimed 2xx labels are *undeclared* (a version nobody declared), unclaimed errors are *unknown*.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from respy._errors import MappingError
from respy.rules import Expectation, Outcome
from respy.tally import Kind, Row

if TYPE_CHECKING:
    from respy.sidecar.errors import SidecarErrors

# Characters that continue a token. '.' and '-' continue it only when a word character follows them, so
# "v1" matches in "version v1." and "v1, instance" but not in "v10", "v1.2" or "app-v1-pod";
# "single" does not match in "singleton".
_WORD = "A-Za-z0-9_"
_LEADING_STATUS = re.compile(r"^\s*(\d{3})\b")
# A pod hostname inside a label: DNS-1123 characters between separators that cannot occur in one
_HOSTNAME_TOKEN = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


@dataclass(frozen=True)
class Assignment:
    """Counts per declared outcome, and what could not be attributed to one."""

    counts: dict[str, int]
    claimed: dict[str, str]
    undeclared: dict[str, int] = field(default_factory=dict)
    unknown: int = 0
    unknown_labels: dict[str, int] = field(default_factory=dict)
    total: int = 0
    # Error answers (not 2xx, no declared status) that name the destination they came from, e.g. a 503 whose
    # body or --by header says "v2": the request was routed there, so they count for its share (not in counts).
    errors: dict[str, int] = field(default_factory=dict)
    # Of ``errors``, those the sidecar's per-cluster counters attributed (``attribute_by_sidecar``); of those, the
    # sidecar's own 503s for want of a healthy endpoint (``unserved``: no version received them); and why any
    # 5xx were left unattributed although the counters were read.
    sidecar_errors: dict[str, int] = field(default_factory=dict)
    unserved: dict[str, int] = field(default_factory=dict)
    sidecar_notes: tuple[str, ...] = ()


def token_pattern(identifier: str) -> re.Pattern[str]:
    """A case-insensitive pattern matching ``identifier`` as a whole token."""
    before = rf"(?<![{_WORD}])(?<![{_WORD}][.-])"
    after = rf"(?![{_WORD}])(?![.-][{_WORD}])"
    return re.compile(before + re.escape(identifier) + after, re.IGNORECASE)


def distinguishing_identifiers(destinations: Sequence[Outcome]) -> dict[str, tuple[str, ...]]:
    """Per destination, the identifiers that are not shared by every destination (those name none)."""
    if len(destinations) < 2:
        return {d.name: tuple(i for i in d.identifiers if i) for d in destinations}
    shared = set.intersection(*({i.lower() for i in d.identifiers} for d in destinations))
    return {d.name: tuple(i for i in d.identifiers if i and i.lower() not in shared) for d in destinations}


def _owners(identifiers: Mapping[str, tuple[str, ...]]) -> dict[str, set[str]]:
    owners: dict[str, set[str]] = {}
    for name, idents in identifiers.items():
        for ident in idents:
            owners.setdefault(ident.lower(), set()).add(name)
    return owners


def match_destination(label: str, identifiers: Mapping[str, tuple[str, ...]]) -> str | None:
    """The one destination a 2xx label names, None when it names none; MappingError when several."""
    every = {ident for idents in identifiers.values() for ident in idents}
    matched = {ident.lower() for ident in every if token_pattern(ident).search(label)}
    candidates = {name for name, idents in identifiers.items() if any(i.lower() in matched for i in idents)}
    if len(candidates) > 1:
        # An identifier owned by one destination only beats one shared by a few ("v2" beats "canary").
        owners = _owners(identifiers)
        candidates = {next(iter(owners[i])) for i in matched if len(owners[i]) == 1} or candidates
    if len(candidates) > 1:
        names = ", ".join(sorted(candidates))
        raise MappingError(
            f"response {label!r} matches several destinations ({names}); say which with --map '{label}=DESTINATION'"
        )
    return next(iter(candidates), None)


def pod_owner(label: str, destinations: Sequence[Outcome]) -> str | None:
    """The one destination whose pods a hostname in ``label`` belongs to; None when it names no known pod.

    A pod hostname is its owner's name plus what the controller appends (``rules.workloads``): matched as a
    whole token, so ``reviews-v2-6c8d9e0f1-klmno`` names Deployment ``reviews-v2``'s pod, never ``reviews-v1``'s.
    """
    patterns = [(d.name, re.compile(p)) for d in destinations for p in d.pods]
    if not patterns:
        return None
    owners = {name for token in _HOSTNAME_TOKEN.findall(label.lower()) for name, pattern in patterns
              if pattern.fullmatch(token)}
    return next(iter(owners)) if len(owners) == 1 else None


def _row_status(row: Row) -> int | None:
    if row.status is not None:
        return row.status
    found = _LEADING_STATUS.match(row.label)
    return int(found.group(1)) if found else None


def _resolve_mapping(mapping: Mapping[str, str], expectation: Expectation) -> dict[str, str]:
    names = {o.name for o in expectation.outcomes}
    resolved: dict[str, str] = {}
    for label, target in mapping.items():
        if target not in names:
            known = ", ".join(o.name for o in expectation.outcomes)
            raise MappingError(f"--map {label}={target}: no declared outcome is called {target!r} (declared: {known})")
        resolved[label] = target
    return resolved


def _status_owner(status: int | None, expectation: Expectation) -> str | None:
    if status is None:
        return None
    # Several outcomes with one status cannot be told apart; the first declared one takes them.
    return next((o.name for o in expectation.outcomes if o.status == status), None)


def assign(rows: Sequence[Row], expectation: Expectation, mapping: Mapping[str, str] | None = None) -> Assignment:
    """Attribute every row to a declared outcome, or report it as undeclared (2xx) or unknown (the rest)."""
    explicit = _resolve_mapping(mapping or {}, expectation)
    identifiers = distinguishing_identifiers(expectation.destinations)
    counts = {o.name: 0 for o in expectation.outcomes}
    claimed: dict[str, str] = {}
    undeclared: dict[str, int] = {}
    unknown_labels: dict[str, int] = {}
    errors: dict[str, int] = {}
    for row in rows:
        owner = explicit.get(row.label)
        if owner is None and row.kind is Kind.OK:
            owner = pod_owner(row.label, expectation.destinations) or match_destination(row.label, identifiers)
        if owner is None and row.kind is not Kind.TRANSPORT:
            owner = _status_owner(_row_status(row), expectation)
        if owner is not None:
            counts[owner] += row.count
            claimed[row.label] = owner
        elif row.kind is Kind.OK:
            undeclared[row.label] = undeclared.get(row.label, 0) + row.count
        elif (source := _error_source(row, identifiers)) is not None:
            errors[source] = errors.get(source, 0) + row.count
            claimed[row.label] = source
        else:
            unknown_labels[row.label] = unknown_labels.get(row.label, 0) + row.count
    return Assignment(
        counts=counts,
        claimed=claimed,
        undeclared=undeclared,
        unknown=sum(unknown_labels.values()),
        unknown_labels=unknown_labels,
        total=sum(row.count for row in rows),
        errors=errors,
    )


def _error_source(row: Row, identifiers: Mapping[str, tuple[str, ...]]) -> str | None:
    """The destination an HTTP error answer names (its body, or the --by header), if exactly one."""
    if row.kind is not Kind.HTTP_ERROR:
        return None
    try:
        return match_destination(row.label, identifiers)
    except MappingError:  # names several: leave it unattributed
        return None


def attribute_errors(assignment: Assignment, by_destination: Mapping[str, int]) -> Assignment:
    """Move errors known by other means to have come from a destination (the hook for Envoy's per-cluster
    ``upstream_rq_5xx`` counters read through the sidecar's admin port) from unknown to that destination.

    At most ``assignment.unknown`` errors move; a destination the expectation does not declare is ignored.
    """
    errors = dict(assignment.errors)
    left = assignment.unknown
    for name, count in by_destination.items():
        moved = min(max(int(count), 0), left)
        if name in assignment.counts and moved:
            errors[name] = errors.get(name, 0) + moved
            left -= moved
    return replace(assignment, errors=errors, unknown=left)


def attribute_by_sidecar(assignment: Assignment, rows: Sequence[Row], seen: SidecarErrors) -> Assignment:
    """Attribute the 5xx answers that the answers alone left unattributed, status by status, to the destinations
    whose clusters' counters (``seen``: their delta over the run) account for them.

    The counters count every request through the sidecar, respy's and any other, and include the errors already
    attributed by body or header: those are taken off first. Of one status, respy's N unattributed answers go
    to the one destination whose counters show at least N more, or to each destination as counted when the
    counters show exactly N in all; otherwise (fewer: e.g. a route to an undefined cluster, which no cluster
    counts; more on several destinations: other traffic) they stay unattributed and a note says why.
    """
    unattributed = _unattributed_5xx(rows, assignment)
    named = _named_5xx(rows, assignment)
    moved: dict[str, int] = {}
    labels: dict[str, str | None] = {}
    notes: list[str] = []
    unserved: dict[str, int] = {}
    for status, (count, status_labels) in sorted(unattributed.items()):
        counted = seen.counted(status)
        left = {name: n - named.get((name, status), 0) for name, n in counted.items() if name in assignment.counts}
        left = {name: n for name, n in left.items() if n > 0}
        share = _share_out(count, left)
        if share is None:
            undeclared = {name: n for name, n in counted.items() if name not in assignment.counts}
            notes.append(_unaccounted(status, count, left, seen, undeclared, tuple(assignment.counts)))
            continue
        for name, n in share.items():
            moved[name] = moved.get(name, 0) + n
            if status == 503 and seen.no_healthy.get(name):
                unserved[name] = unserved.get(name, 0) + min(n, seen.no_healthy[name])
        owner = next(iter(share)) if len(share) == 1 else None
        labels.update(dict.fromkeys(status_labels, owner))
    if not moved and not notes:
        return assignment
    moved_all = attribute_errors(assignment, moved)
    claimed = dict(moved_all.claimed)
    claimed.update({label: owner for label, owner in labels.items() if owner is not None})
    sidecar = dict(assignment.sidecar_errors)
    for name, n in moved.items():
        sidecar[name] = sidecar.get(name, 0) + n
    return replace(moved_all, claimed=claimed,
                   unknown_labels={k: v for k, v in assignment.unknown_labels.items() if k not in labels},
                   sidecar_errors=sidecar, unserved=unserved, sidecar_notes=(*assignment.sidecar_notes, *notes))


def _is_5xx(row: Row) -> bool:
    return row.kind is Kind.HTTP_ERROR and row.status is not None and 500 <= row.status <= 599


def _unattributed_5xx(rows: Sequence[Row], assignment: Assignment) -> dict[int, tuple[int, list[str]]]:
    """Per status: how many 5xx answers no outcome claimed, and their labels. The counts are the assignment's
    (``rows`` give each label's status): a sequential look's assignment counts fewer answers than the run's rows."""
    found: dict[int, tuple[int, list[str]]] = {}
    for row in rows:
        if _is_5xx(row) and row.label in assignment.unknown_labels:
            assert row.status is not None
            count, labels = found.get(row.status, (0, []))
            if row.label not in labels:
                found[row.status] = (count + assignment.unknown_labels[row.label], [*labels, row.label])
    return found


def _named_5xx(rows: Sequence[Row], assignment: Assignment) -> dict[tuple[str, int], int]:
    """Per destination and status: 5xx answers already attributed by their body or header."""
    found: dict[tuple[str, int], int] = {}
    for row in rows:
        owner = assignment.claimed.get(row.label)
        if _is_5xx(row) and owner in assignment.errors:
            assert row.status is not None and owner is not None
            found[(owner, row.status)] = found.get((owner, row.status), 0) + row.count
    return found


def _share_out(count: int, counted: Mapping[str, int]) -> dict[str, int] | None:
    """Where ``count`` errors went when the counters account for them; None when they do not."""
    if len(counted) == 1 and next(iter(counted.values())) >= count:
        return {next(iter(counted)): count}
    if counted and sum(counted.values()) == count:
        return dict(counted)
    return None


def _unaccounted(status: int, count: int, counted: Mapping[str, int], seen: SidecarErrors,
                 undeclared: Mapping[str, int], declared: Sequence[str]) -> str:
    total = sum(counted.values())
    errors = f"{count:,} {status} answer" + ("" if count == 1 else "s")
    if total < count:
        shown = ", ".join(f"{n:,} on {name}" for name, n in counted.items())
        clusters = ", ".join(c for names in seen.clusters.values() for c in names) or "none"
        return (f"The sidecar's counters do not account for {errors} that name no destination: they show "
                f"{total:,} {status}s for the route's clusters during the run{f' ({shown})' if shown else ''} "
                f"(clusters: {clusters}). {_undeclared_text(status, undeclared, declared)}A route to a cluster "
                "that is not defined, or requests that bypass the sidecar, leave no count; they are left "
                "unattributed.")
    shown = ", ".join(f"{n:,} on {name}" for name, n in counted.items())
    return (f"The sidecar's counters show more {status}s ({shown}) than the {errors} respy saw name no "
            "destination: other traffic went through the sidecar during the run, so which destination respy's "
            "came from cannot be told; they are left unattributed.")


def _undeclared_text(status: int, undeclared: Mapping[str, int], declared: Sequence[str]) -> str:
    """Why counters the sidecar did keep were not used: they are for destinations the expectation does not name
    (say inline weights with names of their own, while the route's subsets are named otherwise)."""
    if not undeclared:
        return ""
    shown = ", ".join(f"{n:,} on {name!r}" for name, n in undeclared.items())
    names = ", ".join(repr(name) for name in declared)
    return (f"The route's clusters also counted {status}s for destinations the expectation does not declare "
            f"({shown}; declared: {names}): name the destinations as the route's subsets are named to use them. ")
