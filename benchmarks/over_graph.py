"""8. The legacy operations over Graph: ``current_status()`` and ``messages()`` rebuilt from Graph, for one
tenant and for a scan of many, against the floor fetching the same Graph pages.

Both sides read one emulator process's Graph routes (the bearer token ``emulator-app.<tenant>`` names
the tenant):

- **library**: ``LegacyOverGraphClient(session.graph(t)).current_status()`` (or ``.messages()``) on an
  ``api="graph"`` session, every row a legacy ``WorkloadStatus`` (``Message``); a scan is
  ``session.scan(tenants, lambda g: LegacyOverGraphClient(g).current_status())``;
- **floor**: raw aiohttp + ``orjson.loads`` sending the same requests (``healthOverviews`` with the
  same ``$select``, then the issues, and for messages the Message Center posts, each with the same
  ``$select``/``Prefer`` and following ``@odata.nextLink``), mapping nothing; a scan runs the
  tenants under an ``asyncio.Semaphore`` of the same concurrency.

Runs come in pairs, floor and library in alternating order; each pair gives a wall ratio and a client
CPU ratio (``time.process_time``: this process only, the server runs in its own); the row shows the
medians with their spread (min to max over the pairs). Requests per tenant per call are counted on
both sides and must agree, else the run is void.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import attrs
import orjson

from servicecomms_async import LegacyOverGraphClient, ScanItem, ServiceCommsSession, TenantFailed
from servicecomms_async.emulator import Emulator

from .measure import Outcome, Row, Timed, clock
from .server import ServerConfig, Servers, tenant_ids
from .sizes import Sizes

_STATUS_ISSUES = (
    "id,service,status,classification,featureGroup,startDateTime,endDateTime,isResolved"
)


@attrs.frozen(kw_only=True)
class OverGraphSizes:
    pairs: int  # alternated floor/library pairs per row
    messages_per_tenant: int  # the emulator's legacy messages per tenant (most become Graph items)
    scan_tenants: int
    scan_messages_per_tenant: int
    concurrency: int
    page_size: int  # messages(): Prefer: odata.maxpagesize


SIZES = {
    "full": OverGraphSizes(
        pairs=5,
        messages_per_tenant=2_000,
        scan_tenants=1_000,
        scan_messages_per_tenant=60,
        concurrency=50,
        page_size=100,
    ),
    "quick": OverGraphSizes(
        pairs=3,
        messages_per_tenant=1_000,
        scan_tenants=200,
        scan_messages_per_tenant=60,
        concurrency=50,
        page_size=100,
    ),
    "tiny": OverGraphSizes(
        pairs=1,
        messages_per_tenant=60,
        scan_tenants=6,
        scan_messages_per_tenant=20,
        concurrency=3,
        page_size=20,
    ),
}


# -- the floor: the same Graph requests, decoded, nothing else ----------------------------------------


async def _pages(
    client: aiohttp.ClientSession, url: str, token: str, prefer: str | None, counter: list[int]
) -> list[Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if prefer is not None:
        headers["Prefer"] = prefer
    items: list[Any] = []
    next_url: str | None = url
    while next_url is not None:
        async with client.get(next_url, headers=headers) as response:
            response.raise_for_status()
            data = orjson.loads(await response.read())
        counter[0] += 1
        items += data["value"]
        next_url = data.get("@odata.nextLink")
    return items


async def floor_call(
    client: aiohttp.ClientSession,
    root: str,
    tenant: str,
    operation: str,
    page_size: int,
    counter: list[int],
) -> int:
    """The requests the library sends for ``operation`` of one tenant; how many items came."""
    token = Emulator.graph_token(tenant)
    fields = "id,service,status" if operation == "current_status" else "id,service"
    overviews = await _pages(
        client, f"{root}/healthOverviews?$select={fields}", token, None, counter
    )
    if operation == "current_status":
        url = f"{root}/issues?$select={_STATUS_ISSUES}"
        issues = await _pages(client, url, token, "odata.maxpagesize=1000", counter)
        return len(overviews) + len(issues)
    prefer = f"odata.maxpagesize={page_size}"
    issues = await _pages(client, f"{root}/issues", token, prefer, counter)
    posts = await _pages(client, f"{root}/messages", token, prefer, counter)
    return len(issues) + len(posts)


async def floor_run(
    graph_base_url: str, tenants: Sequence[str], operation: str, sizes: OverGraphSizes
) -> Timed:
    root = f"{graph_base_url}/admin/serviceAnnouncement"
    counter = [0]
    limit = asyncio.Semaphore(sizes.concurrency)
    connector = aiohttp.TCPConnector(limit=max(100, sizes.concurrency))
    started, cpu = clock(), time.process_time()
    async with aiohttp.ClientSession(connector=connector) as client:

        async def one(tenant: str) -> int:
            async with limit:
                return await floor_call(client, root, tenant, operation, sizes.page_size, counter)

        counts = await asyncio.gather(*(one(t) for t in tenants))
    return Timed(
        clock() - started,
        sum(counts),
        {"cpu": time.process_time() - cpu, "requests": counter[0]},
    )


# -- the library ----------------------------------------------------------------------------------------


async def library_run(
    graph_base_url: str, tenants: Sequence[str], operation: str, sizes: OverGraphSizes
) -> Timed:
    started, cpu = clock(), time.process_time()
    items = 0
    async with ServiceCommsSession(
        token=Emulator.graph_token, api="graph", base_url=graph_base_url
    ) as session:

        def call(graph: Any) -> Any:
            client = LegacyOverGraphClient(graph)
            if operation == "current_status":
                return client.current_status()
            return client.messages(page_size=sizes.page_size)

        if len(tenants) == 1:
            items = len(await call(session.graph(tenants[0])).collect())
        else:
            async with session.scan(tenants, call, concurrency=sizes.concurrency) as results:
                async for result in results:
                    if isinstance(result, TenantFailed):
                        raise RuntimeError(f"{result.tenant_id} failed: {result.error!r}")
                    if isinstance(result, ScanItem):
                        items += 1
        requests = session.requests_sent
    return Timed(clock() - started, items, {"cpu": time.process_time() - cpu, "requests": requests})


# -- pairs ------------------------------------------------------------------------------------------------


@attrs.frozen
class Pairs:
    library: list[Timed]
    floor: list[Timed]

    def wall_ratios(self) -> list[float]:
        return [
            lib.seconds / flo.seconds for lib, flo in zip(self.library, self.floor, strict=True)
        ]

    def cpu_ratios(self) -> list[float]:
        return [
            lib.info["cpu"] / flo.info["cpu"]
            for lib, flo in zip(self.library, self.floor, strict=True)
            if flo.info["cpu"] > 0
        ]


async def alternated(
    pairs: int, library: Callable[[], Awaitable[Timed]], floor: Callable[[], Awaitable[Timed]]
) -> Pairs:
    await floor()  # warm-up: the emulator converts and caches the tenants' Graph items
    await library()
    lib_runs: list[Timed] = []
    floor_runs: list[Timed] = []
    for n in range(pairs):
        order = [("floor", floor), ("library", library)]
        for name, run in order if n % 2 == 0 else reversed(order):
            gc.collect()
            result = await run()
            (floor_runs if name == "floor" else lib_runs).append(result)
    return Pairs(lib_runs, floor_runs)


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.2f} ({min(values):.2f} to {max(values):.2f})"


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    mine = SIZES.get(sizes.name, SIZES["full"])
    rows: list[Row] = []
    details: dict[str, Any] = {"sizes": sizes.name, **attrs.asdict(mine)}
    cases = [
        ("current_status", 1, mine.messages_per_tenant),
        ("messages", 1, mine.messages_per_tenant),
        ("current_status", mine.scan_tenants, mine.scan_messages_per_tenant),
        ("messages", mine.scan_tenants, mine.scan_messages_per_tenant),
    ]
    for operation, count, per_tenant in cases:
        graph_base_url = servers.get_graph(ServerConfig(messages_per_tenant=per_tenant))
        tenants = tenant_ids(count)

        def lib(
            url: str = graph_base_url, t: list[str] = tenants, op: str = operation
        ) -> Awaitable[Timed]:
            return library_run(url, t, op, mine)

        def flo(
            url: str = graph_base_url, t: list[str] = tenants, op: str = operation
        ) -> Awaitable[Timed]:
            return floor_run(url, t, op, mine)

        pairs = await alternated(mine.pairs, lib, flo)
        lib_requests = {r.info["requests"] for r in pairs.library}
        floor_requests = {r.info["requests"] for r in pairs.floor}
        if lib_requests != floor_requests:
            raise RuntimeError(
                f"library and floor sent different requests ({lib_requests} vs {floor_requests}) "
                f"for {operation} x {count}: the run is void"
            )
        per_call = next(iter(lib_requests)) / count
        walls, cpus = pairs.wall_ratios(), pairs.cpu_ratios()
        lib_ms = statistics.median(r.seconds for r in pairs.library) * 1e3
        floor_ms = statistics.median(r.seconds for r in pairs.floor) * 1e3
        what = "1 tenant" if count == 1 else f"scan of {count:,} tenants"
        call = "current_status()" if operation == "current_status" else "messages()"
        rows.append(
            Row(
                benchmark=f"8. Legacy over Graph: `tenant(t).{call}`, {what} (ms)",
                library=f"{lib_ms:,.1f}",
                floor=f"{floor_ms:,.1f}",
                ratio=statistics.median(walls),
                bar="— (reported)",
                met=None,
                notes=(
                    f"wall ratio {_spread(walls)}, client CPU ratio {_spread(cpus)}, medians "
                    f"(min to max) of {mine.pairs} alternated pairs; {per_call:.1f} requests per "
                    f"tenant per call on both sides; {per_tenant} emulator messages per tenant"
                    + (f", concurrency {mine.concurrency}" if count > 1 else "")
                ),
            )
        )
        details[f"{operation}_x{count}"] = {
            "library_ms": lib_ms,
            "floor_ms": floor_ms,
            "wall_ratios": walls,
            "cpu_ratios": cpus,
            "requests_per_tenant_per_call": per_call,
            "items": pairs.library[0].items,
        }
    return Outcome("over_graph", rows, details)
