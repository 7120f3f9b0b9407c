"""What the routing rules say this request should see: outcomes with probabilities."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from respy._errors import RulesError, UsageError


@dataclass(frozen=True)
class Outcome:
    """One thing a request can end in: a destination (a version) or a status.

    ``identifiers`` are the words that can name a destination in a response label (subset name,
    its label values such as ``v2``, the backend Service name). ``status`` is set for outcomes
    that are an HTTP status rather than a destination (fault abort, redirect, direct response,
    503 for a missing subset, 404 for no route). ``source`` names the manifest that declares it.
    ``pods`` are regular expressions matching the hostnames of the pods behind the destination (known when
    the workloads were given); ``endpoints`` are its workloads with their ready pods: the split the cluster's
    load balancer gives inside the destination on average (shown, never judged).
    """

    name: str
    probability: float
    identifiers: tuple[str, ...] = ()
    status: int | None = None
    source: str = ""
    pods: tuple[str, ...] = ()
    endpoints: tuple[tuple[str, int], ...] = ()

    @property
    def is_destination(self) -> bool:
        return self.status is None


@dataclass(frozen=True)
class Expectation:
    """The declared split for one request: outcomes whose probabilities sum to 1.

    Destinations with weight 0 are kept with probability 0 so that an answer from one can be named.
    """

    outcomes: tuple[Outcome, ...]
    host: str = ""
    route: str = ""
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)  # facts not available, secondary splits

    @classmethod
    def from_weights(cls, weights: Mapping[str, float]) -> Expectation:
        """An expectation from plain relative weights, e.g. ``{"single": 90, "multiple": 10}``."""
        if not weights:
            raise RulesError("no weights given")
        for name, weight in weights.items():
            if weight < 0:
                raise RulesError(f"weight of {name!r} is negative ({weight})")
        total = float(sum(weights.values()))
        if total <= 0:
            raise RulesError("weights add up to 0: no destination would get traffic")
        outcomes = tuple(
            Outcome(name=name, probability=weight / total, identifiers=(name,), source="inline weights")
            for name, weight in weights.items()
        )
        return cls(outcomes=outcomes, route="inline weights")

    @classmethod
    def from_files(
        cls,
        *paths: str | os.PathLike[str],
        url: str,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        namespace: str = "default",
        gateway: str | None = None,
        istio_version: str | None = None,
    ) -> Expectation:
        """The split the routing YAML in ``paths`` (files or directories) declares for a request to ``url``.

        The same resolution as ``respy URL --expect PATH...``: ``headers`` (e.g. ``{"Host": "weather-backend"}``)
        pick the rule, ``gateway`` names the Istio Gateway the request enters through (None: a sidecar),
        ``istio_version`` (``"1.2"``) judges behaviours that changed between Istio releases (None: today's).
        Raises ``RulesError`` (with file and line) or ``NotRoutedError`` when no rule routes the request.
        """
        from respy.rules import load_inputs, resolve  # rules/ resolves to an Expectation: this is the way back

        if not paths:
            raise UsageError("Expectation.from_files needs at least one file or directory")
        rules = load_inputs([os.fspath(path) for path in paths])
        return resolve(rules, url=url, headers=dict(headers or {}), method=method.upper(), namespace=namespace,
                       gateway=gateway, istio_version=istio_version)

    @property
    def destinations(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.is_destination)

    @property
    def probabilities(self) -> dict[str, float]:
        return {o.name: o.probability for o in self.outcomes}

    def outcome(self, name: str) -> Outcome:
        for candidate in self.outcomes:
            if candidate.name == name:
                return candidate
        raise KeyError(name)
