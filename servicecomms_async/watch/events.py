"""Watch events: one typed change of one entity in one tenant, as a CloudEvents 1.0 structured event.

::

    {"specversion": "1.0", "id": "5f0c...", "source": "/tenants/<tenantId>", "type": "issue.updated",
     "subject": "EX123456", "time": "2026-12-02T10:15:00Z", "datacontenttype": "application/json",
     "data": {"tenantId": ..., "entity": {...as Graph sent it...}, "previous": {...} | null,
              "changes": ["status", "posts"], "newPosts": [...]}}

``id`` is deterministic: the same change of the same entity in the same tenant always gets the same id,
however often it is computed or delivered, so a consumer de-duplicates on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
import orjson

from .._modeling import OpenStrEnum
from .._wire import format_datetime, parse_datetime

__all__ = ["ROLLUP_SOURCE", "EventType", "WatchEvent", "event_id"]


class EventType(OpenStrEnum):
    """What changed (the CloudEvent's ``type``)."""

    ISSUE_OPENED = "issue.opened"
    ISSUE_UPDATED = "issue.updated"
    ISSUE_RESOLVED = "issue.resolved"
    ISSUE_REOPENED = "issue.reopened"
    MESSAGE_PUBLISHED = "message.published"
    MESSAGE_UPDATED = "message.updated"
    SERVICE_STATUS_CHANGED = "service.status_changed"
    TENANT_FAILED = "tenant.failed"
    TENANT_RECOVERED = "tenant.recovered"
    MESSAGE_ACTION_DUE = (
        "message.action_due"  # a post's actionRequiredByDateTime within a threshold
    )


ROLLUP_SOURCE = "/rollup"


def event_id(tenant_id: str, type: EventType | str, subject: str, change: bytes | str) -> str:
    """The deterministic id of a change: a digest of the tenant, the type, the entity and what the
    change was (``change``: a fingerprint of the entity's new state, or of the transition)."""
    digest = hashlib.sha256()
    for part in (tenant_id.lower(), str(type), subject):
        digest.update(part.encode())
        digest.update(b"\x1f")
    digest.update(change.encode() if isinstance(change, str) else change)
    return digest.hexdigest()[:32]


@attrs.frozen(kw_only=True)
class WatchEvent:
    """One change, ready to deliver. ``data`` is plain JSON (Graph's camelCase keys).

    A **rollup** (``rollup=True``, ``source`` ``/rollup``) is one change seen in several tenants: its
    ``tenant_id`` is empty, and ``data`` adds ``affectedTenants`` (sorted) and ``tenantCount``; a
    follow-up for tenants that saw the same change later has the same ``type`` and ``subject`` and adds
    ``tenantsAdded`` (sorted) instead of posting again.
    """

    id: str
    type: EventType
    tenant_id: str
    subject: str
    time: datetime  # the server time of the poll that saw the change
    data: Mapping[str, Any] = attrs.field(repr=False)
    rollup: bool = False

    @property
    def source(self) -> str:
        return ROLLUP_SOURCE if self.rollup else f"/tenants/{self.tenant_id}"

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents 1.0 structured form (a JSON object)."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": str(self.type),
            "subject": self.subject,
            "time": format_datetime(self.time),
            "datacontenttype": "application/json",
            "data": dict(self.data),
        }

    def to_json(self) -> bytes:
        """The structured CloudEvent as compact JSON bytes (one line)."""
        return orjson.dumps(self.to_cloudevent())

    @classmethod
    def from_cloudevent(cls, event: Mapping[str, Any]) -> WatchEvent:
        """Read back what :meth:`to_cloudevent` wrote (``ValueError`` when it is not one)."""
        try:
            source = str(event["source"])
            rollup = source == ROLLUP_SOURCE
            if not rollup and not source.startswith("/tenants/"):
                raise ValueError(f"source {source!r} is not /tenants/<tenantId> or /rollup")
            data = event["data"]
            if not isinstance(data, dict):
                raise ValueError("data is not a JSON object")
            return cls(
                id=str(event["id"]),
                type=EventType(str(event["type"])),
                tenant_id="" if rollup else source.removeprefix("/tenants/"),
                subject=str(event["subject"]),
                time=parse_datetime(str(event["time"])),
                data=data,
                rollup=rollup,
            )
        except KeyError as exc:
            raise ValueError(f"not a watch CloudEvent: it has no {exc.args[0]!r}") from None

    @classmethod
    def from_json(cls, text: bytes | str) -> WatchEvent:
        return cls.from_cloudevent(orjson.loads(text))
