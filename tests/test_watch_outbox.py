"""The outbox against real receivers on loopback: signed webhooks that fail with 503 and 429 +
Retry-After, a receiver that always fails (dead, then replayed), per-tenant order, rollups across
tenants, message.action_due, and the CLI's deliveries and replay."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

from servicecomms_async import ServiceCommsSession
from servicecomms_async.cli import main
from servicecomms_async.emulator import Emulator, EmulatorConfig, ManualClock, TimelineConfig
from servicecomms_async.watch import SQLiteStateStore, Watcher
from servicecomms_async.watch.http_sinks import WebhookSink
from servicecomms_async.watch.outbox import DeliveryPolicy, Outbox

pytestmark = pytest.mark.anyio

SECRET = "whsec_" + base64.b64encode(b"outbox-test-signing-key-32-bytes").decode()
START = datetime(2026, 4, 6, 8, 0, tzinfo=timezone.utc)
BUSY = TimelineConfig(global_incidents_per_day=48, tenant_incidents_per_day=2, messages_per_day=24)


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """Standard Webhooks v1, from the spec: HMAC-SHA256 of "id.timestamp.body", base64."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        part.startswith("v1,") and hmac.compare_digest(part[3:], expected)
        for part in headers["webhook-signature"].split()
    )


@dataclass
class Receiver:
    """A webhook receiver on loopback; ``plan`` answers each request (None: 200)."""

    plan: Callable[[dict[str, Any], int], web.Response | None] = lambda event, n: None
    received: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    answers: list[tuple[float, str, int]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers["Content-Type"] == "application/cloudevents+json"
        assert verify(SECRET, request.headers, body), "bad signature"
        event = json.loads(body)
        assert request.headers["webhook-id"] == event["id"]
        attempt = sum(1 for _, i, _ in self.answers if i == event["id"])
        answer = self.plan(event, attempt) or web.Response(status=200)
        self.answers.append((time.monotonic(), event["id"], answer.status))
        if answer.status < 300:
            self.received.append((time.monotonic(), event["id"], event))
        return answer


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


async def cli(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The command line in a thread (it runs its own event loop), while the receiver serves here."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        return main(list(argv), stdout=out, stderr=err, environ=environ or {})

    code = await anyio.to_thread.run_sync(run)
    return code, out.getvalue(), err.getvalue()


def webhook(receiver: Receiver, *, rollup: bool = False, name: str = "webhook") -> WebhookSink:
    return WebhookSink(receiver.url, name=name, secret=SECRET, rollup=rollup, timeout=5.0)


async def test_every_event_arrives_through_503_and_429_with_the_same_id(
    tmp_path: Path, receiver: Receiver
) -> None:
    # The first events of the first tenant: 503 once, then 429 with Retry-After once, then fine.
    answered: list[str] = []

    def flaky(event: dict[str, Any], attempt: int) -> web.Response | None:
        answered.append(event["id"])
        if len(answered) == 1:
            return web.Response(status=503)
        if len(answered) == 2:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return None

    receiver.plan = flaky
    config = EmulatorConfig(seed=3, tenants=3, messages_per_tenant=30, now=START)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url
        ) as s,
        SQLiteStateStore(tmp_path / "w.db") as store,
    ):
        outbox = Outbox(
            store, [webhook(receiver)], DeliveryPolicy(backoff_initial=0.05, backoff_max=0.1)
        )
        await outbox.open()
        events = await Watcher(s, emu.tenant_ids, store, baseline="all").poll()
        report = await outbox.deliver(within=60)
        await outbox.aclose()
        assert await store.deliveries() == []
        assert await store.pending_events() == []  # delivered to every sink: acknowledged
    assert report.delivered == {"webhook": len(events)} and report.pending == {"webhook": 0}
    assert sorted(i for _, i, _ in receiver.received) == sorted(e.id for e in events)
    by_id: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for at, event_id, status in receiver.answers:
        by_id[event_id].append((at, status))
    first = answered[0]
    # The same event, with the same webhook-id, until it went through: 503, 429, then 200.
    assert [status for _, status in by_id[first]] == [503, 429, 200]
    assert all([s for _, s in a] == [200] for i, a in by_id.items() if i != first)
    # The retry after the 429 waited its Retry-After (1 s); nothing was sent meanwhile.
    (_, _), (throttled, _), (retried, _) = by_id[first]
    assert retried - throttled >= 0.95
    assert not [at for at, _, _ in receiver.answers if throttled < at < retried]


async def test_per_tenant_order_is_kept_through_a_retry(tmp_path: Path, receiver: Receiver) -> None:
    config = EmulatorConfig(seed=4, tenants=4, messages_per_tenant=30, now=START)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url
        ) as s,
        SQLiteStateStore(tmp_path / "w.db") as store,
    ):
        slow = emu.tenant_ids[0]
        first_of_slow: list[str] = []

        def once(event: dict[str, Any], attempt: int) -> web.Response | None:
            if event["source"].endswith(slow) and not first_of_slow:
                first_of_slow.append(event["id"])
                return web.Response(status=500)
            return None

        receiver.plan = once
        outbox = Outbox(
            store, [webhook(receiver)], DeliveryPolicy(backoff_initial=0.3, backoff_max=0.3)
        )
        await outbox.open()
        events = await Watcher(s, emu.tenant_ids, store, baseline="all").poll()
        await outbox.deliver(within=30)
        await outbox.aclose()
    order = {e.id: n for n, e in enumerate(events)}
    arrived: dict[str, list[int]] = defaultdict(list)
    for _, event_id, event in receiver.received:
        arrived[event["source"]].append(order[event_id])
    assert all(seq == sorted(seq) for seq in arrived.values())  # each tenant in order
    assert len(receiver.received) == len(events)
    # The failed one was retried after its backoff, and nothing of its tenant got ahead of it.
    failed_at = next(at for at, i, status in receiver.answers if status == 500)
    retry_at = next(at for at, i, _ in receiver.received if i == first_of_slow[0])
    assert retry_at > failed_at  # full jitter: anywhere up to the backoff bound


async def test_a_receiver_that_always_fails_ends_dead_and_replay_delivers(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.plan = lambda event, attempt: web.Response(status=503)
    state = tmp_path / "w.db"
    config = EmulatorConfig(seed=5, tenants=2, messages_per_tenant=8, now=START)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url
        ) as s,
        SQLiteStateStore(state) as store,
    ):
        policy = DeliveryPolicy(attempts=3, backoff_initial=0.01, backoff_max=0.02)
        outbox = Outbox(store, [webhook(receiver)], policy)
        await outbox.open()
        events = await Watcher(s, emu.tenant_ids, store, baseline="all").poll()
        assert events
        report = await outbox.deliver(within=30)
        await outbox.aclose()
    assert report.dead["webhook"] == len(events) and report.pending["webhook"] == 0
    code, listed, _ = await cli("watch", "deliveries", "--state", str(state), "--format", "json")
    assert code == 0
    rows = json.loads(listed)
    assert {r["eventId"] for r in rows} == {e.id for e in events}
    assert all(r["state"] == "dead" for r in rows)
    assert all(r["attempts"] == 3 and "503" in r["lastError"] for r in rows)
    assert len(receiver.answers) == 3 * len(events)
    assert set(rows[0]) >= {"eventId", "sink", "state", "attempts", "lastError"}
    # It recovers: replay --dead delivers them.
    receiver.plan = lambda event, attempt: None
    environ = {"SERVICECOMMS_WEBHOOK_SECRET": SECRET}
    sink = f"webhook=webhook:{receiver.url}"
    code, out, err = await cli(
        "watch", "replay", "--state", str(state), "--sink", sink, "--dead", environ=environ
    )
    assert code == 0, err
    assert f"replayed {len(events)} deliveries" in out
    assert {i for _, i, _ in receiver.received} == {e.id for e in events}
    _, listed, _ = await cli("watch", "deliveries", "--state", str(state), "--format", "json")
    assert json.loads(listed) == []


async def test_rollups_post_one_change_once_then_follow_up(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = EmulatorConfig(seed=6, tenants=12, messages_per_tenant=30, now=START, timeline=BUSY)
    async with (
        Emulator(config, clock=ManualClock()) as emu,
        ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url
        ) as s,
        SQLiteStateStore(tmp_path / "w.db") as store,
    ):
        rollups, per_tenant = webhook(receiver, rollup=True, name="chat"), []
        outbox = Outbox(store, [rollups])
        await outbox.open()
        half = emu.tenant_ids[:6]
        early = Watcher(s, half, store)
        everyone = Watcher(s, emu.tenant_ids, store)
        await everyone.poll()
        await outbox.roll_up()
        await outbox.deliver(within=10)
        receiver.received.clear()
        emu.advance(timedelta(hours=3))
        per_tenant += await early.poll()  # half the tenants see the changes first
        first = await outbox.roll_up()
        per_tenant += await everyone.poll()  # then the rest
        later = await outbox.roll_up()
        await outbox.deliver(within=10)
        await outbox.aclose()
    assert first and all(e.rollup and e.source == "/rollup" for e in first + later)
    by_change: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in per_tenant:
        by_change[(str(e.type), e.subject)].add(e.tenant_id)
    for event in first:
        data = event.data
        assert data["affectedTenants"] == sorted(data["affectedTenants"])
        assert data["tenantCount"] == len(data["affectedTenants"])
        assert set(data["affectedTenants"]) <= set(half)
    follow_ups = [e for e in later if "tenantsAdded" in e.data]
    assert follow_ups, "no change reached the other tenants later"
    for event in follow_ups:
        assert set(event.data["tenantsAdded"]).isdisjoint(half)
        assert set(event.data["affectedTenants"]) == by_change[(str(event.type), event.subject)]
    # What the receiver got: each rollup once, never a per-tenant event.
    got = Counter(i for _, i, _ in receiver.received)
    assert set(got) == {e.id for e in first + later} and set(got.values()) == {1}


async def test_action_due_fires_once_per_threshold(tmp_path: Path) -> None:
    config = EmulatorConfig(seed=7, tenants=4, messages_per_tenant=30, now=START, timeline=BUSY)
    async with (
        Emulator(config, clock=ManualClock()) as emu,
        # 24 emulated days in seconds of real time: Graph's budget is for real minutes.
        ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url, budget=None
        ) as s,
        SQLiteStateStore(tmp_path / "w.db") as store,
    ):
        watcher = Watcher(s, emu.tenant_ids, store, full_resync=timedelta(days=60))
        polls: list[datetime] = []
        due: list[Any] = []
        for _ in range(12 * 8):  # 24 days, every 6 hours
            events = await watcher.poll()
            polls.append(emu.now)
            due += [(emu.now, e) for e in events if e.type.value == "message.action_due"]
            emu.advance(timedelta(hours=6))
    assert due, "no post came due in 24 days: the scenario proves nothing"
    keys = Counter(
        (e.tenant_id, e.subject, e.data["thresholdDays"], e.data["dueDateTime"]) for _, e in due
    )
    assert set(keys.values()) == {1}  # once per threshold
    for at, event in due:
        deadline = datetime.fromisoformat(event.data["dueDateTime"].replace("Z", "+00:00"))
        crossing = deadline - timedelta(days=event.data["thresholdDays"])
        before = max((p for p in polls if p < at), default=None)
        assert crossing <= at < deadline  # within the threshold, not past due
        assert before is None or crossing > before  # first seen crossed in this very poll


async def test_teams_and_slack_receivers_get_payloads_within_their_limits(tmp_path: Path) -> None:
    """What the chat receivers parse, for every event type with 200 posts of 5 KB and as a
    400-tenant rollup, stays within the platforms' limits."""
    from servicecomms_async.watch.http_sinks import SlackSink, TeamsSink

    from .test_watch_templates import (
        _issue,
        _message,
        _post,
        check_slack,
        check_teams,
        every_event_type,
        with_rollups,
    )

    got: dict[str, list[dict[str, Any]]] = {"teams": [], "slack": []}

    async def take(request: web.Request) -> web.Response:
        got[request.match_info["kind"]].append(json.loads(await request.read()))
        return web.Response(status=202 if request.match_info["kind"] == "teams" else 200)

    app = web.Application()
    app.router.add_post("/{kind}", take)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    posts = [_post(n, f"Update {n}: " + ("status text & more " * 260)[:5000]) for n in range(200)]
    service = {"service": "Exchange Online", "status": "serviceOperational", "id": "Exchange"}
    events = with_rollups(every_event_type(_issue(posts=posts), _message(), service), count=400)
    teams, slack = TeamsSink(f"{base}/teams"), SlackSink(f"{base}/slack")
    try:
        # Paced (4 and 1 a second): deliver a sample of each family rather than all of them.
        sample = [e for e in events if e.rollup][:4] + [e for e in events if not e.rollup][:2]
        await teams.deliver(sample)
        await slack.deliver(sample[:3])
    finally:
        await teams.aclose()
        await slack.aclose()
        await runner.cleanup()
    assert len(got["teams"]) == len(sample) and len(got["slack"]) == 3
    for payload in got["teams"]:
        check_teams(payload)
        assert (
            len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()) <= 28_000
        )
    for payload in got["slack"]:
        check_slack(payload)
        assert len(payload["text"]) <= 40_000 and len(payload["blocks"]) <= 50
    assert any("400 tenants" in json.dumps(p) for p in got["teams"])
