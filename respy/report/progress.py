"""The progress line drawn on stderr while a run goes on (only on a terminal: the CLI decides).

``  4,210/10,000  42.1%  2.1 s, ETA 2.9 s  2,004 req/s  errors 12  single 90.2% multiple 9.8%``

A planned count gives the percentage and the ETA; a duration (``-z``) gives them by time; a sequential
check has a budget, not a target, so it says ``deciding (budget N)`` and no ETA. The live split shows the
most frequent labels (escaped and cut: they come from the service) as shares of the answers so far.
"""

from __future__ import annotations

import time
from typing import Protocol, TextIO

from respy.report.terminal import cells, clip, clip_middle, one_line, terminal_columns

LIVE_LABELS = 3
LABEL_CELLS = 18


class RunProgress(Protocol):
    """What the engine's progress hook passes (``respy.send.engine.RunState``)."""

    completed: int


class TallySoFar(Protocol):
    """What the line reads of the growing tally (``respy.tally.Tally``)."""

    total: int
    not_ok: int

    def top(self, limit: int) -> list[tuple[str, int]]: ...


class ProgressLine:
    """A progress hook ``(state, tally)`` that redraws one line of ``stream`` in place."""

    def __init__(self, stream: TextIO, planned: int | None, *, duration: float | None = None,
                 sequential: bool = False) -> None:
        self.stream = stream
        self.planned = planned
        self.duration = duration
        self.sequential = sequential
        self.started = time.perf_counter()
        self.width = terminal_columns(stream) or 80
        self.drawn = 0

    def __call__(self, state: RunProgress, tally: TallySoFar) -> None:
        line = clip(self.text(state.completed, tally, time.perf_counter() - self.started), self.width - 1)
        self.stream.write("\r" + line + " " * max(self.drawn - cells(line), 0))
        self.stream.flush()
        self.drawn = max(self.drawn, cells(line))

    def text(self, completed: int, tally: TallySoFar, elapsed: float) -> str:
        elapsed = max(elapsed, 1e-9)
        parts = [self._count(completed), self._timing(completed, elapsed), f"{completed / elapsed:,.0f} req/s"]
        if tally.not_ok:
            parts.append(f"errors {tally.not_ok:,}")
        split = self._split(tally)
        if split:
            parts.append(split)
        return "  " + "  ".join(part for part in parts if part)

    def _count(self, completed: int) -> str:
        if self.sequential and self.planned:
            return f"{completed:,} requests, deciding (budget {self.planned:,})"
        if self.planned:
            return f"{completed:,}/{self.planned:,} {100 * completed / self.planned:5.1f}%"
        return f"{completed:,} requests"

    def _timing(self, completed: int, elapsed: float) -> str:
        done = None
        if self.duration:
            done = min(elapsed / self.duration, 1.0)
        if self.planned and not self.sequential:
            share = completed / self.planned
            done = share if done is None else max(done, share)  # -z with -n: whichever ends the run first
        if self.duration and not self.planned:
            return f"{_seconds(elapsed)} of {_seconds(self.duration)}"
        if done is None or done <= 0:
            return _seconds(elapsed)
        return f"{_seconds(elapsed)}, ETA {_seconds(elapsed * (1 - done) / done)}"

    def _split(self, tally: TallySoFar) -> str:
        if not tally.total:
            return ""
        return ", ".join(f"{clip_middle(one_line(label), LABEL_CELLS)} {100 * count / tally.total:.1f}%"
                        for label, count in tally.top(LIVE_LABELS))

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
