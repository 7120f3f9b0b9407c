"""The programmed split as an expectation: what the sidecar was told, in the form the verdict checks."""

from __future__ import annotations

from respy.rules.expectation import Expectation
from respy.rules.outcomes import Candidate, finish
from respy.sidecar.programmed import Programmed


def programmed_expectation(programmed: Programmed) -> Expectation:
    """The same ``Expectation`` the YAML gives, from the sidecar's config (the verdict and labels work alike)."""
    source = programmed.source_text
    candidates = [
        Candidate(key=o.key, name=o.name, long_name=o.long_name, probability=o.probability,
                  identifiers=o.identifiers, status=o.status, source=source)
        for o in programmed.outcomes()
    ]
    return Expectation(outcomes=finish(candidates), host=programmed.virtual_host, route=programmed.describe_route(),
                       sources=(source,))
