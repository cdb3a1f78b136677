"""A state store that lives in memory: for tests, and for a watcher whose state may die with it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from types import TracebackType

import orjson

from .store import (
    DailyStatus,
    EntityKind,
    PollCommit,
    Snapshot,
    StoredEvent,
    TenantState,
)

__all__ = ["MemoryStateStore"]


class MemoryStateStore:
    """:class:`~servicecomms_async.watch.StateStore` in dictionaries. A commit is applied whole (it is
    checked before anything changes); nothing survives the process."""

    def __init__(self) -> None:
        self._tenants: dict[str, TenantState] = {}
        self._snapshots: dict[tuple[str, EntityKind], dict[str, Snapshot]] = {}
        self._events: dict[str, StoredEvent] = {}
        self._daily: dict[tuple[str, str, date], DailyStatus] = {}
        self._seq = 0

    def __repr__(self) -> str:
        return f"MemoryStateStore({len(self._tenants)} tenants, {len(self._events)} events)"

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> MemoryStateStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def tenant_states(self) -> list[TenantState]:
        return [self._tenants[t] for t in sorted(self._tenants)]

    async def tenant_state(self, tenant_id: str) -> TenantState | None:
        return self._tenants.get(tenant_id.lower())

    async def snapshots(
        self, tenant_id: str, kind: EntityKind, entity_ids: Iterable[str] | None = None
    ) -> dict[str, Snapshot]:
        stored = self._snapshots.get((tenant_id.lower(), kind), {})
        if entity_ids is None:
            return dict(stored)
        return {i: stored[i] for i in entity_ids if i in stored}

    async def active_snapshots(self, tenant_id: str, kind: EntityKind) -> dict[str, Snapshot]:
        stored = self._snapshots.get((tenant_id.lower(), kind), {})
        return {i: s for i, s in stored.items() if s.active}

    async def commit(self, commit: PollCommit) -> None:
        # Copy through JSON first: a value that cannot be stored fails before anything changes,
        # and later changes to the caller's dicts cannot reach the store.
        snapshots = [
            Snapshot(
                kind=s.kind,
                entity_id=s.entity_id,
                data=orjson.loads(orjson.dumps(s.data)),
                active=s.active,
            )
            for s in commit.snapshots
        ]
        events = [type(e).from_json(e.to_json()) for e in commit.events]
        tenant = commit.state.tenant_id.lower()
        for snapshot in snapshots:
            self._snapshots.setdefault((tenant, snapshot.kind), {})[snapshot.entity_id] = snapshot
        for kind, entity_id in commit.removed:
            self._snapshots.get((tenant, kind), {}).pop(entity_id, None)
        now = datetime.now(timezone.utc)
        for event in events:
            if event.id not in self._events:
                self._seq += 1
                self._events[event.id] = StoredEvent(seq=self._seq, event=event, created_at=now)
        for record in commit.daily:
            self._daily[(record.tenant_id.lower(), record.service_id, record.day)] = record
        self._tenants[tenant] = commit.state

    async def pending_events(self, *, limit: int | None = None) -> list[StoredEvent]:
        pending = sorted(
            (s for s in self._events.values() if s.acked_at is None), key=lambda s: s.seq
        )
        return pending if limit is None else pending[:limit]

    async def pending_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stored in self._events.values():
            if stored.acked_at is None:
                tenant = stored.event.tenant_id.lower()
                counts[tenant] = counts.get(tenant, 0) + 1
        return counts

    async def ack(self, event_ids: Iterable[str]) -> int:
        now = datetime.now(timezone.utc)
        acked = 0
        for event_id in event_ids:
            stored = self._events.get(event_id)
            if stored is not None and stored.acked_at is None:
                self._events[event_id] = StoredEvent(
                    seq=stored.seq, event=stored.event, created_at=stored.created_at, acked_at=now
                )
                acked += 1
        return acked

    async def due_snapshots(
        self, tenant_id: str, kind: EntityKind, until: datetime
    ) -> dict[str, Snapshot]:
        stored = self._snapshots.get((tenant_id.lower(), kind), {})
        return {i: s for i, s in stored.items() if s.due is not None and s.due <= until}

    async def daily_statuses(
        self, tenant_id: str, since: date, until: date, service_id: str | None = None
    ) -> list[DailyStatus]:
        tenant = tenant_id.lower()
        return sorted(
            (
                d
                for (t, s, day), d in self._daily.items()
                if t == tenant and since <= day <= until and (service_id is None or s == service_id)
            ),
            key=lambda d: (d.service_id, d.day),
        )
