"""Checking a run against the declared routing: rules -> expectation -> (sequential stop) -> verdict.

The CLI builds a :class:`CheckPlan` before the run (so bad rules fail before any request is sent), hands
its ``stop_check`` to the engine when the run is sequential, and asks it to ``evaluate`` the measurement.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from respy._errors import UsageError
from respy.report.render import Evaluation
from respy.rules.expectation import Expectation

if TYPE_CHECKING:
    from respy.check.sequential import SequentialTest
    from respy.cli.main import Streams
    from respy.measurement import Measurement
    from respy.rules import RuleSet
    from respy.send.engine import Target
    from respy.tally import Tally

FIRST_CHECKS_EVERY = 10


def parse_maps(values: Sequence[str]) -> dict[str, str]:
    """``--map LABEL=DEST``: the label may itself contain '=' (the last one separates)."""
    mapping: dict[str, str] = {}
    for value in values:
        label, sep, dest = value.rpartition("=")
        if not sep or not label or not dest:
            raise UsageError(f"--map {value!r} must look like LABEL=DESTINATION")
        mapping[label] = dest
    return mapping


def load_rules(values: Sequence[str], *, namespace: str, url: str, headers: Mapping[str, str]) -> RuleSet:
    from respy.rules import load_inputs

    if "cluster" in values and not _is_path("cluster"):
        from respy.rules.cluster import load_cluster

        others = [v for v in values if v != "cluster"]
        return load_cluster(namespace=namespace, url=url, headers=headers, extra=others)
    return load_inputs(values, stdin=sys.stdin)


def _is_path(value: str) -> bool:
    from pathlib import Path

    return Path(value).exists()


@dataclass
class CheckPlan:
    """What a check needs before, during and after the run."""

    expectation: Expectation
    rules: RuleSet | None
    mapping: dict[str, str]
    alpha: float
    tolerance: float | None
    strict: bool
    grace: int
    namespace: str = "default"
    sequential: SequentialTest | None = None
    sequential_budget: int | None = None
    notes: list[str] = field(default_factory=list)
    against: str = "declared"  # where the expectation came from: the YAML, or "programmed" (the sidecar)
    _last_check: int = 0

    def stop_check(self, tally: Tally) -> str | None:
        """Called by the engine every few requests in a sequential run: a reason to stop, or None."""
        if self.sequential is None:
            return None
        total = tally.total
        if total - self._last_check < max(FIRST_CHECKS_EVERY, total // 100):
            return None  # every 10 requests at first, then every 1 %: the test stays valid however often it looks
        self._last_check = total
        from respy.check.assign import assign
        from respy.check.verdict import categories, hard_check

        assignment = assign(tally.rows(), self.expectation, self.mapping)
        if hard_check(assignment, self.expectation, self.grace).failed:
            return "an answer came from a destination the rules do not allow"
        cats = categories(assignment, self.expectation)
        counts = [assignment.counts.get(name, 0) for name in self.sequential.names]
        state = self.sequential.update(counts, unknown=cats.unknown)
        return f"verdict clear after {state.requests} requests" if state.decided else None

    def evaluate(self, measurement: Measurement) -> Evaluation:
        from respy.check.assign import assign
        from respy.check.verdict import decide, verdict_line

        assignment = assign(measurement.rows, self.expectation, self.mapping)
        batches = measurement.tally.batches.complete()
        if self.sequential is not None:
            from respy.check.sequential import decide_sequential

            verdict = decide_sequential(self.sequential, assignment, self.expectation, grace=self.grace,
                                        budget=self.sequential_budget, batches=batches)
        else:
            verdict = decide(assignment, self.expectation, alpha=self.alpha, tolerance=self.tolerance,
                             strict=self.strict, grace=self.grace, batches=batches)
        evaluation = Evaluation(expectation=self.expectation, assignment=assignment, verdict=verdict,
                                verdict_line=verdict_line(verdict, self.expectation, assignment, self.against),
                                notes=list(self.notes))
        if self.sequential is not None:
            measurement.extra["sequential"] = {"budget": self.sequential_budget, "stop_reason": measurement.stop_reason}
        if verdict.outcome == "FAIL":
            explain_failure(evaluation, measurement, self.rules, self.namespace)
        return evaluation


def explain_failure(evaluation: Evaluation, measurement: Measurement, rules: RuleSet | None, namespace: str) -> None:
    """Fill in the diagnosis: what the observed counts do fit, and which manifest is to blame."""
    from respy.explain.diagnosis import diagnose_evaluation

    diagnose_evaluation(evaluation, measurement, rules, namespace=namespace)


def plan_check(args: argparse.Namespace, target: Target, streams: Streams) -> CheckPlan:
    headers = dict(target.headers)
    rules = load_rules(args.expect, namespace=args.namespace, url=target.url, headers=headers)
    from respy.rules import resolve

    expectation = resolve(rules, url=target.url, headers=headers, method=target.method,
                          namespace=args.namespace, gateway=args.gateway)
    plan = CheckPlan(expectation=expectation, rules=rules, mapping=parse_maps(args.maps), alpha=args.alpha,
                     tolerance=args.tolerance, strict=args.strict, grace=args.grace, namespace=args.namespace)
    _validate_mapping(plan)
    for warning in expectation.warnings:
        print(f"respy: warning: {warning}", file=streams.err)
    if args.requests is None and not args.duration and not args.strict:
        _make_sequential(plan, args)
    elif args.requests is not None:
        _warn_if_too_few(plan, args.requests, streams)
    return plan


def _validate_mapping(plan: CheckPlan) -> None:
    names = {o.name for o in plan.expectation.outcomes}
    for label, dest in plan.mapping.items():
        if dest not in names:
            raise UsageError(f"--map {label}={dest}: no declared destination is called {dest!r} "
                             f"(the rules declare {', '.join(sorted(names))})")


def _make_sequential(plan: CheckPlan, args: argparse.Namespace) -> None:
    from respy.check.sequential import SequentialTest, budget

    probs = plan.expectation.probabilities
    plan.sequential = SequentialTest(probs, alpha=plan.alpha, tolerance=plan.tolerance)
    plan.sequential_budget = args.max_requests or budget(list(probs.values()), plan.alpha, plan.tolerance)


def _warn_if_too_few(plan: CheckPlan, n: int, streams: Streams) -> None:
    from respy.check.verdict import pre_run_warning

    warning = pre_run_warning(plan.expectation, n, plan.alpha, plan.tolerance)
    if warning:
        print(f"respy: warning: {warning}", file=streams.err)


def describe(expectation: Expectation) -> dict[str, Any]:
    return {o.name: o.probability for o in expectation.outcomes}
