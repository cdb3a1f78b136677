"""``demo watch``: the watcher against the emulator's moving world, time sped up, events as they come.

The emulator runs in-process with a manual clock; each cycle polls every tenant through Microsoft
Graph, prints the new events, and moves the emulated world forward by ``--step`` (30 minutes by
default) while real time waits ``--pause`` seconds. State is kept in memory: nothing is written.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import timedelta
from typing import Any, TextIO

import anyio

from ...session import ServiceCommsSession
from ...watch import MemoryStateStore, Watcher, WatchEvent
from ..errors import EXIT_OK, UsageError
from ..output.console import Printer
from ..output.text import printable


async def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ...emulator import Emulator, EmulatorConfig, ManualClock, TimelineConfig

    if args.api != "graph":
        raise UsageError("demo watch: the watcher speaks Microsoft Graph (drop --api legacy)")
    tenants = 25 if args.tenants is None else args.tenants
    try:
        config = EmulatorConfig(
            seed=args.seed,
            tenants=tenants,
            messages_per_tenant=40,
            degraded_ratio=0.15,
            timeline=TimelineConfig(
                global_incidents_per_day=12, tenant_incidents_per_day=0.5, messages_per_day=8
            ),
        )
    except ValueError as exc:
        raise UsageError(f"demo watch: {exc}") from None
    printer = Printer(stdout, wide=args.wide)
    step = timedelta(seconds=args.step)
    async with Emulator(config, clock=ManualClock(), record_requests=False) as emu:
        printer.print(
            f"Emulator on {emu.graph_base_url}: {tenants} tenants whose world moves "
            f"{_span(step)} per cycle; {args.cycles} cycles, state in memory."
        )
        async with ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url
        ) as session:
            watcher = Watcher(session, emu.tenant_ids, MemoryStateStore(), concurrency=25)
            for cycle in range(args.cycles):
                events = await watcher.poll()
                await watcher.ack(events)
                if cycle == 0:
                    counts = Counter(str(e.type) for e in events)
                    printer.print(
                        f"{emu.now:%Y-%m-%d %H:%M} baseline: {counts['issue.opened']} open issues, "
                        f"{counts['service.status_changed']} services not operational"
                    )
                else:
                    # The same change in many tenants (a global incident) is one line.
                    grouped: dict[tuple[str, str, str], list[WatchEvent]] = {}
                    for event in events:
                        key = (
                            str(event.type),
                            event.subject,
                            ",".join(event.data.get("changes") or ()),
                        )
                        grouped.setdefault(key, []).append(event)
                    for same in grouped.values():
                        printer.print(_line(same[0], len(same)))
                    if not events:
                        printer.print(f"{emu.now:%Y-%m-%d %H:%M} (no change)")
                emu.advance(step)
                await anyio.sleep(args.pause)
    printer.print(
        "To watch for real: servicecomms watch --tenants tenants.txt --state watch.db "
        "--interval 5m --sink jsonl:events.jsonl"
    )
    return EXIT_OK


def _line(event: WatchEvent, tenants: int) -> str:
    data: dict[str, Any] = dict(event.data)
    entity = data.get("entity") or {}
    title = entity.get("title") or entity.get("service") or data.get("error", {}).get("message")
    changes = ", ".join(data.get("changes") or ())
    detail = f" [{changes}]" if changes and event.type.value.endswith("updated") else ""
    status = entity.get("status")
    status_text = f" {status}" if isinstance(status, str) else ""
    where = event.tenant_id[:8] if tenants == 1 else f"{tenants} tenants"
    return printable(
        f"{event.time:%Y-%m-%d %H:%M} {where:<11} {event.type.value:<22} "
        f"{event.subject:<12}{status_text}{detail} {title or ''}".rstrip()
    )


def _span(step: timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
