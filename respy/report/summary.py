"""The summaries hey and oha users look for, as lines: latency (min/mean/max and percentiles up to p99.9),
status codes (both computed by ``Measurement``), and a latency histogram."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

QUANTILES = ("p50", "p90", "p95", "p99", "p99.9")
HISTOGRAM_BINS = 10
BAR_CELLS = 40


class Latencies(Protocol):
    """What is read of a latency histogram (``respy.tally.LatencyHistogram``)."""

    count: int
    max_s: float
    min_s: float

    @property
    def mean_s(self) -> float | None: ...
    def quantile(self, q: float) -> float | None: ...
    def buckets(self) -> list[tuple[float, int]]: ...


def latency_summary_line(summary: Mapping[str, float | None]) -> str:
    """``latency min 1.0 / mean 2.3 / max 9.9 ms; p50 2.1, p90 3.0, p95 3.3, p99 5.0, p99.9 9.1 ms`` from
    ``Measurement.latency_summary_ms()``."""
    if summary.get("p50") is None:
        return "latency: nothing was timed"
    head = " / ".join(f"{name} {summary[name]:,.1f}" for name in ("min", "mean", "max"))
    tail = ", ".join(f"{name} {summary[name]:,.1f}" for name in QUANTILES)
    return f"latency {head} ms; {tail} ms"


def status_line(codes: Mapping[str, int]) -> str:
    """``status codes: 200 ×9,500, 503 ×500; no answer ×12`` from ``Measurement.status_codes()``."""
    statuses = ", ".join(f"{code} ×{count:,}" for code, count in codes.items() if code != "no answer") or "none"
    tail = f"; no answer ×{codes['no answer']:,}" if codes.get("no answer") else ""
    return f"status codes: {statuses}{tail}"


def histogram_lines(latency: Latencies, *, unicode_ok: bool = True) -> list[str]:
    """hey's response-time histogram: ``HISTOGRAM_BINS`` equal bins from the fastest to the slowest answer,
    each with its upper edge in ms, its count and a bar."""
    if not latency.count:
        return []
    low, high = latency.min_s, latency.max_s
    step = (high - low) / HISTOGRAM_BINS or 1e-9
    bins = [0] * HISTOGRAM_BINS
    for upper, count in latency.buckets():
        value = min(max(upper, low), high)
        bins[min(int((value - low) / step), HISTOGRAM_BINS - 1)] += count
    largest = max(bins) or 1
    block = "■" if unicode_ok else "#"
    edges = [f"{(low + step * (i + 1)) * 1000:,.1f}" for i in range(HISTOGRAM_BINS)]
    counts = [f"[{count:,}]" for count in bins]
    edge_width, count_width = max(map(len, edges)), max(map(len, counts))
    lines = ["latency histogram (ms):"]
    for edge, count_text, count in zip(edges, counts, bins, strict=True):
        bar = block * round(BAR_CELLS * count / largest)
        lines.append(f"  {edge:>{edge_width}} {count_text:<{count_width}} |{bar}")
    return lines
