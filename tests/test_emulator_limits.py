"""The emulator's Microsoft Graph request limits (``Emulator(graph_limits=GraphLimits(...))``), over
loopback with raw aiohttp: 240 requests per 60 s and 800 per hour per app per tenant, an app-wide window,
429 with ``Retry-After`` and Graph's body past them, windows on the emulator's clock, off by default, and
the command's flags."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from servicecomms_async.emulator import (
    Emulator,
    EmulatorConfig,
    GraphLimits,
    ManualClock,
    Window,
    run_forever,
)
from servicecomms_async.emulator.command import build_parser, limits_from
from servicecomms_async.emulator.identity import IdentityServer
from servicecomms_async.emulator.limits import DEFAULT_APP, parse_windows

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
SECRET = "limits-app-secret-never-logged"
HOUR = Window(800, 3600.0)
MINUTE = Window(240, 60.0)


def config(**kw: Any) -> EmulatorConfig:
    kw.setdefault("seed", 7)
    kw.setdefault("tenants", 5)
    kw.setdefault("messages_per_tenant", 20)
    kw.setdefault("now", NOW)
    return EmulatorConfig(**kw)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def retry_after(self) -> int:
        return int(self.headers["Retry-After"])

    def assert_throttled(self) -> int:
        """Graph's 429: status, Retry-After (whole seconds >= 1), body and ids; the Retry-After."""
        assert self.status == 429, (self.status, self.body[:200])
        assert self.headers["Retry-After"].isdigit() and self.retry_after >= 1
        error = json.loads(self.body)["error"]
        assert error["code"] == "TooManyRequests"
        assert error["message"] == "Please retry again later."
        inner = error["innerError"]
        assert inner["code"] == "429" and inner["status"] == "429"
        assert inner["request-id"] == self.headers["request-id"]
        assert self.headers["Content-Type"].startswith("application/json")
        return self.retry_after


async def graph(
    http: aiohttp.ClientSession,
    emu: Emulator,
    tenant: str | None = None,
    *,
    token: str | None = None,
    path: str = "healthOverviews",
) -> Reply:
    bearer = token if token is not None else emu.graph_token(tenant or emu.tenant_ids[0])
    url = f"{emu.graph_base_url}/admin/serviceAnnouncement/{path}"
    async with http.get(url, headers={"Authorization": f"Bearer {bearer}"}) as resp:
        return Reply(resp.status, dict(resp.headers), await resp.read())


async def burst(
    http: aiohttp.ClientSession, emu: Emulator, tenant: str | None, n: int, **kw: Any
) -> list[int]:
    return [(await graph(http, emu, tenant, **kw)).status for _ in range(n)]


# -- per (app, tenant): 240 a minute --


async def test_the_241st_request_in_a_minute_is_throttled_until_the_window_frees(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(config(), clock=ManualClock(), graph_limits=GraphLimits()) as emu:
        first, other = emu.tenant_ids[:2]
        assert await burst(http, emu, first, 240) == [200] * 240
        refused = await graph(http, emu, first)
        assert refused.assert_throttled() == 60  # the oldest request (at 0 s) leaves at 60 s
        assert emu.throttled == {first: 1}
        assert emu.throttled_windows == {("tenant", MINUTE): 1}
        # A throttled request is recorded as such and served nothing.
        last = emu.requests[-1]
        assert last.throttled and last.items == 0
        assert not any(r.throttled for r in emu.requests[:-1])

        # Another tenant of the same app has its own windows.
        assert (await graph(http, emu, other)).status == 200

        # One second short of Retry-After it is still refused (and, Graph counts attempts, the
        # refused attempt counts too); at Retry-After it passes.
        emu.advance(timedelta(seconds=59))
        assert (await graph(http, emu, first)).assert_throttled() == 1
        emu.advance(timedelta(seconds=1))
        assert await burst(http, emu, first, 10) == [200] * 10
        assert emu.throttled == {first: 2}

        emu.reset_stats()
        assert not emu.throttled and not emu.throttled_windows


async def test_concurrent_requests_cannot_slip_past_a_window_together(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(config(), clock=ManualClock(), graph_limits=GraphLimits()) as emu:
        tenant = emu.tenant_ids[0]
        replies = await asyncio.gather(*(graph(http, emu, tenant) for _ in range(300)))
        statuses = sorted(r.status for r in replies)
        assert statuses == [200] * 240 + [429] * 60
        assert emu.throttled == {tenant: 60}


# -- per (app, tenant): 800 an hour --


async def _eight_hundred_in_four_minutes(http: aiohttp.ClientSession, emu: Emulator) -> None:
    """200 requests at 0, 60, 120 and 180 s: the 60-s window never trips, the hour is spent."""
    tenant = emu.tenant_ids[0]
    for step in range(4):
        if step:
            emu.advance(timedelta(seconds=60))
        replies = await asyncio.gather(*(graph(http, emu, tenant) for _ in range(200)))
        assert {r.status for r in replies} == {200}
    emu.advance(timedelta(seconds=60))  # t = 240 s


async def test_the_801st_request_in_an_hour_waits_for_the_hour_window(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(config(), clock=ManualClock(), graph_limits=GraphLimits()) as emu:
        tenant = emu.tenant_ids[0]
        await _eight_hundred_in_four_minutes(http, emu)
        refused = await graph(http, emu, tenant)
        # The first 200 (at 0 s) leave the hour at 3,600 s: 3,360 s from now (t = 240 s).
        assert refused.assert_throttled() == 3600 - 240
        assert emu.throttled_windows == {("tenant", HOUR): 1}
        assert (await graph(http, emu, emu.tenant_ids[1])).status == 200

        emu.advance(timedelta(seconds=3600 - 240 - 1))
        assert (await graph(http, emu, tenant)).assert_throttled() == 1
        emu.advance(timedelta(seconds=1))
        # 200 left the window; two attempts were counted, so 198 more fit in this hour.
        replies = await asyncio.gather(*(graph(http, emu, tenant) for _ in range(199)))
        assert sorted(r.status for r in replies) == [200] * 198 + [429]


async def test_counting_served_requests_only_is_an_option(http: aiohttp.ClientSession) -> None:
    limits = GraphLimits(count_throttled=False)
    async with Emulator(config(), clock=ManualClock(), graph_limits=limits) as emu:
        tenant = emu.tenant_ids[0]
        await _eight_hundred_in_four_minutes(http, emu)
        for _ in range(5):  # hammering while throttled does not make it last longer
            assert (await graph(http, emu, tenant)).assert_throttled() == 3600 - 240
        emu.advance(timedelta(seconds=3600 - 240))
        replies = await asyncio.gather(*(graph(http, emu, tenant) for _ in range(201)))
        assert sorted(r.status for r in replies) == [200] * 200 + [429]


# -- per app across tenants, and who the app is --


async def test_an_app_wide_window_spans_tenants(http: aiohttp.ClientSession) -> None:
    limits = GraphLimits(per_tenant=(), per_app=[(5, 10)])
    async with Emulator(config(), clock=ManualClock(), graph_limits=limits) as emu:
        tenants = emu.tenant_ids
        assert [(await graph(http, emu, t)).status for t in tenants] == [200] * 5
        refused = await graph(http, emu, tenants[0])
        assert refused.assert_throttled() == 10
        assert emu.throttled_windows == {("app", Window(5, 10.0)): 1}
        # Delegated emulator tokens are the same default app.
        delegated = emu.graph_token(tenants[1], delegated=True)
        assert (await graph(http, emu, token=delegated)).status == 429
        emu.advance(timedelta(seconds=10))
        assert (await graph(http, emu, tenants[2])).status == 200


async def test_jwt_apps_have_their_own_windows_and_the_token_endpoint_is_never_limited(
    http: aiohttp.ClientSession,
) -> None:
    limits = GraphLimits(per_tenant=[(2, 60)], per_app=[(3, 60)])
    async with IdentityServer() as idp:
        async with Emulator(
            config(),
            clock=ManualClock(),
            graph_token_validator=idp.graph_token_validator,
            graph_limits=limits,
        ) as emu:
            idp.add_tenants(emu.tenant_ids)
            one, two = emu.tenant_ids[:2]
            app_a = "aaaaaaaa-0000-0000-0000-00000000000a"
            app_b = "bbbbbbbb-0000-0000-0000-00000000000b"
            a_one = idp.issue_graph_token(one, client_id=app_a)
            a_two = idp.issue_graph_token(two, client_id=app_a)
            b_one = idp.issue_graph_token(one, client_id=app_b)
            assert await burst(http, emu, token=a_one, tenant=None, n=2) == [200, 200]
            assert (await graph(http, emu, token=a_one)).status == 429  # (app a, one): 2/60
            assert (await graph(http, emu, token=b_one)).status == 200  # app b, same tenant
            # App a's refused third attempt counted app-wide too (Graph counts attempts): 3/60 spent.
            assert (await graph(http, emu, token=a_two)).status == 429
            refused = await graph(http, emu, token=a_two)
            assert refused.status == 429 and emu.throttled_windows[("app", Window(3, 60.0))] == 2
            assert emu.throttled == {one: 1, two: 2}
            assert DEFAULT_APP == "emulator-app"

            # An unauthenticated request is nobody's: answered 401 and counted nowhere.
            for _ in range(5):
                assert (await graph(http, emu, token="not-a-jwt")).status == 401
            assert (await graph(http, emu, token=b_one)).status == 200

            # The identity server's token endpoint is another server: never limited.
            registered = idp.register_app(secret=SECRET)
            ssl = idp.client_ssl_context()
            form = {
                "grant_type": "client_credentials",
                "client_id": registered.client_id,
                "client_secret": SECRET,
                "scope": "https://graph.microsoft.com/.default",
            }
            # Its own client, closed before the identity server is: a TLS connection left open to
            # a closed server is a ResourceWarning on Python 3.10.
            async with aiohttp.ClientSession() as tls:
                for _ in range(10):
                    async with tls.post(idp.token_endpoint(one), data=form, ssl=ssl) as resp:
                        assert resp.status == 200
                        token = (await resp.json())["access_token"]
            assert (await graph(http, emu, token=token)).status == 200
            assert (await graph(http, emu, token=token)).status == 200
            assert (await graph(http, emu, token=token)).status == 429


async def test_legacy_routes_are_never_limited(http: aiohttp.ClientSession) -> None:
    limits = GraphLimits(per_tenant=[(1, 60)], per_app=[(1, 60)])
    async with Emulator(config(), clock=ManualClock(), graph_limits=limits) as emu:
        tenant = emu.tenant_ids[0]
        assert await burst(http, emu, tenant, 3) == [200, 429, 429]
        for _ in range(50):
            async with http.get(
                f"{emu.base_url}/{tenant}/ServiceComms/CurrentStatus",
                headers={"Authorization": "Bearer any-token"},
            ) as resp:
                assert resp.status == 200
        assert emu.throttled == {tenant: 2}


# -- time, defaults and configuration --


async def test_without_a_clock_windows_move_with_the_monotonic_clock(
    http: aiohttp.ClientSession,
) -> None:
    limits = GraphLimits(per_tenant=[(3, 0.5)], per_app=(), count_throttled=False)
    async with Emulator(config(), graph_limits=limits) as emu:
        tenant = emu.tenant_ids[0]
        assert await burst(http, emu, tenant, 3) == [200] * 3
        assert (await graph(http, emu, tenant)).assert_throttled() == 1  # rounded up, at least 1
        await asyncio.sleep(0.6)
        assert (await graph(http, emu, tenant)).status == 200


async def test_limits_are_off_by_default(http: aiohttp.ClientSession) -> None:
    async with Emulator(config(), clock=ManualClock()) as emu:
        assert emu.graph_limits is None
        tenant = emu.tenant_ids[0]
        for _ in range(10):
            replies = await asyncio.gather(*(graph(http, emu, tenant) for _ in range(100)))
            assert {r.status for r in replies} == {200}
        assert not emu.throttled and not any(r.throttled for r in emu.requests)
        assert len(emu.requests) == 1000


def test_graph_limits_defaults_and_validation() -> None:
    limits = GraphLimits()
    assert limits.per_tenant == limits.tenant_windows == (MINUTE, HOUR)
    assert limits.per_app == limits.app_windows == (Window(130_000, 10.0),)
    assert limits.count_throttled is True
    assert GraphLimits(per_tenant="5/1,10/60", per_app="") == GraphLimits(
        per_tenant=[(5, 1), (10, 60)], per_app=()
    )
    assert str(GraphLimits(per_app=())) == "per (app, tenant) 240/60,800/3600; per app none"
    for bad in ([(0, 60)], [(5, 0)], [(5, float("inf"))], [(5, 8 * 24 * 3600)], "5/"):
        with pytest.raises(ValueError, match=r"GraphLimits\.per_tenant"):
            GraphLimits(per_tenant=bad)
    for wrong in ([(5.5, 60)], [(True, 60)], [(5,)], 5):
        with pytest.raises(TypeError):
            GraphLimits(per_tenant=wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="graph_limits must be a GraphLimits"):
        Emulator(config(), graph_limits=[(240, 60)])  # type: ignore[arg-type]
    assert parse_windows(" 130_000/10 , 240/60s ") == (Window(130_000, 10.0), Window(240, 60.0))
    assert parse_windows("") == ()


def test_the_command_flags_turn_the_limits_on_and_refuse_bad_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    assert limits_from(parser.parse_args([])) is None
    assert limits_from(parser.parse_args(["--graph-limits"])) == GraphLimits()
    custom = limits_from(parser.parse_args(["--graph-limit-per-tenant", "240/60,800/3600"]))
    assert custom == GraphLimits()  # the per-app window left out keeps Graph's
    small = limits_from(
        parser.parse_args(["--graph-limit-per-tenant", "10/1", "--graph-limit-per-app", "none"])
    )
    assert small == GraphLimits(per_tenant=[(10, 1)], per_app=())
    app_only = limits_from(parser.parse_args(["--graph-limit-per-app", "130000/10"]))
    assert app_only == GraphLimits()

    refused = {
        "240": "expected REQUESTS/SECONDS such as 240/60, got '240'",
        "x/60": "expected REQUESTS/SECONDS",
        "240/60,": "got ''",
        "0/60": "requests must be from 1 to 10,000,000, got 0",
        "240/0": "seconds must be from 0.001",
        "": "expected REQUESTS/SECONDS windows",
    }
    for flag in ("--graph-limit-per-tenant", "--graph-limit-per-app"):
        for value, reason in refused.items():
            with pytest.raises(SystemExit) as exit_info:
                parser.parse_args([flag, value])
            assert exit_info.value.code == 2
            err = capsys.readouterr().err
            assert f"argument {flag}: " in err and reason in err, err


async def test_run_forever_announces_the_limits() -> None:
    lines: list[str] = []
    ready = asyncio.Event()

    def announce(line: str) -> None:
        lines.append(line)
        if line.startswith("Any non-empty"):
            ready.set()

    limits = GraphLimits(per_app=())
    task = asyncio.create_task(
        run_forever(config(), "127.0.0.1", 0, announce=announce, graph_limits=limits)
    )
    try:
        await asyncio.wait_for(ready.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    line = next(line for line in lines if "request limits" in line)
    assert "240/60,800/3600" in line and "per app none" in line and "429" in line
