"""Aggregation of results: counts per label, bounded in memory, plus a latency histogram.

The request loop (``_engine``) feeds a :class:`Tally`; the printing lives in ``_report``.
Nothing here keeps a list of responses: memory stays bounded however many requests are sent.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

MAX_LABELS = 10_000
OVERFLOW_LABEL = "(responses past the distinct-label limit)"


class Kind(str, Enum):
    """What kind of result a row counts."""

    OK = "ok"  # a 2xx answer
    HTTP_ERROR = "http"  # an HTTP answer with a status outside 2xx
    TRANSPORT = "error"  # no HTTP answer: refused, timeout, reset, DNS, TLS...


@dataclass(frozen=True)
class Row:
    """One line of the distribution table."""

    label: str
    count: int
    kind: Kind
    status: int | None = None

    @property
    def is_ok(self) -> bool:
        return self.kind is Kind.OK


_OK = Kind.OK  # a module constant: an Enum member looked up on its class costs ~100 ns (Python 3.11)


def kind_of_status(status: int) -> Kind:
    return Kind.OK if 200 <= status < 300 else Kind.HTTP_ERROR


def format_percent(count: float, total: float) -> str:
    """The one rule for a share of a count, wherever it is printed (table, verdict line, diagnosis): one
    decimal of ``100 * count / total`` (``-`` when there is nothing to divide). Here, at the bottom layer, so
    that a plain run's table does not load the check (and with it the rules, yaml and re2) to print a share."""
    return f"{100.0 * count / total:.1f}%" if total else "-"


_MIN_S = 1e-5
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
_BUCKETS = 2200
_log = math.log


class LatencyHistogram:
    """Log-bucketed latencies: 1% relative precision from 10 µs to ~1 day, fixed size."""

    _MIN_S = _MIN_S
    _GROWTH = _GROWTH
    _BUCKETS = _BUCKETS

    def __init__(self) -> None:
        self._counts = [0] * self._BUCKETS
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.min_s = math.inf
        self._log_growth = math.log(self._GROWTH)

    def record(self, seconds: float) -> int:
        """Count one latency; returns its bucket (for :class:`RowLatency`)."""
        # on the hot path (once per answer): no attribute lookups beyond what is needed
        if seconds > _MIN_S:
            index = int(_log(seconds / _MIN_S) / _LOG_GROWTH) + 1
            if index >= _BUCKETS:
                index = _BUCKETS - 1
        else:
            index = 0
        self._counts[index] += 1
        self.count += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds
        if seconds < self.min_s:
            self.min_s = seconds
        return index

    def quantile(self, q: float) -> float | None:
        """Upper edge of the bucket holding quantile ``q`` (capped at the largest value seen)."""
        if self.count == 0:
            return None
        return _quantile(enumerate(self._counts), self.count, q, self.max_s)

    @property
    def mean_s(self) -> float | None:
        return self.total_s / self.count if self.count else None

    def buckets(self) -> list[tuple[float, int]]:
        """(upper edge in seconds, count) of every bucket that holds latencies, fastest first."""
        return [(_upper_edge(index), count) for index, count in enumerate(self._counts) if count]

    def merge(self, other: LatencyHistogram) -> None:
        for index, bucket in enumerate(other._counts):
            self._counts[index] += bucket
        self.count += other.count
        self.total_s += other.total_s
        self.max_s = max(self.max_s, other.max_s)
        self.min_s = min(self.min_s, other.min_s)

    def to_state(self) -> dict[str, object]:
        sparse = {str(i): c for i, c in enumerate(self._counts) if c}
        state: dict[str, object] = {"buckets": sparse, "count": self.count, "total_s": self.total_s,
                                    "max_s": self.max_s}
        if self.count:
            state["min_s"] = self.min_s
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> LatencyHistogram:
        histogram = cls()
        buckets = state.get("buckets", {})
        if isinstance(buckets, Mapping):
            for index, count in buckets.items():
                histogram._counts[int(index)] = int(count)
        histogram.count = int(state.get("count", 0))  # type: ignore[call-overload]
        histogram.total_s = float(state.get("total_s", 0.0))  # type: ignore[arg-type]
        histogram.max_s = float(state.get("max_s", 0.0))  # type: ignore[arg-type]
        if "min_s" in state:
            histogram.min_s = float(state["min_s"])  # type: ignore[arg-type]
        elif histogram.count:  # a result written before min_s was kept: the fastest bucket's lower edge
            fastest = next(i for i, c in enumerate(histogram._counts) if c)
            histogram.min_s = min(_upper_edge(fastest - 1) if fastest else 0.0, histogram.max_s)
        return histogram


def _upper_edge(index: int) -> float:
    return LatencyHistogram._MIN_S * LatencyHistogram._GROWTH**index


def _quantile(buckets: Iterable[tuple[int, int]], count: int, q: float, max_s: float) -> float:
    rank = max(1, math.ceil(q * count))
    seen = 0
    for index, bucket in buckets:
        seen += bucket
        if seen >= rank:
            return min(_upper_edge(index), max_s)
    return max_s


class RowLatency:
    """The latencies of one response row, in :class:`LatencyHistogram`'s buckets but stored sparsely (a row's
    answers fill a few dozen buckets): one per row stays cheap with thousands of rows."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.max_s = 0.0

    def record(self, index: int, seconds: float) -> None:
        self._counts[index] = self._counts.get(index, 0) + 1
        self.count += 1
        if seconds > self.max_s:
            self.max_s = seconds

    def quantile(self, q: float) -> float | None:
        if self.count == 0:
            return None
        return _quantile(sorted(self._counts.items()), self.count, q, self.max_s)

    def merge(self, other: RowLatency) -> None:
        for index, count in other._counts.items():
            self._counts[index] = self._counts.get(index, 0) + count
        self.count += other.count
        self.max_s = max(self.max_s, other.max_s)


class Batches:
    """Counts per label over consecutive batches of requests, for the independence check.

    A request's batch is fixed by the order it was *sent* in (its ticket), not the order its answer came
    back: versions with different latencies answer in a different order, which must not look like
    dependence. Keeps at most ``2 * target`` batches: when full, neighbours merge and the batch size
    doubles, so a run of any length is summarised in bounded memory.
    """

    def __init__(self, batch_size: int = 10, target: int = 20) -> None:
        self.batch_size = batch_size
        self.target = target
        self._batches: dict[int, dict[str, int]] = {}
        self._sizes: dict[int, int] = {}
        self._next_ticket = 0

    def add(self, label: str, ticket: int | None = None) -> None:
        if ticket is None:
            ticket = self._next_ticket
        if ticket >= self._next_ticket:
            self._next_ticket = ticket + 1
        index = ticket // self.batch_size
        counts = self._batches.get(index)
        if counts is None:
            counts = self._batches[index] = {}
            self._sizes[index] = 0
        counts[label] = counts.get(label, 0) + 1
        self._sizes[index] += 1
        if len(self._batches) > 2 * self.target:
            self._halve()

    def _halve(self) -> None:
        merged: dict[int, dict[str, int]] = {}
        sizes: dict[int, int] = {}
        for index, counts in self._batches.items():
            target = merged.setdefault(index // 2, {})
            for label, count in counts.items():
                target[label] = target.get(label, 0) + count
            sizes[index // 2] = sizes.get(index // 2, 0) + self._sizes[index]
        self._batches, self._sizes = merged, sizes
        self.batch_size *= 2

    def complete(self) -> list[dict[str, int]]:
        """The full batches in sending order (a batch still missing answers is left out)."""
        return [dict(self._batches[i]) for i in sorted(self._batches) if self._sizes[i] == self.batch_size]

    def extend(self, batches: list[dict[str, int]]) -> None:
        """Append finished batches of another run (merging parallel runs)."""
        for counts in batches:
            index = max(self._batches, default=-1) + 1
            self._batches[index] = dict(counts)
            self._sizes[index] = self.batch_size
        while len(self._batches) > 2 * self.target:
            self._halve()


class Connections:
    """Counts per label for each connection answers came on, for the per-connection independence check.

    If the split is made per connection (an L4 balancer, a TCP-proxied port), the answers of one kept-alive
    connection share one draw: their labels differ far more between connections than between requests.
    Bounded: at most ``max_connections`` rows (connection numbers wrap) of ``max_labels`` labels each.
    """

    def __init__(self, max_connections: int = 256, max_labels: int = 64) -> None:
        self.max_connections = max_connections
        self.max_labels = max_labels
        self._rows: dict[int, dict[str, int]] = {}

    def add(self, label: str, connection: int) -> None:
        row = self._rows.get(connection % self.max_connections)
        if row is None:
            row = self._rows[connection % self.max_connections] = {}
        if label not in row and len(row) >= self.max_labels:
            label = OVERFLOW_LABEL
        row[label] = row.get(label, 0) + 1

    def extend(self, other: Connections) -> None:
        """Add another run's connections as connections of their own (merging worker processes)."""
        offset = max(self._rows, default=-1) + 1
        for index, row in sorted(other._rows.items()):
            mine = self._rows.setdefault((offset + index) % self.max_connections, {})
            for label, count in row.items():
                mine[label] = mine.get(label, 0) + count

    def table(self) -> list[dict[str, int]]:
        """Label counts per connection, in connection order."""
        return [dict(self._rows[c]) for c in sorted(self._rows)]


Observer = Callable[[str, Kind, "int | None", "int | None", "int | None"], None]
# A row as answers are counted in it: its [count, first status], its latencies, its label and its kind
Entry = tuple[list[int], RowLatency, str, Kind]


class Tally:
    """Streaming counts per label, bounded to ``max_labels`` distinct labels.

    ``observer`` (a sequential check's look) is told of every answer as it is counted: its label, kind,
    status, ticket (send order) and connection. ``independence=False`` leaves :class:`Batches` and
    :class:`Connections` empty: only a check reads them, and a run that will not be checked (``respy URL``
    with no ``--expect`` and no sidecar) saves their cost on every answer.
    """

    def __init__(self, max_labels: int = MAX_LABELS, observer: Observer | None = None, *,
                 independence: bool = True) -> None:
        self.max_labels = max_labels
        self.independence = independence
        self._rows: dict[tuple[Kind, str], list[int]] = {}  # (kind, label) -> [count, first status]
        self._row_latency: dict[tuple[Kind, str], RowLatency] = {}
        # (kind, label) -> its row, its latencies and the label it is counted under: add()'s one look-up
        self._entries: dict[tuple[Kind, str], Entry] = {}
        self.statuses: dict[int, int] = {}  # HTTP status -> answers (no entry for requests with no answer)
        self.not_ok = 0  # requests that did not end in a 2xx answer
        self.latency = LatencyHistogram()
        self.batches = Batches()
        self.connections = Connections()
        self.observer = observer
        self.total = 0

    def add(
        self,
        label: str,
        kind: Kind,
        status: int | None = None,
        latency_s: float | None = None,
        ticket: int | None = None,
        connection: int | None = None,
    ) -> None:
        self.count(self.entry(label, kind, status), status, latency_s, ticket, connection)

    def entry(self, label: str, kind: Kind, status: int | None = None) -> Entry:
        """The row answers labelled ``label`` are counted in, for :meth:`count` (made on first sight, with
        ``status`` as its first status; past ``max_labels`` distinct labels, the overflow row)."""
        entry = self._entries.get((kind, label))
        return entry if entry is not None else self._enter(label, kind, status)

    def count(
        self,
        entry: Entry,
        status: int | None = None,
        latency_s: float | None = None,
        ticket: int | None = None,
        connection: int | None = None,
    ) -> None:
        """One answer more in the row ``entry`` (see :meth:`entry`; :meth:`add` finds it by label). Once per
        answer, at up to ~100,000 a second: a caller that knows the row already (the engine's labeller
        remembers it per distinct answer) saves the look-up."""
        slot, row_latency, label, kind = entry
        slot[0] += 1
        self.total += 1
        if self.independence:
            self.batches.add(label, ticket)
            if connection is not None:
                self.connections.add(label, connection)
        if status is not None:
            statuses = self.statuses
            statuses[status] = statuses.get(status, 0) + 1
        if kind is not _OK:
            self.not_ok += 1
        if latency_s is not None:
            row_latency.record(self.latency.record(latency_s), latency_s)
        if self.observer is not None:
            self.observer(label, kind, status, ticket, connection)

    def _enter(self, label: str, kind: Kind, status: int | None) -> Entry:
        """A label not seen yet: its row (past ``max_labels`` distinct ones, the overflow row), remembered
        for the next answers unless it overflowed (the overflow row's labels are not kept: memory stays
        bounded)."""
        rows = self._rows
        key = (kind, label)
        overflow = key not in rows and len(rows) >= self.max_labels
        if overflow:
            label = OVERFLOW_LABEL
            key = (kind, label)
        slot = rows.setdefault(key, [0, status if status is not None else -1])
        row_latency = self._row_latency.get(key)
        if row_latency is None:
            row_latency = self._row_latency[key] = RowLatency()
        entry = (slot, row_latency, label, kind)
        if not overflow:
            self._entries[key] = entry
        return entry

    def rows(self) -> list[Row]:
        """Every row, most frequent first (ties by label, for stable output)."""
        rows = [
            Row(label=label, count=count, kind=kind, status=None if status < 0 else status)
            for (kind, label), (count, status) in self._rows.items()
        ]
        rows.sort(key=lambda row: (-row.count, row.label))
        return rows

    def top(self, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` most frequent labels and their counts (cheap enough to call while the run goes on)."""
        return [(label, count) for (_, label), (count, _) in
                heapq.nlargest(limit, self._rows.items(), key=lambda item: item[1][0])]

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows():
            counts[row.label] = counts.get(row.label, 0) + row.count
        return counts

    @property
    def answered(self) -> int:
        """Requests that got an HTTP answer of any status."""
        return sum(count for (kind, _), (count, _) in self._rows.items() if kind is not Kind.TRANSPORT)

    def row_latency(self, row: Row) -> RowLatency:
        """The latencies of one row's requests (empty when none was timed)."""
        return self._row_latency.get((row.kind, row.label)) or RowLatency()

    def add_count(self, label: str, kind: Kind, count: int, status: int | None = None) -> None:
        """``count`` more answers of one row at once (a row read back from a saved result: no latency, no
        batch, and not bounded, since the saved result already was)."""
        slot = self._rows.setdefault((kind, label), [0, -1])
        slot[0] += count
        if slot[1] < 0 and status is not None:
            slot[1] = status
        self.total += count
        if status is not None and kind is not Kind.TRANSPORT:
            self.statuses[status] = self.statuses.get(status, 0) + count
        if kind is not Kind.OK:
            self.not_ok += count

    def merge(self, other: Tally) -> None:
        for (kind, label), (count, status) in other._rows.items():
            slot = self._rows.setdefault((kind, label), [0, status])
            slot[0] += count
        for key, histogram in other._row_latency.items():
            self._row_latency.setdefault(key, RowLatency()).merge(histogram)
        for code, count in other.statuses.items():
            self.statuses[code] = self.statuses.get(code, 0) + count
        self.not_ok += other.not_ok
        self.total += other.total
        self.latency.merge(other.latency)
        self.batches.extend(other.batches.complete())
        self.connections.extend(other.connections)
