"""Output records and the writers of the record formats: ``json`` (one array), ``jsonl`` (one
object a line, flushed as it is written) and ``csv`` (an operation's fixed columns)."""

from __future__ import annotations

import csv
from typing import Any, TextIO

import orjson

from ..._wire import converter
from ..errors import UsageError

RECORD_FORMATS = ("json", "jsonl", "csv")
FORMATS = ("table", *RECORD_FORMATS)
# How a list of objects reads in a CSV cell or a table: each object by its first name-like key
# (a service's Features by Name, an expanded overview's issues by id).
_LABEL_KEYS = ("id", "Id", "Name", "name", "DisplayName", "displayName")


def to_record(tenant_id: str, item: object, *, tenant_key: str) -> dict[str, Any]:
    """The output record of one item: the tenant id first, then the item's wire fields."""
    record: dict[str, Any] = {tenant_key: tenant_id}
    record.update(converter.unstructure(item))
    record[tenant_key] = tenant_id  # a stray wire key of that name never hides which tenant this is
    return record


def _label(value: Any) -> Any:
    if isinstance(value, dict):
        for key in _LABEL_KEYS:
            if value.get(key):
                return value[key]
    return value


def cell(value: Any) -> str:
    """A record value as CSV/table text: lists joined with ``;``, None empty, booleans lower case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(cell(_label(v)) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


class RecordWriter:
    """Writes records in one format as they arrive; :meth:`close` finishes the document."""

    def __init__(self, out: TextIO, fmt: str, columns: tuple[str, ...]) -> None:
        self._out = out
        self._format = fmt
        self._columns = columns
        self._count = 0
        self._csv: Any = None
        if fmt == "csv":
            self._csv = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
            self._csv.writeheader()
        elif fmt == "json":
            out.write("[")

    def write(self, record: dict[str, Any]) -> None:
        if self._format == "jsonl":
            self._out.write(orjson.dumps(record).decode() + "\n")
            self._out.flush()  # JSONL streams: a reader sees each record as it arrives
        elif self._format == "json":
            text = orjson.dumps(record, option=orjson.OPT_INDENT_2).decode()
            indented = "\n".join("  " + line for line in text.splitlines())
            self._out.write(("," if self._count else "") + "\n" + indented)
        else:
            self._csv.writerow({key: cell(record.get(key)) for key in self._columns})
        self._count += 1

    def close(self) -> None:
        """Finish the document (only after success: an unfinished JSON array marks a failed run)."""
        if self._format == "json":
            self._out.write("\n]\n" if self._count else "]\n")
        self._out.flush()


class Destination:
    """Where records go (stdout or ``--output FILE``), and whether stdout is then free for the
    summary. The file is opened only when the first thing is written to it."""

    def __init__(self, path: str | None, stdout: TextIO) -> None:
        self.path = None if path == "-" else path
        self.stdout = stdout
        self._file: TextIO | None = None

    def open(self) -> TextIO:
        if self.path is None:
            return self.stdout
        if self._file is None:
            try:
                self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise UsageError(
                    f"--output: cannot write {self.path}: {exc.strerror or exc}"
                ) from None
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    @property
    def stdout_free(self) -> bool:
        return self.path is not None
