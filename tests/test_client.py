"""The four operations end to end: client -> loopback HTTP -> embedded emulator, in both shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from aiohttp import web

from servicecomms_async import (
    BadRequestError,
    EndpointRetiredError,
    ForbiddenError,
    Message,
    MessageType,
    NotFoundError,
    PagingError,
    RetryPolicy,
    ServerError,
    ServiceCommsSession,
    SessionClosedError,
    Status,
    ThrottledError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from servicecomms_async._wire import converter
from servicecomms_async.emulator import Emulator, EmulatorConfig

from .conftest import TOKEN, canned_middleware, fixture_bytes

pytestmark = pytest.mark.anyio
UTC = timezone.utc
JSON = {"Content-Type": "application/json"}


def api_requests(emu: Emulator) -> list[dict[str, str]]:
    return [r.query for r in emu.requests if "/ServiceComms/" in r.path]


async def test_services_match_what_the_server_sent(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    tenant_id = emulator.tenant_ids[0]
    services = await session.tenant(tenant_id).services().collect()
    wire = emulator.dataset(tenant_id).services
    assert [s.id for s in services] == [w["Id"] for w in wire]
    assert [[f.name for f in s.features] for s in services] == [
        [f["Name"] for f in w["Features"]] for w in wire
    ]
    assert all(not s.extra for s in services)


async def test_current_status_filters_by_workload(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    tenant_id = emulator.tenant_ids[0]
    rows = [row async for row in session.tenant(tenant_id).current_status(workload="Exchange")]
    assert api_requests(emulator)[-1] == {"$filter": "Workload eq 'Exchange'"}
    assert [r.workload for r in rows] == ["Exchange"]
    assert rows[0].status is not None and rows[0].status.is_known
    assert rows[0].status_time is not None and rows[0].status_time.tzinfo is not None


async def test_current_status_reflects_active_incidents(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    for tenant_id in emulator.tenant_ids:
        rows = await session.tenant(tenant_id).current_status().collect()
        assert rows, tenant_id
        for row in rows:
            assert (row.status is Status.SERVICE_OPERATIONAL) == (not row.incident_ids)
            assert row.feature_statuses


async def test_historical_status_since(emulator: Emulator, session: ServiceCommsSession) -> None:
    tenant_id = emulator.tenant_ids[1]
    all_rows = await session.tenant(tenant_id).historical_status().collect()
    days = sorted({r.status_time for r in all_rows if r.status_time}, reverse=True)
    assert len(days) >= 7
    since = days[2]
    rows = await session.tenant(tenant_id).historical_status(since=since).collect()
    assert api_requests(emulator)[-1]["$filter"] == f"StatusTime ge {since:%Y-%m-%dT%H:%M:%S}Z"
    assert rows and all(r.status_time is not None and r.status_time >= since for r in rows)
    assert len(rows) < len(all_rows)


async def test_messages_page_through_everything_once(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    tenant_id = emulator.tenant_ids[0]
    ids = [m.id async for m in session.tenant(tenant_id).messages()]
    expected = [m["Id"] for m in emulator.dataset(tenant_id).messages]
    assert len(expected) == 250
    assert ids == expected
    queries = api_requests(emulator)
    assert [(q.get("$top"), q.get("$skip")) for q in queries] == [
        ("100", None),
        ("100", "100"),
        ("100", "200"),
    ]


async def test_a_full_last_page_costs_one_empty_request(emulator: Emulator) -> None:
    async with Emulator(EmulatorConfig(seed=3, tenants=1, messages_per_tenant=200)) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
            messages = await session.tenant(emu.tenant_ids[0]).messages().collect()
            assert len(messages) == 200
            assert [q.get("$skip") for q in api_requests(emu)] == [None, "100", "200"]


async def test_message_pages_and_first_page(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    tenant = session.tenant(emulator.tenant_ids[2])
    sizes = [len(page) async for page in tenant.messages(page_size=40).pages()]
    assert sizes == [40] * 6 + [10]
    first = await tenant.messages(page_size=25).first_page()
    assert len(first) == 25 and first.number == 1 and first.next_link is None
    awaited = await tenant.messages(page_size=5)
    assert [m.id for m in awaited] == [m.id for m in first.items[:5]]
    assert first.request_id  # X-Activity-Id


async def test_max_items_stops_early(emulator: Emulator, session: ServiceCommsSession) -> None:
    tenant = session.tenant(emulator.tenant_ids[0])
    messages = await tenant.messages(max_items=130).collect()
    assert len(messages) == 130
    assert len(api_requests(emulator)) == 2


async def test_message_filters_reach_the_server_and_apply(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    tenant_id = emulator.tenant_ids[0]
    tenant = session.tenant(tenant_id)
    centre = await tenant.messages(message_type=MessageType.MESSAGE_CENTER).collect()
    assert centre and all(m.message_type is MessageType.MESSAGE_CENTER for m in centre)
    same = await tenant.messages(message_type="MessageCenter").collect()
    assert [m.id for m in same] == [m.id for m in centre]

    incident = next(
        m for m in emulator.dataset(tenant_id).messages if m["MessageType"] == "Incident"
    )
    start = datetime.fromisoformat(incident["StartTime"].replace("Z", "+00:00"))
    found = await tenant.messages(
        workload=incident["Workload"],
        start_time=start - timedelta(seconds=1),
        message_type=MessageType.INCIDENT,
        message_id=incident["Id"],
    ).collect()
    assert [m.id for m in found] == [incident["Id"]]
    assert api_requests(emulator)[-1]["$filter"] == (
        f"Workload eq '{incident['Workload']}' and "
        f"StartTime ge {start - timedelta(seconds=1):%Y-%m-%dT%H:%M:%S}Z and "
        f"MessageType eq 'Incident' and Id eq '{incident['Id']}'"
    )


async def test_quotes_in_filter_values_are_escaped(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    rows = await session.tenant(emulator.tenant_ids[0]).current_status(workload="O'Brien").collect()
    assert rows == []
    assert api_requests(emulator)[-1]["$filter"] == "Workload eq 'O''Brien'"


async def test_end_time_filter(emulator: Emulator, session: ServiceCommsSession) -> None:
    tenant_id = emulator.tenant_ids[0]
    cutoff = datetime.now(UTC) - timedelta(days=3)
    ended = await session.tenant(tenant_id).messages(end_time=cutoff).collect()
    assert ended and all(m.end_time is not None and m.end_time <= cutoff for m in ended)


async def test_select_returns_only_those_fields(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    tenant = session.tenant(emulator.tenant_ids[0])
    messages = await tenant.messages(select=["id", "Title", "message_type"]).collect()
    assert api_requests(emulator)[-1]["$select"] == "Id,Title,MessageType"
    assert len(messages) == 250
    assert all(m.id and m.title and m.start_time is None and m.messages == () for m in messages)
    services = await tenant.services(select="Id").collect()
    assert services and all(s.id and s.display_name is None for s in services)


async def test_documented_shape_structures_into_the_same_models() -> None:
    async with Emulator(
        EmulatorConfig(seed=7, tenants=1, shape="spec", messages_per_tenant=120)
    ) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
            tenant = session.tenant(emu.tenant_ids[0])
            services = await tenant.services().collect()
            assert services and all(s.features and s.features[0].name for s in services)
            status = await tenant.current_status().collect()
            assert status and all(r.status_time and r.feature_statuses for r in status)
            assert all(f.name and f.status for r in status for f in r.feature_statuses)
            history = await tenant.historical_status(workload=status[0].workload).collect()
            assert history and {r.workload for r in history} == {status[0].workload}
            messages = await tenant.messages().collect()
            assert len(messages) == 120
            assert all(m.id and m.start_time and m.last_updated_time for m in messages)
            # The spec's Message has a Name key the model does not declare: kept, not dropped.
            assert all(m.extra.get("Name") == m.id for m in messages)


async def test_next_links_are_followed_when_sent() -> None:
    config = EmulatorConfig(seed=7, tenants=1, messages_per_tenant=230, paging="nextlink")
    async with Emulator(config) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
            pages = [page async for page in session.tenant(emu.tenant_ids[0]).messages().pages()]
            assert [len(p) for p in pages] == [100, 100, 30]
            assert pages[0].next_link is not None and pages[-1].next_link is None
            ids = [m.id for p in pages for m in p]
            assert ids == [m["Id"] for m in emu.dataset(emu.tenant_ids[0]).messages]


@pytest.fixture
async def canned() -> AsyncIterator[tuple[Emulator, ServiceCommsSession]]:
    responses = {
        "unauthorized.example": (401, fixture_bytes("error_af10001_401.json"), JSON),
        "throttled.example": (
            403,
            fixture_bytes("error_af429_403.json"),
            {**JSON, "Retry-After": "2", "X-Activity-Id": "act-429"},
        ),
        "throttled429.example": (
            429,
            fixture_bytes("graph_error_429.json"),
            {**JSON, "Retry-After": "120"},
        ),
        "stacktrace.example": (500, fixture_bytes("error_servicecomms_500_stacktrace.txt"), {}),
        "internal.example": (500, fixture_bytes("error_af50000_internal_500.json"), JSON),
        "docs500.example": (500, fixture_bytes("error_docs_af5000.json"), JSON),
        "retired.example": (403, fixture_bytes("error_servicecomms_retired_403.txt"), {}),
        "forbidden.example": (
            403,
            b'{"error":{"code":"AF20010","message":"tenant mismatch"}}',
            JSON,
        ),
        "missing.example": (404, b'{"error":{"code":"NotFound","message":"no such thing"}}', JSON),
        "badrequest.example": (400, b'{"error":{"code":"AF20002","message":"bad $top"}}', JSON),
        "notjson.example": (200, b"<html>proxy login</html>", {"Content-Type": "text/html"}),
        "noarray.example": (200, b'{"value": {"Id": "x"}}', JSON),
        "novalue.example": (200, b'{"items": []}', JSON),
        "loop.example": (
            200,
            b'{"value": [], "@odata.nextLink": "/api/v1.0/loop.example/ServiceComms/Services?p=2"}',
            JSON,
        ),
    }
    async with Emulator(
        EmulatorConfig(tenants=1), middlewares=[canned_middleware(responses)]
    ) as emu:
        async with ServiceCommsSession(
            token=TOKEN, base_url=emu.base_url, retry=RetryPolicy(attempts=3)
        ) as session:
            yield emu, session
            assert session.connections_in_use() == 0


def sent_for(emu: Emulator, tenant: str) -> int:
    return sum(1 for r in emu.requests if f"/{tenant}/" in r.path)


async def test_401_refreshes_once_then_raises(canned: tuple[Emulator, ServiceCommsSession]) -> None:
    emu, session = canned
    with pytest.raises(UnauthorizedError) as info:
        await session.tenant("unauthorized.example").current_status().collect()
    assert info.value.status == 401 and info.value.code == "AF10001"
    assert info.value.tenant == "unauthorized.example"
    assert sent_for(emu, "unauthorized.example") == 2  # one refresh-and-retry, not a loop
    assert TOKEN not in str(info.value)


async def test_403_af429_is_throttling_and_retried(
    canned: tuple[Emulator, ServiceCommsSession],
) -> None:
    emu, session = canned
    with pytest.raises(ThrottledError) as info:
        await session.tenant("throttled.example").services().collect()
    assert info.value.status == 403 and info.value.code == "AF429"
    assert info.value.retry_after == 2.0
    assert info.value.request_id and info.value.request_id in str(info.value)
    assert sent_for(emu, "throttled.example") == 3


async def test_retry_after_above_the_cap_raises_at_once(
    canned: tuple[Emulator, ServiceCommsSession],
) -> None:
    emu, session = canned
    with pytest.raises(ThrottledError) as info:
        await session.tenant("throttled429.example").services().collect()
    assert info.value.retry_after == 120.0 and info.value.code == "TooManyRequests"
    assert sent_for(emu, "throttled429.example") == 1


async def test_plain_text_stack_trace_is_kept_whole(
    canned: tuple[Emulator, ServiceCommsSession],
) -> None:
    emu, session = canned
    with pytest.raises(ServerError) as info:
        await session.tenant("stacktrace.example").current_status().collect()
    assert info.value.code is None
    assert info.value.body_text == fixture_bytes("error_servicecomms_500_stacktrace.txt").decode()
    assert "KeyNotFoundException" in str(info.value)
    assert sent_for(emu, "stacktrace.example") == 3


@pytest.mark.parametrize(
    ("tenant", "error", "code"),
    [
        ("internal.example", ServerError, "AF50000"),
        ("docs500.example", ServerError, "AF5000.  An internal server error occurred."),
        ("forbidden.example", ForbiddenError, "AF20010"),
        ("missing.example", NotFoundError, "NotFound"),
        ("badrequest.example", BadRequestError, "AF20002"),
    ],
)
async def test_error_classes_from_real_bodies(
    canned: tuple[Emulator, ServiceCommsSession], tenant: str, error: type[Exception], code: str
) -> None:
    _, session = canned
    with pytest.raises(error) as info:
        await session.tenant(tenant).services().collect()
    assert getattr(info.value, "code", None) == code
    assert tenant in str(info.value)


async def test_retired_endpoint_is_named(canned: tuple[Emulator, ServiceCommsSession]) -> None:
    emu, session = canned
    with pytest.raises(EndpointRetiredError, match="Please use MSGraph") as info:
        await session.tenant("retired.example").messages().collect()
    assert isinstance(info.value, ForbiddenError)
    assert sent_for(emu, "retired.example") == 1  # a plain 403 is not retried


@pytest.mark.parametrize(
    ("tenant", "match"),
    [
        ("notjson.example", "not valid JSON"),
        ("noarray.example", "'value' to be a JSON array"),
        ("novalue.example", "with a 'value' array"),
    ],
)
async def test_malformed_bodies_are_typed_errors(
    canned: tuple[Emulator, ServiceCommsSession], tenant: str, match: str
) -> None:
    _, session = canned
    with pytest.raises(UnexpectedResponseError, match=match):
        await session.tenant(tenant).services().collect()


async def test_a_repeated_next_link_raises_instead_of_looping(
    canned: tuple[Emulator, ServiceCommsSession],
) -> None:
    emu, session = canned
    # Every answer is an empty page pointing at the same next link.
    with pytest.raises(PagingError, match=r"same @odata\.nextLink twice"):
        await session.tenant("loop.example").services().collect()
    assert sent_for(emu, "loop.example") == 2


async def test_empty_pages_that_point_onward_do_not_end_the_stream() -> None:
    pages = {
        "1": {"value": [], "@odata.nextLink": "Messages?p=2"},
        "2": {"value": [], "@odata.nextLink": "Messages?p=3"},
        "3": {"value": [{"Id": "MC1"}, {"Id": "MC2"}]},
    }

    @web.middleware
    async def chain(request: web.Request, handler: Any) -> web.StreamResponse:
        return web.json_response(pages[request.query.get("p", "1")])

    async with Emulator(EmulatorConfig(tenants=1), middlewares=[chain]) as emu:
        async with ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session:
            messages = await session.tenant("contoso.com").messages().collect()
    assert [m.id for m in messages] == ["MC1", "MC2"]


async def test_bad_arguments_fail_before_any_request(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    tenant = session.tenant(emulator.tenant_ids[0])
    with pytest.raises(ValueError, match="page_size"):
        tenant.messages(page_size=101)
    with pytest.raises(ValueError, match="message_type must be one of"):
        tenant.messages(message_type="Outage")
    with pytest.raises(ValueError, match="select"):
        tenant.current_status(select=["Nope"])
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        tenant.historical_status(since=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="tenant must be"):
        session.tenant("../other-tenant")
    assert api_requests(emulator) == []


async def test_session_lifecycle(emulator: Emulator) -> None:
    session = ServiceCommsSession(token=TOKEN, base_url=emulator.base_url)
    pager = session.tenant(emulator.tenant_ids[0]).services()
    with pytest.raises(SessionClosedError, match="not open"):
        await pager.collect()
    async with session:
        assert await pager.collect()
    await session.aclose()  # a second close is harmless
    with pytest.raises(SessionClosedError):
        await pager.collect()
    with pytest.raises(SessionClosedError):
        session.tenant(emulator.tenant_ids[0])
    with pytest.raises(SessionClosedError):
        await session.open()


async def test_breaking_out_early_releases_the_connection(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    pager = session.tenant(emulator.tenant_ids[0]).messages(page_size=10)
    async for _ in pager:
        break
    await pager.aclose()
    await pager.aclose()
    assert session.connections_in_use() == 0
    assert len(api_requests(emulator)) == 1


def test_session_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="https"):
        ServiceCommsSession(token=TOKEN, base_url="http://manage.office.com/api/v1.0")
    with pytest.raises(ValueError, match="absolute"):
        ServiceCommsSession(token=TOKEN, base_url="manage.office.com")
    with pytest.raises(TypeError, match="exactly one"):
        ServiceCommsSession()
    with pytest.raises(ValueError, match="non-empty"):
        ServiceCommsSession(token=" ")
    session = ServiceCommsSession(token=TOKEN, base_url="http://127.0.0.1:9/api/v1.0")
    assert TOKEN not in repr(session) and TOKEN not in str(session.tokens)


def test_models_are_frozen_and_hashable() -> None:
    message = converter.structure(
        orjson.loads(fixture_bytes("messages_messagecenter.json"))["value"][0], Message
    )
    with pytest.raises(AttributeError):
        message.id = "x"  # type: ignore[misc]
    assert hash(message) == hash(converter.structure(converter.unstructure(message), Message))
