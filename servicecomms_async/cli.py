"""The ``servicecomms`` command line (also ``python -m servicecomms_async``).

::

    servicecomms services|status|history|messages --tenant T [filters]   one tenant, legacy API
    servicecomms overview|issues|messages --api graph --tenant T [...]   one tenant, Microsoft Graph
    servicecomms incident-report --tenant T --id EX123456 -o FILE        one issue's review (Graph)
    servicecomms scan --tenants FILE|- --operation OP [filters]          many tenants, with a summary
    servicecomms emulator --port P --tenants N                           serve the embedded emulator
    servicecomms demo [--api graph]                                      an emulated scan, end to end

Which API (``--api legacy|graph``): a command or ``--operation`` that exists in one API only picks it
(``overview``, ``issues`` and ``incident-report`` are Graph's; ``services``, ``status`` and ``history``
the legacy API's, and naming the other API is a usage error); for ``messages``, which both have, the
flag decides, else ``$SERVICECOMMS_API``, else ``legacy``. Each API has its own base URL variable
(``$SERVICECOMMS_BASE_URL``, ``$SERVICECOMMS_GRAPH_BASE_URL``) so that one never reaches the other.
A filter of the other API is a usage error, before any request.

Output (``--format``, to stdout or ``--output FILE``):

* ``json`` (an array) and ``jsonl`` (one object a line, written as results arrive): each record is
  the tenant id followed by the item's wire fields, named as the API sends them: ``{"TenantId": ...}``
  and PascalCase for the legacy API, ``{"tenantId": ...}`` and camelCase for Graph; unknown fields
  included, dates ISO 8601 UTC with ``Z``, enums as their wire strings.
* ``csv``: the fixed columns of :data:`CSV_COLUMNS` (legacy) or :data:`GRAPH_CSV_COLUMNS` for the
  operation, with the same names and values as JSON; lists are joined with ``;`` (``Features`` holds
  the feature names, a health overview's ``issues`` the issue ids).
* ``table``: for people. A single-tenant command prints its rows; ``scan`` prints its summary.

``scan`` ends with a summary (legacy: per workload, tenants affected and incident ids; Graph: per
service, tenants not operational or seeing active issues and the issue ids, or per message category,
the posts by severity and the major changes) and a per-tenant failure list, on stdout when stdout does
not carry the records (``--format table`` or ``--output``), else on stderr. A progress bar is drawn on
stderr only when stderr is a terminal.

Tokens: ``--token`` is one static token; ``--token-template 'emulator-app.{tenant}'`` makes one per
tenant (Graph reads the tenant from the token, so one static token cannot scan many tenants there).
Neither is ever printed. Otherwise azure-identity is used, with the token scope of the chosen API.

Exit codes: 0 every tenant succeeded; 1 a tenant failed (the one tenant, or some of a scan's);
2 usage error (bad option or value, malformed tenants file); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import os
import re
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TextIO

import anyio
import attrs
import orjson

from . import __version__
from .clouds import CLOUDS, get_cloud
from .convert import InvalidValue, converter, parse_datetime
from .errors import APIStatusError, ServiceCommsError
from .graph import MAX_PAGE_SIZE as GRAPH_MAX_PAGE_SIZE
from .graph import GraphFilter
from .graph_models import (
    CaseInsensitiveEnum,
    ServiceHealth,
    ServiceHealthClassification,
    ServiceHealthIssue,
    ServiceHealthStatus,
    ServiceUpdateCategory,
    ServiceUpdateMessage,
    ServiceUpdateSeverity,
)
from .models import Message, MessageType, Service, Status, WorkloadStatus
from .query import FilterBuilder, build_select, validate_tenant_id
from .retry import RetryPolicy
from .scan import DEFAULT_CONCURRENCY, ScanItem, ScanProgress, TenantDone, TenantFailed
from .session import ServiceCommsSession
from .transport import Limits, Timeout

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

APIS = ("legacy", "graph")
OPERATIONS = ("services", "status", "history", "messages")  # the legacy API's
GRAPH_OPERATIONS = ("overview", "issues", "messages")
# What a scan or the demo runs when no --operation is given.
DEFAULT_OPERATION: Mapping[str, str] = {"legacy": "status", "graph": "overview"}
FORMATS = ("table", "json", "jsonl", "csv")

# The stable CSV columns per operation (JSON records carry these keys and every other wire field).
CSV_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "services": ("TenantId", "Id", "DisplayName", "Features"),
    "status": (
        "TenantId",
        "Id",
        "Workload",
        "WorkloadDisplayName",
        "Status",
        "StatusDisplayName",
        "StatusTime",
        "IncidentIds",
    ),
    "messages": (
        "TenantId",
        "Id",
        "MessageType",
        "Workload",
        "WorkloadDisplayName",
        "Feature",
        "FeatureDisplayName",
        "Title",
        "Status",
        "Classification",
        "Severity",
        "StartTime",
        "EndTime",
        "LastUpdatedTime",
        "AffectedWorkloadNames",
    ),
}
CSV_COLUMNS = {**CSV_COLUMNS, "history": CSV_COLUMNS["status"]}

# Microsoft Graph's, in Graph's own camelCase names (a health overview's ``issues`` holds issue ids).
GRAPH_CSV_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "overview": ("tenantId", "id", "service", "status", "issues"),
    "issues": (
        "tenantId",
        "id",
        "service",
        "feature",
        "featureGroup",
        "classification",
        "status",
        "isResolved",
        "startDateTime",
        "endDateTime",
        "lastModifiedDateTime",
        "title",
    ),
    "messages": (
        "tenantId",
        "id",
        "category",
        "severity",
        "isMajorChange",
        "services",
        "tags",
        "startDateTime",
        "endDateTime",
        "lastModifiedDateTime",
        "actionRequiredByDateTime",
        "title",
    ),
}

# The key that names the tenant in an output record, in the API's own naming style.
TENANT_KEY: Mapping[str, str] = {"legacy": "TenantId", "graph": "tenantId"}

# What a single-tenant ``--format table`` shows: a readable subset, not a stable interface.
TABLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "services": ("Id", "DisplayName", "Features"),
    "status": ("Workload", "Status", "StatusTime", "IncidentIds"),
    "history": ("Workload", "Status", "StatusTime", "IncidentIds"),
    "messages": ("Id", "MessageType", "Workload", "Status", "StartTime", "EndTime", "Title"),
}
GRAPH_TABLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    # The expansion holds a service's resolved issues too; people looking now want the open ones.
    "overview": ("service", "status", "activeIssues"),
    "issues": (
        "id",
        "service",
        "classification",
        "status",
        "isResolved",
        "lastModifiedDateTime",
        "title",
    ),
    "messages": (
        "id",
        "category",
        "severity",
        "isMajorChange",
        "services",
        "lastModifiedDateTime",
        "title",
    ),
}

TOKEN_ENV = "SERVICECOMMS_TOKEN"
BASE_URL_ENV = "SERVICECOMMS_BASE_URL"
GRAPH_BASE_URL_ENV = "SERVICECOMMS_GRAPH_BASE_URL"
API_ENV = "SERVICECOMMS_API"
BASE_URL_ENVS: Mapping[str, str] = {"legacy": BASE_URL_ENV, "graph": GRAPH_BASE_URL_ENV}


def csv_columns(api: str, operation: str) -> tuple[str, ...]:
    """The stable CSV columns of ``operation`` in ``api`` (``"legacy"`` or ``"graph"``)."""
    return (GRAPH_CSV_COLUMNS if api == "graph" else CSV_COLUMNS)[operation]


logger = logging.getLogger("servicecomms_async.cli")


class UsageError(Exception):
    """A bad option, value or input file: reported in one line, exit code 2."""


# -- records and writers ---------------------------------------------------------------------------


def to_record(tenant_id: str, item: object, *, api: str = "legacy") -> dict[str, Any]:
    """The output record of one item: the tenant id first (``TenantId``, or ``tenantId`` for Graph),
    then the item's wire fields."""
    key = TENANT_KEY[api]
    record: dict[str, Any] = {key: tenant_id}
    record.update(converter.unstructure(item))
    record[key] = tenant_id  # a stray wire key of that name never hides which tenant this is
    return record


def cell(key: str, value: Any) -> str:
    """A record value as CSV/table text: lists joined with ``;``, None empty, booleans lower case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if key == "Features":  # CSV and table show the feature names; JSON keeps the objects
            value = [
                f.get("Name") or f.get("DisplayName") if isinstance(f, dict) else f for f in value
            ]
        elif key == "issues":  # a Graph health overview's expanded issues: their ids
            value = [i.get("id") if isinstance(i, dict) else i for i in value]
        return ";".join(cell(key, v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


class RecordWriter:
    """Writes records in one format as they arrive; :meth:`close` finishes the document."""

    def __init__(self, out: TextIO, fmt: str, operation: str, *, api: str = "legacy") -> None:
        self._out = out
        self._format = fmt
        self._columns = csv_columns(api, operation)
        self._count = 0
        self._csv: Any = None
        if fmt == "csv":
            self._csv = csv.DictWriter(out, fieldnames=self._columns, extrasaction="ignore")
            self._csv.writeheader()
        elif fmt == "json":
            out.write("[")

    def write(self, record: dict[str, Any]) -> None:
        if self._format == "jsonl":
            self._out.write(orjson.dumps(record).decode() + "\n")
            self._out.flush()  # JSONL streams: a reader sees each record as it arrives
        elif self._format == "json":
            text = orjson.dumps(record, option=orjson.OPT_INDENT_2).decode()
            self._out.write(("," if self._count else "") + "\n" + _indent(text))
        else:
            self._csv.writerow({key: cell(key, record.get(key)) for key in self._columns})
        self._count += 1

    def close(self) -> None:
        """Finish the document (only after success: an unfinished JSON array marks a failed run)."""
        if self._format == "json":
            self._out.write("\n]\n" if self._count else "]\n")
        self._out.flush()


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def print_table(
    console: _Printer, operation: str, records: list[dict[str, Any]], *, api: str = "legacy"
) -> None:
    from rich import box
    from rich.table import Table

    columns = (GRAPH_TABLE_COLUMNS if api == "graph" else TABLE_COLUMNS)[operation]
    table = Table(*columns, box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for record in records:
        if "activeIssues" in columns:
            issues = record.get("issues") or ()
            record = {
                **record,
                "activeIssues": [
                    i.get("id")
                    for i in issues
                    if isinstance(i, dict) and i.get("isResolved") is not True
                ],
            }
        table.add_row(*(cell(key, record.get(key)) for key in columns))
    console.print(table)
    console.print(f"{len(records)} row{'' if len(records) == 1 else 's'}")


# -- scan summary ----------------------------------------------------------------------------------

_SHOWN_IDS = 6


def _ids_text(ids: set[str]) -> str:
    shown = sorted(ids)[:_SHOWN_IDS]
    more = len(ids) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _counted_ids_text(tenants_per_id: Mapping[str, int]) -> str:
    """``EX1 (12), EX2 (3)``: ids with how many tenants see each, the most widespread first."""
    ranked = sorted(tenants_per_id.items(), key=lambda pair: (-pair[1], pair[0]))
    shown = ranked[:_SHOWN_IDS]
    more = len(ranked) - len(shown)
    text = ", ".join(f"{issue} ({count})" for issue, count in shown)
    return text + (f" (+{more} more)" if more > 0 else "")


@attrs.define
class _WorkloadTally:
    name: str
    tenants: set[str] = attrs.field(factory=set)
    degraded: set[str] = attrs.field(factory=set)
    interrupted: set[str] = attrs.field(factory=set)
    other: set[str] = attrs.field(factory=set)
    incident_ids: set[str] = attrs.field(factory=set)
    messages: int = 0
    incidents: int = 0


@attrs.define
class _ServiceTally:
    """One Graph service: who reports it, who sees it not operational, its active issues."""

    name: str
    tenants: set[str] = attrs.field(factory=set)
    not_operational: set[str] = attrs.field(factory=set)
    statuses: Counter[str] = attrs.field(factory=Counter)  # tenants per non-operational status
    issues: set[str] = attrs.field(factory=set)
    active_issues: Counter[str] = attrs.field(factory=Counter)  # tenants that see each active issue
    tenants_with_active: set[str] = attrs.field(factory=set)


@attrs.define
class _CategoryTally:
    """One Message Center category: distinct posts by severity, and the major changes among them."""

    name: str
    tenants: set[str] = attrs.field(factory=set)
    messages: set[str] = attrs.field(factory=set)
    by_severity: dict[str, set[str]] = attrs.field(factory=dict)
    major_changes: set[str] = attrs.field(factory=set)


def _is_active(issue: ServiceHealthIssue) -> bool:
    # Without isResolved (e.g. left out by --select) an issue cannot be shown to be over.
    return issue.is_resolved is not True


class ScanSummary:
    """What the scan found, tallied item by item (nothing but counters and id sets is kept)."""

    def __init__(self, operation: str, *, api: str = "legacy") -> None:
        self.operation = operation
        self.api = api
        self.workloads: dict[str, _WorkloadTally] = {}
        self.services: dict[str, _ServiceTally] = {}
        self.categories: dict[str, _CategoryTally] = {}
        self.failures: list[TenantFailed] = []
        self.succeeded = 0
        self.items = 0

    def _tally(self, key: str | None, name: str | None) -> _WorkloadTally:
        key = key or "(none)"
        tally = self.workloads.get(key)
        if tally is None:
            tally = self.workloads[key] = _WorkloadTally(name or key)
        return tally

    def add(self, result: ScanItem[Any] | TenantDone | TenantFailed) -> None:
        if isinstance(result, TenantFailed):
            self.failures.append(result)
        elif isinstance(result, TenantDone):
            self.succeeded += 1
        else:
            self.items += 1
            self._add_item(result.tenant_id, result.value)

    def _add_item(self, tenant: str, value: object) -> None:
        if isinstance(value, WorkloadStatus):
            tally = self._tally(value.workload, value.workload_display_name)
            tally.tenants.add(tenant)
            status = value.status
            if status is None or status.is_healthy:
                return
            if status is Status.SERVICE_DEGRADATION:
                tally.degraded.add(tenant)
            elif status is Status.SERVICE_INTERRUPTION:
                tally.interrupted.add(tenant)
            else:
                tally.other.add(tenant)
            tally.incident_ids.update(value.incident_ids)
        elif isinstance(value, Message):
            names = (value.workload,) if value.workload else value.affected_workload_names
            for workload in names or (None,):
                tally = self._tally(workload, value.workload_display_name)
                tally.tenants.add(tenant)
                tally.messages += 1
                if value.message_type is MessageType.INCIDENT:
                    tally.incidents += 1
                    if value.is_active:
                        tally.degraded.add(tenant)
                        if value.id:
                            tally.incident_ids.add(value.id)
        elif isinstance(value, Service):
            self._tally(value.id, value.display_name).tenants.add(tenant)
        elif isinstance(value, ServiceHealth):
            service = self._service(value.id, value.service)
            service.tenants.add(tenant)
            health = value.status
            if health is not None and health is not ServiceHealthStatus.SERVICE_OPERATIONAL:
                service.not_operational.add(tenant)
                service.statuses[health.value] += 1
            for issue in value.issues:
                self._add_issue(service, tenant, issue)
        elif isinstance(value, ServiceHealthIssue):
            service = self._service(value.service, value.service)
            service.tenants.add(tenant)
            self._add_issue(service, tenant, value)
        elif isinstance(value, ServiceUpdateMessage):
            key = value.category.value if value.category is not None else "(none)"
            category = self.categories.get(key)
            if category is None:
                category = self.categories[key] = _CategoryTally(key)
            # Posts are counted once however many tenants get them (their ids are global).
            message_id = value.id or f"(no id {self.items})"
            category.tenants.add(tenant)
            category.messages.add(message_id)
            severity = value.severity.value if value.severity is not None else "(none)"
            category.by_severity.setdefault(severity, set()).add(message_id)
            if value.is_major_change:
                category.major_changes.add(message_id)

    def _service(self, key: str | None, name: str | None) -> _ServiceTally:
        key = key or "(none)"
        service = self.services.get(key)
        if service is None:
            service = self.services[key] = _ServiceTally(name or key)
        return service

    @staticmethod
    def _add_issue(service: _ServiceTally, tenant: str, issue: ServiceHealthIssue) -> None:
        issue_id = issue.id or "(no id)"
        service.issues.add(issue_id)
        if _is_active(issue):
            service.active_issues[issue_id] += 1
            service.tenants_with_active.add(tenant)

    def _graph_table(self, title: str) -> Any:
        from rich import box
        from rich.table import Table

        if self.operation == "overview":
            table = Table(
                "Service",
                "Tenants",
                "Not operational",
                "Statuses (tenants)",
                "Active issues (tenants)",
                title=title,
                title_justify="left",
                box=box.SIMPLE_HEAD,
            )
            services = sorted(
                self.services.values(), key=lambda s: (-len(s.not_operational), s.name)
            )
            for s in services:
                statuses = ", ".join(f"{name} ({n})" for name, n in s.statuses.most_common())
                table.add_row(
                    s.name,
                    str(len(s.tenants)),
                    str(len(s.not_operational)),
                    statuses,
                    _counted_ids_text(s.active_issues),
                )
            return table if self.services else None
        if self.operation == "issues":
            table = Table(
                "Service",
                "Tenants",
                "Issues",
                "Active",
                "Tenants with active issues",
                "Active issues (tenants)",
                title=title,
                title_justify="left",
                box=box.SIMPLE_HEAD,
            )
            services = sorted(
                self.services.values(), key=lambda s: (-len(s.tenants_with_active), s.name)
            )
            for s in services:
                table.add_row(
                    s.name,
                    str(len(s.tenants)),
                    str(len(s.issues)),
                    str(len(s.active_issues)),
                    str(len(s.tenants_with_active)),
                    _counted_ids_text(s.active_issues),
                )
            return table if self.services else None
        unknown = ServiceUpdateSeverity.UNKNOWN_FUTURE_VALUE
        known = [m.value for m in ServiceUpdateSeverity if m is not unknown]
        seen = {name for c in self.categories.values() for name in c.by_severity}
        severities = known + sorted(seen - set(known))
        table = Table(
            "Category",
            "Tenants",
            "Messages",
            *(name.capitalize() if name in known else name for name in severities),
            "Major changes",
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for c in sorted(self.categories.values(), key=lambda c: c.name):
            table.add_row(
                c.name,
                str(len(c.tenants)),
                str(len(c.messages)),
                *(str(len(c.by_severity.get(name, ()))) for name in severities),
                str(len(c.major_changes)),
            )
        return table if self.categories else None

    def render(self, console: _Printer, progress: ScanProgress) -> None:
        from rich import box
        from rich.table import Table

        title = f"{self.operation}: {progress.tenants_total} tenants"
        if self.api == "graph":
            graph_table = self._graph_table(title)
            if graph_table is not None:
                console.print(graph_table)
        elif self.operation in ("status", "history"):
            table = Table(
                "Workload",
                "Tenants",
                "Degraded",
                "Interrupted",
                "Other issues",
                "Incident ids",
                title=title,
                title_justify="left",
                box=box.SIMPLE_HEAD,
            )
            rows = sorted(
                self.workloads.values(),
                key=lambda t: (-len(t.degraded | t.interrupted | t.other), t.name),
            )
            for t in rows:
                table.add_row(
                    t.name,
                    str(len(t.tenants)),
                    str(len(t.degraded)),
                    str(len(t.interrupted)),
                    str(len(t.other)),
                    _ids_text(t.incident_ids),
                )
        elif self.operation == "messages":
            table = Table(
                "Workload",
                "Tenants",
                "Messages",
                "Incidents",
                "Tenants with active incidents",
                "Active incident ids",
                title=title,
                title_justify="left",
                box=box.SIMPLE_HEAD,
            )
            for t in sorted(self.workloads.values(), key=lambda t: (-len(t.degraded), t.name)):
                table.add_row(
                    t.name,
                    str(len(t.tenants)),
                    str(t.messages),
                    str(t.incidents),
                    str(len(t.degraded)),
                    _ids_text(t.incident_ids),
                )
        else:
            table = Table(
                "Service", "Tenants", title=title, title_justify="left", box=box.SIMPLE_HEAD
            )
            for t in sorted(self.workloads.values(), key=lambda t: t.name):
                table.add_row(t.name, str(len(t.tenants)))
        if self.api == "legacy" and self.workloads:
            console.print(table)
        console.print(
            f"Scanned {progress.tenants_total} tenants in {progress.elapsed:.1f}s: "
            f"{progress.tenants_succeeded} succeeded, {progress.tenants_failed} failed, "
            f"{progress.items} items ({progress.items_per_second:,.0f} items/s)."
        )
        if self.failures:
            failures = Table(
                "Tenant",
                "Error",
                "HTTP",
                "Code",
                "Detail",
                title=f"Failed tenants ({len(self.failures)})",
                title_justify="left",
                box=box.SIMPLE_HEAD,
            )
            for failed in sorted(self.failures, key=lambda f: f.tenant_id):
                error = failed.error
                status = str(error.status) if isinstance(error, APIStatusError) else ""
                code = (error.code or "") if isinstance(error, APIStatusError) else ""
                failures.add_row(
                    failed.tenant_id, type(error).__name__, status, code, error_detail(error)
                )
            console.print(failures)


def error_detail(error: BaseException) -> str:
    """One short line saying what went wrong (never a token: errors do not carry one)."""
    if isinstance(error, APIStatusError):
        text = error.message or error.body_text or ""
    else:
        text = str(error)
    lines = text.strip().splitlines()
    line = lines[0].strip() if lines else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


# -- arguments -------------------------------------------------------------------------------------


def _parse_when(value: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is taken as UTC."""
    try:
        return parse_datetime(value.strip())
    except (InvalidValue, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or date-time such as 2024-05-01 or 2024-05-01T08:00:00Z, "
            f"got {value!r}"
        ) from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value!r}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {value!r}")
    return number


def _tenant(value: str) -> str:
    try:
        return validate_tenant_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _graph_choice(enum_cls: type[CaseInsensitiveEnum]) -> Callable[[str], str]:
    """An argparse type for a Graph enum: its camelCase values, matched ignoring case."""
    known: list[str] = [str(m.value) for m in enum_cls if m.value != "unknownFutureValue"]

    def parse(value: str) -> str:
        member = str(enum_cls(value.strip()).value)  # the enum itself matches ignoring case
        if member in known:
            return member
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(known)}, got {value!r}")

    return parse


def _graph_page_size(value: str) -> int:
    number = _positive_int(value)
    if number > GRAPH_MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(
            f"expected 1 to {GRAPH_MAX_PAGE_SIZE} (Graph's maximum page size), got {value!r}"
        )
    return number


def _name(value: str) -> str:
    """A service name as Graph spells it (``Exchange Online``): no surrounding spaces or controls."""
    if not value or value != value.strip() or any(ord(ch) < 32 for ch in value):
        raise argparse.ArgumentTypeError(
            f"expected a service name such as 'Exchange Online' without surrounding spaces, "
            f"got {value!r}"
        )
    return value


def _odata(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("expected an OData expression, got an empty one")
    return value


_ISSUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _issue_id(value: str) -> str:
    if not _ISSUE_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected an issue id such as EX123456, got {value!r}")
    return value


def _token_template(value: str) -> str:
    """A per-tenant token pattern with ``{tenant}``. Errors never quote it: it may hold a secret."""
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(value)
            if name is not None
        ]
    except ValueError:
        raise argparse.ArgumentTypeError(
            "is not a valid template: write {tenant} where the tenant id goes, and {{ or }} for a "
            "literal brace"
        ) from None
    if not fields or any(f != ("tenant", "", None) for f in fields):
        raise argparse.ArgumentTypeError(
            "must contain {tenant} and no other {...} field, e.g. emulator-app.{tenant}"
        )
    return value


class _Either(argparse.Action):
    """``store_const`` for flags that exclude each other on one ``dest`` (``--active``/``--resolved``).

    argparse's mutually exclusive groups would do, but inherited through ``parents=`` they leave
    their argument group, and ``--help`` shows them apart from their kind.
    """

    def __init__(
        self, option_strings: Sequence[str], dest: str, *, excludes: str, **kwargs: Any
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.excludes = excludes

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest, None)
        if given is not None and given != self.const:
            raise argparse.ArgumentError(self, f"not allowed with {self.excludes}")
        setattr(namespace, self.dest, self.const)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        # argparse's own messages, in the one-line form of every other usage error.
        raise UsageError(f"{self.prog}: {message} (see: {self.prog} --help)")


# Which API each single-tenant command (and each scan --operation) belongs to; the first is the
# default when there is a choice.
COMMAND_APIS: Mapping[str, tuple[str, ...]] = {
    "services": ("legacy",),
    "status": ("legacy",),
    "history": ("legacy",),
    "messages": ("legacy", "graph"),
    "overview": ("graph",),
    "issues": ("graph",),
    "incident-report": ("graph",),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="servicecomms",
        description="Office 365 Service Communications (the legacy API or Microsoft Graph): one "
        "tenant, or a scan of many.",
        epilog="Exit codes: 0 all tenants succeeded, 1 some failed, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    connection = _Parser(add_help=False)
    group = connection.add_argument_group("connection and authentication")
    group.add_argument(
        "--api",
        choices=APIS,
        help=f"legacy (manage.office.com) or graph (Microsoft Graph); default ${API_ENV}, else "
        "legacy. Commands of one API only pick it themselves",
    )
    group.add_argument(
        "--cloud",
        choices=sorted(CLOUDS),
        default="public",
        help="Microsoft cloud: its API host, token scope and sign-in authority (default public)",
    )
    group.add_argument(
        "--base-url",
        help=f"API root (default ${BASE_URL_ENV}, or ${GRAPH_BASE_URL_ENV} with --api graph, else "
        "the cloud's), e.g. the emulator's",
    )
    group.add_argument(
        "--token",
        help=f"a static bearer token, e.g. the emulator's (default ${TOKEN_ENV}); "
        "otherwise azure-identity is used",
    )
    group.add_argument(
        "--token-template",
        metavar="TEMPLATE",
        type=_token_template,
        help="a static token per tenant, {tenant} replaced by its id, e.g. emulator-app.{tenant} "
        "for the emulator's Graph routes (Graph reads the tenant from the token)",
    )
    group.add_argument("--client-id", help="app (client) id (default $AZURE_CLIENT_ID)")
    group.add_argument(
        "--auth-tenant",
        help="the app's home tenant (default $AZURE_TENANT_ID); the secret comes only from "
        "$AZURE_CLIENT_SECRET",
    )
    group.add_argument(
        "--client-certificate",
        metavar="PATH",
        help="PEM/PKCS12 certificate (default $AZURE_CLIENT_CERTIFICATE_PATH)",
    )
    group.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds per request")
    group.add_argument(
        "--attempts", type=_positive_int, default=5, help="tries per request, retries included"
    )
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)"
    )

    output = _Parser(add_help=False)
    group = output.add_argument_group("output")
    group.add_argument("--format", choices=FORMATS, default="table")
    group.add_argument("--output", "-o", metavar="FILE", help="write records here, not to stdout")

    filters = _Parser(add_help=False)
    group = filters.add_argument_group("filters (both APIs)")
    group.add_argument("--select", help="comma-separated fields to ask for ($select)")
    group.add_argument(
        "--since",
        type=_parse_when,
        help="history: days on or after this; Graph issues, messages: lastModifiedDateTime on or "
        "after this",
    )
    group.add_argument(
        "--max-items",
        type=_positive_int,
        help="messages (and Graph issues): stop after this many per tenant",
    )
    group = filters.add_argument_group("filters (legacy API: status, history, messages)")
    group.add_argument("--workload", help="a workload id such as Exchange")
    group.add_argument("--start", type=_parse_when, help="messages: StartTime on or after")
    group.add_argument("--end", type=_parse_when, help="messages: EndTime on or before")
    group.add_argument(
        "--type",
        dest="message_type",
        choices=[m.value for m in MessageType],
        help="messages: the message type",
    )
    group.add_argument("--id", dest="message_id", help="messages: one message id")
    group = filters.add_argument_group("filters (Microsoft Graph: overview, issues, messages)")
    # Flags default to None, not False, so that "given" can be told from "not given" when a filter
    # is checked against the API and the operation.
    group.add_argument(
        "--expand-issues",
        action="store_true",
        default=None,
        help="overview: each service with its issues",
    )
    group.add_argument(
        "--service",
        type=_name,
        action="append",  # one name per flag: an unquoted 'Exchange Online' is an error, not two
        metavar="NAME",
        help="issues: the service; messages: posts naming this service (repeat for any of "
        "several); names as Graph spells them, e.g. 'Exchange Online'",
    )
    group.add_argument(
        "--active",
        dest="is_resolved",
        action=_Either,
        excludes="--resolved",
        const=False,
        help="issues: only those not resolved",
    )
    group.add_argument(
        "--resolved",
        dest="is_resolved",
        action=_Either,
        excludes="--active",
        const=True,
        help="issues: only resolved ones",
    )
    group.add_argument(
        "--classification",
        type=_graph_choice(ServiceHealthClassification),
        help="issues: incident or advisory",
    )
    group.add_argument(
        "--category",
        type=_graph_choice(ServiceUpdateCategory),
        help="messages: preventOrFixIssue, planForChange or stayInformed",
    )
    group.add_argument(
        "--severity",
        type=_graph_choice(ServiceUpdateSeverity),
        help="messages: normal, high or critical",
    )
    group.add_argument(
        "--major-change",
        action="store_true",
        default=None,
        help="messages: only major changes",
    )
    group.add_argument(
        "--filter",
        type=_odata,
        metavar="ODATA",
        help="issues, messages: your own $filter, ANDed with the flags above",
    )
    group.add_argument(
        "--page-size",
        type=_graph_page_size,
        metavar="N",
        help=f"issues, messages: items per page, 1 to {GRAPH_MAX_PAGE_SIZE} (Graph's default 100)",
    )

    helps = {
        "services": "the services a tenant subscribes to (legacy API)",
        "status": "each workload's current status (legacy API)",
        "history": "each workload's status per day, last 7 days (legacy API)",
        "messages": "incidents, planned maintenance and Message Center posts; with --api graph, "
        "Message Center posts",
        "overview": "each service's health now (Microsoft Graph)",
        "issues": "incidents and advisories (Microsoft Graph)",
    }
    for name, help_text in helps.items():
        command = commands.add_parser(
            name, help=help_text, parents=[connection, output, filters], description=help_text
        )
        command.add_argument(
            "--tenant", required=True, type=_tenant, help="tenant GUID or domain name"
        )

    report = commands.add_parser(
        "incident-report",
        help="download an issue's post-incident review document (Microsoft Graph)",
        parents=[connection],
        description="Download the post-incident review document of one issue, as the bytes "
        "Microsoft Graph sends, to a file or to stdout when stdout is not a terminal.",
    )
    report.add_argument("--tenant", required=True, type=_tenant, help="tenant GUID or domain name")
    report.add_argument(
        "--id", dest="issue_id", required=True, type=_issue_id, help="the issue id, e.g. EX123456"
    )
    report.add_argument(
        "--output", "-o", metavar="FILE", help="write the document here (- or none: stdout)"
    )

    scan = commands.add_parser(
        "scan",
        help="run one operation for many tenants, with progress and a summary",
        parents=[connection, output, filters],
        description="Run one operation for every tenant in a file (one per line, # comments).",
    )
    _add_scan_options(scan, tenants_required=True)

    commands.add_parser(
        "emulator",
        help="serve the embedded API emulator (see: servicecomms emulator --help)",
        add_help=False,
    )

    demo = commands.add_parser(
        "demo",
        help="scan a few hundred emulated tenants in-process: no credentials, no network",
        parents=[output],
        description="Start the embedded emulator with simulated tenants (some degraded, some "
        "throttled or failing), scan them all and print the summary.",
    )
    demo.add_argument(
        "--api",
        choices=APIS,
        help="the API to scan through (default legacy, or the one --operation belongs to)",
    )
    demo.add_argument("--tenants", type=_positive_int, default=300, help="simulated tenants")
    demo.add_argument(
        "--operation",
        choices=_ALL_OPERATIONS,
        help="default status (legacy) or overview (graph)",
    )
    demo.add_argument("--concurrency", type=_positive_int, default=25)
    demo.add_argument("--seed", type=int, default=2024)
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


_ALL_OPERATIONS = tuple(dict.fromkeys((*OPERATIONS, *GRAPH_OPERATIONS)))


def _add_scan_options(scan: argparse.ArgumentParser, *, tenants_required: bool) -> None:
    group = scan.add_argument_group("scan")
    group.add_argument(
        "--tenants",
        required=tenants_required,
        metavar="FILE",
        help="file of tenant ids, one per line (# comments allowed); - reads stdin",
    )
    group.add_argument(
        "--operation",
        choices=_ALL_OPERATIONS,
        help="legacy: services, status (default), history, messages; graph: overview (default), "
        "issues, messages",
    )
    group.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"tenants at once (default {DEFAULT_CONCURRENCY})",
    )
    group.add_argument(
        "--tenant-timeout",
        type=_positive_float,
        help="seconds one tenant may take in all (retries included) before it counts as failed",
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_api(
    args: argparse.Namespace, environ: Mapping[str, str], *, use_environment: bool = True
) -> None:
    """Settle ``args.api`` (and a scan's or the demo's default ``args.operation``) and the base URL.

    A command or operation of one API picks it; naming the other API is a usage error. Otherwise the
    ``--api`` flag, then ``$SERVICECOMMS_API``, then ``legacy``. The base URL variable is the chosen
    API's own, so that a legacy emulator URL in the environment is never used for Graph.
    """
    environment_api = (environ.get(API_ENV) or None) if use_environment else None
    if environment_api is not None and environment_api not in APIS:
        raise UsageError(f"${API_ENV} must be legacy or graph, got {environment_api!r}")
    scanning = args.command in ("scan", "demo")
    name: str | None = args.operation if scanning else args.command
    explicit: str | None = args.api
    if name is None:
        api = explicit or environment_api or "legacy"
        args.operation = DEFAULT_OPERATION[api]
    else:
        apis = COMMAND_APIS[name]
        subject = f"--operation {name}" if scanning else name
        if explicit is not None and explicit not in apis:
            if explicit == "graph":
                raise UsageError(
                    f"{subject} is a legacy API {'operation' if scanning else 'command'}; "
                    "with --api graph use overview, issues or messages"
                )
            raise UsageError(
                f"{subject} is a Microsoft Graph {'operation' if scanning else 'command'} "
                "(drop --api legacy); the legacy API's are services, status, history and messages"
            )
        api = explicit or (apis[0] if len(apis) == 1 else environment_api or apis[0])
    args.api = api
    if hasattr(args, "base_url") and args.base_url is None and use_environment:
        args.base_url = environ.get(BASE_URL_ENVS[api]) or None


# Which filters apply where: dest -> {api: the operations that take it}.
_FILTER_SCOPE: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "workload": {"legacy": ("status", "history", "messages")},
    "since": {"legacy": ("history",), "graph": ("issues", "messages")},
    "start": {"legacy": ("messages",)},
    "end": {"legacy": ("messages",)},
    "message_type": {"legacy": ("messages",)},
    "message_id": {"legacy": ("messages",)},
    "max_items": {"legacy": ("messages",), "graph": ("issues", "messages")},
    "expand_issues": {"graph": ("overview",)},
    "service": {"graph": ("issues", "messages")},
    "is_resolved": {"graph": ("issues",)},
    "classification": {"graph": ("issues",)},
    "category": {"graph": ("messages",)},
    "severity": {"graph": ("messages",)},
    "major_change": {"graph": ("messages",)},
    "filter": {"graph": ("issues", "messages")},
    "page_size": {"graph": ("issues", "messages")},
}
_FLAGS = {"message_type": "--type", "message_id": "--id"}


def _flag(name: str, value: object) -> str:
    if name == "is_resolved":
        return "--resolved" if value else "--active"
    return _FLAGS.get(name) or "--" + name.replace("_", "-")


_MODELS: Mapping[str, type] = {
    "services": Service,
    "status": WorkloadStatus,
    "history": WorkloadStatus,
    "messages": Message,
}
_GRAPH_MODELS: Mapping[str, type] = {
    "overview": ServiceHealth,
    "issues": ServiceHealthIssue,
    "messages": ServiceUpdateMessage,
}


def make_operation(args: argparse.Namespace, operation: str) -> Callable[[Any], Any]:
    """The per-tenant call for ``operation`` with the filters given, in ``args.api``.

    Filters are checked here, once, so that a bad one (or one of the other API) is a usage error
    before any request instead of the same failure for every tenant of a scan.
    """
    api: str = getattr(args, "api", None) or "legacy"
    option = {name: getattr(args, name, None) for name in (*_FILTER_SCOPE, "select")}
    for name, scope in _FILTER_SCOPE.items():
        value = option[name]
        if value is None:
            continue
        flag = _flag(name, value)
        allowed = scope.get(api)
        if allowed is None:
            if api == "graph":
                raise UsageError(
                    f"{flag} is a legacy API filter, not one of Microsoft Graph's (--api graph)"
                )
            raise UsageError(
                f"{flag} is a Microsoft Graph filter: it needs --api graph "
                f"({' and '.join(scope['graph'])})"
            )
        if operation not in allowed:
            raise UsageError(f"{flag} applies to {' and '.join(allowed)} only, not {operation}")
    if api == "graph":
        return _graph_operation(option, operation)
    try:
        build_select(option["select"], _MODELS[operation])
        FilterBuilder().equals("Workload", option["workload"], parameter="--workload").equals(
            "Id", option["message_id"], parameter="--id"
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc).replace("select:", "--select:", 1)) from None
    select = option["select"]
    workload = option["workload"]
    if operation == "services":
        return lambda t: t.services(select=select)
    if operation == "status":
        return lambda t: t.current_status(workload, select=select)
    if operation == "history":
        return lambda t: t.historical_status(workload, option["since"], select=select)
    return lambda t: t.messages(
        workload,
        option["start"],
        option["end"],
        option["message_type"],
        option["message_id"],
        select=select,
        max_items=option["max_items"],
    )


def _graph_operation(option: Mapping[str, Any], operation: str) -> Callable[[Any], Any]:
    """Microsoft Graph's per-tenant call (the scope of each filter is already checked)."""
    services: list[str] | None = option["service"]
    if operation == "issues" and services is not None and len(services) > 1:
        raise UsageError(
            f"--service: Graph filters issues by one service, got {len(services)} "
            "(for several, scan once per service, or use --filter)"
        )
    try:
        build_select(option["select"], _GRAPH_MODELS[operation])
        # The same clauses the client will build, with the flags' names in any error.
        GraphFilter().any_of("services", services, parameter="--service").since(
            "lastModifiedDateTime", option["since"], parameter="--since"
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc).replace("select:", "--select:", 1)) from None
    select = option["select"]
    if operation == "overview":
        expand = bool(option["expand_issues"])
        return lambda g: g.health_overviews(expand_issues=expand, select=select)
    if operation == "issues":
        return lambda g: g.issues(
            service=services[0] if services else None,
            is_resolved=option["is_resolved"],
            classification=option["classification"],
            since=option["since"],
            filter=option["filter"],
            select=select,
            page_size=option["page_size"],
            max_items=option["max_items"],
        )
    return lambda g: g.messages(
        category=option["category"],
        severity=option["severity"],
        services=services,
        is_major_change=option["major_change"],
        since=option["since"],
        filter=option["filter"],
        select=select,
        page_size=option["page_size"],
        max_items=option["max_items"],
    )


def read_tenants(source: str, stdin: TextIO) -> list[str]:
    """Tenant ids from a file (or ``-``): one per line, blank lines and ``#`` comments skipped.

    Every malformed line is reported (``FILE:LINE: reason``) before anything is sent.
    """
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"--tenants: cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--tenants: {source} is not UTF-8 text") from None
    label = "stdin" if source == "-" else source
    tenants: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            tenants.append(validate_tenant_id(entry))
        except ValueError as exc:
            problems.append(f"{label}:{number}: {exc}")
    if problems:
        raise UsageError("\n".join(problems))
    if not tenants:
        raise UsageError(f"--tenants: no tenant ids in {label}")
    return tenants


# -- sessions and authentication -------------------------------------------------------------------


@attrs.frozen
class _Auth:
    kwargs: dict[str, Any]
    credential: Any = None  # one the CLI made and must close


def _static_token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The one static token for every tenant, if that is how this run authenticates."""
    if getattr(args, "token_template", None):
        return None
    return args.token or environ.get(TOKEN_ENV) or None


def make_auth(args: argparse.Namespace, environ: Mapping[str, str]) -> _Auth:
    """A per-tenant token from ``--token-template``, a static token (``--token`` or
    ``$SERVICECOMMS_TOKEN``), else an azure-identity credential.

    With a client id and a secret (``$AZURE_CLIENT_SECRET`` only: a flag would end up in shell history
    and process lists) or a certificate, that app's credential; otherwise ``DefaultAzureCredential``
    (environment, workload identity, managed identity, Azure CLI, ...). Tokens are asked per customer
    tenant, since the API refuses a token from another tenant.
    """
    template: str | None = getattr(args, "token_template", None)
    if template:
        return _Auth({"token": lambda tenant: template.format(tenant=tenant)})
    token = _static_token(args, environ)
    if token:
        return _Auth({"token": token})
    from azure.identity.aio import (
        CertificateCredential,
        ClientSecretCredential,
        DefaultAzureCredential,
    )

    client_id = args.client_id or environ.get("AZURE_CLIENT_ID")
    auth_tenant = args.auth_tenant or environ.get("AZURE_TENANT_ID")
    secret = environ.get("AZURE_CLIENT_SECRET")
    certificate = args.client_certificate or environ.get("AZURE_CLIENT_CERTIFICATE_PATH")
    allowed = ["*"]
    authority = get_cloud(args.cloud).authority
    try:
        credential: Any
        if client_id and (secret or certificate):
            if not auth_tenant:
                raise UsageError(
                    "--auth-tenant (or $AZURE_TENANT_ID) is required with a client secret or "
                    "certificate: the app's home tenant"
                )
            if certificate:
                credential = CertificateCredential(
                    auth_tenant,
                    client_id,
                    certificate_path=certificate,
                    password=environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
                    authority=authority,
                    additionally_allowed_tenants=allowed,
                )
            else:
                credential = ClientSecretCredential(
                    auth_tenant,
                    client_id,
                    secret or "",
                    authority=authority,
                    additionally_allowed_tenants=allowed,
                )
        else:
            credential = DefaultAzureCredential(
                authority=authority, additionally_allowed_tenants=allowed
            )
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot set up authentication: {error_detail(exc)}") from None
    return _Auth({"credential": credential, "per_tenant_tokens": True}, credential)


def make_session(
    args: argparse.Namespace, auth: _Auth, *, concurrency: int = 1
) -> ServiceCommsSession:
    try:
        return ServiceCommsSession(
            api=args.api,
            cloud=args.cloud,
            base_url=args.base_url,
            timeout=Timeout(total=args.timeout, read=args.timeout),
            retry=RetryPolicy(attempts=args.attempts),
            limits=Limits(max_connections=max(Limits().max_connections, concurrency)),
            **auth.kwargs,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# -- commands --------------------------------------------------------------------------------------


class _Output:
    """Where records go (stdout or ``--output``), and whether stdout is then free for the summary."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO) -> None:
        self.path: str | None = args.output
        self.stdout = stdout
        self._file: IO[str] | None = None

    def open(self) -> TextIO:
        if self.path is None or self.path == "-":
            return self.stdout
        try:
            self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"--output: cannot write {self.path}: {exc.strerror or exc}") from None
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    @property
    def stdout_free(self) -> bool:
        return self.path is not None and self.path != "-"


class _Buffer(io.StringIO):
    """A text buffer that reports the encoding of the stream it stands in for, so that rich draws
    ASCII tables for a non-UTF-8 pipe (e.g. a Windows console redirected to a file)."""

    def __init__(self, encoding: str | None) -> None:
        super().__init__()
        self._target_encoding = encoding or "utf-8"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target_encoding


class _Printer:
    """rich output: colours on a terminal; elsewhere plain text without rich's trailing padding."""

    def __init__(self, file: TextIO) -> None:
        from rich.console import Console

        self._file = file
        self._terminal = file.isatty()
        # Not a terminal: wide enough that tables keep incident ids and messages on one line.
        self._console = Console(
            file=file if self._terminal else _Buffer(getattr(file, "encoding", None)),
            width=None if self._terminal else 160,
            highlight=False,
        )

    def print(self, *renderables: Any) -> None:
        if self._terminal:
            self._console.print(*renderables)
            return
        with self._console.capture() as capture:
            self._console.print(*renderables)
        text = "\n".join(line.rstrip() for line in capture.get().splitlines())
        self._file.write(text + "\n")
        self._file.flush()


async def run_one(args: argparse.Namespace, stdout: TextIO, environ: Mapping[str, str]) -> int:
    operation_name: str = args.command
    api: str = args.api
    operation = make_operation(args, operation_name)
    output = _Output(args, stdout)
    auth = make_auth(args, environ)
    try:
        async with make_session(args, auth) as session:
            pager = operation(session.client(args.tenant))
            if args.format == "table":
                records = [to_record(args.tenant, item, api=api) async for item in pager]
                out = output.open()
                print_table(_Printer(out), operation_name, records, api=api)
            else:
                out = output.open()
                writer = RecordWriter(out, args.format, operation_name, api=api)
                async for item in pager:
                    writer.write(to_record(args.tenant, item, api=api))
                writer.close()
    finally:
        output.close()
        await _close_credential(auth)
    return EXIT_OK


async def run_incident_report(
    args: argparse.Namespace, stdout: TextIO, environ: Mapping[str, str]
) -> int:
    """One issue's post-incident review, as the bytes Graph sends, to ``--output`` or stdout.

    A document is binary: it is never written to a terminal, and where it goes is settled before the
    request. A file is written only once the whole document has arrived, so a failed download never
    leaves a truncated file (or empties an existing one).
    """
    to_stdout = args.output is None or args.output == "-"
    binary_stdout: IO[bytes] | None = None
    if to_stdout:
        if stdout.isatty():
            raise UsageError(
                "incident-report writes a binary document: give --output FILE or redirect stdout "
                "(refusing to write it to a terminal)"
            )
        binary_stdout = getattr(stdout, "buffer", None)
        if binary_stdout is None:
            raise UsageError("incident-report: this stdout takes text only; give --output FILE")
    auth = make_auth(args, environ)
    try:
        async with make_session(args, auth) as session:
            document: bytes = await session.graph(args.tenant).incident_report(args.issue_id)
    finally:
        await _close_credential(auth)
    if binary_stdout is not None:
        stdout.flush()
        binary_stdout.write(document)
        binary_stdout.flush()
        return EXIT_OK
    try:
        await anyio.Path(args.output).write_bytes(document)
    except OSError as exc:
        raise UsageError(f"--output: cannot write {args.output}: {exc.strerror or exc}") from None
    return EXIT_OK


async def run_scan(
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
    *,
    tenants: list[str],
    session_factory: Callable[[], ServiceCommsSession] | None = None,
) -> ScanSummary:
    """Scan ``tenants``, writing records as they arrive; return the summary (already printed)."""
    operation_name: str = args.operation
    operation = make_operation(args, operation_name)
    output = _Output(args, stdout)
    auth: _Auth | None = None
    if session_factory is None:
        auth = make_auth(args, environ)
        session_factory = lambda: make_session(args, auth, concurrency=args.concurrency)  # noqa: E731
    api: str = getattr(args, "api", None) or "legacy"
    summary = ScanSummary(operation_name, api=api)
    try:
        async with session_factory() as session:
            writer = (
                RecordWriter(output.open(), args.format, operation_name, api=api)
                if args.format != "table"
                else None
            )
            scan = session.scan(
                tenants,
                operation,
                concurrency=args.concurrency,
                tenant_timeout=getattr(args, "tenant_timeout", None),
            )
            with _ProgressBar(stderr, scan.progress, enabled=not args.no_progress) as tick:
                async with scan as results:
                    async for result in results:
                        summary.add(result)
                        if writer is not None and isinstance(result, ScanItem):
                            writer.write(to_record(result.tenant_id, result.value, api=api))
                        tick(result)
            if writer is not None:
                writer.close()
            if args.format == "table":
                summary_out = output.open()  # the summary is the table: stdout or --output
            else:
                summary_out = stdout if output.stdout_free else stderr
            summary.render(_Printer(summary_out), scan.progress)
    finally:
        output.close()
        await _close_credential(auth)
    return summary


class _ProgressBar:
    """A rich progress bar on stderr when it is a terminal; otherwise nothing at all."""

    def __init__(self, stderr: TextIO, progress: ScanProgress, *, enabled: bool) -> None:
        self._stderr = stderr
        self._scan = progress
        self._enabled = enabled and stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0

    def __enter__(self) -> Callable[[object], None]:
        if not self._enabled:
            return lambda result: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]tenants"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[items]:,} items"),
            TextColumn("{task.fields[rate]:,.0f} items/s"),
            TimeElapsedColumn(),
            console=Console(file=self._stderr),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            "scan", total=self._scan.tenants_total, failed=0, items=0, rate=0.0
        )
        return self._tick

    def _tick(self, result: object) -> None:
        now = time.monotonic()
        # Redraw on every finished tenant, and at most 10 times a second for items.
        if not isinstance(result, (TenantDone, TenantFailed)) and now - self._last < 0.1:
            return
        self._last = now
        self._update()

    def _update(self) -> None:
        p = self._scan
        self._bar.update(
            self._task,
            completed=p.tenants_finished,
            failed=p.tenants_failed,
            items=p.items,
            rate=p.items_per_second,
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._update()
            self._bar.stop()


async def _close_credential(auth: _Auth | None) -> None:
    if auth is not None and auth.credential is not None:
        await auth.credential.close()


async def run_scan_command(
    args: argparse.Namespace,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> int:
    make_operation(args, args.operation)  # a bad filter is a usage error, before reading stdin
    tenants = read_tenants(args.tenants, stdin)
    distinct = len({tenant.lower() for tenant in tenants})
    if args.api == "graph" and distinct > 1 and _static_token(args, environ) is not None:
        # Graph takes the tenant from the token: one token would return one tenant's data under
        # every tenant's id, which looks like success.
        raise UsageError(
            f"a static token is one tenant's, and Microsoft Graph reads the tenant from the token: "
            f"scanning {distinct} tenants with it would report that tenant's data for all of them; "
            "use --token-template (e.g. emulator-app.{tenant}) or azure-identity"
        )
    summary = await run_scan(args, stdout, stderr, environ, tenants=tenants)
    return EXIT_FAILED if summary.failures else EXIT_OK


async def run_demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """The emulator in-process, some tenants degraded and a few throttled or failing, scanned
    through the legacy routes, or with ``--api graph`` through Microsoft Graph's."""
    from .emulator import Emulator, EmulatorConfig
    from .emulator.faults import Fault, FaultPlan, fault_middleware

    graph = args.api == "graph"
    config = EmulatorConfig(
        seed=args.seed,
        tenants=args.tenants,
        messages_per_tenant=40,
        degraded_ratio=0.15,
        latency=0.02,
        latency_jitter=0.015,
    )
    tenant_ids = Emulator(config).tenant_ids
    # A few tenants fail every time (two kinds of throttling, a server fault, a refusal) and a small
    # share of all requests fails once in a while, which retries absorb.
    always = (Fault.THROTTLE_AF429, Fault.THROTTLE_429, Fault.SERVER_ERROR, Fault.FORBIDDEN)
    failing = {tenant: always[i % len(always)] for i, tenant in enumerate(tenant_ids[-4:])}
    flaky = (Fault.THROTTLE_429, Fault.THROTTLE_AF429, Fault.UNAVAILABLE, Fault.RESET_BEFORE_BODY)
    # Graph paths carry no tenant for the fault plan to match: there, the token check refuses them.
    tenant_faults = {} if graph else failing
    plan = FaultPlan(
        rate=0.03, seed=args.seed, kinds=flaky, retry_after=0.1, tenant_faults=tenant_faults
    )
    # Short, few retries: the always-failing tenants give up in well under a second.
    retry = RetryPolicy(attempts=3, deadline=2.0, backoff_initial=0.05, backoff_max=0.2)
    if graph and args.operation == "overview":
        args.expand_issues = True  # so that the summary can name the active issues
    emulator = Emulator(
        config,
        middlewares=[fault_middleware(plan)],
        graph_token_validator=_demo_graph_tokens(tenant_ids, failing) if graph else None,
        record_requests=False,
    )
    async with emulator as emu:
        console = _Printer(stdout if args.format == "table" or args.output else stderr)
        degraded = round(config.degraded_ratio * len(tenant_ids))
        console.print(
            f"Emulator on {emu.graph_base_url if graph else emu.base_url}: {len(tenant_ids)} "
            f"simulated tenants, ~{degraded} with incidents, {len(failing)} always failing, 3% of "
            "requests failing once."
        )

        def session_factory() -> ServiceCommsSession:
            return ServiceCommsSession(
                token=Emulator.graph_token if graph else "demo-token",
                api=args.api,
                base_url=emu.graph_base_url if graph else emu.base_url,
                retry=retry,
                limits=Limits(max_connections=max(100, args.concurrency)),
            )

        await run_scan(
            args,
            stdout,
            stderr,
            {},
            tenants=tenant_ids,
            session_factory=session_factory,
        )
    console.print(
        "The failures above are simulated; the demo exits 0. To try the commands yourself:"
    )
    console.print("  servicecomms emulator --port 8080      # in another terminal")
    if graph:
        console.print(
            "  servicecomms overview --base-url http://127.0.0.1:8080/v1.0 "
            f"--token-template 'emulator-app.{{tenant}}' --tenant {tenant_ids[0]}"
        )
    else:
        console.print(
            "  servicecomms status --base-url http://127.0.0.1:8080/api/v1.0 --token any "
            f"--tenant {tenant_ids[0]}"
        )
    # The demo's failures are part of the show: it succeeded if it ran.
    return EXIT_OK


def _demo_graph_tokens(tenant_ids: Sequence[str], failing: Mapping[str, Any]) -> Any:
    """A Graph token check for the demo: the emulator's per-tenant tokens, with the always-failing
    tenants refused as their legacy fault would be (Graph throttles with 429, never 403 AF429)."""
    from .emulator import Emulator
    from .emulator.faults import Fault
    from .emulator.graph import graph_error

    throttled = (429, "TooManyRequests", "Please retry again later.")
    answers = {
        Fault.THROTTLE_AF429: throttled,
        Fault.THROTTLE_429: throttled,
        Fault.SERVER_ERROR: (500, "generalException", "An unspecified error has occurred."),
        Fault.FORBIDDEN: (
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
    }
    tokens = {Emulator.graph_token(tenant): tenant for tenant in tenant_ids}
    refused = {tenant: answers[fault] for tenant, fault in failing.items()}

    async def check(token: str, permission: str) -> Any:
        tenant = tokens.get(token)
        if tenant is None:
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token validation failure."
            )
        if tenant in refused:
            status, code, message = refused[tenant]
            headers = {"Retry-After": "0.1"} if status == 429 else None
            return graph_error(status, code, message, headers=headers)
        return tenant, False

    return check


# -- entry point -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _logging_to(stderr: TextIO, verbosity: int) -> Iterator[None]:
    """``-v``: the library's log on stderr (``-vv``: debug) for this run only."""
    library = logging.getLogger("servicecomms_async")
    azure = logging.getLogger("azure")
    saved = library.level, azure.level
    handler: logging.Handler | None = None
    if verbosity > 0:
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        library.addHandler(handler)
        library.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    else:
        # azure-identity explains a failed credential in multi-line warnings; the error line says it.
        azure.setLevel(logging.ERROR)
    try:
        yield
    finally:
        if handler is not None:
            library.removeHandler(handler)
        library.setLevel(saved[0])
        azure.setLevel(saved[1])


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    environ = os.environ if environ is None else environ
    if argv[:1] == ["emulator"]:
        from .emulator.__main__ import main as emulator_main

        return emulator_main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "token", None) and getattr(args, "token_template", None):
            raise UsageError("--token and --token-template exclude each other: give one")
        # The demo is self-contained: nothing from the environment changes what it shows.
        resolve_api(args, environ, use_environment=args.command != "demo")
        with _logging_to(stderr, getattr(args, "verbose", 0)):
            if args.command == "scan":
                return anyio.run(run_scan_command, args, stdin, stdout, stderr, environ)
            if args.command == "demo":
                return anyio.run(run_demo, args, stdout, stderr)
            if args.command == "incident-report":
                return anyio.run(run_incident_report, args, stdout, environ)
            return anyio.run(run_one, args, stdout, environ)
    except UsageError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=stderr)
        return EXIT_USAGE
    except ServiceCommsError as exc:
        print(f"error: {type(exc).__name__}: {_one_line(str(exc))}", file=stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""
