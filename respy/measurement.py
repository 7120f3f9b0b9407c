"""A finished (or interrupted) run: the tally plus what is needed to read it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from respy.tally import Kind, LatencyHistogram, Row, Tally

if TYPE_CHECKING:
    from respy.check.verdict import Verdict
    from respy.rules import Expectation
    from respy.send.engine import Load, RunResult, Target


@dataclass
class Measurement:
    """What respy measured: counts per label, latencies, and how the run ended."""

    url: str
    tally: Tally
    elapsed_s: float
    planned: int | None = None
    concurrency: int = 0
    by: str = "body"
    stop_reason: str = ""
    interrupted_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(cls, result: RunResult, target: Target, load: Load) -> Measurement:
        """What the engine's ``run`` collected, ready to read, print and check."""
        return cls(
            url=redact_url(target.url),  # a password in the URL is sent, never printed
            tally=result.tally,
            elapsed_s=result.elapsed_s,
            planned=load.requests,
            concurrency=load.concurrency,
            by=target.by.describe(),
            stop_reason=result.state.stop_reason or "",
            interrupted_by=result.state.signal_name,
        )

    @property
    def requests(self) -> int:
        """Requests sent and accounted for (every one is in exactly one row)."""
        return self.tally.total

    @property
    def rows(self) -> list[Row]:
        return self.tally.rows()

    @property
    def counts(self) -> dict[str, int]:
        return self.tally.counts

    @property
    def errors(self) -> int:
        """Requests that did not end in a 2xx answer (non-2xx statuses and transport errors)."""
        return sum(row.count for row in self.rows if row.kind is not Kind.OK)

    @property
    def answered(self) -> int:
        return self.tally.answered

    @property
    def interrupted(self) -> bool:
        return self.interrupted_by is not None

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def latency(self) -> LatencyHistogram:
        return self.tally.latency

    def latency_ms(self) -> dict[str, float | None]:
        def ms(q: float) -> float | None:
            value = self.latency.quantile(q)
            return None if value is None else round(value * 1000, 3)

        return {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99)}

    def check(
        self,
        expectation: Expectation,
        *,
        alpha: float = 0.01,
        tolerance: float | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> Verdict:
        """The verdict of these counts against ``expectation`` (fixed-N chi-square and tolerance band).

        ``str(verdict)`` is the table and verdict line the CLI prints; ``mapping`` is ``--map`` (label -> outcome).
        """
        from respy._api import check

        return check(self, expectation, alpha=alpha, tolerance=tolerance, mapping=mapping)

    def to_dict(self) -> dict[str, Any]:
        from respy.report.render import measurement_dict

        return measurement_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def redact_url(url: str) -> str:
    """``http://user:secret@host/`` -> ``http://user:***@host/`` (output is pasted into tickets and chats)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))
