"""The look at every answer of a sequential run, and the verdict it decides.

The engine's tally hands each answer (label, kind, status, ticket, connection) to :meth:`Look.observe`. Answers
are fed to the anytime-valid test in the order their requests were *sent* (tickets), not the order they came
back: a version that answers faster must not be over-represented at an early look (in send order the
routing draws are independent, whatever the latencies). The decision is the one a look at every answer makes:
one answer costs a label lookup (cached) and a few counts, and the test looks only where its last look could not
rule a decision out (``SequentialTest.look``: most answers provably cannot change a CONTINUE).

The first look where the verdict is clear is the stopping look, and its decision is the verdict: the answers
of the requests still in flight are counted in the table, never used to re-decide (a fixed-N rule applied
to the larger count, as respy did before, lost 19-25 % of decided PASSes at -c 100).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from respy._errors import MappingError
from respy.check.assign import Assignment, assign
from respy.check.sequential import BLOCKED, CONTINUE, FAIL, PASS, ConnectionCheck, SequentialTest, decide_sequential
from respy.check.stats import DISPERSION_ALPHA
from respy.rules.expectation import Expectation
from respy.tally import Kind, Row, Tally

if TYPE_CHECKING:
    from respy.check.verdict import Verdict

_STRAY = -1  # a weight-0 or undeclared destination: the hard check's business
# The per-connection check runs on a schedule of its own, the same whether or not the test skips looks (an
# anytime-valid e-value may be checked at any answers chosen in advance); its log is kept up to date per answer.
CONNECTION_EVERY = 16  # a power of 2

_STOP_REASONS = {
    PASS: "verdict clear",
    FAIL: "verdict clear",
    BLOCKED: "the errors alone make a PASS impossible",
}


@dataclass(frozen=True)
class Stop:
    """What the stopping look saw: the answers it decided on and why it stopped."""

    answers: int
    reason: str
    assignment: Assignment
    batches: tuple[dict[str, int], ...]
    connection_p: float
    connection_counts: tuple[tuple[int, ...], ...]


class Look:
    """Feeds a :class:`SequentialTest` one answer at a time and remembers the decision at the stopping look."""

    def __init__(
        self,
        test: SequentialTest,
        expectation: Expectation,
        mapping: dict[str, str] | None = None,
        *,
        grace: int = 0,
        budget: int | None = None,
    ) -> None:
        self.test = test
        self.expectation = expectation
        self.mapping = dict(mapping or {})
        self.grace = grace
        self.budget = budget
        self.connections = ConnectionCheck(len(test.positive_names), DISPERSION_ALPHA)
        self.tally: Tally | None = None  # the run's tally: its batches (send order) at the stopping look
        self.stop: Stop | None = None
        self._seen: dict[tuple[str, Kind, int | None], list[Any]] = {}  # (label, kind, status) -> see _first
        self._by_label: dict[str, list[Any]] = {}
        self._pending: dict[int, tuple[str, Kind, int | None, int | None]] = {}
        self._next_ticket = 0
        self._strays = 0
        # False when something read after the run (the sidecar's counters) may still attribute the errors: then
        # errors that make a PASS impossible from the answers alone are no reason to stop
        self.stop_on_errors = True

    @property
    def answers(self) -> int:
        """The answers taken so far, in send order (those from weight-0 destinations included)."""
        return self.test.n + self._strays

    # ---- the engine's side ---------------------------------------------------------------------------------
    def observe(self, label: str, kind: Kind, status: int | None, ticket: int | None, connection: int | None) -> None:
        """One answer came back (called by ``Tally.add``)."""
        if ticket == self._next_ticket and not self._pending:  # in order: the common case
            if self.stop is None:
                self._next_ticket = ticket + 1
                self._take(label, kind, status, connection)
            return
        if self.stop is not None:
            return
        if ticket is None:
            self._take(label, kind, status, connection)
            return
        self._pending[ticket] = (label, kind, status, connection)
        while self.stop is None and self._next_ticket in self._pending:
            label, kind, status, connection = self._pending.pop(self._next_ticket)
            self._next_ticket += 1
            self._take(label, kind, status, connection)

    def stop_check(self, tally: object = None) -> str | None:
        """The engine's stop check: a reason once the stopping look has been reached."""
        return None if self.stop is None else f"{self.stop.reason} after {self.stop.answers} answers"

    # ---- one answer ----------------------------------------------------------------------------------------
    def _take(self, label: str, kind: Kind, status: int | None, connection: int | None) -> None:
        """Count one answer, in send order; look when the test says a decision may have become possible
        (``SequentialTest.add``), and check the connections every ``CONNECTION_EVERY`` answers."""
        seen = self._by_label.get(label)  # keyed by the label alone: hashing the Kind enum costs more than all else
        if seen is None or seen[2] is not kind or seen[3] != status:
            seen = self._first(label, kind, status)
        seen[0] += 1
        category = seen[1]
        if category == _STRAY:
            self._strays += 1
            if self._strays > self.grace:
                self._stop("an answer came from a destination the rules do not allow")
            return
        test = self.test
        due = test.add(category)
        if connection is not None and category is not None:
            self.connections.add(connection, category)
        if not test.n & (CONNECTION_EVERY - 1) and self.connections.n and self.connections.check():
            self._stop("answers depend on the connection")
        elif due:  # otherwise no decision is possible yet: look() would say CONTINUE
            code = test.look()
            if code != CONTINUE and (code != BLOCKED or self.stop_on_errors):
                self._stop(_STOP_REASONS[code])

    def _first(self, label: str, kind: Kind, status: int | None) -> list[Any]:
        """The counter of (label, kind, status): [count, share, kind, status]; the latest one is kept by label."""
        seen = self._seen.get((label, kind, status))
        if seen is None:
            seen = self._seen[(label, kind, status)] = [0, self._classify(Row(label, 1, kind, status)), kind, status]
        self._by_label[label] = seen
        return seen

    def _classify(self, row: Row) -> int | None:
        try:
            one = assign([row], self.expectation, self.mapping)
        except MappingError:  # ambiguous: the verdict at the end says so; meanwhile it brackets like an error
            return None
        if one.undeclared:
            return _STRAY
        owner = next((name for name, count in {**one.counts, **one.errors}.items() if count), None)
        if owner is None:
            return None
        return self.test.index.get(owner, _STRAY)

    def _stop(self, reason: str) -> None:
        batches = tuple(self.tally.batches.complete()) if self.tally is not None else ()
        counts = tuple(tuple(row) for row in self.connections.table())
        self.stop = Stop(self.answers, reason, self._assignment(), batches, self.connections.p_value, counts)

    def _assignment(self) -> Assignment:
        rows: dict[tuple[Kind, str], list[Any]] = {}  # as the tally keeps them: (kind, label) -> [count, first status]
        for (label, kind, status), (count, *_) in self._seen.items():
            row = rows.setdefault((kind, label), [0, status])
            row[0] += count
        return assign([Row(label, count, kind, status) for (kind, label), (count, status) in rows.items()],
                      self.expectation, self.mapping)

    # ---- the verdict ---------------------------------------------------------------------------------------
    def finish(self) -> None:
        """The run is over: feed what is still waiting for an earlier ticket (cancelled or lost requests)."""
        for ticket in sorted(self._pending):
            if self.stop is not None:
                break
            label, kind, status, connection = self._pending.pop(ticket)
            self._take(label, kind, status, connection)
        if self.stop is None and self.connections.n:
            self.connections.check()

    def verdict(self, assignment: Assignment, batches: Sequence[dict[str, int]], total: int,
                attribute: Callable[[Assignment], Assignment] | None = None) -> Verdict:
        """The verdict: the stopping look's decision, or (no stop: budget spent, run ended) the test on every
        answer. ``assignment``/``batches`` are the whole run's; ``total`` its requests, in-flight ones included.
        ``attribute``: what the whole run's ``assignment`` went through after ``assign`` (the sidecar's counters,
        read after the run), applied to the stopping look's too."""
        self.finish()
        test = self.test  # its running maximum Bayes factor (the anytime p-value) carries over
        if self.stop is None:
            return decide_sequential(test, assignment, self.expectation, grace=self.grace, budget=self.budget,
                                     batches=batches, connection_p=self.connections.p_value,
                                     connection_counts=self.connections.table())
        stop = self.stop
        at_stop = attribute(stop.assignment) if attribute is not None else stop.assignment
        decided = decide_sequential(test, at_stop, self.expectation, grace=self.grace, budget=self.budget,
                                    batches=stop.batches, connection_p=stop.connection_p,
                                    connection_counts=stop.connection_counts)
        return replace(decided, requests=total, decided_after=stop.answers)
