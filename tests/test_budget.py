"""Request budgets on a virtual clock: the windows are never exceeded, a tenant's wait is its own,
a 429's pause holds one tenant, a wait past the deadline fails at once, windows parse."""

from __future__ import annotations

import pytest

from servicecomms_async.budget import (
    GRAPH_BUDGET,
    BudgetExhaustedError,
    BudgetLimiter,
    RequestBudget,
    parse_windows,
)

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
        # The workload wants 300 a minute: a request every 0.2 s.
        clock.now = max(clock.now, 1000.0 + (n + 1) * 0.2)
    assert most_in_any_window(sent, 60) == 240
    assert most_in_any_window(sent, 3600) == 800
    assert sent[799] - sent[0] < 3600 and sent[800] - sent[0] >= 3600  # the 801st waits the hour


async def test_one_tenants_wait_is_not_the_others() -> None:
    budget, _ = limiter(RequestBudget(per_tenant=[(5, 60)], per_app=None))
    for _ in range(5):
        await budget.acquire("busy")
    assert budget.delay("busy") == pytest.approx(60, abs=0.02)
    assert budget.delay("quiet") == 0
    assert await budget.acquire("quiet") == 0
    assert await budget.acquire("busy") == pytest.approx(60, abs=0.02)  # waited for the window


async def test_the_app_window_counts_every_tenant() -> None:
    budget, _ = limiter(RequestBudget(per_tenant=None, per_app=[(10, 10)]))
    for n in range(10):
        await budget.acquire(f"t{n}")
    assert budget.delay("t99") == pytest.approx(10, abs=0.02)


async def test_a_429_pauses_only_its_tenant() -> None:
    budget, clock = limiter()
    budget.pause("throttled", 30)
    assert budget.delay("throttled") == pytest.approx(30)
    assert budget.delay("other") == 0
    await budget.acquire("throttled")
    assert clock.now == pytest.approx(1030)


async def test_a_wait_past_the_deadline_fails_at_once() -> None:
    budget, clock = limiter(RequestBudget(per_tenant=[(1, 60)], per_app=None))
    await budget.acquire("t1")
    with pytest.raises(
        BudgetExhaustedError, match=r"has room in 60\.0 s, after the request's deadline"
    ):
        await budget.acquire("t1", deadline=clock.now + 10)
    assert clock.now == 1000.0  # it did not wait


async def test_idle_tenants_are_forgotten() -> None:
    budget, clock = limiter(RequestBudget(per_tenant=[(100, 60)], per_app=None))
    for n in range(3000):
        await budget.acquire(f"tenant-{n}")
        clock.now += 0.1  # 300 s for all of them
    assert budget.tenants_tracked() < 3000


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
