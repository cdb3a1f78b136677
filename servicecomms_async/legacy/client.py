"""TenantClient: the legacy Service Communications API, one typed method per operation, over the engine.

Arguments are checked and the query is built when the method is called, so bad input raises there,
before any request; the request itself is sent when the pager is iterated or awaited.
"""

from __future__ import annotations

from datetime import date, datetime

from .. import _constants
from .._client import ApiClient
from .._config import Timeout
from .._engine import Select
from .._odata import Filter
from .._validate import validate_enum
from ..dialects import LEGACY
from ..paging import AsyncPager
from ..retry import RetryPolicy
from .models import Message, MessageType, Service, WorkloadStatus

__all__ = ["TenantClient"]


class TenantClient(ApiClient):
    """The legacy API as seen by one tenant; it shares the session's connection pool and token cache.

    Get one with ``session.tenant("contoso.onmicrosoft.com")`` (a tenant GUID works too).
    ``client.with_options(retry=..., timeout=...)`` gives a copy whose calls use those options.
    """

    dialect = LEGACY

    def services(
        self,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[Service]:
        """The services the tenant subscribes to, with their features (``/Services``)."""
        return self._list("Services", Service, retry, timeout, select=select)

    def current_status(
        self,
        workload: str | None = None,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[WorkloadStatus]:
        """Each workload's status over the last 24 hours (``/CurrentStatus``), optionally for one workload id
        such as ``"Exchange"``."""
        filters = Filter().equals("Workload", workload, parameter="workload")
        return self._list(
            "CurrentStatus", WorkloadStatus, retry, timeout, filters=filters, select=select
        )

    def historical_status(
        self,
        workload: str | None = None,
        since: datetime | date | None = None,
        *,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[WorkloadStatus]:
        """One row per workload per day (``/HistoricalStatus``), newest first. ``since`` filters on
        ``StatusTime ge since``; the service's default is the last 7 days."""
        filters = (
            Filter()
            .equals("Workload", workload, parameter="workload")
            .since("StatusTime", since, parameter="since")
        )
        return self._list(
            "HistoricalStatus", WorkloadStatus, retry, timeout, filters=filters, select=select
        )

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
        """Incidents, planned maintenance and Message Center posts (``/Messages``), paged with
        ``$top=page_size`` (1 to 100) and ``$skip``.

        ``start_time`` filters ``StartTime ge``, ``end_time`` filters ``EndTime le`` (the service's defaults
        are the last 7 days and now); ``message_type`` takes a :class:`MessageType` or its wire string.
        """
        if message_type is not None:
            message_type = validate_enum(message_type, MessageType, parameter="message_type")
        filters = (
            Filter()
            .equals("Workload", workload, parameter="workload")
            .compare("StartTime", "ge", start_time, parameter="start_time")
            .compare("EndTime", "le", end_time, parameter="end_time")
            .equals("MessageType", message_type, parameter="message_type")
            .equals("Id", message_id, parameter="message_id")
        )
        return self._list(
            "Messages",
            Message,
            retry,
            timeout,
            filters=filters,
            select=select,
            page_size=page_size,
            max_items=max_items,
        )
