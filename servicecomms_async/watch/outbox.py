"""The outbox: every stored event delivered to every sink at least once, in order per tenant, with
retries that honour ``Retry-After``, and rollups across tenants for the sinks that take them.

::

    outbox = Outbox(store, [JsonlSink("events.jsonl"), teams], DeliveryPolicy(attempts=8))
    await outbox.open()                  # registers the sinks
    events = await watcher.poll()        # stored with a pending delivery per sink, in one commit
    report = await outbox.deliver(within=60)

Rules:

* **At least once.** A delivery is marked delivered only after the sink returned (a jsonl sink after
  ``fsync``); a crash in between delivers it again, with the same event id.
* **Order.** Each sink gets its events in the order they were stored; one tenant's events wait behind
  its earlier one that failed (other tenants go on). Rollups keep their own order.
* **Retries.** A retryable failure (a timeout, a connection error, 408, 429, 5xx) is tried again after
  an exponential backoff with full jitter (``backoff_initial`` * 2 ** (attempt - 1), at most
  ``backoff_max``), or after the receiver's ``Retry-After`` when it is longer; meanwhile that sink pauses
  (a receiver that is down is not hammered) while the other sinks go on. After ``attempts`` tries, a
  non-retryable failure, or an event older than ``max_age``, the delivery is **dead**: it stays in the
  state (``servicecomms watch deliveries``) until replayed; nothing else is lost.
* **Budget.** :meth:`Outbox.deliver` spends at most ``within`` seconds waiting for retries, then leaves
  the rest pending for the next call (``servicecomms watch --once`` passes ``--delivery-timeout``).
* **Rollups.** The same change (an incident update, a new post) shows up in every affected tenant.
  :meth:`Outbox.roll_up` turns the per-tenant events stored since the last roll-up into one event per
  (entity, change) with ``source`` ``/rollup``, ``data.affectedTenants`` (sorted) and
  ``data.tenantCount``; tenants that see the same change later make one follow-up with
  ``data.tenantsAdded``, never a second post. Rollups are stored and delivered like any event (to the
  sinks that take them: ``teams`` and ``slack`` always, others with ``--rollup``); the per-tenant
  events stay for the others (SIEMs).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .. import _constants, telemetry
from .diff import Kind, fingerprint
from .events import EventType, WatchEvent, event_id
from .sinks import DeliveryError, Sink
from .store import Delivery, OutboxStore, RollupRecord, SinkInfo

if TYPE_CHECKING:
    from .watcher import Watcher

__all__ = ["DeliveryPolicy", "Outbox", "OutboxReport", "rollup_key"]

logger = logging.getLogger("servicecomms_async.watch.outbox")

BATCH = 200  # deliveries read per round
ROLLUP_BATCH = 5000  # per-tenant events rolled up per round


@attrs.frozen(kw_only=True)
class DeliveryPolicy:
    """How hard the outbox tries. ``attempts`` per event and sink (8); ``max_age`` after which an
    undelivered event is dead (a day); the backoff between tries (1 s doubling up to 5 minutes)."""

    attempts: int = attrs.field(default=_constants.DELIVERY_ATTEMPTS)
    max_age: timedelta = timedelta(days=1)
    backoff_initial: float = 1.0
    backoff_max: float = 300.0

    @attempts.validator
    def _check_attempts(self, _: Any, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"attempts must be an int of 1 or more, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0):
            raise ValueError(f"max_age must be a positive timedelta, got {self.max_age!r}")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("backoff_initial must be above 0 and at most backoff_max")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a uniform wait up to the exponential bound of this attempt."""
        bound = min(self.backoff_max, self.backoff_initial * 2 ** max(attempt - 1, 0))
        return rng.uniform(0, bound)


@attrs.frozen(kw_only=True)
class OutboxReport:
    """What one :meth:`Outbox.deliver` did, per sink name."""

    delivered: dict[str, int]
    failed: dict[str, int]  # attempts that failed and will be retried
    dead: dict[str, int]
    pending: dict[str, int]  # left for the next call

    @property
    def total_delivered(self) -> int:
        return sum(self.delivered.values())


class Outbox:
    """Delivers a store's events to ``sinks`` (see the module's rules)."""

    def __init__(
        self,
        store: OutboxStore,
        sinks: Sequence[Sink],
        policy: DeliveryPolicy | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"two sinks share a name: {sorted(names)}; give each its own")
        self.store = store
        self.sinks = list(sinks)
        self.policy = policy or DeliveryPolicy()
        self._rng = rng or random.Random()
        self._now = clock or (lambda: datetime.now(timezone.utc))
        # Per sink after the last delivery run: pending deliveries and the oldest one's creation
        # (for the outbox gauges).
        self._pending: dict[str, tuple[int, datetime | None]] = {}
        telemetry.outbox_source(self)

    def __repr__(self) -> str:
        return f"Outbox({', '.join(s.name for s in self.sinks)})"

    @property
    def rolls_up(self) -> bool:
        """Whether a sink takes rollups."""
        return any(s.rollup for s in self.sinks)

    async def open(self) -> None:
        """Register the sinks: each takes the events stored from its first registration on."""
        await self.store.register_sinks(
            [SinkInfo(name=s.name, kind=s.kind, rollup=s.rollup) for s in self.sinks]
        )

    async def aclose(self) -> None:
        for sink in self.sinks:
            await sink.aclose()

    # -- rollups ------------------------------------------------------------------------------------

    async def roll_up(self) -> list[WatchEvent]:
        """Roll up the per-tenant events stored since the last call (see the module's rules);
        returns the rollups made (already stored). Nothing to do when no sink takes rollups."""
        if not self.rolls_up:
            return []
        made: list[WatchEvent] = []
        while True:
            events, through = await self.store.unrolled_events(limit=ROLLUP_BATCH)
            if not events:
                return made
            groups: dict[str, list[WatchEvent]] = {}
            for event in events:
                groups.setdefault(rollup_key(event), []).append(event)
            existing = await self.store.rollups(list(groups))
            records: list[RollupRecord] = []
            rollups: list[WatchEvent] = []
            now = self._now()
            for key, group in groups.items():
                tenants = sorted({e.tenant_id for e in group})
                before = existing.get(key)
                if before is None:
                    rollups.append(_rollup(key, group, tenants, added=None))
                    records.append(RollupRecord(key=key, tenants=tuple(tenants), first_seen=now))
                    continue
                added = sorted(set(tenants) - set(before.tenants))
                if not added:
                    continue  # every tenant of it was reported already
                everyone = sorted(set(before.tenants) | set(added))
                rollups.append(_rollup(key, group, everyone, added=added))
                records.append(
                    RollupRecord(key=key, tenants=tuple(everyone), first_seen=before.first_seen)
                )
            await self.store.commit_rollups(records, rollups, through_seq=through)
            made += rollups

    # -- one watch cycle ------------------------------------------------------------------------------

    async def cycle(
        self, watcher: Watcher, *, within: float | None = None
    ) -> tuple[list[WatchEvent], OutboxReport]:
        """One watch cycle in its one order: poll every tenant, roll up, deliver (waiting for retries
        at most ``within`` seconds); the rollups made and the delivery report."""
        await watcher.poll()
        rollups = await self.roll_up()
        return rollups, await self.deliver(within=within)

    # -- delivery -----------------------------------------------------------------------------------

    async def deliver(self, *, within: float | None = None) -> OutboxReport:
        """Deliver what is due to every sink, the sinks side by side; wait for retries at most
        ``within`` seconds (None: as long as it takes), then leave the rest pending."""
        deadline = None if within is None else time.monotonic() + within
        report = OutboxReport(delivered={}, failed={}, dead={}, pending={})
        async with anyio.create_task_group() as group:
            for sink in self.sinks:
                group.start_soon(self._drain, sink, deadline, report)
        await self.store.ack_unrouted()
        for sink in self.sinks:
            count, oldest = await self.store.pending_summary(sink.name)
            report.pending[sink.name] = count
            self._pending[sink.name] = (count, oldest)
        if telemetry.ENABLED:
            for state, counts in (
                ("delivered", report.delivered),
                ("failed", report.failed),
                ("dead", report.dead),
            ):
                for name, count in counts.items():
                    telemetry.deliveries(name, state, count)
        return report

    def depth(self) -> list[tuple[str, int, float]]:
        """Per sink: deliveries pending after the last :meth:`deliver` and the age in seconds of
        the oldest of them (0 when none): the ``servicecomms.outbox.*`` gauges."""
        now = self._now()
        return [
            (name, count, max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            for name, (count, oldest) in self._pending.items()
        ]

    async def _drain(self, sink: Sink, deadline: float | None, report: OutboxReport) -> None:
        name = sink.name
        for counts in (report.delivered, report.failed, report.dead):
            counts.setdefault(name, 0)
        while True:
            now = self._now()
            batch = await self.store.due_deliveries(name, now, limit=BATCH)
            if not batch:
                upcoming = await self.store.next_attempt(name)
                if upcoming is None or not await self._wait_until(upcoming, deadline):
                    return
                continue
            failure = await self._send(sink, batch, report)
            if failure is not None and not await self._wait_until(failure, deadline):
                return

    async def _send(
        self, sink: Sink, batch: list[Delivery], report: OutboxReport
    ) -> datetime | None:
        """Deliver ``batch``; returns when the sink may be tried again after a retryable failure."""
        name = sink.name
        try:
            await sink.deliver([d.event for d in batch])
        except DeliveryError as exc:
            error: DeliveryError = exc
        except Exception as exc:  # a sink's own bug or an OS error: retried like a timeout
            logger.warning("sink %s failed unexpectedly: %s", name, type(exc).__name__)
            error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)
        else:
            await self.store.mark_delivered(name, [d.event.id for d in batch], self._now())
            report.delivered[name] += len(batch)
            return None
        done = max(0, min(error.delivered, len(batch)))
        if done:
            await self.store.mark_delivered(name, [d.event.id for d in batch[:done]], self._now())
            report.delivered[name] += done
        if done >= len(batch):
            return None
        failed = batch[done]
        now = self._now()
        attempts = failed.attempts + 1
        dead = (
            not error.retryable
            or attempts >= self.policy.attempts
            or now - failed.created_at >= self.policy.max_age
        )
        wait = self.policy.backoff(attempts, self._rng)
        if error.retry_after is not None:
            wait = max(wait, error.retry_after)
        retry_at = None if dead else now + timedelta(seconds=wait)
        await self.store.mark_failed(
            name,
            failed.event.id,
            attempts=attempts,
            error=str(error),
            next_attempt_at=retry_at,
            dead=dead,
        )
        if dead:
            report.dead[name] += 1
            logger.warning(
                "sink %s: event %s is dead after %d attempts: %s",
                name,
                failed.event.id,
                attempts,
                error,
            )
            return None
        report.failed[name] += 1
        logger.info("sink %s: retrying in %.1f s: %s", name, wait, error)
        return retry_at

    async def _wait_until(self, moment: datetime, deadline: float | None) -> bool:
        """Sleep until ``moment`` if that is within the deadline; False when it is not."""
        wait = max(0.0, (moment - self._now()).total_seconds())
        if deadline is not None and time.monotonic() + wait > deadline:
            return False
        await anyio.sleep(wait)
        return True


def rollup_key(event: WatchEvent) -> str:
    """What makes two tenants' events the same change: the type, the entity and what it became
    (opened and published: the entity alone; a service's status and a tenant's failure: within the
    poll that saw it, since they come and go)."""
    kind = _kind_of(event.type)
    entity = event.data.get("entity")
    base = f"{event.type}|{event.subject}"
    if event.type in (EventType.ISSUE_OPENED, EventType.MESSAGE_PUBLISHED):
        return base
    if event.type is EventType.MESSAGE_ACTION_DUE:
        return f"{base}|{event.data.get('thresholdDays')}|{event.data.get('dueDateTime')}"
    if kind is not None and isinstance(entity, dict):
        return f"{base}|{fingerprint(kind, entity)}"
    if event.type is EventType.SERVICE_STATUS_CHANGED and isinstance(entity, dict):
        return f"{base}|{entity.get('status')}|{event.time:%Y-%m-%dT%H:%M}"
    error = event.data.get("error") if isinstance(event.data.get("error"), dict) else {}
    assert isinstance(error, dict)
    return f"{event.type}|{error.get('type')}|{error.get('status')}|{event.time:%Y-%m-%dT%H:%M}"


def _kind_of(type: EventType) -> Kind | None:
    if type in (
        EventType.ISSUE_UPDATED,
        EventType.ISSUE_RESOLVED,
        EventType.ISSUE_REOPENED,
    ):
        return "issue"
    if type is EventType.MESSAGE_UPDATED:
        return "message"
    return None


def _rollup(
    key: str, group: list[WatchEvent], tenants: list[str], *, added: list[str] | None
) -> WatchEvent:
    first = min(group, key=lambda e: e.tenant_id)  # the same data whoever polled first
    data: dict[str, Any] = {k: v for k, v in first.data.items() if k != "tenantId"}
    if first.type in (EventType.TENANT_FAILED, EventType.TENANT_RECOVERED):
        data.pop("lastSuccess", None)
    data["affectedTenants"] = tenants
    data["tenantCount"] = len(tenants)
    data["baseline"] = all(e.data.get("baseline") for e in group)
    change = key if added is None else f"{key}|+{','.join(added)}"
    if added is not None:
        data["tenantsAdded"] = added
    return WatchEvent(
        id=event_id("", first.type, first.subject, change),
        type=first.type,
        tenant_id="",
        subject=first.subject if first.type.value.split(".")[0] != "tenant" else "tenants",
        time=max(e.time for e in group),
        data=data,
        rollup=True,
    )
