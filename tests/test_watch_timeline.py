"""The watcher against the emulator's moving world: every change the emulator made becomes exactly the
event the rules name, and nothing else; the cursor is the server's clock; a full resync catches changes
whose lastModifiedDateTime did not move; a quiet poll moves only the changed items."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from servicecomms_async import RetryPolicy, ServiceCommsSession
from servicecomms_async.emulator import (
    Change,
    Emulator,
    EmulatorConfig,
    ManualClock,
    TimelineConfig,
)
from servicecomms_async.watch import MemoryStateStore, SQLiteStateStore, Watcher, WatchEvent

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # far from this machine's clock on purpose
BUSY = TimelineConfig(global_incidents_per_day=24, tenant_incidents_per_day=2, messages_per_day=16)


def session_for(emu: Emulator, **options: Any) -> ServiceCommsSession[Any]:
    return ServiceCommsSession(
        token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url, **options
    )


def expected_events(changes: Iterable[Change]) -> tuple[Counter[tuple[str, str, str]], set[Any]]:
    """What one poll after these changes must emit, per (tenant, type, entity): several changes of one
    entity make one event (resolved/reopened first), a new entity is opened (then resolved if it is
    by now). Services whose status changed more than once may have come back: either is right."""
    by_entity: dict[tuple[str, str, str], list[Change]] = defaultdict(list)
    for change in changes:
        by_entity[(change.tenant, change.kind, change.entity_id)].append(change)
    expected: Counter[tuple[str, str, str]] = Counter()
    either: set[Any] = set()
    for (tenant, kind, entity), seen in by_entity.items():
        events = [c.event for c in seen]
        if kind == "service":
            if len(seen) > 1:
                either.add((tenant, "service.status_changed", entity))
            else:
                expected[(tenant, "service.status_changed", entity)] += 1
            continue
        if kind == "message":
            first = "message.published" in events
            expected[(tenant, "message.published" if first else "message.updated", entity)] += 1
            continue
        net = events.count("issue.resolved") - events.count("issue.reopened")
        if "issue.opened" in events:
            expected[(tenant, "issue.opened", entity)] += 1
            if net == 1:
                expected[(tenant, "issue.resolved", entity)] += 1
        elif net == 1:
            expected[(tenant, "issue.resolved", entity)] += 1
        elif net == -1:
            expected[(tenant, "issue.reopened", entity)] += 1
        else:
            expected[(tenant, "issue.updated", entity)] += 1
    return expected, either


def observed(events: Iterable[WatchEvent]) -> Counter[tuple[str, str, str]]:
    return Counter((e.tenant_id, str(e.type), e.subject) for e in events)


async def test_every_change_is_exactly_its_event_and_nothing_else() -> None:
    config = EmulatorConfig(seed=5, tenants=10, messages_per_tenant=80, now=START, timeline=BUSY)
    async with Emulator(config, clock=ManualClock()) as emu, session_for(emu) as session:
        watcher = Watcher(session, emu.tenant_ids, MemoryStateStore())
        await watcher.poll()  # the baseline
        checked = Counter[str]()
        for step in range(36):  # six hours, a poll every ten minutes
            before = emu.now
            emu.advance(timedelta(minutes=10))
            changes = [c for t in emu.tenant_ids for c in emu.changes(t, since=before)]
            assert not any(c.silent for c in changes)
            expected, either = expected_events(changes)
            got = observed(await watcher.poll())
            for key in either:
                got.pop(key, None)
            assert got == expected, f"step {step} at {emu.now}"
            checked.update(kind for _, kind, _ in expected.elements())
        assert await watcher.poll() == []  # an unchanged world: nothing
    # The scenario covered every kind of event the emulator makes.
    assert {"issue.opened", "issue.updated", "issue.resolved", "message.published"} <= set(checked)
    assert "service.status_changed" in checked


async def test_the_cursor_is_the_server_clock_not_this_machine() -> None:
    config = EmulatorConfig(seed=6, tenants=2, messages_per_tenant=30, now=START, timeline=BUSY)
    async with Emulator(config, clock=ManualClock()) as emu, session_for(emu) as session:
        store = MemoryStateStore()
        watcher = Watcher(session, emu.tenant_ids, store, full_resync=timedelta(days=2))
        await watcher.poll()
        emu.advance(timedelta(hours=3))
        await watcher.poll()
        for state in await store.tenant_states():
            assert state.cursor is not None
            assert abs(state.cursor - emu.now) <= timedelta(seconds=1)  # the Date header's second
        emu.requests.clear()
        emu.advance(timedelta(minutes=30))
        await watcher.poll()
        asked = {r.query["$filter"] for r in emu.requests if r.path.endswith("/issues")}
    # The previous poll's server time, minus the 10-minute overlap.
    since = emu.now - timedelta(minutes=30) - timedelta(minutes=10)
    assert asked == {f"lastModifiedDateTime ge {since:%Y-%m-%dT%H:%M:%SZ}"}


async def test_a_full_resync_catches_changes_whose_last_modified_did_not_move() -> None:
    silent = TimelineConfig(
        global_incidents_per_day=24,
        tenant_incidents_per_day=2,
        messages_per_day=16,
        silent_ratio=0.5,
    )
    config = EmulatorConfig(seed=8, tenants=6, messages_per_tenant=40, now=START, timeline=silent)
    async with Emulator(config, clock=ManualClock()) as emu, session_for(emu) as session:
        watcher = Watcher(session, emu.tenant_ids, MemoryStateStore(), full_resync=3600)
        await watcher.poll()
        seen: set[tuple[str, str]] = set()
        silent_changes: list[Change] = []
        resynced_at = emu.now
        for _ in range(18):  # three hours; each tenant's resync is due at least twice
            before = emu.now
            emu.advance(timedelta(minutes=10))
            silent_changes += [
                c for t in emu.tenant_ids for c in emu.changes(t, since=before) if c.silent
            ]
            seen |= {(e.tenant_id, e.subject) for e in await watcher.poll()}
        # Changes made more than an hour before the end were seen by a resync by now.
        old = [c for c in silent_changes if c.time <= emu.now - timedelta(hours=1, minutes=10)]
        assert old, "the timeline made no silent change: the scenario proves nothing"
        missed = [c for c in old if (c.tenant, c.entity_id) not in seen]
        assert missed == []
        assert resynced_at < emu.now


async def test_a_quiet_tenant_moves_only_what_changed(tmp_path: Path) -> None:
    """About 1,000 Message Center posts and a change now and then: a steady-state poll transfers the
    items changed since its cursor (minus the overlap) and nothing else, in one request per kind."""
    config = EmulatorConfig(seed=9, tenants=1, messages_per_tenant=5000, now=START, timeline=BUSY)
    async with Emulator(config, clock=ManualClock()) as emu, session_for(emu) as session:
        tenant = emu.tenant_ids[0]
        assert len(emu.graph_dataset(tenant).messages) >= 900
        async with SQLiteStateStore(tmp_path / "watch.db") as store:
            watcher = Watcher(session, [tenant], store, full_resync=timedelta(days=2))
            await watcher.poll()
            emu.advance(timedelta(hours=1))
            await watcher.poll()
            cursor = emu.now
            while not emu.changes(tenant, since=cursor):
                emu.advance(timedelta(minutes=10))
            emu.requests.clear()
            events = await watcher.poll()
            served = {r.path.rsplit("/", 1)[-1]: r.items for r in emu.requests}
    window = emu.changes(tenant, since=cursor - timedelta(minutes=10))
    for kind, resource in (("issue", "issues"), ("message", "messages")):
        changed = {c.entity_id for c in window if c.kind == kind}
        assert served[resource] == len(changed), resource
    assert set(served) == {"healthOverviews", "issues", "messages"}  # one request per kind
    assert events and served["messages"] + served["issues"] < 50


async def test_a_poll_that_fails_midway_catches_up_next_time() -> None:
    failing = {"on": False}

    @web.middleware
    async def break_messages(request: web.Request, handler: Any) -> web.StreamResponse:
        if failing["on"] and request.path.endswith("/messages"):
            return web.json_response({"error": {"code": "Boom", "message": "no"}}, status=500)
        return await handler(request)

    config = EmulatorConfig(seed=10, tenants=4, messages_per_tenant=40, now=START, timeline=BUSY)
    async with Emulator(config, clock=ManualClock(), middlewares=[break_messages]) as emu:
        async with session_for(emu, retry=RetryPolicy(attempts=1)) as session:
            watcher = Watcher(session, emu.tenant_ids, MemoryStateStore())
            await watcher.poll()
            before = emu.now
            emu.advance(timedelta(hours=2))
            failing["on"] = True
            lost = await watcher.poll()
            assert {str(e.type) for e in lost} == {"tenant.failed"}
            failing["on"] = False
            emu.advance(timedelta(minutes=10))
            caught_up = await watcher.poll()
        changes = [c for t in emu.tenant_ids for c in emu.changes(t, since=before)]
    expected, either = expected_events(changes)
    got = observed(e for e in caught_up if e.type.value != "tenant.recovered")
    for key in either:
        got.pop(key, None)
    assert got == expected
    assert sum(e.type.value == "tenant.recovered" for e in caught_up) == len(emu.tenant_ids)


async def test_the_days_the_watcher_saw_win_over_the_reconstruction(tmp_path: Path) -> None:
    config = EmulatorConfig(seed=11, tenants=3, messages_per_tenant=60, now=START, timeline=BUSY)
    async with Emulator(config, clock=ManualClock()) as emu, session_for(emu) as session:
        tenant = emu.tenant_ids[0]
        async with SQLiteStateStore(tmp_path / "watch.db") as store:
            watcher = Watcher(session, emu.tenant_ids, store)
            for _ in range(6):
                await watcher.poll()
                emu.advance(timedelta(hours=1))
            rows = await session.tenant(tenant, history=store).historical_status().collect()
            observed_days = await store.daily_statuses(tenant, emu.now.date(), emu.now.date())
    today = [r for r in rows if r.status_time is not None and r.status_time.date() == START.date()]
    older = [r for r in rows if r.status_time is not None and r.status_time.date() < START.date()]
    assert today and older
    assert {r.extra["source"] for r in today} == {"observed"}
    assert {r.extra["source"] for r in older} == {"reconstructed"}
    by_service = {d.service_id: d for d in observed_days}
    for row in today:
        record = by_service[str(row.workload)]
        assert set(row.incident_ids) == set(record.incident_ids)
