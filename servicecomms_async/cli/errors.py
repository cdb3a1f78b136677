"""The command line's exit codes, and the one exception every usage error becomes."""

from __future__ import annotations

from ..errors import APIStatusError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad option, value or input file: reported in one line each, exit code 2."""


class OutputError(UsageError):
    """The output could not be written (a full disk, ``/dev/full``): one line, exit code 2."""


class StoppedError(Exception):
    """The run stopped early for a reason that every other tenant would share: its lines, exit 1."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def error_detail(error: BaseException) -> str:
    """One short line saying what went wrong (never a token: errors do not carry one)."""
    if isinstance(error, APIStatusError):
        text = error.message or error.body_text or ""
    else:
        text = str(error)
    lines = text.strip().splitlines()
    line = lines[0].strip() if lines else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."
