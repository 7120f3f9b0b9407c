"""A finished (or interrupted) run: the tally plus what is needed to read it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from respy._errors import ResultFormatError
from respy.tally import Kind, LatencyHistogram, Row, Tally

if TYPE_CHECKING:
    from typing_extensions import Self

    from respy.send.engine import Load, RunResult, Target

KINDS = {kind.value: kind for kind in Kind}


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
    merged: tuple[str, ...] | None = None  # ``respy merge``: where the merged results came from
    run_id: str = ""  # unique per run: `respy merge` refuses the same run twice
    started_at: float | None = None  # Unix time the run started: `respy merge` tells overlapping runs apart
    host_header: str | None = None  # the Host header the requests carried (it picks the route; not a secret)
    rate_known: bool = True  # False for merged runs that did not overlap in time: their rate means nothing
    merged_runs: tuple[str, ...] = ()  # ``respy merge``: the run ids merged into this one

    @classmethod
    def from_run(cls, result: RunResult, target: Target, load: Load) -> Self:
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
            run_id=os.urandom(16).hex(),  # 128 random bits, as uuid4 (whose module costs start-up time)
            started_at=time.time() - result.elapsed_s,
            host_header=next((value for name, value in target.headers if name.lower() == "host"), None),
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
        return self.requests / self.elapsed_s if self.elapsed_s > 0 and self.rate_known else 0.0

    @property
    def latency(self) -> LatencyHistogram:
        return self.tally.latency

    def latency_ms(self) -> dict[str, float | None]:
        def ms(q: float) -> float | None:
            value = self.latency.quantile(q)
            return None if value is None else round(value * 1000, 3)

        return {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99)}

    def latency_summary_ms(self) -> dict[str, float | None]:
        """What hey and oha print: min, mean, max and p50/p90/p95/p99/p99.9, in ms (None when nothing was timed)."""
        latency = self.latency
        summary: dict[str, float | None] = {
            "min": _ms(latency.min_s if latency.count else None), "mean": _ms(latency.mean_s),
            "max": _ms(latency.max_s if latency.count else None),
        }
        summary.update({name: _ms(latency.quantile(q)) for name, q in QUANTILES})
        return summary

    def status_codes(self) -> dict[str, int]:
        """``{"200": 9500, "503": 500, "no answer": 12}``: every HTTP status seen, and requests with no answer."""
        codes = {str(code): count for code, count in sorted(self.tally.statuses.items())}
        if self.requests - self.answered:
            codes["no answer"] = self.requests - self.answered
        return codes

    def row_latency_ms(self, row: Row) -> dict[str, float | None]:
        histogram = self.tally.row_latency(row)
        return {"p50": _ms(histogram.quantile(0.5)), "p99": _ms(histogram.quantile(0.99))}

    def __repr__(self) -> str:
        counts = ", ".join(f"{label!r}: {count:,}" for label, count in list(self.counts.items())[:5])
        more = f", … {len(self.counts) - 5:,} more" if len(self.counts) > 5 else ""
        return (f"<Measurement {self.url} requests={self.requests:,} errors={self.errors:,} "
                f"counts={{{counts}{more}}}>")

    def to_dict(self) -> dict[str, Any]:
        """The measurement part of ``-o json`` (the one JSON format: ``from_dict`` reads it back)."""
        total = self.requests
        data: dict[str, Any] = {
            "url": self.url,
            "requests": total,
            "planned": self.planned,
            "concurrency": self.concurrency,
            "by": self.by,
            "rows": [
                {
                    "label": row.label,
                    "count": row.count,
                    "percent": round(100.0 * row.count / total, 3) if total else 0.0,
                    "kind": row.kind.value,
                    "status": row.status,
                    "latency_ms": self.row_latency_ms(row),
                }
                for row in self.rows
            ],
            "errors": self.errors,
            "status_codes": self.status_codes(),
            "latency_ms": self.latency_ms(),
            "latency_summary_ms": self.latency_summary_ms(),
            "elapsed_s": round(self.elapsed_s, 6),
            "rate": round(self.rate, 3) if self.rate_known else None,
            "run_id": self.run_id,
            "started_at": _iso(self.started_at),
            "host_header": self.host_header,
            "stop_reason": self.stop_reason,
            "interrupted": self.interrupted,
            "latency_histogram": self.latency.to_state(),
        }
        if self.interrupted_by:
            data["interrupted_by"] = self.interrupted_by
        if self.merged is not None:
            data["merged"] = {"results": len(self.merged), "sources": list(self.merged),
                              "run_ids": list(self.merged_runs), "overlapped": self.rate_known}
        return data

    @classmethod
    def from_dict(cls, data: object, source: str = "the result") -> Self:
        """A result printed by ``-o json`` read back (rows that add up to ``requests``), else
        ``ResultFormatError`` naming ``source``."""
        checked = _checked_result(data, source)
        tally = Tally()
        for row in checked["rows"]:
            status = row.get("status")
            tally.add_count(row["label"], KINDS[row["kind"]], row["count"], status if _is_count(status) else None)
        tally.latency.merge(_histogram(checked, source))
        planned = checked.get("planned")
        return cls(
            url=str(checked.get("url")),
            tally=tally,
            elapsed_s=float(checked.get("elapsed_s") or 0.0),
            planned=planned if _is_count(planned) else None,
            concurrency=int(checked.get("concurrency") or 0),
            by=str(checked.get("by") or "body"),
            stop_reason=str(checked.get("stop_reason") or ""),
            interrupted_by=str(checked["interrupted_by"]) if checked.get("interrupted_by") else None,
            run_id=str(checked.get("run_id") or ""),
            started_at=_timestamp(checked.get("started_at")),
            host_header=str(checked["host_header"]) if checked.get("host_header") else None,
            merged_runs=_merged_runs(checked),
            rate_known=checked.get("rate", 0) is not None,  # None: merged runs that did not overlap in time
        )

    @property
    def runs(self) -> tuple[str, ...]:
        """The runs this result holds: its own, or for a merged result the runs merged into it."""
        return self.merged_runs or ((self.run_id,) if self.run_id else ())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _iso(timestamp: float | None) -> str | None:
    """Unix time as ISO 8601 in UTC with milliseconds (``2026-12-01T00:25:03.123+00:00``)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="milliseconds")


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _merged_runs(data: Mapping[str, Any]) -> tuple[str, ...]:
    merged = data.get("merged")
    if isinstance(merged, Mapping) and isinstance(merged.get("run_ids"), list):
        return tuple(str(run) for run in merged["run_ids"] if run)
    return ()


def redact_url(url: str) -> str:
    """``http://user:secret@host/`` -> ``http://user:***@host/`` (output is pasted into tickets and chats)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def _checked_result(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping) or not isinstance(data.get("rows"), list) or "requests" not in data:
        raise ResultFormatError(f"{where}: not a respy result (no `rows` and `requests`; made with respy -o json?)")
    total = 0
    for row in data["rows"]:
        if not (isinstance(row, Mapping) and isinstance(row.get("label"), str) and _is_count(row.get("count"))
                and row.get("kind") in KINDS):
            raise ResultFormatError(f"{where}: not a respy result (a row without label, count and kind: {row!r:.80})")
        total += row["count"]
    if not _is_count(data["requests"]) or total != data["requests"]:
        raise ResultFormatError(f"{where}: its rows add up to {total}, not to its `requests` ({data['requests']!r})")
    return data


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _histogram(data: Mapping[str, Any], where: str) -> LatencyHistogram:
    state = data.get("latency_histogram")
    if not isinstance(state, Mapping):
        return LatencyHistogram()
    try:
        return LatencyHistogram.from_state(state)
    except (TypeError, ValueError, IndexError):
        raise ResultFormatError(f"{where}: `latency_histogram` is malformed") from None
