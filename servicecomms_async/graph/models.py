"""Typed models of Microsoft Graph's service communications API (``/admin/serviceAnnouncement``).

The same rules as every model (:mod:`servicecomms_async._modeling`): frozen attrs classes, snake_case fields read from the
wire's camelCase keys, unknown keys kept in ``extra``, unknown enum values kept with their raw string,
timezone-aware UTC datetimes (Graph sends up to 7 fractional digits).

Graph's enums are camelCase on the wire (``serviceOperational``), but Microsoft's documentation samples
show PascalCase (``ServiceOperational``); both are accepted and map to the same member, whose ``.value`` is
the camelCase form.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from .._modeling import CaseInsensitiveEnum, extra_field, wire


class ServiceHealthStatus(CaseInsensitiveEnum):
    """``serviceHealthStatus``: a service's or an issue's status."""

    SERVICE_OPERATIONAL = "serviceOperational"
    INVESTIGATING = "investigating"
    RESTORING_SERVICE = "restoringService"
    VERIFYING_SERVICE = "verifyingService"
    SERVICE_RESTORED = "serviceRestored"
    POST_INCIDENT_REVIEW_PUBLISHED = "postIncidentReviewPublished"
    SERVICE_DEGRADATION = "serviceDegradation"
    SERVICE_INTERRUPTION = "serviceInterruption"
    EXTENDED_RECOVERY = "extendedRecovery"
    FALSE_POSITIVE = "falsePositive"
    INVESTIGATION_SUSPENDED = "investigationSuspended"
    RESOLVED = "resolved"
    MITIGATED_EXTERNAL = "mitigatedExternal"
    MITIGATED = "mitigated"
    RESOLVED_EXTERNAL = "resolvedExternal"
    CONFIRMED = "confirmed"
    REPORTED = "reported"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class ServiceHealthClassification(CaseInsensitiveEnum):
    ADVISORY = "advisory"
    INCIDENT = "incident"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class ServiceHealthOrigin(CaseInsensitiveEnum):
    MICROSOFT = "microsoft"
    THIRD_PARTY = "thirdParty"
    CUSTOMER = "customer"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class ServiceUpdateCategory(CaseInsensitiveEnum):
    PREVENT_OR_FIX_ISSUE = "preventOrFixIssue"
    PLAN_FOR_CHANGE = "planForChange"
    STAY_INFORMED = "stayInformed"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class ServiceUpdateSeverity(CaseInsensitiveEnum):
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class PostType(CaseInsensitiveEnum):
    REGULAR = "regular"
    QUICK = "quick"
    STRATEGIC = "strategic"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class BodyType(CaseInsensitiveEnum):
    """``bodyType``: how an :class:`ItemBody`'s content is written (samples show ``Html``)."""

    TEXT = "text"
    HTML = "html"


@attrs.frozen(kw_only=True)
class ItemBody:
    """A rich text body: ``content_type`` is :class:`BodyType` ``html`` or ``text``."""

    content_type: BodyType | None = wire("contentType")
    content: str | None = wire("content")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class KeyValuePair:
    """A ``{"name", "value"}`` detail (e.g. ``ExternalLink``, ``NotifyInApp``)."""

    name: str | None = wire("name")
    value: str | None = wire("value")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class ServiceHealthIssuePost:
    """One update posted on an issue."""

    created_date_time: datetime | None = wire("createdDateTime")
    post_type: PostType | None = wire("postType")
    description: ItemBody | None = wire("description")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class ServiceHealthIssue:
    """An incident or advisory (``/issues``); the legacy API's incident ``Message``."""

    id: str | None = wire("id")
    title: str | None = wire("title")
    start_date_time: datetime | None = wire("startDateTime")
    end_date_time: datetime | None = wire("endDateTime")
    last_modified_date_time: datetime | None = wire("lastModifiedDateTime")
    impact_description: str | None = wire("impactDescription")
    classification: ServiceHealthClassification | None = wire("classification")
    origin: ServiceHealthOrigin | None = wire("origin")
    status: ServiceHealthStatus | None = wire("status")
    service: str | None = wire("service")
    feature: str | None = wire("feature")
    feature_group: str | None = wire("featureGroup")
    is_resolved: bool | None = wire("isResolved")
    high_impact: bool | None = wire("highImpact")
    details: tuple[KeyValuePair, ...] = wire("details", default=())
    posts: tuple[ServiceHealthIssuePost, ...] = wire("posts", default=())
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class ServiceHealth:
    """A service's health now (``/healthOverviews``), with its issues when asked with ``$expand``."""

    id: str | None = wire("id")
    service: str | None = wire("service")
    status: ServiceHealthStatus | None = wire("status")
    issues: tuple[ServiceHealthIssue, ...] = wire("issues", default=())
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class ServiceUpdateMessageViewpoint:
    """The signed-in user's view of a message; ``None`` on the message with application permissions."""

    is_read: bool | None = wire("isRead")
    is_archived: bool | None = wire("isArchived")
    is_favorited: bool | None = wire("isFavorited")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class ServiceAnnouncementAttachment:
    """A file attached to a Message Center post (its bytes come from ``attachment_content``)."""

    id: str | None = wire("id")
    name: str | None = wire("name")
    content_type: str | None = wire("contentType")
    size: int | None = wire("size")
    is_inline: bool | None = wire("isInline")
    last_modified_date_time: datetime | None = wire("lastModifiedDateTime")
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class ServiceUpdateMessage:
    """A Message Center post (``/messages``)."""

    id: str | None = wire("id")
    title: str | None = wire("title")
    start_date_time: datetime | None = wire("startDateTime")
    end_date_time: datetime | None = wire("endDateTime")
    last_modified_date_time: datetime | None = wire("lastModifiedDateTime")
    category: ServiceUpdateCategory | None = wire("category")
    severity: ServiceUpdateSeverity | None = wire("severity")
    tags: tuple[str, ...] = wire("tags", default=())
    is_major_change: bool | None = wire("isMajorChange")
    action_required_by_date_time: datetime | None = wire("actionRequiredByDateTime")
    services: tuple[str, ...] = wire("services", default=())
    expiry_date_time: datetime | None = wire("expiryDateTime")
    has_attachments: bool | None = wire("hasAttachments")
    details: tuple[KeyValuePair, ...] = wire("details", default=())
    body: ItemBody | None = wire("body")
    view_point: ServiceUpdateMessageViewpoint | None = wire("viewPoint")
    attachments: tuple[ServiceAnnouncementAttachment, ...] = wire("attachments", default=())
    extra: Mapping[str, Any] = extra_field()

    def detail(self, name: str) -> str | None:
        """The value of the first detail called ``name`` (e.g. ``"ExternalLink"``), if any."""
        return next((d.value for d in self.details if d.name == name), None)
