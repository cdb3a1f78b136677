"""The operation registry: every (API, operation) pair the command line runs, described once.

An :class:`Operation` holds what the parser, the commands and the output layer need: the model,
the client call, the filters it accepts, its CSV and table columns, the tally of its scan summary
and its help text. Adding a pair (say Graph's ``status``) is one entry in :data:`OPERATIONS` plus
its client call; the subcommand, ``scan --operation``, ``--help``, the filter checks, the records
and the summary follow from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..dialects import GRAPH, LEGACY, Dialect
from ..dialects import Api as ApiName
from ..graph.models import ServiceHealth, ServiceHealthIssue, ServiceUpdateMessage
from ..legacy.models import Message, Service, WorkloadStatus
from ..over_graph import LegacyOverGraphClient
from .errors import UsageError
from .output.tallies import (
    CategoryTally,
    IssuesTally,
    ServiceHealthTally,
    ServicesTally,
    Tally,
    WorkloadMessagesTally,
    WorkloadStatusTally,
)

Options = Mapping[str, Any]  # filter dest (and "select") -> the parsed value, None when not given
Record = Mapping[str, Any]
# A table column: a record key, or a heading with the function that computes its value.
Column = str | tuple[str, Callable[[Record], Any]]


@attrs.frozen
class Api:
    """An API as the command line sees it: the library's dialect, with its label and base URL variable."""

    dialect: Dialect
    label: str
    base_url_env: str  # each API its own, so that a URL set for one never reaches the other

    @property
    def name(self) -> ApiName:
        return self.dialect.name

    @property
    def tenant_key(self) -> str:
        """The first key of every record, in the API's own naming style."""
        return self.dialect.tenant_key


API_ENV = "SERVICECOMMS_API"
APIS: Mapping[str, Api] = {
    "graph": Api(GRAPH, "Microsoft Graph", "SERVICECOMMS_GRAPH_BASE_URL"),
    "legacy": Api(LEGACY, "the legacy API", "SERVICECOMMS_BASE_URL"),
}
# Microsoft retired the legacy endpoint in its public cloud: Graph is the front door.
DEFAULT_API: ApiName = "graph"


@attrs.frozen
class Operation:
    """One operation of one API."""

    api: ApiName
    name: str
    model: type
    # The client call: (TenantClient or GraphClient, options) -> its pager.
    call: Callable[[Any, Options], Any]
    filters: tuple[str, ...]  # the filters it accepts (keys of filters.FILTERS); --select always
    csv_columns: tuple[str, ...]  # stable; JSON records carry these keys and every other wire field
    table_columns: tuple[Column, ...]  # a readable subset for people, not a stable interface
    tally: Callable[[], Tally]  # what a scan summary counts
    help: str
    default: bool = False  # the API's operation for a scan or demo without --operation
    # A check of the options together, before any request (each value is checked when parsed).
    check: Callable[[Options], None] | None = None
    # For a legacy operation: the Graph command line that replaces it on the retired endpoint.
    successor: str | None = None
    # The records' tenant key when it is not the API's (legacy-shaped records over Graph).
    tenant_key: str | None = None
    # Another shape of the same (api, name), chosen with --shape (messages --shape legacy).
    shape: str | None = None

    @property
    def record_tenant_key(self) -> str:
        """The first key of every record of this operation."""
        return self.tenant_key or APIS[self.api].tenant_key

    def bind(self, options: Options) -> Callable[[Any], Any]:
        """The per-tenant call with these options, checked once here (before any request)."""
        if self.check is not None:
            self.check(options)
        call = self.call
        return lambda client: call(client, options)


def _one_service(options: Options) -> None:
    services = options.get("service")
    if services is not None and len(services) > 1:
        raise UsageError(
            f"--service: Graph filters issues by one service, got {len(services)} "
            "(for several, scan once per service, or use --filter)"
        )


def _active_issue_ids(record: Record) -> list[Any]:
    # The expansion holds a service's resolved issues too; people looking now want the open ones.
    issues = record.get("issues") or ()
    return [i.get("id") for i in issues if isinstance(i, dict) and i.get("isResolved") is not True]


_STATUS_COLUMNS = (
    "TenantId",
    "Id",
    "Workload",
    "WorkloadDisplayName",
    "Status",
    "StatusDisplayName",
    "StatusTime",
    "IncidentIds",
)

_MESSAGE_COLUMNS = (
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
)
_MESSAGE_TABLE: tuple[Column, ...] = (
    "Id",
    "MessageType",
    "Workload",
    "Status",
    "StartTime",
    "EndTime",
    "Title",
)


def _over_graph(graph: Any) -> LegacyOverGraphClient:
    return LegacyOverGraphClient(graph)


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        api="graph",
        name="overview",
        model=ServiceHealth,
        call=lambda g, o: g.health_overviews(
            expand_issues=bool(o["expand_issues"]), select=o["select"]
        ),
        filters=("expand_issues",),
        csv_columns=("tenantId", "id", "service", "status", "issues"),
        table_columns=("service", "status", ("activeIssues", _active_issue_ids)),
        tally=ServiceHealthTally,
        help="each service's health now (Microsoft Graph)",
        default=True,
    ),
    Operation(
        api="graph",
        name="issues",
        model=ServiceHealthIssue,
        call=lambda g, o: g.issues(
            service=o["service"][0] if o["service"] else None,
            is_resolved=o["is_resolved"],
            classification=o["classification"],
            since=o["since"],
            filter=o["filter"],
            select=o["select"],
            page_size=o["page_size"],
            max_items=o["max_items"],
        ),
        filters=(
            "service",
            "is_resolved",
            "classification",
            "since",
            "filter",
            "page_size",
            "max_items",
        ),
        csv_columns=(
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
        table_columns=(
            "id",
            "service",
            "classification",
            "status",
            "isResolved",
            "lastModifiedDateTime",
            "title",
        ),
        tally=IssuesTally,
        help="incidents and advisories (Microsoft Graph)",
        check=_one_service,
    ),
    Operation(
        api="graph",
        name="messages",
        model=ServiceUpdateMessage,
        call=lambda g, o: g.messages(
            category=o["category"],
            severity=o["severity"],
            services=o["service"],
            is_major_change=o["major_change"],
            since=o["since"],
            filter=o["filter"],
            select=o["select"],
            page_size=o["page_size"],
            max_items=o["max_items"],
        ),
        filters=(
            "category",
            "severity",
            "service",
            "major_change",
            "since",
            "filter",
            "page_size",
            "max_items",
        ),
        csv_columns=(
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
        table_columns=(
            "id",
            "category",
            "severity",
            "isMajorChange",
            "services",
            "lastModifiedDateTime",
            "title",
        ),
        tally=CategoryTally,
        help="Message Center posts (Microsoft Graph)",
    ),
    # The legacy operations rebuilt from Graph: the legacy records and columns, from live tenants.
    Operation(
        api="graph",
        name="services",
        model=Service,
        call=lambda g, o: _over_graph(g).services(select=o["select"]),
        filters=(),
        csv_columns=("TenantId", "Id", "DisplayName", "Features"),
        table_columns=("Id", "DisplayName", "Features"),
        tally=ServicesTally,
        help="the services a tenant has, features from its issues (legacy records over Graph)",
        tenant_key="TenantId",
    ),
    Operation(
        api="graph",
        name="status",
        model=WorkloadStatus,
        call=lambda g, o: _over_graph(g).current_status(o["workload"], select=o["select"]),
        filters=("workload",),
        csv_columns=_STATUS_COLUMNS,
        table_columns=("Workload", "Status", "StatusTime", "IncidentIds"),
        tally=WorkloadStatusTally,
        help="each workload's current status (legacy records over Graph)",
        tenant_key="TenantId",
    ),
    Operation(
        api="graph",
        name="history",
        model=WorkloadStatus,
        call=lambda g, o: _over_graph(g).historical_status(
            o["workload"], o["since"], select=o["select"]
        ),
        filters=("workload", "since"),
        csv_columns=_STATUS_COLUMNS,
        table_columns=("Workload", "Status", "StatusTime", "IncidentIds"),
        tally=WorkloadStatusTally,
        help="each workload's status per day, last 7 days, rebuilt from issues (legacy records "
        "over Graph)",
        tenant_key="TenantId",
    ),
    Operation(
        api="graph",
        name="messages",
        model=Message,
        call=lambda g, o: _over_graph(g).messages(
            o["workload"],
            o["start"],
            o["end"],
            o["message_type"],
            o["message_id"],
            **({"page_size": o["page_size"]} if o["page_size"] is not None else {}),
            select=o["select"],
            max_items=o["max_items"],
        ),
        filters=(
            "workload",
            "start",
            "end",
            "message_type",
            "message_id",
            "page_size",
            "max_items",
        ),
        csv_columns=_MESSAGE_COLUMNS,
        table_columns=_MESSAGE_TABLE,
        tally=WorkloadMessagesTally,
        help="incidents and Message Center posts as legacy messages (Microsoft Graph)",
        tenant_key="TenantId",
        shape="legacy",
    ),
    Operation(
        api="legacy",
        name="services",
        model=Service,
        call=lambda t, o: t.services(select=o["select"]),
        filters=(),
        csv_columns=("TenantId", "Id", "DisplayName", "Features"),
        table_columns=("Id", "DisplayName", "Features"),
        tally=ServicesTally,
        help="the services a tenant subscribes to (legacy API)",
        successor="services --api graph",
    ),
    Operation(
        api="legacy",
        name="status",
        model=WorkloadStatus,
        call=lambda t, o: t.current_status(o["workload"], select=o["select"]),
        filters=("workload",),
        csv_columns=_STATUS_COLUMNS,
        table_columns=("Workload", "Status", "StatusTime", "IncidentIds"),
        tally=WorkloadStatusTally,
        help="each workload's current status (legacy API)",
        default=True,
        successor="status --api graph",
    ),
    Operation(
        api="legacy",
        name="history",
        model=WorkloadStatus,
        call=lambda t, o: t.historical_status(o["workload"], o["since"], select=o["select"]),
        filters=("workload", "since"),
        csv_columns=_STATUS_COLUMNS,
        table_columns=("Workload", "Status", "StatusTime", "IncidentIds"),
        tally=WorkloadStatusTally,
        help="each workload's status per day, last 7 days (legacy API)",
        successor="history --api graph",
    ),
    Operation(
        api="legacy",
        name="messages",
        model=Message,
        call=lambda t, o: t.messages(
            o["workload"],
            o["start"],
            o["end"],
            o["message_type"],
            o["message_id"],
            select=o["select"],
            max_items=o["max_items"],
        ),
        filters=("workload", "start", "end", "message_type", "message_id", "max_items"),
        csv_columns=_MESSAGE_COLUMNS,
        table_columns=_MESSAGE_TABLE,
        tally=WorkloadMessagesTally,
        help="incidents, planned maintenance and Message Center posts (legacy API)",
        successor="messages --api graph",
    ),
)

_BY_KEY: Mapping[tuple[str, str, str | None], Operation] = {
    (op.api, op.name, op.shape): op for op in OPERATIONS
}
SHAPES = ("graph", "legacy")  # --shape: an operation's own records, or the legacy ones


def find(api: str, name: str, shape: str | None = None) -> Operation | None:
    """The operation ``name`` of ``api``; ``shape`` None or the API's own name: its own records,
    ``shape="legacy"`` on Graph: its legacy-shaped form, if any."""
    if shape == api:  # an API's own records: the legacy API's are legacy-shaped
        shape = None
    return _BY_KEY.get((api, name, shape))


def shapes_of(name: str) -> tuple[str, ...]:
    """The --shape values of operation ``name`` besides its own (``("legacy",)`` for messages)."""
    return tuple(op.shape for op in OPERATIONS if op.name == name and op.shape is not None)


def names(api: str | None = None) -> tuple[str, ...]:
    """Operation names, in registry order (of one API, or of all)."""
    return tuple(dict.fromkeys(op.name for op in OPERATIONS if api in (None, op.api)))


def apis_of(name: str) -> tuple[ApiName, ...]:
    """The APIs that have an operation ``name``, the default API first."""
    found = [op.api for op in OPERATIONS if op.name == name and op.shape is None]
    return tuple(sorted(found, key=lambda api: api != DEFAULT_API))


def default_operation(api: str) -> Operation:
    return next(op for op in OPERATIONS if op.api == api and op.default and op.shape is None)


def accepting(dest: str, api: str) -> tuple[str, ...]:
    """The names of ``api``'s operations that accept the filter ``dest``."""
    return tuple(
        op.name for op in OPERATIONS if op.api == api and dest in op.filters and op.shape is None
    )


def csv_columns(api: str, operation: str) -> tuple[str, ...]:
    """The stable CSV columns of ``operation`` in ``api`` (``"legacy"`` or ``"graph"``)."""
    op = find(api, operation)
    if op is None:
        raise KeyError((api, operation))
    return op.csv_columns


# The stable CSV columns per operation, one mapping per API.
CSV_COLUMNS: Mapping[str, tuple[str, ...]] = {
    op.name: op.csv_columns for op in OPERATIONS if op.api == "legacy"
}
# Graph's own records (the legacy-shaped operations over Graph have the legacy columns above).
GRAPH_CSV_COLUMNS: Mapping[str, tuple[str, ...]] = {
    op.name: op.csv_columns
    for op in OPERATIONS
    if op.api == "graph" and op.shape is None and op.tenant_key is None
}
