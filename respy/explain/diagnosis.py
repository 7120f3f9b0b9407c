"""When a measured split FAILs: what the observed counts fit instead, and the manifest findings behind it.

Each candidate explanation is a split tested exactly like the declared one (Pearson chi-square, with the
same Monte Carlo fallback for small expected counts: ``respy.check.stats.chi_square``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from respy.check.assign import Assignment
from respy.check.stats import chi_square
from respy.check.verdict import format_p
from respy.explain.analyze import Finding, Inputs, analyze
from respy.rules import (
    Expectation,
    IstioVersion,
    Outcome,
    RuleSet,
    client_scope,
    pod_labels,
    replicas,
    semantics,
    short_host,
    vs_hosts,
)
from respy.tally import format_percent

if TYPE_CHECKING:
    from respy.check.verdict import Verdict

MAX_PERMUTED = 4  # beyond this many destinations only pairwise swaps are tried (k! grows fast)
MAX_FINDINGS_IN_TEXT = 3


@dataclass(frozen=True)
class CandidateFit:
    """One explanation of the observed counts, as a split, with how well the counts fit it."""

    name: str
    description: str
    probabilities: dict[str, float]
    statistic: float
    p_value: float
    fits: bool
    explanation: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "fits": self.fits,
            "explanation": self.explanation,
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


@dataclass(frozen=True)
class Diagnosis:
    counts: dict[str, int]
    declared: dict[str, float]
    candidates: list[CandidateFit]
    findings: list[Finding] = field(default_factory=list)
    host: str = ""
    unmatched: dict[str, int] = field(default_factory=dict)  # labels seen, when none named a destination

    @property
    def best(self) -> CandidateFit | None:
        """Dependence first (it voids every per-request test), else the fitting candidate with the highest p."""
        fitting = [c for c in self.candidates if c.fits]
        for candidate in fitting:
            if candidate.name == "dependent":
                return candidate
        return max(fitting, key=lambda c: c.p_value, default=None)

    def to_list(self) -> list[dict[str, Any]]:
        best = self.best
        return [{**c.to_dict(), "best": c is best} for c in self.candidates]

    def text(self) -> str:
        """What a person should read: the best fit (or that none fits), then the findings on this host."""
        return " ".join(part for part in (self._lead(), self._findings_text()) if part)

    def _lead(self) -> str:
        if self.unmatched:
            return no_destination_named(self.unmatched)
        if not self.candidates:
            return ""
        best = self.best
        observed = "Observed " + _shares(self.counts)
        declared = "/".join(_pct(p) for p in self.declared.values())
        if best is None:
            tried = "; ".join(f"{c.description} {format_p(c.p_value)}" for c in self.candidates)
            return (f"{observed} fits neither the declared {declared} nor any usual cause ({tried}): the routing "
                    "applied is probably not the one given, or it changed during the run.")
        if best.name == "dependent":
            return best.explanation
        return f"{observed} fits {best.description} ({format_p(best.p_value)}), not the declared {declared}: " \
               f"{best.explanation}."

    def _findings_text(self) -> str:
        if not self.findings:
            return ""
        shown = list(self.findings[:MAX_FINDINGS_IN_TEXT])
        parts = [f"{f.object} {f.message}: {f.fix}." for f in shown]
        rest = len(self.findings) - len(shown)
        if rest:
            parts.append(f"({rest} more: run respy analyze on the manifests.)")
        return " ".join(parts)


def diagnose(
    counts: Mapping[str, int],
    expectation: Expectation,
    *,
    rules: RuleSet | None,
    errors_by_destination: Mapping[str, int] | None = None,
    dependent: bool = False,
    alpha: float = 0.01,
    namespace: str = "default",
    istio_version: IstioVersion | None = None,
    sidecar: bool | None = None,
    unmatched: Mapping[str, int] | None = None,
) -> Diagnosis:
    """Test the usual explanations of a failed split against ``counts`` (per declared destination name).

    ``istio_version`` orders the causes of an equal split (None: unknown, both orders' causes are listed);
    ``sidecar`` is whether the client's sidecar was seen (None: not known). When no answer was attributed to
    any destination (``counts`` all zero, ``unmatched`` the labels seen), no split can be fitted: every
    candidate's premise fails, so none is offered, only how to attribute.
    """
    destinations = list(expectation.destinations)
    names = [o.name for o in destinations]
    observed = {name: int(counts.get(name, 0)) for name in names}
    declared = _normalised({o.name: o.probability for o in destinations})
    if not any(observed.values()) and unmatched:
        return Diagnosis(observed, declared, [], _findings(rules, expectation.host, namespace, istio_version),
                         expectation.host, unmatched=dict(unmatched))
    short = short_host(expectation.host) if expectation.host else "the service"
    fitter = _Fitter(observed, alpha)
    candidates: list[CandidateFit] = []
    if dependent:
        candidates.append(_dependent())
    causes = equal_split_causes(rules, expectation, namespace, istio_version, sidecar)
    builders = (
        _equal(fitter, short, causes),
        _replica_ratio(fitter, short, destinations, expectation.host, rules, namespace, causes),
        _swapped(fitter, declared),
        _missing(fitter, declared),
        _failing(fitter, declared, errors_by_destination or {}),
    )
    for candidate in builders:
        if candidate is not None and not any(_same(candidate, c) for c in candidates):
            candidates.append(candidate)
    findings = _findings(rules, expectation.host, namespace, istio_version)
    return Diagnosis(observed, declared, candidates, findings, expectation.host)


def diagnose_verdict(verdict: Verdict | None, assignment: Assignment, expectation: Expectation,
                     rules: RuleSet | None, *, namespace: str = "default",
                     istio_version: IstioVersion | None = None) -> Diagnosis:
    """Diagnose a FAILed check of ``assignment`` against ``expectation``.

    Errors whose label names a destination (e.g. ``503 ... single``) count as that destination's failures;
    the verdict's check over batches marks answers as dependent (a split made per connection that still
    fails counting each connection once is diagnosed like any other split).
    """
    checks = verdict.independence if verdict is not None else None
    return diagnose(
        assignment.counts, expectation, rules=rules,
        errors_by_destination=errors_by_destination(assignment, expectation),
        dependent=checks is not None and checks.drifted,
        alpha=verdict.alpha if verdict is not None else 0.01,
        namespace=namespace,
        istio_version=istio_version,
        sidecar=sidecar_seen(),
        unmatched={**assignment.undeclared, **assignment.unknown_labels},
    )


def no_destination_named(labels: Mapping[str, int], shown: int = 3) -> str:
    """The advice when not one answer named a declared destination: the labels seen, and the two ways to
    attribute them (``--map``, or a ``--by`` that picks the part of the answer naming the version)."""
    top = sorted(labels.items(), key=lambda item: -item[1])
    listed = ", ".join(f"{label!r} ×{count:,}" for label, count in top[:shown])
    more = f" and {len(top) - shown:,} more" if len(top) > shown else ""
    return (f"No answer named a destination (labels seen: {listed}{more}), so no split can be judged: say which "
            f"destination each label comes from with --map 'LABEL=DESTINATION', or count by the part of the answer "
            f"that names the version with --by regex:PATTERN (e.g. --by 'regex:version=(\\w+)') or --by header:NAME.")


def sidecar_seen() -> bool | None:
    """In a pod: whether the istio-proxy sidecar's admin port (127.0.0.1:15000) answers; outside one, ``None``."""
    import os
    import socket

    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    try:
        with socket.create_connection(("127.0.0.1", 15000), timeout=0.3):
            return True
    except OSError:
        return False


def errors_by_destination(assignment: Assignment, expectation: Expectation) -> dict[str, int]:
    """Error answers (not 2xx, not a declared status) whose label names one declared destination
    (``respy.check.assign.assign`` attributes them)."""
    return {name: count for name, count in assignment.errors.items() if count}


def _findings(rules: RuleSet | None, host: str, namespace: str, istio_version: IstioVersion | None) -> list[Finding]:
    if rules is None or not rules.objects or not host:
        return []
    found = analyze(rules, host=host, namespace=namespace, istio_version=istio_version)
    problems = [f for f in found if f.is_problem]
    return problems or found


def _same(a: CandidateFit, b: CandidateFit) -> bool:
    keys = set(a.probabilities) | set(b.probabilities)
    return all(abs(a.probabilities.get(k, 0) - b.probabilities.get(k, 0)) < 1e-9 for k in keys)


class _Fitter:
    """Tests a candidate split against the observed counts, the way the verdict tests the declared one."""

    def __init__(self, observed: Mapping[str, int], alpha: float) -> None:
        self.observed = dict(observed)
        self.alpha = alpha

    def fit(self, name: str, description: str, probabilities: Mapping[str, float], explanation: str,
            counts: Mapping[str, int] | None = None) -> CandidateFit:
        counts = dict(counts if counts is not None else self.observed)
        probs = _normalised({k: probabilities.get(k, 0.0) for k in counts})
        values, weights = list(counts.values()), list(probs.values())
        if any(c > 0 and p <= 0 for c, p in zip(values, weights, strict=True)):
            # answers where this candidate sends nothing: it cannot be the explanation
            return CandidateFit(name, description, probs, math.inf, 0.0, False, explanation)
        result = chi_square(values, weights, alpha=self.alpha)
        return CandidateFit(name, description, probs, result.statistic, result.p_value,
                            result.p_value >= self.alpha, explanation)

    @property
    def answered(self) -> list[str]:
        return [k for k, v in self.observed.items() if v > 0]


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(max(w, 0.0) for w in weights.values())
    return {k: (max(w, 0.0) / total if total > 0 else 0.0) for k, w in weights.items()}


def _equal(fitter: _Fitter, short: str, causes: str) -> CandidateFit | None:
    answered = fitter.answered
    if len(answered) < 2:
        return None
    probs = {k: 1.0 / len(answered) for k in answered}
    return fitter.fit(
        "equal", f"an equal split across {len(answered)} versions", probs,
        f"Istio's route rules are probably not applied to {short} (Kubernetes' own balancing spreads requests "
        f"evenly over the pods, whatever the weights say). {causes}",
    )


def _replica_ratio(fitter: _Fitter, short: str, destinations: Sequence[Outcome], host: str,
                   rules: RuleSet | None, namespace: str, causes: str) -> CandidateFit | None:
    counts = _ready_pods(destinations)
    if counts is None and rules is not None:
        counts = destination_replicas(rules, host, destinations, namespace)
    if counts is None or sum(counts.values()) == 0:
        return None
    ratio = ":".join(str(counts[d.name]) for d in destinations)
    return fitter.fit(
        "replicas", f"the replica ratio {ratio} of the workloads", {k: float(v) for k, v in counts.items()},
        f"traffic follows the number of pods per version, so Istio's route rules are probably not applied to "
        f"{short} (Kubernetes balances over all pods of the Service). {causes}",
    )


def equal_split_causes(rules: RuleSet | None, expectation: Expectation, namespace: str,
                       istio_version: IstioVersion | None, sidecar: bool | None) -> str:
    """Why route rules may not apply, most likely first for the Istio version, with the evidence at hand.

    Since Istio 1.3 an unnamed port is sniffed and HTTP on it is routed by the HTTP table, so the port name is
    a cause only on 1.1/1.2 (first there: the tutorial's bug). Otherwise a client without a sidecar (IST0102
    NamespaceNotInjected / IST0103 PodMissingProxy) bypasses every rule; then rules not visible to the client,
    then a Host that names another host. A Sidecar resource given that leaves out the VirtualService comes first:
    the manifests show it.
    """
    causes = [_no_sidecar(sidecar, rules, namespace), _not_visible(namespace), _host_mismatch(expectation)]
    port = ("the Service port's name does not start with http- (nor appProtocol: http): before Istio 1.3 such a "
            "port is plain TCP and http rules do not apply (IST0118)")
    if istio_version is not None and not semantics.has(istio_version, semantics.SNIFFING):
        causes.insert(0, port)
    elif istio_version is None:
        causes.append(port + "; only if the mesh runs Istio 1.1/1.2")
    hidden = _hidden_by_sidecar(rules, expectation, namespace) if rules is not None else None
    if hidden is not None:
        causes.insert(0, f"the client's Sidecar resource does not import the VirtualService, so the client's "
                         f"sidecar gets no route from it: {hidden} (add it to the egress hosts)")
    numbered = "; ".join(f"{i}) {c}" for i, c in enumerate(causes, 1))
    return f"Likely causes for {semantics.version_text(istio_version)}" \
           f"{'' if istio_version else ' (version unknown: give --istio-version)'}, most likely first: {numbered}"


def _no_sidecar(sidecar: bool | None, rules: RuleSet | None, namespace: str) -> str:
    text = ("the client has no sidecar (its pod is not injected: istio-injection=enabled on the namespace, or "
            "sidecar.istio.io/inject; IST0102/IST0103), so requests go straight to the Service")
    if sidecar is None and rules is not None and _not_injected(rules, namespace):
        return text + f" (namespace {namespace} is given without istio-injection=enabled or istio.io/rev)"
    if sidecar is False:
        return text + " (no sidecar admin port at 127.0.0.1:15000 in this pod: that is the cause)"
    if sidecar is True:
        return text + " (a sidecar answered at 127.0.0.1:15000, so probably not this)"
    return text


def _not_injected(rules: RuleSet, namespace: str) -> bool:
    """IST0102 NamespaceNotInjected: the client's Namespace object is given and asks for no injection."""
    for ns in rules.of_kind("Namespace"):
        if ns.name == namespace:
            labels = (ns.body.get("metadata") or {}).get("labels") or {}
            return labels.get("istio-injection") != "enabled" and "istio.io/rev" not in labels
    return False


def _not_visible(namespace: str) -> str:
    return (f"the VirtualService is not visible to clients in namespace {namespace} (its exportTo, its "
            "namespace, or a Sidecar's egress hosts)")


def _hidden_by_sidecar(rules: RuleSet, expectation: Expectation, namespace: str) -> str | None:
    """The client's Sidecar resource, when its egress hosts leave out the VirtualServices for the host (as
    ``rules.client_scope`` reads it: the catch-all listener, the diagnosis knowing no port)."""
    scope = client_scope(rules, namespace, None)
    if scope is None:
        return None
    hosts = [(vs, vs_hosts(vs, namespace)) for vs in rules.of_kind("VirtualService")]
    left_out = [vs for vs, names in hosts if expectation.host in names and not scope.imports(vs.ns(namespace), names)]
    if not left_out:
        return None
    names = ", ".join(f"{vs.ns(namespace)}/{expectation.host}" for vs in left_out)
    return f"{scope.describe(scope.sidecar.ref_in(namespace))} leaves out {names}"


def _host_mismatch(expectation: Expectation) -> str:
    return (f"the Host the client sends is not a host of the rules ({short_host(expectation.host) or 'the host'} "
            "or its FQDN): another name, or an IP, gets no virtual host from them")


def _swapped(fitter: _Fitter, declared: Mapping[str, float]) -> CandidateFit | None:
    names, probs = list(declared), list(declared.values())
    orders = _reorderings(len(names))
    best: CandidateFit | None = None
    for order in orders:
        swapped = {names[i]: probs[j] for i, j in enumerate(order)}
        if all(abs(swapped[n] - declared[n]) < 1e-9 for n in names):
            continue
        shares = "/".join(_pct(swapped[n]) for n in names)
        candidate = fitter.fit(
            "swapped", f"the declared weights swapped ({shares})", swapped,
            "the weights look attached to the wrong destinations: check which subset each weight names, and "
            "the labels each subset selects in the DestinationRule",
        )
        if best is None or candidate.p_value > best.p_value:
            best = candidate
    return best


def _reorderings(k: int) -> list[tuple[int, ...]]:
    if k <= MAX_PERMUTED:
        return list(itertools.permutations(range(k)))
    orders = []
    for i, j in itertools.combinations(range(k), 2):
        order = list(range(k))
        order[i], order[j] = j, i
        orders.append(tuple(order))
    return orders


def _missing(fitter: _Fitter, declared: Mapping[str, float]) -> CandidateFit | None:
    answered = fitter.answered
    silent = [k for k, p in declared.items() if p > 0 and k not in answered]
    if not silent or not answered:
        return None
    probs = {k: declared[k] if k in answered else 0.0 for k in declared}
    if sum(probs.values()) <= 0:
        return None
    return fitter.fit(
        "missing", f"only {_names(answered)} answering (the declared weights among those)", probs,
        f"{_names(silent)} never answered: its pods may be missing or not ready, or its subset selects no pod "
        "(its share then answers 503)",
    )


def _failing(fitter: _Fitter, declared: Mapping[str, float], errors: Mapping[str, int]) -> CandidateFit | None:
    errors = {k: int(v) for k, v in errors.items() if k in declared and v > 0}
    if not errors:
        return None
    combined = {k: fitter.observed.get(k, 0) + errors.get(k, 0) for k in declared}
    rates = ", ".join(f"{k} answered {errors[k]} errors ({_pct(errors[k] / combined[k])}% of its requests)"
                      for k in errors)
    return fitter.fit(
        "failing", "the declared split once errors are counted back to their destination", declared,
        f"the routing is as declared but {_names(list(errors))} is failing: {rates}",
        counts=combined,
    )


def _dependent() -> CandidateFit:
    return CandidateFit(
        "dependent", "answers not independent (per-connection routing)", {}, math.nan, math.nan, True,
        "Answers were not independent (the dispersion check fired): the split is probably made per connection "
        "(TCP routing, kube-proxy, or a port Istio does not treat as HTTP), so a per-request test cannot judge it; "
        "rerun with a fresh connection per request (--no-keepalive) and check the Service's port name.",
    )


def _ready_pods(destinations: Sequence[Outcome]) -> dict[str, int] | None:
    """Ready pods per destination, from the expansion the resolver made (``Outcome.endpoints``)."""
    if not destinations or not all(d.endpoints for d in destinations):
        return None
    return {d.name: sum(count for _, count in d.endpoints) for d in destinations}


def destination_replicas(rules: RuleSet, host: str, destinations: Sequence[Outcome],
                         namespace: str = "default") -> dict[str, int] | None:
    """Replicas behind each destination (DR subset labels on the host's Service selector, or a backend
    Service's selector); ``None`` when a destination cannot be matched to workloads."""
    inputs = Inputs(rules, namespace)
    if not inputs.workloads:
        return None
    result: dict[str, int] = {}
    for outcome in destinations:
        found = _selector_of(inputs, host, outcome)
        if found is None:
            return None
        ns, selector = found
        result[outcome.name] = sum(
            replicas(w) for w in inputs.workloads
            if inputs.ns(w) == ns and all(pod_labels(w).get(k) == v for k, v in selector.items())
        )
    return result


def _selector_of(inputs: Inputs, host: str, outcome: Outcome) -> tuple[str, dict[str, str]] | None:
    ids = [outcome.name, outcome.name.rpartition("/")[2], *outcome.identifiers]
    service = inputs.by_fqdn.get(host)
    base = dict(_selector(service)) if service is not None else {}
    ns = inputs.ns(service) if service is not None else _namespace_of(host, inputs.namespace)
    subsets = inputs.subsets(host) or {}
    for name in ids:
        if name in subsets and (base or subsets[name]):
            return ns, {**base, **subsets[name]}
    for name in ids:
        backend = _service_named(inputs, name, ns)
        if backend is not None and _selector(backend):
            return inputs.ns(backend), _selector(backend)
    return None


def _selector(service: Any) -> dict[str, str]:
    selector = service.spec.get("selector") if service is not None else None
    return {str(k): str(v) for k, v in selector.items()} if isinstance(selector, Mapping) else {}


def _service_named(inputs: Inputs, name: str, namespace: str) -> Any:
    named = [s for s in inputs.services if s.name == name]
    same = [s for s in named if inputs.ns(s) == namespace]
    return same[0] if same else named[0] if named else None


def _namespace_of(host: str, default: str) -> str:
    parts = host.split(".")
    return parts[1] if len(parts) > 2 and parts[2] == "svc" else default


def _shares(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    return " / ".join(f"{format_percent(c, total)} {name}" for name, c in counts.items()) if total else "no answers"


def _pct(p: float) -> str:
    return f"{round(100 * p, 1):g}"


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
