"""Where the split goes wrong: declared (YAML) vs programmed (the sidecar's Envoy) vs observed (the answers).

declared ≠ programmed: the control plane did not apply what was declared (protocol, visibility, host, sync);
programmed ≠ observed: the data plane (no healthy endpoints, per-connection balancing, bypass). The first
difference along that chain is the one reported first; each finding is one line with where it lies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from respy.check.verdict import Verdict
from respy.rules.expectation import Expectation
from respy.sidecar.istio_names import short_host
from respy.sidecar.programmed import Programmed
from respy.sidecar.view import SidecarView

CONTROL_PLANE = "control plane"
DATA_PLANE = "data plane"
BYPASS = "bypass"
SAME_SHARE = 0.005  # shares closer than half a percentage point are the same weight written two ways


@dataclass(frozen=True)
class Located:
    """One finding about where the split goes wrong."""

    where: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "message": self.message}

    def text(self) -> str:
        return f"[{self.where}] {self.message}"


def split_words(shares: Mapping[str, float]) -> str:
    """``{"single": .9, "multiple": .1}`` -> ``90/10 (single/multiple)``."""
    items = [(name, share) for name, share in shares.items() if share > 0] or list(shares.items())
    numbers = "/".join(f"{share * 100:.4g}" for _, share in items)
    return f"{numbers} ({'/'.join(name for name, _ in items)})"


def declared_rule(declared: Expectation | None) -> str:
    """``VirtualService default/weather-backend`` when the declared split came from one."""
    if declared is None:
        return ""
    first = declared.route.split(",")[0].strip()
    return first if first.startswith(("VirtualService", "HTTPRoute")) else ""


def same_split(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    names = set(a) | set(b)
    return all(abs(a.get(n, 0.0) - b.get(n, 0.0)) <= SAME_SHARE for n in names)


def locate(*, view: SidecarView | None, declared: Expectation | None, host_port: str,
           observed_vs_programmed: Verdict | None = None) -> list[Located]:
    """The findings, first difference first. ``host_port`` names the service as the user dialled it."""
    if view is None:
        return []
    if view.absent:
        return [Located(BYPASS, "no sidecar answered on 127.0.0.1:15000: respy's requests bypass the mesh "
                                "(is this pod injected?)")]
    programmed = view.programmed
    if programmed is None:
        return []
    found = []
    if view.server is not None and view.server.state != "LIVE":
        # Envoy serves once its first config arrived (LIVE); before that its config may be partial
        found.append(Located(CONTROL_PLANE, f"the sidecar's Envoy is {view.server.state}, not LIVE: it has not "
                                            "received its whole config from istiod yet"))
    found += _control_plane(programmed, declared, host_port, observed_vs_programmed)
    found += _data_plane(programmed, view, observed_vs_programmed)
    return found


def _control_plane(programmed: Programmed, declared: Expectation | None, host_port: str,
                   verdict: Verdict | None) -> list[Located]:
    rule = declared_rule(declared)
    not_applied = f": istiod did not apply {rule}" if rule else ""
    port = host_port.rpartition(":")[2]
    if programmed.kind == "tcp":
        return [Located(CONTROL_PLANE, f"the sidecar has no HTTP route for {host_port} (port {port} is proxied as "
                                       f"TCP){not_applied}; each connection goes to one endpoint of all of "
                                       f"{_tcp_targets(programmed)}, whatever the weights")]
    if programmed.kind == "no_listener" or programmed.passthrough:
        return [Located(CONTROL_PLANE, f"the sidecar has no route for {host_port}: requests pass through to the "
                                       f"original destination unrouted{not_applied} (is the Service in the "
                                       "registry and visible to this namespace?)")]
    if programmed.kind in ("no_route", "no_virtual_host"):
        return [Located(CONTROL_PLANE, f"the sidecar has no route for this request in route config "
                                       f"{programmed.route_config!r} (Envoy answers 404){not_applied}")]
    if declared is None or not programmed.checkable:
        return []
    programmed_shares = programmed.shares()
    declared_shares = declared.probabilities
    if same_split(programmed_shares, declared_shares):
        return []
    told = split_words(programmed_shares)
    seen = f" and observed {told.split(' ')[0]}" if verdict is not None and verdict.passed else ""
    if programmed.source is None:
        # the route names no Istio config: istiod's default route for the Service (every pod of it)
        return [Located(CONTROL_PLANE, f"programmed {told} by no VirtualService (istiod's default route for the "
                                       f"Service){seen}, but declared {split_words(declared_shares)}: "
                                       f"{rule or 'the routing rule'} is not applied to this pod: not visible to "
                                       "its namespace (exportTo, or a Sidecar resource's egress hosts), or not "
                                       "pushed by istiod yet")]
    source = programmed.source.describe()
    return [Located(CONTROL_PLANE, f"programmed {told} (by {source}){seen}, but declared "
                                   f"{split_words(declared_shares)}: the applied {_kind(source)} is not the file "
                                   "you gave (or istiod has not pushed it yet)")]


def _kind(source: str) -> str:
    return source.split(" ")[0] if source.startswith(("VirtualService", "HTTPRoute")) else "config"


def _tcp_targets(programmed: Programmed) -> str:
    return ", ".join(c.host or c.name for c in programmed.clusters) or "the cluster"


def _data_plane(programmed: Programmed, view: SidecarView, verdict: Verdict | None) -> list[Located]:
    found = []
    for cluster in programmed.clusters:
        if cluster.known and cluster.share > 0 and cluster.total is not None and cluster.healthy == 0:
            share = f"{cluster.share * 100:.4g}%"
            found.append(Located(DATA_PLANE, f"cluster {cluster.name} has 0 healthy endpoints (of {cluster.total}): "
                                             f"its {share} share answers 503 (no healthy upstream)"))
        if not cluster.known:
            found.append(Located(CONTROL_PLANE, f"cluster {cluster.name} is routed to but not defined: Envoy "
                                                "answers 503 (is the DestinationRule subset defined?)"))
    if found or verdict is None or verdict.outcome != "FAIL":
        return found
    counted = _sidecar_words(view, programmed)
    return [Located(DATA_PLANE, f"the sidecar was programmed {split_words(programmed.shares())} but the answers "
                                f"differ{counted}: per-connection balancing, or requests that bypass the sidecar")]


def _sidecar_words(view: SidecarView, programmed: Programmed) -> str:
    if not view.counts:
        return ""
    routed = {c.label: view.counts[c.name].answered for c in programmed.clusters if c.name in view.counts}
    if not routed:
        return ""
    return " (the sidecar itself routed " + ", ".join(f"{n} to {label}" for label, n in routed.items()) + ")"


@dataclass
class SidecarReport:
    """What a run shows of the sidecar: the PROGRAMMED % and SIDECAR COUNT columns (by outcome name), the
    lines before the verdict (where the config came from, what could not be read), the located cause, and
    the JSON keys ``programmed``, ``sidecar_counts``, ``sidecar`` and ``located``."""

    programmed_shares: dict[str, float] | None = None
    counts: dict[str, int] | None = None
    lines: list[str] = field(default_factory=list)
    located: list[Located] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def columns(self, expected_names: set[str]) -> list[tuple[str, Callable[[str], str]]]:
        """The extra table columns, each a header and a cell for an outcome name."""
        found: list[tuple[str, Callable[[str], str]]] = []
        shares = self.programmed_shares
        if shares is not None:
            # names in common: an absent one got 0 %; none in common (a TCP proxy): the shares do not compare
            comparable = bool(set(shares) & expected_names)
            found.append(("PROGRAMMED %", lambda name: f"{100 * shares[name]:.1f}%" if name in shares
                          else ("0.0%" if comparable else "-")))
        counts = self.counts
        if counts is not None:
            found.append(("SIDECAR COUNT", lambda name: str(counts[name]) if name in counts else "-"))
        return found

    def located_lines(self) -> list[str]:
        return [f"where it goes wrong: {finding.text()}" for finding in self.located]

    def to_dict(self) -> dict[str, Any]:
        return {**self.data, "located": [finding.to_dict() for finding in self.located]}


def sidecar_report(view: SidecarView, *, declared: Expectation | None, verdict: Verdict | None,
                   observed_vs_programmed: Verdict | None) -> SidecarReport:
    """The report of one run: ``verdict`` is the run's own, ``observed_vs_programmed`` the check of the answers
    against the programmed split (the same one when no split was declared)."""
    programmed = view.programmed
    report = SidecarReport(data={"sidecar": view.to_dict(),
                                 "programmed": programmed.to_dict() if programmed else None,
                                 "sidecar_counts": view.sidecar_counts()})
    report.lines = [f"sidecar: {problem}" for problem in view.problems if not view.absent]
    if programmed is not None:
        report.lines.insert(0, f"sidecar ({view.origin}): {_programmed_line(programmed)}")
        report.programmed_shares = programmed.shares() if programmed.checkable else None
        report.counts = _counts_by_outcome(view, programmed)
    failed = verdict is not None and not verdict.passed
    found = locate(view=view, declared=declared, host_port=_host_port(view),
                   observed_vs_programmed=observed_vs_programmed)
    report.located = [f for f in found if f.where != BYPASS or failed]  # no sidecar matters only on a failure
    return report


def _programmed_line(programmed: Programmed) -> str:
    route = programmed.describe_route()
    source = f", from {programmed.source.describe()}" if programmed.source else ""
    return route + source if route else (programmed.steps[-1] if programmed.steps else programmed.kind)


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


def _host_port(view: SidecarView) -> str:
    """The service as people name it (``weather-backend:5000``), from the cluster the sidecar routes to."""
    programmed = view.programmed
    if programmed is not None:
        for cluster in programmed.clusters:
            if cluster.host and cluster.port:
                return f"{short_host(cluster.host)}:{cluster.port}"
    return view.request_authority
