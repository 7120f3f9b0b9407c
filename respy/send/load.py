"""What to send and how much (:class:`Target`, :class:`Load`), and the state a run's workers share.

No I/O here and no heavy imports: the CLI, the worker processes and both lanes (``transport`` for plain
HTTP, ``httpx_lane`` for the rest) share these types.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from respy.send.classify import By
from respy.tally import Tally

if TYPE_CHECKING:  # connect_to imports httpx: a plain run without --connect-to must not
    from respy.send.connect_to import ConnectTo

DEFAULT_MAX_BODY = 64 * 1024 * 1024
STOP_GRACE_S = 1.0  # once sending stops, answers in flight get this long (at most the timeout)...
INTERRUPT_GRACE_S = 0.5  # ... or this long after Ctrl-C / SIGTERM, so that respy ends within a second
RAMP_START = 4  # workers a sequential check starts with
RAMP_EVERY = 2  # ... and one more per this many answers, up to C (see RunState.wanted_workers)


@dataclass(frozen=True)
class Target:
    """What every request looks like."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    data: bytes | None = None
    timeout: float = 10.0
    http2: bool = False
    verify: bool = True
    cacert: str | None = None
    keepalive: bool = True
    body_cap: int = 64 * 1024
    by: By = field(default_factory=lambda: By("body"))
    max_body: int = DEFAULT_MAX_BODY  # bytes of one body read (and mostly dropped) before the connection is cut
    connect_to: ConnectTo | None = None  # --connect-to: dial elsewhere, keep the URL's Host and TLS name
    proxy: str | None = None  # -x/--proxy: an HTTP proxy every request goes through (httpx's lane)


@dataclass(frozen=True)
class Load:
    """How many requests, how many at once, how fast, for how long (``requests=None``: no cap)."""

    requests: int | None = 1000
    concurrency: int = 100
    rate: float | None = None
    duration: float | None = None


@dataclass(frozen=True)
class RunSize:
    """How long the run will be: ``-n``, ``-z`` and ``--max-requests`` (no ``-n``, no ``-z``: sequential)."""

    requests: int | None = None
    duration: float | None = None
    max_requests: int | None = None


@dataclass
class RunState:
    """Shared between workers (one event loop, so plain fields are safe)."""

    limit: int | None
    rate: float | None
    started: float
    deadline: float | None
    issued: int = 0
    completed: int = 0
    in_flight: int = 0
    stop_reason: str | None = None
    signal_name: str | None = None
    connections: int = 0  # connections opened so far; each answer is tagged with its connection's number

    def take_ticket(self) -> int | None:
        """The next request's number, or None when sending is over. With a rate and a duration, only the
        tickets due before the end are issued: ``rate × duration`` in all, however many workers there are."""
        if self.stop_reason is not None:
            return None
        if self.limit is not None and self.issued >= self.limit:
            return None
        if self.deadline is not None:
            due = self.started + self.issued / self.rate if self.rate else time.perf_counter()
            if due >= self.deadline or time.perf_counter() >= self.deadline:
                self.stop_reason = "duration reached"
                return None
        ticket = self.issued
        self.issued += 1
        return ticket

    def due(self, ticket: int) -> float:
        """When ``ticket`` may be sent (perf_counter time), with a rate."""
        assert self.rate
        return self.started + ticket / self.rate

    def grace(self, timeout: float) -> float:
        """How long answers in flight may still take once sending has stopped."""
        return min(INTERRUPT_GRACE_S if self.stop_reason == "interrupted" else STOP_GRACE_S, timeout)

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def next_connection(self) -> int:
        number = self.connections
        self.connections += 1
        return number


def wanted_workers(concurrency: int, completed: int, ramping: bool) -> int:
    """How many workers should run now. A sequential check ramps up like TCP slow start: it starts with
    ``RAMP_START`` and adds one per ``RAMP_EVERY`` answers, so the verdict is not late by C requests already
    in flight, while a long run still reaches C after about ``RAMP_EVERY × C`` answers."""
    if not ramping:
        return concurrency
    return min(concurrency, RAMP_START + completed // RAMP_EVERY)


@dataclass
class RunResult:
    tally: Tally
    elapsed_s: float
    state: RunState


StopCheck = Callable[[Tally], "str | None"]
ProgressHook = Callable[[RunState, Tally], None]
