"""The SQLite state store: real files in tmp_path, real second processes, real kill -9."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest

from servicecomms_async.watch import sqlite as sqlite_store
from servicecomms_async.watch.events import EventType, WatchEvent
from servicecomms_async.watch.sqlite import APPLICATION_ID, SQLiteStateStore
from servicecomms_async.watch.store import (
    DailyStatus,
    PollCommit,
    Snapshot,
    StateStoreError,
    TenantState,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 2, 10, 15, 0, 123456, tzinfo=timezone.utc)
GUID = "0D3B2F4A-6C1E-4E5B-9A7D-1F2E3C4B5A69"


def event(n: int | str, tenant: str = GUID, **data: Any) -> WatchEvent:
    return WatchEvent(
        id=f"ev-{n}",
        type=EventType.ISSUE_UPDATED,
        tenant_id=tenant,
        subject=f"EX{n}",
        time=T0,
        data={"tenantId": tenant, "entity": {"id": f"EX{n}"}, "changes": ["status"], **data},
    )


def state(tenant: str = GUID, **fields: Any) -> TenantState:
    return TenantState(tenant_id=tenant, **fields)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


# -- round trips ----------------------------------------------------------------------------------------


async def test_a_new_file_gets_the_schema_wal_and_application_id(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    async with SQLiteStateStore(path) as store:
        assert await store.tenant_states() == []
        assert await store.pending_events() == []
    with raw(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_store.SCHEMA_VERSION == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tenants", "snapshots", "events", "daily", "sinks", "deliveries", "rollups"} <= tables


async def test_an_empty_file_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    path.touch()
    async with SQLiteStateStore(path) as store:
        await store.commit(PollCommit(state=state()))
    async with SQLiteStateStore(path, readonly=True) as store:
        assert [s.tenant_id for s in await store.tenant_states()] == [GUID]


async def test_tenant_state_round_trips_and_tenant_ids_compare_case_insensitively(
    tmp_path: Path,
) -> None:
    full = state(
        cursor=T0,
        last_success=T0 - timedelta(seconds=1),
        last_attempt=T0 + timedelta(microseconds=1),
        failures_in_a_row=3,
        last_error={
            "type": "ThrottledError",
            "status": 429,
            "code": None,
            "message": "slow down é",
        },
        last_full_resync=T0 - timedelta(hours=6),
    )
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(PollCommit(state=full))
        await store.commit(PollCommit(state=state("Contoso.onmicrosoft.com")))
        assert await store.tenant_state(GUID.lower()) == full  # read back as given
        assert await store.tenant_state(GUID) == full
        assert await store.tenant_state("nobody.example") is None
        # The same tenant in another case is the same tenant; the spelling of the last commit wins.
        await store.commit(PollCommit(state=state(GUID.lower(), cursor=T0)))
        states = await store.tenant_states()
    assert [s.tenant_id for s in states] == [GUID.lower(), "Contoso.onmicrosoft.com"]
    assert states[0].cursor == T0 and states[0].cursor.tzinfo is timezone.utc
    assert not states[0].has_baseline


async def test_timestamps_read_back_as_aware_utc(tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(
            PollCommit(
                state=state(
                    cursor=datetime(2026, 1, 1, 12, tzinfo=plus_two),
                    last_success=T0.replace(tzinfo=None),
                )
            )
        )
        got = await store.tenant_state(GUID)
    assert got is not None and got.cursor is not None and got.last_success is not None
    assert got.cursor == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    assert got.cursor.utcoffset() == timedelta(0)
    assert got.last_success == T0  # a naive datetime is taken as UTC


async def test_snapshots_round_trip_losslessly(tmp_path: Path) -> None:
    data = {
        "zLast": 1,  # key order is kept, not sorted
        "id": "MC123456",
        "title": '(Updated) Teams: émojis 🎉, 中文, \u2028 and "quotes"',
        "unknownField": {"nested": [1, 2.5, -0.0, 1e300, None, True, {"deep": []}]},
        "big": 2**63 - 1,
        "@odata.type": "#microsoft.graph.serviceUpdateMessage",
        "empty": {},
    }
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(
            PollCommit(
                state=state(),
                snapshots=[
                    Snapshot(kind="message", entity_id="MC123456", data=data),
                    Snapshot(kind="issue", entity_id="EX1", data={"id": "EX1"}, active=True),
                    Snapshot(
                        kind="service", entity_id="Exchange", data={"status": "serviceDegradation"}
                    ),
                ],
            )
        )
    async with SQLiteStateStore(tmp_path / "w.db", readonly=True) as store:
        got = (await store.snapshots(GUID.lower(), "message"))["MC123456"]
        assert got == Snapshot(kind="message", entity_id="MC123456", data=data)
        assert list(got.data) == list(data)
        assert got.data["title"] == data["title"] and got.data["big"] == 2**63 - 1
        assert set(await store.snapshots(GUID, "issue")) == {"EX1"}
        assert (await store.snapshots(GUID, "service"))["Exchange"].active is False
        assert await store.snapshots("other", "message") == {}


async def test_snapshots_are_replaced_and_looked_up_by_id(tmp_path: Path) -> None:
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        many = [Snapshot(kind="message", entity_id=f"MC{n}", data={"n": n}) for n in range(3000)]
        await store.commit(PollCommit(state=state(), snapshots=many))
        await store.commit(
            PollCommit(
                state=state(),
                snapshots=[Snapshot(kind="message", entity_id="MC7", data={"n": "seven"})],
            )
        )
        got = await store.snapshots(GUID, "message", iter(["MC7", "MC2999", "MC7", "missing"]))
        assert {k: v.data for k, v in got.items()} == {"MC7": {"n": "seven"}, "MC2999": {"n": 2999}}
        assert await store.snapshots(GUID, "message", []) == {}
        # more ids than one IN (...) takes
        assert len(await store.snapshots(GUID, "message", [f"MC{n}" for n in range(1200)])) == 1200
        assert len(await store.snapshots(GUID, "message")) == 3000
        with pytest.raises(ValueError, match="kind must be one of"):
            await store.snapshots(GUID, "incident", None)  # type: ignore[arg-type]


async def test_active_snapshots_follow_the_flag(tmp_path: Path) -> None:
    def issue(n: int, active: bool) -> Snapshot:
        return Snapshot(kind="issue", entity_id=f"EX{n}", data={"id": f"EX{n}"}, active=active)

    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(
            PollCommit(state=state(), snapshots=[issue(n, n % 10 == 0) for n in range(100)])
        )
        assert set(await store.active_snapshots(GUID, "issue")) == {
            f"EX{n}" for n in range(0, 100, 10)
        }
        await store.commit(PollCommit(state=state(), snapshots=[issue(10, False), issue(11, True)]))
        active = await store.active_snapshots(GUID, "issue")
        assert set(active) == {f"EX{n}" for n in (0, 11, 20, 30, 40, 50, 60, 70, 80, 90)}
        assert all(s.active for s in active.values())
        assert await store.active_snapshots(GUID, "message") == {}


async def test_lookups_use_the_indexes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with SQLiteStateStore(path):
        pass
    with raw(path) as conn:
        by_id = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT entity_id, data, active FROM snapshots "
                "WHERE tenant_key = ? AND kind = ? AND entity_id IN (?, ?)",
                ("t", "issue", "a", "b"),
            )
        )
        active = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT entity_id, data, active FROM snapshots "
                "WHERE tenant_key = ? AND kind = ? AND active = 1",
                ("t", "issue"),
            )
        )
        pending = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT seq, body, created_at FROM events WHERE acked_at IS NULL "
                "ORDER BY seq LIMIT 10"
            )
        )
    assert "USING INDEX sqlite_autoindex_snapshots_1" in by_id, by_id
    assert "USING INDEX snapshots_active" in active, active
    assert "events_pending" in pending and "TEMP B-TREE" not in pending, pending


async def test_daily_statuses_round_trip_and_replace(tmp_path: Path) -> None:
    def day(n: int, service: str, status: str = "serviceOperational", **kw: Any) -> DailyStatus:
        return DailyStatus(
            tenant_id=GUID, service_id=service, day=date(2026, 11, n), status=status, **kw
        )

    worst = day(
        2,
        "Exchange",
        "serviceDegradation",
        incident_ids=("EX1", "EX2"),
        feature_groups={"E-Mail and calendar access": "serviceDegradation"},
        observed_at=T0,
    )
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(
            PollCommit(
                state=state(), daily=[day(n, s) for n in (1, 2, 3) for s in ("Exchange", "Teams")]
            )
        )
        await store.commit(PollCommit(state=state(), daily=[worst]))
        got = await store.daily_statuses(GUID.lower(), date(2026, 11, 2), date(2026, 11, 3))
        assert got == [worst, day(2, "Teams"), day(3, "Exchange"), day(3, "Teams")]
        assert got[0].incident_ids == ("EX1", "EX2")
        only = await store.daily_statuses(GUID, date(2026, 11, 1), date(2026, 11, 30), "Exchange")
        assert [(d.day.day, d.status) for d in only] == [
            (1, "serviceOperational"),
            (2, "serviceDegradation"),
            (3, "serviceOperational"),
        ]
        assert await store.daily_statuses("other", date(2026, 11, 1), date(2026, 11, 30)) == []


# -- events ---------------------------------------------------------------------------------------------


async def test_events_round_trip_in_insertion_order(tmp_path: Path) -> None:
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(PollCommit(state=state(), events=[event(3), event(1, note="ünïcode")]))
        await store.commit(PollCommit(state=state("b.example"), events=[event(2, "b.example")]))
        pending = await store.pending_events()
    assert [p.event.id for p in pending] == ["ev-3", "ev-1", "ev-2"]
    assert [p.seq for p in pending] == sorted(p.seq for p in pending)
    assert len({p.seq for p in pending}) == 3
    assert pending[1].event == event(1, note="ünïcode")
    assert pending[1].event.to_json() == event(1, note="ünïcode").to_json()
    assert all(p.acked_at is None and p.created_at.tzinfo is timezone.utc for p in pending)


async def test_the_same_event_computed_twice_is_stored_once(tmp_path: Path) -> None:
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(PollCommit(state=state(), events=[event(1), event(2)]))
        await store.commit(
            PollCommit(state=state(), events=[event(2, again=True), event(1), event(3)])
        )
        await store.commit(PollCommit(state=state(), events=[event(4), event(4)]))
        pending = await store.pending_events()
        assert [p.event.id for p in pending] == ["ev-1", "ev-2", "ev-3", "ev-4"]
        assert "again" not in pending[1].event.data  # the first one stored is kept
        await store.ack(["ev-1"])
        await store.commit(PollCommit(state=state(), events=[event(1)]))  # acked: not pending again
        assert [p.event.id for p in await store.pending_events()] == ["ev-2", "ev-3", "ev-4"]


async def test_pending_and_ack(tmp_path: Path) -> None:
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(PollCommit(state=state(), events=[event(n) for n in range(5)]))
        await store.commit(
            PollCommit(
                state=state("B.example"), events=[event(n, "B.example") for n in range(5, 7)]
            )
        )
        assert await store.pending_counts() == {GUID: 5, "B.example": 2}
        first = await store.pending_events(limit=2)
        assert [p.event.id for p in first] == ["ev-0", "ev-1"]
        assert await store.pending_events(limit=0) == []
        assert await store.ack(["ev-0", "ev-0", "ev-1", "unknown"]) == 2
        assert await store.ack(["ev-1"]) == 0  # already acknowledged
        assert await store.ack([]) == 0
        assert [p.event.id for p in await store.pending_events()] == [
            f"ev-{n}" for n in range(2, 7)
        ]
        assert await store.ack(f"ev-{n}" for n in range(2, 5)) == 3
        assert await store.pending_counts() == {"B.example": 2}
        everything = await store.events()
        assert [e.acked_at is not None for e in everything] == [True] * 5 + [False] * 2
        with pytest.raises(ValueError, match="limit"):
            await store.pending_events(limit=-1)
    # acknowledgements are durable
    async with SQLiteStateStore(tmp_path / "w.db", readonly=True) as store:
        assert [p.event.id for p in await store.pending_events()] == ["ev-5", "ev-6"]


async def test_prune_deletes_old_acknowledged_events_and_old_days_only(tmp_path: Path) -> None:
    today = datetime.now(timezone.utc).date()
    records = [
        DailyStatus(
            tenant_id=GUID, service_id="Exchange", day=today - timedelta(days=n), status="x"
        )
        for n in (0, 89, 91, 400)
    ]
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        await store.commit(
            PollCommit(state=state(), events=[event(n) for n in range(4)], daily=records)
        )
        # the first commit pruned already (days 91 and 400)
        assert [
            d.day for d in await store.daily_statuses(GUID, today - timedelta(days=999), today)
        ] == [
            today - timedelta(days=89),
            today,
        ]
        await store.ack(["ev-0", "ev-1"])
        assert await store.prune() == {"events": 0, "daily": 0}  # acked just now: kept 7 days
        later = datetime.now(timezone.utc) + timedelta(days=8)
        assert await store.prune(now=later) == {"events": 2, "daily": 1}
        assert [e.event.id for e in await store.events()] == [
            "ev-2",
            "ev-3",
        ]  # pending: never pruned
        last_seq = (await store.events())[-1].seq
        await store.ack(["ev-2", "ev-3"])
        await store.prune(now=later)
        assert await store.events() == []
        await store.commit(PollCommit(state=state(), events=[event(9)]))
        assert (await store.events())[0].seq > last_seq  # never reused, even after a prune
        days = await store.daily_statuses(GUID, today - timedelta(days=1000), today)
        assert [d.day for d in days] == [today]  # 89 days old is older than later - 90 days


async def test_commit_prunes_on_its_own(tmp_path: Path) -> None:
    store = SQLiteStateStore(
        tmp_path / "w.db", event_retention=timedelta(0), prune_interval=timedelta(0)
    )
    async with store:
        await store.commit(PollCommit(state=state(), events=[event(1), event(2)]))
        await store.ack(["ev-1"])
        await store.commit(PollCommit(state=state()))
        assert [e.event.id for e in await store.events()] == ["ev-2"]


# -- atomicity ------------------------------------------------------------------------------------------


async def test_a_commit_whose_data_is_not_json_writes_nothing_and_says_which(
    tmp_path: Path,
) -> None:
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        bad = PollCommit(
            state=state(cursor=T0),
            snapshots=[
                Snapshot(kind="issue", entity_id="EX1", data={"ok": True}),
                Snapshot(kind="issue", entity_id="EX2", data={"secret-ish": {"a", "set"}}),
            ],
            events=[event(1)],
        )
        with pytest.raises(TypeError, match="snapshot issue 'EX2'") as caught:
            await store.commit(bad)
        assert "secret-ish" not in str(caught.value)
        assert await store.tenant_states() == []
        assert await store.snapshots(GUID, "issue") == {}
        assert await store.pending_events() == []


async def test_a_commit_failing_inside_the_transaction_leaves_nothing(tmp_path: Path) -> None:
    """A real SQLite failure midway (the database is full) rolls the whole poll back."""
    async with SQLiteStateStore(tmp_path / "w.db") as store:
        before = PollCommit(
            state=state(cursor=T0),
            snapshots=[Snapshot(kind="issue", entity_id="EX0", data={"v": 0})],
            events=[event(0)],
        )
        await store.commit(before)

        def cap_pages() -> None:
            conn = store._db()
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages + 3}")

        await store._call(cap_pages)
        too_big = PollCommit(
            state=state(cursor=T0 + timedelta(minutes=1), failures_in_a_row=0),
            snapshots=[
                Snapshot(
                    kind="issue", entity_id="EX0", data={"v": 1}
                ),  # replaces, then rolled back
                Snapshot(kind="issue", entity_id="EX1", data={"v": 1}),
                Snapshot(kind="message", entity_id="MC1", data={"body": "x" * 200_000}),
            ],
            events=[event(1)],
            daily=[DailyStatus(tenant_id=GUID, service_id="Exchange", day=T0.date(), status="x")],
        )
        with pytest.raises(StateStoreError, match="full") as caught:
            await store.commit(too_big)
        assert str(tmp_path / "w.db") in str(caught.value) and "xxxx" not in str(caught.value)
        assert await store.tenant_state(GUID) == before.state
        assert {k: v.data for k, v in (await store.snapshots(GUID, "issue")).items()} == {
            "EX0": {"v": 0}
        }
        assert await store.snapshots(GUID, "message") == {}
        assert [e.event.id for e in await store.pending_events()] == ["ev-0"]
        assert await store.daily_statuses(GUID, T0.date(), T0.date()) == []
        await store._call(lambda: store._db().execute("PRAGMA max_page_count = 1073741823"))
        await store.commit(too_big)  # and the store goes on
        assert await store.tenant_state(GUID) == too_big.state


# -- lifecycle, readonly --------------------------------------------------------------------------------


async def test_lifecycle(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "w.db")
    with pytest.raises(StateStoreError, match="not open"):
        await store.tenant_states()
    await store.open()
    with pytest.raises(StateStoreError, match="already"):
        await store.open()
    await store.aclose()
    await store.aclose()
    with pytest.raises(StateStoreError, match="closed"):
        await store.pending_events()
    async with SQLiteStateStore(tmp_path / "w.db"):  # the lock was released
        pass


async def test_readonly_refuses_a_missing_or_empty_file_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(StateStoreError, match="does not exist") as caught:
        await SQLiteStateStore(missing, readonly=True).open()
    assert str(missing) in str(caught.value)
    assert os.listdir(tmp_path) == []
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StateStoreError, match="empty"):
        await SQLiteStateStore(empty, readonly=True).open()
    assert empty.stat().st_size == 0


async def test_readonly_reads_while_the_writer_writes_and_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with SQLiteStateStore(path) as writer:
        await writer.commit(PollCommit(state=state(cursor=T0), events=[event(1)]))
        async with SQLiteStateStore(path, readonly=True) as reader:
            assert (await reader.tenant_state(GUID)) == state(cursor=T0)
            await writer.commit(
                PollCommit(state=state(cursor=T0 + timedelta(1)), events=[event(2)])
            )
            assert await reader.pending_counts() == {GUID: 2}
            with pytest.raises(StateStoreError, match="readonly"):
                await reader.commit(PollCommit(state=state()))
            with pytest.raises(StateStoreError, match="readonly"):
                await reader.ack(["ev-1"])
    assert not (tmp_path / "w.db.lock").read_bytes()  # the pid is cleared on close


async def test_a_second_writer_in_the_same_process_is_refused(tmp_path: Path) -> None:
    async with SQLiteStateStore(tmp_path / "w.db"):
        with pytest.raises(StateStoreError, match="in use by another watcher"):
            await SQLiteStateStore(tmp_path / "w.db").open()


_HOLD = """
import asyncio, sys
from servicecomms_async.watch.sqlite import SQLiteStateStore
async def main():
    async with SQLiteStateStore(sys.argv[1]):
        print("locked", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
"""


def test_a_second_writer_in_another_process_is_refused_at_once(tmp_path: Path) -> None:
    anyio.run(_second_writer_in_another_process, tmp_path)


async def _second_writer_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    holder = subprocess.Popen(  # noqa: ASYNC220  (run by anyio.run from a sync test)
        [sys.executable, "-c", _HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        with pytest.raises(StateStoreError) as caught:
            await SQLiteStateStore(path).open()
        assert time.monotonic() - started < 2  # not a wait for the lock
        message = str(caught.value)
        assert str(path) in message and "in use by another watcher" in message
        assert f"pid {holder.pid}" in message
        async with SQLiteStateStore(path, readonly=True) as reader:  # readers are welcome
            assert await reader.tenant_states() == []
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()
    async with SQLiteStateStore(path):  # free again once the other one exits
        pass


# -- refusals -------------------------------------------------------------------------------------------


def _text(path: Path) -> None:
    path.write_text("tenant,domain\ncontoso,contoso.com\n" * 50)


def _random(path: Path) -> None:
    path.write_bytes(random.Random(14).randbytes(8192))


def _store_file(path: Path, *, tenants: int = 50) -> None:
    async def fill() -> None:
        async with SQLiteStateStore(path) as store:
            for n in range(tenants):
                await store.commit(
                    PollCommit(
                        state=state(f"t{n}"),
                        snapshots=[
                            Snapshot(kind="message", entity_id="MC1", data={"b": "x" * 3000})
                        ],
                    )
                )

    anyio.run(fill)


def _truncated(path: Path) -> None:
    _store_file(path)
    size = path.stat().st_size
    assert size > 100_000
    with path.open("r+b") as file:
        file.truncate(size // 2)


def _truncated_header(path: Path) -> None:
    _store_file(path, tenants=1)
    path.write_bytes(path.read_bytes()[:60])


def _foreign_tables(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT, password_hash TEXT)")
        conn.execute("INSERT INTO users VALUES ('alice', 'x')")
    conn.close()


def _foreign_application_id(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA application_id = 1234")
        conn.execute("CREATE TABLE tenants (x)")
    conn.close()


def _newer(path: Path) -> None:
    _store_file(path, tenants=1)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def _damaged(path: Path) -> None:
    _store_file(path, tenants=1)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE events")
    conn.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_text, "is not an SQLite database"),
        (_random, "is not an SQLite database"),
        (_truncated, "is a truncated SQLite database"),
        (_truncated_header, "is a truncated SQLite database"),
        (_foreign_tables, "another application's SQLite database (tables users)"),
        (
            _foreign_application_id,
            "another application's SQLite database (application_id 0x000004d2)",
        ),
        (_newer, "newer servicecomms-async (schema version 99"),
        (_damaged, "damaged servicecomms watch state (schema version 2, missing tables: events)"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_a_file_that_is_not_ours_is_refused_and_left_unchanged(
    tmp_path: Path, make: Callable[[Path], None], reason: str
) -> None:
    path = tmp_path / "state.db"
    make(path)
    before = sha(path)
    for readonly in (False, True):
        with pytest.raises(StateStoreError) as caught:
            anyio.run(SQLiteStateStore(path, readonly=readonly).open)
        message = str(caught.value)
        assert str(path) in message and reason in message, message
        assert "contoso" not in message and "alice" not in message  # never the file's contents
        assert sha(path) == before
    assert set(os.listdir(tmp_path)) <= {
        "state.db",
        "state.db.lock",
        "state.db-wal",
        "state.db-shm",
    }
    for side in ("state.db-wal",):
        assert not (tmp_path / side).exists() or (tmp_path / side).stat().st_size == 0


# -- migrations -----------------------------------------------------------------------------------------


CURRENT = sqlite_store.SCHEMA_VERSION
NEXT = CURRENT + 1


def _next_step(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE copies (event_id TEXT NOT NULL, sink TEXT NOT NULL)")
    conn.execute("INSERT INTO copies SELECT event_id, 'jsonl' FROM events WHERE acked_at IS NULL")


async def test_a_version_1_file_upgrades_to_the_outbox_with_its_events_kept(
    tmp_path: Path,
) -> None:
    """A file the first release wrote (schema 1, written here by its own migration step) opens."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    sqlite_store.MIGRATIONS[0](conn)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    for n, acked in ((1, "2026-01-01T00:00:00.000000Z"), (2, None)):
        conn.execute(
            "INSERT INTO events (event_id, tenant_key, type, body, created_at, acked_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                f"ev-{n}",
                GUID,
                "issue.updated",
                event(n).to_json(),
                "2026-01-01T00:00:00.000000Z",
                acked,
            ),
        )
    conn.close()
    async with SQLiteStateStore(path) as store:
        assert [p.event for p in await store.pending_events()] == [event(2)]
        assert await store.deliveries() == []
    with raw(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 2


async def test_a_new_migration_step_upgrades_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.db"
    async with SQLiteStateStore(path) as store:
        await store.commit(PollCommit(state=state(cursor=T0), events=[event(1), event(2)]))
        await store.ack(["ev-1"])
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, _next_step])
    with pytest.raises(
        StateStoreError, match=f"schema version {CURRENT}, older than this version's {NEXT}"
    ):
        await SQLiteStateStore(path, readonly=True).open()  # readonly never migrates
    async with SQLiteStateStore(path) as store:
        assert await store.tenant_state(GUID) == state(cursor=T0)
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == NEXT
        assert conn.execute("SELECT * FROM copies").fetchall() == [("ev-2", "jsonl")]
    async with SQLiteStateStore(path, readonly=True) as store:
        assert [p.event.id for p in await store.pending_events()] == ["ev-2"]
    # a new file gets every step
    async with SQLiteStateStore(tmp_path / "new.db"):
        pass
    with raw(tmp_path / "new.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == NEXT
    # and the code without the step refuses the upgraded file rather than damage it
    monkeypatch.undo()
    with pytest.raises(StateStoreError, match="newer"):
        await SQLiteStateStore(path).open()


async def test_a_failing_migration_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.db"
    async with SQLiteStateStore(path) as store:
        await store.commit(PollCommit(state=state(cursor=T0)))

    def broken(conn: sqlite3.Connection) -> None:
        _next_step(conn)
        conn.execute("ALTER TABLE tenants ADD COLUMN half_done TEXT")
        raise RuntimeError("step 2 failed halfway")

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, broken])
    with pytest.raises(RuntimeError, match="halfway"):
        await SQLiteStateStore(path).open()
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(tenants)")}
    assert "copies" not in tables and "half_done" not in columns
    monkeypatch.undo()
    async with SQLiteStateStore(path) as store:  # the lock was released; the data is intact
        assert await store.tenant_state(GUID) == state(cursor=T0)


# -- crash test -----------------------------------------------------------------------------------------

CRASH_TENANTS = ("Tenant-A", "tenant-b", "TENANT-C")
CRASH_BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
CRASH_KEEP_DAYS = timedelta(days=100 * 365)  # the daily records of CRASH_BASE are never pruned


def crash_shape(i: int) -> tuple[int, int]:
    """How many message snapshots and events commit ``i`` writes."""
    return 1 + (i * 7) % 5, 1 + i % 3


_CHILD = textwrap.dedent(
    """
    import asyncio, random, sys
    from datetime import timedelta
    from servicecomms_async.watch.sqlite import SQLiteStateStore
    from servicecomms_async.watch.store import DailyStatus, PollCommit, Snapshot, TenantState
    from tests.test_watch_store import CRASH_BASE, CRASH_KEEP_DAYS, CRASH_TENANTS, crash_shape, event

    async def main(path, seed):
        rng = random.Random(seed)
        async with SQLiteStateStore(path, daily_retention=CRASH_KEEP_DAYS) as store:
            states = await store.tenant_states()
            i = 1 + max((s.failures_in_a_row for s in states), default=-1)
            print("ready", i, flush=True)
            while True:
                tenant = CRASH_TENANTS[i % 3]
                n_snap, n_ev = crash_shape(i)
                snaps = [
                    Snapshot(kind="message", entity_id=f"m{i}-{j}",
                             data={"i": i, "j": j, "pad": "é" * rng.randint(10, 2000)})
                    for j in range(n_snap)
                ]
                snaps.append(Snapshot(kind="issue", entity_id="shared", data={"i": i}, active=i % 2 == 0))
                moment = CRASH_BASE + timedelta(seconds=i)
                await store.commit(PollCommit(
                    state=TenantState(tenant_id=tenant, cursor=moment, last_success=moment,
                                      failures_in_a_row=i, last_error={"i": i}),
                    snapshots=snaps,
                    events=[event(f"{i}-{j}", tenant, i=i) for j in range(n_ev)]
                           + ([event(f"{i - 1}-0", CRASH_TENANTS[(i - 1) % 3], i=i - 1)] if i else []),
                    daily=[DailyStatus(tenant_id=tenant, service_id=f"svc{i}", day=moment.date(),
                                       status="serviceOperational", incident_ids=(f"EX{i}",))],
                ))
                print("done", i, flush=True)
                if i % 4 == 3:
                    pending = await store.pending_events(limit=5)
                    await store.ack(p.event.id for p in pending)
                i += 1

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def _check_crashed_store(path: Path, reported: set[int]) -> int:
    """Open the store after a kill; every reported commit, and any other, is there whole. Returns
    the last committed index."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()

    async def read() -> int:
        async with SQLiteStateStore(path, daily_retention=CRASH_KEEP_DAYS) as store:
            messages: dict[str, Snapshot] = {}
            states = {}
            for tenant in CRASH_TENANTS:
                messages |= await store.snapshots(tenant, "message")
                states[tenant] = await store.tenant_state(tenant)
            events = {e.event.id: e.event for e in await store.events()}
            daily: set[str] = set()
            for tenant in CRASH_TENANTS:
                for record in await store.daily_statuses(
                    tenant, CRASH_BASE.date(), CRASH_BASE.date() + timedelta(days=2)
                ):
                    assert record.tenant_id == tenant and record.incident_ids == (
                        f"EX{record.service_id[3:]}",
                    )
                    daily.add(record.service_id)
            present = {int(name[1:].split("-")[0]) for name in messages}
            present |= {int(s[3:]) for s in daily}
            present |= {int(e.split("-")[1]) for e in events}
            last = max(present, default=-1)
            assert present == set(range(last + 1)), "a commit is missing between others"
            assert reported <= present, f"reported commits lost: {sorted(reported - present)}"
            assert last <= max(reported, default=-1) + 1
            for i in present:  # each one whole
                n_snap, n_ev = crash_shape(i)
                for j in range(n_snap):
                    snap = messages[f"m{i}-{j}"]
                    assert (snap.data["i"], snap.data["j"]) == (i, j)
                    assert set(snap.data["pad"]) <= {"é"}
                for j in range(n_ev):
                    assert events[f"ev-{i}-{j}"].data["i"] == i
                assert f"svc{i}" in daily
            for index, tenant in enumerate(CRASH_TENANTS):
                mine = [i for i in present if i % 3 == index]
                got = states[tenant]
                if not mine:
                    assert got is None
                    continue
                assert got is not None
                assert got.failures_in_a_row == max(mine)
                assert got.cursor == CRASH_BASE + timedelta(seconds=max(mine))
                assert got.last_error == {"i": max(mine)}
                shared = (await store.snapshots(tenant, "issue", ["shared"]))["shared"]
                assert shared.data == {"i": max(mine)} and shared.active == (max(mine) % 2 == 0)
            return last

    return anyio.run(read)


def test_kill_9_at_random_moments_loses_no_reported_commit_and_never_corrupts(
    tmp_path: Path,
) -> None:
    master = int(os.environ.get("STORE_CRASH_SEED", random.SystemRandom().randrange(2**32)))
    runs = int(os.environ.get("STORE_CRASH_RUNS", "24"))
    print(f"crash test: master seed {master} (STORE_CRASH_SEED={master} to repeat), {runs} runs")
    rng = random.Random(master)
    path = tmp_path / "crash.db"
    reported: set[int] = set()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    outcomes = []
    for run in range(runs):
        seed = rng.randrange(2**32)
        # Mostly among the commits; every fourth run at any moment from the start (imports, opening,
        # the first run's schema creation).
        early = run % 4 == 0
        delay = rng.uniform(0.0, 1.3) if early else rng.uniform(0.0, 0.6)
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(seed)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        assert child.stdout is not None
        if not early:
            assert child.stdout.readline().startswith(b"ready"), seed
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)  # kill -9
        out, _ = child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL, (seed, child.returncode)
        # Only whole lines: the kill may land in the middle of writing one ("done 12" cut to "do").
        lines = out.decode(errors="replace").split("\n")[:-1]
        opened = not early or any(line.startswith("ready") for line in lines)
        done = {
            int(line.split()[1])
            for line in lines
            if line.startswith("done ") and line[5:].isdigit()
        }
        reported |= done
        last = _check_crashed_store(path, reported)
        outcome = (
            f"run {run}: seed {seed}, killed {delay:.3f}s after {'start' if early else 'ready'}, "
            f"{'after' if opened else 'before'} open, {len(done)} commits reported, "
            f"last committed {last}, {'one unreported commit kept' if last > max(reported, default=-1) else 'nothing beyond'}"
        )
        outcomes.append(outcome)
        print(outcome)
    assert len(reported) > runs  # the kills did land among commits
