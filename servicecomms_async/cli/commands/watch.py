"""``watch``: poll tenants on Microsoft Graph, store what changed, deliver the events to sinks.

``watch --once`` runs one cycle, delivers, and exits (0 when every tenant was polled, 1 when some
failed): for cron and Kubernetes CronJobs. Without it the watcher polls every ``--interval`` until
Ctrl-C or SIGTERM; a tenant's poll either commits whole or leaves no trace, so stopping at any moment
loses nothing. Each event is delivered to every sink through the state file's outbox and marked
delivered only once the sink has it, so a crash in between delivers it again, with the same id.

``watch status`` prints each tenant's state, ``watch deliveries`` the pending and dead deliveries,
``watch replay`` makes deliveries pending again (and delivers them when it knows the sink).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import anyio

from ... import telemetry
from ...sharding import SHARD_PLACEHOLDER
from ...watch import SQLiteStateStore, Watcher
from ...watch.config import check_names, load_config, sinks_from
from ...watch.outbox import DeliveryPolicy, Outbox, OutboxReport
from ...watch.sinks import JsonlSink, Sink
from ...watch.store import StateStoreError
from ..auth import Auth, make_auth, make_session
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..output.console import Printer, table
from ..output.records import dumps
from ..tenants import read_tenants
from .scan import shard_of_args

EXIT_TERMINATED = EXIT_OK  # SIGTERM asks for a stop; stopping cleanly is success


def sinks_of(
    args: argparse.Namespace,
    stdout: TextIO,
    environ: Mapping[str, str],
    specs: Sequence[str],
    *,
    default: Sequence[str] = ("jsonl:-",),
) -> list[Sink]:
    """The sinks of ``specs`` (``--sink``) and ``--config`` (``default`` when neither names one);
    a usage error names the flag its sink came from."""
    config_path = getattr(args, "config", None)
    options: dict[str, Any] = {
        "environ": environ,
        "stdout": stdout,
        "rollup": getattr(args, "rollup", False),
        "cloud": getattr(args, "cloud", "public"),
    }
    try:
        config = load_config(config_path) if config_path else None
        from_config = sinks_from((), config, **options) if config else []
    except ValueError as exc:
        raise UsageError(f"--config: {exc}") from None
    if not specs and not from_config:
        specs = default
    try:
        return check_names([*sinks_from(specs, None, **options), *from_config])
    except ValueError as exc:
        raise UsageError(f"--sink: {exc}") from None


def policy_of(args: argparse.Namespace) -> DeliveryPolicy:
    return DeliveryPolicy(attempts=args.delivery_attempts)


async def run(
    args: argparse.Namespace,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> int:
    command = args.watch_command
    if command == "status":
        return await run_status(args, stdout)
    if command == "deliveries":
        return await run_deliveries(args, stdout)
    if command == "replay":
        return await run_replay(args, stdout, environ)
    if not args.state:
        raise UsageError("watch: --state PATH is required (the state file to create or continue)")
    if (args.tenant is None) == (args.tenants is None):
        raise UsageError("watch: give --tenant T or --tenants FILE")
    shard = shard_of_args(args, environ)
    state = args.state
    if shard is not None:
        try:
            state = shard.state_path(args.state)  # each shard its own file
        except ValueError as exc:
            raise UsageError(f"--state: {exc}") from None
    elif SHARD_PLACEHOLDER in state:
        raise UsageError(
            f"--state: {state!r} contains {SHARD_PLACEHOLDER}, which only --shard fills"
        )
    tenants = [args.tenant] if args.tenant is not None else read_tenants(args.tenants, stdin)
    sinks = sinks_of(args, stdout, environ, args.sink or ())
    on_stdout = any(isinstance(s, JsonlSink) and s.target == "-" for s in sinks)
    info = Printer(stderr if on_stdout else stdout)  # stdout may carry the events
    if shard is not None:
        total = len(set(tenants))
        tenants = shard.select(tenants)
        info.print(f"{shard.describe(len(tenants), total)}, state {state}")
        if not tenants:  # nothing of this shard's to poll: a success, not a failure
            for sink in sinks:
                await sink.aclose()
            return EXIT_OK
    auth: Auth = make_auth(args, environ, stderr)
    store = SQLiteStateStore(state)
    outbox = Outbox(store, sinks, policy_of(args))
    stop_metrics = None
    try:
        stop_metrics = serve_metrics(args, info)
        async with make_session(args, auth, concurrency=args.concurrency) as session, store:
            watcher = Watcher(
                session,
                tenants,
                store,
                baseline=args.baseline,
                concurrency=args.concurrency,
                tenant_timeout=getattr(args, "tenant_timeout", None),
            )
            if not args.once:
                try:
                    watcher.check_interval(args.interval)
                except ValueError as exc:
                    raise UsageError(f"--interval: {exc}") from None
            await outbox.open()
            return await _loop(args, watcher, outbox, info)
    except StateStoreError as exc:
        raise UsageError(f"--state: {exc}") from None
    finally:
        if stop_metrics is not None:
            stop_metrics()
        await outbox.aclose()
        await auth.close()


def serve_metrics(args: argparse.Namespace, info: Printer) -> Any:
    """Start ``--metrics-port``'s Prometheus endpoint (None without it); the function that stops it."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    host = getattr(args, "metrics_host", "127.0.0.1")
    try:
        stop = telemetry.serve_prometheus(port, host)
    except telemetry.MetricsUnavailableError as exc:
        raise UsageError(f"--metrics-port: {exc}") from None
    except OSError as exc:
        raise UsageError(
            f"--metrics-port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    info.print(f"metrics at http://{shown}:{port}/metrics")
    return stop


async def _loop(args: argparse.Namespace, watcher: Watcher, outbox: Outbox, info: Printer) -> int:
    # What earlier runs stored but did not deliver goes first.
    backlog = await outbox.deliver(within=args.delivery_timeout)
    if backlog.total_delivered:
        info.print(f"delivered {backlog.total_delivered} events left from an earlier run")
    if args.once:
        failed = await _cycle(args, watcher, outbox, info)
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
                await _cycle(args, watcher, outbox, info)
                await anyio.sleep(max(0.0, args.interval - (anyio.current_time() - started)))
    return stop_code


async def _cycle(
    args: argparse.Namespace, watcher: Watcher, outbox: Outbox, info: Printer
) -> tuple[str, ...]:
    within = args.delivery_timeout if args.once else min(args.delivery_timeout, args.interval)
    rollups, report = await outbox.cycle(watcher, within=within)
    cycle = watcher.last_cycle
    assert cycle is not None
    failed = f", {len(cycle.failed)} failed" if cycle.failed else ""
    rolled = f" ({len(rollups)} rollups)" if rollups else ""
    info.print(
        f"{datetime.now(timezone.utc):%H:%M:%S} polled {cycle.succeeded}/{cycle.tenants} tenants"
        f"{failed}: {cycle.events} new events{rolled}, {report.total_delivered} delivered"
        f"{_left(report)}, {cycle.requests} requests, {cycle.seconds:.1f} s"
    )
    return cycle.failed


def _left(report: OutboxReport) -> str:
    pending = sum(report.pending.values())
    dead = sum(report.dead.values())
    parts = [f"{pending} pending"] if pending else []
    if dead:
        parts.append(f"{dead} dead")
    return f" ({', '.join(parts)})" if parts else ""


async def run_deliveries(args: argparse.Namespace, stdout: TextIO) -> int:
    try:
        async with SQLiteStateStore(args.state, readonly=True) as store:
            records = await store.deliveries(states=("pending", "dead"))
    except StateStoreError as exc:
        raise UsageError(f"--state: {exc}") from None
    rows = [
        {
            "eventId": r.event_id,
            "sink": r.sink,
            "state": r.state,
            "attempts": r.attempts,
            "lastError": r.last_error,
            "nextAttemptAt": _iso(r.next_attempt_at),
            "createdAt": _iso(r.created_at),
            "type": r.type,
            "tenantId": r.tenant_id or None,
            "subject": r.subject,
        }
        for r in records
    ]
    if args.format == "json":
        stdout.write(dumps(rows, indent=True) + "\n")
        stdout.flush()
        return EXIT_OK
    printer = Printer(stdout, wide=getattr(args, "wide", False))
    if not rows:
        printer.print("no pending or dead deliveries")
        return EXIT_OK
    headings = [
        "event",
        "sink",
        "state",
        "attempts",
        "next attempt",
        "type",
        "subject",
        "last error",
    ]
    cells = [
        [
            str(r["eventId"]),
            str(r["sink"]),
            str(r["state"]),
            str(r["attempts"]),
            str(r["nextAttemptAt"] or ""),
            str(r["type"]),
            str(r["subject"]),
            str(r["lastError"] or ""),
        ]
        for r in rows
    ]
    printer.print(table(None, headings, cells))
    return EXIT_OK


async def run_replay(args: argparse.Namespace, stdout: TextIO, environ: Mapping[str, str]) -> int:
    name, _, spec = args.sink.partition("=")
    sinks: list[Sink] = []
    if spec or args.config:
        # The sink's definition is here: deliver now, not only at the next watch run.
        known = sinks_of(args, stdout, environ, [args.sink] if spec else (), default=())
        sinks = [s for s in known if s.name == name]
        if not sinks:
            raise UsageError(f"--sink: {name!r} is not a sink of {args.config}")
    printer = Printer(stdout)
    try:
        async with SQLiteStateStore(args.state) as store:
            try:
                count = await store.replay(
                    name,
                    since=args.since,
                    event_id=args.event_id,
                    dead=args.dead,
                )
            except ValueError as exc:
                raise UsageError(f"--sink: {exc}") from None
            if not sinks:
                printer.print(
                    f"{count} deliveries to {name} are pending again; the next `servicecomms watch` "
                    "run delivers them"
                )
                return EXIT_OK
            outbox = Outbox(store, sinks, policy_of(args))
            try:
                report = await outbox.deliver(within=args.delivery_timeout)
            finally:
                await outbox.aclose()
    except StateStoreError as exc:
        raise UsageError(f"--state: {exc}") from None
    printer.print(
        f"replayed {count} deliveries to {name}: {report.total_delivered} delivered{_left(report)}"
    )
    return (
        EXIT_OK
        if not sum(report.pending.values()) and not sum(report.dead.values())
        else EXIT_FAILED
    )


async def run_status(args: argparse.Namespace, stdout: TextIO) -> int:
    try:
        async with SQLiteStateStore(args.state, readonly=True) as store:
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
