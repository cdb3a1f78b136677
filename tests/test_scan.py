"""Multi-tenant scans against the embedded emulator: coverage, isolation, limits, early exit, progress."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web

from servicecomms_async import (
    ForbiddenError,
    Limits,
    RequestTimeoutError,
    ScanItem,
    ScanProgress,
    ScanResult,
    ServerError,
    ServiceCommsSession,
    TenantDone,
    TenantFailed,
    ThrottledError,
    WorkloadStatus,
)
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.faults import Fault, FaultPlan, fault_middleware

pytestmark = pytest.mark.anyio

TOKEN = "scan-token-never-logged"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_tenants(emu: Emulator) -> list[str]:
    return [r.path.split("/")[3] for r in emu.requests if "/ServiceComms/" in r.path]


async def collect(scan: Any) -> list[ScanResult[Any]]:
    async with scan as results:
        return [result async for result in results]


def check_every_tenant_once(results: list[ScanResult[Any]], tenants: list[str]) -> None:
    """Each tenant: its items, then exactly one final result whose count matches, nothing after."""
    finished: dict[str, ScanResult[Any]] = {}
    items: Counter[str] = Counter()
    for result in results:
        assert result.tenant_id not in finished, f"{result.tenant_id} got a result after its last"
        if result.final:
            finished[result.tenant_id] = result
        else:
            items[result.tenant_id] += 1
    assert sorted(finished) == sorted(tenants)
    for tenant, final in finished.items():
        assert isinstance(final, (TenantDone, TenantFailed))
        assert final.count == items[tenant]


async def test_scan_of_1000_tenants_accounts_for_every_tenant_once() -> None:
    config = EmulatorConfig(seed=11, tenants=1000, messages_per_tenant=0)
    async with (
        Emulator(config, record_requests=False) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        tenants = emu.tenant_ids
        scan = session.scan(tenants, lambda t: t.current_status(), concurrency=100)
        results = await collect(scan)
        assert session.connections_in_use() == 0

    check_every_tenant_once(results, tenants)
    assert all(isinstance(r, (ScanItem, TenantDone)) for r in results)
    items = [r for r in results if isinstance(r, ScanItem)]
    assert all(isinstance(r.value, WorkloadStatus) for r in items)
    for tenant in tenants[:5]:  # the values are the tenant's own, in the server's order
        expected = [row["Workload"] for row in emu.dataset(tenant).current_status]
        assert [r.value.workload for r in items if r.tenant_id == tenant] == expected
    progress = scan.progress
    assert (progress.tenants_total, progress.tenants_succeeded, progress.tenants_failed) == (
        1000,
        1000,
        0,
    )
    assert progress.items == len(items)
    assert progress.active == {}


@pytest.mark.parametrize(("concurrency", "pool"), [(7, 100), (12, 4)])
async def test_requests_in_flight_reach_but_never_exceed_concurrency(
    concurrency: int, pool: int
) -> None:
    # Latency keeps requests overlapping, so the server sees as many at once as the scan allows.
    # A pool smaller than the concurrency is grown to it.
    config = EmulatorConfig(seed=5, tenants=60, messages_per_tenant=0, latency=0.02)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(
            token=TOKEN, base_url=emu.base_url, limits=Limits(max_connections=pool)
        ) as session,
    ):
        results = await collect(
            session.scan(emu.tenant_ids, lambda t: t.services(), concurrency=concurrency)
        )
        assert emu.max_in_flight == concurrency
        assert len(api_tenants(emu)) == 60
        assert session.connections_in_use() == 0
    check_every_tenant_once(results, emu.tenant_ids)


async def test_failing_tenants_are_isolated_and_reported_once() -> None:
    config = EmulatorConfig(seed=3, tenants=30, messages_per_tenant=0)
    tenants = Emulator(config).tenant_ids
    faults = {
        tenants[3]: Fault.FORBIDDEN,
        tenants[7]: Fault.SERVER_ERROR,
        tenants[11]: Fault.THROTTLE_AF429,
    }
    middleware = fault_middleware(FaultPlan(tenant_faults=faults, retry_after=0))
    async with (
        Emulator(config, middlewares=[middleware]) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        scanned = [*tenants, "not a tenant", "../etc", tenants[0].upper()]
        results = await collect(session.scan(scanned, lambda t: t.current_status(), concurrency=8))
        assert "not a tenant" not in api_tenants(emu)
        assert session.connections_in_use() == 0

    check_every_tenant_once(results, [*tenants, "not a tenant", "../etc"])
    failed = {r.tenant_id: r.error for r in results if isinstance(r, TenantFailed)}
    assert {tenant: type(error) for tenant, error in failed.items()} == {
        tenants[3]: ForbiddenError,
        tenants[7]: ServerError,
        tenants[11]: ThrottledError,
        "not a tenant": ValueError,
        "../etc": ValueError,
    }
    assert failed[tenants[11]].status == 403  # type: ignore[attr-defined]
    assert "tenant" in str(failed["not a tenant"])
    for result in results:
        if isinstance(result, TenantFailed):
            assert result.value is None
            assert result.count == 0
    done = [r for r in results if isinstance(r, TenantDone)]
    assert len(done) == 27
    assert all(r.count > 0 and r.error is None for r in done)


async def test_breaking_out_early_returns_every_connection() -> None:
    config = EmulatorConfig(seed=9, tenants=200, messages_per_tenant=300, latency=0.005)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        scan = session.scan(emu.tenant_ids, lambda t: t.messages(page_size=10), concurrency=20)
        received = 0
        async with scan as results:
            async for _ in results:
                received += 1
                if received == 10:
                    break
        assert session.connections_in_use() == 0
        assert scan.progress.active == {}  # no worker outlived the block
        assert scan.progress.tenants_finished < 200
        # The session is still fine for the next call.
        assert await session.tenant(emu.tenant_ids[0]).services().collect()
        assert session.connections_in_use() == 0


async def test_an_exception_in_the_consumer_propagates_unchanged(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    async def consume() -> None:
        async with session.scan(emulator.tenant_ids, lambda t: t.messages()) as results:
            async for _ in results:
                raise KeyError("consumer bug")

    with pytest.raises(KeyError, match="consumer bug"):
        await consume()
    assert session.connections_in_use() == 0


async def test_cancelling_the_consumer_cancels_the_scan(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    received = 0
    with anyio.CancelScope() as scope:
        async with session.scan(emulator.tenant_ids, lambda t: t.messages(page_size=5)) as results:
            async for _ in results:
                received += 1
                if received == 5:
                    scope.cancel()
    assert scope.cancelled_caught
    assert received == 5
    assert session.connections_in_use() == 0


async def test_first_results_arrive_before_the_slowest_tenant_finishes() -> None:
    config = EmulatorConfig(seed=4, tenants=12, messages_per_tenant=0)
    tenants = Emulator(config).tenant_ids
    slow = tenants[0]
    release = asyncio.Event()

    @web.middleware
    async def hold_slow_tenant(request: web.Request, handler: Handler) -> web.StreamResponse:
        if f"/{slow}/" in request.path:
            await release.wait()
        return await handler(request)

    order: list[ScanResult[Any]] = []
    async with (
        Emulator(config, middlewares=[hold_slow_tenant]) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
        session.scan(tenants, lambda t: t.current_status(), concurrency=4) as results,
    ):
        # A scan that waited for every tenant before yielding would never get here: fail, not hang.
        with anyio.fail_after(30):
            async for result in results:
                order.append(result)
                if sum(isinstance(r, TenantDone) for r in order) == len(tenants) - 1:
                    release.set()  # every other tenant is complete; the slow one still waits
    check_every_tenant_once(order, tenants)
    first_slow = next(i for i, r in enumerate(order) if r.tenant_id == slow)
    assert all(r.tenant_id != slow for r in order[:first_slow])
    assert sum(isinstance(r, TenantDone) for r in order[:first_slow]) == len(tenants) - 1
    assert isinstance(order[-1], TenantDone)
    assert order[-1].tenant_id == slow


async def test_tenant_timeout_fails_only_the_hung_tenant() -> None:
    config = EmulatorConfig(seed=6, tenants=10, messages_per_tenant=0)
    tenants = Emulator(config).tenant_ids
    hung = tenants[2]
    stall = fault_middleware(FaultPlan(tenant_faults={hung: Fault.STALL}, stall_seconds=60))
    async with (
        Emulator(config, middlewares=[stall]) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        results = await collect(
            session.scan(tenants, lambda t: t.services(), concurrency=5, tenant_timeout=0.3)
        )
        assert session.connections_in_use() == 0
    check_every_tenant_once(results, tenants)
    failed = [r for r in results if isinstance(r, TenantFailed)]
    assert [r.tenant_id for r in failed] == [hung]
    assert isinstance(failed[0].error, RequestTimeoutError)
    assert "tenant_timeout" in str(failed[0].error)


async def test_a_slow_consumer_slows_the_scan_instead_of_buffering(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    buffer_size = 3
    scan = session.scan(
        emulator.tenant_ids, lambda t: t.messages(), concurrency=2, buffer_size=buffer_size
    )
    received = 0
    async with scan as results:
        async for result in results:
            if isinstance(result, ScanItem):
                received += 1
            if received % 100 == 1:
                await anyio.sleep(0.01)  # give the workers every chance to run ahead
            # Delivered but not yet received: never more than the buffer holds.
            assert scan.progress.items - received <= buffer_size
            assert len(scan.progress.active) <= 2
    assert received == scan.progress.items == 3 * 250


async def test_progress_is_reported_as_each_tenant_finishes(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    seen: list[tuple[int, int, int]] = []

    def on_progress(progress: ScanProgress) -> None:
        seen.append((progress.tenants_finished, progress.tenants_failed, progress.items))

    tenants = [*emulator.tenant_ids, "bad tenant"]
    scan = session.scan(tenants, lambda t: t.current_status(), on_progress=on_progress)
    results = await collect(scan)
    items = sum(isinstance(r, ScanItem) for r in results)
    assert [finished for finished, _, _ in seen] == [1, 2, 3, 4]
    assert seen[-1] == (4, 1, items)
    progress = scan.progress
    assert progress.tenants_remaining == 0
    assert progress.finished_at is not None
    assert progress.elapsed > 0
    assert progress.items_per_second > 0


async def test_tenants_are_normalised_and_scanned_once(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    guid = emulator.tenant_ids[0]
    tenants = ["Contoso.onmicrosoft.com", "contoso.onmicrosoft.com.", guid.upper(), guid]
    scan = session.scan(tenants, lambda t: t.services())
    assert scan.tenant_ids == ["contoso.onmicrosoft.com", guid]
    results = await collect(scan)
    assert sorted(r.tenant_id for r in results if r.final) == sorted(scan.tenant_ids)
    assert Counter(api_tenants(emulator)) == {"contoso.onmicrosoft.com": 1, guid: 1}


async def test_a_custom_operation_and_its_failures_stay_per_tenant(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    broken = emulator.tenant_ids[1]

    async def degraded_workloads(client: Any) -> Any:
        if client.tenant_id == broken:
            raise LookupError("a bug in the caller's operation")
        async for status in client.current_status():
            if not status.status.is_healthy:
                yield status.workload

    results = await collect(session.scan(emulator.tenant_ids, degraded_workloads))
    check_every_tenant_once(results, emulator.tenant_ids)
    by_tenant: dict[str, list[Any]] = defaultdict(list)
    for result in results:
        by_tenant[result.tenant_id].append(result.value if not result.final else result)
    assert isinstance(by_tenant[broken][-1], TenantFailed)
    assert isinstance(by_tenant[broken][-1].error, LookupError)
    for tenant in emulator.tenant_ids:
        if tenant != broken:
            expected = [
                row["Workload"]
                for row in emulator.dataset(tenant).current_status
                if row["Status"] != "ServiceOperational"
            ]
            assert by_tenant[tenant][:-1] == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"concurrency": True}, TypeError, "concurrency"),
        ({"concurrency": "10"}, TypeError, "concurrency"),
        ({"tenant_timeout": 0}, ValueError, "tenant_timeout"),
        ({"tenant_timeout": float("nan")}, ValueError, "tenant_timeout"),
        ({"buffer_size": -1}, ValueError, "buffer_size"),
        ({"on_progress": 3}, TypeError, "on_progress"),
        ({"operation": "current_status"}, TypeError, "operation"),
        ({"tenant_ids": "contoso.com"}, TypeError, "tenant_ids"),
        ({"tenant_ids": 42}, TypeError, "tenant_ids"),
    ],
)
async def test_bad_arguments_fail_before_any_request(
    emulator: Emulator,
    session: ServiceCommsSession,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    arguments: dict[str, Any] = {
        "tenant_ids": emulator.tenant_ids,
        "operation": lambda t: t.services(),
        **kwargs,
    }
    with pytest.raises(error, match=message):
        session.scan(arguments.pop("tenant_ids"), arguments.pop("operation"), **arguments)
    assert api_tenants(emulator) == []


async def test_a_scan_is_entered_once_and_iterated_inside(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    scan = session.scan(emulator.tenant_ids, lambda t: t.services())
    with pytest.raises(RuntimeError, match="enter the scan first"):
        aiter(scan)
    await collect(scan)
    with pytest.raises(RuntimeError, match="only once"):
        await collect(scan)
