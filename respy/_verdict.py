"""The verdict: does the observed split match the declared one? (PASS / FAIL / INCONCLUSIVE / CONSISTENT)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

VerdictOutcome = Literal["PASS", "FAIL", "INCONCLUSIVE", "CONSISTENT"]

EXIT_CODES: dict[str, int] = {"PASS": 0, "CONSISTENT": 0, "FAIL": 1, "INCONCLUSIVE": 3}


@dataclass(frozen=True)
class ShareEstimate:
    """One declared outcome: its expected and observed share, with the observed share's interval."""

    name: str
    expected: float
    observed: float
    count: int
    low: float
    high: float


@dataclass(frozen=True)
class Verdict:
    outcome: VerdictOutcome
    test: str
    statistic: float | None
    df: int | None
    p_value: float | None
    alpha: float
    tolerance: float
    requests: int
    requests_needed: int | None = None
    reasons: tuple[str, ...] = ()
    shares: tuple[ShareEstimate, ...] = ()
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def passed(self) -> bool:
        return self.outcome in ("PASS", "CONSISTENT")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]
