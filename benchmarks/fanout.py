"""3. Fan-out: many tenants' ``current_status`` at once, with server latency, against the floor.

With ``latency`` seconds per request and ``concurrency`` requests at a time, no client can finish
``tenants`` requests faster than ``ceil(tenants / concurrency) * latency``: that is the ideal. The floor
is raw aiohttp with a semaphore of the same size; a raw-socket client (asyncio streams, no HTTP
library) shows what the server and the event loop cost by themselves.

The server is the replay server (:mod:`.replay`, pre-rendered pages, the latency as a timer) in its
own process, in front of the emulator: the emulator needs about 200 µs of CPU per request, which in a
200-wide fan-out would make the server the bottleneck. Library and floor run in ``sizes.pairs``
alternated pairs; the figures are medians of the per-pair ratios, with their spread. Connections
opened and requests in flight are counted on the client side (an aiohttp TraceConfig).
"""

from __future__ import annotations

import math
import statistics

from . import floor, library
from .measure import ClientCounters, Outcome, Row, Timed, measured, paired, spread
from .server import ServerConfig, Servers, tenant_ids
from .sizes import Sizes

WALL_BAR = 1.1  # the library's wall time at most this many times the floor's
CPU_BAR = 1.6  # the library's client CPU per tenant at most this many times the floor's


def _counted(result: Timed, counters: ClientCounters) -> Timed:
    return Timed(
        result.seconds,
        result.items,
        {
            "connections_opened": counters.connections_opened,
            "max_in_flight": counters.max_in_flight,
            "requests": counters.requests,
        },
    )


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    replay = servers.replay(ServerConfig(), latency=sizes.fanout_latency)
    base_url = replay.base_url
    tenants = tenant_ids(sizes.fanout_tenants)
    concurrency = sizes.fanout_concurrency
    ideal = math.ceil(len(tenants) / concurrency) * sizes.fanout_latency

    async def run_library() -> Timed:
        counters = ClientCounters()
        result = await library.scan_current_status(
            base_url, tenants, concurrency=concurrency, counters=counters
        )
        return _counted(result, counters)

    async def run_floor() -> Timed:
        counters = ClientCounters()
        result = await floor.scan_current_status(
            base_url, tenants, concurrency=concurrency, counters=counters
        )
        return _counted(result, counters)

    async def run_raw() -> Timed:
        return await floor.raw_scan_current_status(base_url, tenants, concurrency=concurrency)

    pairs = await paired(sizes.pairs, run_library, run_floor, server=replay)
    raw_runs = [await measured(run_raw, replay) for _ in range(max(1, sizes.pairs // 2))]
    lib, flo = pairs.library[-1], pairs.floor[-1]
    n = len(tenants)
    lib_wall, flo_wall = (
        pairs.median("library", "seconds", None),
        pairs.median("floor", "seconds", None),
    )
    lib_cpu = pairs.median("library", "cpu", None) / n
    flo_cpu = pairs.median("floor", "cpu", None) / n
    raw_wall = statistics.median(run.seconds for run in raw_runs)
    raw_cpu = statistics.median(run.cpu for run in raw_runs) / n
    server_cpu = pairs.median("floor", "server_cpu", None) / n
    label = (
        f"3. fan-out {n:,} tenants x current_status, {sizes.fanout_latency * 1000:g} ms latency, "
        f"concurrency {concurrency}"
    )
    time_row = Row(
        benchmark=f"{label} (wall s)",
        library=f"{lib_wall:.3f}",
        floor=f"{flo_wall:.3f}",
        ratio=pairs.wall_ratio,
        bar=f"≤ {WALL_BAR:g}x the floor",
        met=pairs.wall_ratio <= WALL_BAR,
        notes=(
            f"median of {sizes.pairs} alternated pairs, per-pair wall ratios "
            f"{spread(pairs.wall_ratios())}; ideal {ideal:.2f} s (library {lib_wall / ideal:.2f}x, "
            f"floor {flo_wall / ideal:.2f}x); raw-socket client {raw_wall:.3f} s "
            f"({raw_wall / ideal:.2f}x ideal); replay server {server_cpu * 1e6:.0f} µs CPU/request"
        ),
        why_not_met=(
            "With 200 responses arriving at once, the client's CPU, not the latency, sets the pace; "
            "see the CPU row."
        ),
    )
    cpu_row = Row(
        benchmark=f"{label} (client CPU µs/tenant)",
        library=f"{lib_cpu * 1e6:.0f}",
        floor=f"{flo_cpu * 1e6:.0f}",
        ratio=pairs.cpu_ratio,
        bar=f"≤ {CPU_BAR:g}x the floor",
        met=pairs.cpu_ratio <= CPU_BAR,
        notes=(
            f"per-pair CPU ratios {spread(pairs.cpu_ratios())}; raw-socket client "
            f"{raw_cpu * 1e6:.0f} µs/tenant"
        ),
        why_not_met=(
            "Per tenant the library structures 10 WorkloadStatus rows with their FeatureStatus "
            "lists, and runs its pager, token and retry machinery; the floor only decodes JSON."
        ),
    )
    lib_conn, flo_conn = lib.info["connections_opened"], flo.info["connections_opened"]
    lib_peak, flo_peak = lib.info["max_in_flight"], flo.info["max_in_flight"]
    reuse_row = Row(
        benchmark="3. fan-out: connections opened / most requests in flight (client side)",
        library=f"{lib_conn} / {lib_peak}",
        floor=f"{flo_conn} / {flo_peak}",
        ratio=None,
        bar=f"both ≤ concurrency ({concurrency}): keep-alive reuse, bounded",
        met=lib_conn <= concurrency and lib_peak <= concurrency,
        notes=f"{lib.info['requests']:,} requests for {n:,} tenants",
    )
    return Outcome(
        "fanout",
        [time_row, cpu_row, reuse_row],
        {
            "tenants": n,
            "ideal_seconds": ideal,
            "library_items": lib.items,
            "floor_items": flo.items,
            "raw_items": raw_runs[0].items,
            "raw_seconds": [run.seconds for run in raw_runs],
            "raw_cpu": [run.cpu for run in raw_runs],
            "library": dict(lib.info, seconds=lib.seconds),
            "floor": dict(flo.info, seconds=flo.seconds),
            **pairs.details(),
        },
    )
