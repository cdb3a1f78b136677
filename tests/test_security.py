"""Hostile input: tenant ids, OData injection, where the token may go, and how much a server may send."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servicecomms_async import (
    APIStatusError,
    PagingError,
    ServiceCommsSession,
    TLSError,
    UnexpectedResponseError,
)
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.odata import tokenize

from .conftest import TOKEN, ThreadedEmulator

HOSTILE_TENANTS = [
    "../x",
    "..",
    "a/b",
    "a?b",
    "a#b",
    "%2e%2e",
    "contoso.com/../../other.com",
    "contoso.com?x=1",
    "contoso com",
    "contoso.com\r\nX-Injected: 1",
    "contoso\t.com",
    "\x00.com",
    "a" * 64 + ".com",
    "x." * 127 + "com",
    "c\u043entoso.com",  # Cyrillic o
    "\u212aontoso.com",  # Kelvin sign
    "xn--80ak6aa92e.com\u200b",  # zero-width space
    "https://evil.example",
    "@evil.example",
    "",
]


@pytest.mark.anyio
@pytest.mark.parametrize("tenant", HOSTILE_TENANTS)
async def test_hostile_tenant_ids_never_reach_the_network(
    emulator: Emulator, session: ServiceCommsSession, tenant: str
) -> None:
    with pytest.raises(ValueError, match="tenant must be a tenant GUID or a DNS domain name"):
        session.tenant(tenant)
    assert emulator.requests == []


# What a user could pass as a filter value: anything printable, quotes, OData keywords, parentheses.
filter_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda s: s == s.strip())
odata_words = st.sampled_from(["' or 1 eq 1 or '", "') or ('", "x' and Id ne '", "''", "'"])


def expected_tokens(pairs: list[tuple[str, str]]) -> list[tuple[str, object]]:
    tokens: list[tuple[str, object]] = []
    for field, value in pairs:
        if tokens:
            tokens.append(("word", "and"))
        tokens += [("word", field), ("word", "eq"), ("str", value)]
    return [*tokens, ("end", None)]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(workload=filter_values | odata_words, message_id=filter_values | odata_words)
def test_filter_values_cannot_break_out_of_their_quotes(workload: str, message_id: str) -> None:
    """The filter the server parses is always `Workload eq '<w>' and Id eq '<id>'`, whatever w and id."""
    with ThreadedEmulator(EmulatorConfig(tenants=1)) as emu:

        async def call() -> None:
            async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
                tenant = session.tenant("contoso.com")
                await tenant.messages(workload=workload, message_id=message_id).collect()

        anyio.run(call)
        received = emu.requests[-1].query["$filter"]
    parsed = [(t.kind, t.value if t.kind == "str" else t.text or None) for t in tokenize(received)]
    assert parsed == expected_tokens([("Workload", workload), ("Id", message_id)])


class Recorder:
    """A second local server on another port that records the headers it is sent."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Recorder:
        async def record(request: web.Request) -> web.Response:
            self.headers.append(dict(request.headers))
            return web.json_response({"value": [{"Id": "FromElsewhere"}]})

        app = web.Application()
        app.router.add_get("/{tail:.*}", record)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with Recorder() as rec:
        yield rec


def answering(tenant: str, make_response: Any) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if f"/{tenant}/" in request.path:
            return make_response()  # type: ignore[no-any-return]
        return await handler(request)  # type: ignore[no-any-return]

    return middleware


@pytest.mark.anyio
async def test_a_next_link_to_another_origin_gets_no_token(recorder: Recorder) -> None:
    page = {"value": [{"Id": "Local"}], "@odata.nextLink": f"{recorder.url}/steal?page=2"}
    middleware = answering("contoso.com", lambda: web.json_response(page))
    async with Emulator(EmulatorConfig(tenants=1), middlewares=[middleware]) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
            messages = await session.tenant("contoso.com").services().collect()
        sent_home = [r for r in emu.requests if "/contoso.com/" in r.path]
    assert [m.id for m in messages] == ["Local", "FromElsewhere"]
    assert sent_home[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(recorder.headers) == 1
    assert "Authorization" not in recorder.headers[0]
    assert TOKEN not in str(recorder.headers[0])


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(recorder: Recorder, status: int) -> None:
    def redirect() -> web.Response:
        return web.Response(status=status, headers={"Location": f"{recorder.url}/elsewhere"})

    async with Emulator(
        EmulatorConfig(tenants=1), middlewares=[answering("contoso.com", redirect)]
    ) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
            with pytest.raises(APIStatusError, match="redirects are not followed") as info:
                await session.tenant("contoso.com").services().collect()
    assert info.value.status == status
    assert recorder.headers == []


@pytest.mark.anyio
async def test_a_server_that_pages_forever_is_stopped() -> None:
    counter = {"n": 0}

    def endless() -> web.Response:
        counter["n"] += 1
        link = f"Services?page={counter['n'] + 1}"
        return web.json_response({"value": [{"Id": str(counter["n"])}], "@odata.nextLink": link})

    async with Emulator(
        EmulatorConfig(tenants=1), middlewares=[answering("contoso.com", endless)]
    ) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url, max_pages=25) as session:
            pager = session.tenant("contoso.com").services()
            seen: list[str | None] = []

            async def consume() -> None:
                async for service in pager:
                    seen.append(service.id)

            with pytest.raises(PagingError, match="more than 25 pages"):
                await consume()
    assert len(seen) == 25


@pytest.mark.anyio
async def test_a_huge_response_header_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    def huge_header() -> web.Response:
        return web.json_response({"value": []}, headers={"X-Padding": "x" * 70_000})

    async with Emulator(
        EmulatorConfig(tenants=1), middlewares=[answering("contoso.com", huge_header)]
    ) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
            with caplog.at_level(logging.DEBUG), pytest.raises(UnexpectedResponseError) as info:
                await session.tenant("contoso.com").services().collect()
        sent = sum(1 for r in emu.requests if "/contoso.com/" in r.path)
    assert "unreadable response" in str(info.value)
    assert sent == 1  # not retried: the same server sends the same header again
    # No aiohttp exception (whose request info holds the Authorization header) rides along.
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert TOKEN not in caplog.text


@pytest.mark.anyio
async def test_an_untrusted_certificate_fails_at_once_and_is_not_retried() -> None:
    import trustme

    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"value": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        base_url = f"https://127.0.0.1:{port}/api/v1.0"
        async with ServiceCommsSession(token=TOKEN, base_url=base_url) as session:
            with pytest.raises(TLSError, match="certificate"):
                await session.tenant("contoso.com").services().collect()
            assert session.requests_sent == 1
        # With the private CA trusted explicitly, the same server is fine.
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        async with ServiceCommsSession(
            token=TOKEN, base_url=base_url, ssl_context=trusted
        ) as session:
            assert await session.tenant("contoso.com").services().collect() == []
    finally:
        await runner.cleanup()
    assert hits == ["/api/v1.0/contoso.com/ServiceComms/Services"]
