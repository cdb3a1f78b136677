"""``python -m servicecomms_async``: the ``servicecomms`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
