"""Old module path, kept for one release: Graph models are in ``servicecomms_async.graph.models``."""

from __future__ import annotations

from ._modeling import CaseInsensitiveEnum
from .graph.models import (
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
    "CaseInsensitiveEnum",
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
