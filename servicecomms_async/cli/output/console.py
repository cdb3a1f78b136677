"""rich on a text stream: colour on a terminal, elsewhere plain text without rich's trailing
padding; and the single-tenant table of records.

Server text is never markup or emoji codes here (``[/]`` in an incident title is text, not a
closing tag) and its control characters are escaped (:func:`.text.printable`). Tables fit the
width by wrapping the cells that hold words (titles, details, lists); a cell without spaces (a
tenant GUID, an incident id, a date) is never cut: when those alone are wider than the terminal,
the table is drawn wider instead. ``wide`` draws every table at its natural width.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from typing import Any, TextIO

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from ..registry import Column, Record
from .records import cell
from .text import printable

# A wrapped column is given at least this many characters before whole columns make room.
_WRAPPED_MIN = 8


class _Buffer(io.StringIO):
    """A text buffer that reports the encoding of the stream it stands in for, so that rich draws
    ASCII tables for a non-UTF-8 pipe (e.g. a Windows console redirected to a file)."""

    def __init__(self, encoding: str | None) -> None:
        super().__init__()
        self._target_encoding = encoding or "utf-8"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target_encoding


class Printer:
    """Prints rich renderables and text to one stream."""

    def __init__(self, file: TextIO, *, wide: bool = False) -> None:
        self._file = file
        self._terminal = file.isatty()
        self._wide = wide
        self._encoding = getattr(file, "encoding", None)
        self._console = self._make_console(None)

    def _make_console(self, width: int | None) -> Console:
        # Not a terminal: wide enough that tables keep incident ids and messages on one line.
        if width is None and not self._terminal:
            width = 160
        return Console(
            file=self._file if self._terminal else _Buffer(self._encoding),
            width=width,
            highlight=False,
            markup=False,
            emoji=False,
        )

    def _width_for(self, renderable: Any) -> int | None:
        """The width to draw a table at, when it is not the console's."""
        if not isinstance(renderable, PlainTable):
            return None
        if self._wide:
            return renderable.natural_width
        if renderable.needed_width > self._console.width:
            return renderable.needed_width
        return None

    def print(self, *renderables: Any) -> None:
        for renderable in renderables:
            self._print_one(renderable)

    def _print_one(self, renderable: Any) -> None:
        width = self._width_for(renderable)
        # A table that cannot fit without cutting an id is drawn wider than the terminal, which
        # then wraps its lines: untidy, but every id is there to read and copy.
        console = self._console if width is None else self._make_console(width)
        if self._terminal:
            console.print(renderable)
            return
        with console.capture() as capture:
            console.print(renderable)
        text = "\n".join(line.rstrip() for line in capture.get().splitlines())
        self._file.write(text + "\n")
        self._file.flush()


def _whole(values: Sequence[str]) -> bool:
    """A column of single words (ids, dates, counts): drawn whole, never wrapped or cut."""
    return not any(" " in value or "\n" in value for value in values)


class PlainTable:
    """A table of plain text, laid out for the width it is drawn at.

    Whole columns (single words: ids, dates, counts) get their longest cell; the others share what
    is left in proportion to their longest cell, each at least a few characters, and wrap at word
    boundaries (folding a word longer than the column).
    """

    def __init__(
        self,
        title: str | None,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        folded: Collection[str],
    ) -> None:
        self.title = title
        self.headings = list(columns)
        self.rows = [[printable(str(value)) for value in row] for row in rows]
        self.pad_edge = title is not None
        self.natural: list[int] = []  # the widest cell or heading
        self.minimum: list[int] = []  # a whole column's widest cell or heading word; else a few
        self.whole: list[bool] = []
        for index, heading in enumerate(self.headings):
            values = [row[index] for row in self.rows if index < len(row)]
            longest = max((len(v) for v in values), default=0)
            word = max((len(w) for w in heading.split()), default=0)
            whole = heading not in folded and _whole(values)
            natural = max(longest, len(heading), 1)
            self.whole.append(whole)
            self.natural.append(natural)
            self.minimum.append(max(longest, word, 1) if whole else min(natural, _WRAPPED_MIN))

    def _overhead(self) -> int:
        # Padding of one on each side of a cell (the outer edges only with pad_edge), and the
        # SIMPLE_HEAD box's edges and column separators, which are drawn as spaces.
        count = len(self.headings)
        return 2 * count - (0 if self.pad_edge else 2) + 2 + (count - 1) if count else 0

    @property
    def natural_width(self) -> int:
        return sum(self.natural) + self._overhead()

    @property
    def needed_width(self) -> int:
        """The narrowest width that cuts no whole column."""
        return (
            sum(
                n if whole else min(n, _WRAPPED_MIN)
                for n, whole in zip(self.natural, self.whole, strict=True)
            )
            + self._overhead()
        )

    def _widths(self, width: int) -> list[int]:
        room = width - self._overhead()
        if sum(self.natural) <= room:
            return list(self.natural)
        widths = [m if whole else 0 for m, whole in zip(self.minimum, self.whole, strict=True)]
        wrapped = [i for i, whole in enumerate(self.whole) if not whole]
        free = room - sum(widths)
        # Each wrapped column its share, the narrow ones first so that what they do not need goes
        # to the wide ones.
        for position, index in enumerate(sorted(wrapped, key=lambda i: self.natural[i])):
            share = max(free // (len(wrapped) - position), self.minimum[index])
            widths[index] = min(self.natural[index], share)
            free -= widths[index]
        return widths

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        drawn = Table(
            title=Text(printable(self.title)) if self.title is not None else None,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=self.pad_edge,
        )
        for heading, width in zip(self.headings, self._widths(options.max_width), strict=True):
            drawn.add_column(Text(heading), width=width, no_wrap=False, overflow="fold")
        for row in self.rows:
            drawn.add_row(*(Text(value) for value in row))
        yield drawn


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    folded: Collection[str] = (),
) -> PlainTable:
    """The one table style of the command line; cells and title are plain, escaped text.

    ``folded`` names columns of single words that may still be folded onto several lines (an error
    type, an error code): everything but ids and dates gives way before the table outgrows the width.
    """
    return PlainTable(title, columns, rows, folded)


def print_records(printer: Printer, columns: Sequence[Column], records: Sequence[Record]) -> None:
    """A single-tenant command's rows, then how many."""
    headings = [c if isinstance(c, str) else c[0] for c in columns]

    def value(record: Record, column: Column) -> str:
        return cell(record.get(column) if isinstance(column, str) else column[1](record))

    rows = [[value(record, c) for c in columns] for record in records]
    printer.print(table(None, headings, rows))
    printer.print(f"{len(records)} row{'' if len(records) == 1 else 's'}")
