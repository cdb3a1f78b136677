"""The watcher against the emulator's Graph routes (static data): baselines, quiet polls, failures,
event ids and shapes, and the diff rules on Graph's own JSON."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from servicecomms_async import ServiceCommsSession
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.watch import EventType, MemoryStateStore, Watcher, WatchEvent
from servicecomms_async.watch.diff import Observation, diff_entity

pytestmark = pytest.mark.anyio

NOW = "2026-12-01T12:00:00+00:00"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(seed=7, tenants=12, messages_per_tenant=60)) as emulator:
        yield emulator


def graph_session(emu: Emulator, **options: Any) -> ServiceCommsSession[Any]:
    return ServiceCommsSession(
        token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url, **options
    )


async def served(emu: Emulator, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """What the Graph routes serve the tenant, as JSON."""
    async with graph_session(emu) as session:
        client = session.graph(tenant)
        data: dict[str, list[dict[str, Any]]] = {}
        for kind in ("healthOverviews", "issues", "messages"):
            data[kind] = await client.json_items(kind).collect()  # type: ignore[arg-type]
        return data


async def test_baseline_active_reports_open_issues_and_unhealthy_services(emu: Emulator) -> None:
    store = MemoryStateStore()
    async with graph_session(emu) as session:
        events = await Watcher(session, emu.tenant_ids, store).poll()
    expected: set[tuple[str, str, str]] = set()
    for tenant in emu.tenant_ids:
        data = await served(emu, tenant)
        expected |= {
            (tenant, "issue.opened", i["id"]) for i in data["issues"] if not i["isResolved"]
        }
        expected |= {
            (tenant, "service.status_changed", s["id"])
            for s in data["healthOverviews"]
            if s["status"] != "serviceOperational"
        }
    got = {(e.tenant_id, str(e.type), e.subject) for e in events}
    assert got == expected
    assert len(events) == len(expected) > 0
    assert all(e.data["baseline"] is True and e.data["previous"] is None for e in events)
    # Every tenant has a baseline now, and its events are pending until acknowledged.
    states = await store.tenant_states()
    assert {s.tenant_id for s in states} == set(emu.tenant_ids)
    assert all(s.has_baseline and s.failures_in_a_row == 0 for s in states)
    assert len(await store.pending_events()) == len(events)


async def test_an_unchanged_world_makes_no_events_and_one_request_per_kind(emu: Emulator) -> None:
    store = MemoryStateStore()
    async with graph_session(emu) as session:
        watcher = Watcher(session, emu.tenant_ids, store)
        await watcher.poll()
        emu.requests.clear()
        assert await watcher.poll() == []
        assert watcher.last_cycle is not None
        assert watcher.last_cycle.requests == 3 * len(emu.tenant_ids)
    paths = Counter(r.path.rsplit("/", 1)[-1] for r in emu.requests)
    assert paths == {k: len(emu.tenant_ids) for k in ("healthOverviews", "issues", "messages")}
    # The steady-state poll asks only for what changed since the cursor (minus the overlap).
    issue_queries = [r.query for r in emu.requests if r.path.endswith("/issues")]
    assert all("lastModifiedDateTime ge " in q.get("$filter", "") for q in issue_queries)


async def test_baseline_modes(emu: Emulator) -> None:
    tenant = emu.tenant_ids[0]
    data = await served(emu, tenant)
    async with graph_session(emu) as session:
        every = await Watcher(session, [tenant], MemoryStateStore(), baseline="all").poll()
        nothing = await Watcher(session, [tenant], MemoryStateStore(), baseline="none").poll()
    counts = Counter(str(e.type) for e in every)
    resolved = sum(1 for i in data["issues"] if i["isResolved"])
    assert counts["issue.opened"] == len(data["issues"])
    assert counts["issue.resolved"] == resolved  # first seen resolved: opened, then resolved
    assert counts["message.published"] == len(data["messages"])
    assert counts["service.status_changed"] == len(data["healthOverviews"])
    assert nothing == []


async def test_event_ids_are_the_same_however_often_they_are_computed(emu: Emulator) -> None:
    async with graph_session(emu) as session:
        first = await Watcher(session, emu.tenant_ids, MemoryStateStore(), baseline="all").poll()
        second = await Watcher(session, emu.tenant_ids, MemoryStateStore(), baseline="all").poll()
    assert sorted(e.id for e in first) == sorted(e.id for e in second)
    assert len({e.id for e in first}) == len(first)  # and distinct changes have distinct ids


async def test_cloudevent_shape(emu: Emulator) -> None:
    async with graph_session(emu) as session:
        events = await Watcher(session, emu.tenant_ids, MemoryStateStore()).poll()
    event = next(e for e in events if e.type is EventType.ISSUE_OPENED)
    cloud = event.to_cloudevent()
    assert cloud["specversion"] == "1.0"
    assert cloud["source"] == f"/tenants/{event.tenant_id}"
    assert cloud["subject"] == cloud["data"]["entity"]["id"]
    assert cloud["datacontenttype"] == "application/json"
    assert cloud["time"].endswith("Z")
    assert set(cloud["data"]) == {
        "tenantId",
        "entity",
        "previous",
        "changes",
        "newPosts",
        "baseline",
    }
    # The entity is Graph's JSON as sent: camelCase, every key kept.
    tenant_issues = (await served(emu, event.tenant_id))["issues"]
    assert cloud["data"]["entity"] == next(i for i in tenant_issues if i["id"] == event.subject)
    assert WatchEvent.from_json(event.to_json()) == event


async def test_a_failing_tenant_is_one_event_then_recovers(emu: Emulator) -> None:
    tenant = emu.tenant_ids[0]
    broken = {"on": True}

    def token(tenant_id: str) -> str:
        if broken["on"] and tenant_id == tenant:
            raise RuntimeError("the credential for this tenant is gone")
        return Emulator.graph_token(tenant_id)

    store = MemoryStateStore()
    async with ServiceCommsSession(
        token=token, api="graph", base_url=emu.graph_base_url
    ) as session:
        watcher = Watcher(session, emu.tenant_ids, store)
        first = await watcher.poll()
        again = await watcher.poll()
        broken["on"] = False
        recovered = await watcher.poll()
    failed = [e for e in first if e.type is EventType.TENANT_FAILED]
    assert [e.subject for e in failed] == [tenant]
    assert failed[0].data["error"]["type"] == "RuntimeError"
    assert "gone" in failed[0].data["error"]["message"]
    assert watcher.last_cycle is not None and watcher.last_cycle.failed == ()
    assert [e.type for e in again] == []  # still failing: no second tenant.failed
    state = await store.tenant_state(tenant)
    assert state is not None and state.failures_in_a_row == 0 and state.has_baseline
    types = Counter(str(e.type) for e in recovered if e.tenant_id == tenant)
    assert types["tenant.recovered"] == 1
    # Its first successful poll is its baseline.
    assert all(
        e.data.get("baseline") for e in recovered if e.type is not EventType.TENANT_RECOVERED
    )


async def test_a_poll_that_fails_midway_leaves_no_trace(emu: Emulator) -> None:
    tenant = emu.tenant_ids[1]
    failing = {"on": True}

    @web.middleware
    async def break_messages(request: web.Request, handler: Any) -> web.StreamResponse:
        if failing["on"] and request.path.endswith("/messages"):
            auth = request.headers.get("Authorization", "")
            if tenant in auth:
                return web.json_response({"error": {"code": "Boom", "message": "no"}}, status=500)
        return await handler(request)

    async with Emulator(
        EmulatorConfig(seed=7, tenants=12, messages_per_tenant=60), middlewares=[break_messages]
    ) as emulator:
        store = MemoryStateStore()
        async with ServiceCommsSession(
            token=Emulator.graph_token,
            api="graph",
            base_url=emulator.graph_base_url,
            retry=_no_retry(),
        ) as session:
            watcher = Watcher(session, [tenant], store, baseline="all")
            events = await watcher.poll()
            assert [str(e.type) for e in events] == ["tenant.failed"]
            assert await store.snapshots(tenant, "issue") == {}  # overviews and issues not kept
            state = await store.tenant_state(tenant)
            assert state is not None and state.cursor is None and not state.has_baseline
            failing["on"] = False
            caught_up = await watcher.poll()
    counts = Counter(str(e.type) for e in caught_up)
    assert counts["tenant.recovered"] == 1
    assert counts["message.published"] > 0 and counts["issue.opened"] > 0


def _no_retry() -> Any:
    from servicecomms_async import RetryPolicy

    return RetryPolicy(attempts=1)


async def test_events_are_given_again_until_acknowledged(emu: Emulator) -> None:
    store = MemoryStateStore()
    async with graph_session(emu) as session:
        watcher = Watcher(session, emu.tenant_ids[:3], store, baseline="all")
        feed = watcher.events(interval=3600)
        first = [await feed.__anext__() for _ in range(5)]
        await feed.aclose()
        await watcher.ack(first[:2])
        # A consumer that crashed before acknowledging gets the rest again, in the same order.
        again = await Watcher(session, emu.tenant_ids[:3], store).pending()
    assert [e.id for e in again[:3]] == [e.id for e in first[2:]]
    assert {e.id for e in first[:2]}.isdisjoint(e.id for e in again)


async def test_bad_arguments_are_refused_before_any_request(emu: Emulator) -> None:
    store = MemoryStateStore()
    async with (
        graph_session(emu) as graph,
        ServiceCommsSession(token="t", base_url=emu.base_url) as legacy,
    ):
        emu.requests.clear()
        with pytest.raises(TypeError, match="Microsoft Graph session"):
            Watcher(legacy, emu.tenant_ids, store)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="tenant_ids is empty"):
            Watcher(graph, [], store)
        with pytest.raises(ValueError, match="not/a/tenant"):
            Watcher(graph, ["not/a/tenant"], store)
        with pytest.raises(ValueError, match="baseline must be one of"):
            Watcher(graph, emu.tenant_ids, store, baseline="some")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="overlap"):
            Watcher(graph, emu.tenant_ids, store, overlap=-1)
    assert emu.requests == []


# -- the diff rules, on Graph's JSON ---------------------------------------------------------------

ISSUE: dict[str, Any] = {
    "startDateTime": "2026-12-01T08:00:00Z",
    "endDateTime": None,
    "lastModifiedDateTime": "2026-12-01T09:00:00Z",
    "title": "Users can't send mail",
    "id": "EX900001",
    "impactDescription": "Users may be unable to send mail.",
    "classification": "advisory",
    "origin": "microsoft",
    "status": "investigating",
    "service": "Exchange Online",
    "feature": "E-Mail and calendar access",
    "featureGroup": "E-Mail and calendar access",
    "isResolved": False,
    "highImpact": None,
    "details": [],
    "posts": [
        {
            "createdDateTime": "2026-12-01T08:05:00Z",
            "postType": "regular",
            "description": {"contentType": "html", "content": "We're investigating."},
        }
    ],
}


def seen(baseline: bool = False) -> Observation:
    from datetime import datetime

    return Observation("t1", datetime.fromisoformat(NOW), baseline=baseline, baseline_mode="active")


def changed(**fields: Any) -> dict[str, Any]:
    issue = copy.deepcopy(ISSUE)
    issue.update(fields)
    return issue


def test_last_modified_alone_is_no_event() -> None:
    later = changed(lastModifiedDateTime="2026-12-01T10:00:00Z", highImpact=True)
    assert diff_entity("issue", "EX900001", ISSUE, later, seen()) == []


def test_several_changes_make_one_event_listing_them_all() -> None:
    post = {
        "createdDateTime": "2026-12-01T10:00:00Z",
        "postType": "quick",
        "description": {"contentType": "text", "content": "Escalated."},
    }
    later = changed(
        status="serviceDegradation", classification="incident", posts=[*ISSUE["posts"], post]
    )
    (event,) = diff_entity("issue", "EX900001", ISSUE, later, seen())
    assert event.type is EventType.ISSUE_UPDATED
    assert event.data["changes"] == ["status", "classification", "posts"]
    assert event.data["newPosts"] == [post]
    assert event.data["previous"] == ISSUE


def test_resolved_and_reopened_take_precedence_over_updated() -> None:
    resolved = changed(
        isResolved=True, endDateTime="2026-12-01T11:00:00Z", status="serviceRestored"
    )
    (event,) = diff_entity("issue", "EX900001", ISSUE, resolved, seen())
    assert event.type is EventType.ISSUE_RESOLVED
    assert event.data["changes"] == ["status", "endDateTime", "isResolved"]
    (back,) = diff_entity("issue", "EX900001", resolved, ISSUE, seen())
    assert back.type is EventType.ISSUE_REOPENED
    # A post-incident review on a resolved issue is still news.
    review = dict(resolved, status="postIncidentReviewPublished")
    (pir,) = diff_entity("issue", "EX900001", resolved, review, seen())
    assert pir.type is EventType.ISSUE_UPDATED and pir.data["changes"] == ["status"]


def test_first_seen_resolved_after_the_baseline_is_opened_then_resolved() -> None:
    resolved = changed(isResolved=True, endDateTime="2026-12-01T11:00:00Z")
    events = diff_entity("issue", "EX900001", None, resolved, seen())
    assert [e.type for e in events] == [EventType.ISSUE_OPENED, EventType.ISSUE_RESOLVED]
    assert len({e.id for e in events}) == 2
    assert diff_entity("issue", "EX900001", None, resolved, seen(baseline=True)) == []


def test_a_status_that_comes_back_is_a_new_change() -> None:
    from datetime import datetime

    healthy = {"id": "Exchange", "service": "Exchange Online", "status": "serviceOperational"}
    degraded = dict(healthy, status="serviceDegradation")
    one = diff_entity("service", "Exchange", healthy, degraded, seen(), previous_poll=None)
    later = datetime.fromisoformat("2026-12-01T13:00:00+00:00")
    two = diff_entity("service", "Exchange", healthy, degraded, seen(), previous_poll=later)
    assert one[0].type is EventType.SERVICE_STATUS_CHANGED
    assert one[0].id != two[0].id
