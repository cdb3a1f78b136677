"""The Microsoft Graph backend end to end: GraphClient -> loopback HTTP -> the emulator's Graph routes."""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from io import BytesIO
from typing import Any

import pytest

from servicecomms_async import (
    DelegatedPermissionRequiredError,
    ForbiddenError,
    NotFoundError,
    RetryPolicy,
    ServiceCommsSession,
    TenantDone,
    UnauthorizedError,
)
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.faults import Fault, FaultPlan, fault_middleware
from servicecomms_async.graph.models import (
    ServiceHealthClassification,
    ServiceHealthStatus,
    ServiceUpdateCategory,
)

pytestmark = pytest.mark.anyio


def app_token(tenant: str) -> str:
    return Emulator.graph_token(tenant)


def user_token(tenant: str) -> str:
    return Emulator.graph_token(tenant, delegated=True)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(seed=11, tenants=3, messages_per_tenant=400)) as emulator:
        yield emulator


@pytest.fixture
async def graph_session(emu: Emulator) -> AsyncIterator[ServiceCommsSession]:
    # No request budget: these tests send far more than Graph's 240 a minute for one tenant, and
    # would spend a minute waiting for the budget (tests/test_budget.py covers it).
    async with ServiceCommsSession(
        token=app_token, api="graph", base_url=emu.graph_base_url, budget=None
    ) as session:
        yield session
        assert session.connections_in_use() == 0


def graph_requests(emu: Emulator) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    return [
        (r.path, r.query, dict(r.headers))
        for r in emu.requests
        if "/admin/serviceAnnouncement/" in r.path
    ]


async def test_health_overviews_agree_with_the_legacy_current_status(
    emu: Emulator, graph_session: ServiceCommsSession
) -> None:
    tenant = emu.tenant_ids[0]
    overviews = await graph_session.graph(tenant).health_overviews().collect()
    legacy = {row["Workload"]: row for row in emu.dataset(tenant).current_status}
    assert {o.id for o in overviews} == set(legacy)
    for overview in overviews:
        assert overview.status is not None and overview.status.is_known
        assert overview.service == legacy[overview.id]["WorkloadDisplayName"]
        assert overview.status.value.lower() == legacy[overview.id]["Status"].lower()
        assert overview.issues == ()


async def test_expanded_issues_and_one_overview(
    emu: Emulator, graph_session: ServiceCommsSession
) -> None:
    graph = graph_session.graph(emu.tenant_ids[0])
    overviews = await graph.health_overviews(expand_issues=True).collect()
    assert graph_requests(emu)[-1][1] == {"$expand": "issues"}
    with_issues = [o for o in overviews if o.issues]
    assert with_issues
    one = await graph.health_overview(with_issues[0].id or "", expand_issues=True)
    assert one == with_issues[0]


async def test_issues_are_the_legacy_incidents(
    emu: Emulator, graph_session: ServiceCommsSession
) -> None:
    tenant = emu.tenant_ids[1]
    issues = await graph_session.graph(tenant).issues().collect()
    incident_ids = {m["Id"] for m in emu.dataset(tenant).messages if m["MessageType"] == "Incident"}
    ids = [i.id for i in issues]
    assert len(ids) == len(set(ids))
    assert incident_ids <= set(ids)
    assert all(i.posts and i.status is not None and i.status.is_known for i in issues)


async def test_paging_uses_prefer_maxpagesize_and_never_top(
    emu: Emulator, graph_session: ServiceCommsSession
) -> None:
    graph = graph_session.graph(emu.tenant_ids[0])
    everything = [i.id for i in await graph.issues().collect()]
    pages = [page async for page in graph.issues(page_size=7).pages()]
    assert [i.id for p in pages for i in p] == everything
    assert len(pages) == -(-len(everything) // 7)
    assert all(len(p) == 7 for p in pages[:-1])
    sent = graph_requests(emu)[-len(pages) :]
    assert all(headers.get("Prefer") == "odata.maxpagesize=7" for _, _, headers in sent)
    assert all("$top" not in query for _, query, _ in sent)


async def test_issue_filters(emu: Emulator, graph_session: ServiceCommsSession) -> None:
    graph = graph_session.graph(emu.tenant_ids[0])
    everything = await graph.issues().collect()
    service = everything[0].service or ""
    active = await graph.issues(service=service, is_resolved=False).collect()
    assert (
        graph_requests(emu)[-1][1]["$filter"] == f"service eq '{service}' and isResolved eq false"
    )
    assert {i.id for i in active} == {
        i.id for i in everything if i.service == service and i.is_resolved is False
    }
    incidents = await graph.issues(classification="Incident").collect()
    assert incidents and all(
        i.classification is ServiceHealthClassification.INCIDENT for i in incidents
    )
    stamps = sorted(i.last_modified_date_time for i in everything if i.last_modified_date_time)
    since = stamps[len(stamps) // 2]
    recent = await graph.issues(since=since).collect()
    assert {i.id for i in recent} == {
        i.id for i in everything if i.last_modified_date_time and i.last_modified_date_time >= since
    }
    raw = await graph.issues(
        filter="isResolved eq true", status=ServiceHealthStatus.SERVICE_RESTORED
    ).collect()
    assert all(i.is_resolved and i.status is ServiceHealthStatus.SERVICE_RESTORED for i in raw)


async def test_one_issue_and_its_report(emu: Emulator, graph_session: ServiceCommsSession) -> None:
    graph = graph_session.graph(emu.tenant_ids[0])
    issues = await graph.issues(is_resolved=True).collect()
    first = issues[0]
    assert await graph.issue(first.id or "") == first
    reports = []
    for issue in issues:
        try:
            reports.append(await graph.incident_report(issue.id or ""))
        except NotFoundError:
            continue
    assert reports and all(isinstance(r, bytes) and r for r in reports)
    with pytest.raises(NotFoundError):
        await graph.issue("EX000000")


async def test_messages_filters_and_attachments(
    emu: Emulator, graph_session: ServiceCommsSession
) -> None:
    graph = graph_session.graph(emu.tenant_ids[0])
    messages = await graph.messages().collect()
    centre_ids = {
        m["Id"]
        for m in emu.dataset(emu.tenant_ids[0]).messages
        if m["MessageType"] == "MessageCenter"
    }
    assert {m.id for m in messages} == centre_ids
    service = messages[0].services[0]
    by_service = await graph.messages(services=[service]).collect()
    assert graph_requests(emu)[-1][1]["$filter"] == f"services/any(x:x eq '{service}')"
    assert {m.id for m in by_service} == {m.id for m in messages if service in m.services}
    plan = await graph.messages(category=ServiceUpdateCategory.PLAN_FOR_CHANGE).collect()
    assert all(m.category is ServiceUpdateCategory.PLAN_FOR_CHANGE for m in plan)
    one = await graph.message(messages[0].id or "")
    assert one.id == messages[0].id and one.body is not None
    # The legacy post's links and action-by date become Graph's details and actionRequiredByDateTime.
    legacy = {m["Id"]: m for m in emu.dataset(emu.tenant_ids[0]).messages}
    for message in messages:
        sent = legacy[message.id or ""]
        assert message.detail("ExternalLink") == (sent["ExternalLink"] or None)
        assert message.detail("HelpLink") == (sent["HelpLink"] or None)
        assert (message.action_required_by_date_time is None) == (
            sent["ActionRequiredByDate"] is None
        )
    assert any(m.detail("ExternalLink") for m in messages)
    assert any(m.action_required_by_date_time for m in messages)
    with_files = [m for m in messages if m.has_attachments]
    assert with_files
    attachments = await graph.message_attachments(with_files[0].id or "").collect()
    assert attachments and all(a.id and a.name for a in attachments)
    content = await graph.attachment_content(with_files[0].id or "", attachments[0].id or "")
    assert isinstance(content, bytes) and content
    archive = await graph.attachments_archive(with_files[0].id or "")
    with zipfile.ZipFile(BytesIO(archive)) as zipped:
        assert len(zipped.namelist()) == len(attachments)


async def test_viewpoint_actions_need_a_user_token(emu: Emulator) -> None:
    tenant = emu.tenant_ids[0]
    async with ServiceCommsSession(
        token=app_token, api="graph", base_url=emu.graph_base_url
    ) as app:
        message = (await app.graph(tenant).messages(max_items=1).collect())[0]
        assert message.view_point is None
        with pytest.raises(DelegatedPermissionRequiredError, match="delegated permission"):
            await app.graph(tenant).mark_read([message.id or ""])
    async with ServiceCommsSession(
        token=user_token, api="graph", base_url=emu.graph_base_url
    ) as user:
        graph = user.graph(tenant)
        await graph.mark_read([message.id or ""])
        await graph.favorite([message.id or ""])
        seen = await graph.message(message.id or "")
        assert seen.view_point is not None
        assert seen.view_point.is_read is True and seen.view_point.is_favorited is True
        await graph.mark_unread([message.id or ""])
        assert (await graph.message(message.id or "")).view_point.is_read is False  # type: ignore[union-attr]


async def test_a_graph_scan_covers_every_tenant(
    emu: Emulator, graph_session: ServiceCommsSession
) -> None:
    finished = {}
    async with graph_session.scan(emu.tenant_ids, lambda g: g.issues(), concurrency=2) as results:
        async for result in results:
            if isinstance(result, TenantDone):
                finished[result.tenant_id] = result.count
    assert set(finished) == set(emu.tenant_ids)
    assert all(count > 0 for count in finished.values())


async def test_graph_errors_are_typed(emu: Emulator) -> None:
    async with ServiceCommsSession(
        token="not-a-graph-token", api="graph", base_url=emu.graph_base_url
    ) as session:
        with pytest.raises(UnauthorizedError) as info:
            await session.graph("contoso.com").issues().collect()
    assert info.value.code == "InvalidAuthenticationToken"
    assert info.value.request_id


async def test_apis_are_not_mixed_up(emu: Emulator, graph_session: ServiceCommsSession) -> None:
    # On Graph, tenant() is the legacy operations rebuilt from Graph (tests/test_over_graph.py).
    assert type(graph_session.tenant("contoso.com")).__name__ == "LegacyOverGraphClient"
    async with ServiceCommsSession(token="t", base_url=emu.base_url) as legacy:
        with pytest.raises(TypeError, match="api='graph'"):
            legacy.graph("contoso.com")


async def test_bad_graph_arguments_fail_before_any_request(
    emu: Emulator, graph_session: ServiceCommsSession
) -> None:
    graph = graph_session.graph(emu.tenant_ids[0])
    with pytest.raises(ValueError, match="page_size must be from 1 to 1000"):
        graph.issues(page_size=1001)
    with pytest.raises(ValueError, match="classification must be one of"):
        graph.issues(classification="outage")
    with pytest.raises(ValueError, match="issue_id"):
        await graph.issue("../messages")
    with pytest.raises(ValueError, match="services must name at least one"):
        graph.messages(services=[])
    with pytest.raises(TypeError, match="not one string"):
        await graph.mark_read("MC1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        graph.messages(since=emu.config.now_utc.replace(tzinfo=None) - timedelta(days=1))
    assert graph_requests(emu) == []


def test_every_cloud_has_graph_hosts() -> None:

    expected = {
        "public": "https://graph.microsoft.com/v1.0",
        "gcc": "https://graph.microsoft.com/v1.0",
        "gcc-high": "https://graph.microsoft.us/v1.0",
        "dod": "https://dod-graph.microsoft.us/v1.0",
        "china": "https://microsoftgraph.chinacloudapi.cn/v1.0",
    }
    for name, base in expected.items():
        session = ServiceCommsSession(token="t", api="graph", cloud=name)
        assert str(session.base_url) == base
        assert session.scope == base.removesuffix("/v1.0") + "/.default"


async def test_graph_faults_target_a_tenant_and_transient_ones_are_ridden_through() -> None:
    config = EmulatorConfig(seed=11, tenants=3, messages_per_tenant=200)
    async with Emulator(config) as clean:
        expected = {t: [i.id for i in await _issues(clean, t)] for t in clean.tenant_ids}
    broken = clean.tenant_ids[0]
    faults = fault_middleware(
        FaultPlan(
            rate=0.3,
            seed=5,
            kinds=(Fault.THROTTLE_429, Fault.UNAVAILABLE, Fault.RESET_DURING_BODY),
            retry_after=0.0,
            tenant_faults={broken: Fault.FORBIDDEN},
        )
    )
    async with Emulator(config, middlewares=[faults]) as emu:
        async with ServiceCommsSession(
            token=app_token,
            api="graph",
            base_url=emu.graph_base_url,
            retry=RetryPolicy(attempts=10),
        ) as session:
            with pytest.raises(ForbiddenError):
                await session.graph(broken).issues().collect()
            for tenant in emu.tenant_ids[1:]:
                got = await session.graph(tenant).issues(page_size=5).collect()
                assert [i.id for i in got] == expected[tenant]
    assert faults.injected[Fault.FORBIDDEN] == 1
    assert sum(faults.injected.values()) > 1


async def _issues(emu: Emulator, tenant: str) -> list[Any]:
    async with ServiceCommsSession(
        token=app_token, api="graph", base_url=emu.graph_base_url
    ) as session:
        return await session.graph(tenant).issues().collect()
