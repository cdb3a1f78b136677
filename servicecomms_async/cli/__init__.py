"""The ``servicecomms`` command line (also ``python -m servicecomms_async``).

::

    servicecomms overview|issues|messages --tenant T [filters]           one tenant, Microsoft Graph
    servicecomms services|status|history|messages --api legacy --tenant T   one tenant, legacy API
    servicecomms incident-report --tenant T --id EX123456 -o FILE        one issue's review (Graph)
    servicecomms scan --tenants FILE|- --operation OP [filters]          many tenants, with a summary
    servicecomms emulator --port P --tenants N [--tenants-file PATH]     serve the embedded emulator
    servicecomms demo [--api legacy]                                     an emulated scan, end to end

Layout:

* :mod:`.registry`: every (API, operation) pair, described once (model, client call, filters,
  CSV and table columns, summary tally, help); everything below reads it.
* :mod:`.filters`: every filter flag once; :mod:`.types`: argparse types over the library's checks.
* :mod:`.parser`: the argparse tree; :mod:`.selection`: which API and operation, and the filter
  scope check; :mod:`.auth`: tokens, credentials, the session; :mod:`.tenants`: tenants files.
* :mod:`.commands`: one module per command family; :mod:`.output`: records (json, jsonl, csv),
  console tables, progress and summaries (only the drawing modules import rich).
* :mod:`.main`: the entry point. Importing this package never imports rich, so that ``main`` can
  say which extra to install when rich is missing.

Which API (``--api graph|legacy``): a command or ``--operation`` that exists in one API only picks it;
for ``messages``, which both have, the flag decides, else ``$SERVICECOMMS_API``, else ``graph``.

Exit codes: 0 every tenant succeeded; 1 a tenant failed (the one tenant, or some of a scan's);
2 usage error (bad option or value, malformed tenants file, rich missing); 130 interrupted.
"""

from __future__ import annotations

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from .main import main
from .registry import CSV_COLUMNS, GRAPH_CSV_COLUMNS, OPERATIONS, Operation, csv_columns

__all__ = [
    "CSV_COLUMNS",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "GRAPH_CSV_COLUMNS",
    "OPERATIONS",
    "Operation",
    "UsageError",
    "csv_columns",
    "main",
]
