"""What reaches a terminal: untrusted text made inert and visible, and text measured in display cells.

Response bodies, header values, host names, YAML strings and Envoy admin text come from outside. Printed
raw, a control sequence in them drives the terminal (``ESC ] 0 ; … BEL`` retitles it, ``ESC [ 2 J`` clears
it) and a bidi override reorders what the reader sees (CVE-2021-42574, "Trojan Source"); kubectl had the
same class of bug (CVE-2021-25743) and now escapes such characters. :func:`escape` is the one sanitiser:
every C0/C1 control, DEL and every bidi control is shown as a visible Python-style escape (``\\x1b``,
``\\u202e``), so the reader sees that the bytes were there without the terminal acting on them.

Widths are display cells as a terminal counts them (``wcwidth``): a CJK character or an emoji takes two
cells, a combining mark none. ``tabulate`` measures cells the same way when ``wcwidth`` is installed.
"""

from __future__ import annotations

import os
import re
from types import ModuleType
from typing import TextIO

ELLIPSIS = "…"

# Unicode bidi controls: embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), and the
# implicit marks (U+200E, U+200F, U+061C); plus the line and paragraph separators, which some terminals
# treat as line breaks.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_KEEPING_NEWLINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# In JSON text, json.dumps already escapes C0; these are the other characters a terminal acts on.
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_BIDI}]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character, DEL and bidi control shown as a visible escape.

    ``keep_newlines`` leaves ``\\n`` alone (for text that is laid out in lines on purpose). Idempotent: the
    escapes are printable ASCII.
    """
    pattern = _UNSAFE_KEEPING_NEWLINES if keep_newlines else _UNSAFE
    return pattern.sub(_visible, text)


def one_line(text: str) -> str:
    """Untrusted text for one table cell: runs of whitespace (newlines included) become one space, the rest
    is :func:`escape`-d."""
    if any(c in text for c in "\n\r\t\x0b\x0c"):
        text = " ".join(text.split())
    return escape(text)


def json_safe(json_text: str) -> str:
    """JSON text whose strings hold no character a terminal acts on, with the same value: DEL, C1 and bidi
    controls become ``\\uXXXX`` escapes (``json.dumps`` already escapes C0 even with ``ensure_ascii=False``).
    Outside strings JSON text is ASCII, so only string contents change, and only in spelling."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


def _wcwidth() -> ModuleType:
    import wcwidth  # on first use, for start-up time: it costs ~15 ms, and `respy --help` never measures a cell

    return wcwidth


def cells(text: str) -> int:
    """Display width of one line of (escaped) text in terminal cells."""
    if text.isascii() and text.isprintable():
        return len(text)
    width = _wcwidth().wcswidth(text)
    return width if width >= 0 else len(text)  # -1 only for control characters, which escape() removed


def clip(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` cells, ending in ``…`` when cut; never splits a character (nor a
    grapheme: an emoji sequence or a letter with its combining marks stays whole or goes whole)."""
    if cells(text) <= width:
        return text
    return "".join(_graphemes_within(list(_wcwidth().iter_graphemes(text)), max(width - 1, 0))) + ELLIPSIS


def clip_middle(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` cells by dropping its middle (``weather…multiple``): labels that
    share a long prefix stay distinguishable in a narrow column. Never splits a character."""
    if cells(text) <= width:
        return text
    graphemes = list(_wcwidth().iter_graphemes(text))
    room = max(width - 1, 0)
    tail = _graphemes_within(graphemes[::-1], room // 2)[::-1]
    head = _graphemes_within(graphemes, room - sum(cells(g) for g in tail))
    return "".join(head) + ELLIPSIS + "".join(tail)


def _graphemes_within(graphemes: list[str], room: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for grapheme in graphemes:
        size = cells(grapheme)
        if used + size > room:
            break
        kept.append(grapheme)
        used += size
    return kept


def wrap(text: str, width: int) -> list[str]:
    """One line of (escaped) text wrapped into lines of at most ``width`` cells, breaking at spaces where it
    can and inside a long word where it must (never inside a character)."""
    if cells(text) <= width:
        return [text]
    lines = _wcwidth().wrap(text, max(width, 1), break_on_hyphens=False, control_codes="ignore")
    return lines or [""]


def pad(text: str, width: int) -> str:
    """``text`` followed by spaces up to ``width`` cells."""
    return text + " " * max(width - cells(text), 0)


def terminal_columns(stream: TextIO) -> int | None:
    """How many columns the terminal behind ``stream`` has, or None when it is not a terminal (output to a
    pipe or a file is not cut to any width). ``COLUMNS`` overrides what the terminal says, as in shells."""
    try:
        if not stream.isatty():
            return None
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    override = os.environ.get("COLUMNS", "")
    if override.isdigit() and int(override) > 0:
        return int(override)
    try:
        return os.get_terminal_size(fd).columns or None
    except OSError:
        return None
