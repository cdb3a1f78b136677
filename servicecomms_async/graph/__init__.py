"""Microsoft Graph's service communications API (``/admin/serviceAnnouncement``): its client and models."""

from __future__ import annotations

from .client import MAX_PAGE_SIZE, GraphClient, GraphFilter
from .models import (
    BodyType,
    ItemBody,
    KeyValuePair,
    PostType,
    ServiceAnnouncementAttachment,
    ServiceHealth,
    ServiceHealthClassification,
    ServiceHealthIssue,
    ServiceHealthIssuePost,
    ServiceHealthOrigin,
    ServiceHealthStatus,
    ServiceUpdateCategory,
    ServiceUpdateMessage,
    ServiceUpdateMessageViewpoint,
    ServiceUpdateSeverity,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "BodyType",
    "GraphClient",
    "GraphFilter",
    "ItemBody",
    "KeyValuePair",
    "PostType",
    "ServiceAnnouncementAttachment",
    "ServiceHealth",
    "ServiceHealthClassification",
    "ServiceHealthIssue",
    "ServiceHealthIssuePost",
    "ServiceHealthOrigin",
    "ServiceHealthStatus",
    "ServiceUpdateCategory",
    "ServiceUpdateMessage",
    "ServiceUpdateMessageViewpoint",
    "ServiceUpdateSeverity",
]
