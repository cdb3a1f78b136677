"""Benchmark: one watch cycle over many tenants, against the emulator in another process.

::

    python -m benchmarks.watch_cycle --tenants 2000 --cycles 3

The emulator runs in a child process with a manual clock (a ``/_advance?minutes=N`` route moves it), so
its serving does not share the client's core. The watcher polls every tenant once for its baseline, then
the world moves ``--step`` minutes and each timed cycle polls again: it reports wall time, the client's
CPU per tenant (``time.process_time``), requests and events per tenant, and the SQLite state file's size
per tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

CHILD = r"""
import asyncio, sys
from datetime import datetime, timedelta, timezone
from aiohttp import web
from servicecomms_async.emulator import Emulator, EmulatorConfig, ManualClock, TimelineConfig

tenants = int(sys.argv[1])
holder = {}

@web.middleware
async def control(request, handler):
    if request.path == "/_advance":
        holder["emu"].advance(timedelta(minutes=float(request.query["minutes"])))
        return web.json_response({"now": holder["emu"].now.isoformat()})
    return await handler(request)

async def main():
    config = EmulatorConfig(
        seed=4, tenants=tenants, messages_per_tenant=250,
        now=datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc),
        timeline=TimelineConfig(global_incidents_per_day=120, tenant_incidents_per_day=24,
                                messages_per_day=48),
    )
    emu = Emulator(config, clock=ManualClock(), middlewares=[control], record_requests=False)
    holder["emu"] = emu
    await emu.start()
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(emu.tenant_ids))
    print(emu.graph_base_url, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def run(tenants: int, cycles: int, step: float, concurrency: int) -> None:
    """The emulator in a child process, the cycles here; the state file's size at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "tenants.txt"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tenants), str(ids_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            base_url = child.stdout.readline().strip()
            tenant_ids = ids_file.read_text().split()
            state = Path(tmp) / "watch.db"
            asyncio.run(_cycles(base_url, tenant_ids, state, cycles, step, concurrency))
            size = sum(os.path.getsize(p) for p in Path(tmp).glob("watch.db*") if p.is_file())
            print(
                f"state file {size / 1e6:.1f} MB, {size / len(tenant_ids) / 1e3:.1f} kB per tenant "
                "(250 legacy messages per tenant in the emulator)"
            )
        finally:
            child.terminate()
            child.wait(timeout=10)


async def _cycles(
    base_url: str, tenant_ids: list[str], state: Path, cycles: int, step: float, concurrency: int
) -> None:
    from servicecomms_async import Limits, ServiceCommsSession
    from servicecomms_async.emulator import Emulator
    from servicecomms_async.watch import SQLiteStateStore, Watcher

    origin = base_url.split("/v1.0")[0]
    async with (
        aiohttp.ClientSession() as control,
        ServiceCommsSession(
            token=Emulator.graph_token,
            api="graph",
            base_url=base_url,
            limits=Limits(max_connections=concurrency),
        ) as session,
        SQLiteStateStore(state) as store,
    ):
        watcher = Watcher(
            session, tenant_ids, store, concurrency=concurrency, full_resync=timedelta(days=30)
        )
        started, cpu = time.perf_counter(), time.process_time()
        baseline = await watcher.poll()
        print(
            f"baseline: {len(tenant_ids)} tenants, {time.perf_counter() - started:.2f} s wall, "
            f"{(time.process_time() - cpu) / len(tenant_ids) * 1e6:.0f} us CPU per tenant, "
            f"{len(baseline)} events"
        )
        await watcher.ack(baseline)
        walls: list[float] = []
        cpus: list[float] = []
        for cycle in range(cycles):
            async with control.get(f"{origin}/_advance", params={"minutes": str(step)}):
                pass
            started, cpu = time.perf_counter(), time.process_time()
            events = await watcher.poll()
            wall, used = time.perf_counter() - started, time.process_time() - cpu
            report = watcher.last_cycle
            assert report is not None
            changed = len({e.tenant_id for e in events})
            walls.append(wall)
            cpus.append(used / len(tenant_ids))
            print(
                f"cycle {cycle + 1}: {wall:.2f} s wall, {used / len(tenant_ids) * 1e6:.0f} us "
                f"client CPU per tenant, {report.requests / len(tenant_ids):.2f} requests per "
                f"tenant, {len(events)} events ({changed} tenants with a change, "
                f"{len(events) / len(tenant_ids):.2f} per tenant), {len(report.failed)} failed"
            )
            await watcher.ack(events)
        print(
            f"median cycle: {statistics.median(walls):.2f} s wall, "
            f"{statistics.median(cpus) * 1e6:.0f} us CPU per tenant"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--step", type=float, default=10.0, help="emulated minutes per cycle")
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}")
    run(args.tenants, args.cycles, args.step, args.concurrency)


if __name__ == "__main__":
    main()
