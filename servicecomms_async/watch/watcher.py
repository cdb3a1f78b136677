"""The watcher: polls every tenant's service health on Microsoft Graph and turns what changed into
durable events.

::

    async with ServiceCommsSession(credential_factory, api="graph") as session:
        async with Watcher(session, tenant_ids, "watch.db") as watcher:
            async for event in watcher.events(interval=300):
                await deliver(event)
                await watcher.ack(event)

One poll (:meth:`Watcher.poll`) runs over every tenant with the session's scan machinery (bounded,
each tenant isolated: a tenant's failure is a ``tenant.failed`` event, not a crash). Per tenant it:

1. asks for ``healthOverviews`` (always whole: it has no ``lastModifiedDateTime``), then ``issues`` and
   ``messages`` changed since ``cursor - overlap`` (``$filter=lastModifiedDateTime ge ...``, ``Prefer:
   odata.maxpagesize=1000``, every next link followed). The cursor is the server's time (the ``Date``
   header of the poll's first response), never this machine's clock, and it moves only when the
   tenant's poll succeeded whole. Re-seeing an item in the overlap makes no event: the diff is
   idempotent.
2. compares each entity with its stored snapshot (:mod:`~servicecomms_async.watch.diff`);
3. every ``full_resync`` (6 hours by default, spread over the tenants by a hash of their ids) asks
   without the filter, to catch changes whose ``lastModifiedDateTime`` did not move;
4. writes the snapshots, the cursor, the events and the day's status records in one transaction.

Events stay in the store until acknowledged (:meth:`Watcher.ack`): a consumer that crashes gets them
again, with the same ids.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .. import _constants, telemetry
from .._status import rank
from .._validate import validate_int, validate_seconds
from .._wire import parse_datetime
from ..dialects import GRAPH
from ..errors import UnexpectedResponseError
from ..graph import GraphClient
from ..graph.client import GraphResource
from ..scan import ScanItem, TenantFailed, plan_tenants
from .diff import BASELINES, Baseline, Kind, Observation, diff_entity
from .events import EventType, WatchEvent, event_id
from .sqlite import SQLiteStateStore
from .store import DailyStatus, PollCommit, Snapshot, StateStore, TenantState

if TYPE_CHECKING:
    from ..session import ServiceCommsSession

__all__ = ["CycleReport", "Watcher"]

logger = logging.getLogger("servicecomms_async.watch")

_KINDS: tuple[tuple[Kind, GraphResource], ...] = (
    ("service", "healthOverviews"),
    ("issue", "issues"),
    ("message", "messages"),
)


@attrs.frozen(kw_only=True)
class CycleReport:
    """What one poll did."""

    tenants: int
    succeeded: int
    failed: tuple[str, ...]  # tenant ids whose poll failed
    events: int
    requests: int
    seconds: float


class Watcher:
    """Polls ``tenant_ids`` on a Graph ``session`` and keeps their state in ``store`` (a
    :class:`~servicecomms_async.watch.StateStore`, or a path: a SQLite file the watcher opens and closes).

    ``baseline`` says what a tenant's first successful poll emits: ``"active"`` (default) its unresolved
    issues as ``issue.opened`` and its services that are not operational as ``service.status_changed``,
    each with ``"baseline": true`` in ``data``; ``"all"`` every issue, post and service; ``"none"``
    nothing. ``overlap`` (10 minutes) is subtracted from the cursor; ``full_resync`` (6 hours) is how
    often a tenant is asked without the filter; ``concurrency`` and ``tenant_timeout`` are the scan's.
    ``action_due`` (30, 7 and 1 days; empty: none) are the thresholds of ``message.action_due``: once
    per threshold when a post's ``actionRequiredByDateTime`` comes that close.
    """

    def __init__(
        self,
        session: ServiceCommsSession[GraphClient],
        tenant_ids: Iterable[str],
        store: StateStore | str | os.PathLike[str],
        *,
        baseline: Baseline = "active",
        overlap: timedelta | float = timedelta(minutes=10),
        full_resync: timedelta | float = timedelta(hours=6),
        concurrency: int = _constants.SCAN_CONCURRENCY,
        tenant_timeout: float | None = None,
        page_size: int = _constants.GRAPH_MAX_PAGE_SIZE,
        action_due: Sequence[int] = (30, 7, 1),
    ) -> None:
        if getattr(session, "dialect", None) is not GRAPH:
            raise TypeError(
                "the watcher needs a Microsoft Graph session: ServiceCommsSession(..., api='graph')"
            )
        self._session = session
        planned = plan_tenants(tenant_ids)
        bad = [p for p in planned if p.invalid is not None]
        if bad:
            raise ValueError(f"tenant_ids: {bad[0].invalid}")
        self.tenant_ids: list[str] = [p.tenant_id for p in planned]
        if not self.tenant_ids:
            raise ValueError("tenant_ids is empty: name at least one tenant to watch")
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        self.baseline: Baseline = baseline
        self.overlap = _seconds(overlap, "overlap")
        self.full_resync = _seconds(full_resync, "full_resync")
        if self.full_resync <= 0:
            raise ValueError("full_resync must be more than 0 seconds")
        self.concurrency = validate_int(concurrency, "concurrency", minimum=1)
        self.tenant_timeout = validate_seconds(tenant_timeout, "tenant_timeout", allow_none=True)
        self.page_size = validate_int(page_size, "page_size", minimum=1)
        if isinstance(action_due, (str, bytes)):
            raise TypeError("action_due must be a sequence of days, such as (30, 7, 1)")
        self.action_due: tuple[int, ...] = tuple(
            sorted({validate_int(d, "action_due", minimum=1) for d in action_due}, reverse=True)
        )
        if isinstance(store, (str, os.PathLike)):
            self._store: StateStore = SQLiteStateStore(os.fspath(store))
            self._owns_store = True
        else:
            self._store = store
            self._owns_store = False
        self._opened = False
        self.last_cycle: CycleReport | None = None
        # For the staleness gauge: each tenant's last successful poll (time.time()), and when
        # this watcher began (what a tenant never polled successfully is measured from).
        self._started = time.time()
        self._last_success: dict[str, float] = {}
        telemetry.watch_source(self)

    def __repr__(self) -> str:
        return f"Watcher({len(self.tenant_ids)} tenants, baseline={self.baseline!r})"

    @property
    def store(self) -> StateStore:
        return self._store

    async def __aenter__(self) -> Watcher:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the store when the watcher owns it (``async with`` does this)."""
        if self._owns_store and not self._opened:
            await self._store.open()
        self._opened = True

    async def aclose(self) -> None:
        if self._owns_store and self._opened:
            await self._store.aclose()
        self._opened = False

    # -- the feed -----------------------------------------------------------------------------------

    def staleness(self) -> list[tuple[str, float]]:
        """Seconds since each tenant's last successful poll (since this watcher began, for a
        tenant never polled successfully): the ``servicecomms.watch.staleness`` gauge."""
        now = time.time()
        last, started = self._last_success, self._started
        return [(t, max(0.0, now - last.get(t, started))) for t in self.tenant_ids]

    async def poll(self) -> list[WatchEvent]:
        """One cycle over every tenant; returns the events it made, already stored."""
        with telemetry.operation_span(
            "servicecomms.watch.cycle",
            attributes={"servicecomms.watch.tenants": len(self.tenant_ids)},
        ) as span:
            made = await self._poll()
            cycle = self.last_cycle
            assert cycle is not None
            span.set("servicecomms.watch.succeeded", cycle.succeeded)
            span.set("servicecomms.watch.failed", len(cycle.failed))
            span.set("servicecomms.watch.events", cycle.events)
            span.set("servicecomms.watch.requests", cycle.requests)
        if telemetry.ENABLED:
            telemetry.watch_events(event.type.value for event in made)
        return made

    async def _poll(self) -> list[WatchEvent]:
        if not self._opened:
            await self.open()
        started = time.monotonic()
        sent_before = self._session.requests_sent
        states = {s.tenant_id: s for s in await self._store.tenant_states()}
        for state in states.values():
            if state.last_success is not None and state.tenant_id not in self._last_success:
                self._last_success[state.tenant_id] = state.last_success.timestamp()
        made: list[WatchEvent] = []
        failed: list[str] = []
        succeeded = 0

        async def poll_one(client: GraphClient) -> AsyncIterator[list[WatchEvent]]:
            tenant = client.tenant_id
            with telemetry.operation_span("servicecomms.watch.tenant", tenant=tenant) as span:
                events = await self._poll_tenant(client, states.get(tenant))
                span.set("servicecomms.watch.events", len(events))
            yield events

        async with self._session.scan(
            self.tenant_ids,
            poll_one,
            concurrency=self.concurrency,
            tenant_timeout=self.tenant_timeout,
        ) as results:
            async for result in results:
                if isinstance(result, ScanItem):
                    made.extend(result.value)
                    succeeded += 1
                    self._last_success[result.tenant_id] = time.time()
                elif isinstance(result, TenantFailed):
                    failed.append(result.tenant_id)
                    made.extend(
                        await self._record_failure(
                            result.tenant_id, result.error, states.get(result.tenant_id)
                        )
                    )
        self.last_cycle = CycleReport(
            tenants=len(self.tenant_ids),
            succeeded=succeeded,
            failed=tuple(failed),
            events=len(made),
            requests=self._session.requests_sent - sent_before,
            seconds=time.monotonic() - started,
        )
        return made

    def check_interval(self, interval: timedelta | float) -> float:
        """``interval`` in seconds, refused (``ValueError``) when polling that often would spend
        more of a tenant's request budget than its windows allow: a poll costs 3 requests (more
        pages only when over 1,000 items changed), and a full resync 3 more every ``full_resync``."""
        seconds = _seconds(interval, "interval")
        if seconds <= 0:
            raise ValueError("interval must be more than 0 seconds")
        budget = getattr(self._session, "budget", None)
        for requests, window in budget.per_tenant if budget is not None else ():
            needed = 3 * math.ceil(window / seconds) + 3 * math.ceil(window / self.full_resync)
            if needed > requests:
                raise ValueError(
                    f"polling every {seconds:g} s costs each tenant about {needed} requests in "
                    f"{window:g} s, over its budget of {requests}: poll less often (Graph allows "
                    "240 requests a minute and 800 an hour per tenant), or give the session "
                    "another budget"
                )
        return seconds

    async def events(self, interval: timedelta | float = 300) -> AsyncIterator[WatchEvent]:
        """Every event not acknowledged yet (from earlier runs too), then a poll every ``interval``
        and its new events, forever. Acknowledge each with :meth:`ack` once it is handled.
        ``interval`` is checked against the session's request budget (:meth:`check_interval`)."""
        seconds = self.check_interval(interval)
        last_seq = 0
        while True:
            for stored in await self._store.pending_events():
                if stored.seq > last_seq:
                    last_seq = stored.seq
                    yield stored.event
            started = time.monotonic()
            await self.poll()
            for stored in await self._store.pending_events():
                if stored.seq > last_seq:
                    last_seq = stored.seq
                    yield stored.event
            await anyio.sleep(max(0.0, seconds - (time.monotonic() - started)))

    async def pending(self) -> list[WatchEvent]:
        """The events not acknowledged yet, oldest first."""
        return [stored.event for stored in await self._store.pending_events()]

    async def ack(self, *events: WatchEvent | str | Iterable[WatchEvent | str]) -> int:
        """Mark events (or event ids) handled; they are not given again. Returns how many were pending."""
        ids: list[str] = []
        for item in events:
            if isinstance(item, (WatchEvent, str)):
                ids.append(item.id if isinstance(item, WatchEvent) else item)
            else:
                ids.extend(e.id if isinstance(e, WatchEvent) else e for e in item)
        return await self._store.ack(ids)

    # -- one tenant ---------------------------------------------------------------------------------

    async def _poll_tenant(
        self, client: GraphClient, state: TenantState | None
    ) -> list[WatchEvent]:
        tenant = client.tenant_id
        fetched: dict[Kind, list[dict[str, Any]]] = {}
        server_time: datetime | None = None
        # Whether a full resync is due is decided on the server's clock, once the first response
        # (healthOverviews, always whole) has told it.
        full = state is None or state.cursor is None
        since: datetime | None = None
        for kind, resource in _KINDS:
            if kind != "service" and not full:
                assert state is not None
                assert state.cursor is not None
                since = state.cursor - timedelta(seconds=self.overlap)
            items: list[dict[str, Any]] = []
            pager = client.json_items(
                resource,
                since=since if kind != "service" else None,
                page_size=self.page_size if kind != "service" else None,
            )
            async for page in pager.pages():
                if server_time is None:
                    server_time = page.server_time or datetime.now(timezone.utc)
                    if state is not None and state.cursor is not None and not full:
                        full = self._resync_due(state, server_time)
                items.extend(page.items)
            fetched[kind] = items
        assert server_time is not None  # every pager yields at least one page
        baseline = state is None or not state.has_baseline
        seen = Observation(tenant, server_time, baseline=baseline, baseline_mode=self.baseline)
        events: list[WatchEvent] = []
        snapshots: list[Snapshot] = []
        current_issues: Mapping[str, Mapping[str, Any]] = {}
        removed: list[tuple[Kind, str]] = []
        for kind, items in fetched.items():
            by_id = _by_id(kind, items, tenant)
            if full and not baseline:
                # A full answer: what is stored and no longer there has expired.
                stored = await self._store.snapshots(tenant, kind)
                removed += [(kind, gone) for gone in stored if gone not in by_id]
            else:
                stored = await self._store.snapshots(tenant, kind, list(by_id))
            for entity_id, entity in by_id.items():
                previous = stored.get(entity_id)
                events += diff_entity(
                    kind,
                    entity_id,
                    previous.data if previous is not None else None,
                    entity,
                    seen,
                    previous_poll=state.last_success if state is not None else None,
                )
                active = kind == "issue" and entity.get("isResolved") is not True
                due = _parse(entity.get("actionRequiredByDateTime")) if kind == "message" else None
                snapshots.append(
                    Snapshot(kind=kind, entity_id=entity_id, data=entity, active=active, due=due)
                )
            if kind == "issue":
                current_issues = by_id
            if kind == "message":
                events += await self._coming_due(tenant, by_id, seen, state)
        if state is not None and state.failures_in_a_row:
            events.append(_recovered(tenant, state, server_time))
        daily = await self._daily(tenant, server_time, fetched["service"], current_issues)
        await self._store.commit(
            PollCommit(
                state=TenantState(
                    tenant_id=tenant,
                    cursor=server_time,
                    last_success=server_time,
                    last_attempt=server_time,
                    failures_in_a_row=0,
                    last_error=None,
                    last_full_resync=self._next_resync_mark(tenant, state, server_time, full),
                ),
                snapshots=snapshots,
                removed=removed,
                events=events,
                daily=daily,
            )
        )
        return events

    async def _coming_due(
        self,
        tenant: str,
        fresh: Mapping[str, Mapping[str, Any]],
        seen: Observation,
        state: TenantState | None,
    ) -> list[WatchEvent]:
        """``message.action_due`` for the posts whose ``actionRequiredByDateTime`` came within a
        threshold since the previous poll: once per threshold (the tightest crossed, when a poll
        crosses several), never for a post already past due."""
        if not self.action_due or (seen.baseline and self.baseline != "all"):
            return []
        now = seen.time
        widest = timedelta(days=max(self.action_due))
        stored = await self._store.due_snapshots(tenant, "message", now + widest)
        posts: dict[str, Mapping[str, Any]] = {i: s.data for i, s in stored.items()}
        posts.update(fresh)
        previous = state.last_success if state is not None else None
        events: list[WatchEvent] = []
        for post_id, post in posts.items():
            due = _parse(post.get("actionRequiredByDateTime"))
            if due is None or due <= now:
                continue
            crossed = [
                days
                for days in self.action_due
                if due - timedelta(days=days) <= now
                and (previous is None or due - timedelta(days=days) > previous)
            ]
            if not crossed:
                continue
            days = min(crossed)
            events.append(
                seen.event(
                    EventType.MESSAGE_ACTION_DUE,
                    post_id,
                    f"{days}:{due.isoformat()}",
                    {
                        "entity": dict(post),
                        "thresholdDays": days,
                        "dueDateTime": post.get("actionRequiredByDateTime"),
                    },
                )
            )
        return events

    def _resync_due(self, state: TenantState, now: datetime) -> bool:
        if state.last_full_resync is None:
            return True
        return (now - state.last_full_resync).total_seconds() >= self.full_resync

    def _next_resync_mark(
        self, tenant: str, state: TenantState | None, now: datetime, full: bool
    ) -> datetime | None:
        if not full:
            return state.last_full_resync if state is not None else None
        if state is None or not state.has_baseline:
            # Spread the tenants' resyncs over the interval instead of all coming due together.
            share = int(hashlib.sha256(tenant.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            return now - timedelta(seconds=share * self.full_resync)
        return now

    async def _daily(
        self,
        tenant: str,
        now: datetime,
        overviews: list[dict[str, Any]],
        changed_issues: Mapping[str, Mapping[str, Any]],
    ) -> list[DailyStatus]:
        """Today's record per service: the worst status seen today, and the issues seen active today."""
        today = now.date()
        active = {
            i: s.data for i, s in (await self._store.active_snapshots(tenant, "issue")).items()
        }
        active.update(
            changed_issues
        )  # this poll's view wins, resolved ones included: they ran today
        existing = {d.service_id: d for d in await self._store.daily_statuses(tenant, today, today)}
        records: list[DailyStatus] = []
        for overview in overviews:
            service_id = overview.get("id")
            if not isinstance(service_id, str):
                continue
            status = str(overview.get("status") or "serviceOperational")
            name = overview.get("service")
            ids: list[str] = []
            groups: dict[str, str] = {}
            for issue_id, issue in active.items():
                if issue.get("service") != name or not _ran_on(issue, today):
                    continue
                ids.append(issue_id)
                group = issue.get("featureGroup")
                if isinstance(group, str) and group:
                    groups[group] = _worse(groups.get(group), str(issue.get("status")))
            before = existing.get(service_id)
            if before is not None:
                status = _worse(before.status, status)
                ids = list(dict.fromkeys([*before.incident_ids, *ids]))
                for group, group_status in before.feature_groups.items():
                    groups[group] = _worse(groups.get(group), group_status)
            records.append(
                DailyStatus(
                    tenant_id=tenant,
                    service_id=service_id,
                    day=today,
                    status=status,
                    incident_ids=tuple(ids),
                    feature_groups=groups,
                    observed_at=now,
                )
            )
        return records

    async def _record_failure(
        self, tenant: str, error: BaseException, state: TenantState | None
    ) -> list[WatchEvent]:
        now = datetime.now(timezone.utc)
        failures = (state.failures_in_a_row if state is not None else 0) + 1
        described = describe_error(error)
        events: list[WatchEvent] = []
        if failures == 1:
            since = _since_key(state)
            events.append(
                WatchEvent(
                    id=event_id(tenant, EventType.TENANT_FAILED, tenant, since),
                    type=EventType.TENANT_FAILED,
                    tenant_id=tenant,
                    subject=tenant,
                    time=now,
                    data={
                        "tenantId": tenant,
                        "error": described,
                        "lastSuccess": _iso(state.last_success) if state is not None else None,
                    },
                )
            )
        new_state = attrs.evolve(
            state if state is not None else TenantState(tenant_id=tenant),
            failures_in_a_row=failures,
            last_error=described,
            last_attempt=now,
        )
        await self._store.commit(PollCommit(state=new_state, events=events))
        return events


def describe_error(error: BaseException) -> dict[str, Any]:
    """A tenant's failure as plain data: its type, HTTP status, error code and message (the library's
    errors never hold a secret)."""
    return {
        "type": type(error).__name__,
        "status": getattr(error, "status", None),
        "code": getattr(error, "code", None),
        "message": str(error)[:1000],
    }


def _recovered(tenant: str, state: TenantState, now: datetime) -> WatchEvent:
    return WatchEvent(
        id=event_id(tenant, EventType.TENANT_RECOVERED, tenant, _since_key(state)),
        type=EventType.TENANT_RECOVERED,
        tenant_id=tenant,
        subject=tenant,
        time=now,
        data={
            "tenantId": tenant,
            "failuresInARow": state.failures_in_a_row,
            "lastError": dict(state.last_error) if state.last_error is not None else None,
        },
    )


def _since_key(state: TenantState | None) -> str:
    """What names one run of failures: the last success before it (tenant.failed and
    tenant.recovered of the same run share it)."""
    if state is None or state.last_success is None:
        return "never"
    return state.last_success.isoformat()


def _by_id(kind: Kind, items: Sequence[dict[str, Any]], tenant: str) -> dict[str, dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for position, item in enumerate(items):
        entity_id = item.get("id")
        if not isinstance(entity_id, str) or not entity_id:
            raise UnexpectedResponseError(
                f"{kind} {position} of tenant {tenant} has no id (got {type(entity_id).__name__}); "
                "it cannot be compared with what was stored",
                tenant=tenant,
            )
        by_id[entity_id] = item
    return by_id


def _ran_on(issue: Mapping[str, Any], day: date) -> bool:
    """Whether the issue's [start, end or now] overlaps ``day`` (UTC)."""
    start = _parse(issue.get("startDateTime"))
    end = _parse(issue.get("endDateTime"))
    if start is not None and start.date() > day:
        return False
    return end is None or issue.get("isResolved") is not True or end.date() >= day


def _worse(a: str | None, b: str) -> str:
    if a is None:
        return b
    return b if rank(b) > rank(a) else a


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _seconds(value: timedelta | float, name: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    checked = validate_seconds(value, name, allow_zero=True)
    assert checked is not None
    return checked
