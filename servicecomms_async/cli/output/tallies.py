"""Scan tallies: what a scan found, counted item by item (only counters and id sets are kept).

Each operation in the registry names its tally class. A tally turns into plain
:class:`SummaryTable` rows, which :mod:`.summary` draws; nothing here imports rich.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs

from ...graph.models import (
    ServiceHealth,
    ServiceHealthIssue,
    ServiceHealthStatus,
    ServiceUpdateMessage,
    ServiceUpdateSeverity,
)
from ...legacy.models import Message, MessageType, Service, Status, WorkloadStatus

NONE = "(none)"
_SHOWN_IDS = 6


@attrs.frozen
class SummaryTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


class Tally(Protocol):
    def add(self, tenant: str, item: Any) -> None: ...

    def tables(self, title: str) -> list[SummaryTable]: ...


def ids_text(ids: set[str]) -> str:
    """``EX1, EX2 (+3 more)``: a few ids in order."""
    shown = sorted(ids)[:_SHOWN_IDS]
    more = len(ids) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def counted_ids_text(tenants_per_id: Mapping[str, int]) -> str:
    """``EX1 (12), EX2 (3)``: ids with how many tenants see each, the most widespread first."""
    ranked = sorted(tenants_per_id.items(), key=lambda pair: (-pair[1], pair[0]))
    shown = ranked[:_SHOWN_IDS]
    more = len(ranked) - len(shown)
    text = ", ".join(f"{issue} ({count})" for issue, count in shown)
    return text + (f" (+{more} more)" if more > 0 else "")


def _table(
    title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]
) -> list[SummaryTable]:
    return [SummaryTable(title, columns, tuple(rows))] if rows else []


@attrs.define
class _Workload:
    name: str
    tenants: set[str] = attrs.field(factory=set)
    degraded: set[str] = attrs.field(factory=set)
    interrupted: set[str] = attrs.field(factory=set)
    other: set[str] = attrs.field(factory=set)
    incident_ids: set[str] = attrs.field(factory=set)
    messages: int = 0
    incidents: int = 0


class _ByWorkload:
    def __init__(self) -> None:
        self.workloads: dict[str, _Workload] = {}

    def workload(self, key: str | None, name: str | None) -> _Workload:
        key = key or NONE
        tally = self.workloads.get(key)
        if tally is None:
            tally = self.workloads[key] = _Workload(name or key)
        return tally


class WorkloadStatusTally(_ByWorkload):
    """Legacy status and history: per workload, the tenants degraded, interrupted or with other
    issues, and the incident ids."""

    def add(self, tenant: str, item: WorkloadStatus) -> None:
        tally = self.workload(item.workload, item.workload_display_name)
        tally.tenants.add(tenant)
        status = item.status
        if status is None or status.is_healthy:
            return
        if status is Status.SERVICE_DEGRADATION:
            tally.degraded.add(tenant)
        elif status is Status.SERVICE_INTERRUPTION:
            tally.interrupted.add(tenant)
        else:
            tally.other.add(tenant)
        tally.incident_ids.update(item.incident_ids)

    def tables(self, title: str) -> list[SummaryTable]:
        columns = ("Workload", "Tenants", "Degraded", "Interrupted", "Other issues", "Incident ids")
        ranked = sorted(
            self.workloads.values(),
            key=lambda t: (-len(t.degraded | t.interrupted | t.other), t.name),
        )
        rows = [
            (
                t.name,
                str(len(t.tenants)),
                str(len(t.degraded)),
                str(len(t.interrupted)),
                str(len(t.other)),
                ids_text(t.incident_ids),
            )
            for t in ranked
        ]
        return _table(title, columns, rows)


class WorkloadMessagesTally(_ByWorkload):
    """Legacy messages: per workload, messages, incidents and the tenants with active incidents."""

    def add(self, tenant: str, item: Message) -> None:
        names = (item.workload,) if item.workload else item.affected_workload_names
        for workload in names or (None,):
            tally = self.workload(workload, item.workload_display_name)
            tally.tenants.add(tenant)
            tally.messages += 1
            if item.message_type is MessageType.INCIDENT:
                tally.incidents += 1
                if item.is_active:
                    tally.degraded.add(tenant)
                    if item.id:
                        tally.incident_ids.add(item.id)

    def tables(self, title: str) -> list[SummaryTable]:
        columns = (
            "Workload",
            "Tenants",
            "Messages",
            "Incidents",
            "Tenants with active incidents",
            "Active incident ids",
        )
        ranked = sorted(self.workloads.values(), key=lambda t: (-len(t.degraded), t.name))
        rows = [
            (
                t.name,
                str(len(t.tenants)),
                str(t.messages),
                str(t.incidents),
                str(len(t.degraded)),
                ids_text(t.incident_ids),
            )
            for t in ranked
        ]
        return _table(title, columns, rows)


class ServicesTally(_ByWorkload):
    """Legacy services: tenants per service."""

    def add(self, tenant: str, item: Service) -> None:
        self.workload(item.id, item.display_name).tenants.add(tenant)

    def tables(self, title: str) -> list[SummaryTable]:
        ranked = sorted(self.workloads.values(), key=lambda t: t.name)
        return _table(
            title, ("Service", "Tenants"), [(t.name, str(len(t.tenants))) for t in ranked]
        )


@attrs.define
class _Service:
    """One Graph service: who reports it, who sees it not operational, its active issues."""

    name: str
    tenants: set[str] = attrs.field(factory=set)
    not_operational: set[str] = attrs.field(factory=set)
    statuses: Counter[str] = attrs.field(factory=Counter)  # tenants per non-operational status
    issues: set[str] = attrs.field(factory=set)
    active_issues: Counter[str] = attrs.field(factory=Counter)  # tenants that see each active issue
    tenants_with_active: set[str] = attrs.field(factory=set)

    def add_issue(self, tenant: str, issue: ServiceHealthIssue) -> None:
        issue_id = issue.id or "(no id)"
        self.issues.add(issue_id)
        # Without isResolved (e.g. left out by --select) an issue cannot be shown to be over.
        if issue.is_resolved is not True:
            self.active_issues[issue_id] += 1
            self.tenants_with_active.add(tenant)


class _ByService:
    def __init__(self) -> None:
        self.services: dict[str, _Service] = {}

    def service(self, key: str | None, name: str | None) -> _Service:
        key = key or NONE
        service = self.services.get(key)
        if service is None:
            service = self.services[key] = _Service(name or key)
        return service


class ServiceHealthTally(_ByService):
    """Graph overview: per service, the tenants where it is not operational, by status, and the
    active issues of an expanded overview with the tenants that see each."""

    def add(self, tenant: str, item: ServiceHealth) -> None:
        service = self.service(item.id, item.service)
        service.tenants.add(tenant)
        health = item.status
        if health is not None and health is not ServiceHealthStatus.SERVICE_OPERATIONAL:
            service.not_operational.add(tenant)
            service.statuses[health.value] += 1
        for issue in item.issues:
            service.add_issue(tenant, issue)

    def tables(self, title: str) -> list[SummaryTable]:
        columns = (
            "Service",
            "Tenants",
            "Not operational",
            "Statuses (tenants)",
            "Active issues (tenants)",
        )
        ranked = sorted(self.services.values(), key=lambda s: (-len(s.not_operational), s.name))
        rows = [
            (
                s.name,
                str(len(s.tenants)),
                str(len(s.not_operational)),
                ", ".join(f"{name} ({n})" for name, n in s.statuses.most_common()),
                counted_ids_text(s.active_issues),
            )
            for s in ranked
        ]
        return _table(title, columns, rows)


class IssuesTally(_ByService):
    """Graph issues: per service, the issues, the active ones and the tenants with active issues."""

    def add(self, tenant: str, item: ServiceHealthIssue) -> None:
        service = self.service(item.service, item.service)
        service.tenants.add(tenant)
        service.add_issue(tenant, item)

    def tables(self, title: str) -> list[SummaryTable]:
        columns = (
            "Service",
            "Tenants",
            "Issues",
            "Active",
            "Tenants with active issues",
            "Active issues (tenants)",
        )
        ranked = sorted(self.services.values(), key=lambda s: (-len(s.tenants_with_active), s.name))
        rows = [
            (
                s.name,
                str(len(s.tenants)),
                str(len(s.issues)),
                str(len(s.active_issues)),
                str(len(s.tenants_with_active)),
                counted_ids_text(s.active_issues),
            )
            for s in ranked
        ]
        return _table(title, columns, rows)


@attrs.define
class _Category:
    name: str
    tenants: set[str] = attrs.field(factory=set)
    messages: set[str] = attrs.field(factory=set)
    by_severity: dict[str, set[str]] = attrs.field(factory=dict)
    major_changes: set[str] = attrs.field(factory=set)


class CategoryTally:
    """Graph messages: per category, the distinct posts by severity and the major changes (a post
    is counted once however many tenants get it: its id is global)."""

    _KNOWN: ClassVar[tuple[str, ...]] = tuple(
        m.value
        for m in ServiceUpdateSeverity
        if m is not ServiceUpdateSeverity.UNKNOWN_FUTURE_VALUE
    )

    def __init__(self) -> None:
        self.categories: dict[str, _Category] = {}
        self._unnamed = 0

    def add(self, tenant: str, item: ServiceUpdateMessage) -> None:
        key = item.category.value if item.category is not None else NONE
        category = self.categories.get(key)
        if category is None:
            category = self.categories[key] = _Category(key)
        if item.id:
            message_id = item.id
        else:
            self._unnamed += 1
            message_id = f"(no id {self._unnamed})"
        category.tenants.add(tenant)
        category.messages.add(message_id)
        severity = item.severity.value if item.severity is not None else NONE
        category.by_severity.setdefault(severity, set()).add(message_id)
        if item.is_major_change:
            category.major_changes.add(message_id)

    def tables(self, title: str) -> list[SummaryTable]:
        known = list(self._KNOWN)
        seen = {name for c in self.categories.values() for name in c.by_severity}
        severities = known + sorted(seen - set(known))
        columns = (
            "Category",
            "Tenants",
            "Messages",
            *(name.capitalize() if name in known else name for name in severities),
            "Major changes",
        )
        rows = [
            (
                c.name,
                str(len(c.tenants)),
                str(len(c.messages)),
                *(str(len(c.by_severity.get(name, ()))) for name in severities),
                str(len(c.major_changes)),
            )
            for c in sorted(self.categories.values(), key=lambda c: c.name)
        ]
        return _table(title, columns, rows)
