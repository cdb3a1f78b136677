"""Legacy messages and status rows as Microsoft Graph's resources.

Legacy ``Incident`` messages become ``serviceHealthIssue``, ``MessageCenter`` messages become
``serviceUpdateMessage`` (application view: ``viewPoint`` null), CurrentStatus rows become
``serviceHealth``; enums are camelCase (the wire form), timestamps the legacy ones.
"""

from __future__ import annotations

import re

from ..data import Json
from ..messagecenter import graph_details
from .files import attachment_count

__all__ = [
    "ISSUE_KEYS",
    "MESSAGE_KEYS",
    "graph_status",
    "health_from_legacy",
    "issue_from_legacy",
    "message_from_legacy",
]

_STATUSES = (
    "serviceOperational",
    "investigating",
    "restoringService",
    "verifyingService",
    "serviceRestored",
    "postIncidentReviewPublished",
    "serviceDegradation",
    "serviceInterruption",
    "extendedRecovery",
    "falsePositive",
    "investigationSuspended",
)
# Keyed by the legacy value's letters in lower case, so the display form ("Service restored") and
# the enum form ("ServiceRestored") both map.
_STATUS_BY_LETTERS = {
    **{value.lower(): value for value in _STATUSES},
    "normalservice": "serviceOperational",
    "postincidentreportpublished": "postIncidentReviewPublished",
}
_CATEGORY_BY_LETTERS = {
    "preventorfixissue": "preventOrFixIssue",
    "preventorfixissues": "preventOrFixIssue",
    "planforchange": "planForChange",
    "stayinformed": "stayInformed",
}
_SEVERITIES = ("normal", "high", "critical")


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _camel(text: str) -> str:
    words: list[str] = re.findall(r"[A-Za-z0-9]+", text)
    if not words:
        return text
    return words[0][0].lower() + words[0][1:] + "".join(w[0].upper() + w[1:] for w in words[1:])


def graph_status(legacy: str) -> str:
    """The Graph ``serviceHealthStatus`` of a legacy status, display (``Service restored``) or enum
    (``ServiceRestored``) form; unknown values are camel-cased."""
    return _STATUS_BY_LETTERS.get(_letters(legacy)) or _camel(legacy)


def _category(legacy: str | None) -> str | None:
    if not legacy:
        return None
    return _CATEGORY_BY_LETTERS.get(_letters(legacy)) or _camel(legacy)


def _severity(legacy: str | None) -> str:
    """Graph's severity of a legacy one (``Normal``/``High``/``Critical``); anything else is normal."""
    value = (legacy or "").lower()
    return value if value in _SEVERITIES else "normal"


def _announcement(message: Json) -> Json:
    """What issues and messages share (Graph's ``serviceAnnouncementBase``), in Graph's key order."""
    return {
        "startDateTime": message["StartTime"],
        "endDateTime": message["EndTime"],
        "lastModifiedDateTime": message["LastUpdatedTime"],
        "title": message["Title"],
        "id": message["Id"],
    }


def issue_from_legacy(message: Json) -> Json:
    """A Graph ``serviceHealthIssue`` from a legacy ``Incident`` message (real shape)."""
    return {
        **_announcement(message),
        "impactDescription": message["ImpactDescription"],
        "classification": (message.get("Classification") or "advisory").lower(),
        "origin": "microsoft",
        "status": graph_status(message["Status"]),
        "service": message["WorkloadDisplayName"],
        "feature": message["FeatureDisplayName"],
        "featureGroup": message["FeatureDisplayName"],
        "isResolved": message["EndTime"] is not None,
        "details": [
            {"name": d["Name"], "value": d["Value"]} for d in message.get("AdditionalDetails") or ()
        ],
        "posts": [
            {
                "createdDateTime": post["PublishedTime"],
                "postType": "regular",
                "description": {"contentType": "html", "content": post["MessageText"]},
            }
            for post in message["Messages"]
        ],
    }


def message_from_legacy(message: Json) -> Json:
    """A Graph ``serviceUpdateMessage`` from a legacy ``MessageCenter`` message (real shape), with
    ``viewPoint`` null (the application view), in the 15 keys and the order of today's real
    payloads (:data:`MESSAGE_KEYS`). ``endDateTime`` is the post's expiry (legacy ``EndTime``);
    ``details`` are :func:`..messagecenter.graph_details`."""
    posts = message.get("Messages") or []
    return {
        **_announcement(message),
        "category": _category(message.get("Category")),
        "severity": _severity(message.get("Severity")),
        "tags": list(message.get("MessageTagNames") or ()),
        "isMajorChange": bool(message.get("IsMajorChange")),
        "actionRequiredByDateTime": message.get("ActionRequiredByDate"),
        "services": list(message.get("AffectedWorkloadDisplayNames") or ()),
        "hasAttachments": bool(attachment_count(message["Id"])),
        "viewPoint": None,
        "details": graph_details(message),
        "body": {"contentType": "html", "content": posts[-1]["MessageText"] if posts else ""},
    }


def health_from_legacy(row: Json) -> Json:
    """A Graph ``serviceHealth`` from a legacy CurrentStatus row (real shape)."""
    return {
        "service": row["WorkloadDisplayName"],
        "status": graph_status(row["Status"]),
        "id": row["Workload"],
    }


ISSUE_KEYS = (
    "startDateTime",
    "endDateTime",
    "lastModifiedDateTime",
    "title",
    "id",
    "impactDescription",
    "classification",
    "origin",
    "status",
    "service",
    "feature",
    "featureGroup",
    "isResolved",
    "details",
    "posts",
)
MESSAGE_KEYS = (
    "startDateTime",
    "endDateTime",
    "lastModifiedDateTime",
    "title",
    "id",
    "category",
    "severity",
    "tags",
    "isMajorChange",
    "actionRequiredByDateTime",
    "services",
    "hasAttachments",
    "viewPoint",
    "details",
    "body",
)
