"""Where watch events go. A sink's :meth:`~Sink.deliver` returns only once the events are durable
there; the caller acknowledges them in the store after that, so a crash in between delivers the same
events (same ids) again on the next run: at least once.

``JsonlSink`` appends one CloudEvent per line to a file (flushed and ``fsync``-ed before it returns)
or to stdout (``"-"``; flushed, and synced when stdout is a file).
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Sequence
from typing import Protocol, TextIO

import anyio.to_thread

from ..errors import ServiceCommsError
from .events import WatchEvent

__all__ = ["DeliveryError", "JsonlSink", "Sink"]


class DeliveryError(ServiceCommsError):
    """A sink could not take an event. ``retryable``: asking again later may work (a timeout, a
    connection error, 408, 429, 5xx); ``retry_after``: seconds the receiver asked to wait; ``status``:
    its HTTP status, if it answered; ``delivered``: how many events of the batch went through before
    it. The message never holds the sink's URL or a secret."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
        delivered: int = 0,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.delivered = delivered


class Sink(Protocol):
    """A destination for events.

    ``name`` is the sink's name in the state (``--sink NAME=KIND:TARGET``; the kind by default),
    ``kind`` its kind (``jsonl``, ``webhook``, ``teams``, ``slack``), ``rollup`` whether it takes
    rollups across tenants instead of each tenant's events (always for chat sinks).
    """

    name: str
    kind: str
    rollup: bool

    async def deliver(self, events: Sequence[WatchEvent]) -> None:
        """Deliver ``events`` in order; return once all are durable there. A sink that sends one
        request per event raises :class:`DeliveryError` at the first that fails, with
        ``delivered`` set to how many came before it."""

    async def aclose(self) -> None: ...


class _Output(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class JsonlSink:
    """One CloudEvent (structured JSON) per line, appended to ``target`` (a path, or ``"-"`` for
    ``stdout``: ``sys.stdout`` unless another text stream is given)."""

    kind = "jsonl"

    def __init__(
        self,
        target: str,
        *,
        name: str = "jsonl",
        stdout: TextIO | None = None,
        rollup: bool = False,
    ) -> None:
        if not isinstance(target, str) or not target:
            raise ValueError("a jsonl sink needs a file path, or - for stdout")
        self.name = name
        self.rollup = rollup
        self.target = target
        self._stdout = stdout
        self._file: _Output | None = None

    def __repr__(self) -> str:
        return f"JsonlSink({self.target!r})"

    def _open(self) -> _Output:
        if self._file is None:
            if self.target == "-":
                self._file = _Text(self._stdout or sys.stdout)
            else:
                # Append only: what earlier runs delivered stays. 0o600: events name tenants.
                fd = os.open(self.target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                _drop_torn_tail(fd)
                self._file = os.fdopen(fd, "ab")
        return self._file

    def _write(self, lines: bytes) -> None:
        out = self._open()
        out.write(lines)
        out.flush()
        try:
            os.fsync(out.fileno())
        except OSError:
            if self.target != "-":
                raise
            # stdout is a pipe or a terminal: flushed is as durable as it gets there.
        except (ValueError, AttributeError, io.UnsupportedOperation):
            pass  # stdout replaced by an object without a file descriptor

    async def deliver(self, events: Sequence[WatchEvent]) -> None:
        if not events:
            return
        lines = b"".join(event.to_json() + b"\n" for event in events)
        await anyio.to_thread.run_sync(self._write, lines)

    async def aclose(self) -> None:
        if self._file is not None and self.target != "-":
            self._file.close()
        self._file = None


def _drop_torn_tail(fd: int) -> None:
    """A process killed in the middle of a write leaves part of a line at the end of the file; that
    event was never marked delivered, so it is written again whole. Cut the part first, so that the
    file holds whole lines only (a consumer reading it line by line never meets a torn one)."""
    size = os.fstat(fd).st_size
    if size == 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        return
    keep = size
    while keep > 0:
        chunk = os.pread(fd, min(keep, 65536), max(0, keep - 65536))
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = keep - len(chunk) + newline + 1
            break
        keep -= len(chunk)
    if keep < size:
        os.ftruncate(fd, keep)


class _Text:
    """A text stream seen as the binary file the sink writes (stdout may be a test's buffer)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        return self._stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def close(self) -> None:
        return None
