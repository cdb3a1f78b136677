"""``scan``: one operation for every tenant of a file, records as they arrive, then the summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ...scan import ScanItem
from ...session import ServiceCommsSession
from ..auth import Auth, make_auth, make_session, static_token
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..output.console import Printer
from ..output.progress import ProgressBar
from ..output.records import Destination, RecordWriter, to_record
from ..output.summary import ScanSummary
from ..registry import APIS, Operation
from ..selection import bind
from ..tenants import read_tenants


async def run(
    args: argparse.Namespace,
    op: Operation,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> int:
    bind(args, op)  # a bad filter is a usage error, before reading stdin
    tenants = read_tenants(args.tenants, stdin)
    distinct = len({tenant.lower() for tenant in tenants})
    if op.api == "graph" and distinct > 1 and static_token(args, environ) is not None:
        # Graph takes the tenant from the token: one token would return one tenant's data under
        # every tenant's id, which looks like success.
        raise UsageError(
            f"a static token is one tenant's, and Microsoft Graph reads the tenant from the token: "
            f"scanning {distinct} tenants with it would report that tenant's data for all of them; "
            "use --token-template (e.g. emulator-app.{tenant}) or azure-identity"
        )
    summary = await run_scan(args, op, stdout, stderr, environ, tenants=tenants)
    return EXIT_FAILED if summary.failures else EXIT_OK


async def run_scan(
    args: argparse.Namespace,
    op: Operation,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
    *,
    tenants: list[str],
    session_factory: Callable[[], ServiceCommsSession[Any]] | None = None,
) -> ScanSummary:
    """Scan ``tenants``, writing records as they arrive; return the summary (already printed).

    The summary goes to stdout when stdout does not carry the records (``--format table``, or
    records to ``--output``), else to stderr, so that piped JSON and CSV stay clean.
    """
    call = bind(args, op)
    key = APIS[op.api].tenant_key
    output = Destination(args.output, stdout)
    auth: Auth | None = None
    if session_factory is None:
        made = auth = make_auth(args, environ)
        session_factory = lambda: make_session(args, made, concurrency=args.concurrency)  # noqa: E731
    summary = ScanSummary(op)
    try:
        async with session_factory() as session:
            writer = (
                RecordWriter(output.open(), args.format, op.csv_columns)
                if args.format != "table"
                else None
            )
            scan = session.scan(
                tenants,
                call,
                concurrency=args.concurrency,
                tenant_timeout=getattr(args, "tenant_timeout", None),
            )
            with ProgressBar(stderr, scan.progress, enabled=not args.no_progress) as tick:
                async with scan as results:
                    async for result in results:
                        summary.add(result)
                        if writer is not None and isinstance(result, ScanItem):
                            writer.write(to_record(result.tenant_id, result.value, tenant_key=key))
                        tick(result)
            if writer is not None:
                writer.close()
            if args.format == "table":
                summary_out = output.open()  # the summary is the table: stdout or --output
            else:
                summary_out = stdout if output.stdout_free else stderr
            summary.render(Printer(summary_out), scan.progress)
    finally:
        output.close()
        if auth is not None:
            await auth.close()
    return summary
