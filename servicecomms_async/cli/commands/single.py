"""The single-tenant commands (one per operation name: ``overview``, ``issues``, ``messages``,
``services``, ``status``, ``history``): the tenant's items as records or a table."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TextIO

from ..auth import make_auth, make_session
from ..output.console import Printer, print_records
from ..output.records import Destination, RecordWriter, to_record
from ..registry import Operation
from ..selection import bind


async def run(
    args: argparse.Namespace,
    op: Operation,
    stdout: TextIO,
    environ: Mapping[str, str],
    stderr: TextIO,
) -> int:
    call = bind(args, op)
    tenant: str = args.tenant
    key = op.record_tenant_key
    output = Destination(args.output, stdout)
    auth = make_auth(args, environ, stderr)
    try:
        async with make_session(args, auth) as session:
            pager = call(session.client(tenant))
            if args.format == "table":
                records = [to_record(tenant, item, tenant_key=key) async for item in pager]
                print_records(Printer(output.open(), wide=args.wide), op.table_columns, records)
            else:
                writer = RecordWriter(output.open(), args.format, op.csv_columns)
                async for item in pager:
                    writer.write(to_record(tenant, item, tenant_key=key))
                writer.close()
            output.commit()  # the file is put in place only once complete
    finally:
        output.close()
        await auth.close()
    return 0
