"""Tests of servicecomms_async.emulator, driven over loopback HTTP with a raw aiohttp client."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from hypothesis import given
from hypothesis import strategies as st

from servicecomms_async.emulator import Emulator, EmulatorConfig, run_forever
from servicecomms_async.emulator.__main__ import build_parser
from servicecomms_async.emulator.odata import (
    ODataError,
    parse_datetime_us,
    parse_filter,
    parse_select,
)

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
AUTH = {"Authorization": "Bearer test-token"}
OPS = ("Services", "CurrentStatus", "HistoricalStatus", "Messages")

CS_7_DIGITS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z")
MIDNIGHT = re.compile(r"\d{4}-\d{2}-\d{2}T00:00:00Z")
MSG_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fixture_value(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / name).read_text("utf-8"))["value"]
    return data


def parse_time(text: str) -> datetime:
    us = parse_datetime_us(text)
    assert us is not None, text
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)


def config(**kw: Any) -> EmulatorConfig:
    kw.setdefault("now", NOW)
    kw.setdefault("tenants", 10)
    return EmulatorConfig(**kw)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(config(messages_per_tenant=130)) as e:
        yield e


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as s:
        yield s


async def call(
    session: aiohttp.ClientSession,
    emu: Emulator,
    tenant: str,
    op: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    url = f"{emu.base_url}/{tenant}/ServiceComms/{op}"
    async with session.get(url, params=params, headers=headers) as resp:
        body = await resp.json(content_type=None)
        return resp.status, body, resp


async def ok(
    session: aiohttp.ClientSession,
    emu: Emulator,
    tenant: str,
    op: str,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    status, body, _ = await call(session, emu, tenant, op, params)
    assert status == 200, body
    value: list[dict[str, Any]] = body["value"]
    return value


async def all_messages(
    session: aiohttp.ClientSession,
    emu: Emulator,
    tenant: str,
    top: int = 100,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    skip = 0
    while True:
        page = await ok(
            session,
            emu,
            tenant,
            "Messages",
            {**(params or {}), "$top": str(top), "$skip": str(skip)},
        )
        out.extend(page)
        skip += top
        if len(page) < top:
            return out


def degraded_tenant(emu: Emulator) -> str:
    for tenant in emu.tenant_ids:
        if any(r["IncidentIds"] for r in emu.dataset(tenant).current_status):
            return tenant
    raise AssertionError("no degraded tenant")


# --- shapes ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_real_shape_matches_captured_payload_keys(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    tenant = emu.tenant_ids[0]
    services = await ok(session, emu, tenant, "Services")
    real_services = fixture_value("services.json")
    assert len(services) >= 6
    for item in services:
        assert list(item) == list(real_services[0])
        for feature in item["Features"]:
            assert list(feature) == list(real_services[0]["Features"][0])

    real_status = fixture_value("currentstatus.json")[0]
    for op in ("CurrentStatus", "HistoricalStatus"):
        for row in await ok(session, emu, tenant, op):
            assert list(row) == list(real_status)
            for fs in row["FeatureStatus"]:
                assert list(fs) == list(real_status["FeatureStatus"][0])

    real_msgs = {m["MessageType"]: m for m in fixture_value("messages_all.json")}
    seen = set()
    for item in await all_messages(session, emu, tenant):
        seen.add(item["MessageType"])
        template = real_msgs.get(item["MessageType"], real_msgs["Incident"])
        assert list(item) == list(template), item["MessageType"]
        for post in item["Messages"]:
            assert list(post) == ["MessageText", "PublishedTime"]
    assert seen == {"Incident", "PlannedMaintenance", "MessageCenter"}


@pytest.mark.anyio
async def test_spec_shape_matches_documented_keys(session: aiohttp.ClientSession) -> None:
    async with Emulator(config(shape="spec")) as emu:
        tenant = emu.tenant_ids[0]
        services = await ok(session, emu, tenant, "Services")
        doc_service = fixture_value("services_docs.json")[0]
        assert all(list(s) == list(doc_service) for s in services)
        assert all(isinstance(n, str) for s in services for n in s["FeatureNames"])

        doc_status = fixture_value("currentstatus_docs.json")[0]
        for op in ("CurrentStatus", "HistoricalStatus"):
            for row in await ok(session, emu, tenant, op):
                assert list(row) == list(doc_status)
                for fs in row["FeatureGroupStatusCollection"]:
                    assert list(fs) == list(doc_status["FeatureGroupStatusCollection"][0])

        spec_keys = [*fixture_value("messages_docs.json")[0], "MessageType"]
        always = {"Id", "Name", "Title", "StartTime", "Status", "Messages", "LastUpdatedTime"}
        for item in await all_messages(session, emu, tenant):
            # The spec declares no field nullable but Title: a null is left out instead.
            assert list(item) == [k for k in spec_keys if k in item]
            assert always <= set(item)
            assert all(v is not None for k, v in item.items() if k != "Title")
            assert item["Name"] == item["Id"]
            for post in item["Messages"]:
                assert list(post) == ["PublishedTime", "MessageText"]


@pytest.mark.anyio
async def test_timestamps_look_real_and_stay_in_window(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    tenant = degraded_tenant(emu)
    week_ago = NOW - timedelta(days=7)
    for row in await ok(session, emu, tenant, "CurrentStatus"):
        assert CS_7_DIGITS.fullmatch(row["StatusTime"])
        assert week_ago <= parse_time(row["StatusTime"]) <= NOW

    history = await ok(session, emu, tenant, "HistoricalStatus")
    workloads = [s["Id"] for s in await ok(session, emu, tenant, "Services")]
    assert len(history) == len(workloads) * emu.config.history_days
    for i, workload in enumerate(workloads):
        rows = history[i * 7 : (i + 1) * 7]
        assert {r["Workload"] for r in rows} == {workload}
        times = [parse_time(r["StatusTime"]) for r in rows]
        assert times == sorted(times, reverse=True)  # newest first
        for r in rows:
            assert MIDNIGHT.fullmatch(r["StatusTime"])
            assert week_ago <= parse_time(r["StatusTime"]) <= NOW

    for m in await all_messages(session, emu, tenant):
        for key in ("StartTime", "LastUpdatedTime"):
            assert MSG_TIME.fullmatch(m[key])
            assert week_ago <= parse_time(m[key]) <= NOW, (key, m)
        if m["EndTime"] is not None:
            assert MSG_TIME.fullmatch(m["EndTime"])
            if m["MessageType"] == "Incident":
                assert parse_time(m["StartTime"]) <= parse_time(m["EndTime"]) <= NOW
        for post in m["Messages"]:
            assert week_ago <= parse_time(post["PublishedTime"]) <= NOW
        assert m["Messages"][-1]["PublishedTime"] == m["LastUpdatedTime"] or (
            m["MessageType"] == "MessageCenter"
        )
        if m["MessageType"] == "Incident":
            assert re.fullmatch(r"[A-Z]{2}\d{6}", m["Id"])
            assert m["Messages"][0]["MessageText"].startswith("Title: ")
            assert "\n\nUser Impact: " in m["Messages"][0]["MessageText"]
        elif m["MessageType"] == "MessageCenter":
            assert re.fullmatch(r"MC\d{6}", m["Id"])
            assert m["Messages"][0]["MessageText"].startswith("<p>")
            assert (m["Workload"], m["Feature"], m["Status"], m["Severity"]) == (
                None,
                None,
                "",
                "Normal",
            )
        else:
            assert m["Status"] == "Planned maintenance"


@pytest.mark.anyio
async def test_current_status_reflects_active_incidents(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    degraded = 0
    for tenant in emu.tenant_ids:
        rows = await ok(session, emu, tenant, "CurrentStatus")
        active = await ok(session, emu, tenant, "Messages", {"$filter": "EndTime eq null"})
        active_ids = {m["Id"] for m in active}
        listed = {i for r in rows for i in r["IncidentIds"]}
        assert listed == active_ids
        if active_ids:
            degraded += 1
        for r in rows:
            if r["IncidentIds"]:
                assert r["Status"] in ("ServiceDegradation", "ServiceInterruption")
                assert r["StatusDisplayName"] in ("Service degradation", "Service interruption")
                assert any(
                    f["FeatureServiceStatus"] != "ServiceOperational" for f in r["FeatureStatus"]
                )
            else:
                assert (r["Status"], r["StatusDisplayName"]) == (
                    "ServiceOperational",
                    "Normal service",
                )
        # Today's history row lists the incidents that are active now.
        history = await ok(session, emu, tenant, "HistoricalStatus")
        today = {i for r in history if r["StatusTime"] == "2024-05-01T00:00:00Z"
                 for i in r["IncidentIds"]}  # fmt: skip
        assert active_ids <= today
    assert degraded == round(0.2 * len(emu.tenant_ids))


# --- $filter -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_filter_workload_case_insensitive(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    tenant = emu.tenant_ids[0]
    workload = emu.dataset(tenant).services[0]["Id"]
    for op in ("CurrentStatus", "HistoricalStatus"):
        rows = await ok(session, emu, tenant, op, {"$filter": f"Workload eq '{workload.upper()}'"})
        assert rows
        assert {r["Workload"] for r in rows} == {workload}
    msgs = await all_messages(session, emu, tenant, params={"$filter": f"Workload eq '{workload}'"})
    expected = [m["Id"] for m in emu.dataset(tenant).messages if m["Workload"] == workload]
    assert [m["Id"] for m in msgs] == expected


@pytest.mark.anyio
async def test_filter_quoted_apostrophe(emu: Emulator, session: aiohttp.ClientSession) -> None:
    tenant = emu.tenant_ids[0]
    rows = await ok(session, emu, tenant, "CurrentStatus", {"$filter": "Workload eq 'O''Brien'"})
    assert rows == []
    # The escaped quote round-trips into the compared value.
    pred = parse_filter("Workload eq 'O''Brien'", {"Workload": "string"})
    assert pred({"Workload": "o'brien"})
    assert not pred({"Workload": "O''Brien"})


@pytest.mark.anyio
async def test_filter_and_or_parentheses(emu: Emulator, session: aiohttp.ClientSession) -> None:
    tenant = emu.tenant_ids[0]
    flt = (
        "(MessageType eq 'PlannedMaintenance' or MessageType eq 'MessageCenter') "
        "and Severity ne 'Sev1'"
    )
    got = await all_messages(session, emu, tenant, params={"$filter": flt})
    expected = [
        m["Id"]
        for m in emu.dataset(tenant).messages
        if m["MessageType"] in ("PlannedMaintenance", "MessageCenter") and m["Severity"] != "Sev1"
    ]
    assert expected
    assert [m["Id"] for m in got] == expected


@pytest.mark.anyio
async def test_filter_datetime_range_and_offsets(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    tenant = emu.tenant_ids[1]
    lo, hi = NOW - timedelta(days=3), NOW - timedelta(days=1)
    # Same instants written with a +02:00 offset and with a fraction.
    flt = "LastUpdatedTime ge 2024-04-28T14:00:00+02:00 and LastUpdatedTime lt 2024-04-30T12:00:00.000Z"
    got = await all_messages(session, emu, tenant, params={"$filter": flt})
    expected = [
        m["Id"] for m in emu.dataset(tenant).messages if lo <= parse_time(m["LastUpdatedTime"]) < hi
    ]
    assert expected
    assert [m["Id"] for m in got] == expected

    start = await all_messages(
        session, emu, tenant, params={"$filter": "StartTime gt datetime'2024-04-30T00:00:00Z'"}
    )
    assert start
    assert all(parse_time(m["StartTime"]) > NOW - timedelta(days=1, hours=12) for m in start)


@pytest.mark.anyio
async def test_filter_id_and_null(emu: Emulator, session: aiohttp.ClientSession) -> None:
    tenant = degraded_tenant(emu)
    messages = emu.dataset(tenant).messages
    target = messages[len(messages) // 2]["Id"]
    got = await ok(session, emu, tenant, "Messages", {"$filter": f"Id eq '{target}'"})
    assert [m["Id"] for m in got] == [target]
    active = await ok(session, emu, tenant, "Messages", {"$filter": "EndTime eq null"})
    assert active
    assert all(m["EndTime"] is None for m in active)
    # Null field values never satisfy an ordering comparison.
    ended = await all_messages(
        session, emu, tenant, params={"$filter": "EndTime lt 2100-01-01T00:00:00Z"}
    )
    assert len(ended) == len(messages) - len(active)


@pytest.mark.anyio
async def test_filter_undocumented_last_updated_time_like_splunk(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    tenant = emu.tenant_ids[2]
    since = (NOW - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = await all_messages(
        session, emu, tenant, params={"$filter": f"LastUpdatedTime ge {since}"}
    )
    assert len(got) == 130


@pytest.mark.anyio
async def test_filter_historical_status_time(session: aiohttp.ClientSession) -> None:
    for shape, key in (("real", "StatusTime"), ("spec", "StatusDate")):
        async with Emulator(config(shape=shape)) as emu:
            tenant = emu.tenant_ids[0]
            rows = await ok(
                session,
                emu,
                tenant,
                "HistoricalStatus",
                {"$filter": "StatusTime ge 2024-04-29T00:00:00Z"},
            )
            assert rows
            assert {r[key] for r in rows} == {
                "2024-05-01T00:00:00Z",
                "2024-04-30T00:00:00Z",
                "2024-04-29T00:00:00Z",
            }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("op", "flt", "fragment"),
    [
        ("Messages", "Nonsense eq 'x'", "'Nonsense' is not a property"),
        ("Services", "Workload eq 'Exchange'", "'Workload' is not a property"),
        ("Messages", "Workload eq", "expected a value"),
        ("Messages", "Workload equals 'x'", "expected a comparison operator"),
        ("Messages", "Workload eq 'x", "unterminated string"),
        ("Messages", "(Workload eq 'x'", "expected ')'"),
        ("Messages", "Workload eq 'x' Id eq 'y'", "expected 'and', 'or' or end"),
        ("Messages", "StartTime ge 'yesterday'", "must be compared with a datetime"),
        ("Messages", "Workload eq 5", "must be compared with a quoted string"),
        ("Messages", "StartTime ge 2024-13-01T00:00:00Z", "not a valid datetime"),
        ("Messages", "", "empty"),
        ("CurrentStatus", "Workload eq 'a' & 1", "unexpected character"),
    ],
)
async def test_filter_errors_are_400_af20002(
    emu: Emulator, session: aiohttp.ClientSession, op: str, flt: str, fragment: str
) -> None:
    status, body, _ = await call(session, emu, emu.tenant_ids[0], op, {"$filter": flt})
    assert status == 400
    assert body["error"]["code"] == "AF20002"
    assert fragment in body["error"]["message"], body["error"]["message"]


@given(st.text(min_size=0, max_size=30))
def test_filter_string_literal_roundtrip(value: str) -> None:
    literal = value.replace("'", "''")
    pred = parse_filter(f"Workload eq '{literal}'", {"Workload": "string"})
    assert pred({"Workload": value})
    assert not pred({"Workload": None})


def test_parse_datetime_us() -> None:
    base = parse_datetime_us("2020-09-18T13:15:36Z")
    assert base is not None
    assert parse_datetime_us("2020-09-18T13:15:36.6847769Z") == base + 684776
    assert parse_datetime_us("2020-09-18T15:15:36+02:00") == base
    assert parse_datetime_us("2020-09-18") == base - (13 * 3600 + 15 * 60 + 36) * 1_000_000
    assert parse_datetime_us("2020-02-30T00:00:00Z") is None
    assert parse_datetime_us("yesterday") is None


def test_select_parsing() -> None:
    assert parse_select("Id, Title", ["Id", "Title", "Status"]) == frozenset({"Id", "Title"})
    assert parse_select("id", ["Id"]) == frozenset({"Id"})
    assert parse_select("*", ["Id"]) is None
    with pytest.raises(ODataError, match="not a property"):
        parse_select("Id,Bogus", ["Id"])
    with pytest.raises(ODataError, match="empty"):
        parse_select("Id,", ["Id"])


# --- $select, $top, $skip, nextLink ---------------------------------------------------------


@pytest.mark.anyio
async def test_select(emu: Emulator, session: aiohttp.ClientSession) -> None:
    tenant = emu.tenant_ids[0]
    msgs = await ok(session, emu, tenant, "Messages", {"$select": "Id,Title, LastUpdatedTime"})
    assert msgs
    assert all(list(m) == ["Id", "LastUpdatedTime", "Title"] for m in msgs)
    rows = await ok(session, emu, tenant, "CurrentStatus", {"$select": "Workload,Status"})
    assert rows
    assert all(list(r) == ["Status", "Workload"] for r in rows)
    status, body, _ = await call(session, emu, tenant, "Services", {"$select": "Id,Bogus"})
    assert status == 400
    assert body["error"]["code"] == "AF20002"
    assert "'Bogus'" in body["error"]["message"]


@pytest.mark.anyio
async def test_top_skip_paging_collects_everything_in_order(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    tenant = emu.tenant_ids[3]
    expected = [m["Id"] for m in emu.dataset(tenant).messages]
    assert len(expected) == 130
    pages = []
    skip = 0
    while True:
        page = await ok(session, emu, tenant, "Messages", {"$top": "40", "$skip": str(skip)})
        pages.append(len(page))
        skip += 40
        if len(page) < 40:
            break
    assert pages == [40, 40, 40, 10]
    got = [m["Id"] for m in await all_messages(session, emu, tenant, top=40)]
    assert got == expected
    assert len(set(got)) == len(got)
    # Default $top is 100.
    assert len(await ok(session, emu, tenant, "Messages")) == 100
    # Served order: LastUpdatedTime descending.
    times = [parse_time(m["LastUpdatedTime"]) for m in emu.dataset(tenant).messages]
    assert times == sorted(times, reverse=True)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "params",
    [{"$top": "101"}, {"$top": "-1"}, {"$top": "ten"}, {"$skip": "-5"}, {"$skip": "1.5"}],
)
async def test_bad_top_skip_is_400(
    emu: Emulator, session: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    status, body, _ = await call(session, emu, emu.tenant_ids[0], "Messages", params)
    assert status == 400
    assert body["error"]["code"] == "AF20002"


@pytest.mark.anyio
async def test_top_skip_ignored_outside_messages(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    tenant = emu.tenant_ids[0]
    rows = await ok(session, emu, tenant, "HistoricalStatus", {"$top": "500", "$skip": "x"})
    assert len(rows) == len(emu.dataset(tenant).historical_status)


@pytest.mark.anyio
async def test_nextlink_mode(session: aiohttp.ClientSession) -> None:
    async with Emulator(config(paging="nextlink", messages_per_tenant=250)) as emu:
        tenant = emu.tenant_ids[0]
        flt = "MessageType ne 'MessageCenter'"
        expected = [
            m["Id"] for m in emu.dataset(tenant).messages if m["MessageType"] != "MessageCenter"
        ]
        url: str | None = f"{emu.base_url}/{tenant}/ServiceComms/Messages"
        params: dict[str, str] | None = {"$filter": flt, "$select": "Id,MessageType", "$top": "60"}
        got: list[str] = []
        links = 0
        while url is not None:
            async with session.get(url, params=params) as resp:
                assert resp.status == 200
                body = await resp.json()
            got.extend(m["Id"] for m in body["value"])
            assert all(list(m) == ["Id", "MessageType"] for m in body["value"])
            url, params = body.get("@odata.nextLink"), None
            if url is not None:
                links += 1
                assert url.startswith(emu.base_url)
        assert got == expected
        assert links == (len(expected) - 1) // 60
        # skip mode never sends a nextLink
    async with Emulator(config(messages_per_tenant=250)) as emu:
        _, body, _ = await call(session, emu, emu.tenant_ids[0], "Messages")
        assert "@odata.nextLink" not in body


@pytest.mark.anyio
async def test_200k_messages_paged(session: aiohttp.ClientSession) -> None:
    async with Emulator(config(messages_per_tenant=200_000, tenants=1)) as emu:
        tenant = emu.tenant_ids[0]
        started = time.perf_counter()
        seen: set[str] = set()
        count = 0
        skip = 0
        while True:
            # $select keeps the test's own JSON parsing small; the emulator still builds
            # every message of every page.
            page = await ok(
                session,
                emu,
                tenant,
                "Messages",
                {"$skip": str(skip), "$select": "Id,LastUpdatedTime"},
            )
            seen.update(m["Id"] for m in page)
            count += len(page)
            skip += 100
            if len(page) < 100:
                break
        elapsed = time.perf_counter() - started
        assert count == 200_000
        assert len(seen) == 200_000
        assert len(emu.requests) == 2001
        assert emu.connections_opened == 1
        assert elapsed < 30, elapsed


# --- auth, errors, headers, metadata ------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer ", "Bearer", "token"])
async def test_missing_or_malformed_token_is_401(emu: Emulator, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with aiohttp.ClientSession() as s:
        url = f"{emu.base_url}/{emu.tenant_ids[0]}/ServiceComms/CurrentStatus"
        async with s.get(url, headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == "Bearer"
            body = await resp.json()
    assert body == {
        "error": {"code": "Unauthorized", "message": "Missing or malformed bearer token."}
    }


@pytest.mark.anyio
async def test_token_never_echoed(emu: Emulator) -> None:
    secret = "super-secret-token-value"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as s:
        for path in ("not-a-tenant!/ServiceComms/Services", "contoso.com/ServiceComms/Nope"):
            async with s.get(f"{emu.base_url}/{path}") as resp:
                text = await resp.text()
                assert secret not in text
                assert all(secret not in v for v in resp.headers.values())


@pytest.mark.anyio
async def test_odata_context_only_when_asked(emu: Emulator, session: aiohttp.ClientSession) -> None:
    tenant = emu.tenant_ids[0]
    for accept, level in [
        (None, "none"),
        ("application/json;odata.metadata=none", "none"),
        ("application/json;odata.metadata=minimal", "minimal"),
        ("application/json;odata.metadata=full", "full"),
    ]:
        headers = {"Accept": accept} if accept else None
        status, body, resp = await call(session, emu, tenant, "CurrentStatus", headers=headers)
        assert status == 200
        assert resp.headers["Content-Type"] == (
            f"application/json; odata.metadata={level}; charset=utf-8"
        )
        assert resp.headers["OData-Version"] == "4.0"
        assert re.fullmatch(r"[0-9a-f-]{36}", resp.headers["X-Activity-Id"])
        assert resp.headers["X-Time-Taken"].isdigit()
        if level == "none":
            assert list(body) == ["value"]
        else:
            assert list(body) == ["@odata.context", "value"]
            assert body["@odata.context"] == f"{emu.base_url}/{tenant}/$metadata#CurrentStatus"


@pytest.mark.anyio
async def test_tenant_ids_guid_or_domain(emu: Emulator, session: aiohttp.ClientSession) -> None:
    assert len(emu.tenant_ids) == 10
    assert all(
        re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", t) for t in emu.tenant_ids
    )
    a = await ok(session, emu, "contoso.sharepoint.com", "CurrentStatus")
    b = await ok(session, emu, "Contoso.SharePoint.com", "CurrentStatus")
    assert a == b
    guid = emu.tenant_ids[0]
    assert await ok(session, emu, guid.upper(), "Services") == await ok(
        session, emu, guid, "Services"
    )
    for bad in ("not_a_tenant", "localhost", "-bad.com", "a..b"):
        status, body, _ = await call(session, emu, bad, "Services")
        assert status == 400, bad
        assert body["error"]["code"] == "AF20013"


@pytest.mark.anyio
async def test_unknown_routes_and_methods(emu: Emulator, session: aiohttp.ClientSession) -> None:
    tenant = emu.tenant_ids[0]
    status, body, _ = await call(session, emu, tenant, "Incidents")
    assert status == 404
    assert body["error"]["code"] == "NotFound"
    root = emu.base_url.removesuffix("/api/v1.0")
    async with session.get(f"{root}/nowhere") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "NotFound"
    async with session.post(f"{emu.base_url}/{tenant}/ServiceComms/Messages") as resp:
        assert resp.status == 405
        assert (await resp.json())["error"]["code"] == "MethodNotAllowed"
    # Operation names are case-insensitive, like the ASP.NET routing of the real service.
    assert await ok(session, emu, tenant, "currentstatus")


# --- determinism, dataset, stats -----------------------------------------------------------


@pytest.mark.anyio
async def test_deterministic_across_instances(session: aiohttp.ClientSession) -> None:
    bodies: list[list[bytes]] = []
    ids: list[list[str]] = []
    for seed in (7, 7, 8):
        async with Emulator(config(seed=seed, messages_per_tenant=150)) as emu:
            ids.append(emu.tenant_ids)
            got = []
            for tenant in [*emu.tenant_ids[:3], "contoso.com"]:
                for op in OPS:
                    url = f"{emu.base_url}/{tenant}/ServiceComms/{op}"
                    async with session.get(url, params={"$skip": "100"}) as resp:
                        got.append(await resp.read())
            bodies.append(got)
    assert ids[0] == ids[1]
    assert bodies[0] == bodies[1]
    assert ids[0] != ids[2]
    assert bodies[0] != bodies[2]


@pytest.mark.anyio
async def test_dataset_equals_served(emu: Emulator, session: aiohttp.ClientSession) -> None:
    for tenant in (emu.tenant_ids[0], degraded_tenant(emu), "fabrikam.onmicrosoft.com"):
        ds = emu.dataset(tenant)
        assert await ok(session, emu, tenant, "Services") == ds.services
        assert await ok(session, emu, tenant, "CurrentStatus") == ds.current_status
        assert await ok(session, emu, tenant, "HistoricalStatus") == ds.historical_status
        assert await all_messages(session, emu, tenant) == ds.messages


@pytest.mark.anyio
async def test_in_flight_and_connection_stats(session: aiohttp.ClientSession) -> None:
    async with Emulator(config(latency=0.1)) as emu:
        tenant = emu.tenant_ids[0]
        await asyncio.gather(*(ok(session, emu, tenant, "Services") for _ in range(8)))
        assert emu.max_in_flight == 8
        assert emu.in_flight == 0
        assert 1 <= emu.connections_opened <= 8
        emu.reset_stats()
        assert (emu.requests, emu.max_in_flight, emu.connections_opened) == ([], 0, 0)
        for _ in range(3):  # sequential requests reuse one keep-alive connection
            await ok(session, emu, tenant, "Services")
        assert emu.max_in_flight == 1
        assert emu.connections_opened == 0
        async with aiohttp.ClientSession(
            headers=AUTH, connector=aiohttp.TCPConnector(force_close=True)
        ) as fresh:
            for _ in range(3):
                await ok(fresh, emu, tenant, "Services")
        assert emu.connections_opened == 3


@pytest.mark.anyio
async def test_requests_are_recorded(emu: Emulator, session: aiohttp.ClientSession) -> None:
    tenant = emu.tenant_ids[0]
    await ok(session, emu, tenant, "Messages", {"$filter": "Workload eq 'O''Brien'", "$top": "5"})
    rec = emu.requests[-1]
    assert rec.method == "GET"
    assert rec.path == f"/api/v1.0/{tenant}/ServiceComms/Messages"
    assert rec.query == {"$filter": "Workload eq 'O''Brien'", "$top": "5"}
    assert rec.headers["Authorization"] == "Bearer test-token"
    assert rec.headers["authorization"] == "Bearer test-token"


@pytest.mark.anyio
async def test_token_validator_and_middlewares(session: aiohttp.ClientSession) -> None:
    calls: list[tuple[str, str]] = []

    async def validator(tenant: str, token: str) -> web.Response | None:
        calls.append((tenant, token))
        if token == "bad":
            return web.json_response(
                {"error": {"code": "AF20010", "message": "mismatch"}}, status=401
            )
        return None

    @web.middleware
    async def teapot(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.query.get("fault") == "1":
            return web.json_response({"error": {"code": "AF50000", "message": "x"}}, status=500)
        return await handler(request)

    async with Emulator(config(), token_validator=validator, middlewares=[teapot]) as emu:
        tenant = emu.tenant_ids[0]
        assert await ok(session, emu, tenant, "Services")
        assert calls == [(tenant, "test-token")]
        status, body, _ = await call(
            session, emu, tenant, "Services", headers={"Authorization": "Bearer bad"}
        )
        assert (status, body["error"]["code"]) == (401, "AF20010")
        status, _, resp = await call(session, emu, tenant, "Services", {"fault": "1"})
        assert status == 500
        assert resp.headers["OData-Version"] == "4.0"  # built-in middlewares wrap user ones
        async with aiohttp.ClientSession() as anon:
            url = f"{emu.base_url}/{tenant}/ServiceComms/Services"
            async with anon.get(url) as r:
                assert r.status == 401
        assert len(calls) == 2  # not called without a token, nor when a middleware answered


@pytest.mark.anyio
async def test_many_tenants_current_status_is_cheap(session: aiohttp.ClientSession) -> None:
    async with Emulator(config(tenants=500)) as emu:
        started = time.perf_counter()
        sem = asyncio.Semaphore(20)

        async def one(tenant: str) -> list[dict[str, Any]]:
            async with sem:
                return await ok(session, emu, tenant, "CurrentStatus")

        results = await asyncio.gather(*(one(t) for t in emu.tenant_ids))
        assert len(results) == 500
        assert elapsed_ok(time.perf_counter() - started, 10)


def elapsed_ok(elapsed: float, limit: float) -> bool:
    return elapsed < limit


def test_config_validation_and_default_now() -> None:
    with pytest.raises(ValueError, match="shape"):
        EmulatorConfig(shape="graph")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="degraded_ratio"):
        EmulatorConfig(degraded_ratio=1.5)
    cfg = EmulatorConfig()
    assert cfg.now is not None
    assert cfg.now.tzinfo is not None
    assert cfg.now.second == 0
    assert cfg.now.microsecond == 0
    assert abs((datetime.now(timezone.utc) - cfg.now).total_seconds()) < 120
    naive = EmulatorConfig(now=datetime(2024, 1, 1))
    assert naive.now == datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.mark.anyio
async def test_run_forever_and_cli_parser(session: aiohttp.ClientSession) -> None:
    lines: list[str] = []
    ready = asyncio.Event()

    def announce(line: str) -> None:
        lines.append(line)
        if line.startswith("Any non-empty"):
            ready.set()

    task = asyncio.create_task(run_forever(config(tenants=3), "127.0.0.1", 0, announce=announce))
    await asyncio.wait_for(ready.wait(), 5)
    base = lines[0].rsplit(" ", 1)[-1]
    assert base.startswith("http://127.0.0.1:")
    assert base.endswith("/api/v1.0")
    async with session.get(lines[2].strip()) as resp:
        assert resp.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    args = build_parser().parse_args(
        ["--port", "0", "--tenants", "5", "--seed", "3", "--shape", "spec", "--latency", "0.5"]
    )
    assert (args.port, args.tenants, args.seed, args.shape, args.latency) == (0, 5, 3, "spec", 0.5)
