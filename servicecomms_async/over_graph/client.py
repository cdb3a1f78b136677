"""LegacyOverGraphClient: the four legacy operations for a live tenant, rebuilt from Microsoft Graph.

``ServiceCommsSession(credential, api="graph").tenant(t)`` returns one. Its methods have the names
and parameters of :class:`~servicecomms_async.TenantClient`'s and return pagers of the same legacy
models, built from Graph's ``healthOverviews``, ``issues`` and ``messages`` through the session's
engine (same pool, tokens, retries, ``strict`` and limits). The mapping rules are in
:mod:`servicecomms_async.over_graph.mapping` and in the README ("Legacy operations over Graph").

Requests per call: one ``healthOverviews`` (``$select=id,service,status``), never more; then the
issues (``$select`` of the fields the status operations read, 1000 a page) or, for ``messages()``,
the issues and the Message Center posts as Graph pages them. Nothing is cached between calls.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import aclosing
from datetime import date, datetime, timezone
from typing import Any, Protocol, TypeVar

import attrs
from yarl import URL

from .. import _constants
from .._config import Timeout
from .._engine import Select
from .._modeling import wire_names
from .._odata import Filter, build_select
from .._validate import validate_enum, validate_max_items, validate_page_size, validate_text
from .._wire import WireConverter, structure_items
from ..graph.client import GraphClient
from ..graph.models import ServiceHealth, ServiceHealthIssue
from ..legacy.models import Message, MessageType, Service, WorkloadStatus
from ..paging import AsyncPager, Page, PageQuery
from ..retry import RetryPolicy
from .mapping import (
    DailyRecord,
    WorkloadNames,
    current_status_rows,
    days_since,
    historical_rows,
    issue_record,
    message_record,
    services_rows,
)

__all__ = ["LegacyOverGraphClient", "ObservedHistory"]

T = TypeVar("T")
UTC = timezone.utc

_OVERVIEW_FIELDS = ("id", "service", "status")
_STATUS_ISSUE_FIELDS = (
    "id",
    "service",
    "status",
    "classification",
    "featureGroup",
    "startDateTime",
    "endDateTime",
    "isResolved",
)
_SERVICES_ISSUE_FIELDS = ("service", "featureGroup")
_BULK_PAGE_SIZE = _constants.GRAPH_MAX_PAGE_SIZE  # the status operations read every issue

# Which Graph keys each legacy Message field is made from, per collection (for $select).
_ISSUE_SOURCES: dict[str, tuple[str, ...]] = {
    "Id": ("id",),
    "Title": ("title",),
    "StartTime": ("startDateTime",),
    "EndTime": ("endDateTime",),
    "LastUpdatedTime": ("lastModifiedDateTime",),
    "Workload": ("service",),
    "WorkloadDisplayName": ("service",),
    "Feature": ("feature",),
    "FeatureDisplayName": ("featureGroup",),
    "Status": ("status",),
    "PostIncidentDocumentUrl": ("status", "id"),
    "Classification": ("classification",),
    "ImpactDescription": ("impactDescription",),
    "AdditionalDetails": ("details",),
    "Messages": ("posts",),
}
_MESSAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "Id": ("id",),
    "Title": ("title",),
    "StartTime": ("startDateTime",),
    "EndTime": ("endDateTime",),
    "LastUpdatedTime": ("lastModifiedDateTime",),
    "Category": ("category",),
    "Severity": ("severity",),
    "MessageTagNames": ("tags",),
    "IsMajorChange": ("isMajorChange",),
    "ActionRequiredByDate": ("actionRequiredByDateTime",),
    "AffectedWorkloadNames": ("services",),
    "AffectedWorkloadDisplayNames": ("services",),
    "ExternalLink": ("details",),
    "BlogLink": ("details",),
    "HelpLink": ("details",),
    "AdditionalDetails": ("details",),
    "Messages": ("body", "startDateTime"),
    "IsRead": ("viewPoint",),
    "IsDismissed": ("viewPoint",),
}


class ObservedHistory(Protocol):
    """Where the status a watcher observed per service and day is kept: the one method of
    :class:`~servicecomms_async.watch.store.StateStore` that ``historical_status`` reads."""

    async def daily_statuses(
        self, tenant_id: str, since: date, until: date, service_id: str | None = None
    ) -> Sequence[DailyRecord]:
        """The daily records of a tenant from ``since`` to ``until`` (both included)."""
        ...


class _DerivedPager(AsyncPager[T]):
    """An :class:`AsyncPager` whose pages are computed from other requests' pages.

    It keeps the pager's whole interface (``async for``, ``pages()``, ``await``, ``collect()``,
    ``aclose()``); its pages carry the URL, request id and ``Date`` of the Graph page they were made
    from.
    """

    def __init__(
        self,
        model: type[T],
        source: Callable[[], AsyncGenerator[Page[T], None]],
        first_url: str,
        converter: WireConverter,
    ) -> None:
        super().__init__(
            fetch=_never, query=PageQuery(endpoint=URL(first_url)), model=model, converter=converter
        )
        self._source = source

    async def _pages(self) -> AsyncGenerator[Page[T], None]:
        async with aclosing(self._source()) as pages:
            async for page in pages:
                yield page


async def _never(url: URL) -> Any:
    raise AssertionError("a derived pager sends no request of its own")  # pragma: no cover


def _trimmer(select: Select, model: type[T]) -> tuple[frozenset[str] | None, Callable[[T], T]]:
    """The wire names ``select`` asks for (checked against ``model`` as the legacy client checks
    them) and a function that resets every other field to its default, as ``$select`` would."""
    text = build_select(select, model)
    if text is None:
        return None, lambda item: item
    wanted = frozenset(text.split(","))
    defaults = {a.name: a.default for a in attrs.fields(model)}  # type: ignore[arg-type]
    reset = {
        field: defaults[field]
        for field, aliases in wire_names(model).items()
        if aliases[0] not in wanted
    }
    return wanted, lambda item: attrs.evolve(item, **reset)


class LegacyOverGraphClient:
    """The legacy ``Services``, ``CurrentStatus``, ``HistoricalStatus`` and ``Messages`` of one
    tenant, rebuilt from Microsoft Graph (get one with ``session.tenant(t)`` on an
    ``api="graph"`` session, or ``LegacyOverGraphClient(session.graph(t))``, e.g. in a scan).

    ``history`` (optional): an :class:`ObservedHistory` such as the watcher's state store; where
    it holds the status observed for a service on a day, ``historical_status`` uses that record
    instead of the reconstruction (``historical_status(history=...)`` overrides it per call).
    """

    def __init__(self, graph: GraphClient, *, history: ObservedHistory | None = None) -> None:
        if not isinstance(graph, GraphClient):
            raise TypeError(f"graph must be a GraphClient, got {type(graph).__name__}")
        self.graph = graph
        self.history = history

    @property
    def tenant_id(self) -> str:
        return self.graph.tenant_id

    @property
    def _converter(self) -> WireConverter:
        # The session's converter: strict or lenient as the session was made.
        return self.graph._engine.converter

    def __repr__(self) -> str:
        return f"LegacyOverGraphClient({self.tenant_id!r})"

    def with_options(
        self,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> LegacyOverGraphClient:
        """A copy whose calls use ``retry`` and ``timeout`` unless a call gives its own."""
        graph = self.graph.with_options(retry=retry, timeout=timeout)
        return LegacyOverGraphClient(graph, history=self.history)

    # -- the four operations --------------------------------------------------------------------------

    def services(
        self,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[Service]:
        """One :class:`Service` per ``healthOverviews`` entry (``id``, ``display_name``); its
        ``features`` are the feature groups of the service's issues Graph still holds (possibly
        none: Graph has no feature list). The overview's ``status`` is in ``extra``."""
        _, trim = _trimmer(select, Service)
        overviews = self._overviews(retry, timeout)

        async def pages() -> AsyncGenerator[Page[Service], None]:
            first, items, now = await self._collect_overviews(overviews)
            issues = await self._issues(None, _SERVICES_ISSUE_FIELDS, retry, timeout)
            rows = [trim(s) for s in services_rows(items, issues)]
            yield Page(rows, first.url, None, first.request_id, 1, now)

        return _DerivedPager(Service, pages, overviews.first_url, self._converter)

    def current_status(
        self,
        workload: str | None = None,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[WorkloadStatus]:
        """One row per service now (legacy: the last 24 hours), optionally for one workload id
        such as ``"Exchange"`` (matched whatever its case). ``status`` is the overview's;
        ``incident_ids`` the service's issues unresolved or ended in the last 24 hours, newest
        first; ``feature_statuses`` the worst status of those issues per feature group (the other
        feature groups of its issues: ServiceOperational); ``status_time`` Graph's ``Date``."""
        if workload is not None:
            workload = validate_text(workload, "workload")
        _, trim = _trimmer(select, WorkloadStatus)
        overviews = self._overviews(retry, timeout)

        async def pages() -> AsyncGenerator[Page[WorkloadStatus], None]:
            first, items, now = await self._collect_overviews(overviews, workload)
            issues = await self._issues_of(items, workload, retry, timeout)
            rows = [trim(r) for r in current_status_rows(items, issues, now)]
            yield Page(rows, first.url, None, first.request_id, 1, now)

        return _DerivedPager(WorkloadStatus, pages, overviews.first_url, self._converter)

    def historical_status(
        self,
        workload: str | None = None,
        since: datetime | date | None = None,
        *,
        select: Select = None,
        history: ObservedHistory | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[WorkloadStatus]:
        """One row per service per UTC day whose midnight is at or after ``since`` (default: the
        last 7 days, today included), each service's days newest first, ``status_time`` midnight
        UTC. A day's ``status`` is the worst status among the service's issues whose
        ``[startDateTime, endDateTime or now]`` overlaps it, else ServiceOperational;
        ``incident_ids`` those issues. Graph keeps only each issue's current status and about 30
        days of issues: where ``history`` (or the client's) holds what the watcher observed on a
        day, that record wins. ``extra["source"]`` is ``"observed"`` or ``"reconstructed"``."""
        if workload is not None:
            workload = validate_text(workload, "workload")
        Filter().since("StatusTime", since, parameter="since")  # the legacy client's checks
        _, trim = _trimmer(select, WorkloadStatus)
        observed_from = history if history is not None else self.history
        if observed_from is not None and not callable(
            getattr(observed_from, "daily_statuses", None)
        ):
            raise TypeError("history must have an async daily_statuses() (a watch StateStore)")
        overviews = self._overviews(retry, timeout)

        async def pages() -> AsyncGenerator[Page[WorkloadStatus], None]:
            first, items, now = await self._collect_overviews(overviews, workload)
            days = days_since(since, now, default_days=_constants.OVER_GRAPH_HISTORY_DAYS)
            issues = await self._issues_of(items, workload, retry, timeout) if days else []
            records: Sequence[DailyRecord] = ()
            if observed_from is not None and days and items:
                records = await observed_from.daily_statuses(
                    self.tenant_id, days[-1], days[0], service_id=workload
                )
            rows = historical_rows(items, issues, days, now, records)
            yield Page([trim(r) for r in rows], first.url, None, first.request_id, 1, now)

        return _DerivedPager(WorkloadStatus, pages, overviews.first_url, self._converter)

    def messages(
        self,
        workload: str | None = None,
        start_time: datetime | date | None = None,
        end_time: datetime | date | None = None,
        message_type: MessageType | str | None = None,
        message_id: str | None = None,
        page_size: int = _constants.LEGACY_PAGE_SIZE,
        *,
        select: Select = None,
        max_items: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[Message]:
        """Graph's issues as ``Incident`` messages, then its Message Center posts as
        ``MessageCenter`` messages, each collection in the order Graph sends it (Graph documents
        none; sort with ``sorted(await pager.collect(), key=...)`` if you need one), page by page.

        ``workload`` (a workload id) is sent as ``service eq`` on issues and
        ``services/any(...)`` on posts, with the service's display name from the tenant's
        ``healthOverviews``; ``start_time`` as ``startDateTime ge``, ``end_time`` as
        ``endDateTime le``, ``message_id`` as ``id eq``; ``message_type`` chooses the collections.
        ``MessageType.PLANNED_MAINTENANCE`` has no Graph source (the admin center moved planned
        maintenance into Message Center "Plan for change" posts): it returns nothing, without a
        request. ``page_size`` (1 to 1000) is sent as ``Prefer: odata.maxpagesize``; there is no
        default time window (Graph keeps about 30 days).
        """
        kind: MessageType | None = None
        if message_type is not None:
            kind = validate_enum(message_type, MessageType, parameter="message_type")
        if workload is not None:
            workload = validate_text(workload, "workload")
        if message_id is not None:
            message_id = validate_text(message_id, "message_id")
        page_size = validate_page_size(page_size, maximum=_constants.GRAPH_MAX_PAGE_SIZE)
        limit = validate_max_items(max_items)
        common = (
            Filter()
            .compare("startDateTime", "ge", start_time, parameter="start_time")
            .compare("endDateTime", "le", end_time, parameter="end_time")
            .equals("id", message_id, parameter="message_id")
        )
        common_text = common.build()
        wanted, trim = _trimmer(select, Message)
        collections: list[str] = (
            ["issues", "messages"]
            if kind is None
            else ["issues"]
            if kind is MessageType.INCIDENT
            else ["messages"]
            if kind is MessageType.MESSAGE_CENTER
            else []
        )
        need_names = (
            workload is not None
            or wanted is None
            or bool(wanted & {"Workload", "AffectedWorkloadNames"})
        )
        overviews = self._overviews(retry, timeout, fields=("id", "service"))
        converter = self._converter
        issues_url = str(self.graph._root / "issues")

        def graph_select(sources: dict[str, tuple[str, ...]]) -> dict[str, str]:
            if wanted is None:
                return {}
            keys = dict.fromkeys(k for name in sorted(wanted) for k in sources.get(name, ()))
            return {"$select": ",".join(keys or ("id",))}

        async def pages() -> AsyncGenerator[Page[Message], None]:
            names = WorkloadNames(())
            number = 0
            if need_names and collections:
                _, items, _ = await self._collect_overviews(overviews)
                names = WorkloadNames(items)
            display = names.display_name(workload) if workload is not None else None
            left = limit
            for collection in collections:
                filters = Filter()
                if display is not None:
                    if collection == "issues":
                        filters.equals("service", display, parameter="workload")
                    else:
                        filters.any_of("services", [display], parameter="workload")
                if common_text is not None:
                    filters.raw(common_text)
                sources = _ISSUE_SOURCES if collection == "issues" else _MESSAGE_SOURCES
                pager = self.graph._list(
                    collection,
                    dict,
                    retry,
                    timeout,
                    filters=filters,
                    params=graph_select(sources),
                    page_size=page_size,
                )
                async with aclosing(pager.pages()) as graph_pages:
                    async for graph_page in graph_pages:
                        if collection == "issues":
                            records = [issue_record(i, names, issues_url) for i in graph_page]
                        else:
                            records = [message_record(i, names) for i in graph_page]
                        mapped = structure_items(records, Message, conv=converter)
                        if wanted is not None:
                            mapped = [trim(m) for m in mapped]
                        if left is not None:
                            mapped = mapped[:left]
                            left -= len(mapped)
                        number += 1
                        last = left == 0 or (
                            graph_page.next_link is None and collection == collections[-1]
                        )
                        yield Page(
                            mapped,
                            graph_page.url,
                            None if last else graph_page.next_link,
                            graph_page.request_id,
                            number,
                            graph_page.server_time,
                        )
                        if left == 0:
                            return
            if number == 0:  # PlannedMaintenance: nothing to ask Graph for
                yield Page([], overviews.first_url, None, None, 1, None)

        return _DerivedPager(Message, pages, overviews.first_url, self._converter)

    # -- plumbing ---------------------------------------------------------------------------------

    def _overviews(
        self,
        retry: RetryPolicy | None,
        timeout: Timeout | float | None,
        *,
        fields: Iterable[str] = _OVERVIEW_FIELDS,
    ) -> AsyncPager[ServiceHealth]:
        # Checks retry and timeout now, before any request.
        return self.graph.health_overviews(select=list(fields), retry=retry, timeout=timeout)

    async def _collect_overviews(
        self, pager: AsyncPager[ServiceHealth], workload: str | None = None
    ) -> tuple[Page[ServiceHealth], list[ServiceHealth], datetime]:
        """Every overview (one request unless Graph pages them), the first page, and "now": the
        first page's ``Date`` (server time), else this machine's clock."""
        first: Page[ServiceHealth] | None = None
        items: list[ServiceHealth] = []
        async with aclosing(pager.pages()) as pages:
            async for page in pages:
                first = first or page
                items += page.items
        assert first is not None  # pages() yields at least one page
        if workload is not None:
            folded = workload.casefold()
            items = [o for o in items if isinstance(o.id, str) and o.id.casefold() == folded]
        now = first.server_time or datetime.now(UTC)
        return first, items, now.astimezone(UTC)

    async def _issues_of(
        self,
        overviews: Sequence[ServiceHealth],
        workload: str | None,
        retry: RetryPolicy | None,
        timeout: Timeout | float | None,
    ) -> list[ServiceHealthIssue]:
        """The issues the status operations need: none when no overview is asked for; one
        service's (``service eq``) for one workload; else every issue."""
        if not overviews:
            return []
        service = overviews[0].service if workload is not None else None
        if workload is not None and not isinstance(service, str):
            return []
        return await self._issues(service, _STATUS_ISSUE_FIELDS, retry, timeout)

    async def _issues(
        self,
        service: str | None,
        fields: Sequence[str],
        retry: RetryPolicy | None,
        timeout: Timeout | float | None,
    ) -> list[ServiceHealthIssue]:
        pager = self.graph.issues(
            service=service,
            select=list(fields),
            page_size=_BULK_PAGE_SIZE,
            retry=retry,
            timeout=timeout,
        )
        return await pager.collect()
