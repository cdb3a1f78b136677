"""The library side: the same work as :mod:`.floor`, through the public API a user would call."""

from __future__ import annotations

from servicecomms_async import ServiceCommsSession, TenantDone

from .measure import ClientCounters, Timed, attach_counters, clock
from .server import TOKEN


async def stream_messages(base_url: str, tenant: str, *, max_items: int | None = None) -> Timed:
    """``async for message in tenant.messages()``: every message as a :class:`Message`."""
    started = clock()
    count = 0
    async with ServiceCommsSession(token=TOKEN, base_url=base_url) as session:
        async for _ in session.tenant(tenant).messages(max_items=max_items):
            count += 1
    return Timed(clock() - started, count)


async def stream_graph_messages(
    graph_base_url: str, token: str, tenant: str, *, page_size: int
) -> Timed:
    """``async for message in session.graph(tenant).messages(page_size=...)``: every Graph Message
    Center post as a :class:`ServiceUpdateMessage`; keeps the ids."""
    started = clock()
    ids: list[str | None] = []
    async with ServiceCommsSession(token=token, api="graph", base_url=graph_base_url) as session:
        async for message in session.graph(tenant).messages(page_size=page_size):
            ids.append(message.id)
    return Timed(clock() - started, len(ids), {"ids": ids})


async def stream_graph_issues(
    graph_base_url: str, token: str, tenant: str, *, page_size: int
) -> Timed:
    """``async for issue in session.graph(tenant).issues(page_size=...)``: every Graph service
    health issue as a :class:`ServiceHealthIssue`; keeps the ids."""
    started = clock()
    ids: list[str | None] = []
    async with ServiceCommsSession(token=token, api="graph", base_url=graph_base_url) as session:
        async for issue in session.graph(tenant).issues(page_size=page_size):
            ids.append(issue.id)
    return Timed(clock() - started, len(ids), {"ids": ids})


async def scan_current_status(
    base_url: str,
    tenants: list[str],
    *,
    concurrency: int,
    counters: ClientCounters | None = None,
) -> Timed:
    """``session.scan(tenants, lambda t: t.current_status(), concurrency=...)``, every result read."""
    started = clock()
    count = 0
    done = 0
    async with ServiceCommsSession(token=TOKEN, base_url=base_url) as session:
        if counters is not None:
            attach_counters(session, counters)
        scan = session.scan(tenants, lambda t: t.current_status(), concurrency=concurrency)
        async with scan as results:
            async for result in results:
                if result.final:
                    if not isinstance(result, TenantDone):
                        raise RuntimeError(f"tenant {result.tenant_id} failed: {result.error!r}")
                    done += 1
                else:
                    count += 1
    if done != len(tenants):
        raise RuntimeError(f"the scan finished {done} of {len(tenants)} tenants")
    return Timed(clock() - started, count)


async def first_item(base_url: str, tenant: str) -> float:
    """Seconds from a new session (no pool, no connection) to the first ``current_status()`` item."""
    started = clock()
    async with ServiceCommsSession(token=TOKEN, base_url=base_url) as session:
        pager = session.tenant(tenant).current_status()
        try:
            async for _ in pager:
                return clock() - started
        finally:
            await pager.aclose()  # stop the stream we left early
    raise RuntimeError("current_status() returned no item")
