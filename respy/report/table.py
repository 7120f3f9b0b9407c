"""Tables that fit the terminal: described column by column, measured in display cells, drawn by tabulate.

A table is a list of :class:`Column` (header, alignment, how it may be narrowed) and rows of cell texts.
Adding a column is adding a ``Column`` and one cell per row. When a width is given (the terminal's, on a
TTY) and the table is wider, the columns that may be narrowed are, widest slack first, down to their
floor: a ``cut`` column (a response label) is clipped with ``…``, a ``wrap`` column (a finding's text) is
wrapped inside its column, headers wrap at spaces. When even the floors do not fit, the table is drawn as
records, one ``HEADER  value`` line per cell (kubectl describe's layout), wrapped to the width.
A ``cut`` cell loses its middle (``weather…multiple``), so labels sharing a long prefix stay apart.

Every cell passes through :func:`respy.report.terminal.escape`: what the table prints holds no control
character but its own line breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from respy.report.terminal import cells, clip, clip_middle, escape, one_line, pad, wrap

Fit = Literal["keep", "cut", "wrap"]
Style = Literal["pretty", "grid"]


@dataclass(frozen=True)
class Column:
    """One column: ``fit`` says how it may be narrowed (``keep``: never; ``cut``: one line clipped with
    ``…``; ``wrap``: wrapped in its column). ``max_width`` caps it even when there is room; ``min_width`` is
    the narrowest it becomes before the table falls back to records."""

    header: str
    align: Literal["left", "right"] = "right"
    fit: Fit = "keep"
    min_width: int = 1
    max_width: int | None = None


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, width: int | None = None,
                 style: Style = "pretty") -> str:
    """The rows under the columns' headers, at most ``width`` cells wide when a width is given."""
    body = [[_clean(column, str(cell)) for column, cell in zip(columns, row, strict=True)] for row in rows]
    header_pad = 0 if style == "pretty" else 2  # tabulate pads headers by 2 cells in every style but pretty
    widths = _fit(columns, body, width, _border_cells(len(columns)), header_pad)
    if widths is None:
        assert width is not None
        return render_records(columns, body, width)
    from tabulate import tabulate  # imported on first use: `respy --help` stays fast

    headers = ["\n".join(_wrap_words(c.header, w - header_pad)) for c, w in zip(columns, widths, strict=True)]
    shaped = [[_shape(column, cell, w) for column, cell, w in zip(columns, row, widths, strict=True)] for row in body]
    return tabulate(shaped, headers=headers, tablefmt=style, colalign=[c.align for c in columns],
                    disable_numparse=True)


def fits(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None, style: Style = "pretty") -> bool:
    """Whether the rows can be drawn as a table (not as records) within ``width``."""
    body = [[_clean(column, str(cell)) for column, cell in zip(columns, row, strict=True)] for row in rows]
    header_pad = 0 if style == "pretty" else 2
    return _fit(columns, body, width, _border_cells(len(columns)), header_pad) is not None


def render_records(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> str:
    """Each row as a block of ``HEADER  value`` lines, the values wrapped to ``width``; blank lines between.
    When even that is too narrow, each value goes under its header, indented by two cells."""
    label_width = max(cells(column.header) for column in columns)
    beside = width - label_width - 2 >= 12
    value_width = width - label_width - 2 if beside else max(width - 2, 1)
    blocks = []
    for row in rows:
        lines = []
        for column, cell in zip(columns, row, strict=True):
            cell = _clean(column, str(cell))
            values = [piece for line in cell.split("\n") for piece in wrap(line, value_width)] or [""]
            if beside:
                lines.append(f"{pad(column.header, label_width)}  {values[0]}".rstrip())
                lines.extend(f"{' ' * label_width}  {value}".rstrip() for value in values[1:])
            else:
                lines.append(clip(column.header, width))
                lines.extend(f"  {value}".rstrip() for value in values)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _clean(column: Column, cell: str) -> str:
    return one_line(cell) if column.fit == "cut" else escape(cell, keep_newlines=True)


def _border_cells(count: int) -> int:
    """Cells the borders and padding take: ``| a | b |`` is 3 per column plus 1 (pretty and grid alike)."""
    return 3 * count + 1


def _content_width(cell: str) -> int:
    return max((cells(line) for line in cell.split("\n")), default=0)


def _natural(column: Column, body: Sequence[Sequence[str]], index: int, header_pad: int) -> int:
    widest = max([cells(column.header) + header_pad, *(_content_width(row[index]) for row in body)])
    return min(widest, column.max_width) if column.max_width is not None else widest


def _floor(column: Column, body: Sequence[Sequence[str]], index: int, natural: int, header_pad: int) -> int:
    longest_header_word = max(cells(word) for word in column.header.split() or [""]) + header_pad
    if column.fit == "keep":
        content = max((_content_width(row[index]) for row in body), default=0)
        return min(natural, max(content, longest_header_word))
    return min(natural, max(column.min_width, longest_header_word))


def _fit(columns: Sequence[Column], body: Sequence[Sequence[str]], width: int | None, borders: int,
         header_pad: int) -> list[int] | None:
    """Column widths: natural ones when they fit, else narrowed (widest slack first); None when even the
    floors are too wide."""
    natural = [_natural(column, body, i, header_pad) for i, column in enumerate(columns)]
    if width is None or sum(natural) + borders <= width:
        return natural
    floors = [_floor(column, body, i, natural[i], header_pad) for i, column in enumerate(columns)]
    if sum(floors) + borders > width:
        return None
    widths = list(natural)
    excess = sum(widths) + borders - width
    # headers of fixed columns wrap first (no data is lost), then the cut and wrapped columns narrow
    for phase in (("keep",), ("cut", "wrap")):
        movable = [i for i, column in enumerate(columns) if column.fit in phase]
        while excess > 0 and any(widths[i] > floors[i] for i in movable):
            widest = max(movable, key=lambda i: (widths[i] - floors[i], widths[i]))
            widths[widest] -= 1
            excess -= 1
    return widths


def _wrap_words(text: str, width: int) -> list[str]:
    return wrap(text, width) if cells(text) > width else [text]


def _shape(column: Column, cell: str, width: int) -> str:
    if column.fit == "cut":
        return clip_middle(cell, width)
    if column.fit == "wrap":
        return "\n".join(piece for line in cell.split("\n") for piece in wrap(line, width))
    return cell
