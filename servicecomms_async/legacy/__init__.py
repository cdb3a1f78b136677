"""The legacy Office 365 Service Communications API: its client and its models."""

from __future__ import annotations

from .client import TenantClient
from .models import (
    Feature,
    FeatureStatus,
    Message,
    MessageHistory,
    MessageType,
    NameValue,
    Service,
    Status,
    WorkloadStatus,
)

__all__ = [
    "Feature",
    "FeatureStatus",
    "Message",
    "MessageHistory",
    "MessageType",
    "NameValue",
    "Service",
    "Status",
    "TenantClient",
    "WorkloadStatus",
]
