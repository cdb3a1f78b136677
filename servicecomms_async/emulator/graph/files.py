"""The files Graph serves: message attachments (CSV), their zip archive, and incident reports.

All deterministic: the same message or issue gives the same bytes in every run and tenant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import uuid
import zipfile
from collections.abc import Sequence
from datetime import datetime, timezone

from ..data import Json
from ..odata import parse_datetime_us

__all__ = [
    "Attachment",
    "attachment_count",
    "attachments_archive",
    "attachments_for",
    "has_incident_report",
    "incident_report",
]


@dataclasses.dataclass(frozen=True)
class Attachment:
    """One file attached to a message: its Graph resource and its bytes."""

    resource: Json
    content: bytes

    @property
    def id(self) -> str:
        return str(self.resource["id"])

    @property
    def name(self) -> str:
        return str(self.resource["name"])


_ATTACHMENT_KINDS = ("affected-users", "rollout-schedule")


def attachment_count(message_id: str) -> int:
    """0 for about 31 messages in 32 (attachments are rare in real traffic), else 1 or 2; a
    function of the id alone."""
    h = int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=4).digest(), "little")
    return 0 if h % 32 else 1 + (h >> 8) % 2


def attachments_for(message: Json) -> list[Attachment]:
    """The attachments of a Graph message (deterministic CSV files)."""
    out: list[Attachment] = []
    msg_id = str(message["id"])
    modified = _seven_digits(str(message["lastModifiedDateTime"]))
    for index in range(attachment_count(msg_id)):
        kind = _ATTACHMENT_KINDS[index]
        if kind == "affected-users":
            rows = ["service,affectedUsers"] + [
                f"{service},{10 + _small_hash(msg_id, service) % 990}"
                for service in message["services"]
            ]
        else:
            rows = ["milestone,date", f"start,{message['startDateTime']}"]
            rows.append(f"end,{message['endDateTime']}")
        content = ("\r\n".join(rows) + "\r\n").encode()
        resource = {
            "contentType": "application/csv",
            "isInline": False,
            "lastModifiedDateTime": modified,
            "name": f"{msg_id}-{kind}.csv",
            "size": len(content),
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"serviceannouncement/{msg_id}/{index}")),
        }
        out.append(Attachment(resource, content))
    return out


def attachments_archive(attachments: Sequence[Attachment], modified: str) -> bytes:
    """A zip of ``attachments``; the same input gives the same bytes."""
    us = parse_datetime_us(modified) or 0
    stamp = datetime.fromtimestamp(us / 1_000_000, timezone.utc)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for attachment in attachments:
            info = zipfile.ZipInfo(attachment.name, date_time=stamp.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, attachment.content)
    return buffer.getvalue()


def has_incident_report(issue: Json) -> bool:
    """A post-incident report exists for reviewed issues and for resolved incidents."""
    return issue["status"] == "postIncidentReviewPublished" or (
        issue["classification"] == "incident" and bool(issue["isResolved"])
    )


def incident_report(issue: Json) -> bytes:
    """A small, deterministic post-incident report document for ``issue`` (UTF-8 text)."""
    root_cause = "The root cause analysis is in progress."
    for post in reversed(issue["posts"]):
        content = str(post["description"]["content"])
        for section in content.split("\n\n"):
            if section.startswith("Root cause: "):
                root_cause = section.removeprefix("Root cause: ")
                break
        else:
            continue
        break
    lines = [
        "Post-incident report",
        "",
        f"Issue: {issue['id']}",
        f"Title: {issue['title']}",
        f"Service: {issue['service']}",
        f"Feature: {issue['featureGroup']}",
        f"Classification: {issue['classification']}",
        f"Start: {issue['startDateTime']}",
        f"End: {issue['endDateTime']}",
        "",
        "User impact:",
        str(issue["impactDescription"]),
        "",
        "Root cause:",
        root_cause,
        "",
        "Timeline:",
        *(f"- {post['createdDateTime']}" for post in issue["posts"]),
    ]
    return ("\n".join(lines) + "\n").encode()


def _seven_digits(timestamp: str) -> str:
    """``2024-05-01T09:12:49.987Z`` -> ``2024-05-01T09:12:49.9870000Z`` (Graph's long form)."""
    head, _, frac = timestamp.rstrip("Z").partition(".")
    return f"{head}.{frac[:7].ljust(7, '0')}Z"


def _small_hash(*parts: str) -> int:
    raw = "\x1f".join(parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=4).digest(), "little")
