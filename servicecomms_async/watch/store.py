"""What the watcher keeps between polls, and the protocol a state store implements.

Per tenant: its :class:`TenantState` (cursor, last success, failures in a row), a lossless
:class:`Snapshot` of every entity it has seen (Graph's JSON as sent), the events not yet acknowledged,
and one :class:`DailyStatus` per service and UTC day (what the watcher saw; the legacy operations over
Graph prefer it to a reconstruction). A poll's results are written by one :meth:`StateStore.commit`,
in one transaction: snapshots, tenant state and events together or not at all. So a crash at any
moment either loses the whole poll (the next one computes the same events, with the same ids) or
nothing.

:class:`~servicecomms_async.watch.SQLiteStateStore` is the default; another database implements
:class:`StateStore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any, Literal, Protocol

import attrs

from ..errors import ServiceCommsError
from .events import WatchEvent

__all__ = [
    "DailyStatus",
    "Delivery",
    "DeliveryRecord",
    "EntityKind",
    "OutboxStore",
    "PollCommit",
    "RollupRecord",
    "SinkInfo",
    "Snapshot",
    "StateStore",
    "StateStoreError",
    "StoredEvent",
    "TenantState",
]

EntityKind = Literal["service", "issue", "message"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("service", "issue", "message")


class StateStoreError(ServiceCommsError):
    """The state file cannot be used: not a database, another program's database, written by a newer
    version, corrupt, or in use by another watcher. It is never overwritten."""


@attrs.frozen(kw_only=True)
class TenantState:
    """Where one tenant's watch stands."""

    tenant_id: str  # as the user gave it (a GUID lower-cased, or a domain)
    cursor: datetime | None = (
        None  # server time of the first response of the last fully successful poll
    )
    last_success: datetime | None = None  # when that poll ran (server time)
    last_attempt: datetime | None = None  # the last poll, successful or not (server or client time)
    failures_in_a_row: int = 0
    last_error: Mapping[str, Any] | None = None  # {"type", "status", "code", "message"}
    last_full_resync: datetime | None = None  # server time of the last poll without the filter

    @property
    def has_baseline(self) -> bool:
        """Whether a poll of this tenant has ever succeeded."""
        return self.last_success is not None


@attrs.frozen(kw_only=True)
class Snapshot:
    """One entity as Graph last sent it. ``active`` marks issues not resolved (the store can list
    them without reading every snapshot)."""

    kind: EntityKind
    entity_id: str
    data: Mapping[str, Any]
    active: bool = False
    # When an action is required by (a Message Center post's actionRequiredByDateTime), indexed
    # so that the posts coming due can be found without reading every snapshot.
    due: datetime | None = None


@attrs.frozen(kw_only=True)
class DailyStatus:
    """The worst a service was seen in one UTC day by the watcher, and the issues seen active then.

    ``status`` and the values of ``feature_groups`` (featureGroup -> status) are Graph status values.
    """

    tenant_id: str
    service_id: str  # healthOverviews' id, the legacy workload id
    day: date
    status: str
    incident_ids: tuple[str, ...] = ()
    feature_groups: Mapping[str, str] = attrs.field(factory=dict)
    observed_at: datetime | None = None  # the last poll that updated this record


@attrs.frozen(kw_only=True)
class PollCommit:
    """Everything one poll of one tenant writes, in one transaction."""

    state: TenantState
    snapshots: Sequence[Snapshot] = ()  # inserted or replaced
    # Entities a full resync no longer found (expired posts, a service the tenant left): deleted, so
    # that the store holds what Graph holds instead of everything ever seen.
    removed: Sequence[tuple[EntityKind, str]] = ()
    events: Sequence[WatchEvent] = ()  # inserted unless an event with the same id exists
    daily: Sequence[DailyStatus] = ()  # inserted or replaced, by (tenant, service, day)


@attrs.frozen(kw_only=True)
class StoredEvent:
    """An event as stored: its insertion order and whether it was acknowledged."""

    seq: int
    event: WatchEvent
    created_at: datetime
    acked_at: datetime | None = None


class StateStore(Protocol):
    """A watcher's durable state. Every method is a coroutine; one writer at a time."""

    async def open(self) -> None:
        """Create or open the store; refuse (``StateStoreError``) what is not a store of ours."""

    async def aclose(self) -> None:
        """Close; safe to call more than once."""

    async def __aenter__(self) -> StateStore:
        """``open()``; ``async with store:`` closes it on the way out."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def tenant_states(self) -> list[TenantState]:
        """Every tenant the store knows, by tenant id."""

    async def tenant_state(self, tenant_id: str) -> TenantState | None:
        """One tenant's state (None when it was never polled)."""

    async def snapshots(
        self, tenant_id: str, kind: EntityKind, entity_ids: Iterable[str] | None = None
    ) -> dict[str, Snapshot]:
        """The stored snapshots of ``kind`` for a tenant, by entity id: those of ``entity_ids``
        (ids not stored are left out), or all of them when ``entity_ids`` is None."""

    async def active_snapshots(self, tenant_id: str, kind: EntityKind) -> dict[str, Snapshot]:
        """The snapshots of ``kind`` stored with ``active=True``, by entity id."""

    async def commit(self, commit: PollCommit) -> None:
        """Write one poll's results atomically (see :class:`PollCommit`)."""

    async def pending_events(self, *, limit: int | None = None) -> list[StoredEvent]:
        """Events not acknowledged yet, oldest first (insertion order)."""

    async def pending_counts(self) -> dict[str, int]:
        """Unacknowledged events per tenant id (tenants with none left out)."""

    async def ack(self, event_ids: Iterable[str]) -> int:
        """Mark events delivered; returns how many were pending. Unknown ids are ignored."""

    async def daily_statuses(
        self, tenant_id: str, since: date, until: date, service_id: str | None = None
    ) -> list[DailyStatus]:
        """The daily records of a tenant from ``since`` to ``until`` (both included)."""

    async def due_snapshots(
        self, tenant_id: str, kind: EntityKind, until: datetime
    ) -> dict[str, Snapshot]:
        """Snapshots of ``kind`` whose ``due`` is set and at or before ``until``, by entity id."""


# -- the outbox: deliveries per sink ------------------------------------------------------------------

DeliveryState = Literal["pending", "delivered", "dead"]
DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "delivered", "dead")


@attrs.frozen(kw_only=True)
class SinkInfo:
    """A sink as the outbox knows it: events stored after it was first registered are delivered to
    it (per-tenant events to a sink without ``rollup``, rollups to one with it)."""

    name: str
    kind: str
    rollup: bool = False


@attrs.frozen(kw_only=True)
class Delivery:
    """One event due for one sink."""

    sink: str
    event: WatchEvent
    seq: int
    attempts: int
    created_at: datetime


@attrs.frozen(kw_only=True)
class DeliveryRecord:
    """One event's delivery state for one sink (``servicecomms watch deliveries``)."""

    event_id: str
    sink: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    type: str
    tenant_id: str
    subject: str


@attrs.frozen(kw_only=True)
class RollupRecord:
    """Which tenants a rollup (one change seen in several tenants) has reported so far."""

    key: str
    tenants: tuple[str, ...]
    first_seen: datetime


class OutboxStore(Protocol):
    """The outbox half of a state store: each event's delivery state per sink, stored with the
    events themselves (a poll's commit creates the deliveries of its events), and the rollups."""

    async def register_sinks(self, sinks: Sequence[SinkInfo]) -> None:
        """Make the sinks known; a new one takes the events stored from now on (not the backlog)."""

    async def due_deliveries(self, sink: str, now: datetime, *, limit: int) -> list[Delivery]:
        """Pending deliveries of ``sink`` that are due at ``now``, oldest first; a delivery whose
        tenant has an earlier one still waiting for its next attempt is not due (per-tenant order)."""

    async def next_attempt(self, sink: str) -> datetime | None:
        """When the earliest pending delivery of ``sink`` that waits for a retry is due (None: none)."""

    async def mark_delivered(self, sink: str, event_ids: Sequence[str], now: datetime) -> None:
        """Record delivery; an event delivered to every sink that takes it is acknowledged."""

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
        """Record a failed attempt: retried at ``next_attempt_at``, or ``dead``."""

    async def pending_summary(self, sink: str) -> tuple[int, datetime | None]:
        """How many deliveries of ``sink`` are pending, and when the oldest of them was made."""

    async def deliveries(
        self, *, states: Sequence[DeliveryState] = ("pending", "dead"), sink: str | None = None
    ) -> list[DeliveryRecord]:
        """Deliveries in ``states`` (oldest first), of one sink or all."""

    async def replay(
        self,
        sink: str,
        *,
        since: datetime | None = None,
        event_id: str | None = None,
        dead: bool = False,
    ) -> int:
        """Deliver again: dead deliveries (``dead``), one event (``event_id``), or every stored
        event created at or after ``since``; returns how many became pending."""

    async def ack_unrouted(self) -> int:
        """Acknowledge events that no registered sink takes (e.g. per-tenant events when every sink
        takes rollups); returns how many."""

    async def rollups(self, keys: Sequence[str]) -> dict[str, RollupRecord]:
        """The stored rollups among ``keys``."""

    async def unrolled_events(self, *, limit: int) -> tuple[list[WatchEvent], int]:
        """Per-tenant events stored after the last rolled-up one (oldest first, at most ``limit``),
        and the ``seq`` of the last of them (to pass to :meth:`commit_rollups`)."""

    async def commit_rollups(
        self, records: Sequence[RollupRecord], events: Sequence[WatchEvent], *, through_seq: int
    ) -> None:
        """Store rollup records and their events (with their deliveries), and that every event up to
        ``through_seq`` is rolled up, in one transaction: a crash in between rolls them up again."""
