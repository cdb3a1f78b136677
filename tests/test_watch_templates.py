"""Teams and Slack messages for watch events: every event type, per tenant and rolled up, from the
emulator's Graph data, the real watcher and real captures, within the platforms' limits whatever the
content (200 posts of 5 KB, a 200 KB post, 400 tenants, hostile text), and server text never markup."""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servicecomms_async import ServiceCommsSession
from servicecomms_async.emulator import Emulator, EmulatorConfig, ManualClock, TimelineConfig
from servicecomms_async.watch import EventType, MemoryStateStore, Watcher, WatchEvent
from servicecomms_async.watch.diff import Observation, diff_entity
from servicecomms_async.watch.templates import (
    SLACK_MAX_BLOCKS,
    SLACK_MAX_BUTTON_TEXT,
    SLACK_MAX_CONTEXT_ELEMENTS,
    SLACK_MAX_FIELD,
    SLACK_MAX_FIELDS,
    SLACK_MAX_HEADER,
    SLACK_MAX_SECTION,
    SLACK_MAX_TEXT,
    TEAMS_MAX_BYTES,
    clean_text,
    cut,
    html_to_text,
    slack_message,
    teams_message,
    teams_size,
)

ADMIN = "https://admin.microsoft.com"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL = SHARED / "fixtures" / "real"
REALWORLD = SHARED / "realworld" / "graph"

SIZES: dict[str, int] = {}  # the largest payloads seen, for the report at the end


# -- the limits, checked on what a receiver would parse --------------------------------------------------

TEAMS_ELEMENTS = {"TextBlock", "FactSet", "Container", "ColumnSet", "Column"}
TEAMS_ACTIONS = {"Action.OpenUrl"}


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _clean(strings: Iterator[str]) -> None:
    for text in strings:
        text.encode("utf-8")  # no lone surrogate: valid UTF-8
        for char in text:
            assert char == "\n" or unicodedata.category(char) != "Cc", repr(text[:80])
            assert char not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", repr(text)


def _walk_card(node: Any, urls: list[str], texts: list[str]) -> None:
    """Every element and action of an Adaptive Card, checked for its type and required fields."""
    assert isinstance(node, dict)
    kind = node["type"]
    if kind in TEAMS_ACTIONS:
        assert isinstance(node["title"], str) and node["title"]
        urls.append(node["url"])
        return
    assert kind in TEAMS_ELEMENTS, kind
    if kind == "TextBlock":
        assert isinstance(node["text"], str) and node["text"].strip()
        texts.append(node["text"])
    elif kind == "FactSet":
        assert node["facts"]
        for fact in node["facts"]:
            assert set(fact) == {"title", "value"}
            texts.extend((fact["title"], fact["value"]))
    elif kind == "Container":
        for item in node["items"]:
            _walk_card(item, urls, texts)
    elif kind == "ColumnSet":
        for column in node.get("columns", []):
            _walk_card(column, urls, texts)
    elif kind == "Column":
        for item in node.get("items", []):
            _walk_card(item, urls, texts)
    for action in node.get("actions", []):
        _walk_card(action, urls, texts)


def check_teams(payload: dict[str, Any], label: str = "teams") -> tuple[list[str], list[str]]:
    """The payload parsed back from its bytes, within every limit; returns (urls, texts)."""
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert len(raw) == teams_size(payload)
    assert len(raw) <= TEAMS_MAX_BYTES, len(raw)
    SIZES[label] = max(SIZES.get(label, 0), len(raw))
    message = json.loads(raw.decode("utf-8"))
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in attachment and attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    assert set(card) <= {"$schema", "type", "version", "body", "actions", "msteams"}
    urls: list[str] = []
    texts: list[str] = []
    assert card["body"]
    for element in card["body"]:
        _walk_card(element, urls, texts)
    for action in card.get("actions", []):
        _walk_card(action, urls, texts)
    assert all(url.startswith(ADMIN + "/#/") for url in urls), urls
    _clean(_strings(message))
    return urls, texts


SLACK_BLOCKS = {"header", "section", "context", "divider", "actions"}


def check_slack(payload: dict[str, Any], label: str = "slack") -> tuple[list[str], list[str]]:
    """The payload parsed back, within Slack's limits; returns (urls, mrkdwn texts, with ``text``)."""
    message = json.loads(json.dumps(payload, ensure_ascii=False))
    assert set(message) == {"text", "blocks"}
    text = message["text"]
    assert isinstance(text, str) and text.strip()
    assert len(text) <= SLACK_MAX_TEXT and _utf16(text) <= SLACK_MAX_TEXT
    blocks = message["blocks"]
    assert 0 < len(blocks) <= SLACK_MAX_BLOCKS
    SIZES[label] = max(SIZES.get(label, 0), len(json.dumps(blocks, ensure_ascii=False)))
    SIZES[label + " text"] = max(SIZES.get(label + " text", 0), len(text))
    urls: list[str] = []
    mrkdwn = [text]

    def text_object(obj: dict[str, Any], limit: int, *, plain_only: bool = False) -> None:
        assert obj["type"] in (("plain_text",) if plain_only else ("plain_text", "mrkdwn"))
        assert isinstance(obj["text"], str) and obj["text"].strip()
        assert len(obj["text"]) <= limit and _utf16(obj["text"]) <= limit
        if obj["type"] == "plain_text":
            assert obj.get("emoji") is False  # :shortcodes: from the server stay text
        else:
            mrkdwn.append(obj["text"])

    for block in blocks:
        kind = block["type"]
        assert kind in SLACK_BLOCKS, kind
        if kind == "header":
            text_object(block["text"], SLACK_MAX_HEADER, plain_only=True)
        elif kind == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                text_object(block["text"], SLACK_MAX_SECTION)
            fields = block.get("fields", [])
            assert len(fields) <= SLACK_MAX_FIELDS
            for item in fields:
                text_object(item, SLACK_MAX_FIELD)
        elif kind == "context":
            assert 0 < len(block["elements"]) <= SLACK_MAX_CONTEXT_ELEMENTS
            for item in block["elements"]:
                text_object(item, SLACK_MAX_SECTION)
        elif kind == "actions":
            for button in block["elements"]:
                assert button["type"] == "button"
                text_object(button["text"], SLACK_MAX_BUTTON_TEXT, plain_only=True)
                assert len(button["url"]) <= 3000
                urls.append(button["url"])
    assert all(url.startswith(ADMIN + "/#/") for url in urls), urls
    # mrkdwn (the notification text included) never holds a raw <, > or & of its own: no mention,
    # channel ping or link can come out of it.
    for item in mrkdwn:
        assert "<" not in item and ">" not in item, item[:200]
        assert item.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").count("&") == 0
    _clean(_strings(message))
    return urls, mrkdwn


def check_both(event: WatchEvent, label: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    teams = teams_message(event)
    slack = slack_message(event)
    family = label or str(event.type) + (" rollup" if event.rollup else "")
    teams_urls, _ = check_teams(teams, "teams " + family)
    slack_urls, _ = check_slack(slack, "slack " + family)
    if str(event.type).startswith(("issue.", "message.")):
        # The issue or post stays one click away, however much was cut.
        assert len(teams_urls) == 1 and teams_urls == slack_urls
        assert event.subject in teams_urls[0] or len(event.subject) > 128
    return teams, slack


def teams_texts(payload: dict[str, Any]) -> str:
    return "\n".join(check_teams(payload)[1])


def slack_texts(payload: dict[str, Any]) -> str:
    return "\n".join(s for s in _strings(payload["blocks"]))


# -- events, as the watcher makes them ----------------------------------------------------------------------


def event_for(
    type: EventType,
    entity: dict[str, Any],
    *,
    tenant: str = "contoso.onmicrosoft.com",
    previous: dict[str, Any] | None = None,
    changes: Sequence[str] = (),
    new_posts: Sequence[Any] | None = None,
    baseline: bool = False,
    **extra: Any,
) -> WatchEvent:
    data: dict[str, Any] = {
        "tenantId": tenant,
        "entity": entity,
        "previous": previous,
        "changes": list(changes),
        **extra,
        "baseline": baseline,
    }
    if str(type).startswith("issue."):
        data["newPosts"] = (
            list(new_posts) if new_posts is not None else list(entity.get("posts", []))
        )
    return WatchEvent(
        id=uuid.uuid4().hex,
        type=type,
        tenant_id=tenant,
        subject=str(entity.get("id", tenant)),
        time=NOW,
        data=data,
    )


def rollup_of(
    event: WatchEvent, tenants: Sequence[str], *, added: Sequence[str] = ()
) -> WatchEvent:
    data = {k: v for k, v in event.data.items() if k != "tenantId"}
    data["affectedTenants"] = sorted(tenants)
    data["tenantCount"] = len(tenants)
    if added:
        data["tenantsAdded"] = sorted(added)
    return WatchEvent(
        id=uuid.uuid4().hex,
        type=event.type,
        tenant_id="",
        subject=event.subject,
        time=event.time,
        data=data,
        rollup=True,
    )


def tenants(count: int, *, long: bool = False) -> list[str]:
    if long:
        return [f"tenant-{n:04d}-{'x' * 80}.onmicrosoft.com" for n in range(count)]
    return [str(uuid.UUID(int=n + 1)) for n in range(count)]


def every_event_type(
    issue: dict[str, Any], message: dict[str, Any], service: dict[str, Any]
) -> list[WatchEvent]:
    """One event of each type (and a baseline and a follow-up form) over these entities."""
    updated = dict(issue, status="serviceDegradation", isResolved=False)
    resolved = dict(issue, status="serviceRestored", isResolved=True)
    posts = issue.get("posts") or []
    later_message = dict(message, title="(Updated) " + str(message.get("title")))
    down = dict(service, status="serviceDegradation")
    error = {
        "type": "ClientResponseError",
        "status": 503,
        "code": None,
        "message": "Service Unavailable",
    }
    return [
        event_for(EventType.ISSUE_OPENED, updated),
        event_for(EventType.ISSUE_OPENED, updated, baseline=True),
        event_for(
            EventType.ISSUE_UPDATED,
            updated,
            previous=dict(updated, status="investigating", posts=posts[:-1]),
            changes=["status", "posts"],
            new_posts=posts[-1:],
        ),
        event_for(EventType.ISSUE_RESOLVED, resolved, previous=updated, changes=["status", "isResolved"], new_posts=[]),
        event_for(EventType.ISSUE_REOPENED, updated, previous=resolved, changes=["status", "isResolved"], new_posts=[]),
        event_for(EventType.MESSAGE_PUBLISHED, message),
        event_for(EventType.MESSAGE_UPDATED, later_message, previous=message, changes=["title", "body"]),
        event_for(
            EventType.MESSAGE_ACTION_DUE,
            dict(message, actionRequiredByDateTime="2026-12-08T00:00:00Z"),
            thresholdDays=7,
            dueDateTime="2026-12-08T00:00:00Z",
        ),
        event_for(EventType.SERVICE_STATUS_CHANGED, down, previous=service, changes=["status"]),
        event_for(EventType.SERVICE_STATUS_CHANGED, down, changes=["status"], baseline=True),
        WatchEvent(
            id="f1", type=EventType.TENANT_FAILED, tenant_id="contoso.com", subject="contoso.com", time=NOW,
            data={"tenantId": "contoso.com", "error": error, "lastSuccess": "2026-12-01T11:00:00Z"},
        ),
        WatchEvent(
            id="r1", type=EventType.TENANT_RECOVERED, tenant_id="contoso.com", subject="contoso.com", time=NOW,
            data={"tenantId": "contoso.com", "failuresInARow": 3, "lastError": error},
        ),
    ]  # fmt: skip


def with_rollups(events: Sequence[WatchEvent], count: int = 12) -> list[WatchEvent]:
    out = list(events)
    for event in events:
        if str(event.type).startswith("tenant."):
            continue
        out.append(rollup_of(event, tenants(count)))
        out.append(rollup_of(event, tenants(count + 3), added=tenants(count + 3)[count:]))
    return out


@pytest.fixture(scope="module")
def emulator_entities() -> tuple[
    Emulator, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]
]:
    emu = Emulator(EmulatorConfig(seed=11, tenants=3, messages_per_tenant=40))
    issues: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for tenant in emu.tenant_ids:
        data = emu.graph_dataset(tenant)
        issues += data.issues
        messages += data.messages
        services += data.health_overviews
    return emu, issues, messages, services  # fmt: skip


def load_values(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return data
    return list(data["value"]) if "value" in data else [data]


# -- every event type, from the emulator and from real captures -------------------------------------------


def test_every_event_type_from_the_emulator_fits_both_platforms(emulator_entities: Any) -> None:
    _, issues, messages, services = emulator_entities
    seen: set[str] = set()
    for issue, message, service in zip(issues[:15], messages[:15], services[:15], strict=False):
        for event in with_rollups(every_event_type(issue, message, service)):
            check_both(event)
            seen.add(str(event.type))
    assert seen == {str(t) for t in EventType}


def test_every_emulator_entity_renders_through_the_real_diff(emulator_entities: Any) -> None:
    emu, *_ = emulator_entities
    for tenant in emu.tenant_ids:
        seen = Observation(tenant, NOW, baseline=True, baseline_mode="all")
        data = emu.graph_dataset(tenant)
        kinds = (
            ("issue", data.issues),
            ("message", data.messages),
            ("service", data.health_overviews),
        )
        for kind, items in kinds:
            for item in items:
                for event in diff_entity(kind, item["id"], None, item, seen):  # type: ignore[arg-type]
                    check_both(event)


@pytest.mark.parametrize(
    ("issues_file", "messages_file", "services_file"),
    [
        (REAL / "graph_issues.json", REAL / "graph_messages.json", REAL / "graph_healthoverviews.json"),
        (REAL / "graph_issue_MO226784.json", REAL / "graph_message_MC172851.json", REAL / "graph_healthoverviews_expand_issues.json"),
        (REALWORLD / "cli_m365_issues.json", REALWORLD / "cli_m365_messages.json", REALWORLD / "cli_m365_healthoverviews.json"),
        (REALWORLD / "cli_m365_issues.json", REALWORLD / "apollomsp_mc_messages_subset.json", REALWORLD / "cli_m365_healthoverviews.json"),
        (REALWORLD / "cli_m365_issues.json", REALWORLD / "apollomsp_mc_messages_history_subset.json", REALWORLD / "cli_m365_healthoverviews.json"),
    ],
)  # fmt: skip
def test_real_captures_render_within_the_limits(
    issues_file: Path, messages_file: Path, services_file: Path
) -> None:
    issues, messages, services = (
        load_values(p) for p in (issues_file, messages_file, services_file)
    )
    if not (issues and messages and services):
        pytest.skip("the shared real captures are not here")
    count = max(len(issues), len(messages))
    for n in range(count):
        issue, message, service = (
            issues[n % len(issues)],
            messages[n % len(messages)],
            services[n % len(services)],
        )
        for event in with_rollups(every_event_type(issue, message, service), count=5):
            check_both(event, "real " + str(event.type))
        teams = teams_message(event_for(EventType.MESSAGE_PUBLISHED, message))
        body = teams_texts(teams)
        assert str(message["id"]) in body
        assert "<p>" not in body and "<br" not in body  # HTML became text
        slack = slack_message(event_for(EventType.MESSAGE_PUBLISHED, message))
        assert "<p>" not in slack_texts(slack)  # fmt: skip


@pytest.mark.anyio
async def test_what_the_real_watcher_emits_renders_within_the_limits() -> None:
    """The watcher against the emulator's moving world, with one tenant failing for a while: every
    event it emits (and their rollups) renders within the limits."""
    broken = {"tenant": ""}

    def token(tenant_id: str) -> str:
        if tenant_id == broken["tenant"]:
            raise RuntimeError("the credential for this tenant is gone")
        return Emulator.graph_token(tenant_id)

    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    busy = TimelineConfig(
        global_incidents_per_day=24, tenant_incidents_per_day=2, messages_per_day=16
    )
    config = EmulatorConfig(seed=5, tenants=4, messages_per_tenant=30, now=start, timeline=busy)
    async with Emulator(config, clock=ManualClock()) as emu:
        async with ServiceCommsSession(
            token=token, api="graph", base_url=emu.graph_base_url
        ) as session:
            watcher = Watcher(session, emu.tenant_ids, MemoryStateStore(), baseline="all")
            events = list(await watcher.poll())
            for _ in range(3):
                emu.advance(timedelta(hours=8))
                events += await watcher.poll()
            broken["tenant"] = emu.tenant_ids[0]
            events += await watcher.poll()
            broken["tenant"] = ""
            events += await watcher.poll()
    types: set[str] = set()
    for event in events:
        check_both(event, "watcher " + str(event.type))
        types.add(str(event.type))
        if not str(event.type).startswith("tenant."):
            check_both(rollup_of(event, list(emu.tenant_ids)), "watcher rollup")
    assert {
        "issue.opened",
        "issue.updated",
        "message.published",
        "tenant.failed",
        "tenant.recovered",
    } <= types


# -- what each message says -------------------------------------------------------------------------------


def _issue(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "startDateTime": "2026-11-30T21:33:00Z",
        "endDateTime": None,
        "lastModifiedDateTime": "2026-12-01T07:39:05.679Z",
        "title": "Users can't send mail",
        "id": "EX123456",
        "impactDescription": "Users may be unable to send mail.",
        "classification": "incident",
        "origin": "microsoft",
        "status": "serviceDegradation",
        "service": "Exchange Online",
        "feature": "E-Mail and calendar access",
        "featureGroup": "E-Mail and calendar access",
        "isResolved": False,
        "details": [],
        "posts": [
            {
                "createdDateTime": "2026-12-01T07:39:05.679Z",
                "postType": "regular",
                "description": {"contentType": "html", "content": "Title: x\n\nUser Impact: y"},
            }
        ],
    }
    base.update(fields)
    return base


def _message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "startDateTime": "2026-11-28T12:50:00Z",
        "endDateTime": "2027-02-15T12:50:00Z",
        "lastModifiedDateTime": "2026-11-28T12:50:59.587Z",
        "title": "Microsoft Teams: new meeting options",
        "id": "MC900001",
        "category": "planForChange",
        "severity": "normal",
        "tags": ["User impact"],
        "isMajorChange": True,
        "actionRequiredByDateTime": None,
        "services": ["Microsoft Teams"],
        "hasAttachments": False,
        "viewPoint": None,
        "details": [],
        "body": {"contentType": "html", "content": "<p>Hello &amp; welcome</p><p>Second</p>"},
    }
    base.update(fields)
    return base


def test_title_lines_and_facts_say_what_happened() -> None:
    issue = _issue()
    opened = teams_texts(teams_message(event_for(EventType.ISSUE_OPENED, issue)))
    assert "Incident opened: EX123456 \u2014 Exchange Online" in opened
    assert "Service degradation" in opened and "contoso.onmicrosoft.com" in opened
    assert "2026\\-11\\-30 21:33 UTC" in opened or "2026-11-30 21:33 UTC" in opened
    baseline = teams_texts(teams_message(event_for(EventType.ISSUE_OPENED, issue, baseline=True)))
    assert "Incident open: EX123456" in baseline and "Already open when watching began." in baseline
    resolved = event_for(
        EventType.ISSUE_RESOLVED, _issue(isResolved=True, status="serviceRestored"),
        previous=issue, changes=["status", "isResolved"], new_posts=[],
    )  # fmt: skip
    text = teams_texts(teams_message(resolved))
    assert (
        "Incident resolved: EX123456" in text
        and "Service degradation \u2192 Service restored" in text
    )
    assert "status, isResolved" in text
    advisory = teams_texts(
        teams_message(event_for(EventType.ISSUE_REOPENED, _issue(classification="advisory")))
    )
    assert "Advisory reopened: EX123456" in advisory
    published = slack_message(event_for(EventType.MESSAGE_PUBLISHED, _message()))
    assert published["blocks"][0]["text"]["text"] == "New Message Center post: MC900001"
    assert "Hello & welcome\n\nSecond" in slack_texts(published)
    due = event_for(
        EventType.MESSAGE_ACTION_DUE,
        _message(),
        thresholdDays=1,
        dueDateTime="2026-12-02T00:00:00Z",
    )
    assert slack_message(due)["blocks"][0]["text"]["text"] == "Action due within 1 day: MC900001"
    assert "Action required by 2026-12-02 00:00 UTC." in slack_texts(slack_message(due))
    service = event_for(
        EventType.SERVICE_STATUS_CHANGED,
        {"service": "Exchange Online", "status": "serviceDegradation", "id": "Exchange"},
        previous={"service": "Exchange Online", "status": "serviceOperational", "id": "Exchange"},
        changes=["status"],
    )  # fmt: skip
    header = slack_message(service)["blocks"][0]["text"]["text"]
    assert header == "Service status changed: Exchange Online \u2014 Service degradation"
    assert "Before: Service operational" in slack_texts(slack_message(service))
    # fmt: on


def test_links_point_to_the_issue_and_the_post_in_the_admin_center() -> None:
    issue = teams_message(event_for(EventType.ISSUE_OPENED, _issue()))
    [action] = issue["attachments"][0]["content"]["actions"]
    assert action == {
        "type": "Action.OpenUrl",
        "title": "View in the admin center",
        "url": "https://admin.microsoft.com/#/servicehealth/:/alerts/EX123456",
    }
    post = slack_message(event_for(EventType.MESSAGE_UPDATED, _message()))
    [button] = next(b for b in post["blocks"] if b["type"] == "actions")["elements"]
    assert button["url"] == "https://admin.microsoft.com/#/MessageCenter/:/messages/MC900001"
    gov = teams_message(
        event_for(EventType.ISSUE_OPENED, _issue()), admin_center="https://portal.office365.us/"
    )
    assert gov["attachments"][0]["content"]["actions"][0]["url"].startswith(
        "https://portal.office365.us/#/servicehealth/"
    )
    odd = teams_message(event_for(EventType.ISSUE_OPENED, _issue(id="EX 1/../?x#y")))
    assert odd["attachments"][0]["content"]["actions"][0]["url"].endswith(
        "/alerts/EX%201%2F..%2F%3Fx%23y"
    )
    with pytest.raises(ValueError, match="admin_center"):
        teams_message(
            event_for(EventType.ISSUE_OPENED, _issue()), admin_center="javascript:alert(1)"
        )
    # fmt: on


def test_rollups_name_a_few_tenants_and_count_the_rest() -> None:
    per_tenant = event_for(EventType.ISSUE_OPENED, _issue())
    many = tenants(400, long=True)
    rollup = rollup_of(per_tenant, many)
    teams, slack = check_both(rollup, "400-tenant rollup")
    text = teams_texts(teams)
    assert "400 tenants" in text and "more" in text
    assert sum(1 for t in many if t.replace("-", "\\-") in text or t in text) < 400
    assert "400 tenants" in slack_texts(slack) and "more" in slack_texts(slack)
    follow = rollup_of(per_tenant, many, added=many[390:])
    teams, slack = check_both(follow, "400-tenant follow-up")
    assert "Now also in 10 more tenants (400 in all)." in teams_texts(teams)
    assert "Now also in 10 more tenants (400 in all)." in slack_texts(slack)
    assert "New tenants" in slack_texts(slack)
    assert "Now also in 10 more tenants (400 in all)" in slack["text"]


# -- budgets ---------------------------------------------------------------------------------------------


def _post(n: int, content: str) -> dict[str, Any]:
    stamp = (NOW - timedelta(minutes=200 - n)).isoformat().replace("+00:00", "Z")
    return {"createdDateTime": stamp, "postType": "regular", "description": {"contentType": "html", "content": content}}  # fmt: skip


def test_an_issue_with_200_posts_of_5_kb_fits_and_shows_the_newest() -> None:
    posts = [_post(n, f"Update {n}: " + ("status text & more " * 260)[:5000]) for n in range(200)]
    issue = _issue(posts=posts)
    for event in with_rollups(every_event_type(issue, _message(), {"service": "Exchange Online", "status": "serviceOperational", "id": "Exchange"}), count=400):  # fmt: skip
        check_both(event, "200 posts " + str(event.type))
    teams = teams_message(event_for(EventType.ISSUE_OPENED, issue))
    text = teams_texts(teams)
    assert "Update 199:" in text and "Update 198:" not in text
    assert "the newest of 200 new posts" in text


@pytest.mark.parametrize(
    "content",
    [
        "word " * 40_000,  # 200 KB
        "x" * 100_000,  # one word, no space
        "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
        * 20_000,  # astral ZWJ sequences
        "\U0001f1eb\U0001f1f7" * 30_000,  # flags
        'e\u0301"\\' * 30_000,  # combining marks and JSON escapes
        "*_[]`~<>#{}\\" * 20_000,  # every markdown character, escaped twice over
        "\u4e2d\u6587" * 50_000,  # 3-byte characters
    ],
    ids=["words", "one-word", "zwj", "flags", "combining", "markdown", "cjk"],
)
def test_huge_posts_are_cut_within_the_limits(content: str) -> None:
    for event in (
        event_for(EventType.ISSUE_UPDATED, _issue(posts=[_post(1, content)]), changes=["posts"]),
        event_for(
            EventType.MESSAGE_PUBLISHED, _message(body={"contentType": "html", "content": content})
        ),
        event_for(
            EventType.MESSAGE_PUBLISHED, _message(body={"contentType": "text", "content": content})
        ),
    ):
        for form in (event, rollup_of(event, tenants(400, long=True))):
            teams, slack = check_both(form, "huge posts")
            body = teams_texts(teams)
            assert "\u2026" in body and "The full text is in the admin center." in body
            assert "\u2026" in slack_texts(slack)


def test_every_field_huge_still_fits_with_the_link() -> None:
    """The worst case: every text of the entity is 100 KB of characters that grow when escaped."""
    hostile = ('"\\*<\U0001f600' * 20_000)[:100_000]
    issue = {key: hostile for key in _issue()} | {
        "id": "EX999999", "isResolved": False, "posts": [_post(n, hostile) for n in range(20)]
    }  # fmt: skip
    message = {key: hostile for key in _message()} | {"id": "MC999999", "body": {"contentType": "html", "content": hostile}}  # fmt: skip
    message["tags"] = [hostile] * 20
    message["services"] = [hostile] * 20
    service = {"service": hostile, "status": hostile, "id": "X"}
    for event in with_rollups(every_event_type(issue, message, service), count=400):
        check_both(event, "worst case")
    long_tenant = event_for(EventType.ISSUE_OPENED, issue, tenant="t" * 100_000)
    check_both(long_tenant, "worst case")
    huge_id = event_for(EventType.ISSUE_OPENED, dict(issue, id="EX" + "9" * 10_000))
    urls, _ = check_teams(teams_message(huge_id))
    assert urls == [ADMIN + "/#/servicehealth"]  # not a real id: the service health page


# -- hostile text -----------------------------------------------------------------------------------------

HOSTILE = (
    "<script>alert(1)</script></script> <@channel> <!here> <!channel> <@U012AB3CD> <#C123> "
    "[click me](https://evil.example/phish) **bold** __under__ _it_ ~strike~ `code` "
    "<https://evil.example|spoof> &amp; &lt;b&gt; \x00\x07\x1b[31m\x7f \u202eevil\u202c "
    "{{DATE(2026-01-01T00:00:00Z, SHORT)}} ${secret} :smile: \ud83d lone"
)


def test_hostile_text_is_shown_as_text_in_teams() -> None:
    issue = _issue(
        title=HOSTILE, impactDescription=HOSTILE, service=HOSTILE, posts=[_post(1, HOSTILE)]
    )
    message = _message(title=HOSTILE, body={"contentType": "html", "content": HOSTILE})
    for event in (
        event_for(EventType.ISSUE_OPENED, issue),
        event_for(EventType.MESSAGE_PUBLISHED, message),
        rollup_of(event_for(EventType.MESSAGE_PUBLISHED, message), [HOSTILE, "b.example"]),
    ):
        teams, _ = check_both(event, "hostile")
        urls, texts = check_teams(teams)
        joined = "\n".join(texts)
        assert "evil.example" not in "".join(urls)
        for raw in (
            "[click me](",
            "**bold**",
            "__under__",
            "_it_",
            "~strike~",
            "`code`",
            "{{DATE",
            "<!here>",
            "<@channel>",
        ):
            assert raw not in joined, raw
        assert "\\[click me\\](https://evil.example/phish)" in joined  # shown, escaped
        assert "\\*\\*bold\\*\\*" in joined
        assert "\\<!here\\>" in joined
    # HTML bodies lose their scripts; text bodies keep every character as text.
    html_message = _message(body={"contentType": "html", "content": HOSTILE})
    html_body = teams_texts(teams_message(event_for(EventType.MESSAGE_PUBLISHED, html_message)))
    assert "alert(1)" not in html_body
    text_message = _message(
        body={"contentType": "text", "content": "<script>alert(1)</script> a & b"}
    )
    text_body = teams_texts(teams_message(event_for(EventType.MESSAGE_PUBLISHED, text_message)))
    assert "\\<script\\>alert(1)\\</script\\> a & b" in text_body  # fmt: skip


def test_hostile_text_is_shown_as_text_in_slack() -> None:
    issue = _issue(
        title=HOSTILE,
        impactDescription=HOSTILE,
        service=HOSTILE,
        id="EX<!here>",
        posts=[_post(1, HOSTILE)],
    )
    message = _message(
        title=HOSTILE, id="MC&<@U1>", body={"contentType": "text", "content": HOSTILE}
    )
    for event in (
        event_for(EventType.ISSUE_OPENED, issue),
        event_for(EventType.MESSAGE_PUBLISHED, message),
        rollup_of(event_for(EventType.ISSUE_OPENED, issue), [HOSTILE, "b.example"]),
    ):
        slack = slack_message(event)
        urls, _ = check_slack(slack)  # mrkdwn: no raw <, >, & anywhere
        assert "evil.example" not in "".join(urls)
        assert "&lt;!here&gt;" in slack["text"] or "&lt;@U1&gt;" in slack["text"]
        # Server text sits in plain_text objects: Slack neither formats them nor turns <!here> or
        # <@U...> into a mention there.
        for block in slack["blocks"]:
            for obj in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
                if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                    assert "here" not in obj["text"] and "evil" not in obj["text"]
        shown = slack_texts(slack)
        assert "[click me](https://evil.example/phish)" in shown and "**bold**" in shown  # fmt: skip


def test_control_and_bidi_characters_are_removed_and_whitespace_collapsed() -> None:
    assert (
        clean_text("a\x00b\x07c \u202eevil\u202c\t\t d\r\n\r\n\r\n\r\ne\u00a0\u00a0f")
        == "abc evil d\n\ne f"
    )
    assert clean_text("\ud83d x") == "\ufffd x"
    assert (
        html_to_text("<p>a &amp; b</p><ul><li>one</li><li>two</li></ul><style>p{}</style>x")
        == "a & b\n\n\u2022 one\n\u2022 two\nx"
    )
    assert html_to_text("if a < b && c > d") == "if a < b && c > d"
    assert html_to_text("<p>unclosed <b>bold <script>alert(1)") == "unclosed bold"  # fmt: skip


# -- cuts -------------------------------------------------------------------------------------------------

# Each entry is one grapheme (a word is several: a cut may fall inside a word that has no space near).
GRAPHEMES = [
    "a", "b", " ", "\n", "e\u0301", "\u4e2d", "\U0001f600", "\U0001f44d\U0001f3fd", "\u2764\ufe0f",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f1eb\U0001f1f7", "1\ufe0f\u20e3",
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", '"', "\\",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(GRAPHEMES), max_size=300),
    limit=st.integers(min_value=1, max_value=400),
    utf16=st.booleans(),
)
def test_cuts_never_split_a_grapheme_and_stay_within_the_limit(
    parts: list[str], limit: int, utf16: bool
) -> None:
    text = "".join(parts)
    measure = _utf16 if utf16 else len
    result = cut(text, limit, measure=measure)
    assert measure(result) <= limit
    result.encode("utf-8")
    if measure(text) <= limit:
        assert result == text
        return
    assert result.endswith("\u2026")
    head = result[:-1]
    prefixes = {"".join(parts[:k]).rstrip() for k in range(len(parts) + 1)}
    assert head in prefixes, (head[-10:], limit)  # fmt: skip


def test_cuts_prefer_a_word_boundary() -> None:
    assert cut("alpha beta gamma delta", 14) == "alpha beta\u2026"
    assert cut("x" * 50, 10) == "x" * 9 + "\u2026"
    assert cut("short", 10) == "short"


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(max_size=400),
    body=st.text(max_size=3000),
    tenant_count=st.integers(min_value=0, max_value=450),
    kind=st.sampled_from([str(t) for t in EventType]),
)
def test_any_text_in_any_event_fits(title: str, body: str, tenant_count: int, kind: str) -> None:
    issue = _issue(title=title, service=title, posts=[_post(1, body * 10)])
    message = _message(title=title, body={"contentType": "html", "content": body * 10})
    entity = issue if kind.startswith("issue") else message
    event = event_for(EventType(kind), entity, thresholdDays=30, tenant=title or "t")
    check_both(event, "hypothesis")
    if tenant_count:
        check_both(rollup_of(event, [title + str(n) for n in range(tenant_count)]), "hypothesis")


def test_zz_report_the_largest_payloads(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        for label, size in sorted(SIZES.items(), key=lambda kv: -kv[1])[:12]:
            print(f"\n  {size:>6}  {label}", end="")
        print()
    assert all(
        size <= TEAMS_MAX_BYTES for label, size in SIZES.items() if label.startswith("teams")
    )


def test_an_event_type_this_version_does_not_know_still_renders() -> None:
    event = event_for(EventType("issue.pir_published"), _issue())
    teams, _ = check_both(event, "unknown type")
    assert "EX123456" in teams_texts(teams)
    other = event_for(EventType("vendor.something"), _issue())
    check_both(other, "unknown type")
