"""The emulator's timeline: a world that moves with a clock, seen over loopback HTTP with aiohttp.

What a watcher relies on: the same seed and clock give the same bytes; both APIs see one world; the
ground truth (``Emulator.changes``) is exactly what a poll after every change observes;
``$filter=lastModifiedDateTime ge`` returns exactly what changed; ``Date`` is the world's time; and
Message Center data looks like today's real traffic.
"""

from __future__ import annotations

import collections
import email.utils
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from servicecomms_async._wire import parse_datetime
from servicecomms_async.emulator import (
    Change,
    Emulator,
    EmulatorConfig,
    ManualClock,
    ScaledClock,
    TimelineConfig,
)
from servicecomms_async.emulator.command import CommandError, build_parser, clock_from
from servicecomms_async.emulator.graph.convert import graph_status
from servicecomms_async.emulator.messagecenter import legacy_severity

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "realworld" / "graph"
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
ISSUE_EVENT_FIELDS = {
    "status",
    "classification",
    "title",
    "impactDescription",
    "feature",
    "featureGroup",
    "endDateTime",
    "posts",
}
MESSAGE_EVENT_FIELDS = {
    "title",
    "body",
    "category",
    "severity",
    "tags",
    "services",
    "isMajorChange",
    "actionRequiredByDateTime",
    "endDateTime",
    "details",
}
OFFICIAL_ISSUE_STATUSES = {
    "investigating",
    "serviceDegradation",
    "serviceInterruption",
    "restoringService",
    "extendedRecovery",
    "verifyingService",
    "investigationSuspended",
    "serviceRestored",
    "falsePositive",
    "postIncidentReviewPublished",
}
MAX_PAGE = {"Prefer": "odata.maxpagesize=1000"}


def config(**kw: Any) -> EmulatorConfig:
    kw.setdefault("seed", 11)
    kw.setdefault("tenants", 4)
    kw.setdefault("messages_per_tenant", 120)
    kw.setdefault("now", NOW)
    return EmulatorConfig(**kw)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class World:
    """What one tenant's Graph and legacy routes serve at one instant, fetched over HTTP."""

    def __init__(self, http: aiohttp.ClientSession, emu: Emulator, tenant: str) -> None:
        self.http, self.emu, self.tenant = http, emu, tenant
        self.dates: list[str] = []

    async def raw(
        self, url: str, params: dict[str, str] | None = None, *, graph: bool = True
    ) -> tuple[int, bytes]:
        token = self.emu.graph_token(self.tenant) if graph else "any-token"
        headers = {"Authorization": f"Bearer {token}", **MAX_PAGE}
        async with self.http.get(url, params=params, headers=headers) as resp:
            self.dates.append(resp.headers["Date"])
            return resp.status, await resp.read()

    async def graph(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        url: str | None = f"{self.emu.graph_base_url}/admin/serviceAnnouncement/{path}"
        items: list[dict[str, Any]] = []
        while url is not None:
            status, body = await self.raw(url, params)
            assert status == 200, body
            doc = json.loads(body)
            items += doc["value"]
            url, params = doc.get("@odata.nextLink"), None
        return items

    async def legacy(self, op: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        url = f"{self.emu.base_url}/{self.tenant}/ServiceComms/{op}"
        if op != "Messages":
            status, body = await self.raw(url, params, graph=False)
            assert status == 200, body
            rows: list[dict[str, Any]] = json.loads(body)["value"]
            return rows
        items: list[dict[str, Any]] = []
        while True:
            query = {**(params or {}), "$top": "100", "$skip": str(len(items))}
            status, body = await self.raw(url, query, graph=False)
            assert status == 200, body
            page = json.loads(body)["value"]
            items += page
            if len(page) < 100:
                return items

    async def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every issue, message and overview, by kind and id."""
        return {
            "issue": {i["id"]: i for i in await self.graph("issues")},
            "message": {m["id"]: m for m in await self.graph("messages")},
            "service": {s["id"]: s for s in await self.graph("healthOverviews")},
        }


def expected_events(
    before: dict[str, dict[str, dict[str, Any]]], after: dict[str, dict[str, dict[str, Any]]]
) -> dict[tuple[str, str], tuple[str, tuple[str, ...], bool]]:
    """What a watcher diffing two snapshots must emit: (kind, id) -> (event, fields, silent)."""
    out: dict[tuple[str, str], tuple[str, tuple[str, ...], bool]] = {}
    for kind in ("issue", "message", "service"):
        old_items, new_items = before[kind], after[kind]
        assert set(old_items) <= set(new_items), f"{kind} vanished"
        for entity_id, new in new_items.items():
            old = old_items.get(entity_id)
            if old == new:
                continue
            if old is None:
                assert kind != "service"
                fields = tuple(k for k in new if k != "lastModifiedDateTime")
                event = "issue.opened" if kind == "issue" else "message.published"
                out[(kind, entity_id)] = (event, fields, False)
                continue
            fields = tuple(k for k in new if k != "lastModifiedDateTime" and old[k] != new[k])
            silent = (
                kind != "service" and old["lastModifiedDateTime"] == new["lastModifiedDateTime"]
            )
            if kind == "service":
                event = "service.status_changed"
            elif kind == "message":
                event = "message.updated"
                assert set(fields) <= MESSAGE_EVENT_FIELDS, fields
            elif new["isResolved"] and not old["isResolved"]:
                event = "issue.resolved"
            elif old["isResolved"] and not new["isResolved"]:
                event = "issue.reopened"
            else:
                event = "issue.updated"
                assert set(fields) <= ISSUE_EVENT_FIELDS, fields
            out[(kind, entity_id)] = (event, fields, silent)
    return out


def as_expected(changes: list[Change]) -> dict[tuple[str, str], tuple[str, tuple[str, ...], bool]]:
    out = {(c.kind, c.entity_id): (c.event, c.fields, c.silent) for c in changes}
    assert len(out) == len(changes), "one change per entity per instant"
    return out


def horizon(emu: Emulator, tenant: str, days: float) -> list[datetime]:
    """The instants at which the tenant's world changes in the next ``days``."""
    until = emu.now + timedelta(days=days)
    return sorted({c.time for c in emu.changes(tenant, emu.now, until)})


def imf(when: datetime) -> str:
    return email.utils.format_datetime(when.replace(microsecond=0), usegmt=True)


# -- determinism and the static world --


async def bodies(http: aiohttp.ClientSession, emu: Emulator, tenant: str) -> list[bytes]:
    world = World(http, emu, tenant)
    base = f"{emu.graph_base_url}/admin/serviceAnnouncement"
    legacy = f"{emu.base_url}/{tenant}/ServiceComms"
    out = []
    for url, graph in [
        (f"{base}/issues", True),
        (f"{base}/messages", True),
        (f"{base}/healthOverviews", True),
        (f"{legacy}/Messages", False),
        (f"{legacy}/CurrentStatus", False),
        (f"{legacy}/HistoricalStatus", False),
    ]:
        status, body = await world.raw(url, graph=graph)
        assert status == 200
        out.append(body.replace(emu.origin.encode(), b"ORIGIN"))  # the port differs
    return out


async def test_equal_config_and_clock_serve_identical_bytes(http: aiohttp.ClientSession) -> None:
    async with (
        Emulator(config(), clock=ManualClock()) as one,
        Emulator(config(), clock=ManualClock()) as two,
    ):
        for step in (timedelta(hours=5), timedelta(days=1, minutes=7), timedelta(days=3)):
            one.advance(step)
            two.advance(step)
            for tenant in one.tenant_ids[:2]:
                assert await bodies(http, one, tenant) == await bodies(http, two, tenant)
                assert one.changes(tenant) == two.changes(tenant)
        assert one.changes(one.tenant_ids[0]), "the world did not move"


async def test_a_clock_at_its_start_serves_the_static_world_byte_for_byte(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(config()) as static, Emulator(config(), clock=ManualClock()) as moving:
        for tenant in static.tenant_ids:
            assert await bodies(http, static, tenant) == await bodies(http, moving, tenant)
        assert static.changes(static.tenant_ids[0]) == []
        assert moving.changes(moving.tenant_ids[0]) == []
        assert static.now == moving.now == NOW
        with pytest.raises(RuntimeError, match="ManualClock"):
            static.advance(timedelta(minutes=1))


def test_advance_is_checked() -> None:
    emu = Emulator(config(), clock=ManualClock())
    with pytest.raises(ValueError, match="negative"):
        emu.advance(timedelta(seconds=-1))
    with pytest.raises(TypeError, match="timedelta"):
        emu.advance(60)  # type: ignore[arg-type]
    assert emu.advance(timedelta(hours=2)) == NOW + timedelta(hours=2) == emu.now
    with pytest.raises(TypeError, match="clock"):
        Emulator(config(), clock=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="silent_ratio"):
        TimelineConfig(silent_ratio=2)
    with pytest.raises(ValueError, match="messages_per_day"):
        TimelineConfig(messages_per_day=-1)


async def test_a_scaled_clock_runs_by_itself_and_refuses_advance() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(0)
    async with Emulator(config(), clock=ScaledClock(speed=36_000)) as emu:
        first = emu.now
        with pytest.raises(RuntimeError, match="ManualClock"):
            emu.advance(timedelta(minutes=1))
        await anyio.sleep(0.02)  # 12 emulated minutes at 36,000x
        assert emu.now - first >= timedelta(minutes=10) and first >= NOW


def test_the_command_has_a_timeline_speed_flag() -> None:
    args = build_parser().parse_args(["--timeline-speed", "60", "--posts-per-day", "9"])
    clock = clock_from(args)
    assert isinstance(clock, ScaledClock) and clock.speed == 60
    assert clock_from(build_parser().parse_args([])) is None
    with pytest.raises(CommandError, match="--timeline-speed"):
        clock_from(build_parser().parse_args(["--timeline-speed", "-1"]))


# -- the world moves, in both APIs, as the ground truth says --


async def test_changes_are_exactly_what_a_poll_after_every_change_sees(
    http: aiohttp.ClientSession,
) -> None:
    cfg = config(timeline=TimelineConfig(silent_ratio=0.2, tenant_incidents_per_day=1.0))
    async with Emulator(cfg, clock=ManualClock()) as emu:
        events: collections.Counter[str] = collections.Counter()
        for tenant in emu.tenant_ids[:3]:
            world = World(http, emu, tenant)
            before = await world.snapshot()
            for at in horizon(emu, tenant, 2.5):
                previous = emu.now
                emu.advance(at - emu.now)
                after = await world.snapshot()
                truth = emu.changes(tenant, previous, emu.now)
                assert all(c.time == at and c.tenant == tenant.lower() for c in truth)
                assert expected_events(before, after) == as_expected(truth), at
                events.update(c.event for c in truth)
                before = after
        assert set(events) >= {
            "issue.opened",
            "issue.updated",
            "issue.resolved",
            "message.published",
            "service.status_changed",
        }, events


async def test_both_apis_see_the_same_world(http: aiohttp.ClientSession) -> None:
    async with Emulator(config(), clock=ManualClock()) as emu:
        emu.advance(timedelta(days=2, hours=3))
        for tenant in emu.tenant_ids:
            world = World(http, emu, tenant)
            issues = await world.graph("issues")
            messages = await world.graph("messages")
            legacy = await world.legacy("Messages")
            assert [i["id"] for i in issues] == [
                m["Id"] for m in legacy if m["MessageType"] == "Incident"
            ]
            assert [m["id"] for m in messages] == [
                m["Id"] for m in legacy if m["MessageType"] == "MessageCenter"
            ]
            by_id = {m["Id"]: m for m in legacy}
            for issue in issues:
                old = by_id[issue["id"]]
                assert graph_status(old["Status"]) == issue["status"]
                assert (old["Title"], old["LastUpdatedTime"], old["EndTime"]) == (
                    issue["title"],
                    issue["lastModifiedDateTime"],
                    issue["endDateTime"],
                )
                assert [p["PublishedTime"] for p in old["Messages"]] == [
                    p["createdDateTime"] for p in issue["posts"]
                ]
            for message in messages:
                old = by_id[message["id"]]
                assert (old["Title"], old["MessageTagNames"], old["StartTime"]) == (
                    message["title"],
                    message["tags"],
                    message["startDateTime"],
                )
                assert old["Severity"].lower() == message["severity"]
            overviews = {o["id"]: o["status"] for o in await world.graph("healthOverviews")}
            current = await world.legacy("CurrentStatus")
            assert overviews == {r["Workload"]: graph_status(r["Status"]) for r in current}
            active = {i["id"] for i in issues if not i["isResolved"]}
            assert {x for r in current for x in r["IncidentIds"]} == active
            history = await world.legacy("HistoricalStatus")
            today = {
                x
                for r in history
                if r["StatusTime"].startswith("2024-05-03")
                for x in r["IncidentIds"]
            }
            assert active <= today


async def test_lastmodified_filter_returns_exactly_what_changed(
    http: aiohttp.ClientSession,
) -> None:
    cfg = config(timeline=TimelineConfig(silent_ratio=0.25, messages_per_day=12))
    async with Emulator(cfg, clock=ManualClock()) as emu:
        emu.advance(timedelta(days=1))
        for tenant in emu.tenant_ids[:3]:
            world = World(http, emu, tenant)
            for hours in (0, 7, 20):
                cursor = emu.now
                emu.advance(timedelta(hours=hours, minutes=13))
                stamp = cursor.isoformat().replace("+00:00", "Z")
                text = f"lastModifiedDateTime ge {stamp}"
                moved = {
                    (c.kind, c.entity_id)
                    for c in emu.changes(tenant, cursor - timedelta(milliseconds=1), emu.now)
                    if not c.silent and c.kind != "service"
                }
                for kind, path in (("issue", "issues"), ("message", "messages")):
                    got = await world.graph(path, {"$filter": text})
                    everything = await world.graph(path)
                    newer = [
                        i["id"]
                        for i in everything
                        if parse_datetime(i["lastModifiedDateTime"]) >= cursor
                    ]
                    assert [i["id"] for i in got] == newer
                    assert set(newer) == {i for k, i in moved if k == kind}, (tenant, hours, kind)
                    # The emulator counted what it served: only the changed items.
                    assert emu.requests[-2].items == len(got)


async def test_the_date_header_is_the_worlds_time(http: aiohttp.ClientSession) -> None:
    async with Emulator(config(), clock=ManualClock()) as emu:
        world = World(http, emu, emu.tenant_ids[0])
        base = f"{emu.graph_base_url}/admin/serviceAnnouncement"
        for step in (timedelta(0), timedelta(hours=1, seconds=30, milliseconds=900)):
            emu.advance(step)
            await world.graph("issues")
            await world.legacy("CurrentStatus")
            missing, _ = await world.raw(f"{base}/issues/EX1")
            assert missing == 404
            assert world.dates[-3:] == [imf(emu.now)] * 3
            assert email.utils.parsedate_to_datetime(world.dates[-1]) <= emu.now
    async with Emulator(config()) as static:
        world = World(http, static, static.tenant_ids[0])
        await world.graph("issues")
        sent = email.utils.parsedate_to_datetime(world.dates[-1])
        assert abs(sent - datetime.now(timezone.utc)) < timedelta(minutes=5)  # the wall clock


async def test_the_timeline_uses_every_official_value(http: aiohttp.ClientSession) -> None:
    cfg = config(
        tenants=2,
        timeline=TimelineConfig(global_incidents_per_day=40, messages_per_day=20),
    )
    async with Emulator(cfg, clock=ManualClock()) as emu:
        statuses: set[str] = set()
        classes: set[str] = set()
        origins: set[str] = set()
        post_types: set[str] = set()
        content_types: set[str] = set()
        events: collections.Counter[str] = collections.Counter()
        tenant = emu.tenant_ids[0]
        world = World(http, emu, tenant)
        for _ in range(16):
            emu.advance(timedelta(hours=9))
            for issue in await world.graph(
                "issues", {"$filter": f"lastModifiedDateTime ge {NOW.isoformat()[:19]}Z"}
            ):
                statuses.add(issue["status"])
                classes.add(issue["classification"])
                origins.add(issue["origin"])
                post_types |= {p["postType"] for p in issue["posts"]}
                content_types |= {p["description"]["contentType"] for p in issue["posts"]}
        events.update(c.event for c in emu.changes(tenant))
        changed = collections.Counter(f for c in emu.changes(tenant) for f in c.fields)
        assert statuses == OFFICIAL_ISSUE_STATUSES
        assert classes == {"advisory", "incident"} and changed["classification"]
        assert origins == {"microsoft", "thirdParty", "customer"}
        assert post_types == {"regular", "quick", "strategic"}
        assert content_types == {"html", "text"}
        assert changed["title"] and changed["impactDescription"] and changed["feature"]
        assert set(events) == {
            "issue.opened",
            "issue.updated",
            "issue.resolved",
            "issue.reopened",
            "message.published",
            "message.updated",
            "service.status_changed",
        }
        assert all(c.silent is False for c in emu.changes(tenant))  # silent_ratio defaults to 0
        reviewed = [
            c
            for c in emu.changes(tenant)
            if c.event == "issue.updated" and c.fields == ("status", "posts")
        ]
        assert reviewed  # includes post-incident reviews on resolved issues


async def test_message_center_posts_are_published_back_dated_and_updated(
    http: aiohttp.ClientSession,
) -> None:
    cfg = config(timeline=TimelineConfig(messages_per_day=30))
    async with Emulator(cfg, clock=ManualClock()) as emu:
        emu.advance(timedelta(days=12))
        tenant = emu.tenant_ids[0]
        changes = emu.changes(tenant)
        published = {c.entity_id: c.time for c in changes if c.event == "message.published"}
        updated = {c.entity_id for c in changes if c.event == "message.updated"}
        assert published and updated
        messages = {m["id"]: m for m in await World(http, emu, tenant).graph("messages")}
        for message_id, at in published.items():
            message = messages[message_id]
            assert list(message) == REAL_MESSAGE_KEYS
            start = parse_datetime(message["startDateTime"])
            assert start < at - timedelta(minutes=59)  # back-dated: "new" is not startDateTime
            body = message["body"]["content"]
            if message_id in updated:
                assert message["title"].startswith("(Updated) ")
                assert message["tags"][0] == "Updated message"
                assert re.match(r"<p>Updated [A-Z][a-z]+ \d{1,2}, \d{4}: ", body), body[:60]
            else:
                assert not message["title"].startswith("(Updated) ")
                assert not body.startswith("<p>Updated ")


# -- Message Center realism (with and without a clock) --


def test_message_center_data_looks_like_todays_real_traffic() -> None:
    emu = Emulator(config(tenants=1, messages_per_tenant=20_000))
    messages = emu.graph_dataset(emu.tenant_ids[0]).messages
    assert len(messages) > 3_000
    assert all(list(m) == REAL_MESSAGE_KEYS for m in messages)
    severity = collections.Counter(m["severity"] for m in messages)
    assert severity["normal"] / len(messages) > 0.99
    assert set(severity) <= {"normal", "high", "critical"}
    names = collections.Counter(d["name"] for m in messages for d in m["details"])
    top = {name for name, _ in names.most_common(4)}
    assert top == {"Summary", "RoadmapIds", "Platforms", "FeatureStatusJson"}, names
    assert set(names) <= top | {"ExternalLink", "BlogLink", "HelpLink"}
    assert sum(not m["details"] for m in messages) > len(messages) // 3
    assert sum(m["hasAttachments"] for m in messages) < len(messages) * 0.06
    assert all(m["viewPoint"] is None and m["body"]["contentType"] == "html" for m in messages)
    # The severities follow the real ratio (358,195 / 758 / 191) over many draws.
    draws = collections.Counter(
        legacy_severity((n * 0x9E3779B97F4A7C15) & (2**64 - 1)) for n in range(200_000)
    )
    assert 300 < draws["High"] < 560 and 60 < draws["Critical"] < 160


@pytest.mark.skipif(
    not list(REALWORLD.glob("apollomsp_*.json")), reason="../shared/realworld is not here"
)
def test_message_center_data_matches_the_real_captures() -> None:
    real = [m for path in REALWORLD.glob("apollomsp_*.json") for m in json.loads(path.read_text())]
    emu = Emulator(config(tenants=2))
    ours = [m for t in emu.tenant_ids for m in emu.graph_dataset(t).messages]
    assert {tuple(m) for m in real} == {tuple(m) for m in ours} == {tuple(REAL_MESSAGE_KEYS)}
    for field in ("category", "severity"):
        assert {m[field] for m in ours} <= {m[field] for m in real} | {"critical"}
    real_names = {d["name"] for m in real for d in m["details"]}
    assert {d["name"] for m in ours for d in m["details"]} <= real_names
    real_tags = {t for m in real for t in m["tags"]}
    assert {t for m in ours for t in m["tags"]} <= real_tags
    for m in ours:
        assert parse_datetime(m["endDateTime"]) > parse_datetime(m["startDateTime"])
