"""Hardening (issue 12): hostile servers against the transport and the pager.

Every case is produced by a real server over loopback HTTP (the embedded emulator with a middleware
answering fixed bodies, or its fault plans); nothing of aiohttp is mocked. The tests assert what a
caller sees: the typed error, its capped text, the requests sent, what a held error keeps alive.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from servicecomms_async import (
    APIStatusError,
    BadRequestError,
    ConnectError,
    PagingError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    ServiceCommsError,
    ServiceCommsSession,
    TenantFailed,
    Timeout,
    UnexpectedResponseError,
)
from servicecomms_async._constants import ERROR_BODY_LIMIT, ERROR_TEXT_LIMIT
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.faults import Fault, FaultPlan, fault_middleware

from .conftest import SECRETS, traceback_locals_leaks

pytestmark = pytest.mark.anyio

# Long enough to be scrubbed, registered so the suite's log check looks for it too.
TOKEN = "hardening-token-never-logged-0123456789"
SECRETS.add(TOKEN)
TENANT = "contoso.com"

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answering(answer: Answer, tenant: str = TENANT) -> Any:
    """A middleware that answers ``tenant``'s API requests with ``answer`` and counts them."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if f"/{tenant}/" in request.path:
            return await answer(request)
        return await handler(request)  # type: ignore[no-any-return]

    return middleware


@asynccontextmanager
async def hostile(
    answer: Answer, *, tenants: int = 1, **options: Any
) -> AsyncIterator[tuple[Emulator, ServiceCommsSession]]:
    async with Emulator(EmulatorConfig(tenants=tenants), middlewares=[answering(answer)]) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url, **options) as session:
            yield emu, session
            assert session.connections_in_use() == 0


def sent_to(emu: Emulator, tenant: str = TENANT) -> int:
    return sum(1 for r in emu.requests if f"/{tenant}/" in r.path)


def frame_locals(error: BaseException) -> list[tuple[str, str, Any]]:
    found = []
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        found += [(frame.f_code.co_name, name, value) for name, value in frame.f_locals.items()]
        tb = tb.tb_next
    return found


# -- item 2: errors that hold too much -------------------------------------------------------------


async def test_every_text_of_an_api_error_is_capped() -> None:
    async def huge_error(request: web.Request) -> web.Response:
        body = {"error": {"code": "C" * 1_000_000, "message": "m" * 5_000_000}}
        return web.json_response(body, status=400)

    async with hostile(huge_error) as (_, session):
        with pytest.raises(BadRequestError) as info:
            await session.tenant(TENANT).services().collect()
    error = info.value
    assert error.message is not None and error.message.startswith("mmm")
    assert len(error.message) == ERROR_TEXT_LIMIT and error.message.endswith("...")
    assert error.code is not None and len(error.code) == ERROR_TEXT_LIMIT
    assert len(error.body_text) == ERROR_BODY_LIMIT
    assert len(str(error)) < 4 * ERROR_TEXT_LIMIT


async def test_a_held_error_keeps_neither_the_body_nor_the_request_headers() -> None:
    async def huge_error(request: web.Request) -> web.Response:
        return web.Response(status=500, text="x" * 3_000_000)

    async with hostile(huge_error, retry=RetryPolicy(attempts=2)) as (_, session):
        with pytest.raises(ServerError) as info:
            await session.tenant(TENANT).services().collect()
    big = [
        (function, name)
        for function, name, value in frame_locals(info.value)
        if isinstance(value, (bytes, str)) and len(value) > ERROR_BODY_LIMIT
    ]
    assert big == []
    assert not [
        (function, name)
        for function, name, value in frame_locals(info.value)
        if name == "headers" and isinstance(value, dict) and "Authorization" in value
    ]
    assert traceback_locals_leaks(info.value) == []


async def test_a_decode_failure_keeps_no_body_in_its_traceback() -> None:
    async def bad_json(request: web.Request) -> web.Response:
        return web.Response(body=b"{" + b"x" * 2_000_000, content_type="text/plain")

    async with hostile(bad_json) as (_, session):
        with pytest.raises(UnexpectedResponseError) as info:
            await session.tenant(TENANT).services().collect()
    assert not [
        (function, name)
        for function, name, value in frame_locals(info.value)
        if len(repr(value)) > ERROR_BODY_LIMIT
    ]


# -- item 5: no cookies ------------------------------------------------------------------------------


async def test_one_tenants_cookie_is_never_sent_with_another_tenants_request() -> None:
    cookies: list[str | None] = []

    @web.middleware
    async def sets_cookies(request: web.Request, handler: Any) -> web.StreamResponse:
        cookies.append(request.headers.get("Cookie"))
        response = await handler(request)
        response.set_cookie("session", request.path.split("/")[3])
        return response  # type: ignore[no-any-return]

    async with Emulator(EmulatorConfig(tenants=2), middlewares=[sets_cookies]) as emu:
        # A host name, not an IP: aiohttp's default jar keeps cookies only for host names.
        base_url = str(emu.base_url).replace("127.0.0.1", "localhost")
        async with ServiceCommsSession(token=TOKEN, base_url=base_url) as session:
            for tenant in emu.tenant_ids:
                await session.tenant(tenant).services().collect()
                await session.tenant(tenant).current_status().collect()
    assert len(cookies) == 4
    assert cookies == [None] * 4


# -- items 9 and 10: the token in tracebacks and in error texts --------------------------------------


async def test_a_token_echoed_into_an_error_body_is_scrubbed_from_every_text() -> None:
    async def echo(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        body = {"error": {"code": f"Bad{sent}", "message": f"you sent {sent}"}}
        return web.json_response(body, status=400, headers={"X-Activity-Id": sent})

    async def echo_text(request: web.Request) -> web.Response:
        # The token straddles the body-text cap: no half of it may stay either.
        pad = "p" * (ERROR_BODY_LIMIT - 20)
        return web.Response(status=400, text=pad + request.headers.get("Authorization", ""))

    async def echo_bad_json(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        return web.Response(body=f"{{{sent}".encode(), content_type="application/json")

    for answer in (echo, echo_text, echo_bad_json):
        async with hostile(answer, retry=RetryPolicy(attempts=1)) as (_, session):
            with pytest.raises(ServiceCommsError) as info:
                await session.tenant(TENANT).services().collect()
        texts = [str(info.value), *(v for v in vars(info.value).values() if isinstance(v, str))]
        assert any("***" in text for text in texts), answer.__name__
        assert not [text for text in texts if TOKEN in text or TOKEN[:12] in text], answer.__name__


def faulted(fault: Fault) -> Answer:
    """An answer that injects ``fault`` every time (through the emulator's own fault plans)."""
    injector = fault_middleware(FaultPlan(rate=1.0, kinds=(fault,), stall_seconds=5))

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"value": [{"Id": "S1"}]})

    async def answer(request: web.Request) -> web.StreamResponse:
        return await injector(request, handler)  # type: ignore[no-any-return]

    return answer


async def echo_401(request: web.Request) -> web.Response:
    return web.Response(status=401, text=f"rejected {request.headers.get('Authorization')}")


async def html_page(request: web.Request) -> web.Response:
    return web.Response(text="<html>login</html>", content_type="text/html")


async def bad_link(request: web.Request) -> web.Response:
    if request.query:
        return web.json_response({"value": []})
    return web.json_response({"value": [{"Id": "S1"}], "@odata.nextLink": "Services?p=\x00"})


ERROR_PATHS: dict[str, Answer] = {
    "server error": faulted(Fault.SERVER_ERROR),
    "throttled": faulted(Fault.THROTTLE_429),
    "reset before body": faulted(Fault.RESET_BEFORE_BODY),
    "reset during body": faulted(Fault.RESET_DURING_BODY),
    "truncated json": faulted(Fault.TRUNCATED_JSON),
    "stall": faulted(Fault.STALL),
    "401 twice": echo_401,
    "not json": html_page,
    "nul in next link": bad_link,
}


@pytest.mark.parametrize("path", sorted(ERROR_PATHS))
async def test_no_traceback_frame_shows_the_token(path: str) -> None:
    options: dict[str, Any] = {"retry": RetryPolicy(attempts=2)}
    if path == "stall":
        options["timeout"] = Timeout(total=0.3)
    async with hostile(ERROR_PATHS[path], **options) as (_, session):
        with pytest.raises(ServiceCommsError) as info:
            await session.tenant(TENANT).services().collect()
    assert traceback_locals_leaks(info.value) == [], path
    assert TOKEN not in str(info.value)


async def test_a_scan_logs_no_token_in_its_warnings_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The suite's check (conftest) also walks the locals of every logged traceback.
    async with hostile(bad_link, tenants=2) as (_, session):
        async with session.scan([TENANT], lambda t: t.services(), concurrency=2) as results:
            outcomes = [result async for result in results]
    failed = [r for r in outcomes if isinstance(r, TenantFailed)]
    assert len(failed) == 1
    assert isinstance(failed[0].error, ServiceCommsError)
    assert traceback_locals_leaks(failed[0].error) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_authorization_header_shows_as_stars_but_is_sent_whole() -> None:
    from servicecomms_async._transport import HiddenHeaderValue

    value = HiddenHeaderValue(f"Bearer {TOKEN}")
    assert repr(value) == "'***'" and repr({"Authorization": value}) == "{'Authorization': '***'}"
    seen: list[str] = []

    async def records(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.json_response({"value": []})

    async with hostile(records) as (_, session):
        await session.tenant(TENANT).services().collect()
    assert seen == [f"Bearer {TOKEN}"]


# Kept importable for the typed names used by later hardening tests.
__all__ = ["APIStatusError", "ConnectError", "PagingError", "RequestTimeoutError"]
