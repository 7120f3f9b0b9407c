"""Planning a check before the run: rules -> expectation -> (sequential stop) -> ``evaluate`` afterwards.

The CLI builds a :class:`CheckPlan` before the run (so bad rules fail before any request is sent), prints its
``warnings``, hands its ``stop_check`` to the engine when the run is sequential, and asks it to ``evaluate``
the measurement. ``respy merge --expect RULES`` makes the same plan for the merged counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from respy._options import check_mapping
from respy.check.evaluate import CheckSettings, Evaluation, Sequential, evaluate
from respy.check.verdict import pre_run_warning
from respy.measurement import Measurement
from respy.rules import RuleSet, load_cluster, load_inputs, resolve
from respy.rules.expectation import Expectation
from respy.send.load import RunSize
from respy.tally import Tally

if TYPE_CHECKING:
    from respy.sidecar.errors import SidecarErrors

CLUSTER = "cluster"


@dataclass(frozen=True)
class RequestShape:
    """The request the rules are resolved for: it picks the route."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "GET"
    gateway: str | None = None


def load_rules(values: Sequence[str], *, namespace: str, request: RequestShape, stdin: TextIO | None) -> RuleSet:
    """``--expect`` values: files, directories, ``-`` (``stdin``), weights, or ``cluster`` (the API server)."""
    if CLUSTER in values and not Path(CLUSTER).exists():
        others = [v for v in values if v != CLUSTER]
        return load_cluster(namespace=namespace, url=request.url, headers=request.headers, extra=others)
    return load_inputs(values, stdin=stdin)


@dataclass
class CheckPlan:
    """What a check needs before, during and after the run."""

    expectation: Expectation
    rules: RuleSet | None
    settings: CheckSettings
    sequential: Sequential | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    against: str = "declared"  # where the expectation came from: the YAML, or "programmed" (the sidecar)

    @property
    def sequential_budget(self) -> int | None:
        return self.sequential.budget if self.sequential is not None else None

    def tally(self) -> Tally:
        """The run's tally: in a sequential run it shows every answer to the look as it is counted."""
        look = self.sequential.look if self.sequential is not None else None
        tally = Tally(observer=look.observe if look is not None else None)
        if look is not None:
            look.tally = tally
        return tally

    def errors_attributed_after_run(self) -> None:
        """The sidecar's counters, read after the run, may attribute the errors the answers alone do not: a
        sequential run does not stop because those errors make a PASS impossible; it runs on until the verdict
        is clear otherwise, or its budget is spent, and the counters then decide."""
        look = self.sequential.look if self.sequential is not None else None
        if look is not None:
            look.stop_on_errors = False

    def stop_check(self, tally: Tally) -> str | None:
        """Called by the engine after answers in a sequential run: a reason to stop, or None. O(1): the look
        has already seen every answer, in send order, as the tally counted it."""
        look = self.sequential.look if self.sequential is not None else None
        return None if look is None else look.stop_check()

    def evaluate(self, measurement: Measurement, sidecar_errors: SidecarErrors | None = None) -> Evaluation:
        return evaluate(measurement, self.expectation, self.settings, rules=self.rules, sequential=self.sequential,
                        notes=[*self.expectation.notes, *self.notes], against=self.against,
                        sidecar_errors=sidecar_errors)


def plan_check(expect: Sequence[str], settings: CheckSettings, request: RequestShape, size: RunSize, *,
               stdin: TextIO | None = None) -> CheckPlan:
    """Read the rules, resolve the expectation for ``request``, check ``--map``, and choose fixed-N or
    sequential; ``warnings`` are for the user (the caller prints them)."""
    rules = load_rules(expect, namespace=settings.namespace, request=request, stdin=stdin)
    if settings.istio_version is None and rules.istio_version is not None:  # read from the cluster
        settings = replace(settings, istio_version=rules.istio_version)
    expectation = resolve(rules, url=request.url, headers=dict(request.headers), method=request.method,
                          namespace=settings.namespace, gateway=request.gateway, istio_version=settings.istio_version)
    check_mapping(settings.mapping, {o.name for o in expectation.outcomes})
    plan = CheckPlan(expectation=expectation, rules=rules, settings=settings, warnings=list(expectation.warnings))
    if size.requests is None and not size.duration and not settings.strict:
        plan.sequential = _sequential(expectation, settings, size.max_requests)
    elif size.requests is not None:
        warning = pre_run_warning(expectation, size.requests, settings.alpha, settings.tolerance)
        if warning:
            plan.warnings.append(warning)
    return plan


def _sequential(expectation: Expectation, settings: CheckSettings, max_requests: int | None) -> Sequential:
    from respy.check.look import Look  # numpy and scipy load with it: only when sequential
    from respy.check.sequential import SequentialTest, budget

    probs = expectation.probabilities
    test = SequentialTest(probs, alpha=settings.alpha, tolerance=settings.tolerance)
    limit = max_requests or budget(list(probs.values()), settings.alpha, settings.tolerance)
    look = Look(test, expectation, dict(settings.mapping), grace=settings.grace, budget=limit)
    return Sequential(test, limit, look)
