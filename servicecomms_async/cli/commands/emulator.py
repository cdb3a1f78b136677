"""``emulator``: serve the embedded emulator of both APIs until Ctrl-C (the emulator's own command)."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..errors import EXIT_OK, UsageError


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ...emulator.command import CommandError, serve

    try:
        serve(args, stdout)
    except CommandError as exc:
        raise UsageError(
            f"emulator: {exc}" if not str(exc).startswith("--") else str(exc)
        ) from None
    return EXIT_OK
