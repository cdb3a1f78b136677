"""What makes the emulator's Message Center posts look like today's real traffic.

Facts (``../shared/realworld/README.md``, 4,495 snapshots of one real tenant's
``/admin/serviceAnnouncement/messages``): severity normal/high/critical = 358,195/758/191;
``details`` are mostly ``Summary``, ``RoadmapIds``, ``Platforms`` and ``FeatureStatusJson`` (about
half of the posts have none), the link details (``ExternalLink``, ``BlogLink``, ``HelpLink``) are
rare, and ``hasAttachments`` is almost always false. Everything here is a pure function of its
arguments (a post's id, its legacy fields), so the legacy and Graph views of one post agree.
"""

from __future__ import annotations

import hashlib
import re

import orjson

__all__ = [
    "detail_names",
    "graph_details",
    "legacy_severity",
    "link_odds",
]

# Per 100,000 posts: high 211, critical 53 (358,195 / 758 / 191 in the real snapshots).
_HIGH_PER_100K = 211
_CRITICAL_PER_100K = 53

_PLATFORMS = (
    "Android, Desktop, iOS, Mac, Web",
    "Desktop, Mac",
    "Web",
    "Desktop",
    "Android, iOS",
    "TeamsAndSurfaceDevices",
)
# Which of the four named details a post has, per 100 posts (the real combinations and orders).
_DETAIL_SETS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (50, ()),
    (76, ("Summary",)),
    (86, ("RoadmapIds", "Summary", "Platforms")),
    (93, ("RoadmapIds", "FeatureStatusJson", "Summary", "Platforms")),
    (97, ("RoadmapIds", "Summary")),
    (100, ()),
)
_LINKS = ("BlogLink", "ExternalLink", "HelpLink")
_TAG_RE = re.compile(r"<[^>]+>")
_PARAGRAPH_RE = re.compile(r"<p>(.*?)</p>", re.S)


def _hash(*parts: str) -> int:
    raw = "\x1f".join(parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


def legacy_severity(h: int) -> str:
    """A post's legacy ``Severity`` (``Normal``, ``High`` or ``Critical``) from its 64-bit hash."""
    r = (h >> 3) % 100_000
    if r < _CRITICAL_PER_100K:
        return "Critical"
    if r < _CRITICAL_PER_100K + _HIGH_PER_100K:
        return "High"
    return "Normal"


def link_odds(h: int) -> tuple[bool, bool, bool]:
    """Whether a post has an external (3 %), a blog (2 %) and a help link (1 %)."""
    return (h >> 52) % 100 < 3, (h >> 54) % 50 == 0, (h >> 57) % 100 == 0


def detail_names(message_id: str) -> tuple[str, ...]:
    """The named (non-link) details of the post with this id, in the real order."""
    r = _hash("details", message_id) % 100
    return next(names for bound, names in _DETAIL_SETS if r < bound)


def _summary(html: str) -> str:
    paragraphs = [p for p in _PARAGRAPH_RE.findall(html) if not p.startswith("Updated ")]
    text = " ".join(_TAG_RE.sub("", p).strip() for p in paragraphs[:1] + paragraphs[-1:])
    return text or "This message has no summary."


def _feature_status(message_id: str, platforms: str, modified: str) -> str:
    head, _, frac = modified.rstrip("Z").partition(".")
    stamp = f"{head}.{frac[:7].ljust(7, '0')}Z"
    rows = [
        {
            "RoadmapId": 0,
            "McPostId": message_id,
            "Platform": platform,
            "Status": "FeatureRolloutStatusNotSupported",
            "LastUpdateTime": stamp,
            "LatestRing": None,
            "TenantRolloutRing": None,
        }
        for platform in [*platforms.split(", "), "All"]
    ]
    return orjson.dumps({"0": rows}).decode()


def graph_details(message: dict[str, object]) -> list[dict[str, str]]:
    """Graph ``details`` of a legacy Message Center post: the named details (a function of the id,
    the body and the last change) then the legacy links that are set."""
    message_id = str(message["Id"])
    h = _hash("details", message_id)
    posts = message.get("Messages") or []
    assert isinstance(posts, list)
    body = str(posts[-1]["MessageText"]) if posts else ""
    platforms = _PLATFORMS[(h >> 8) % len(_PLATFORMS)]
    values = {
        "RoadmapIds": str(400_000 + (h >> 16) % 100_000),
        "Summary": _summary(body),
        "Platforms": platforms,
    }
    out: list[dict[str, str]] = []
    for name in detail_names(message_id):
        if name == "FeatureStatusJson":
            value = _feature_status(message_id, platforms, str(message["LastUpdatedTime"]))
        else:
            value = values[name]
        out.append({"name": name, "value": value})
    out += [{"name": name, "value": str(message[name])} for name in _LINKS if message.get(name)]
    return out
