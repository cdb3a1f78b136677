"""Old module path, kept for one release: legacy models are in ``servicecomms_async.legacy.models``,
what every model is made of in ``servicecomms_async._modeling``."""

from __future__ import annotations

from ._modeling import EMPTY_EXTRA, OpenStrEnum, extra_field, wire, wire_names
from .legacy.models import (
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
    "EMPTY_EXTRA",
    "Feature",
    "FeatureStatus",
    "Message",
    "MessageHistory",
    "MessageType",
    "NameValue",
    "OpenStrEnum",
    "Service",
    "Status",
    "WorkloadStatus",
    "extra_field",
    "wire",
    "wire_names",
]
