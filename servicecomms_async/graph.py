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

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

from yarl import URL

from .errors import DelegatedPermissionRequiredError, ForbiddenError, UnexpectedResponseError
from .graph_models import (
    ServiceAnnouncementAttachment,
    ServiceHealth,
    ServiceHealthClassification,
    ServiceHealthIssue,
    ServiceHealthStatus,
    ServiceUpdateCategory,
    ServiceUpdateMessage,
    ServiceUpdateSeverity,
)
from .models import OpenStrEnum
from .paging import AsyncPager, PageQuery
from .query import (
    build_select,
    format_datetime_literal,
    quote_string,
    validate_enum,
    validate_max_items,
    validate_page_size,
    validate_text,
)
from .retry import RetryPolicy
from .transport import Response, Timeout

if TYPE_CHECKING:
    from .session import ServiceCommsSession

__all__ = ["GraphClient", "GraphFilter"]

T = TypeVar("T")
Select = Iterable[str] | str | None

MAX_PAGE_SIZE = 1000  # Graph's maximum for Prefer: odata.maxpagesize on issues and messages
MAX_IDS_PER_ACTION = 100  # viewpoint actions are sent in chunks of this many message ids


class GraphFilter:
    """Collects Graph ``$filter`` clauses (camelCase properties); they combine with ``and``."""

    def __init__(self) -> None:
        self._clauses: list[str] = []

    def equals(self, field: str, value: str | None, *, parameter: str) -> GraphFilter:
        if value is not None:
            self._clauses.append(f"{field} eq {quote_string(validate_text(value, parameter))}")
        return self

    def enum(
        self,
        field: str,
        value: str | OpenStrEnum | None,
        enum_cls: type[OpenStrEnum],
        *,
        parameter: str,
    ) -> GraphFilter:
        if value is not None:
            member = validate_enum(value, enum_cls, parameter=parameter).value
            self._clauses.append(f"{field} eq {quote_string(member)}")
        return self

    def boolean(self, field: str, value: bool | None, *, parameter: str) -> GraphFilter:
        if value is not None:
            if not isinstance(value, bool):
                raise TypeError(
                    f"{parameter} must be True, False or None, got {type(value).__name__}"
                )
            self._clauses.append(f"{field} eq {'true' if value else 'false'}")
        return self

    def since(self, field: str, value: datetime | date | None, *, parameter: str) -> GraphFilter:
        if value is not None:
            self._clauses.append(
                f"{field} ge {format_datetime_literal(value, parameter=parameter)}"
            )
        return self

    def any_of(
        self, field: str, values: Iterable[str] | str | None, *, parameter: str
    ) -> GraphFilter:
        """``field/any(x:x eq 'a' or x eq 'b')``: the collection holds at least one of ``values``."""
        if values is None:
            return self
        if isinstance(values, str):
            values = [values]
        items = [validate_text(v, parameter) for v in values]
        if not items:
            raise ValueError(f"{parameter} must name at least one value")
        either = " or ".join(f"x eq {quote_string(v)}" for v in items)
        self._clauses.append(f"{field}/any(x:{either})")
        return self

    def raw(self, text: str | None) -> GraphFilter:
        """The caller's own OData, parenthesised so that it cannot change the other clauses' meaning."""
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise ValueError("filter must be a non-empty OData expression")
            self._clauses.append(f"({text})")
        return self

    def build(self) -> str | None:
        return " and ".join(self._clauses) if self._clauses else None


class GraphClient:
    """Graph's service communications API as seen by one tenant (get one with ``session.graph(...)``)."""

    def __init__(self, session: ServiceCommsSession, tenant_id: str) -> None:
        self._session = session
        self.tenant_id = tenant_id
        self._root = session.base_url / "admin" / "serviceAnnouncement"

    def __repr__(self) -> str:
        return f"GraphClient({self.tenant_id!r})"

    # -- service health ------------------------------------------------------------------------------

    def health_overviews(
        self,
        *,
        expand_issues: bool = False,
        select: Select = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
    ) -> AsyncPager[ServiceHealth]:
        """Every service's health now (``/healthOverviews``); with ``expand_issues`` each carries its issues."""
        params = _expand(expand_issues)
        return self._pager(
            "healthOverviews", ServiceHealth, params, select, None, None, retry, timeout
        )

    async def health_overview(
        self,
        service: str,
        *,
        expand_issues: bool = False,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
    ) -> ServiceHealth:
        """One service's health (``/healthOverviews/{service}``), by id such as ``"Exchange"``."""
        url = _with_query(
            self._root / "healthOverviews" / _segment(service, "service"), _expand(expand_issues)
        )
        return await self._get_one(url, ServiceHealth, retry, timeout)

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
        timeout: Timeout | None = None,
    ) -> AsyncPager[ServiceHealthIssue]:
        """Incidents and advisories (``/issues``). ``service`` is the display name (``"Exchange Online"``);
        ``since`` filters ``lastModifiedDateTime ge since``; ``filter`` adds raw OData, ANDed."""
        filters = (
            GraphFilter()
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
        return self._pager(
            "issues",
            ServiceHealthIssue,
            _filter_params(filters),
            select,
            _page_size(page_size),
            validate_max_items(max_items),
            retry,
            timeout,
        )

    async def issue(
        self, issue_id: str, *, retry: RetryPolicy | None = None, timeout: Timeout | None = None
    ) -> ServiceHealthIssue:
        """One issue by id (``/issues/{id}``), e.g. ``"EX123456"``."""
        url = self._root / "issues" / _segment(issue_id, "issue_id")
        return await self._get_one(url, ServiceHealthIssue, retry, timeout)

    async def incident_report(
        self, issue_id: str, *, retry: RetryPolicy | None = None, timeout: Timeout | None = None
    ) -> bytes:
        """The post-incident review document of an issue (``/issues/{id}/incidentReport``), as bytes."""
        url = self._root / "issues" / _segment(issue_id, "issue_id") / "incidentReport"
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
        timeout: Timeout | None = None,
    ) -> AsyncPager[ServiceUpdateMessage]:
        """Message Center posts (``/messages``). ``services`` and ``tags`` match posts naming any of them
        (``services/any(...)``); ``since`` filters ``lastModifiedDateTime ge since``."""
        filters = (
            GraphFilter()
            .enum("category", category, ServiceUpdateCategory, parameter="category")
            .enum("severity", severity, ServiceUpdateSeverity, parameter="severity")
            .any_of("services", services, parameter="services")
            .any_of("tags", tags, parameter="tags")
            .boolean("isMajorChange", is_major_change, parameter="is_major_change")
            .since("lastModifiedDateTime", since, parameter="since")
            .raw(filter)
        )
        return self._pager(
            "messages",
            ServiceUpdateMessage,
            _filter_params(filters),
            select,
            _page_size(page_size),
            validate_max_items(max_items),
            retry,
            timeout,
        )

    async def message(
        self, message_id: str, *, retry: RetryPolicy | None = None, timeout: Timeout | None = None
    ) -> ServiceUpdateMessage:
        """One Message Center post by id (``/messages/{id}``), e.g. ``"MC172851"``."""
        url = self._root / "messages" / _segment(message_id, "message_id")
        return await self._get_one(url, ServiceUpdateMessage, retry, timeout)

    def message_attachments(
        self, message_id: str, *, retry: RetryPolicy | None = None, timeout: Timeout | None = None
    ) -> AsyncPager[ServiceAnnouncementAttachment]:
        """The attachments of a post (``/messages/{id}/attachments``), without their bytes."""
        path = f"messages/{_segment(message_id, 'message_id')}/attachments"
        return self._pager(
            path, ServiceAnnouncementAttachment, {}, None, None, None, retry, timeout
        )

    async def attachment_content(
        self,
        message_id: str,
        attachment_id: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: Timeout | None = None,
    ) -> bytes:
        """One attachment's bytes (``/messages/{id}/attachments/{attachmentId}/content``)."""
        url = (
            self._root
            / "messages"
            / _segment(message_id, "message_id")
            / "attachments"
            / _segment(attachment_id, "attachment_id")
            / "content"
        )
        return await self._get_bytes(url, retry, timeout)

    async def attachments_archive(
        self, message_id: str, *, retry: RetryPolicy | None = None, timeout: Timeout | None = None
    ) -> bytes:
        """All of a post's attachments as one zip file (``/messages/{id}/attachmentsArchive``)."""
        url = self._root / "messages" / _segment(message_id, "message_id") / "attachmentsArchive"
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

    # -- plumbing ------------------------------------------------------------------------------------------

    async def _viewpoint(self, action: str, message_ids: Iterable[str]) -> None:
        if isinstance(message_ids, str):
            raise TypeError("message_ids must be a list of ids, not one string")
        ids = [_segment(i, "message_ids") for i in message_ids]
        if not ids:
            raise ValueError("message_ids must name at least one message")
        url = self._root / "messages" / action
        for start in range(0, len(ids), MAX_IDS_PER_ACTION):
            chunk = ids[start : start + MAX_IDS_PER_ACTION]
            try:
                response = await self._session._request(
                    "POST",
                    url,
                    tenant=self.tenant_id,
                    retry=None,
                    timeout=None,
                    json_body={"messageIds": chunk},
                )
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

    async def _get_one(
        self, url: URL, model: type[T], retry: RetryPolicy | None, timeout: Timeout | None
    ) -> T:
        response = await self._session._request(
            "GET", url, tenant=self.tenant_id, retry=retry, timeout=timeout
        )
        if not isinstance(response.data, dict):
            raise UnexpectedResponseError(
                f"expected a JSON object from {response.url}, got {type(response.data).__name__}",
                url=response.url,
                tenant=self.tenant_id,
            )
        data = {k: v for k, v in response.data.items() if k != "@odata.context"}
        return self._session.converter.structure_fn(model)(data)

    async def _get_bytes(
        self, url: URL, retry: RetryPolicy | None, timeout: Timeout | None
    ) -> bytes:
        response = await self._session._request(
            "GET",
            url,
            tenant=self.tenant_id,
            retry=retry,
            timeout=timeout,
            headers={"Accept": "*/*"},
            raw=True,
        )
        data: bytes = response.data
        return data

    def _pager(
        self,
        path: str,
        model: type[T],
        params: Mapping[str, str],
        select: Select,
        page_size: int | None,
        max_items: int | None,
        retry: RetryPolicy | None,
        timeout: Timeout | None,
    ) -> AsyncPager[T]:
        query = dict(params)
        select_text = build_select(select, model)
        if select_text is not None:
            query["$select"] = select_text
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size is not None else None
        session = self._session
        tenant_id = self.tenant_id

        async def fetch(url: URL) -> Response:
            return await session._request(
                "GET", url, tenant=tenant_id, retry=retry, timeout=timeout, headers=headers
            )

        return AsyncPager(
            fetch=fetch,
            query=PageQuery(endpoint=self._root.joinpath(*path.split("/")), params=query),
            model=model,
            converter=session.converter,
            max_items=max_items,
            max_pages=session.max_pages,
        )


def _segment(value: object, parameter: str) -> str:
    """An id used as one URL path segment: it can never add a segment, a query or a fragment."""
    text = validate_text(value, parameter)
    if text in (".", "..") or any(ch in text for ch in "/\\?#%"):
        raise ValueError(f"{parameter} must be an id such as 'EX123456', got {text[:80]!r}")
    return text


def _page_size(page_size: object) -> int | None:
    return None if page_size is None else validate_page_size(page_size, maximum=MAX_PAGE_SIZE)


def _expand(expand_issues: bool) -> dict[str, str]:
    if not isinstance(expand_issues, bool):
        raise TypeError(f"expand_issues must be True or False, got {type(expand_issues).__name__}")
    return {"$expand": "issues"} if expand_issues else {}


def _filter_params(filters: GraphFilter) -> dict[str, str]:
    text = filters.build()
    return {"$filter": text} if text is not None else {}


def _with_query(url: URL, params: Mapping[str, str]) -> URL:
    return PageQuery(endpoint=url, params=dict(params)).url(0)
