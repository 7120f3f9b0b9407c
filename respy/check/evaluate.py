"""One check of a measurement against an expectation: assignment -> verdict -> (on FAIL) diagnosis.

``evaluate`` is the only place an :class:`Evaluation` is made: the CLI (a run, ``respy demo``),
``respy merge`` and the library (``Measurement.check``, ``assert_split``) all call it, so they decide and
explain the same counts the same way. It takes typed settings, never parsed flags, and prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from respy.check.assign import Assignment, assign, attribute_by_sidecar
from respy.check.health import Health, assess, with_breaches
from respy.check.verdict import DEFAULT_ALPHA, Verdict, decide, verdict_line
from respy.explain.diagnosis import Diagnosis, diagnose_verdict
from respy.measurement import Measurement
from respy.rules import RuleSet
from respy.rules.expectation import Expectation

if TYPE_CHECKING:
    from respy.check.look import Look
    from respy.check.sequential import SequentialTest
    from respy.sidecar.errors import SidecarErrors


@dataclass(frozen=True)
class CheckSettings:
    """How to decide: ``--alpha``, ``--tolerance``, ``--strict``, ``--grace``, ``--map``, ``--namespace``,
    ``--istio-version``.

    ``judge_silence``: decide even when not a single HTTP answer came back (the library's ``check`` returns a
    verdict for any counts); the CLI shows no verdict then, only the declared split (exit code 4 says why).
    """

    alpha: float = DEFAULT_ALPHA
    tolerance: float | None = None
    strict: bool = False
    grace: int = 0
    mapping: Mapping[str, str] = field(default_factory=dict)
    namespace: str = "default"
    judge_silence: bool = False
    max_error_rate: float | None = None  # --max-error-rate: a destination above it makes the verdict FAIL
    max_latency_ratio: float | None = None  # --max-latency-ratio: likewise for its median latency
    istio_version: tuple[int, int] | None = None  # --istio-version (None: today's Istio, or unknown)


@dataclass(frozen=True)
class Sequential:
    """A run that stops once the verdict is clear: its test, its request budget, and the look that feeds the
    test every answer and keeps the decision made at the stopping look (None: decide on the final counts)."""

    test: SequentialTest
    budget: int
    look: Look | None = None


@dataclass(frozen=True)
class Evaluation:
    """Everything a check adds to a measurement: what was expected, which label went where, the verdict, why."""

    expectation: Expectation
    assignment: Assignment | None = None
    verdict: Verdict | None = None
    verdict_line: str = ""
    diagnosis: Diagnosis | None = None
    notes: tuple[str, ...] = ()
    sequential_budget: int | None = None
    health: Health | None = None  # each destination's error rate and latency, and the notes worth a line


def evaluate(
    measurement: Measurement,
    expectation: Expectation,
    settings: CheckSettings,
    *,
    rules: RuleSet | None = None,
    sequential: Sequential | None = None,
    notes: Sequence[str] = (),
    against: str = "declared",
    sidecar_errors: SidecarErrors | None = None,
) -> Evaluation:
    """The verdict on ``measurement`` (fixed-N, or ``sequential``'s), and on FAIL what the counts fit instead and
    which manifest in ``rules`` is to blame. ``against`` names where ``expectation`` came from in the verdict line
    (``declared``: the YAML; ``programmed``: the sidecar's config). ``sidecar_errors``: the 5xx the sidecar's
    counters saw per destination during the run, to attribute the errors the answers alone do not."""
    budget = sequential.budget if sequential is not None else None
    if measurement.requests and measurement.answered == 0 and not settings.judge_silence:
        return Evaluation(expectation=expectation)
    attribute = None
    if sidecar_errors is not None:
        def attribute(found: Assignment) -> Assignment:
            return attribute_by_sidecar(found, measurement.rows, sidecar_errors)
    assignment = assign(measurement.rows, expectation, dict(settings.mapping))
    if attribute is not None:
        assignment = attribute(assignment)
    verdict = _decide(measurement, expectation, assignment, settings, sequential, attribute)
    diagnosis = None
    if verdict.outcome == "FAIL":  # the split failed (not only a health limit): say what the counts fit instead
        diagnosis = diagnose_verdict(verdict, assignment, expectation, rules, namespace=settings.namespace,
                                     istio_version=settings.istio_version)
    health = assess(measurement.tally, assignment, expectation, alpha=settings.alpha,
                    max_error_rate=settings.max_error_rate, max_latency_ratio=settings.max_latency_ratio)
    verdict = with_breaches(verdict, health)
    return Evaluation(expectation=expectation, assignment=assignment, verdict=verdict,
                      verdict_line=verdict_line(verdict, expectation, assignment, against), diagnosis=diagnosis,
                      notes=tuple(notes), sequential_budget=budget, health=health)


def _decide(measurement: Measurement, expectation: Expectation, assignment: Assignment, settings: CheckSettings,
            sequential: Sequential | None, attribute: Callable[[Assignment], Assignment] | None = None) -> Verdict:
    batches = measurement.tally.batches.complete()
    if sequential is None:
        return decide(assignment, expectation, alpha=settings.alpha, tolerance=settings.tolerance,
                      strict=settings.strict, grace=settings.grace, batches=batches,
                      connections=measurement.tally.connections.table())
    if sequential.look is not None:  # the decision made at the stopping look is the verdict
        return sequential.look.verdict(assignment, batches, measurement.requests, attribute)
    from respy.check.sequential import decide_sequential  # numpy and scipy load with it: only when sequential

    return decide_sequential(sequential.test, assignment, expectation, grace=settings.grace, budget=sequential.budget,
                             batches=batches)
