"""GraphClient: Microsoft Graph's service communications API through the same session, pagers and scans.

Microsoft retired the legacy ``manage.office.com`` endpoint for its public cloud; Graph's
``/admin/serviceAnnouncement`` is where the same information lives now::

    async with ServiceCommsSession(credential, api="graph") as session:
        graph = session.graph("contoso.onmicrosoft.com")
        async for overview in graph.health_overviews(expand_issues=True): ...
        async for issue in graph.issues(service="Exchange Online", is_resolved=False): ...

List operations return an :class:`~servicecomms_async.paging.AsyncPager`, paged by ``@odata.nextLink``
followed verbatim. ``page_size`` is sent as ``Prefer: odata.maxpagesize`` (1 to 1000), never as ``$top``:
on ``/issues`` a ``$top`` suppresses the next link, which has silently truncated other clients' results.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, Literal

from .. import _constants
from .._client import ApiClient
from .._config import Timeout
from .._engine import Select
from .._odata import Filter
from .._validate import validate_bool, validate_segment
from ..dialects import GRAPH
from ..errors import DelegatedPermissionRequiredError, ForbiddenError, UnexpectedResponseError
from ..paging import AsyncPager
from ..retry import RetryPolicy
from .models import (
    ServiceAnnouncementAttachment,
    ServiceHealth,
    ServiceHealthClassification,
    ServiceHealthIssue,
    ServiceHealthStatus,
    ServiceUpdateCategory,
    ServiceUpdateMessage,
    ServiceUpdateSeverity,
)

__all__ = ["MAX_PAGE_SIZE", "GraphClient", "GraphFilter"]


MAX_PAGE_SIZE = _constants.GRAPH_MAX_PAGE_SIZE
GraphFilter = Filter  # the old name of the filter builder, kept for one release
GraphResource = Literal["healthOverviews", "issues", "messages"]
_RESOURCES: tuple[GraphResource, ...] = ("healthOverviews", "issues", "messages")


class GraphClient(ApiClient):
    """Graph's service communications API as seen by one tenant (get one with ``session.graph(...)``).

    ``client.with_options(retry=..., timeout=...)`` gives a copy whose calls, the viewpoint actions
    included, use those options.
    """

    dialect = GRAPH

    # -- service health ------------------------------------------------------------------------------

    def health_overviews(
        self,
        *,
        expand_issues: bool = False,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[ServiceHealth]:
        """Every service's health now (``/healthOverviews``); with ``expand_issues`` each carries its issues."""
        return self._list(
            "healthOverviews",
            ServiceHealth,
            retry,
            timeout,
            params=_expand(expand_issues),
            select=select,
        )

    async def health_overview(
        self,
        service: str,
        *,
        expand_issues: bool = False,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> ServiceHealth:
        """One service's health (``/healthOverviews/{service}``), by id such as ``"Exchange"``."""
        url = self._root / "healthOverviews" / validate_segment(service, "service")
        return await self._get(url, ServiceHealth, retry, timeout, _expand(expand_issues))

    def issues(
        self,
        *,
        service: str | None = None,
        is_resolved: bool | None = None,
        classification: ServiceHealthClassification | str | None = None,
        status: ServiceHealthStatus | str | None = None,
        since: datetime | date | None = None,
        filter: str | None = None,
        select: Select = None,
        page_size: int | None = None,
        max_items: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[ServiceHealthIssue]:
        """Incidents and advisories (``/issues``). ``service`` is the display name (``"Exchange Online"``);
        ``since`` filters ``lastModifiedDateTime ge since``; ``filter`` adds raw OData, ANDed."""
        filters = (
            Filter()
            .equals("service", service, parameter="service")
            .boolean("isResolved", is_resolved, parameter="is_resolved")
            .enum(
                "classification",
                classification,
                ServiceHealthClassification,
                parameter="classification",
            )
            .enum("status", status, ServiceHealthStatus, parameter="status")
            .since("lastModifiedDateTime", since, parameter="since")
            .raw(filter)
        )
        return self._list(
            "issues",
            ServiceHealthIssue,
            retry,
            timeout,
            filters=filters,
            select=select,
            page_size=page_size,
            max_items=max_items,
        )

    async def issue(
        self,
        issue_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> ServiceHealthIssue:
        """One issue by id (``/issues/{id}``), e.g. ``"EX123456"``."""
        url = self._root / "issues" / validate_segment(issue_id, "issue_id")
        return await self._get(url, ServiceHealthIssue, retry, timeout)

    async def incident_report(
        self,
        issue_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> bytes:
        """The post-incident review document of an issue (``/issues/{id}/incidentReport``), as bytes."""
        url = self._root / "issues" / validate_segment(issue_id, "issue_id") / "incidentReport"
        return await self._get_bytes(url, retry, timeout)

    # -- Message Center ----------------------------------------------------------------------------------

    def messages(
        self,
        *,
        category: ServiceUpdateCategory | str | None = None,
        severity: ServiceUpdateSeverity | str | None = None,
        services: Iterable[str] | str | None = None,
        tags: Iterable[str] | str | None = None,
        is_major_change: bool | None = None,
        since: datetime | date | None = None,
        filter: str | None = None,
        select: Select = None,
        page_size: int | None = None,
        max_items: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[ServiceUpdateMessage]:
        """Message Center posts (``/messages``). ``services`` and ``tags`` match posts naming any of them
        (``services/any(...)``); ``since`` filters ``lastModifiedDateTime ge since``."""
        filters = (
            Filter()
            .enum("category", category, ServiceUpdateCategory, parameter="category")
            .enum("severity", severity, ServiceUpdateSeverity, parameter="severity")
            .any_of("services", services, parameter="services")
            .any_of("tags", tags, parameter="tags")
            .boolean("isMajorChange", is_major_change, parameter="is_major_change")
            .since("lastModifiedDateTime", since, parameter="since")
            .raw(filter)
        )
        return self._list(
            "messages",
            ServiceUpdateMessage,
            retry,
            timeout,
            filters=filters,
            select=select,
            page_size=page_size,
            max_items=max_items,
        )

    async def message(
        self,
        message_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> ServiceUpdateMessage:
        """One Message Center post by id (``/messages/{id}``), e.g. ``"MC172851"``."""
        url = self._root / "messages" / validate_segment(message_id, "message_id")
        return await self._get(url, ServiceUpdateMessage, retry, timeout)

    def message_attachments(
        self,
        message_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[ServiceAnnouncementAttachment]:
        """The attachments of a post (``/messages/{id}/attachments``), without their bytes."""
        path = f"messages/{validate_segment(message_id, 'message_id')}/attachments"
        return self._list(path, ServiceAnnouncementAttachment, retry, timeout)

    async def attachment(
        self,
        message_id: str,
        attachment_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> ServiceAnnouncementAttachment:
        """One attachment's properties (``/messages/{id}/attachments/{attachmentId}``), without
        its bytes (those come from :meth:`attachment_content`)."""
        url = (
            self._root
            / "messages"
            / validate_segment(message_id, "message_id")
            / "attachments"
            / validate_segment(attachment_id, "attachment_id")
        )
        return await self._get(url, ServiceAnnouncementAttachment, retry, timeout)

    async def attachment_content(
        self,
        message_id: str,
        attachment_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> bytes:
        """One attachment's bytes (``/messages/{id}/attachments/{attachmentId}/content``)."""
        url = (
            self._root
            / "messages"
            / validate_segment(message_id, "message_id")
            / "attachments"
            / validate_segment(attachment_id, "attachment_id")
            / "content"
        )
        return await self._get_bytes(url, retry, timeout)

    async def attachments_archive(
        self,
        message_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> bytes:
        """All of a post's attachments as one zip file (``/messages/{id}/attachmentsArchive``)."""
        url = (
            self._root
            / "messages"
            / validate_segment(message_id, "message_id")
            / "attachmentsArchive"
        )
        return await self._get_bytes(url, retry, timeout)

    # Viewpoint actions: the signed-in user's read / archived / favourite state. Graph allows them with
    # delegated permission only, so an app-only token gets DelegatedPermissionRequiredError.

    async def mark_read(self, message_ids: Iterable[str]) -> None:
        """Mark posts read for the signed-in user."""
        await self._viewpoint("markRead", message_ids)

    async def mark_unread(self, message_ids: Iterable[str]) -> None:
        """Mark posts unread for the signed-in user."""
        await self._viewpoint("markUnread", message_ids)

    async def archive(self, message_ids: Iterable[str]) -> None:
        """Archive posts for the signed-in user."""
        await self._viewpoint("archive", message_ids)

    async def unarchive(self, message_ids: Iterable[str]) -> None:
        """Bring archived posts back for the signed-in user."""
        await self._viewpoint("unarchive", message_ids)

    async def favorite(self, message_ids: Iterable[str]) -> None:
        """Mark posts as favourites for the signed-in user."""
        await self._viewpoint("favorite", message_ids)

    async def unfavorite(self, message_ids: Iterable[str]) -> None:
        """Remove posts from the signed-in user's favourites."""
        await self._viewpoint("unfavorite", message_ids)

    # -- Graph's JSON, untouched ----------------------------------------------------------------------------

    def json_items(
        self,
        resource: GraphResource,
        *,
        since: datetime | date | None = None,
        page_size: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | float | None = None,
    ) -> AsyncPager[dict[str, Any]]:
        """The items of ``healthOverviews``, ``issues`` or ``messages`` as the JSON objects Graph sent
        (camelCase keys, unknown keys and ``@odata`` annotations kept), for storing them losslessly.
        ``since`` filters ``lastModifiedDateTime ge since`` (not on ``healthOverviews``, which has no
        such field). Each page's ``server_time`` is Graph's ``Date`` header."""
        if resource not in _RESOURCES:
            raise ValueError(f"resource must be one of {', '.join(_RESOURCES)}, got {resource!r}")
        if since is not None and resource == "healthOverviews":
            raise ValueError("healthOverviews has no lastModifiedDateTime to filter with since=")
        filters = Filter().since("lastModifiedDateTime", since, parameter="since")
        return self._list(resource, dict, retry, timeout, filters=filters, page_size=page_size)

    # -- plumbing ------------------------------------------------------------------------------------------

    async def _viewpoint(self, action: str, message_ids: Iterable[str]) -> None:
        if isinstance(message_ids, str):
            raise TypeError("message_ids must be a list of ids, not one string")
        ids = [validate_segment(i, "message_ids") for i in message_ids]
        if not ids:
            raise ValueError("message_ids must name at least one message")
        url = self._root / "messages" / action
        chunk_size = _constants.GRAPH_MAX_IDS_PER_ACTION
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start : start + chunk_size]
            try:
                response = await self._post(url, {"messageIds": chunk})
            except ForbiddenError as exc:
                raise DelegatedPermissionRequiredError.from_error(
                    exc,
                    f"{action} changes a user's own view of Message Center posts, so Microsoft Graph "
                    "allows it with delegated permission only (a signed-in user's token with "
                    "ServiceMessageViewpoint.Write); an app-only token is refused",
                ) from None
            if not (isinstance(response.data, dict) and response.data.get("value") is True):
                raise UnexpectedResponseError(
                    f"{action} did not answer {{'value': true}}: {str(response.data)[:200]}",
                    url=response.url,
                    tenant=self.tenant_id,
                )


def _expand(expand_issues: bool) -> dict[str, str]:
    return {"$expand": "issues"} if validate_bool(expand_issues, "expand_issues") else {}
