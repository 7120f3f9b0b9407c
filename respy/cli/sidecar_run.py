"""A run's sidecar side: read the sidecar before the run, its counters after, and locate a failure.

Before the run the sidecar's config gives the programmed split for the request (with no ``--expect`` it is
the expectation); after it, Envoy's counters say what the sidecar itself routed, the observed split is
checked against the programmed one too, and ``explain.sidecar`` says where the split goes wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from respy._errors import RespyError
from respy._options import check_mapping
from respy.check.assign import assign, attribute_by_sidecar
from respy.check.evaluate import CheckSettings, Evaluation
from respy.check.plan import CheckPlan
from respy.check.programmed import programmed_expectation
from respy.check.verdict import Verdict, decide
from respy.explain.sidecar import SidecarReport, sidecar_report
from respy.measurement import Measurement
from respy.sidecar.errors import SidecarErrors, sidecar_errors
from respy.sidecar.programmed import Programmed
from respy.sidecar.view import SidecarView

if TYPE_CHECKING:
    from respy.cli.common import Streams
    from respy.cli.measure import SidecarRequest
    from respy.send.engine import Target


def open_sidecar(request: SidecarRequest, target: Target, streams: Streams) -> SidecarView:
    return SidecarView.open(admin=request.admin, config_dump=request.config_dump, url=target.url,
                            headers=dict(target.headers), method=target.method, http2=target.http2,
                            stdin=streams.stdin, dial=_dialled(target))


def _dialled(target: Target) -> tuple[str, int] | None:
    """Where ``--connect-to`` sends the connection: the sidecar routes by that address, not the URL's."""
    rule = target.connect_to
    url = httpx.URL(target.url)
    if rule is None or not rule.applies(url):
        return None
    dialled = rule.dial(url)
    return dialled.host, dialled.port or (443 if dialled.scheme == "https" else 80)


def programmed_plan(view: SidecarView, settings: CheckSettings) -> CheckPlan | None:
    """Without ``--expect``: the programmed split is what the run is checked against."""
    if view.programmed is None or not view.programmed.checkable:
        return None
    expectation = programmed_expectation(view.programmed)
    check_mapping(settings.mapping, {o.name for o in expectation.outcomes})
    return CheckPlan(expectation=expectation, rules=None, settings=settings, against="programmed",
                     notes=[f"expected: the split the sidecar was programmed with ({view.origin}); "
                            "give --expect to check the YAML you declared"])


def errors_after_run(view: SidecarView) -> SidecarErrors | None:
    """After the run, before the verdict: the counters read again, and the 5xx they saw per destination (to
    attribute the errors the answers alone do not). None when they could not be read or the route is not HTTP."""
    view.finish()
    programmed = view.programmed
    if view.counts is None or programmed is None or programmed.kind != "http":
        return None
    return sidecar_errors(view.counts, programmed)


def finish_sidecar(view: SidecarView | None, evaluation: Evaluation | None, measurement: Measurement,
                   plan: CheckPlan | None, seen: SidecarErrors | None, *, declared_given: bool) -> SidecarReport | None:
    """After the run: the answers checked against the programmed split (``seen``: ``errors_after_run``'s
    counters), the report."""
    if view is None:
        return None
    verdict = evaluation.verdict if evaluation is not None else None
    against_programmed = _against_programmed(view.programmed, measurement, plan, seen) if declared_given else verdict
    declared = plan.expectation if declared_given and plan is not None else None
    return sidecar_report(view, declared=declared, verdict=verdict, observed_vs_programmed=against_programmed)


def _against_programmed(programmed: Programmed | None, measurement: Measurement,
                        plan: CheckPlan | None, seen: SidecarErrors | None) -> Verdict | None:
    """The observed split checked against the programmed one, with the run's own settings."""
    if programmed is None or not programmed.checkable or plan is None or not measurement.answered:
        return None
    expectation = programmed_expectation(programmed)
    settings = plan.settings
    try:
        assignment = assign(measurement.rows, expectation)
        if seen is not None:
            assignment = attribute_by_sidecar(assignment, measurement.rows, seen)
        return decide(assignment, expectation, alpha=settings.alpha,
                      tolerance=settings.tolerance, strict=settings.strict, grace=settings.grace,
                      batches=measurement.tally.batches.complete(),
                      connections=measurement.tally.connections.table())
    except RespyError:  # e.g. a label that names several programmed destinations: no second verdict
        return None
