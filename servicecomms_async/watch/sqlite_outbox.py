"""The outbox of :class:`~servicecomms_async.watch.SQLiteStateStore`: schema version 2 and its methods.

Version 2 adds, to a version 1 file (migrated in place, in one transaction):

* ``sinks``: each sink's name, kind, whether it takes rollups, and the last event ``seq`` stored before it
  was first registered (it takes the events after it, not the backlog);
* ``deliveries``: one row per (sink, event) with its state (``pending``, ``delivered``, ``dead``),
  attempts, next attempt time and last error. A poll's commit inserts the deliveries of its events in
  the same transaction as the events, so an event is never stored without its deliveries;
* ``rollups``: which tenants each rollup key has reported;
* ``events.rollup`` (rollups are events too, with an empty tenant) and ``snapshots.due_at`` (a post's
  ``actionRequiredByDateTime``, indexed, for ``message.action_due``).

An event is acknowledged (``events.acked_at``) once every sink that takes it has it delivered, so the
protocol's ``pending_events`` and the retention of acknowledged events keep their meaning.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ._sqlite_values import IN_CHUNK as _IN_CHUNK
from ._sqlite_values import dt as _dt
from ._sqlite_values import dumps as _dumps
from ._sqlite_values import loads as _loads
from ._sqlite_values import now as _now
from ._sqlite_values import statements
from ._sqlite_values import ts as _ts
from .events import WatchEvent
from .store import (
    DELIVERY_STATES,
    Delivery,
    DeliveryRecord,
    DeliveryState,
    EntityKind,
    RollupRecord,
    SinkInfo,
    Snapshot,
)

_T = TypeVar("_T")

_V2 = """
ALTER TABLE events ADD COLUMN rollup INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN due_at TEXT;
CREATE INDEX snapshots_due ON snapshots (tenant_key, kind, due_at) WHERE due_at IS NOT NULL;

CREATE TABLE sinks (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    rollup     INTEGER NOT NULL CHECK (rollup IN (0, 1)),
    first_seq  INTEGER NOT NULL,                -- takes the events with a larger seq
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE deliveries (
    sink            TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    seq             INTEGER NOT NULL,           -- the event's, for order
    tenant_key      TEXT NOT NULL,              -- the event's ('' for rollups), for per-tenant order
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,                       -- NULL: now
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    PRIMARY KEY (sink, event_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_pending ON deliveries (sink, seq) WHERE state = 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE rollups (
    rollup_key TEXT PRIMARY KEY,
    tenants    BLOB NOT NULL,                   -- JSON array, sorted
    first_seen TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,                     -- 'rollup_seq': the last event rolled up
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

# A commit's new events get their deliveries from the sinks registered when it commits.
INSERT_DELIVERIES = (
    "INSERT OR IGNORE INTO deliveries (sink, event_id, seq, tenant_key, state, created_at) "
    "SELECT s.name, e.event_id, e.seq, e.tenant_key, 'pending', ? FROM events AS e "
    "JOIN sinks AS s ON s.rollup = e.rollup WHERE e.event_id = ? AND e.seq > s.first_seq"
)


def migrate_v2(conn: sqlite3.Connection) -> None:
    """v1 -> v2: the outbox (sinks, deliveries, rollups) and the due-date index."""
    for statement in statements(_V2):
        conn.execute(statement)


class OutboxMethods:
    """The :class:`~servicecomms_async.watch.store.OutboxStore` methods, on the store's worker thread.

    :class:`~servicecomms_async.watch.SQLiteStateStore` provides the plumbing below."""

    def _writable(self) -> None:
        raise NotImplementedError

    async def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        raise NotImplementedError

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _error(self, doing: str, exc: sqlite3.Error) -> Exception:
        raise NotImplementedError

    def _transaction(self, doing: str, run: Callable[[sqlite3.Connection], None]) -> None:
        raise NotImplementedError

    async def register_sinks(self, sinks: Sequence[SinkInfo]) -> None:
        self._writable()
        await self._call(self._register_sync, list(sinks))

    def _register_sync(self, sinks: list[SinkInfo]) -> None:

        def run(conn: sqlite3.Connection) -> None:
            last = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            for sink in sinks:
                conn.execute(
                    "INSERT INTO sinks (name, kind, rollup, first_seq, created_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
                    "rollup = excluded.rollup",
                    (sink.name, sink.kind, int(sink.rollup), last, _ts(_now())),
                )

        self._transaction("registering sinks", run)

    async def due_deliveries(self, sink: str, now: datetime, *, limit: int) -> list[Delivery]:
        return await self._call(self._due_sync, sink, now, limit)

    def _due_sync(self, sink: str, now: datetime, limit: int) -> list[Delivery]:

        moment = _ts(now)
        try:
            # Read lazily, in order, and stop at ``limit`` due: a long backlog is not read whole for
            # every batch taken from its head.
            rows = self._db().execute(
                "SELECT d.seq, d.tenant_key, d.next_attempt_at, d.attempts, d.created_at, e.body "
                "FROM deliveries AS d JOIN events AS e USING (event_id) "
                "WHERE d.sink = ? AND d.state = 'pending' ORDER BY d.seq",
                (sink,),
            )
        except sqlite3.Error as exc:
            raise self._error("reading deliveries", exc) from exc
        due: list[Delivery] = []
        waiting: set[str] = set()  # tenants with an earlier delivery not due yet
        try:
            for seq, tenant, next_at, attempts, created, body in rows:
                if tenant in waiting:
                    continue
                if next_at is not None and moment is not None and next_at > moment:
                    waiting.add(tenant)
                    continue
                due.append(
                    Delivery(
                        sink=sink,
                        event=WatchEvent.from_json(body),
                        seq=seq,
                        attempts=attempts,
                        created_at=_dt(created) or now,
                    )
                )
                if len(due) >= limit:
                    break
        except sqlite3.Error as exc:
            raise self._error("reading deliveries", exc) from exc
        finally:
            rows.close()  # the rest of the backlog is not read
        return due

    async def pending_summary(self, sink: str) -> tuple[int, datetime | None]:
        return await self._call(self._pending_summary_sync, sink)

    def _pending_summary_sync(self, sink: str) -> tuple[int, datetime | None]:
        try:
            count, oldest = (
                self._db()
                .execute(
                    "SELECT count(*), min(created_at) FROM deliveries "
                    "WHERE sink = ? AND state = 'pending'",
                    (sink,),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error("counting deliveries", exc) from exc
        return int(count), _dt(oldest)

    async def next_attempt(self, sink: str) -> datetime | None:
        return await self._call(self._next_attempt_sync, sink)

    def _next_attempt_sync(self, sink: str) -> datetime | None:

        try:
            row = (
                self._db()
                .execute(
                    "SELECT min(next_attempt_at) FROM deliveries WHERE sink = ? AND state = 'pending'",
                    (sink,),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._error("reading deliveries", exc) from exc
        return _dt(row[0]) if row else None

    async def mark_delivered(self, sink: str, event_ids: Sequence[str], now: datetime) -> None:
        self._writable()
        await self._call(self._delivered_sync, sink, list(event_ids), now)

    def _delivered_sync(self, sink: str, ids: list[str], now: datetime) -> None:

        moment = _ts(now)

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE deliveries SET state = 'delivered', delivered_at = ?, attempts = attempts + 1, "
                "next_attempt_at = NULL WHERE sink = ? AND event_id = ?",
                ((moment, sink, i) for i in ids),
            )
            # Every sink that takes it has it: acknowledged.
            conn.executemany(
                "UPDATE events SET acked_at = ? WHERE event_id = ? AND acked_at IS NULL AND NOT "
                "EXISTS (SELECT 1 FROM deliveries WHERE event_id = ? AND state != 'delivered')",
                ((moment, i, i) for i in ids),
            )

        self._transaction("recording deliveries", run)

    async def mark_failed(
        self,
        sink: str,
        event_id: str,
        *,
        attempts: int,
        error: str,
        next_attempt_at: datetime | None,
        dead: bool,
    ) -> None:
        self._writable()
        await self._call(
            self._failed_sync, sink, event_id, attempts, error[:1000], next_attempt_at, dead
        )

    def _failed_sync(
        self,
        sink: str,
        event_id: str,
        attempts: int,
        error: str,
        next_at: datetime | None,
        dead: bool,
    ) -> None:

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, last_error = ?, next_attempt_at = ? "
                "WHERE sink = ? AND event_id = ?",
                ("dead" if dead else "pending", attempts, error, _ts(next_at), sink, event_id),
            )

        self._transaction("recording a failed delivery", run)

    async def deliveries(
        self, *, states: Sequence[DeliveryState] = ("pending", "dead"), sink: str | None = None
    ) -> list[DeliveryRecord]:
        wanted = list(states)
        for state in wanted:
            if state not in DELIVERY_STATES:
                raise ValueError(f"a delivery state is one of {DELIVERY_STATES}, not {state!r}")
        return await self._call(self._deliveries_sync, wanted, sink)

    def _deliveries_sync(self, states: list[str], sink: str | None) -> list[DeliveryRecord]:

        marks = ",".join("?" * len(states)) or "NULL"
        sql = (
            "SELECT d.event_id, d.sink, d.state, d.attempts, d.last_error, d.next_attempt_at, "
            "d.created_at, d.delivered_at, e.body FROM deliveries AS d JOIN events AS e "
            f"USING (event_id) WHERE d.state IN ({marks})"
        )
        params: list[Any] = list(states)
        if sink is not None:
            sql += " AND d.sink = ?"
            params.append(sink)
        try:
            rows = self._db().execute(sql + " ORDER BY d.seq, d.sink", params).fetchall()
        except sqlite3.Error as exc:
            raise self._error("reading deliveries", exc) from exc
        records = []
        for event_id, name, state, attempts, error, next_at, created, delivered, body in rows:
            event = WatchEvent.from_json(body)
            created_at = _dt(created)
            assert created_at is not None
            records.append(
                DeliveryRecord(
                    event_id=event_id,
                    sink=name,
                    state=state,
                    attempts=attempts,
                    last_error=error,
                    next_attempt_at=_dt(next_at),
                    created_at=created_at,
                    delivered_at=_dt(delivered),
                    type=str(event.type),
                    tenant_id=event.tenant_id,
                    subject=event.subject,
                )
            )
        return records

    async def replay(
        self,
        sink: str,
        *,
        since: datetime | None = None,
        event_id: str | None = None,
        dead: bool = False,
    ) -> int:
        self._writable()
        if sum((since is not None, event_id is not None, dead)) != 1:
            raise ValueError("replay takes exactly one of since=, event_id= or dead=True")
        return await self._call(self._replay_sync, sink, since, event_id, dead)

    def _replay_sync(
        self, sink: str, since: datetime | None, event_id: str | None, dead: bool
    ) -> int:

        now = _ts(_now())
        found = 0

        def run(conn: sqlite3.Connection) -> None:
            nonlocal found
            known = conn.execute("SELECT rollup FROM sinks WHERE name = ?", (sink,)).fetchone()
            if known is None:
                raise LookupError(sink)
            reset = (
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = NULL, "
                "last_error = NULL, delivered_at = NULL WHERE sink = ?"
            )
            if dead:
                found = conn.execute(reset + " AND state = 'dead'", (sink,)).rowcount
                return
            value: str | None
            if event_id is not None:
                where, value = "e.event_id = ?", event_id
            else:
                where, value = "e.created_at >= ?", _ts(since)
            # Events the sink never had a row for (stored before it was registered) get one.
            conn.execute(
                "INSERT OR IGNORE INTO deliveries (sink, event_id, seq, tenant_key, state, "
                "created_at) SELECT ?, e.event_id, e.seq, e.tenant_key, 'pending', ? FROM events "
                f"AS e WHERE {where} AND e.rollup = ?",
                (sink, now, value, known[0]),
            )
            found = conn.execute(
                reset + f" AND event_id IN (SELECT e.event_id FROM events AS e WHERE {where} "
                "AND e.rollup = ?)",
                (sink, value, known[0]),
            ).rowcount
            conn.execute(
                "UPDATE events SET acked_at = NULL WHERE event_id IN (SELECT event_id FROM "
                "deliveries WHERE sink = ? AND state = 'pending')",
                (sink,),
            )

        try:
            self._transaction("replaying deliveries", run)
        except LookupError:
            raise ValueError(f"no sink named {sink!r} in this state file") from None
        return found

    async def ack_unrouted(self) -> int:
        self._writable()
        return await self._call(self._ack_unrouted_sync)

    def _ack_unrouted_sync(self) -> int:

        count = 0

        def run(conn: sqlite3.Connection) -> None:
            nonlocal count
            count = conn.execute(
                "UPDATE events SET acked_at = ? WHERE acked_at IS NULL AND NOT EXISTS (SELECT 1 "
                "FROM deliveries AS d WHERE d.event_id = events.event_id) AND NOT EXISTS (SELECT 1 "
                "FROM sinks AS s WHERE s.rollup = events.rollup AND events.seq > s.first_seq)",
                (_ts(_now()),),
            ).rowcount

        self._transaction("acknowledging events no sink takes", run)
        return count

    async def rollups(self, keys: Sequence[str]) -> dict[str, RollupRecord]:
        return await self._call(self._rollups_sync, list(keys))

    async def unrolled_events(self, *, limit: int) -> tuple[list[WatchEvent], int]:
        return await self._call(self._unrolled_sync, limit)

    def _unrolled_sync(self, limit: int) -> tuple[list[WatchEvent], int]:
        try:
            conn = self._db()
            row = conn.execute("SELECT value FROM meta WHERE key = 'rollup_seq'").fetchone()
            after = int(row[0]) if row else 0
            rows = conn.execute(
                "SELECT seq, body FROM events WHERE seq > ? AND rollup = 0 ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("reading events to roll up", exc) from exc
        last = rows[-1][0] if rows else after
        return [WatchEvent.from_json(body) for _, body in rows], last

    def _rollups_sync(self, keys: list[str]) -> dict[str, RollupRecord]:

        found: dict[str, RollupRecord] = {}
        try:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, tenants, first in self._db().execute(
                    f"SELECT rollup_key, tenants, first_seen FROM rollups WHERE rollup_key IN ({marks})",
                    chunk,
                ):
                    first_seen = _dt(first)
                    assert first_seen is not None
                    found[key] = RollupRecord(
                        key=key, tenants=tuple(_loads(tenants)), first_seen=first_seen
                    )
        except sqlite3.Error as exc:
            raise self._error("reading rollups", exc) from exc
        return found

    async def commit_rollups(
        self, records: Sequence[RollupRecord], events: Sequence[WatchEvent], *, through_seq: int
    ) -> None:
        self._writable()
        await self._call(self._commit_rollups_sync, list(records), list(events), through_seq)

    def _commit_rollups_sync(
        self, records: list[RollupRecord], events: list[WatchEvent], through_seq: int
    ) -> None:

        now = _ts(_now())
        rows = [(e.id, e.to_json()) for e in events]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR REPLACE INTO rollups (rollup_key, tenants, first_seen) VALUES (?, ?, ?)",
                (
                    (r.key, _dumps(sorted(r.tenants), "a rollup"), _ts(r.first_seen))
                    for r in records
                ),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO events (event_id, tenant_key, type, body, created_at, "
                "rollup) VALUES (?, '', ?, ?, ?, 1)",
                ((i, str(e.type), body, now) for (i, body), e in zip(rows, events, strict=True)),
            )
            conn.executemany(INSERT_DELIVERIES, ((now, i) for i, _ in rows))
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_seq', ?)",
                (str(through_seq),),
            )

        self._transaction("storing rollups", run)

    async def due_snapshots(
        self, tenant_id: str, kind: EntityKind, until: datetime
    ) -> dict[str, Snapshot]:
        return await self._call(self._due_snapshots_sync, tenant_id.lower(), kind, until)

    def _due_snapshots_sync(
        self, key: str, kind: EntityKind, until: datetime
    ) -> dict[str, Snapshot]:

        try:
            rows = (
                self._db()
                .execute(
                    "SELECT entity_id, data, active, due_at FROM snapshots WHERE tenant_key = ? AND "
                    "kind = ? AND due_at IS NOT NULL AND due_at <= ?",
                    (key, kind, _ts(until)),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise self._error("reading snapshots", exc) from exc
        return {
            row[0]: Snapshot(
                kind=kind,
                entity_id=row[0],
                data=_loads(row[1]),
                active=bool(row[2]),
                due=_dt(row[3]),
            )
            for row in rows
        }
