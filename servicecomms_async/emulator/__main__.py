"""``python -m servicecomms_async.emulator``: serve the emulator until Ctrl-C (see :mod:`.command`)."""

from __future__ import annotations

import sys

from .command import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
