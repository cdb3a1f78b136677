"""Which events a fresh entity makes against its stored snapshot: pure functions, no I/O.

The rules (one event per entity per poll, listing every changed field):

* **issues** compare ``status``, ``classification``, ``title``, ``impactDescription``, ``feature``,
  ``featureGroup``, ``endDateTime``, ``isResolved`` and ``posts`` (by their time and text).
  ``isResolved`` false→true is ``issue.resolved``, true→false ``issue.reopened``; any other change is
  ``issue.updated``, whether the issue stays open or stays resolved (a post-incident review is
  published on a resolved issue; it would be silent otherwise). An issue first seen after the baseline
  is ``issue.opened``, followed by ``issue.resolved`` in the same poll when it is resolved already.
* **Message Center posts** compare ``title``, ``body``, ``category``, ``severity``, ``tags``,
  ``services``, ``isMajorChange``, ``actionRequiredByDateTime``, ``endDateTime`` and ``details``:
  ``message.published`` when first seen after the baseline, ``message.updated`` after.
* **services** (``healthOverviews``) compare ``status``: ``service.status_changed``.

``lastModifiedDateTime`` alone is never a change, nor is any field outside those lists (the snapshot
keeps them all). Event ids are digests of the tenant, the type, the entity and the change (the
fingerprints of the compared fields before and after), so computing a change again gives the same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import orjson

from .events import EventType, WatchEvent, event_id

__all__ = [
    "ISSUE_FIELDS",
    "MESSAGE_FIELDS",
    "SERVICE_FIELDS",
    "Baseline",
    "Observation",
    "diff_entity",
    "fingerprint",
]

Baseline = Literal["active", "all", "none"]
BASELINES: tuple[Baseline, ...] = ("active", "all", "none")

ISSUE_FIELDS = (
    "status",
    "classification",
    "title",
    "impactDescription",
    "feature",
    "featureGroup",
    "endDateTime",
    "isResolved",
    "posts",
)
MESSAGE_FIELDS = (
    "title",
    "body",
    "category",
    "severity",
    "tags",
    "services",
    "isMajorChange",
    "actionRequiredByDateTime",
    "endDateTime",
    "details",
)
SERVICE_FIELDS = ("status",)

Json = Mapping[str, Any]
Kind = Literal["service", "issue", "message"]
FIELDS: dict[Kind, tuple[str, ...]] = {
    "service": SERVICE_FIELDS,
    "issue": ISSUE_FIELDS,
    "message": MESSAGE_FIELDS,
}


class Observation:
    """What one poll saw of one tenant, for building its events: the tenant, the server time and
    whether this poll is the tenant's baseline."""

    __slots__ = ("baseline", "baseline_mode", "tenant_id", "time")

    def __init__(
        self, tenant_id: str, time: datetime, *, baseline: bool, baseline_mode: Baseline
    ) -> None:
        self.tenant_id = tenant_id
        self.time = time
        self.baseline = baseline
        self.baseline_mode = baseline_mode

    def event(
        self,
        type: EventType,
        subject: str,
        change: str,
        data: dict[str, Any],
    ) -> WatchEvent:
        return WatchEvent(
            id=event_id(self.tenant_id, type, subject, change),
            type=type,
            tenant_id=self.tenant_id,
            subject=subject,
            time=self.time,
            data={"tenantId": self.tenant_id, **data, "baseline": self.baseline},
        )


def fingerprint(kind: Kind, entity: Json) -> str:
    """A digest of the compared fields of ``entity`` (posts by time and text)."""
    compared = {name: _comparable(name, entity.get(name)) for name in FIELDS[kind]}
    return hashlib.sha256(orjson.dumps(compared, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def changed_fields(kind: Kind, previous: Json, current: Json) -> list[str]:
    """The compared fields whose values differ (in the order of the rules above)."""
    return [
        name
        for name in FIELDS[kind]
        if _comparable(name, previous.get(name)) != _comparable(name, current.get(name))
    ]


def new_posts(previous: Json | None, current: Json) -> list[Any]:
    """The posts of ``current`` that ``previous`` did not have (by time and text), in order."""
    seen = {_post_key(p) for p in _posts(previous)} if previous is not None else set()
    return [p for p in _posts(current) if _post_key(p) not in seen]


def diff_entity(
    kind: Kind,
    entity_id: str,
    previous: Json | None,
    current: Json,
    seen: Observation,
    *,
    previous_poll: datetime | None = None,
) -> list[WatchEvent]:
    """The events ``current`` makes against ``previous`` (its stored snapshot, or None)."""
    if kind == "issue":
        return _issue_events(entity_id, previous, current, seen)
    if kind == "message":
        return _message_events(entity_id, previous, current, seen)
    return _service_events(entity_id, previous, current, seen, previous_poll)


def _issue_events(
    issue_id: str, previous: Json | None, current: Json, seen: Observation
) -> list[WatchEvent]:
    resolved = current.get("isResolved") is True
    if previous is None:
        if seen.baseline and (
            seen.baseline_mode == "none" or (seen.baseline_mode == "active" and resolved)
        ):
            return []
        opened = seen.event(
            EventType.ISSUE_OPENED,
            issue_id,
            "",
            _data(current, None, [], new_posts(None, current)),
        )
        if not resolved:
            return [opened]
        changes = ["isResolved"] + (["endDateTime"] if current.get("endDateTime") else [])
        closed = seen.event(
            EventType.ISSUE_RESOLVED,
            issue_id,
            "opened-resolved:" + fingerprint("issue", current),
            _data(current, None, changes, []),
        )
        return [opened, closed]
    changes = changed_fields("issue", previous, current)
    if not changes:
        return []
    was_resolved = previous.get("isResolved") is True
    if resolved and not was_resolved:
        type = EventType.ISSUE_RESOLVED
    elif was_resolved and not resolved:
        type = EventType.ISSUE_REOPENED
    else:
        type = EventType.ISSUE_UPDATED
    change = fingerprint("issue", previous) + ">" + fingerprint("issue", current)
    return [
        seen.event(
            type, issue_id, change, _data(current, previous, changes, new_posts(previous, current))
        )
    ]


def _message_events(
    message_id: str, previous: Json | None, current: Json, seen: Observation
) -> list[WatchEvent]:
    if previous is None:
        if seen.baseline and seen.baseline_mode != "all":
            return []
        data = _data(current, None, [], None)
        return [seen.event(EventType.MESSAGE_PUBLISHED, message_id, "", data)]
    changes = changed_fields("message", previous, current)
    if not changes:
        return []
    change = fingerprint("message", previous) + ">" + fingerprint("message", current)
    data = _data(current, previous, changes, None)
    return [seen.event(EventType.MESSAGE_UPDATED, message_id, change, data)]


def _service_events(
    service_id: str,
    previous: Json | None,
    current: Json,
    seen: Observation,
    previous_poll: datetime | None,
) -> list[WatchEvent]:
    status = current.get("status")
    if previous is None:
        operational = str(status).lower() == "serviceoperational"
        if seen.baseline and (
            seen.baseline_mode == "none" or (seen.baseline_mode == "active" and operational)
        ):
            return []
        if not seen.baseline and operational:
            return []  # a service that appears healthy is no news
        changes = ["status"]
    else:
        changes = changed_fields("service", previous, current)
        if not changes:
            return []
    # A service's status goes back and forth (degraded, operational, degraded again): the poll the
    # change was first seen after makes the same transition a different change next time.
    before = "" if previous is None else str(previous.get("status"))
    since = previous_poll.isoformat() if previous_poll is not None else "never"
    change = f"{before}>{status}@{since}"
    return [
        seen.event(
            EventType.SERVICE_STATUS_CHANGED,
            service_id,
            change,
            _data(current, previous, changes, None),
        )
    ]


def _data(
    current: Json, previous: Json | None, changes: list[str], posts: Sequence[Any] | None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "entity": dict(current),
        "previous": _plain(previous),
        "changes": changes,
    }
    if posts is not None:
        data["newPosts"] = list(posts)
    return data


def _plain(value: Json | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


def _posts(entity: Json | None) -> list[Any]:
    posts = entity.get("posts") if entity is not None else None
    return posts if isinstance(posts, list) else []


def _post_key(post: Any) -> str:
    if not isinstance(post, dict):
        return orjson.dumps(post, option=orjson.OPT_SORT_KEYS).decode()
    description = post.get("description")
    content = description.get("content") if isinstance(description, dict) else description
    return orjson.dumps([post.get("createdDateTime"), content]).decode()


def _comparable(name: str, value: Any) -> Any:
    if name == "posts":
        return [_post_key(p) for p in value] if isinstance(value, list) else value
    return value
