"""A measurement's sidecar side: read the sidecar before the run, its counters after, and locate a failure.

Before the run the sidecar's config gives the programmed split for the request (with no ``--expect`` it is
the expectation); after it, Envoy's counters say what the sidecar itself routed, the observed split is
checked against the programmed one too, and ``explain.sidecar.locate`` says where the split goes wrong.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from respy._errors import RespyError
from respy.report.render import Evaluation

if TYPE_CHECKING:
    from respy.check.plan import CheckPlan
    from respy.check.verdict import Verdict
    from respy.measurement import Measurement
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


def add_sidecar(evaluation: Evaluation | None, view: SidecarView | None, measurement: Measurement,
                plan: CheckPlan | None, *, declared_given: bool) -> Evaluation | None:
    """The PROGRAMMED % and SIDECAR COUNT columns, the JSON keys and the located cause."""
    if view is None:
        return evaluation
    view.finish()
    evaluation = evaluation if evaluation is not None else Evaluation()
    programmed = view.programmed
    verdict = _against_programmed(evaluation, programmed, measurement, plan, declared_given)
    evaluation.sidecar = {"sidecar": view.to_dict(), "programmed": programmed.to_dict() if programmed else None,
                          "sidecar_counts": view.sidecar_counts()}
    evaluation.sidecar_lines = [f"sidecar: {problem}" for problem in view.problems if not view.absent]
    if programmed is not None:
        evaluation.sidecar_lines.insert(0, f"sidecar ({view.origin}): {_programmed_line(programmed)}")
        evaluation.programmed_shares = programmed.shares() if programmed.checkable else None
        evaluation.sidecar_counts = _counts_by_outcome(view, programmed)
    _locate(evaluation, view, plan if declared_given else None, verdict)
    return evaluation


def _programmed_line(programmed: Programmed) -> str:
    source = f", from {programmed.source.describe()}" if programmed.source else ""
    return programmed.describe_route() + source if programmed.describe_route() else programmed.steps[-1]


def _against_programmed(evaluation: Evaluation, programmed: Programmed | None, measurement: Measurement,
                        plan: CheckPlan | None, declared_given: bool) -> Verdict | None:
    """The observed split checked against the programmed one (the run's own verdict when that was the plan)."""
    if not declared_given:
        return evaluation.verdict
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


def _counts_by_outcome(view: SidecarView, programmed: Programmed) -> dict[str, int] | None:
    if view.counts is None:
        return None
    counts: dict[str, int] = {}
    for cluster in programmed.clusters:
        found = view.counts.get(cluster.name)
        if found is not None:
            routed = found.connections if programmed.kind == "tcp" else found.answered
            counts[cluster.label] = counts.get(cluster.label, 0) + routed
    return counts


def _locate(evaluation: Evaluation, view: SidecarView, plan: CheckPlan | None, verdict: Verdict | None) -> None:
    from respy.explain.sidecar import BYPASS, locate

    declared = plan.expectation if plan is not None else None
    found = locate(view=view, declared=declared, host_port=_host_port(view), observed_vs_programmed=verdict)
    failed = evaluation.verdict is not None and not evaluation.verdict.passed
    shown = [f for f in found if f.where != BYPASS or failed]
    evaluation.sidecar["located"] = [f.to_dict() for f in shown]
    evaluation.located_lines = [f"where it goes wrong: {f.text()}" for f in shown]


def _host_port(view: SidecarView) -> str:
    programmed = view.programmed
    if programmed is not None:
        for cluster in programmed.clusters:
            if cluster.host and cluster.port:
                from respy.sidecar.istio_names import short_host

                return f"{short_host(cluster.host)}:{cluster.port}"
    return view.request_authority
