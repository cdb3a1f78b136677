"""``scan``: one operation for every tenant of a file, records as they arrive, then the summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import anyio

from ...errors import APIStatusError, AuthenticationError
from ...scan import ScanItem, TenantDone, TenantFailed
from ...session import ServiceCommsSession
from ...sharding import Shard
from ..auth import CREDENTIALS_HINT, Auth, make_auth, make_session, static_token
from ..errors import EXIT_FAILED, EXIT_OK, StoppedError, UsageError
from ..output.console import Printer
from ..output.progress import ProgressBar
from ..output.records import Destination, RecordWriter, dumps, to_record
from ..output.summary import ScanSummary
from ..registry import Operation
from ..selection import bind
from ..tenants import read_tenants

# A scan stops when its first tenants (this many, or all when fewer) all failed to get a token
# for the same reason: without working credentials every other tenant would fail the same way.
CREDENTIAL_FAILURES_TO_STOP = 3


async def run(
    args: argparse.Namespace,
    op: Operation,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> int:
    bind(args, op)  # a bad filter is a usage error, before reading stdin
    shard = shard_of_args(args, environ)
    tenants = read_tenants(args.tenants, stdin)
    if shard is not None:
        total = len(set(tenants))
        tenants = shard.select(tenants)
        args.shard_note = (shard, len(tenants), total)
        stderr.write(shard.describe(len(tenants), total) + "\n")
        stderr.flush()
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


def shard_of_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Shard | None:
    """``--shard I/N`` or ``auto/N`` (its index from ``$JOB_COMPLETION_INDEX`` in ``environ``)."""
    spec: str | None = getattr(args, "shard", None)
    if spec is None:
        return None
    try:
        return Shard.parse(spec, environ=environ)
    except ValueError as exc:
        raise UsageError(f"--shard: {exc}") from None


def _credential_reason(failed: TenantFailed) -> str | None:
    """The reason a tenant could not get a token (its own id left out), or None for other failures."""
    error = failed.error
    if not isinstance(error, AuthenticationError) or isinstance(error, APIStatusError):
        return None
    return str(error).replace(failed.tenant_id, "{tenant}")


class _CredentialWatch:
    """Watches the first finished tenants for one credential failure shared by all of them."""

    def __init__(self, tenants: int) -> None:
        self._needed = min(CREDENTIAL_FAILURES_TO_STOP, tenants) if tenants > 1 else 0
        self._reasons: list[str | None] = []

    def stop_reason(self, result: object) -> str | None:
        if len(self._reasons) >= self._needed or not isinstance(result, (TenantDone, TenantFailed)):
            return None
        reason = _credential_reason(result) if isinstance(result, TenantFailed) else None
        self._reasons.append(reason)
        done = len(self._reasons) == self._needed and reason is not None
        if done and all(r == reason for r in self._reasons):
            assert isinstance(result, TenantFailed)
            return f"{type(result.error).__name__}: {result.error}"
        return None


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
    records to ``--output``), else to stderr, so that piped JSON and CSV stay clean. Interrupted
    (Ctrl-C), the summary of what finished is printed, a JSON array on stdout is closed, an
    ``--output`` file is not written (an existing one is left as it was), and the interruption
    goes on to end the run.
    """
    call = bind(args, op)
    key = op.record_tenant_key
    output = Destination(args.output, stdout)
    failures_path: str | None = getattr(args, "failures", None)
    failures_out = Destination(failures_path, stdout, flag="--failures") if failures_path else None
    summary_format: str = getattr(args, "summary_format", "table")
    wide: bool = getattr(args, "wide", False)
    auth: Auth | None = None
    if session_factory is None:
        made = auth = make_auth(args, environ, stderr)
        session_factory = lambda: make_session(args, made, concurrency=args.concurrency)  # noqa: E731
    # The bar redraws its line in place: anything else written to the terminal meanwhile (records
    # on a terminal stdout, -v's log) would leave a copy of it behind at every redraw.
    records_on_terminal = args.format != "table" and output.path is None and stdout.isatty()
    verbose = getattr(args, "verbose", 0) + getattr(args, "global_verbose", 0)
    bar = not args.no_progress and not records_on_terminal and not verbose
    summary = ScanSummary(op)
    watch = _CredentialWatch(len(tenants))
    writer: RecordWriter | None = None
    progress = None
    stopped: str | None = None
    interrupted = False
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
            progress = scan.progress
            try:
                with ProgressBar(stderr, scan.progress, enabled=bar) as tick:
                    async with scan as results:
                        async for result in results:
                            summary.add(result)
                            if writer is not None and isinstance(result, ScanItem):
                                writer.write(
                                    to_record(result.tenant_id, result.value, tenant_key=key)
                                )
                            tick(result)
                            stopped = watch.stop_reason(result)
                            if stopped is not None:
                                break
            except (KeyboardInterrupt, anyio.get_cancelled_exc_class()):
                interrupted = True
                raise
            finally:
                if interrupted:
                    # What finished is worth knowing; stdout's JSON array is closed so it parses.
                    if writer is not None and output.path is None:
                        writer.close()
                    _render(summary, args, output, stdout, stderr, progress, summary_format, wide,
                            interrupted=True)  # fmt: skip
                    if failures_out is not None:
                        summary.write_failures(failures_out.open())
                        failures_out.commit()
            if stopped is not None:
                if failures_out is not None:
                    summary.write_failures(failures_out.open())
                    failures_out.commit()
                raise StoppedError(
                    f"stopped the scan: its first {len(watch._reasons)} tenants could not get a "
                    f"token, for the same reason: {stopped}",
                    CREDENTIALS_HINT,
                )
            if writer is not None:
                writer.close()
            _render(summary, args, output, stdout, stderr, progress, summary_format, wide)
            output.commit()
            if failures_out is not None:
                summary.write_failures(failures_out.open())
                failures_out.commit()
    finally:
        output.close()
        if failures_out is not None:
            failures_out.close()
        if auth is not None:
            await auth.close()
    return summary


def _render(
    summary: ScanSummary,
    args: argparse.Namespace,
    output: Destination,
    stdout: TextIO,
    stderr: TextIO,
    progress: Any,
    summary_format: str,
    wide: bool,
    *,
    interrupted: bool = False,
) -> None:
    if progress is None:
        return
    if args.format == "table" and not interrupted:
        summary_out = output.open()  # the summary is the table: stdout or --output
    elif args.format == "table":
        # Interrupted: the --output file is abandoned, so the partial summary goes to the terminal.
        summary_out = output.open() if output.path is None else stderr
    else:
        summary_out = stdout if output.stdout_free else stderr
    note: tuple[Shard, int, int] | None = getattr(args, "shard_note", None)
    if summary_format == "json":
        record = summary.to_json(progress, interrupted=interrupted)
        if note is not None:
            shard, selected, total = note
            record["shard"] = {"index": shard.index, "count": shard.count, "tenants": selected,
                               "of": total}  # fmt: skip
        summary_out.write(dumps(record, indent=True))
        summary_out.write("\n")
        summary_out.flush()
        return
    printer = Printer(summary_out, wide=wide)
    summary.render(printer, progress, interrupted=interrupted)
    if note is not None:
        shard, selected, total = note
        printer.print(shard.describe(selected, total).capitalize() + ".")
