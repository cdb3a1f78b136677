"""The emulator's Microsoft Graph service communications routes, driven over loopback with raw aiohttp.

What a Graph client sees: the real payloads' keys and enum spellings, the same incidents as the legacy
routes for a tenant, paging by opaque next links, filters, per-user viewpoints, bytes endpoints, Graph's
error shape, and tokens from the local identity server.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from azure.identity.aio import ClientSecretCredential

from servicecomms_async.emulator import Emulator, EmulatorConfig, run_forever
from servicecomms_async.emulator.faults import Fault, FaultPlan, fault_middleware
from servicecomms_async.emulator.identity import IdentityServer
from servicecomms_async.emulator.odata import ODataError, parse_datetime_us, parse_filter

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
SECRET = "graph-app-secret-never-logged"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
STATUSES = {
    "serviceOperational",
    "investigating",
    "restoringService",
    "verifyingService",
    "serviceRestored",
    "postIncidentReviewPublished",
    "serviceDegradation",
    "serviceInterruption",
    "extendedRecovery",
    "falsePositive",
    "investigationSuspended",
}
REAL_MESSAGE_KEYS = [
    "startDateTime",
    "endDateTime",
    "lastModifiedDateTime",
    "title",
    "id",
    "category",
    "severity",
    "tags",
    "isMajorChange",
    "actionRequiredByDateTime",
    "services",
    "hasAttachments",
    "viewPoint",
    "details",
    "body",
]
GRAPH_ERROR_KEYS = {"code", "message", "innerError"}
INNER_ERROR_KEYS = {"date", "request-id", "client-request-id"}


def config(**kw: Any) -> EmulatorConfig:
    kw.setdefault("seed", 7)
    kw.setdefault("tenants", 3)
    kw.setdefault("messages_per_tenant", 250)
    kw.setdefault("now", NOW)
    return EmulatorConfig(**kw)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    return data


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(config()) as e:
        yield e


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ids(self) -> list[str]:
        return [item["id"] for item in self.json["value"]]

    def graph_error(self) -> dict[str, Any]:
        """The error object, checked to be in Graph's shape with its id in the header too."""
        error: dict[str, Any] = self.json["error"]
        assert set(error) == GRAPH_ERROR_KEYS
        assert set(error["innerError"]) == INNER_ERROR_KEYS
        assert error["innerError"]["request-id"] == self.headers["request-id"]
        return error


async def call(
    http: aiohttp.ClientSession,
    url: str,
    token: str | None,
    *,
    method: str = "GET",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> Reply:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, params=params, headers=sent, json=body) as resp:
        return Reply(resp.status, dict(resp.headers), await resp.read())


def api(emu: Emulator, path: str) -> str:
    return f"{emu.graph_base_url}/admin/serviceAnnouncement/{path}"


async def get(
    http: aiohttp.ClientSession,
    emu: Emulator,
    path: str,
    tenant: str | None = None,
    *,
    delegated: bool = False,
    **kw: Any,
) -> Reply:
    token = emu.graph_token(tenant or emu.tenant_ids[0], delegated=delegated)
    return await call(http, api(emu, path), token, **kw)


async def every_page(
    http: aiohttp.ClientSession, emu: Emulator, path: str, token: str, page_size: int
) -> tuple[list[str], list[Reply]]:
    """All ids of a collection, following next links; each link must be new and absolute."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    url: str | None = api(emu, path)
    ids: list[str] = []
    replies: list[Reply] = []
    seen: set[str] = set()
    while url is not None:
        reply = await call(http, url, token, headers=headers)
        assert reply.status == 200, reply.body
        replies.append(reply)
        ids += reply.ids
        url = reply.json.get("@odata.nextLink")
        if url is not None:
            assert url not in seen and url.startswith(emu.graph_base_url + "/")
            seen.add(url)
    return ids, replies


async def legacy_messages(http: aiohttp.ClientSession, emu: Emulator, tenant: str) -> list[Any]:
    items: list[Any] = []
    while True:
        url = f"{emu.base_url}/{tenant}/ServiceComms/Messages"
        params = {"$top": "100", "$skip": str(len(items))}
        async with http.get(url, params=params, headers={"Authorization": "Bearer t"}) as resp:
            assert resp.status == 200
            page = (await resp.json())["value"]
        items += page
        if len(page) < 100:
            return items


# -- the resources, against the real payloads --


async def test_health_overviews_are_the_legacy_current_status_in_graph_form(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    sample = fixture("graph_healthoverviews.json")
    degraded_seen = False
    for tenant in emu.tenant_ids:
        reply = await get(http, emu, "healthOverviews", tenant)
        assert reply.status == 200
        doc = reply.json
        assert doc["@odata.context"] == (
            f"{emu.graph_base_url}/$metadata#admin/serviceAnnouncement/healthOverviews"
        )
        assert [set(item) for item in doc["value"]] == [set(sample["value"][0])] * len(doc["value"])
        legacy = emu.dataset(tenant).current_status
        assert [(h["id"], h["service"]) for h in doc["value"]] == [
            (row["Workload"], row["WorkloadDisplayName"]) for row in legacy
        ]
        for health, row in zip(doc["value"], legacy, strict=True):
            assert health["status"] in STATUSES
            assert health["status"].lower() == row["Status"].lower()
            degraded_seen |= health["status"] != "serviceOperational"
    assert degraded_seen  # the config makes one tenant in three degraded


async def test_expand_issues_embeds_each_services_issues(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    sample = fixture("graph_healthoverviews_expand_issues.json")
    reply = await get(http, emu, "healthOverviews", params={"$expand": "issues"})
    doc = reply.json
    assert doc["@odata.context"].endswith("#admin/serviceAnnouncement/healthOverviews(issues())")
    assert all(set(h) == set(sample["value"][0]) for h in doc["value"])
    issue_keys = set(sample["value"][0]["issues"][0])
    embedded = [i for h in doc["value"] for i in h["issues"]]
    assert embedded and all(set(i) == issue_keys for i in embedded)
    for health in doc["value"]:
        assert {i["service"] for i in health["issues"]} <= {health["service"]}
    everything = emu.graph_dataset(emu.tenant_ids[0]).issues
    assert sorted(i["id"] for i in embedded) == sorted(i["id"] for i in everything)

    selected = await get(
        http, emu, "healthOverviews", params={"$expand": "issues", "$select": "id"}
    )
    assert selected.json["@odata.context"].endswith("healthOverviews(id,issues())")
    assert {tuple(h) for h in selected.json["value"]} == {("id", "issues")}


async def test_one_health_overview_by_id_or_service_name(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    first = emu.graph_dataset(emu.tenant_ids[0]).health_overviews[0]
    by_id = await get(http, emu, f"healthOverviews/{first['id'].upper()}")
    by_name = await get(http, emu, f"healthOverviews/{first['service']}")
    assert by_id.status == by_name.status == 200
    assert by_id.json == by_name.json
    assert by_id.json["@odata.context"].endswith("/healthOverviews/$entity")
    assert {k: v for k, v in by_id.json.items() if k != "@odata.context"} == first
    missing = await get(http, emu, "healthOverviews/Nonexistent Service")
    assert missing.status == 404
    assert missing.graph_error()["code"] == "NotFound"


async def test_issues_and_messages_have_the_real_payloads_keys(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    issues = await get(http, emu, "issues")
    sample_issue = fixture("graph_issues.json")["value"][0]
    assert issues.json["@odata.context"].endswith("$metadata#admin/serviceAnnouncement/issues")
    for issue in issues.json["value"]:
        assert list(issue) == list(sample_issue)  # the same keys in the same order
        assert issue["status"] in STATUSES
        assert (
            issue["classification"] in ("incident", "advisory") and issue["origin"] == "microsoft"
        )
        assert all(set(d) == {"name", "value"} for d in issue["details"])
        for post in issue["posts"]:
            assert set(post) == set(sample_issue["posts"][0])
            assert post["postType"] == "regular" and post["description"]["contentType"] == "html"
    one = await get(http, emu, f"issues/{issues.ids[0]}")
    entity = fixture("graph_issue_MO226784.json")
    assert list(one.json) == list(entity)
    assert one.json["@odata.context"].endswith("/issues/$entity")

    messages = await get(http, emu, "messages")
    categories, severities = set(), set()
    for message in messages.json["value"]:
        # Today's real payloads (../shared/realworld/README.md): these 15 keys in this order, no
        # expiryDateTime (the documentation's older sample still has it).
        assert list(message) == REAL_MESSAGE_KEYS
        assert message["viewPoint"] is None  # an application token
        assert message["body"]["contentType"] == "html" and message["body"]["content"]
        categories.add(message["category"])
        severities.add(message["severity"])
    assert categories == {"preventOrFixIssue", "planForChange", "stayInformed"}
    assert severities <= {"normal", "high", "critical"} and "normal" in severities
    one_message = await get(http, emu, f"messages/{messages.ids[0]}")
    assert list(one_message.json) == ["@odata.context", *REAL_MESSAGE_KEYS]


async def test_the_same_incidents_through_the_legacy_api_and_graph(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    tenant = emu.tenant_ids[1]
    legacy = await legacy_messages(http, emu, tenant)
    token = emu.graph_token(tenant)
    issue_ids, _ = await every_page(http, emu, "issues", token, 1000)
    message_ids, _ = await every_page(http, emu, "messages", token, 1000)
    incidents = [m for m in legacy if m["MessageType"] == "Incident"]
    assert issue_ids == [m["Id"] for m in incidents]
    assert message_ids == [m["Id"] for m in legacy if m["MessageType"] == "MessageCenter"]
    maintenance = {m["Id"] for m in legacy if m["MessageType"] == "PlannedMaintenance"}
    assert maintenance and not maintenance & set(issue_ids)  # left out: Graph has no such type

    graph = {i["id"]: i for i in emu.graph_dataset(tenant).issues}
    for incident in incidents:
        issue = graph[incident["Id"]]
        assert (issue["title"], issue["service"], issue["featureGroup"]) == (
            incident["Title"],
            incident["WorkloadDisplayName"],
            incident["FeatureDisplayName"],
        )
        assert (issue["startDateTime"], issue["endDateTime"], issue["isResolved"]) == (
            incident["StartTime"],
            incident["EndTime"],
            incident["EndTime"] is not None,
        )
        assert [p["description"]["content"] for p in issue["posts"]] == [
            p["MessageText"] for p in incident["Messages"]
        ]
    mapped = {(m["Status"], graph[m["Id"]]["status"]) for m in incidents}
    assert ("Service restored", "serviceRestored") in mapped
    assert ("Post-incident report published", "postIncidentReviewPublished") in mapped
    assert ("False positive", "falsePositive") in mapped


async def test_the_spec_shape_serves_the_same_graph_data() -> None:
    async with Emulator(config(shape="spec")) as spec, Emulator(config()) as real:
        tenant = real.tenant_ids[0]
        assert spec.graph_dataset(tenant) == real.graph_dataset(tenant)


# -- paging --


@pytest.mark.parametrize(("path", "page_size"), [("issues", 9), ("messages", 4)])
async def test_paging_by_next_link_never_skips_or_repeats(
    http: aiohttp.ClientSession, emu: Emulator, path: str, page_size: int
) -> None:
    token = emu.graph_token(emu.tenant_ids[0])
    everything, _ = await every_page(http, emu, path, token, 1000)
    ids, replies = await every_page(http, emu, path, token, page_size)
    assert len(replies) > 5
    assert ids == everything
    assert [len(r.ids) for r in replies[:-1]] == [page_size] * (len(replies) - 1)
    for reply in replies:
        assert reply.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
    for reply in replies[:-1]:
        query = parse_qs(urlsplit(reply.json["@odata.nextLink"]).query)
        assert "$skiptoken" in query and "$skip" not in query
        assert list(reply.json) == ["@odata.context", "@odata.nextLink", "value"]


async def test_default_page_size_is_100_and_links_keep_the_query(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    total = len(emu.graph_dataset(emu.tenant_ids[0]).issues)
    assert total > 100
    first = await get(http, emu, "issues", params={"$select": "id,status"})
    assert len(first.ids) == 100 and "Preference-Applied" not in first.headers
    link = first.json["@odata.nextLink"]
    assert parse_qs(urlsplit(link).query)["$select"] == ["id,status"]
    second = await call(http, link, emu.graph_token(emu.tenant_ids[0]))
    assert len(second.ids) == total - 100 and "@odata.nextLink" not in second.json
    assert all(set(item) == {"id", "status"} for item in second.json["value"])


async def test_top_on_issues_drops_the_next_link_but_not_on_messages(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    everything = emu.graph_dataset(emu.tenant_ids[0])
    issues = await get(http, emu, "issues", params={"$top": "5"})
    assert issues.ids == [i["id"] for i in everything.issues[:5]]
    assert "@odata.nextLink" not in issues.json  # the real service's quirk
    messages = await get(http, emu, "messages", params={"$top": "5"})
    assert messages.ids == [m["id"] for m in everything.messages[:5]]
    following = await call(
        http, messages.json["@odata.nextLink"], emu.graph_token(emu.tenant_ids[0])
    )
    assert following.ids == [m["id"] for m in everything.messages[5:10]]


async def test_a_skiptoken_that_is_altered_foreign_or_reused_elsewhere_is_refused(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    token = emu.graph_token(emu.tenant_ids[0])
    headers = {"Prefer": "odata.maxpagesize=10"}
    first = await call(
        http, api(emu, "issues"), token, params={"$filter": "isResolved eq true"}, headers=headers
    )
    skiptoken = parse_qs(urlsplit(first.json["@odata.nextLink"]).query)["$skiptoken"][0]
    altered = skiptoken[:-2] + ("AA" if skiptoken[-2:] != "AA" else "BB")
    async with Emulator(config(seed=8)) as other:
        foreign_first = await get(http, other, "issues", headers=headers)
        foreign = parse_qs(urlsplit(foreign_first.json["@odata.nextLink"]).query)["$skiptoken"][0]
    cases = [
        ("issues", {"$filter": "isResolved eq true", "$skiptoken": altered}),
        ("issues", {"$filter": "isResolved eq true", "$skiptoken": "not base64 !"}),
        ("issues", {"$skiptoken": foreign}),
        ("issues", {"$filter": "isResolved eq false", "$skiptoken": skiptoken}),
        ("messages", {"$filter": "isResolved eq true", "$skiptoken": skiptoken}),
        ("messages", {"$skiptoken": skiptoken}),
        ("issues", {"$skip": "10"}),
    ]
    for path, params in cases:
        reply = await call(http, api(emu, path), token, params=params)
        assert reply.status == 400, (path, params)
        assert reply.graph_error()["code"] == "BadRequest"
    still_good = await call(
        http,
        api(emu, "issues"),
        token,
        params={"$filter": "isResolved eq true", "$skiptoken": skiptoken},
    )
    assert still_good.status == 200 and len(still_good.ids) == 10


@pytest.mark.parametrize(
    ("headers", "params", "named"),
    [
        ({"Prefer": "odata.maxpagesize=0"}, {}, "maxpagesize"),
        ({"Prefer": "odata.maxpagesize=1001"}, {}, "maxpagesize"),
        ({}, {"$top": "-1"}, "$top"),
        ({}, {"$top": "1001"}, "$top"),
        ({}, {"$orderby": "id"}, "$orderby"),
        ({}, {"$select": "id,nope"}, "nope"),
        ({}, {"$expand": "posts"}, "posts"),
    ],
)
async def test_bad_paging_and_query_options_are_named_in_a_400(
    http: aiohttp.ClientSession,
    emu: Emulator,
    headers: dict[str, str],
    params: dict[str, str],
    named: str,
) -> None:
    reply = await get(http, emu, "messages", params=params, headers=headers)
    assert reply.status == 400
    error = reply.graph_error()
    assert error["code"] == "BadRequest" and named in error["message"]


# -- filters --


def _at(items: list[dict[str, Any]], key: str, fraction: float) -> str:
    values = sorted(i[key] for i in items if i[key] is not None)
    return str(values[int(len(values) * fraction)])


def _us(value: str | None) -> int | None:
    return None if value is None else parse_datetime_us(value)


ISSUE_FILTERS: list[tuple[str, Callable[[dict[str, Any], str], bool]]] = [
    ("lastModifiedDateTime ge {lastModifiedDateTime}", lambda i, v: _us(i["lastModifiedDateTime"]) >= _us(v)),  # type: ignore[operator]
    ("startDateTime lt {startDateTime}", lambda i, v: _us(i["startDateTime"]) < _us(v)),  # type: ignore[operator]
    ("endDateTime le {endDateTime}", lambda i, v: i["endDateTime"] is not None and _us(i["endDateTime"]) <= _us(v)),  # type: ignore[operator]
    ("isResolved eq false", lambda i, v: not i["isResolved"]),
    ("classification eq 'INCIDENT'", lambda i, v: i["classification"] == "incident"),
    ("status eq 'serviceRestored'", lambda i, v: i["status"] == "serviceRestored"),
    ("status eq 'PostIncidentReviewPublished'", lambda i, v: i["status"] == "postIncidentReviewPublished"),
    ("service eq 'Exchange Online'", lambda i, v: i["service"] == "Exchange Online"),
    (
        "(service eq 'Exchange Online' or service eq 'SharePoint Online') and classification eq 'advisory'",
        lambda i, v: i["service"] in ("Exchange Online", "SharePoint Online")
        and i["classification"] == "advisory",
    ),
]  # fmt: skip
MESSAGE_FILTERS: list[tuple[str, Callable[[dict[str, Any], str], bool]]] = [
    ("lastModifiedDateTime ge {lastModifiedDateTime}", lambda m, v: _us(m["lastModifiedDateTime"]) >= _us(v)),  # type: ignore[operator]
    ("category eq 'planForChange'", lambda m, v: m["category"] == "planForChange"),
    ("severity eq 'HIGH'", lambda m, v: m["severity"] == "high"),
    ("isMajorChange eq true", lambda m, v: m["isMajorChange"]),
    ("hasAttachments eq true", lambda m, v: m["hasAttachments"]),
    ("services/any(s:s eq 'Exchange Online')", lambda m, v: "Exchange Online" in m["services"]),
    ("tags/any(t:t eq 'admin impact')", lambda m, v: "Admin impact" in m["tags"]),
    (
        "services/any(s:s eq 'Exchange Online' or s eq 'Microsoft Teams') and not isMajorChange eq true",
        lambda m, v: bool({"Exchange Online", "Microsoft Teams"} & set(m["services"]))
        and not m["isMajorChange"],
    ),
]  # fmt: skip


async def test_every_filter_selects_what_it_says(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    tenant = next(
        t for t in emu.tenant_ids if any(not i["isResolved"] for i in emu.graph_dataset(t).issues)
    )
    data = emu.graph_dataset(tenant)
    token = emu.graph_token(tenant)
    headers = {"Prefer": "odata.maxpagesize=1000"}
    for path, items, filters in (
        ("issues", data.issues, ISSUE_FILTERS),
        ("messages", data.messages, MESSAGE_FILTERS),
    ):
        for template, keep in filters:
            value = _at(items, template.split()[0], 0.5) if "{" in template else ""
            text = template.format(
                lastModifiedDateTime=value, startDateTime=value, endDateTime=value
            )
            reply = await call(
                http, api(emu, path), token, params={"$filter": text}, headers=headers
            )
            assert reply.status == 200, (text, reply.body)
            expected = [i["id"] for i in items if keep(i, value)]
            assert expected, f"no {path} match {text!r}: the test would prove nothing"
            assert len(expected) < len(items) and reply.ids == expected, text


@pytest.mark.parametrize(
    ("path", "text", "named"),
    [
        ("issues", "severity eq 'high'", "severity"),
        ("messages", "isResolved eq true", "isResolved"),
        ("messages", "services eq 'Exchange Online'", "any("),
        ("messages", "services/any(s:s eq 'x'", "')'"),
        ("issues", "status eq serviceRestored", "status"),
    ],
)
async def test_a_filter_on_an_unknown_property_or_malformed_is_a_400_naming_it(
    http: aiohttp.ClientSession, emu: Emulator, path: str, text: str, named: str
) -> None:
    reply = await get(http, emu, path, params={"$filter": text})
    assert reply.status == 400
    error = reply.graph_error()
    assert error["code"] == "BadRequest" and named in error["message"]


def test_lambda_grammar_in_the_filter_parser() -> None:
    fields = {"services": "collection", "tags": "collection", "status": "string"}
    row = {"services": ("Exchange Online", "Microsoft Teams"), "tags": (), "status": "x"}
    assert parse_filter("services/any(s:s eq 'microsoft teams')", fields)(row)  # type: ignore[arg-type]
    assert not parse_filter("services/all(s:s eq 'Exchange Online')", fields)(row)  # type: ignore[arg-type]
    assert not parse_filter("tags/any()", fields)(row)  # type: ignore[arg-type]
    assert parse_filter("not tags/any() and status eq 'X'", fields)(row)  # type: ignore[arg-type]
    for bad, said in [
        ("services/any(s:status eq 'x')", "range variable 's'"),
        ("status/any(s:s eq 'x')", "not a collection"),
        ("services/any(s:tags/any(t:t eq 'x'))", "cannot be used inside a lambda"),
        ("services/count(s:s eq 'x')", "'any' or 'all'"),
        ("services/any(s s eq 'x')", "':'"),
    ]:
        with pytest.raises(ODataError, match=said):
            parse_filter(bad, fields)  # type: ignore[arg-type]


# -- viewpoints and actions --


async def test_viewpoint_actions_need_a_user_and_change_what_that_user_sees(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    tenant, other_tenant = emu.tenant_ids[0], emu.tenant_ids[1]
    ids = [m["id"] for m in emu.graph_dataset(tenant).messages[:3]]
    user = emu.graph_token(tenant, delegated=True)

    refused = await get(http, emu, "messages/markRead", method="POST", body={"messageIds": ids})
    assert refused.status == 403
    error = refused.graph_error()
    assert error["code"] == "Forbidden" and "delegated" in error["message"]

    before = await get(http, emu, f"messages/{ids[0]}", delegated=True)
    assert before.json["viewPoint"] == {"isRead": False, "isArchived": False, "isFavorited": False}

    async def act(action: str, message_ids: list[str], token: str = user) -> Reply:
        return await call(
            http,
            api(emu, f"messages/{action}"),
            token,
            method="POST",
            body={"messageIds": message_ids},
        )

    done = await act("markRead", [ids[0], ids[1].lower()])
    assert done.status == 200
    assert done.json == {
        "@odata.context": f"{emu.graph_base_url}/$metadata#Edm.Boolean",
        "value": True,
    }
    assert (await act("favorite", [ids[1]])).status == 200
    assert (await act("archive", [ids[2]])).status == 200
    assert (await act("unarchive", [ids[2]])).status == 200
    assert (await act("markUnread", [ids[1]])).status == 200

    listed = await get(http, emu, "messages", delegated=True, params={"$top": "3"})
    views = {m["id"]: m["viewPoint"] for m in listed.json["value"]}
    assert views == {
        ids[0]: {"isRead": True, "isArchived": False, "isFavorited": False},
        ids[1]: {"isRead": False, "isArchived": False, "isFavorited": True},
        ids[2]: {"isRead": False, "isArchived": False, "isFavorited": False},
    }
    # The application view and other tenants' users are untouched.
    app_view = await get(http, emu, f"messages/{ids[0]}")
    assert app_view.json["viewPoint"] is None
    other = await get(http, emu, "messages", other_tenant, delegated=True, params={"$top": "3"})
    assert all(not m["viewPoint"]["isRead"] for m in other.json["value"])


async def test_bad_action_bodies_are_refused_and_change_nothing(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    tenant = emu.tenant_ids[0]
    known = emu.graph_dataset(tenant).messages[0]["id"]
    foreign_issue = emu.graph_dataset(tenant).issues[0]["id"]
    bodies: list[tuple[Any, str]] = [
        ({"messageIds": [known, "MC000001", foreign_issue]}, "MC000001"),
        ({"messageIds": [known] * 101}, "101"),
        ({"messageIds": []}, "1 to 100"),
        ({"messageIds": "MC1"}, "list"),
        ({"ids": [known]}, "messageIds"),
        ([known], "messageIds"),
    ]
    for body, named in bodies:
        reply = await get(http, emu, "messages/markRead", delegated=True, method="POST", body=body)
        assert reply.status == 400, body
        error = reply.graph_error()
        assert error["code"] == "BadRequest" and named in error["message"]
    unchanged = await get(http, emu, f"messages/{known}", delegated=True)
    assert unchanged.json["viewPoint"]["isRead"] is False


# -- bytes --


async def test_incident_reports_for_reviewed_issues_and_resolved_incidents_only(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    issues = emu.graph_dataset(emu.tenant_ids[0]).issues
    reviewed = next(i for i in issues if i["status"] == "postIncidentReviewPublished")
    resolved_incident = next(
        i
        for i in issues
        if i["classification"] == "incident"
        and i["isResolved"]
        and i["status"] == "serviceRestored"
    )
    resolved_advisory = next(
        i for i in issues if i["classification"] == "advisory" and i["status"] == "serviceRestored"
    )
    for issue in (reviewed, resolved_incident):
        first = await get(http, emu, f"issues/{issue['id']}/incidentReport")
        again = await get(http, emu, f"issues/{issue['id']}/incidentReport")
        assert first.status == 200 and first.headers["Content-Type"] == "application/octet-stream"
        assert first.body == again.body
        text = first.body.decode()
        assert f"Issue: {issue['id']}" in text and issue["title"] in text
    refused = await get(http, emu, f"issues/{resolved_advisory['id']}/incidentReport")
    assert refused.status == 404 and refused.graph_error()["code"] == "NotFound"
    unknown = await get(http, emu, "issues/EX1/incidentReport")
    assert unknown.status == 404


async def test_attachments_their_bytes_and_the_zip_of_them(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    messages = emu.graph_dataset(emu.tenant_ids[0]).messages
    with_files = next(m for m in messages if m["hasAttachments"])
    without = next(m for m in messages if not m["hasAttachments"])

    listed = await get(http, emu, f"messages/{with_files['id']}/attachments")
    attachments = listed.json["value"]
    assert listed.json["@odata.context"].endswith(f"/messages('{with_files['id']}')/attachments")
    assert attachments
    contents: dict[str, bytes] = {}
    for attachment in attachments:
        assert set(attachment) == {
            "id",
            "name",
            "contentType",
            "size",
            "isInline",
            "lastModifiedDateTime",
        }
        path = f"messages/{with_files['id']}/attachments/{attachment['id']}"
        one = await get(http, emu, path)
        assert {k: v for k, v in one.json.items() if k != "@odata.context"} == attachment
        content = await get(http, emu, path + "/content")
        assert content.headers["Content-Type"] == "application/octet-stream"
        assert len(content.body) == attachment["size"]
        contents[attachment["name"]] = content.body
    archive = await get(http, emu, f"messages/{with_files['id']}/attachmentsArchive")
    assert archive.status == 200
    with zipfile.ZipFile(io.BytesIO(archive.body)) as zipped:
        assert {name: zipped.read(name) for name in zipped.namelist()} == contents

    expanded = await get(
        http, emu, f"messages/{with_files['id']}", params={"$expand": "attachments"}
    )
    assert expanded.json["attachments"] == attachments
    assert (await get(http, emu, f"messages/{without['id']}/attachments")).json["value"] == []
    assert (await get(http, emu, f"messages/{without['id']}/attachmentsArchive")).status == 404
    missing = await get(http, emu, f"messages/{with_files['id']}/attachments/nope/content")
    assert missing.status == 404 and missing.graph_error()["code"] == "NotFound"


# -- authentication and errors --


async def test_missing_and_unknown_tokens_get_graphs_401(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    sample = fixture("graph_error_401_invalid_token.json")["error"]
    client_request_id = "0f0e0d0c-0b0a-4998-8776-655443322110"
    missing = await call(
        http, api(emu, "issues"), None, headers={"client-request-id": client_request_id}
    )
    assert missing.status == 401
    error = missing.graph_error()
    assert error["code"] == sample["code"] and error["message"] == "Access token is empty."
    assert error["innerError"]["client-request-id"] == client_request_id
    assert missing.headers["client-request-id"] == client_request_id
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    for token in ("legacy-style-token", "emulator-app.not a tenant", "emulator-admin.contoso.com"):
        reply = await call(http, api(emu, "messages"), token)
        assert reply.status == 401
        assert reply.graph_error()["code"] == "InvalidAuthenticationToken"
    with pytest.raises(ValueError, match="tenant"):
        Emulator.graph_token("not a tenant")
    assert Emulator.graph_token("Contoso.COM", delegated=True) == "emulator-user.contoso.com"


async def test_routing_errors_and_faults_on_graph_paths_use_graphs_error_shape(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    unknown = await get(http, emu, "nothingHere")
    assert unknown.status == 404 and unknown.graph_error()["code"] == "NotFound"
    message_id = emu.graph_dataset(emu.tenant_ids[0]).messages[0]["id"]
    wrong_method = await get(http, emu, f"messages/{message_id}", method="POST", body={})
    assert wrong_method.status == 405 and wrong_method.headers["Allow"] == "GET"
    wrong_method.graph_error()
    assert "X-Activity-Id" not in unknown.headers  # the legacy API's id header is not Graph's

    sample_429 = fixture("graph_error_429.json")["error"]
    for fault, status in [
        (Fault.THROTTLE_AF429, 429),
        (Fault.THROTTLE_429, 429),
        (Fault.SERVER_ERROR, 500),
        (Fault.UNAUTHORIZED, 401),
    ]:
        plan = FaultPlan(rate=1.0, kinds=(fault,), retry_after=2)
        async with Emulator(config(), middlewares=[fault_middleware(plan)]) as faulty:
            reply = await get(http, faulty, "issues")
        assert reply.status == status, fault
        error = reply.json["error"]
        assert error["innerError"]["request-id"] == reply.headers["request-id"]
        if status == 429:
            assert set(error) == set(sample_429) and set(error["innerError"]) >= set(
                sample_429["innerError"]
            )
            assert reply.headers["Retry-After"] == "2"
        else:
            reply.graph_error()


async def test_requests_are_recorded_and_the_cli_announces_the_graph_url(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    await get(http, emu, "issues", params={"$top": "1"})
    recorded = emu.requests[-1]
    assert recorded.path == "/v1.0/admin/serviceAnnouncement/issues"
    assert recorded.query == {"$top": "1"}

    lines: list[str] = []
    ready = asyncio.Event()

    def announce(line: str) -> None:
        lines.append(line)
        if line.startswith("Any non-empty"):
            ready.set()

    task = asyncio.create_task(run_forever(config(), "127.0.0.1", 0, announce=announce))
    try:
        await asyncio.wait_for(ready.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    graph_line = next(line for line in lines if "Microsoft Graph" in line)
    assert "/v1.0/admin/serviceAnnouncement/" in graph_line


# -- tokens from the local identity server --


@pytest.fixture
async def idp() -> AsyncIterator[IdentityServer]:
    async with IdentityServer() as server:
        yield server


async def test_identity_server_graph_tokens_open_the_graph_routes_and_nothing_else(
    http: aiohttp.ClientSession, idp: IdentityServer
) -> None:
    async with Emulator(
        config(),
        token_validator=idp.token_validator,
        graph_token_validator=idp.graph_token_validator,
    ) as emu:
        idp.add_tenants(emu.tenant_ids)
        tenant = emu.tenant_ids[0]
        app = idp.register_app(secret=SECRET)
        credential = ClientSecretCredential(
            tenant, app.client_id, SECRET, authority=idp.authority, connection_verify=idp.ca_path
        )
        async with credential:
            graph_token = (await credential.get_token(GRAPH_SCOPE)).token
            legacy_token = (await credential.get_token("https://manage.office.com/.default")).token
        claims = idp.decode(graph_token)
        assert claims["aud"] == "https://graph.microsoft.com" and claims["tid"] == tenant
        assert set(claims["roles"]) == {"ServiceHealth.Read.All", "ServiceMessage.Read.All"}

        issues = await call(http, api(emu, "issues"), graph_token, params={"$top": "3"})
        assert issues.status == 200
        assert issues.ids == [i["id"] for i in emu.graph_dataset(tenant).issues[:3]]
        messages = await call(http, api(emu, "messages"), graph_token, params={"$top": "1"})
        assert messages.status == 200 and messages.json["value"][0]["viewPoint"] is None

        # A legacy-audience token is refused by Graph, and a Graph token by the legacy API.
        refused = await call(http, api(emu, "issues"), legacy_token)
        assert refused.status == 401
        assert refused.graph_error()["code"] == "InvalidAuthenticationToken"
        async with http.get(
            f"{emu.base_url}/{tenant}/ServiceComms/Services",
            headers={"Authorization": f"Bearer {graph_token}"},
        ) as resp:
            assert resp.status == 401
        # With a validator, the emulator's own opaque tokens mean nothing.
        opaque = await call(http, api(emu, "issues"), emu.graph_token(tenant))
        assert opaque.status == 401

        # An application token cannot act on viewpoints: 403 from the route, not from the validator.
        action = await call(
            http, api(emu, "messages/markRead"), graph_token, method="POST",
            body={"messageIds": messages.ids},
        )  # fmt: skip
        assert action.status == 403 and "delegated" in action.graph_error()["message"]

        # An app without ServiceMessage.Read.All reads issues but not messages.
        health_only = idp.register_app(secret=SECRET, graph_roles=["ServiceHealth.Read.All"])
        async with ClientSecretCredential(
            tenant, health_only.client_id, SECRET, authority=idp.authority,
            connection_verify=idp.ca_path,
        ) as limited_credential:  # fmt: skip
            limited = (await limited_credential.get_token(GRAPH_SCOPE)).token
        assert (await call(http, api(emu, "issues"), limited)).status == 200
        denied = await call(http, api(emu, "messages"), limited)
        assert denied.status == 403
        assert denied.graph_error()["code"] == "Authorization_RequestDenied"
        assert "ServiceMessage.Read.All" in denied.graph_error()["message"]
        assert idp.rejections["audience"] >= 2 and idp.rejections["missing_role"] == 1


async def test_delegated_graph_tokens_keep_each_users_viewpoint(
    http: aiohttp.ClientSession, idp: IdentityServer
) -> None:
    async with Emulator(config(), graph_token_validator=idp.graph_token_validator) as emu:
        idp.add_tenants(emu.tenant_ids)
        tenant = emu.tenant_ids[0]
        alice = idp.issue_graph_token(tenant, delegated=True, user="alice")
        alice_again = idp.issue_graph_token(tenant, delegated=True, user="alice")
        bob = idp.issue_graph_token(tenant, delegated=True, user="bob")
        reader = idp.issue_graph_token(
            tenant, delegated=True, user="carol", permissions=["ServiceMessage.Read.All"]
        )
        assert alice != alice_again and "scp" in idp.decode(alice)
        message_id = emu.graph_dataset(tenant).messages[0]["id"]

        favorited = await call(
            http, api(emu, "messages/favorite"), alice, method="POST",
            body={"messageIds": [message_id]},
        )  # fmt: skip
        assert favorited.status == 200

        async def favorite_of(token: str) -> bool:
            reply = await call(http, api(emu, f"messages/{message_id}"), token)
            assert reply.status == 200
            return bool(reply.json["viewPoint"]["isFavorited"])

        assert await favorite_of(alice_again)  # the same user, a refreshed token
        assert not await favorite_of(bob)
        no_write = await call(
            http, api(emu, "messages/markRead"), reader, method="POST",
            body={"messageIds": [message_id]},
        )  # fmt: skip
        assert no_write.status == 403
        assert "ServiceMessageViewpoint.Write" in no_write.graph_error()["message"]
        assert (await call(http, api(emu, "issues"), reader)).status == 403

        idp.token_lifetime = 1
        expiring = idp.issue_graph_token(tenant)
        idp.revoke(jti=idp.decode(expiring)["jti"])
        revoked = await call(http, api(emu, "issues"), expiring)
        assert (
            revoked.status == 401 and revoked.graph_error()["code"] == "InvalidAuthenticationToken"
        )
        with pytest.raises(ValueError, match="unknown tenant"):
            idp.issue_graph_token("contoso.example")


async def test_a_custom_graph_token_validator_sees_the_permission_each_route_needs(
    http: aiohttp.ClientSession,
) -> None:
    asked: list[str] = []

    async def validator(token: str, permission: str) -> tuple[str, bool] | web.StreamResponse:
        asked.append(permission)
        if token == "let-me-in":
            return ("Contoso.com", True)  # a plain tuple: the viewpoint is keyed by the token
        return web.json_response({"error": {"code": "Custom", "message": "no"}}, status=401)

    async with Emulator(config(), graph_token_validator=validator) as emu:
        message_id = emu.graph_dataset("contoso.com").messages[0]["id"]
        for path in ("healthOverviews", "issues", f"messages/{message_id}"):
            assert (await call(http, api(emu, path), "let-me-in")).status == 200
        marked = await call(
            http, api(emu, "messages/markRead"), "let-me-in", method="POST",
            body={"messageIds": [message_id]},
        )  # fmt: skip
        assert marked.status == 200
        seen = await call(http, api(emu, f"messages/{message_id}"), "let-me-in")
        assert seen.json["viewPoint"]["isRead"] is True
        refused = await call(http, api(emu, "issues"), "other")
        assert refused.status == 401 and refused.json["error"]["code"] == "Custom"
    assert asked == [
        "ServiceHealth.Read.All",
        "ServiceHealth.Read.All",
        "ServiceMessage.Read.All",
        "ServiceMessageViewpoint.Write",
        "ServiceMessage.Read.All",
        "ServiceHealth.Read.All",
    ]
