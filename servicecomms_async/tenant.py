"""TenantClient: one method per Service Communications operation, each returning an AsyncPager.

Arguments are checked and the query is built when the method is called, so bad input raises there,
before any request; the request itself is sent when the pager is iterated or awaited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

from yarl import URL

from .models import Message, MessageType, Service, WorkloadStatus
from .paging import AsyncPager, PageQuery
from .query import (
    FilterBuilder,
    build_select,
    validate_enum,
    validate_max_items,
    validate_page_size,
)
from .retry import RetryPolicy
from .transport import Response, Timeout

if TYPE_CHECKING:
    from .session import ServiceCommsSession

T = TypeVar("T")

Select = Iterable[str] | str | None


class TenantClient:
    """The API as seen by one tenant; it shares the session's connection pool and token cache.

    Get one with ``session.tenant("contoso.onmicrosoft.com")`` (a tenant GUID works too).
    """

    def __init__(self, session: ServiceCommsSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id
        self._root = session.base_url / tenant_id / "ServiceComms"

    def __repr__(self) -> str:
        return f"TenantClient({self.tenant_id!r})"

    def services(
        self,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
    ) -> AsyncPager[Service]:
        """The services the tenant subscribes to, with their features (``/Services``)."""
        return self._pager("Services", Service, FilterBuilder(), select, None, None, retry, timeout)

    def current_status(
        self,
        workload: str | None = None,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
    ) -> AsyncPager[WorkloadStatus]:
        """Each workload's status over the last 24 hours (``/CurrentStatus``), optionally for one workload id
        such as ``"Exchange"``."""
        filters = FilterBuilder().equals("Workload", workload, parameter="workload")
        return self._pager(
            "CurrentStatus", WorkloadStatus, filters, select, None, None, retry, timeout
        )

    def historical_status(
        self,
        workload: str | None = None,
        since: datetime | date | None = None,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
    ) -> AsyncPager[WorkloadStatus]:
        """One row per workload per day (``/HistoricalStatus``), newest first. ``since`` filters on
        ``StatusTime ge since``; the service's default is the last 7 days."""
        filters = (
            FilterBuilder()
            .equals("Workload", workload, parameter="workload")
            .compare("StatusTime", "ge", since, parameter="since")
        )
        return self._pager(
            "HistoricalStatus", WorkloadStatus, filters, select, None, None, retry, timeout
        )

    def messages(
        self,
        workload: str | None = None,
        start_time: datetime | date | None = None,
        end_time: datetime | date | None = None,
        message_type: MessageType | str | None = None,
        message_id: str | None = None,
        page_size: int = 100,
        *,
        select: Select = None,
        max_items: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
    ) -> AsyncPager[Message]:
        """Incidents, planned maintenance and Message Center posts (``/Messages``), paged with
        ``$top=page_size`` (1 to 100) and ``$skip``.

        ``start_time`` filters ``StartTime ge``, ``end_time`` filters ``EndTime le`` (the service's defaults
        are the last 7 days and now); ``message_type`` takes a :class:`MessageType` or its wire string.
        """
        if message_type is not None:
            message_type = validate_enum(message_type, MessageType, parameter="message_type")
        filters = (
            FilterBuilder()
            .equals("Workload", workload, parameter="workload")
            .compare("StartTime", "ge", start_time, parameter="start_time")
            .compare("EndTime", "le", end_time, parameter="end_time")
            .equals("MessageType", message_type, parameter="message_type")
            .equals("Id", message_id, parameter="message_id")
        )
        return self._pager(
            "Messages",
            Message,
            filters,
            select,
            validate_page_size(page_size),
            validate_max_items(max_items),
            retry,
            timeout,
        )

    def _pager(
        self,
        operation: str,
        model: type[T],
        filters: FilterBuilder,
        select: Select,
        page_size: int | None,
        max_items: int | None,
        retry: RetryPolicy | None,
        timeout: Timeout | None,
    ) -> AsyncPager[T]:
        params: dict[str, str] = {}
        filter_text = filters.build()
        if filter_text is not None:
            params["$filter"] = filter_text
        select_text = build_select(select, model)
        if select_text is not None:
            params["$select"] = select_text
        session = self._session
        tenant_id = self.tenant_id

        async def fetch(url: URL) -> Response:
            return await session._request(
                "GET", url, tenant=tenant_id, retry=retry, timeout=timeout
            )

        return AsyncPager(
            fetch=fetch,
            query=PageQuery(endpoint=self._root / operation, params=params, page_size=page_size),
            model=model,
            converter=session.converter,
            max_items=max_items,
            max_pages=session.max_pages,
        )
