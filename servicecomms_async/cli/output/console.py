"""rich on a text stream: colour on a terminal, elsewhere plain text without rich's trailing
padding; and the single-tenant table of records."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

from ..registry import Column, Record
from .records import cell


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

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._terminal = file.isatty()
        # Not a terminal: wide enough that tables keep incident ids and messages on one line.
        self._console = Console(
            file=file if self._terminal else _Buffer(getattr(file, "encoding", None)),
            width=None if self._terminal else 160,
            highlight=False,
        )

    def print(self, *renderables: Any) -> None:
        if self._terminal:
            self._console.print(*renderables)
            return
        with self._console.capture() as capture:
            self._console.print(*renderables)
        text = "\n".join(line.rstrip() for line in capture.get().splitlines())
        self._file.write(text + "\n")
        self._file.flush()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """The one table style of the command line."""
    drawn = Table(
        *columns,
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=title is not None,
    )
    for row in rows:
        drawn.add_row(*row)
    return drawn


def print_records(printer: Printer, columns: Sequence[Column], records: Sequence[Record]) -> None:
    """A single-tenant command's rows, then how many."""
    headings = [c if isinstance(c, str) else c[0] for c in columns]

    def value(record: Record, column: Column) -> str:
        return cell(record.get(column) if isinstance(column, str) else column[1](record))

    rows = [[value(record, c) for c in columns] for record in records]
    printer.print(table(None, headings, rows))
    printer.print(f"{len(records)} row{'' if len(records) == 1 else 's'}")
