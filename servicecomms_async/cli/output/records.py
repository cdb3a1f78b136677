"""Output records and the writers of the record formats: ``json`` (one array), ``jsonl`` (one
object a line, flushed as it is written) and ``csv`` (an operation's fixed columns); and where they
go (:class:`Destination`: stdout, or a file written under a temporary name and renamed into place
once complete, so that a failed or interrupted run never leaves half a document)."""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..._wire import converter
from ..errors import OutputError, UsageError

RECORD_FORMATS = ("json", "jsonl", "csv")
FORMATS = ("table", *RECORD_FORMATS)
# How a list of objects reads in a CSV cell or a table: each object by its first name-like key
# (a service's Features by Name, an expanded overview's issues by id).
_LABEL_KEYS = ("id", "Id", "Name", "name", "DisplayName", "displayName")
# A spreadsheet evaluates a cell that starts with one of these as a formula (=HYPERLINK(...),
# =cmd|...): CSV cells that do are written with a leading apostrophe, which spreadsheets show
# as text and hide (OWASP's advice for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_record(tenant_id: str, item: object, *, tenant_key: str) -> dict[str, Any]:
    """The output record of one item: the tenant id first, then the item's wire fields."""
    record: dict[str, Any] = {tenant_key: tenant_id}
    record.update(converter.unstructure(item))
    record[tenant_key] = tenant_id  # a stray wire key of that name never hides which tenant this is
    return record


def _deep_json(value: Any) -> Iterator[str]:
    """Compact JSON for values nested deeper than orjson goes (255 levels), without recursion: a
    server may send items nested as deep as the parser accepts."""
    # One frame per open container: its remaining entries, whether it is an object, and whether
    # an entry has been written yet.
    frames: list[tuple[Iterator[Any], bool, list[bool]]] = []

    def start(item: Any) -> str | None:
        if isinstance(item, dict):
            frames.append((iter(item.items()), True, [False]))
            return "{"
        if isinstance(item, (list, tuple)):
            frames.append((iter(item), False, [False]))
            return "["
        return None

    opened = start(value)
    if opened is None:
        yield orjson.dumps(value).decode()
        return
    yield opened
    while frames:
        entries, is_object, written = frames[-1]
        try:
            entry = next(entries)
        except StopIteration:
            frames.pop()
            yield "}" if is_object else "]"
            continue
        if written[0]:
            yield ","
        written[0] = True
        if is_object:
            key, entry = entry
            yield orjson.dumps(str(key)).decode() + ":"
        opened = start(entry)
        yield orjson.dumps(entry).decode() if opened is None else opened


def dumps(value: Any, *, indent: bool = False) -> str:
    """``value`` as JSON text (indented by two when asked and when orjson can)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None).decode()
    except orjson.JSONEncodeError:
        return "".join(_deep_json(value))


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
        return ";".join(_flat(_label(v)) for v in value)
    if isinstance(value, dict):
        return dumps(value)
    return str(value)


def _flat(value: Any) -> str:
    # An element of a list: nested containers as JSON (no recursion, however deep).
    return dumps(value) if isinstance(value, (list, dict)) else cell(value)


def csv_cell(value: Any) -> str:
    """:func:`cell`, with a leading ``'`` where a spreadsheet would read a formula."""
    text = cell(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class RecordWriter:
    """Writes records in one format as they arrive; :meth:`close` finishes the document."""

    def __init__(self, out: TextIO, fmt: str, columns: tuple[str, ...]) -> None:
        self._out = out
        self._format = fmt
        self._columns = columns
        self._count = 0
        self._closed = False
        self._csv: Any = None
        if fmt == "csv":
            self._csv = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
            self._csv.writeheader()
        elif fmt == "json":
            out.write("[")

    @property
    def count(self) -> int:
        return self._count

    def write(self, record: dict[str, Any]) -> None:
        if self._format == "jsonl":
            self._out.write(dumps(record) + "\n")
            self._out.flush()  # JSONL streams: a reader sees each record as it arrives
        elif self._format == "json":
            text = dumps(record, indent=True)
            indented = "\n".join("  " + line for line in text.splitlines())
            self._out.write(("," if self._count else "") + "\n" + indented)
        else:
            self._csv.writerow({key: csv_cell(record.get(key)) for key in self._columns})
        self._count += 1

    def close(self) -> None:
        """Finish the document: the JSON array is closed, so that what was written parses."""
        if self._closed:
            return
        self._closed = True
        if self._format == "json":
            self._out.write("\n]\n" if self._count else "]\n")
        self._out.flush()


class _Guarded:
    """A text stream whose write errors (a full disk, ``/dev/full``, an I/O error) become one
    :class:`OutputError` naming where the output was going. A closed pipe stays a
    :class:`BrokenPipeError`: the reader left, which is not an error of this run."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label

    def _failed(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write {self._label}: {exc.strerror or exc}")

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guarded(stream: TextIO, label: str) -> TextIO:
    return _Guarded(stream, label)  # type: ignore[return-value]


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class Destination:
    """Where output goes (stdout or ``--output FILE``), and whether stdout is then free for the
    summary. The file is opened only when the first thing is written to it.

    A regular file is written under a temporary name beside it and renamed over ``FILE`` by
    :meth:`commit`; :meth:`close` without a commit removes the temporary file and leaves ``FILE``
    as it was. A device or a pipe (``/dev/stdout``, a FIFO) is written directly.
    """

    def __init__(self, path: str | None, stdout: TextIO, *, flag: str = "--output") -> None:
        self.path = None if path == "-" else path
        self.stdout = stdout
        self._flag = flag
        self._file: TextIO | None = None
        self._guarded: TextIO | None = None
        self._temporary: str | None = None
        self._stdout = guarded(stdout, "stdout")

    def _label(self) -> str:
        return f"{self._flag} {self.path}"

    def open(self) -> TextIO:
        if self.path is None:
            return self._stdout
        if self._guarded is None:
            target = Path(self.path)
            try:
                special = target.exists() and not target.is_file()
                if special:
                    self._file = open(target, "w", encoding="utf-8", newline="")  # noqa: SIM115
                else:
                    mode = target.stat().st_mode & 0o7777 if target.exists() else _new_file_mode()
                    fd, self._temporary = tempfile.mkstemp(
                        prefix=f".{target.name}.", suffix=".part", dir=target.parent
                    )
                    os.chmod(fd, mode)
                    self._file = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise UsageError(
                    f"{self._flag}: cannot write {self.path}: {exc.strerror or exc}"
                ) from None
            self._guarded = guarded(self._file, self._label())
        return self._guarded

    def commit(self) -> None:
        """The output is complete: put the file in place."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.close()
            if self._temporary is not None:
                os.replace(self._temporary, str(self.path))
                self._temporary = None
        except OSError as exc:
            self._discard()
            raise OutputError(f"cannot write {self._label()}: {exc.strerror or exc}") from None

    def _discard(self) -> None:
        if self._temporary is not None:
            temporary, self._temporary = self._temporary, None
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    def close(self) -> None:
        """Release the file; without a :meth:`commit` first, ``FILE`` is left as it was."""
        if self._file is not None:
            file, self._file = self._file, None
            # The output is being abandoned; its own error has been reported.
            with contextlib.suppress(OSError):
                file.close()
        self._discard()

    @property
    def committed(self) -> bool:
        return self._file is None and self._temporary is None

    @property
    def stdout_free(self) -> bool:
        return self.path is not None
