"""Resilience: retries that honour the service, deadlines, cancellation without leaks, fault injection.

Everything runs over loopback HTTP against the embedded emulator, with faults injected by
:mod:`servicecomms_async.emulator.faults`. Waits are removed by the autouse ``no_retry_waits`` fixture
except where a test measures them.
"""

from __future__ import annotations

import collections
import gc
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from servicecomms_async import (
    BadRequestError,
    ConnectError,
    ForbiddenError,
    Limits,
    NotFoundError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    ServiceCommsError,
    ServiceCommsSession,
    SessionClosedError,
    ThrottledError,
    Timeout,
    UnauthorizedError,
    UnexpectedResponseError,
    retry,
)
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.faults import (
    PERMANENT_FAULTS,
    TRANSIENT_FAULTS,
    Fault,
    FaultInjector,
    FaultPlan,
    fault_middleware,
)
from servicecomms_async.retry import parse_retry_after

pytestmark = pytest.mark.anyio

TOKEN = "resilience-token-never-logged"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)  # two emulators with equal configs agree
OPERATIONS = ("services", "current_status", "historical_status", "messages")


@pytest.fixture(autouse=True)
def no_leaked_tasks_or_sessions(caplog: pytest.LogCaptureFixture) -> Any:
    """asyncio reports unretrieved task exceptions and aiohttp unclosed sessions through logging."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    yield
    gc.collect()
    leaks = [
        r.getMessage()
        for r in caplog.records
        if r.name == "asyncio"
        and any(
            marker in r.getMessage()
            for marker in ("never retrieved", "Unclosed", "was destroyed but it is pending")
        )
    ]
    assert leaks == []


PlanFor = Callable[[list[str]], FaultPlan]


@asynccontextmanager
async def faulty_emulator(
    plan: FaultPlan | PlanFor | None = None,
    *,
    tenants: int = 3,
    messages: int = 250,
    outer: Sequence[Middleware] = (),
    inner: Sequence[Middleware] = (),
) -> AsyncIterator[tuple[Emulator, FaultInjector]]:
    """An emulator whose API requests go through ``outer``, then the fault injector, then ``inner``.

    ``plan`` may be a function of the emulator's tenant ids, for faults aimed at given tenants.
    """
    config = EmulatorConfig(seed=11, tenants=tenants, messages_per_tenant=messages, now=NOW)
    emu = Emulator(config)
    if callable(plan):
        plan = plan(emu.tenant_ids)
    injector = fault_middleware(plan or FaultPlan())
    async with Emulator(config, middlewares=[*outer, injector, *inner]) as emu:
        yield emu, injector


def stall(tenant_index: int = 0) -> PlanFor:
    return lambda ids: FaultPlan(tenant_faults={ids[tenant_index]: Fault.STALL}, stall_seconds=30)


def session_for(emu: Emulator, **options: Any) -> ServiceCommsSession:
    return ServiceCommsSession(token=TOKEN, base_url=emu.base_url, **options)


def api_requests(emu: Emulator) -> list[dict[str, str]]:
    return [r.query for r in emu.requests if "/ServiceComms/" in r.path]


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll state that belongs to the library or the emulator (neither offers an event for it)."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def fetch_all(
    session: ServiceCommsSession, tenant_ids: Sequence[str], *, concurrency: int
) -> dict[tuple[str, str], list[Any]]:
    """Every item of the four operations for every tenant, ``concurrency`` tenants at a time
    (messages in pages of 25, so that each stream has several pages to fail in)."""
    results: dict[tuple[str, str], list[Any]] = {}
    limiter = anyio.CapacityLimiter(concurrency)

    async def one_tenant(tenant_id: str) -> None:
        async with limiter:
            tenant = session.tenant(tenant_id)
            for operation in OPERATIONS:
                pager = (
                    tenant.messages(page_size=25)
                    if operation == "messages"
                    else getattr(tenant, operation)()
                )
                results[tenant_id, operation] = await pager.collect()

    async with anyio.create_task_group() as tg:
        for tenant_id in tenant_ids:
            tg.start_soon(one_tenant, tenant_id)
    return results


# -- chaos ------------------------------------------------------------------------------------------


async def test_chaos_every_item_survives_twenty_percent_transient_faults() -> None:
    tenants, concurrency, messages = 200, 50, 60
    policy = RetryPolicy(attempts=10, deadline=120)  # 0.2 ** 10: exhaustion is negligible
    timeout = Timeout(read=0.5)

    async with faulty_emulator(tenants=tenants, messages=messages) as (clean_emu, _):
        async with session_for(clean_emu, retry=policy, timeout=timeout) as session:
            started = time.perf_counter()
            expected = await fetch_all(session, clean_emu.tenant_ids, concurrency=concurrency)
            clean_seconds = time.perf_counter() - started
        # One request per page when nothing fails (a slow answer may have cost a retry even here).
        pages = len({(r.path, tuple(sorted(r.query.items()))) for r in clean_emu.requests})

    # The emulator shares the event loop with the client, and a full garbage collection over the
    # baseline's 30,000 models pauses that loop for about half a second: long enough for a healthy
    # answer to miss the 0.5 s read timeout. Freezing the baseline keeps the collector off it.
    del clean_emu, session
    gc.collect()
    gc.freeze()
    try:
        plan = FaultPlan(rate=0.2, seed=2024, stall_seconds=0.6)
        async with faulty_emulator(plan, tenants=tenants, messages=messages) as (emu, faults):
            async with session_for(emu, retry=policy, timeout=timeout) as session:
                started = time.perf_counter()
                got = await fetch_all(session, emu.tenant_ids, concurrency=concurrency)
                chaos_seconds = time.perf_counter() - started
                attempts = session.requests_sent
                assert session.connections_in_use() == 0
            server_requests = len(api_requests(emu))
    finally:
        gc.unfreeze()

    # What the user sees: the same items, in the same order, in every stream.
    assert got.keys() == expected.keys()
    for key, items in expected.items():
        assert [getattr(i, "id", None) for i in got[key]] == [getattr(i, "id", None) for i in items]
        assert got[key] == items, key
    items_total = sum(len(items) for items in got.values())
    assert items_total > tenants * messages  # every message, plus services and statuses

    # Every kind was injected, and every fault cost one failed server request. On a busy machine a
    # healthy answer can still miss the 0.5 s read timeout: that costs a retry too, and is reported,
    # not hidden.
    injected = sum(faults.injected.values())
    assert set(faults.injected) == set(TRANSIENT_FAULTS)
    slow_but_healthy = server_requests - (pages + injected)
    assert slow_but_healthy >= 0
    # The library counts its own attempts; aiohttp re-sends a request once, on its own, when the
    # server closes the connection before answering (RFC 9112 section 9.3.1.1), so the server can
    # see one more request per RESET_BEFORE_BODY than the library made.
    resent_by_aiohttp = server_requests - attempts
    assert 0 <= resent_by_aiohttp <= faults.injected[Fault.RESET_BEFORE_BODY]
    retries = attempts - pages
    assert 0 < retries <= pages * (policy.attempts - 1)

    by_kind = ", ".join(f"{f.value}={n}" for f, n in sorted(faults.injected.items(), key=str))
    print(
        f"\nchaos: {tenants} tenants x {len(OPERATIONS)} operations, {items_total} items, "
        f"{pages} pages\n"
        f"  faults injected: {injected} ({by_kind})\n"
        f"  library attempts: {attempts} ({retries} retries); server requests: {server_requests} "
        f"({resent_by_aiohttp} re-sent by aiohttp after a reset before the body, "
        f"{slow_but_healthy} healthy answers that missed the read timeout)\n"
        f"  wall time: {chaos_seconds:.2f}s with faults, {clean_seconds:.2f}s without"
    )


async def test_faults_replay_the_same_whatever_the_interleaving() -> None:
    plan = FaultPlan(rate=0.3, seed=5, stall_seconds=0.4)
    policy = RetryPolicy(attempts=12)
    histories = []
    for concurrency in (1, 8):
        async with faulty_emulator(plan, tenants=8, messages=120) as (emu, faults):
            async with session_for(emu, retry=policy, timeout=Timeout(read=0.3)) as session:
                await fetch_all(session, emu.tenant_ids, concurrency=concurrency)
        histories.append(sorted(faults.history, key=lambda f: (f.tenant, f.url, f.attempt)))
    assert histories[0] == histories[1]
    assert len(histories[0]) > 5

    other_seed = FaultPlan(rate=0.3, seed=6, stall_seconds=0.4)
    async with faulty_emulator(other_seed, tenants=8, messages=120) as (emu, faults):
        async with session_for(emu, retry=policy, timeout=Timeout(read=0.3)) as session:
            await fetch_all(session, emu.tenant_ids, concurrency=8)
    assert sorted(faults.history, key=lambda f: (f.tenant, f.url, f.attempt)) != histories[0]


# -- mid-stream retries ------------------------------------------------------------------------------


async def test_a_failure_mid_stream_refetches_only_the_failed_page() -> None:
    consumed: list[str | None] = []
    consumed_when_failed: list[int] = []

    @web.middleware
    async def fail_fourth_page_once(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.query.get("$skip") == "300" and not consumed_when_failed:
            consumed_when_failed.append(len(consumed))
            return web.Response(status=503, text="Service Unavailable")
        return await handler(request)

    async with faulty_emulator(messages=450, outer=[fail_fourth_page_once]) as (emu, _):
        tenant_id = emu.tenant_ids[0]
        async with session_for(emu) as session:
            async for message in session.tenant(tenant_id).messages():
                consumed.append(message.id)
            assert session.connections_in_use() == 0

    assert consumed_when_failed == [300]  # the stream had yielded 300 items when the 503 came
    assert consumed == [m["Id"] for m in emu.dataset(tenant_id).messages]  # no duplicate, no gap
    assert [q.get("$skip") for q in api_requests(emu)] == [None, "100", "200", "300", "300", "400"]


# -- permanent faults -------------------------------------------------------------------------------


class CountingCredential:
    """An azure-core style credential that hands out a new token on every call, counting per tenant."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        tenant = kwargs.get("tenant_id", "*")
        self.calls[tenant] += 1
        return AccessToken(f"secret-{tenant}-{self.calls[tenant]}", int(time.time()) + 3600)


@pytest.mark.parametrize(
    ("fault", "error", "status", "code"),
    [
        (Fault.UNAUTHORIZED, UnauthorizedError, 401, "AF10001"),
        (Fault.FORBIDDEN, ForbiddenError, 403, "AF10001"),
        (Fault.NOT_FOUND, NotFoundError, 404, "NotFound"),
        (Fault.BAD_REQUEST, BadRequestError, 400, "AF20002"),
    ],
)
async def test_permanent_faults_raise_the_typed_error_at_once(
    fault: Fault,
    error: type[ServiceCommsError],
    status: int,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    assert fault in PERMANENT_FAULTS
    plan = lambda ids: FaultPlan(tenant_faults={ids[0].upper(): fault})  # noqa: E731 (any case)
    async with faulty_emulator(plan) as (emu, faults):
        bad, good = emu.tenant_ids[0], emu.tenant_ids[1]
        credential = CountingCredential()
        async with ServiceCommsSession(
            credential, base_url=emu.base_url, per_tenant_tokens=True, retry=RetryPolicy(attempts=5)
        ) as session:
            for operation in OPERATIONS:
                with pytest.raises(error) as info:
                    await getattr(session.tenant(bad), operation)().collect()
                assert info.value.status == status  # type: ignore[attr-defined]
                assert info.value.code == code  # type: ignore[attr-defined]
                assert info.value.tenant == bad  # type: ignore[attr-defined]
                assert "secret-" not in f"{info.value} {info.value!r}"
            assert len(await session.tenant(good).services().collect()) > 0
            assert session.connections_in_use() == 0

    requests_for_bad = [r for r in emu.requests if f"/{bad}/" in r.path]
    if fault is Fault.UNAUTHORIZED:
        # Each call tries once more after the 401, never a retry of the policy's; the token provider
        # fetches at most one new token per call (auth.py may refuse to refetch within 30 s).
        assert len(requests_for_bad) == 2 * len(OPERATIONS)
        assert 2 <= credential.calls[bad] <= 1 + len(OPERATIONS)
        sent = [r.headers["Authorization"] for r in requests_for_bad[:2]]
        assert sent == [f"Bearer secret-{bad}-1", f"Bearer secret-{bad}-2"]
    else:
        assert len(requests_for_bad) == len(OPERATIONS)
        assert credential.calls[bad] == 1
    assert faults.injected[fault] == len(requests_for_bad)
    assert "secret-" not in caplog.text


# -- Retry-After, the cap, the deadline, the test switch ------------------------------------------------


def arrival_times(into: list[float]) -> Middleware:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        into.append(time.monotonic())
        return await handler(request)

    return record


@pytest.mark.parametrize("fault", [Fault.THROTTLE_429, Fault.THROTTLE_AF429])
async def test_retry_after_is_waited_for(fault: Fault) -> None:
    retry.set_testing(False)  # this test measures the wait the library chose
    arrivals: list[float] = []
    plan = FaultPlan(fail_first=1, kinds=(fault,), retry_after=1.0)
    async with faulty_emulator(plan, outer=[arrival_times(arrivals)]) as (emu, faults):
        async with session_for(emu) as session:
            services = await session.tenant(emu.tenant_ids[0]).services().collect()
    assert services and faults.injected[fault] == 1
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 1.0  # lower bound: the server asked for one second


async def test_retry_after_as_an_http_date() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(header, now=now) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:59:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None


async def test_retry_after_above_the_cap_raises_at_once_with_the_wait() -> None:
    plan = FaultPlan(fail_first=1, kinds=(Fault.THROTTLE_429,), retry_after=120)
    async with faulty_emulator(plan) as (emu, _):
        async with session_for(emu, retry=RetryPolicy(retry_after_cap=60)) as session:
            with pytest.raises(ThrottledError) as info:
                await session.tenant(emu.tenant_ids[0]).services().collect()
            # A per-call policy with a higher cap waits (no wait here: the test switch is on).
            services = (
                await session.tenant(emu.tenant_ids[1])
                .services(retry=RetryPolicy(retry_after_cap=300))
                .collect()
            )
    assert info.value.status == 429 and info.value.retry_after == 120.0
    assert services
    assert len(api_requests(emu)) == 3


async def test_a_retry_that_would_end_past_the_deadline_is_not_started() -> None:
    retry.set_testing(False)
    plan = FaultPlan(fail_first=1, kinds=(Fault.THROTTLE_AF429,), retry_after=5)
    async with faulty_emulator(plan) as (emu, _):
        async with session_for(emu, retry=RetryPolicy(deadline=2)) as session:
            with anyio.fail_after(30), pytest.raises(ThrottledError) as info:
                await session.tenant(emu.tenant_ids[0]).services().collect()
    assert info.value.code == "AF429" and info.value.retry_after == 5.0
    assert len(api_requests(emu)) == 1


async def test_the_deadline_stops_retries_before_the_attempts_run_out() -> None:
    async with faulty_emulator(stall()) as (emu, _):
        policy = RetryPolicy(attempts=50, deadline=1.0)
        async with session_for(emu, retry=policy, timeout=Timeout(read=0.3)) as session:
            with pytest.raises(RequestTimeoutError):
                await session.tenant(emu.tenant_ids[0]).services().collect()
            assert 1 < session.requests_sent < policy.attempts
            assert session.connections_in_use() == 0


async def test_the_test_switch_removes_waits_but_keeps_counting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="servicecomms_async")
    plan = FaultPlan(fail_first=2, kinds=(Fault.THROTTLE_429,), retry_after=30)
    async with faulty_emulator(plan) as (emu, _):
        async with session_for(emu) as session:
            with anyio.fail_after(10):  # 2 x 30 s if the switch did not work
                assert await session.tenant(emu.tenant_ids[0]).services().collect()
            with pytest.raises(ThrottledError):
                await (
                    session.tenant(emu.tenant_ids[1])
                    .services(retry=RetryPolicy(attempts=2))
                    .collect()
                )
    assert len(api_requests(emu)) == 3 + 2
    retried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert len(retried) == 3
    assert all(" in 0.00s (Retry-After)" in line for line in retried)


async def test_every_retry_decision_is_logged_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, aiohttp's included
    plan = FaultPlan(fail_first=1, kinds=(Fault.UNAVAILABLE,))
    async with faulty_emulator(plan) as (emu, _):
        async with session_for(emu, retry=RetryPolicy(attempts=2)) as session:
            tenant_id = emu.tenant_ids[0]
            assert await session.tenant(tenant_id).current_status().collect()
            async with Emulator(
                emu.config,
                middlewares=[fault_middleware(FaultPlan(rate=1.0, kinds=(Fault.SERVER_ERROR,)))],
            ) as broken:
                async with session_for(broken) as other:
                    with pytest.raises(ServerError):
                        await (
                            other.tenant(tenant_id)
                            .services(retry=RetryPolicy(attempts=2))
                            .collect()
                        )
    lines = [r.getMessage() for r in caplog.records if r.name == "servicecomms_async.transport"]
    assert any(
        line.startswith("retrying") and "in 0.00s (backoff)" in line and "HTTP 503" in line
        for line in lines
    )
    assert any(
        line.startswith("not retrying")
        and "all 2 attempts used" in line
        and "HTTP 500 AF50000" in line
        for line in lines
    )
    assert TOKEN not in caplog.text


async def test_a_body_cut_off_in_transit_is_asked_again() -> None:
    for fault in (Fault.TRUNCATED_JSON, Fault.RESET_DURING_BODY, Fault.RESET_BEFORE_BODY):
        async with faulty_emulator(FaultPlan(fail_first=1, kinds=(fault,))) as (emu, faults):
            tenant_id = emu.tenant_ids[0]
            async with session_for(emu) as session:
                messages = await session.tenant(tenant_id).messages(page_size=50).collect()
                assert session.connections_in_use() == 0
        assert [m.id for m in messages] == [m["Id"] for m in emu.dataset(tenant_id).messages]
        assert faults.injected[fault] == 6, fault  # every page once, then its retry succeeded


async def test_a_page_that_is_not_json_by_its_type_is_not_asked_again() -> None:
    @web.middleware
    async def proxy_login_page(request: web.Request, handler: Handler) -> web.StreamResponse:
        return web.Response(text="<html>proxy login</html>", content_type="text/html")

    async with faulty_emulator(outer=[proxy_login_page]) as (emu, _), session_for(emu) as session:
        with pytest.raises(UnexpectedResponseError) as info:
            await session.tenant(emu.tenant_ids[0]).services().collect()
        assert "not valid JSON" in str(info.value)
        assert "text/html" in str(info.value)
        assert session.requests_sent == 1


async def test_exhausted_retries_raise_the_last_error() -> None:
    expectations: list[tuple[Fault, type[ServiceCommsError]]] = [
        (Fault.RESET_BEFORE_BODY, ConnectError),
        (Fault.RESET_DURING_BODY, ConnectError),
        (Fault.TRUNCATED_JSON, UnexpectedResponseError),
        (Fault.SERVER_ERROR_TEXT, ServerError),
        (Fault.UNAVAILABLE, ServerError),
    ]
    for fault, error in expectations:
        async with faulty_emulator(FaultPlan(rate=1.0, kinds=(fault,))) as (emu, _):
            async with session_for(emu, retry=RetryPolicy(attempts=3)) as session:
                with pytest.raises(error):
                    await session.tenant(emu.tenant_ids[0]).services().collect()
                assert session.requests_sent == 3
                assert session.connections_in_use() == 0


# -- timeouts and the pool ---------------------------------------------------------------------------


async def test_timeouts_per_call_replace_the_sessions() -> None:
    async with faulty_emulator(stall()) as (emu, _):
        async with session_for(emu, timeout=Timeout(read=30)) as session:
            with pytest.raises(RequestTimeoutError) as info:
                await (
                    session.tenant(emu.tenant_ids[0])
                    .services(timeout=Timeout(read=0.2), retry=RetryPolicy.never())
                    .collect()
                )
            assert "read timeout (0.2s without data)" in str(info.value)
            assert session.connections_in_use() == 0


async def test_the_pool_never_opens_more_connections_than_its_limit() -> None:
    plan = FaultPlan(latency=0.05)
    async with faulty_emulator(plan, tenants=8, messages=60) as (emu, _):
        async with session_for(emu, limits=Limits(max_connections=3)) as session:
            await fetch_all(session, emu.tenant_ids, concurrency=8)
            assert session.connections_in_use() == 0
    assert emu.max_in_flight <= 3
    assert emu.connections_opened <= 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Timeout(read=0), "Timeout.read must be greater than 0"),
        (lambda: Timeout(connect=-1.0), "Timeout.connect must be greater than 0"),
        (lambda: Timeout(total=math.nan), "Timeout.total must be greater than 0"),
        (lambda: Timeout(total="5"), "Timeout.total must be seconds"),
        (lambda: Limits(max_connections=0), "Limits.max_connections must be an int of 1 or more"),
        (lambda: Limits(keepalive_timeout=-1), "Limits.keepalive_timeout must be 0 or more"),
        (lambda: RetryPolicy(attempts=0), "RetryPolicy.attempts must be an int of 1 or more"),
        (lambda: RetryPolicy(deadline=0), "RetryPolicy.deadline must be greater than 0"),
        (lambda: RetryPolicy(backoff_max="1"), "RetryPolicy.backoff_max must be a number"),
        (lambda: RetryPolicy(retry_after_cap=-1), "RetryPolicy.retry_after_cap must be 0 or more"),
        (lambda: FaultPlan(rate=1.5), "FaultPlan.rate must be between 0 and 1"),
        (lambda: FaultPlan(kinds=()), "FaultPlan.kinds must name at least one fault"),
        (lambda: FaultPlan(kinds=("throttle",)), "unknown fault 'throttle'; allowed: throttle-429"),
        (lambda: FaultPlan(stall_seconds=-1), "FaultPlan.stall_seconds must be seconds >= 0"),
        (lambda: FaultPlan(fail_first=-1), "FaultPlan.fail_first must be 0 or more"),
        (lambda: fault_middleware({"rate": 0.5}), "plan must be a FaultPlan"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_name_the_parameter(make: Callable[[], object], message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert message in str(info.value)


def test_fault_names_parse_for_command_lines() -> None:
    assert Fault.parse("throttle-429") is Fault.THROTTLE_429
    assert Fault.parse("STALL") is Fault.STALL
    assert FaultPlan(kinds=("stall", Fault.SERVER_ERROR)).kinds == (Fault.STALL, Fault.SERVER_ERROR)
    assert FaultPlan(tenant_faults={"Contoso.COM": "not-found-404"}).tenant_faults == {
        "contoso.com": Fault.NOT_FOUND
    }
    assert len(TRANSIENT_FAULTS) == 9 and all(f.is_transient for f in TRANSIENT_FAULTS)
    assert not any(f.is_transient for f in PERMANENT_FAULTS)


# -- the fault injector itself ----------------------------------------------------------------------


def handler_calls(into: list[str]) -> Middleware:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        into.append(request.path)
        return await handler(request)

    return count


async def test_faults_answered_without_data_never_run_the_handler() -> None:
    calls: list[str] = []
    dataless = [f for f in Fault if f not in (Fault.RESET_DURING_BODY, Fault.TRUNCATED_JSON)]
    for fault in dataless:
        plan = FaultPlan(rate=1.0, kinds=(fault,), stall_seconds=30)
        async with faulty_emulator(plan, inner=[handler_calls(calls)]) as (emu, faults):
            async with session_for(emu, timeout=Timeout(read=0.2)) as session:
                pager = session.tenant(emu.tenant_ids[0]).messages(retry=RetryPolicy.never())
                with pytest.raises(ServiceCommsError):
                    await pager.collect()
            await wait_until(lambda: emu.in_flight == 0)  # a stall ends when its client leaves
        assert faults.injected[fault] >= 1, fault
    assert calls == []
    # The two faults that cut a real body do run it, once per faulted request.
    plan = FaultPlan(rate=1.0, kinds=(Fault.TRUNCATED_JSON,))
    async with faulty_emulator(plan, inner=[handler_calls(calls)]) as (emu, faults):
        async with session_for(emu, retry=RetryPolicy(attempts=2)) as session:
            with pytest.raises(UnexpectedResponseError):
                await session.tenant(emu.tenant_ids[0]).services().collect()
    assert len(calls) == faults.injected[Fault.TRUNCATED_JSON] == 2


async def test_fault_bodies_are_the_ones_the_real_services_sent() -> None:
    expected = {
        Fault.THROTTLE_429: (429, "graph_error_429.json", "TooManyRequests"),
        Fault.THROTTLE_AF429: (403, "error_af429_403.json", "AF429"),
        Fault.SERVER_ERROR: (500, "error_af50000_internal_500.json", "AF50000"),
        Fault.SERVER_ERROR_TEXT: (500, "error_servicecomms_500_stacktrace.txt", None),
        Fault.UNAUTHORIZED: (401, "error_af10001_401.json", "AF10001"),
    }
    fixtures = __import__("pathlib").Path(__file__).parent / "fixtures"
    for fault, (status, fixture, code) in expected.items():
        async with faulty_emulator(FaultPlan(rate=1.0, kinds=(fault,), retry_after=3)) as (emu, _):
            async with session_for(emu, retry=RetryPolicy.never()) as session:
                with pytest.raises(ServiceCommsError) as info:
                    await session.tenant(emu.tenant_ids[0]).services().collect()
        error = info.value
        assert error.status == status and error.code == code  # type: ignore[attr-defined]
        raw = (fixtures / fixture).read_bytes()
        if fixture.endswith(".json"):
            assert orjson.loads(error.body_text) == orjson.loads(raw)  # type: ignore[attr-defined]
        else:
            assert error.body_text == raw.decode()  # type: ignore[attr-defined]
        throttled = fault in (Fault.THROTTLE_429, Fault.THROTTLE_AF429)
        assert error.retry_after == (3.0 if throttled else None)  # type: ignore[attr-defined]
        assert error.request_id  # type: ignore[attr-defined]


# -- cancellation and closing ------------------------------------------------------------------------


@asynccontextmanager
async def stalled_emulator() -> AsyncIterator[tuple[Emulator, str]]:
    """An emulator whose first tenant never answers (until its client leaves)."""
    async with faulty_emulator(stall()) as (emu, _):
        yield emu, emu.tenant_ids[0]


async def test_breaking_out_of_async_for_releases_at_once() -> None:
    async with faulty_emulator() as (emu, _):
        async with session_for(emu) as session:
            pager = session.tenant(emu.tenant_ids[0]).messages(page_size=50)
            async for index, _message in _enumerate(pager):
                if index == 75:  # in the middle of the second page
                    break
            assert session.connections_in_use() == 0
            await pager.aclose()
            await pager.aclose()  # harmless the second time
    assert len(api_requests(emu)) == 2


async def _enumerate(pager: Any) -> AsyncIterator[tuple[int, Any]]:
    index = 0
    async for item in pager:
        yield index, item
        index += 1


async def test_pager_aclose_ends_an_iteration_and_is_safe_twice() -> None:
    async with faulty_emulator() as (emu, _):
        async with session_for(emu) as session:
            pager = session.tenant(emu.tenant_ids[0]).messages()
            items = pager.__aiter__()
            first = await items.__anext__()
            await pager.aclose()
            await pager.aclose()
            with pytest.raises(StopAsyncIteration):
                await items.__anext__()
            assert first.id == emu.dataset(emu.tenant_ids[0]).messages[0]["Id"]
            assert session.connections_in_use() == 0
    assert len(api_requests(emu)) == 1


async def test_cancelling_the_task_releases_the_connection() -> None:
    async with stalled_emulator() as (emu, tenant_id):
        async with session_for(emu) as session:
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.tenant(tenant_id).services().collect)
                await wait_until(lambda: session.connections_in_use() == 1)
                tg.cancel_scope.cancel()
            assert session.connections_in_use() == 0
            await wait_until(lambda: emu.in_flight == 0)  # the server saw the connection go
            # The session is still usable afterwards.
            assert await session.tenant(emu.tenant_ids[1]).services().collect()


async def test_fail_after_releases_the_connection() -> None:
    async with stalled_emulator() as (emu, tenant_id):
        async with session_for(emu) as session:
            with pytest.raises(TimeoutError), anyio.fail_after(0.3):
                await session.tenant(tenant_id).services().collect()
            assert session.connections_in_use() == 0
            await wait_until(lambda: emu.in_flight == 0)


async def test_closing_the_session_ends_a_request_in_flight() -> None:
    errors: list[BaseException] = []
    async with stalled_emulator() as (emu, tenant_id):
        session = await session_for(emu).open()

        async def consume() -> None:
            try:
                await session.tenant(tenant_id).messages().collect()
            except SessionClosedError as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await wait_until(lambda: session.connections_in_use() == 1)
                await session.aclose()
        await wait_until(lambda: emu.in_flight == 0)  # the connection really closed
    assert len(errors) == 1
    assert "closed while" in str(errors[0]) and tenant_id in str(errors[0])


async def test_closing_the_session_ends_a_retry_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="servicecomms_async.transport")
    retry.set_testing(False)
    errors: list[BaseException] = []
    plan = FaultPlan(fail_first=1, kinds=(Fault.THROTTLE_429,), retry_after=30)
    async with faulty_emulator(plan) as (emu, _):
        session = await session_for(emu).open()

        async def consume() -> None:
            try:
                await session.tenant(emu.tenant_ids[0]).services().collect()
            except SessionClosedError as exc:
                errors.append(exc)

        with anyio.fail_after(10):  # instead of sleeping the 30 s the server asked for
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await wait_until(
                    lambda: any(r.getMessage().startswith("retrying") for r in caplog.records)
                )
                # Waiting out the server's 30 s: the failed response was released first.
                assert session.connections_in_use() == 0
                await session.aclose()
    assert [type(e) for e in errors] == [SessionClosedError]
    assert len(api_requests(emu)) == 1


async def test_closing_the_session_ends_a_stream_between_pages() -> None:
    async with faulty_emulator() as (emu, _):
        session = await session_for(emu).open()
        seen = 0

        async def read_and_close_after_ten() -> None:
            nonlocal seen
            async for _message in session.tenant(emu.tenant_ids[0]).messages():
                seen += 1
                if seen == 10:
                    await session.aclose()

        with pytest.raises(SessionClosedError):
            await read_and_close_after_ten()
        await session.aclose()
    assert seen == 100  # the page in hand is delivered; the next one is refused
    assert len(api_requests(emu)) == 1


# -- body size cap -----------------------------------------------------------------------------------


def rewrite_body(how: str) -> Middleware:
    """Send the handler's body chunked (no Content-Length), or a huge but tiny-when-gzipped body."""

    @web.middleware
    async def rewrite(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        if how == "gzip-bomb":
            big = orjson.dumps({"value": [{"Id": "S1", "DisplayName": "x" * 2_000_000}]})
            bomb = web.Response(body=big, content_type="application/json")
            bomb.enable_compression(web.ContentCoding.gzip)
            return bomb
        chunked = web.StreamResponse(headers={"Content-Type": "application/json"})
        chunked.enable_chunked_encoding()
        await chunked.prepare(request)
        for start in range(0, len(response.body), 1000):
            await chunked.write(response.body[start : start + 1000])
        await chunked.write_eof()
        return chunked

    return rewrite


@pytest.mark.parametrize("how", ["content-length", "chunked", "gzip-bomb"])
async def test_a_body_above_max_body_bytes_is_refused(how: str) -> None:
    outer = [] if how == "content-length" else [rewrite_body(how)]
    async with faulty_emulator(outer=outer) as (emu, _):
        async with session_for(emu, max_body_bytes=20_000) as session:
            tenant = session.tenant(emu.tenant_ids[0])
            with pytest.raises(UnexpectedResponseError) as info:
                await tenant.messages().collect()
            assert "max_body_bytes" in str(info.value) and "20000" in str(info.value)
            assert session.requests_sent == 1  # the same answer would come again: no retry
            assert session.connections_in_use() == 0
            if how != "gzip-bomb":
                assert await tenant.messages(page_size=5).collect()  # small pages still pass
