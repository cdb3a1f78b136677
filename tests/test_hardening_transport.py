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

import anyio
import anyio.lowlevel
import orjson
import pytest
from aiohttp import web
from yarl import URL

from servicecomms_async import (
    BadRequestError,
    PagingError,
    RetryPolicy,
    ServerError,
    ServiceCommsError,
    ServiceCommsSession,
    TenantFailed,
    Timeout,
    UnexpectedResponseError,
)
from servicecomms_async._constants import (
    ERROR_BODY_LIMIT,
    ERROR_TEXT_LIMIT,
    ITEMS_PER_SLICE,
    MAX_NEXT_LINK_LENGTH,
)
from servicecomms_async._transport import Response
from servicecomms_async._wire import converter as lenient_converter
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
    """The locals of the library's frames in ``error``'s traceback (the test's own are not its)."""
    found = []
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if "servicecomms_async" in frame.f_code.co_filename:
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


# -- item 1: item amplification ----------------------------------------------------------------------


def empty_objects(count: int, next_link: str | None = None) -> Answer:
    page: dict[str, Any] = {"value": [{}] * count}
    if next_link is not None:
        page["@odata.nextLink"] = next_link
    body = orjson.dumps(page)

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return answer


async def test_a_page_above_max_items_per_page_is_refused_without_a_retry() -> None:
    async with hostile(empty_objects(20_001)) as (emu, session):
        with pytest.raises(UnexpectedResponseError, match=r"20001 items.*max_items_per_page"):
            await session.tenant(TENANT).services().collect()
        assert sent_to(emu) == 1
    async with hostile(empty_objects(50), max_items_per_page=49) as (_, session):
        with pytest.raises(UnexpectedResponseError, match="more than the limit of 49"):
            await session.tenant(TENANT).services().collect()
    async with hostile(empty_objects(49), max_items_per_page=49) as (_, session):
        assert len(await session.tenant(TENANT).services().collect()) == 49


async def test_a_page_longer_than_its_page_size_is_refused() -> None:
    async with hostile(empty_objects(6)) as (_, session):
        with pytest.raises(UnexpectedResponseError, match="more than the 5 asked for"):
            await session.tenant(TENANT).messages(page_size=5).collect()

    issues = orjson.dumps({"value": [{"id": f"I{n}"} for n in range(11)]})

    @web.middleware
    async def graph_issues(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith("/issues"):
            return web.Response(body=issues, content_type="application/json")
        return await handler(request)  # type: ignore[no-any-return]

    async with Emulator(EmulatorConfig(tenants=1), middlewares=[graph_issues]) as emu:
        async with ServiceCommsSession(
            token=TOKEN, api="graph", base_url=emu.graph_base_url
        ) as session:
            graph = session.graph(emu.tenant_ids[0])
            with pytest.raises(UnexpectedResponseError, match="more than the 10 asked for"):
                await graph.issues(page_size=10).collect()
            assert len(await graph.issues(page_size=11).collect()) == 11


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1, ValueError), ("10", TypeError), (True, TypeError)]
)
def test_max_items_per_page_is_checked_on_construction(value: object, error: type) -> None:
    with pytest.raises(error, match="max_items_per_page"):
        ServiceCommsSession(token=TOKEN, max_items_per_page=value)  # type: ignore[arg-type]


async def test_a_long_page_is_structured_in_slices_that_let_the_loop_run() -> None:
    from servicecomms_async.legacy.models import Service
    from servicecomms_async.paging import AsyncPager, PageQuery

    count = 5 * ITEMS_PER_SLICE
    page = {"value": [{"Id": f"S{n}"} for n in range(count)]}

    async def fetch(url: URL) -> Response:  # answers without a pass through the loop
        return Response(page, 200, str(url), None, 1)

    pager = AsyncPager(
        fetch=fetch,
        query=PageQuery(endpoint=URL("https://example.test/Services")),
        model=Service,
        converter=lenient_converter,
    )
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await anyio.lowlevel.checkpoint()  # the ticker is running
        before = ticks
        first = await pager.first_page()
        during = ticks - before
        done = True
    assert len(first) == count
    assert during >= 4  # a pass through the loop between each slice and the next


# -- item 3: next links ------------------------------------------------------------------------------


async def test_a_next_link_above_the_length_limit_is_refused() -> None:
    over = "Services?p=2#" + "x" * MAX_NEXT_LINK_LENGTH
    async with hostile(empty_objects(1, over)) as (emu, session):
        with pytest.raises(PagingError, match="MAX_NEXT_LINK_LENGTH"):
            await session.tenant(TENANT).services().collect()
        assert sent_to(emu) == 1

    calls = 0

    async def long_but_allowed(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        # The fragment is never sent, so the server's request line stays short.
        link = "Services?p=2#" + "x" * (MAX_NEXT_LINK_LENGTH - 13)
        page = {"value": [{"Id": str(calls)}], **({"@odata.nextLink": link} if calls == 1 else {})}
        return web.json_response(page)

    async with hostile(long_but_allowed) as (_, session):
        assert len(await session.tenant(TENANT).services().collect()) == 2


# -- item 4: paging that never ends ------------------------------------------------------------------


async def test_a_server_that_ignores_skip_is_stopped_on_the_second_page() -> None:
    page = orjson.dumps({"value": [{"Id": f"M{n}"} for n in range(10)]})

    async def ignores_skip(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="application/json")

    async with hostile(ignores_skip) as (emu, session):
        with pytest.raises(PagingError, match=r"ignores \$skip"):
            await session.tenant(TENANT).messages(page_size=10).collect()
        assert sent_to(emu) == 2


SPELLINGS = {
    "fragment": "Services?p={p}#again",
    "absolute": "http://{host}{path}?p={p}",
    "percent-encoded": "Services?p=%{hex}",
    "trailing &": "Services?p={p}&",
    "empty parameters": "Services?&p={p}&&",
    "host case": "http://{HOST}{path}?p={p}",
    "dot segment": "./Services?p={p}",
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
async def test_a_next_link_loop_is_caught_however_it_is_spelled(spelling: str) -> None:
    calls = 0

    async def a_b_a(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        # Page 1 links to A, A to B, B back to A spelled another way.
        link = (
            "Services?p=A" if calls == 1 else "Services?p=B" if calls == 2 else SPELLINGS[spelling]
        )
        text = link.format(
            p="A",
            hex=f"{ord('A'):X}",
            host=request.host,
            path=request.path,
            HOST=request.host.replace("localhost", "LocalHost"),
        )
        return web.json_response({"value": [{"Id": str(calls)}], "@odata.nextLink": text})

    async with Emulator(EmulatorConfig(tenants=1), middlewares=[answering(a_b_a)]) as emu:
        base_url = str(emu.base_url).replace("127.0.0.1", "localhost")
        async with ServiceCommsSession(token=TOKEN, base_url=base_url) as session:
            with pytest.raises(PagingError, match=r"same @odata\.nextLink twice"):
                await session.tenant(TENANT).services().collect()
        assert sent_to(emu) == 3


def test_link_keys_ignore_what_does_not_change_the_page() -> None:
    from servicecomms_async.paging import link_key

    same = [
        "https://graph.example/v1.0/issues?$skiptoken=A",
        "HTTPS://Graph.Example:443/v1.0/issues?$skiptoken=%41#x",
        "https://graph.example/v1.0/./issues?$skiptoken=A&",
        "https://graph.example/v1.0/issues?%24skiptoken=A",
    ]
    assert len({link_key(URL(text, encoded=True)) for text in same}) == 1
    different = [
        "https://graph.example/v1.0/issues?$skiptoken=B",
        "https://graph.example:8443/v1.0/issues?$skiptoken=A",
        "http://graph.example/v1.0/issues?$skiptoken=A",
        # Escapes that change the meaning are not decoded.
        "https://graph.example/v1.0/issues?$skiptoken=A%26B",
        "https://graph.example/v1.0/issues?$skiptoken=A&B",
        "https://graph.example/v1.0/a%2Fb?$skiptoken=A",
        "https://graph.example/v1.0/a/b?$skiptoken=A",
    ]
    keys = {link_key(URL(text, encoded=True)) for text in different}
    assert len(keys) == len(different) and link_key(URL(same[0])) not in keys


# -- item 12: links and base URLs the library must refuse --------------------------------------------

HOSTILE_LINKS = {
    "user info, same origin": "http://user:secret@{host}{path}?p=2",
    "backslash": "Services\\..\\x?p=2",
    "nul": "Services?p=\x00",
    "new line": "Services?p=2\r\nX-Injected: 1",
    "file": "file:///etc/passwd",
    "javascript": "javascript:alert(1)",
    "data": "data:application/json,{{}}",
    "ftp": "ftp://{host}/x",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LINKS))
async def test_a_hostile_next_link_is_refused_at_once(case: str) -> None:
    async def answer(request: web.Request) -> web.Response:
        if request.query:
            return web.json_response({"value": []})
        link = HOSTILE_LINKS[case].format(host=request.host, path=request.path)
        return web.json_response({"value": [{"Id": "S1"}], "@odata.nextLink": link})

    async with hostile(answer) as (emu, session):
        with pytest.raises(PagingError, match=r"refusing the @odata\.nextLink") as info:
            await session.tenant(TENANT).services().collect()
        assert sent_to(emu) == 1  # refused, not retried, not sent
    assert "secret@" not in str(info.value.url)


@pytest.mark.parametrize(
    "base_url",
    ["https://user:pa55word@manage.example/api", "https://user@manage.example/api"],
)
def test_a_base_url_with_user_info_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="must not hold user info") as info:
        ServiceCommsSession(token=TOKEN, base_url=base_url)
    assert "pa55word" not in str(info.value) and "user@" not in str(info.value)


# -- item 13: which decode failures are asked again --------------------------------------------------

WHOLE_BUT_BROKEN = {
    "depth limit": (200, b"[" * 1100 + b"]" * 1100),
    "byte order mark": (200, b'\xef\xbb\xbf{"value": []}'),
    "NaN": (200, b'{"value": [NaN]}'),
    "invalid UTF-8": (200, b'{"value": ["\xff"]}'),
    "trailing content": (200, b'{"value": []} {"value": []}'),
    "empty 200": (200, b""),
    "204": (204, b""),
}


@pytest.mark.parametrize("case", sorted(WHOLE_BUT_BROKEN))
async def test_a_whole_body_that_does_not_decode_is_not_asked_again(case: str) -> None:
    status, body = WHOLE_BUT_BROKEN[case]

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    async with hostile(answer) as (emu, session):
        with pytest.raises(UnexpectedResponseError):
            await session.tenant(TENANT).services().collect()
        assert sent_to(emu) == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_that_ends_early_in_transit_is_asked_again(framing: str) -> None:
    whole = orjson.dumps({"value": [{"Id": "S1"}, {"Id": "S2"}]})
    calls = 0

    async def cut_once(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls > 1:
            return web.Response(body=whole, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if framing == "chunked":
            response.enable_chunked_encoding()
        else:
            response.content_length = len(whole)
        await response.prepare(request)
        await response.write(whole[:10])
        assert request.transport is not None
        request.transport.close()  # no last chunk, or fewer bytes than promised
        return response

    async with hostile(cut_once) as (emu, session):
        services = await session.tenant(TENANT).services().collect()
        assert sent_to(emu) == 2
    assert [s.id for s in services] == ["S1", "S2"]


async def test_a_get_that_fails_keeps_no_body_in_its_traceback() -> None:
    big = orjson.dumps(["x" * 2_000_000])

    @web.middleware
    async def not_an_object(request: web.Request, handler: Any) -> web.StreamResponse:
        if "/issues/" in request.path:
            return web.Response(body=big, content_type="application/json")
        return await handler(request)  # type: ignore[no-any-return]

    async with Emulator(EmulatorConfig(tenants=1), middlewares=[not_an_object]) as emu:
        async with ServiceCommsSession(
            token=TOKEN, api="graph", base_url=emu.graph_base_url
        ) as session:
            with pytest.raises(UnexpectedResponseError, match="expected a JSON object") as info:
                await session.graph(emu.tenant_ids[0]).issue("EX1")
    assert not [
        (function, name)
        for function, name, value in frame_locals(info.value)
        if len(repr(value)) > ERROR_BODY_LIMIT
    ]
