"""Request budgets on a virtual clock: the windows are never exceeded, a tenant's wait is its own,
a 429's pause holds one tenant, a wait past the deadline fails at once, windows parse."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from servicecomms_async import RetryPolicy, ServiceCommsSession, TenantFailed
from servicecomms_async.budget import (
    GRAPH_BUDGET,
    BudgetExhaustedError,
    BudgetLimiter,
    RequestBudget,
    parse_windows,
)
from servicecomms_async.emulator import Emulator, EmulatorConfig, GraphLimits
from servicecomms_async.errors import APIStatusError

pytestmark = pytest.mark.anyio


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter(budget: RequestBudget = GRAPH_BUDGET) -> tuple[BudgetLimiter, VirtualClock]:
    clock = VirtualClock()
    return BudgetLimiter(budget, clock=clock, sleep=clock.sleep), clock


def most_in_any_window(times: list[float], seconds: float) -> int:
    start, most = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_300_requests_a_minute_are_paced_to_240_a_minute_and_800_an_hour() -> None:
    budget, clock = limiter()
    sent: list[float] = []
    for n in range(1000):
        await budget.acquire("t1")
        sent.append(clock.now)
        budget.answered("t1")
        # The workload wants 300 a minute: a request every 0.2 s.
        clock.now = max(clock.now, 1000.0 + (n + 1) * 0.2)
    assert most_in_any_window(sent, 60) == 240
    assert most_in_any_window(sent, 3600) == 800
    assert sent[799] - sent[0] < 3600 and sent[800] - sent[0] >= 3600  # the 801st waits the hour


async def test_one_tenants_wait_is_not_the_others() -> None:
    budget, _ = limiter(RequestBudget(per_tenant=[(5, 60)], per_app=None))
    for _ in range(5):
        await budget.acquire("busy")
        budget.answered("busy")
    assert budget.delay("busy") == pytest.approx(60, abs=0.02)
    assert budget.delay("quiet") == 0
    assert await budget.acquire("quiet") == 0
    assert await budget.acquire("busy") == pytest.approx(60, abs=0.02)  # waited for the window


async def test_the_app_window_counts_every_tenant() -> None:
    budget, _ = limiter(RequestBudget(per_tenant=None, per_app=[(10, 10)]))
    for n in range(10):
        await budget.acquire(f"t{n}")
        budget.answered(f"t{n}")
    assert budget.delay("t99") == pytest.approx(10, abs=0.02)


async def test_a_429_pauses_only_its_tenant() -> None:
    budget, clock = limiter()
    budget.pause("throttled", 30)
    assert budget.delay("throttled") == pytest.approx(30)
    assert budget.delay("other") == 0
    await budget.acquire("throttled")
    budget.answered("throttled")
    assert clock.now == pytest.approx(1030)


async def test_a_wait_past_the_deadline_fails_at_once() -> None:
    budget, clock = limiter(RequestBudget(per_tenant=[(1, 60)], per_app=None))
    await budget.acquire("t1")
    budget.answered("t1")
    with pytest.raises(
        BudgetExhaustedError, match=r"has room in 60\.0 s, after the request's deadline"
    ):
        await budget.acquire("t1", deadline=clock.now + 10)
    assert clock.now == 1000.0  # it did not wait


async def test_idle_tenants_are_forgotten() -> None:
    budget, clock = limiter(RequestBudget(per_tenant=[(100, 60)], per_app=None))
    for n in range(3000):
        await budget.acquire(f"tenant-{n}")
        budget.answered(f"tenant-{n}")
        clock.now += 0.1  # 300 s for all of them
    assert budget.tenants_tracked() < 3000


async def test_a_request_in_flight_holds_its_slot_until_its_answer() -> None:
    """The server counts a request when it arrives, somewhere before its answer: until the answer,
    the request holds its place in the window, and for the window's length after it."""
    budget, clock = limiter(RequestBudget(per_tenant=[(2, 10)], per_app=None))
    await budget.acquire("t1")
    await budget.acquire("t1")
    assert budget.delay("t1") is None  # both in flight: only an answer makes room
    clock.now += 30  # slow answers
    budget.answered("t1")
    assert budget.delay("t1") == pytest.approx(10, abs=0.02)  # 10 s after that answer
    budget.answered("t1")


def test_windows_parse_and_bad_ones_are_refused() -> None:
    assert parse_windows("240/60,800/3600") == ((240, 60.0), (800, 3600.0))
    assert parse_windows("800/3600, 240/60") == ((240, 60.0), (800, 3600.0))
    for bad in ("240", "a/60", "240/0", "0/60", "240/-1", "240/60,"):
        with pytest.raises(ValueError, match=r"REQUESTS/SECONDS|must be"):
            parse_windows(bad)
    with pytest.raises(ValueError, match="for none, pass budget=None"):
        RequestBudget(per_tenant=None, per_app=None)
    with pytest.raises(TypeError):
        RequestBudget(per_tenant="240/60")  # type: ignore[arg-type]


# -- against the emulator, which enforces the same limits ---------------------------------------------


async def _requests(session: Any, tenant: str, count: int, per_second: float) -> list[int]:
    """``count`` requests for ``tenant`` at ``per_second``: the statuses Graph answered."""
    statuses: list[int] = []
    client = session.graph(tenant)
    started = time.monotonic()
    for n in range(count):
        await anyio.sleep(max(0.0, started + n / per_second - time.monotonic()))
        try:
            await client.health_overviews()
            statuses.append(200)
        except APIStatusError as exc:
            statuses.append(exc.status)
    return statuses


async def test_a_workload_over_the_budget_is_paced_with_no_429() -> None:
    """30 requests at 15 a second against a limit of 10 per 2 s: paced to 10 per 2 s, none refused;
    without a budget the same workload is throttled. Another tenant does not wait."""
    windows = [(10, 2.0)]
    limits = GraphLimits(per_tenant=windows, per_app=())
    async with Emulator(EmulatorConfig(seed=1, tenants=2), graph_limits=limits) as emu:
        busy, quiet = emu.tenant_ids
        async with ServiceCommsSession(
            token=Emulator.graph_token,
            api="graph",
            base_url=emu.graph_base_url,
            budget=RequestBudget(per_tenant=windows, per_app=None),
            retry=RetryPolicy(attempts=1),
        ) as session:
            started = time.monotonic()
            async with anyio.create_task_group() as group:
                results: dict[str, list[int]] = {}

                async def run(tenant: str, count: int, rate: float) -> None:
                    results[tenant] = await _requests(session, tenant, count, rate)

                group.start_soon(run, busy, 30, 15.0)
                group.start_soon(run, quiet, 5, 15.0)
            elapsed = time.monotonic() - started
        assert results[busy] == [200] * 30 and results[quiet] == [200] * 5
        assert elapsed >= 4.0  # 30 requests at 10 per 2 s need two more windows
        assert sum(emu.throttled.values()) == 0
        emu.reset_limits()
        async with ServiceCommsSession(
            token=Emulator.graph_token,
            api="graph",
            base_url=emu.graph_base_url,
            budget=None,
            retry=RetryPolicy(attempts=1),
        ) as unbudgeted:
            statuses = await _requests(unbudgeted, busy, 15, 15.0)
        assert statuses.count(429) >= 4  # the 11th and later in the first 2 s


async def test_a_1000_tenant_scan_under_an_app_budget_gets_no_429() -> None:
    app_window = [(400, 1.0)]
    limits = GraphLimits(per_tenant=[(240, 60), (800, 3600)], per_app=app_window)
    config = EmulatorConfig(seed=2, tenants=1000, messages_per_tenant=5)
    async with Emulator(config, graph_limits=limits, record_requests=False) as emu:
        async with ServiceCommsSession(
            token=Emulator.graph_token,
            api="graph",
            base_url=emu.graph_base_url,
            budget=RequestBudget(per_app=app_window),
            retry=RetryPolicy(attempts=1),
        ) as session:
            failed = 0
            async with session.scan(
                emu.tenant_ids, lambda g: g.health_overviews(), concurrency=100
            ) as results:
                async for result in results:
                    failed += isinstance(result, TenantFailed)
        assert failed == 0
        assert sum(emu.throttled.values()) == 0
