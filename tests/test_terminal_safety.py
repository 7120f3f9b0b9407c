"""What reaches the terminal: a service's bytes never drive it, and wide characters keep the table straight.

A real server on 127.0.0.1 answers control sequences (OSC title, clear screen, colour, C1 CSI, bidi
override, NUL, DEL) and CJK and emoji bodies; the real CLI counts them. The table must hold no control
character but its line breaks and no bidi control, every border must line up in display cells (wcwidth),
and JSON / CSV must give back the exact bodies.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re

import pytest
import wcwidth
from hypothesis import given
from hypothesis import strategies as st
from support import run_cli

from respy.demo.localserver import LocalServer, Request, Response
from respy.report.table import Column, render_table
from respy.report.terminal import cells, clip, clip_middle, escape, json_safe, one_line, wrap

HOSTILE = [
    "title \x1b]0;pwned\x07 set",
    "clear \x1b[2J\x1b[H screen",
    "colour \x1b[31mred\x1b[0m",
    "c1 \x9b31m csi",
    "bidi abc\u202edcba\u202c end",
    "isolate \u2067x\u2069",
    "nul a\x00b",
    "del a\x7fb",
    "日本語の応答です",
    "emoji 🚀 family 👨\u200d👩\u200d👧 phone ☎️",
]
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


@pytest.fixture
def hostile_server():  # type: ignore[no-untyped-def]
    bodies = itertools.cycle(HOSTILE)

    async def handler(request: Request) -> Response:
        return Response(200, next(bodies).encode())

    with LocalServer(handler) as server:
        yield server


def border_positions(line: str) -> list[int]:
    """Display-cell offsets of the table's column borders (``|`` or ``+``) on one line."""
    positions, offset = [], 0
    for grapheme in wcwidth.iter_graphemes(line):
        if grapheme in "|+":
            positions.append(offset)
        offset += max(wcwidth.wcswidth(grapheme), 0)
    return positions


def table_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line[:1] in "+|"]


def test_the_table_holds_no_control_character_and_its_borders_line_up(hostile_server) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(hostile_server.url, "-n", str(10 * len(HOSTILE)), "-c", "4")
    assert result.code == 0, result.err
    assert not UNSAFE.findall(result.out)
    lines = table_lines(result.out)
    assert len(lines) == len(HOSTILE) + 4  # border, header, border, one row per body, border
    expected = border_positions(lines[0])
    assert len(expected) == 4
    for line in lines:
        assert border_positions(line) == expected, line
    # what was there is visible, escaped
    for shown in ("\\x1b]0;pwned\\x07", "\\x1b[2J\\x1b[H", "\\x9b31m", "\\u202edcba\\u202c", "a\\x00b", "a\\x7fb"):
        assert shown in result.out
    assert "日本語の応答です" in result.out and "👨\u200d👩\u200d👧" in result.out


def test_json_and_csv_give_back_the_exact_bodies(hostile_server) -> None:  # type: ignore[no-untyped-def]
    as_json = run_cli(hostile_server.url, "-n", str(2 * len(HOSTILE)), "-c", "2", "-o", "json")
    assert {row["label"] for row in as_json.json()["rows"]} == set(HOSTILE)
    assert not re.search("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]", as_json.out)  # escaped as \\uXXXX in the text
    as_csv = run_cli(hostile_server.url, "-n", str(2 * len(HOSTILE)), "-c", "2", "-o", "csv")
    records = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert {record["label"] for record in records} == set(HOSTILE)
    assert all(f'"{body}"' in as_csv.out for body in HOSTILE)  # each label quoted, its bytes kept


def test_a_narrow_terminal_cuts_labels_by_display_cells(hostile_server) -> None:  # type: ignore[no-untyped-def]
    from respy.report.render import cut

    labels = [row["label"] for row in run_cli(hostile_server.url, "-n", str(len(HOSTILE)), "-o", "json").json()["rows"]]
    for label in labels:
        for width in (5, 9, 14):
            shown = cut(label, width)
            assert cells(shown) <= width
            assert not UNSAFE.findall(shown)


# --------------------------------------------------------------------------------------- the pieces, by property

@given(st.text())
def test_escape_leaves_nothing_a_terminal_acts_on_and_is_idempotent(text: str) -> None:
    shown = escape(text)
    assert not UNSAFE.findall(shown) and "\n" not in shown
    assert escape(shown) == shown
    kept = escape(text, keep_newlines=True)
    assert kept.count("\n") == text.count("\n")


@given(st.text())
def test_json_safe_keeps_the_value(text: str) -> None:
    dumped = json_safe(json.dumps({"label": text}, ensure_ascii=False))
    assert json.loads(dumped) == {"label": text}
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", dumped)


# "…" is the cut marker the check below splits at: a text holding one already cannot be checked that way
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="…")),
       st.integers(min_value=1, max_value=40))
def test_cuts_fit_their_width_and_never_split_a_grapheme(text: str, width: int) -> None:
    text = one_line(text)
    graphemes = list(wcwidth.iter_graphemes(text))
    for cut in (clip(text, width), clip_middle(text, width)):
        assert cells(cut) <= width
        if cut != text:
            head, _, tail = cut.partition("…")
            assert graphemes[: len(list(wcwidth.iter_graphemes(head)))] == list(wcwidth.iter_graphemes(head))
            if tail:
                assert text.endswith(tail)


def test_examples_of_cuts() -> None:
    assert clip("日本語テキスト", 6) == "日本…"
    assert clip_middle("weather-backend: multiple", 12) == "weathe…tiple"
    assert clip("👨\u200d👩\u200d👧👨\u200d👩\u200d👧", 3) == "👨\u200d👩\u200d👧…"  # the family stays whole
    assert wrap("why: a long reason", 10) == ["why: a", "long", "reason"]
    assert escape("\x1b]0;t\x07\u202e\r\t") == "\\x1b]0;t\\x07\\u202e\\r\\t"


@given(st.integers(min_value=20, max_value=200))
def test_a_fitted_table_is_never_wider_than_asked(width: int) -> None:
    columns = [Column("RESPONSE", align="left", fit="cut", min_width=8), Column("COUNT"),
               Column("% OF 1,000 REQUESTS"), Column("WHY", align="left", fit="wrap", min_width=10)]
    rows = [["weather-backend: single 日本語 🚀", "900", "90.0%", "the route's weight is 90 and that is why"],
            ["x" * 80, "100", "10.0%", "because"]]
    text = render_table(columns, rows, width=width)
    assert max(cells(line) for line in text.splitlines()) <= width
