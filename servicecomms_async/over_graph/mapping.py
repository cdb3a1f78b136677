"""Pure functions from Microsoft Graph's service communications items to the legacy models.

Nothing here sends a request. :class:`WorkloadNames` joins Graph's service display names to the
legacy workload ids through one tenant's ``healthOverviews``; the ``*_rows`` functions rebuild
``CurrentStatus`` and ``HistoricalStatus`` from overviews and issues; ``issue_record`` and
``message_record`` turn one Graph issue or Message Center post (its JSON as sent) into the legacy
``/Messages`` wire record, which the library's converter then structures into a
:class:`~servicecomms_async.legacy.models.Message` like any legacy response (so ``strict`` applies,
and keys the legacy model has no field for land in ``extra`` under their Graph names).

The rules are documented in the README ("Legacy operations over Graph").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol
from urllib.parse import quote

from .. import _constants
from .._status import legacy_status, worst
from ..graph.models import ServiceHealth, ServiceHealthIssue
from ..legacy.models import Feature, FeatureStatus, Service, Status, WorkloadStatus

__all__ = [
    "STATUS_DISPLAY",
    "DailyRecord",
    "WorkloadNames",
    "current_status_rows",
    "days_since",
    "fallback_names",
    "feature_groups",
    "historical_rows",
    "issue_record",
    "message_record",
    "service_of",
    "services_rows",
    "status_display",
]

UTC = timezone.utc
_DAY = timedelta(days=1)

# The legacy display text of each status (StatusDisplayName, FeatureServiceStatusDisplayName and
# Messages' Status). An unknown status shows its own value.
STATUS_DISPLAY: Mapping[Status, str] = {
    Status.SERVICE_OPERATIONAL: "Normal service",
    Status.INVESTIGATING: "Investigating",
    Status.RESTORING_SERVICE: "Restoring service",
    Status.VERIFYING_SERVICE: "Verifying service",
    Status.SERVICE_RESTORED: "Service restored",
    Status.POST_INCIDENT_REPORT_PUBLISHED: "Post-incident report published",
    Status.SERVICE_DEGRADATION: "Service degradation",
    Status.SERVICE_INTERRUPTION: "Service interruption",
    Status.EXTENDED_RECOVERY: "Extended recovery",
    Status.FALSE_POSITIVE: "False positive",
    Status.INVESTIGATION_SUSPENDED: "Investigation suspended",
    Status.INFORMATION_AVAILABLE: "Information available",
}
# Message Center categories as the legacy API wrote them ("Stay Informed" was captured; the other
# two follow the admin center's labels, as the emulator writes them).
_CATEGORY_DISPLAY = {
    "preventorfixissue": "Prevent Or Fix Issues",
    "planforchange": "Plan For Change",
    "stayinformed": "Stay Informed",
}
_LINK_DETAILS = {"ExternalLink": "ExternalLink", "BlogLink": "BlogLink", "HelpLink": "HelpLink"}


def status_display(status: Status) -> str:
    """The legacy display text of ``status`` (``Service restored``); an unknown one its value."""
    return STATUS_DISPLAY.get(status, status.value)


def _pascal(value: Any) -> Any:
    """``incident`` -> ``Incident``; a non-string is passed on for the converter to judge."""
    if isinstance(value, str) and value:
        return value[0].upper() + value[1:]
    return value


# -- workload ids and names ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def fallback_names() -> Mapping[str, str]:
    """The shipped fallback table: Graph service display name -> legacy workload id."""
    text = resources.files(__package__).joinpath("workloads.json").read_text(encoding="utf-8")
    names: dict[str, str] = json.loads(text)["names"]
    return names


@lru_cache(maxsize=1)
def _fallback_folded() -> tuple[Mapping[str, str], Mapping[str, str]]:
    by_name = {name.casefold(): wid for name, wid in fallback_names().items()}
    by_id = {wid.casefold(): name for name, wid in fallback_names().items()}  # the last name wins
    return by_name, by_id


class WorkloadNames:
    """One tenant's join of service display names and legacy workload ids.

    The tenant's own ``healthOverviews`` (``id`` is the legacy workload id, ``service`` the display
    name) come first; the shipped table (:func:`fallback_names`) only fills in names the tenant's
    overviews do not list; a name found in neither is its own workload id. Names match whatever
    their case.
    """

    def __init__(self, overviews: Iterable[ServiceHealth]) -> None:
        self._by_name: dict[str, str] = {}
        self._by_id: dict[str, str] = {}
        for overview in overviews:
            if isinstance(overview.id, str) and isinstance(overview.service, str):
                self._by_name.setdefault(overview.service.casefold(), overview.id)
                self._by_id.setdefault(overview.id.casefold(), overview.service)

    def workload_id(self, display_name: str) -> str:
        folded = display_name.casefold()
        found = self._by_name.get(folded) or _fallback_folded()[0].get(folded)
        return found if found is not None else display_name

    def display_name(self, workload_id: str) -> str:
        folded = workload_id.casefold()
        found = self._by_id.get(folded) or _fallback_folded()[1].get(folded)
        return found if found is not None else workload_id


# -- issues: what the status operations read ----------------------------------------------------------


def _status_of(issue: ServiceHealthIssue) -> Status | None:
    return None if issue.status is None else legacy_status(issue.status.value)


def _unresolved(issue: ServiceHealthIssue) -> bool:
    if issue.is_resolved is not None:
        return not issue.is_resolved
    return issue.end_date_time is None


def _newest_first(issues: Iterable[ServiceHealthIssue]) -> list[str]:
    """Issue ids, the latest ``startDateTime`` first (then by id, for a stable order)."""
    floor = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(
        (i for i in issues if isinstance(i.id, str)),
        key=lambda i: (i.start_date_time or floor, i.id or ""),
        reverse=True,
    )
    return list(dict.fromkeys(i.id for i in ordered if i.id is not None))


def service_of(issues: Iterable[ServiceHealthIssue]) -> dict[str, list[ServiceHealthIssue]]:
    """Issues by their ``service`` display name, folded to lower case (issues without one left out)."""
    grouped: dict[str, list[ServiceHealthIssue]] = {}
    for issue in issues:
        if isinstance(issue.service, str):
            grouped.setdefault(issue.service.casefold(), []).append(issue)
    return grouped


def feature_groups(issues: Iterable[ServiceHealthIssue]) -> list[str]:
    """The distinct ``featureGroup`` values of ``issues``, sorted (the legacy feature list)."""
    return sorted({i.feature_group for i in issues if isinstance(i.feature_group, str)})


def _feature_statuses(
    groups: Sequence[str], statuses: Mapping[str, Iterable[Status]]
) -> tuple[FeatureStatus, ...]:
    out = []
    for group in groups:
        status = worst(statuses.get(group, ()))
        out.append(
            FeatureStatus(
                name=group,
                display_name=group,
                status=status,
                status_display_name=status_display(status),
            )
        )
    return tuple(out)


def _overview_extra(overview: ServiceHealth) -> dict[str, Any]:
    return dict(overview.extra)


def services_rows(
    overviews: Iterable[ServiceHealth], issues: Iterable[ServiceHealthIssue]
) -> list[Service]:
    """``/Services``: one per overview, its features the feature groups of its issues."""
    by_service = service_of(issues)
    out = []
    for overview in overviews:
        mine = by_service.get((overview.service or "").casefold(), [])
        extra = _overview_extra(overview)
        if overview.status is not None:
            extra["status"] = overview.status.value
        out.append(
            Service(
                id=overview.id,
                display_name=overview.service,
                features=tuple(Feature(name=g, display_name=g) for g in feature_groups(mine)),
                extra=extra,
            )
        )
    return out


def current_status_rows(
    overviews: Iterable[ServiceHealth],
    issues: Iterable[ServiceHealthIssue],
    now: datetime,
    *,
    hours: int = _constants.OVER_GRAPH_CURRENT_HOURS,
) -> list[WorkloadStatus]:
    """``/CurrentStatus``: one row per overview, at ``now``.

    ``status`` is the overview's; ``incident_ids`` the service's issues unresolved or ended within
    ``hours`` of ``now``, newest first; ``feature_statuses`` one per feature group of the service's
    issues, the worst status of those recent issues in it, else ServiceOperational.
    """
    by_service = service_of(issues)
    since = now - timedelta(hours=hours)
    out = []
    for overview in overviews:
        mine = by_service.get((overview.service or "").casefold(), [])
        recent = [
            i
            for i in mine
            if _unresolved(i) or (i.end_date_time is not None and i.end_date_time >= since)
        ]
        statuses: dict[str, list[Status]] = {}
        for issue in recent:
            status = _status_of(issue)
            if isinstance(issue.feature_group, str) and status is not None:
                statuses.setdefault(issue.feature_group, []).append(status)
        status = (
            Status.SERVICE_OPERATIONAL
            if overview.status is None
            else legacy_status(overview.status.value)
        )
        out.append(
            WorkloadStatus(
                id=overview.id,
                workload=overview.id,
                workload_display_name=overview.service,
                status=status,
                status_display_name=status_display(status),
                status_time=now,
                incident_ids=tuple(_newest_first(recent)),
                feature_statuses=_feature_statuses(feature_groups(mine), statuses),
                extra=_overview_extra(overview),
            )
        )
    return out


# -- history ------------------------------------------------------------------------------------------


class DailyRecord(Protocol):
    """What :func:`historical_rows` reads of a watch store's daily record
    (:class:`~servicecomms_async.watch.store.DailyStatus` has it)."""

    @property
    def service_id(self) -> str: ...
    @property
    def day(self) -> date: ...
    @property
    def status(self) -> str: ...
    @property
    def incident_ids(self) -> tuple[str, ...]: ...
    @property
    def feature_groups(self) -> Mapping[str, str]: ...
    @property
    def observed_at(self) -> datetime | None: ...


def days_since(since: datetime | date | None, now: datetime, *, default_days: int) -> list[date]:
    """The UTC days whose midnight is at or after ``since`` and not after ``now``, newest first
    (the legacy filter ``StatusTime ge since``). Without ``since``: ``now`` minus ``default_days``
    days, which is today and the ``default_days - 1`` days before it."""
    if since is None:
        start = now - timedelta(days=default_days)
    elif isinstance(since, datetime):
        start = since.astimezone(UTC)
    else:
        start = datetime.combine(since, time(), tzinfo=UTC)
    today = now.astimezone(UTC).date()
    first = start.date() if start.time() == time() else start.date() + _DAY
    days = []
    day = today
    while day >= first:
        days.append(day)
        day -= _DAY
    return days


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def historical_rows(
    overviews: Sequence[ServiceHealth],
    issues: Iterable[ServiceHealthIssue],
    days: Sequence[date],
    now: datetime,
    observed: Iterable[DailyRecord] = (),
) -> list[WorkloadStatus]:
    """``/HistoricalStatus``: for each overview, one row per day of ``days`` (in their order).

    A day's status is the worst of the service's issues whose ``[startDateTime, endDateTime or
    now]`` overlaps the day, else ServiceOperational; ``incident_ids`` are those issues, newest
    first. A record in ``observed`` for the same service and day wins over this reconstruction;
    each row's ``extra["source"]`` says which it is: ``"observed"`` or ``"reconstructed"``.
    """
    by_service = service_of(issues)
    records: dict[tuple[str, date], DailyRecord] = {}
    record: DailyRecord | None
    for record in observed:
        records[(record.service_id.casefold(), record.day)] = record
    out = []
    for overview in overviews:
        mine = [
            i for i in by_service.get((overview.service or "").casefold(), []) if i.start_date_time
        ]
        groups = feature_groups(mine)
        workload = overview.id
        for day in days:
            midnight = _midnight(day)
            record = records.get(((workload or "").casefold(), day))
            extra: dict[str, Any] = _overview_extra(overview)
            if record is not None:
                status = legacy_status(record.status)
                statuses = {g: [legacy_status(s)] for g, s in record.feature_groups.items()}
                ids: Sequence[str] = tuple(record.incident_ids)
                extra["source"] = "observed"
                if record.observed_at is not None:
                    extra["observedAt"] = record.observed_at
                row_groups = sorted(set(groups) | set(record.feature_groups))
            else:
                following = midnight + _DAY
                overlapping = [
                    i
                    for i in mine
                    if i.start_date_time is not None
                    and i.start_date_time < following
                    and (i.end_date_time or now) >= midnight
                ]
                statuses = {}
                for issue in overlapping:
                    issue_status = _status_of(issue)
                    if isinstance(issue.feature_group, str) and issue_status is not None:
                        statuses.setdefault(issue.feature_group, []).append(issue_status)
                status = worst(s for s in map(_status_of, overlapping) if s is not None)
                ids = _newest_first(overlapping)
                extra["source"] = "reconstructed"
                row_groups = groups
            out.append(
                WorkloadStatus(
                    id=workload,
                    workload=workload,
                    workload_display_name=overview.service,
                    status=status,
                    status_display_name=status_display(status),
                    status_time=midnight,
                    incident_ids=tuple(ids),
                    feature_statuses=_feature_statuses(row_groups, statuses),
                    extra=extra,
                )
            )
    return out


# -- messages: Graph JSON -> legacy /Messages wire records ----------------------------------------------

_ISSUE_USED = frozenset(
    {
        "id",
        "title",
        "service",
        "feature",
        "featureGroup",
        "status",
        "classification",
        "startDateTime",
        "endDateTime",
        "lastModifiedDateTime",
        "impactDescription",
        "details",
        "posts",
    }
)
_MESSAGE_USED = frozenset(
    {
        "id",
        "title",
        "startDateTime",
        "endDateTime",
        "lastModifiedDateTime",
        "category",
        "severity",
        "tags",
        "isMajorChange",
        "actionRequiredByDateTime",
        "services",
        "details",
        "body",
    }
)
_COMMON = (
    ("id", "Id"),
    ("title", "Title"),
    ("startDateTime", "StartTime"),
    ("endDateTime", "EndTime"),
    ("lastModifiedDateTime", "LastUpdatedTime"),
)


def _post(post: Any) -> Any:
    """A Graph ``serviceHealthIssuePost`` as a legacy ``Messages[]`` entry; ``postType``, the
    description's ``contentType`` and unknown keys kept beside it (they end in ``extra``)."""
    if not isinstance(post, dict):
        return post
    entry: dict[str, Any] = {}
    for key, value in post.items():
        if key == "createdDateTime":
            entry["PublishedTime"] = value
        elif key == "description":
            if isinstance(value, dict):
                for body_key, body_value in value.items():
                    entry["MessageText" if body_key == "content" else body_key] = body_value
            else:
                entry["MessageText"] = value
        else:
            entry[key] = value
    return entry


def _name_value(detail: Any) -> Any:
    if not isinstance(detail, dict):
        return detail
    return {
        ("Name" if k == "name" else "Value" if k == "value" else k): v for k, v in detail.items()
    }


def issue_record(
    item: Mapping[str, Any], names: WorkloadNames, issues_url: str | None = None
) -> dict[str, Any]:
    """The legacy ``Incident`` message of one Graph issue (its JSON as sent).

    ``Workload`` comes from ``service`` through ``names``; ``Feature`` is Graph's ``feature`` and
    ``FeatureDisplayName`` its ``featureGroup``; ``Status`` the legacy display text
    (``Service restored``); ``Classification`` PascalCase; ``Messages`` the posts;
    ``AdditionalDetails`` the details; ``PostIncidentDocumentUrl`` is Graph's
    ``{issues_url}/{id}/incidentReport`` once the review is published (it needs the Graph token). Other keys (``origin``, ``isResolved``, ``highImpact``, ...) are kept
    under their Graph names.
    """
    record: dict[str, Any] = {"MessageType": "Incident"}
    for graph_key, legacy_key in _COMMON:
        if graph_key in item:
            record[legacy_key] = item[graph_key]
    if "service" in item:
        service = item["service"]
        record["WorkloadDisplayName"] = service
        record["Workload"] = names.workload_id(service) if isinstance(service, str) else None
    if "feature" in item:
        record["Feature"] = item["feature"]
    if "featureGroup" in item:
        record["FeatureDisplayName"] = item["featureGroup"]
    if "status" in item:
        raw = item["status"]
        if isinstance(raw, str):
            status = legacy_status(raw)
            record["Status"] = status_display(status)
            issue_id = item.get("id")
            if (
                status is Status.POST_INCIDENT_REPORT_PUBLISHED
                and issues_url is not None
                and isinstance(issue_id, str)
            ):
                record["PostIncidentDocumentUrl"] = (
                    f"{issues_url}/{quote(issue_id, safe='')}/incidentReport"
                )
        else:
            record["Status"] = raw
    if "classification" in item:
        record["Classification"] = _pascal(item["classification"])
    if "impactDescription" in item:
        record["ImpactDescription"] = item["impactDescription"]
    if "details" in item:
        details = item["details"]
        record["AdditionalDetails"] = (
            [_name_value(d) for d in details] if isinstance(details, list) else details
        )
    if "posts" in item:
        posts = item["posts"]
        record["Messages"] = [_post(p) for p in posts] if isinstance(posts, list) else posts
    for key, value in item.items():
        if key not in _ISSUE_USED:
            record[key] = value
    return record


def message_record(item: Mapping[str, Any], names: WorkloadNames) -> dict[str, Any]:
    """The legacy ``MessageCenter`` message of one Graph Message Center post (its JSON as sent).

    ``Status`` is ``""`` as the legacy API sent it; ``Category`` and ``Severity`` the legacy
    display forms; ``AffectedWorkloadDisplayNames`` Graph's ``services`` and
    ``AffectedWorkloadNames`` their workload ids; ``MessageTagNames`` the tags; ``Messages`` one
    entry, the body at ``startDateTime``; ``ExternalLink``, ``BlogLink`` and ``HelpLink`` from the
    details of those names, the other details as ``AdditionalDetails``; ``IsRead`` and
    ``IsDismissed`` from ``viewPoint`` (delegated tokens only). Other keys (``expiryDateTime``,
    ``hasAttachments``, ``viewPoint``, ...) are kept under their Graph names.
    """
    record: dict[str, Any] = {"MessageType": "MessageCenter", "Status": ""}
    for graph_key, legacy_key in _COMMON:
        if graph_key in item:
            record[legacy_key] = item[graph_key]
    if "category" in item:
        raw = item["category"]
        record["Category"] = (
            _CATEGORY_DISPLAY.get(raw.casefold(), raw) if isinstance(raw, str) else raw
        )
    if "severity" in item:
        record["Severity"] = _pascal(item["severity"])
    if "tags" in item:
        record["MessageTagNames"] = item["tags"]
    if "isMajorChange" in item:
        record["IsMajorChange"] = item["isMajorChange"]
    if "actionRequiredByDateTime" in item:
        record["ActionRequiredByDate"] = item["actionRequiredByDateTime"]
    if "services" in item:
        services = item["services"]
        record["AffectedWorkloadDisplayNames"] = services
        if isinstance(services, list):
            record["AffectedWorkloadNames"] = [
                names.workload_id(s) if isinstance(s, str) else s for s in services
            ]
    if "details" in item:
        details = item["details"]
        if isinstance(details, list):
            others = []
            for detail in details:
                name = detail.get("name") if isinstance(detail, dict) else None
                link = _LINK_DETAILS.get(name) if isinstance(name, str) else None
                if link is not None and link not in record and isinstance(detail, dict):
                    record[link] = detail.get("value")
                else:
                    others.append(_name_value(detail))
            record["AdditionalDetails"] = others
        else:
            record["AdditionalDetails"] = details
    if "body" in item:
        body = item["body"]
        entry: dict[str, Any] = {"PublishedTime": item.get("startDateTime")}
        if isinstance(body, dict):
            for key, value in body.items():
                entry["MessageText" if key == "content" else key] = value
        else:
            entry["MessageText"] = body
        record["Messages"] = [entry]
    view = item.get("viewPoint")
    if isinstance(view, dict):
        if "isRead" in view:
            record["IsRead"] = view["isRead"]
        if "isArchived" in view:
            record["IsDismissed"] = view["isArchived"]
    for key, value in item.items():
        if key not in _MESSAGE_USED:
            record[key] = value
    return record
