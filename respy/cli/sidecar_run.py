"""A measurement's sidecar side: read the sidecar before the run, its counters after, and locate a failure.

Before the run the sidecar's config gives the programmed split for the request (with no ``--expect`` it is
the expectation); after it, Envoy's counters say what the sidecar itself routed, the observed split is
checked against the programmed one too, and ``explain.sidecar`` says where the split goes wrong.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from respy._errors import RespyError

if TYPE_CHECKING:
    from respy.check.plan import CheckPlan
    from respy.check.verdict import Verdict
    from respy.explain.sidecar import SidecarReport
    from respy.measurement import Measurement
    from respy.report.render import Evaluation
    from respy.send.engine import Target
    from respy.sidecar.programmed import Programmed
    from respy.sidecar.view import SidecarView


def open_sidecar(args: argparse.Namespace, target: Target) -> SidecarView | None:
    admin = getattr(args, "envoy_admin", None)
    dump = getattr(args, "config_dump", None)
    if dump is None and admin is not None and admin.lower() == "none":
        return None
    from respy.sidecar.view import SidecarView

    return SidecarView.open(admin=admin, config_dump=dump, url=target.url, headers=dict(target.headers),
                            method=target.method, http2=target.http2)


def programmed_plan(view: SidecarView | None, args: argparse.Namespace) -> CheckPlan | None:
    """Without ``--expect``: the programmed split is what the run is checked against."""
    if view is None or view.programmed is None or not view.programmed.checkable:
        return None
    from respy.check.plan import CheckPlan, parse_maps
    from respy.check.programmed import programmed_expectation

    return CheckPlan(expectation=programmed_expectation(view.programmed), rules=None, mapping=parse_maps(args.maps),
                     alpha=args.alpha, tolerance=args.tolerance, strict=args.strict, grace=args.grace,
                     namespace=args.namespace, against="programmed",
                     notes=[f"expected: the split the sidecar was programmed with ({view.origin}); "
                            "give --expect to check the YAML you declared"])


def finish_sidecar(view: SidecarView | None, evaluation: Evaluation | None, measurement: Measurement,
                   plan: CheckPlan | None, *, declared_given: bool) -> SidecarReport | None:
    """After the run: the sidecar's counters, the answers checked against the programmed split, the report."""
    if view is None:
        return None
    from respy.explain.sidecar import sidecar_report

    view.finish()
    verdict = evaluation.verdict if evaluation is not None else None
    against_programmed = _against_programmed(view.programmed, measurement, plan) if declared_given else verdict
    declared = plan.expectation if declared_given and plan is not None else None
    return sidecar_report(view, declared=declared, verdict=verdict, observed_vs_programmed=against_programmed)


def _against_programmed(programmed: Programmed | None, measurement: Measurement,
                        plan: CheckPlan | None) -> Verdict | None:
    """The observed split checked against the programmed one, with the run's own settings."""
    if programmed is None or not programmed.checkable or plan is None or not measurement.answered:
        return None
    from respy.check.assign import assign
    from respy.check.programmed import programmed_expectation
    from respy.check.verdict import decide

    expectation = programmed_expectation(programmed)
    try:
        assignment = assign(measurement.rows, expectation)
        return decide(assignment, expectation, alpha=plan.alpha, tolerance=plan.tolerance, strict=plan.strict,
                      grace=plan.grace)
    except RespyError:  # e.g. a label that names several programmed destinations: no second verdict
        return None
