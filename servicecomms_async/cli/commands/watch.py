"""``watch``: poll tenants on Microsoft Graph, store what changed, deliver the events to sinks.

``watch --once`` runs one cycle, delivers, and exits (0 when every tenant was polled, 1 when some
failed): for cron and Kubernetes CronJobs. Without it the watcher polls every ``--interval`` until
Ctrl-C or SIGTERM; a tenant's poll either commits whole or leaves no trace, so stopping at any moment
loses nothing. Events are acknowledged in the state file only after the sink has them durably, so a
crash in between delivers them again, with the same ids.

``watch status`` prints each tenant's state from the state file, read-only.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import anyio

from ...watch import SQLiteStateStore, Watcher
from ...watch.sinks import JsonlSink, Sink, parse_sink
from ...watch.store import StateStore, StateStoreError
from ..auth import Auth, make_auth, make_session
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..output.console import Printer, table
from ..output.records import dumps
from ..tenants import read_tenants

EXIT_TERMINATED = EXIT_OK  # SIGTERM asks for a stop; stopping cleanly is success


def sinks_of(args: argparse.Namespace, stdout: TextIO) -> list[Sink]:
    specs: list[str] = args.sink or ["jsonl:-"]
    sinks: list[Sink] = []
    for spec in specs:
        try:
            sinks.append(parse_sink(spec, stdout=stdout))
        except ValueError as exc:
            raise UsageError(f"--sink: {exc}") from None
    names = [s.name for s in sinks]
    if len(set(names)) != len(names):
        raise UsageError("--sink: two sinks have the same name: name them NAME=KIND:TARGET")
    return sinks


def open_store(path: str, *, readonly: bool = False) -> StateStore:
    return SQLiteStateStore(path, readonly=readonly)


async def deliver_pending(store: StateStore, sinks: Sequence[Sink]) -> int:
    """Hand every pending event to every sink, then acknowledge it; returns how many."""
    pending = await store.pending_events()
    if not pending:
        return 0
    events = [stored.event for stored in pending]
    for sink in sinks:
        await sink.deliver(events)
    await store.ack(e.id for e in events)
    return len(events)


async def run(
    args: argparse.Namespace,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> int:
    if args.watch_command == "status":
        return await run_status(args, stdout)
    if not args.state:
        raise UsageError("watch: --state PATH is required (the state file to create or continue)")
    if (args.tenant is None) == (args.tenants is None):
        raise UsageError("watch: give --tenant T or --tenants FILE")
    tenants = [args.tenant] if args.tenant is not None else read_tenants(args.tenants, stdin)
    sinks = sinks_of(args, stdout)
    if any(isinstance(s, JsonlSink) and s.target == "-" for s in sinks):
        info = Printer(stderr)  # stdout carries the events
    else:
        info = Printer(stdout)
    auth: Auth = make_auth(args, environ, stderr)
    store = open_store(args.state)
    try:
        async with make_session(args, auth, concurrency=args.concurrency) as session, store:
            watcher = Watcher(
                session,
                tenants,
                store,
                baseline=args.baseline,
                concurrency=args.concurrency,
                tenant_timeout=getattr(args, "tenant_timeout", None),
            )
            return await _loop(args, watcher, store, sinks, info)
    except StateStoreError as exc:
        raise UsageError(f"--state: {exc}") from None
    finally:
        for sink in sinks:
            await sink.aclose()
        await auth.close()


async def _loop(
    args: argparse.Namespace,
    watcher: Watcher,
    store: StateStore,
    sinks: Sequence[Sink],
    info: Printer,
) -> int:
    # What earlier runs stored but did not deliver goes first.
    backlog = await deliver_pending(store, sinks)
    if backlog:
        info.print(f"delivered {backlog} events left from an earlier run")
    if args.once:
        failed = await _cycle(watcher, store, sinks, info)
        return EXIT_FAILED if failed else EXIT_OK
    stop_code = EXIT_OK
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:

            async def on_signal() -> None:
                nonlocal stop_code
                signals = [signal.SIGINT] + ([signal.SIGTERM] if sys.platform != "win32" else [])
                with anyio.open_signal_receiver(*signals) as received:
                    async for number in received:
                        stop_code = EXIT_INTERRUPTED if number == signal.SIGINT else EXIT_TERMINATED
                        info.print(
                            "stopping: the poll in flight is abandoned, nothing half-written"
                        )
                        scope.cancel()
                        return

            group.start_soon(on_signal)
            while True:
                started = anyio.current_time()
                await _cycle(watcher, store, sinks, info)
                await anyio.sleep(max(0.0, args.interval - (anyio.current_time() - started)))
    return stop_code


async def _cycle(
    watcher: Watcher, store: StateStore, sinks: Sequence[Sink], info: Printer
) -> tuple[str, ...]:
    await watcher.poll()
    delivered = await deliver_pending(store, sinks)
    report = watcher.last_cycle
    assert report is not None
    failed = f", {len(report.failed)} failed" if report.failed else ""
    info.print(
        f"{datetime.now(timezone.utc):%H:%M:%S} polled {report.succeeded}/{report.tenants} tenants"
        f"{failed}: {report.events} new events, {delivered} delivered, {report.requests} requests, "
        f"{report.seconds:.1f} s"
    )
    return report.failed


async def run_status(args: argparse.Namespace, stdout: TextIO) -> int:
    try:
        async with open_store(args.state, readonly=True) as store:
            states = await store.tenant_states()
            pending = await store.pending_counts()
    except StateStoreError as exc:
        raise UsageError(f"--state: {exc}") from None
    rows: list[dict[str, Any]] = [
        {
            "tenantId": s.tenant_id,
            "lastSuccess": _iso(s.last_success),
            "cursor": _iso(s.cursor),
            "failuresInARow": s.failures_in_a_row,
            "pendingEvents": pending.get(s.tenant_id.lower(), 0),
            "lastError": dict(s.last_error) if s.last_error is not None else None,
        }
        for s in states
    ]
    if args.format == "json":
        stdout.write(dumps(rows, indent=True) + "\n")
        stdout.flush()
        return EXIT_OK
    printer = Printer(stdout, wide=getattr(args, "wide", False))
    if not rows:
        printer.print(f"{args.state}: no tenant polled yet")
        return EXIT_OK
    headings = ["tenant", "last success", "cursor", "failures", "pending", "last error"]
    cells = [
        [
            row["tenantId"],
            row["lastSuccess"] or "never",
            row["cursor"] or "",
            str(row["failuresInARow"]),
            str(row["pendingEvents"]),
            _error_text(row["lastError"]),
        ]
        for row in rows
    ]
    printer.print(table(None, headings, cells))
    return EXIT_OK


def _error_text(error: Mapping[str, Any] | None) -> str:
    if not error:
        return ""
    return f"{error.get('type')}: {error.get('message')}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()
