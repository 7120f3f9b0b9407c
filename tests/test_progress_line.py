"""The progress line's text: percentage, elapsed and ETA, errors so far, the live split."""

from __future__ import annotations

import io

from respy.report.progress import ProgressLine
from respy.tally import Kind, Tally


def tally_of(counts: dict[str, int], errors: int = 0) -> Tally:
    tally = Tally()
    for label, count in counts.items():
        for _ in range(count):
            tally.add(label, Kind.OK, 200, 0.001)
    for _ in range(errors):
        tally.add("error: connection refused", Kind.TRANSPORT)
    return tally


def test_a_planned_run_shows_percentage_elapsed_eta_rate_errors_and_the_split() -> None:
    line = ProgressLine(io.StringIO(), 10_000)
    text = line.text(2_500, tally_of({"weather-backend: single": 2_200, "weather-backend: multiple": 250}, 50), 2.0)
    assert "2,500/10,000  25.0%" in text
    assert "2.0 s, ETA 6.0 s" in text
    assert "1,250 req/s" in text
    assert "errors 50" in text
    assert "weather-b…: single 88.0%, weather-b…multiple 10.0%, error: co… refused 2.0%" in text


def test_a_sequential_run_has_a_budget_not_a_target() -> None:
    text = ProgressLine(io.StringIO(), 1_473, sequential=True).text(400, tally_of({"v1": 400}), 1.0)
    assert "400 requests, deciding (budget 1,473)" in text
    assert "ETA" not in text and "%  " not in text.split("v1")[0]


def test_a_timed_run_counts_time() -> None:
    text = ProgressLine(io.StringIO(), None, duration=30.0).text(900, tally_of({"ok": 900}), 12.0)
    assert "900 requests" in text and "12.0 s of 30.0 s" in text


def test_a_label_cannot_drive_the_terminal_from_the_progress_line() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream, 10)
    line(type("State", (), {"completed": 1})(), tally_of({"\x1b]0;pwned\x07": 1}))
    assert "\x1b" not in stream.getvalue() and "\x07" not in stream.getvalue()
    line.clear()
    assert stream.getvalue().endswith("\r")
