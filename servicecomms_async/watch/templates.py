"""Chat messages for watch events: a Microsoft Teams (Workflows) Adaptive Card and a Slack incoming-webhook
body, as plain data. No I/O: a sink renders, then sends.

* :func:`teams_message` returns ``{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": <AdaptiveCard 1.5>}]}``,
  using only ``TextBlock``, ``FactSet``, ``Container`` and ``Action.OpenUrl`` (Workflows has no bot to
  receive ``Action.Submit``/``Execute``), at most :data:`TEAMS_MAX_BYTES` of compact UTF-8 JSON.
* :func:`slack_message` returns ``{"text": ..., "blocks": [...]}``: ``text`` (the notification text,
  mrkdwn-escaped) and a few Block Kit blocks within Slack's limits (:data:`SLACK_MAX_BLOCKS`,
  :data:`SLACK_MAX_SECTION`, :data:`SLACK_MAX_HEADER`, :data:`SLACK_MAX_FIELDS`, ...).

Both show the same things: a title line saying what happened ("Incident opened: EX123456 \u2014 Exchange
Online"), the entity's title, facts (service, status, classification, feature, start/end, tenant or "N
tenants", changes), the newest post or the message's body as plain text, and a link to the issue or post
in the Microsoft 365 admin center.

**Server text is never markup.** HTML bodies are converted to text (tags dropped, ``script``/``style``
content dropped, entities decoded, control and bidi-override characters removed, whitespace collapsed);
then, for Teams, every character the TextBlock markdown subset acts on is backslash-escaped, and for Slack
it goes into ``plain_text`` objects (which Slack neither formats nor scans for mentions) or, in mrkdwn,
has ``&``, ``<`` and ``>`` escaped. A post holding ``<!here>``, ``<@U123>``, ``[x](https://...)`` or
``**bold**`` shows those characters.

**Budgets are measured.** A message is rendered, measured (compact JSON bytes for Teams, characters per
element for Slack) and shrunk until it fits: first the post or body (cut at a word boundary, never inside a
grapheme, with "\u2026"), then the list of tenants of a rollup ("and N more"), then every other text. If
that still does not fit, a minimal message (the title line, a note and the admin-center link) is sent,
which always fits. Links to the admin center stay in every form.

Nothing but the admin-center link is a URL the templates add; no sink URL, token or secret is read here.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

from .._wire import parse_datetime
from .events import EventType, WatchEvent

__all__ = [
    "ADMIN_CENTER",
    "SLACK_MAX_BLOCKS",
    "SLACK_MAX_BUTTON_TEXT",
    "SLACK_MAX_CONTEXT_ELEMENTS",
    "SLACK_MAX_FIELD",
    "SLACK_MAX_FIELDS",
    "SLACK_MAX_HEADER",
    "SLACK_MAX_SECTION",
    "SLACK_MAX_TEXT",
    "TEAMS_CARD_VERSION",
    "TEAMS_MAX_BYTES",
    "html_to_text",
    "slack_message",
    "teams_message",
    "teams_size",
]

# -- platform limits -----------------------------------------------------------------------------------
TEAMS_MAX_BYTES = 28_000  # a Workflows message, as compact UTF-8 JSON ("less than 28KB")
TEAMS_CARD_VERSION = "1.5"  # the highest Adaptive Card version Teams renders
SLACK_MAX_TEXT = 40_000  # characters of a message's top-level text (truncated beyond)
SLACK_MAX_BLOCKS = 50  # blocks per message
SLACK_MAX_SECTION = 3_000  # characters of a section's text
SLACK_MAX_HEADER = 150  # characters of a header's plain_text
SLACK_MAX_FIELDS = 10  # fields per section
SLACK_MAX_FIELD = 2_000  # characters of one field
SLACK_MAX_CONTEXT_ELEMENTS = 10  # elements of a context block
SLACK_MAX_BUTTON_TEXT = 75  # characters of a button's text
SLACK_MAX_URL = 3_000  # characters of a button's url

# -- what the templates aim for, inside those limits -------------------------------------------------------
ADMIN_CENTER = "https://admin.microsoft.com"
TEAMS_BUDGET = TEAMS_MAX_BYTES - 500  # room for a receiver's own envelope and rounding
SLACK_TEXT_BUDGET = 3_000  # the notification text: a summary, far below SLACK_MAX_TEXT
SLACK_BLOCKS_BUDGET = (
    12_000  # characters of the blocks' JSON (Slack refuses long messages near 13k)
)
SLACK_BODY = SLACK_MAX_SECTION - 100  # characters of the post or body section
SLACK_FIELD = 300  # characters of one fact
TEXT_LIMIT = 500  # characters of a title, a fact or a note before the budget shrinks them
TENANTS_SHOWN = 25  # tenants a rollup names before "and N more"
MAX_ID = 128  # characters of an entity id put into a link (a longer one is not a real id)
ELLIPSIS = "\u2026"
DASH = "\u2014"

Json = Mapping[str, Any]


# -- text ------------------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """The text of an HTML fragment: blocks become line breaks, list items bullets, scripts nothing."""

    BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "tr",
            "ul",
            "ol",
            "table",
            "section",
            "article",
            "blockquote",
            "pre",
            "hr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "dt",
            "dd",
        ]
    )
    SKIPPED = frozenset(
        ["script", "style", "head", "title", "template", "noscript", "iframe", "object", "svg"]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag == "li":
            self.parts.append("\n\u2022 ")
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "p":
            self.parts.append("\n\n")
        elif tag in self.BLOCKS and tag != "li":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


_TAG = re.compile(r"<[^>]*>?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACES = re.compile(r"[^\S\n]+")
_BREAKS = re.compile(r" *\n[\n ]*")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def html_to_text(content: str) -> str:
    """``content`` (an HTML fragment) as plain text: tags dropped, script and style content dropped,
    entities decoded, then :func:`clean_text`."""
    parser = _TextExtractor()
    try:
        parser.feed(content)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # the parser is lenient; this is a last resort, never markup passed through
        text = html.unescape(_TAG.sub(" ", content))
    return clean_text(text)


def _clean_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {code: None for code in range(0x20)}
    table.update({code: None for code in range(0x7F, 0xA0)})  # every Cc character
    table.update({ord("\n"): "\n", ord("\r"): "\n", ord("\t"): " "})
    table.update({ord(c): None for c in _BIDI})
    table.update({ord("\u2028"): "\n", ord("\u2029"): "\n"})
    for code in (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000):  # Zs
        table[code] = " "
    table.update({code: "\ufffd" for code in range(0xD800, 0xE000)})  # lone surrogates
    return table


_CLEAN = _clean_table()


def clean_text(text: str) -> str:
    """``text`` safe to show: lone surrogates replaced, control, format-override and bidi characters
    removed, every kind of space made one space, at most one blank line in a row, ends stripped."""
    text = text.replace("\r\n", "\n").translate(_CLEAN)
    text = _SPACES.sub(" ", text)
    text = _BREAKS.sub(lambda m: "\n\n" if m.group().count("\n") > 1 else "\n", text)
    return text.strip()


PLAIN_MAX = 4_000  # characters of a one-line value read before cleaning (more is never shown)


def _plain(value: Any) -> str:
    """Any JSON value from the server as one line of clean text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, Mapping)):
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        parts: list[str] = []
        used = 0
        for key, item in items:
            if used > PLAIN_MAX:
                parts.append(ELLIPSIS)
                break
            text = _plain(item)
            if text and isinstance(value, Mapping):
                text = f"{_plain(key)}: {text}"
            if text:
                parts.append(text)
                used += len(text) + 2
        return ", ".join(parts)
    text = str(value)
    if len(text) > PLAIN_MAX:
        text = text[:PLAIN_MAX] + ELLIPSIS
    return clean_text(text).replace("\n", " ")


def _content_text(content: Any) -> str:
    """A Graph ``itemBody`` (``{"contentType": "html"|"text", "content": ...}``) or a bare string as
    text. Graph's issue posts are ``html`` holding plain text with line breaks; those are kept."""
    if isinstance(content, Mapping):
        kind = str(content.get("contentType") or "html").lower()
        raw = content.get("content")
        text = raw if isinstance(raw, str) else _plain(raw)
        return clean_text(text) if kind == "text" else html_to_text(text.replace("\n", "<br>"))
    if isinstance(content, str):
        return html_to_text(content.replace("\n", "<br>"))
    return _plain(content)


# -- cutting -----------------------------------------------------------------------------------------------


def _utf16(text: str) -> int:
    """Length in UTF-16 code units (what JavaScript-based limits count; at least ``len``)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _extends(char: str) -> bool:
    """Whether ``char`` belongs to the grapheme before it (a cut must not fall before it)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or code == 0x200D  # zero-width joiner
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _grapheme_start(text: str, index: int) -> int:
    """The greatest cut position <= ``index`` that does not split a grapheme (approximately UAX #29:
    combining marks, joiners, variation selectors, skin tones, tags and flag pairs stay whole)."""
    while 0 < index < len(text) and (_extends(text[index]) or text[index - 1] == "\u200d"):
        index -= 1
    if 0 < index < len(text) and _regional(text[index]) and _regional(text[index - 1]):
        run = 0
        while index - run - 1 >= 0 and _regional(text[index - run - 1]):
            run += 1
        if run % 2:
            index -= 1
    return index


def cut(text: str, limit: int, *, measure: Callable[[str], int] = len) -> str:
    """``text`` at most ``limit`` long (by ``measure``), cut at a word boundary when one is near, never
    inside a grapheme, ending with an ellipsis when cut."""
    if len(text) <= limit and measure(text) <= limit:  # measures are never below len
        return text
    if limit <= 0:
        return ""
    room = limit - measure(ELLIPSIS)
    index = min(len(text), max(room, 0))
    while index > 0 and measure(text[:index]) > room:
        index -= max(1, measure(text[:index]) - room)
    index = _grapheme_start(text, max(index, 0))
    window = text[max(0, index - 80) : index + 1]
    space = max(window.rfind(" "), window.rfind("\n"))
    if space > 0:
        index = max(0, index - 80) + space
    head = text[:index].rstrip()
    return head + ELLIPSIS if head else ELLIPSIS[:limit]


# -- what a message says, whatever the sink ---------------------------------------------------------


@dataclass(frozen=True)
class _Fit:
    """How much of each part a rendering may show (the budget loop lowers these)."""

    body: int  # characters of the post or body
    tenants: int  # tenants named
    text: int  # characters of a title, fact or note


@dataclass(frozen=True)
class _Message:
    label: str  # what happened: "Incident opened"
    headline: str  # "EX123456 \u2014 Exchange Online"
    title: str  # the entity's own title, or ""
    notes: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    impact: str = ""
    tenants_label: str = ""
    tenants: list[str] = field(default_factory=list)
    tenant_total: int = 0
    tenant_summary: str = (
        ""  # for a rollup: "400 tenants", "now also in 3 more tenants (12 in all)"
    )
    body_heading: str = ""
    body: str = ""
    link: str = ""
    link_label: str = "View in the admin center"
    footer: str = ""

    @property
    def title_line(self) -> str:
        return f"{self.label}: {self.headline}" if self.headline else self.label


def _when(value: Any) -> str:
    """A Graph timestamp as ``2026-12-01 07:39 UTC`` (the text as sent when it is not one)."""
    if not isinstance(value, str) or not value:
        return _plain(value)
    try:
        moment = parse_datetime(value)  # aware UTC; Graph's 7 fractional digits and "Z" included
    except ValueError:
        return _plain(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


_WORDS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _words(value: Any) -> str:
    """An enum value as words: ``serviceDegradation`` -> ``Service degradation``."""
    text = _plain(value)
    if not text or " " in text:
        return text
    spaced = _WORDS.sub(" ", text).lower()
    return spaced[:1].upper() + spaced[1:]


def _link(admin_center: str, path: str, entity_id: str) -> str:
    if not entity_id or len(entity_id) > MAX_ID:
        return f"{admin_center}/#/{path.split('/')[0]}"
    return f"{admin_center}/#/{path}/{quote(entity_id, safe='')}"


def _admin_center(value: str) -> str:
    text = str(value).strip().rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?", text):
        raise ValueError(
            f"admin_center must be an http(s) URL without query or fragment, got {value!r}"
        )
    return text


def _tenants(event: WatchEvent) -> tuple[str, list[str], int, list[str]]:
    """(label, tenants to name, total, notes) for the tenant part of a message."""
    data = event.data
    if not event.rollup:
        tenant = _plain(data.get("tenantId")) or _plain(event.tenant_id)
        return ("", [], 0, []) if not tenant else ("Tenant", [tenant], 1, [])
    affected = [_plain(t) for t in _list(data.get("affectedTenants"))]
    count = data.get("tenantCount")
    total = count if isinstance(count, int) and not isinstance(count, bool) else len(affected)
    added = [_plain(t) for t in _list(data.get("tenantsAdded"))]
    if "tenantsAdded" in data:
        more = len(added)
        note = f"Now also in {more} more tenant{'s' if more != 1 else ''} ({total} in all)."
        return "New tenants", added, more, [note]
    return "Tenants", affected, total, []


def _tenant_summary(event: WatchEvent) -> str:
    """A rollup's tenants in a few words (empty for one tenant's event)."""
    if not event.rollup:
        return ""
    _, _, total, notes = _tenants(event)
    if notes:
        return notes[0].rstrip(".")
    return f"{total} tenant{'s' if total != 1 else ''}"


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _tenant_fact(event: WatchEvent, total: int, tenants: list[str]) -> tuple[str, str] | None:
    if not event.rollup:
        return ("Tenant", tenants[0]) if tenants else None
    if "tenantsAdded" in event.data:
        count = event.data.get("tenantCount")
        total = count if isinstance(count, int) and not isinstance(count, bool) else total
    return ("Tenants", f"{total} tenant{'s' if total != 1 else ''}")


def _changes(data: Json) -> str:
    return ", ".join(_plain(c) for c in _list(data.get("changes")))


def _newest_post(data: Json, entity: Json) -> tuple[Any, int]:
    """The post to show (the newest new one, else the newest) and how many posts are new."""
    new = [p for p in _list(data.get("newPosts")) if isinstance(p, Mapping)]
    posts = new or [p for p in _list(entity.get("posts")) if isinstance(p, Mapping)]
    if not posts:
        return None, 0
    newest = max(enumerate(posts), key=lambda ip: (str(ip[1].get("createdDateTime") or ""), ip[0]))[
        1
    ]
    return newest, len(new)


def _issue_message(event: WatchEvent, admin_center: str) -> _Message:
    data = event.data
    entity = _mapping(data.get("entity"))
    previous = _mapping(data.get("previous"))
    kind = _words(entity.get("classification")) or "Issue"
    verb = {
        EventType.ISSUE_OPENED: "opened",
        EventType.ISSUE_UPDATED: "updated",
        EventType.ISSUE_RESOLVED: "resolved",
        EventType.ISSUE_REOPENED: "reopened",
    }.get(event.type, str(event.type))
    baseline = data.get("baseline") is True
    if baseline and event.type == EventType.ISSUE_OPENED:
        verb = "open"
    issue_id = _plain(entity.get("id")) or _plain(event.subject)
    service = _plain(entity.get("service"))
    label_tenants, tenants, total, notes = _tenants(event)
    if baseline:
        notes.insert(0, "Already open when watching began.")
    status = _words(entity.get("status"))
    changes = _changes(data)
    if previous and "status" in _list(data.get("changes")):
        status = f"{_words(previous.get('status'))} \u2192 {status}"
    group, feature = _plain(entity.get("featureGroup")), _plain(entity.get("feature"))
    feature = " / ".join(dict.fromkeys(t for t in (group, feature) if t))
    facts = [
        ("Service", service),
        ("Status", status),
        ("Classification", _words(entity.get("classification"))),
        ("Feature", feature),
        ("Started", _when(entity.get("startDateTime"))),
        ("Ended", _when(entity.get("endDateTime"))),
    ]
    tenant_fact = _tenant_fact(event, total, tenants)
    if tenant_fact:
        facts.append(tenant_fact)
    if changes and event.type != EventType.ISSUE_OPENED:
        facts.append(("Changes", changes))
    post, new = _newest_post(data, entity)
    heading = ""
    body = ""
    if post is not None:
        body = _content_text(post.get("description"))
        when = _when(post.get("createdDateTime"))
        heading = f"Latest update ({when})" if when else "Latest update"
        if new > 1:
            heading += f", the newest of {new} new posts"
    return _Message(
        label=f"{kind} {verb}",
        headline=f"{issue_id} {DASH} {service}" if service else issue_id,
        title=_plain(entity.get("title")),
        notes=notes,
        facts=[(k, v) for k, v in facts if v],
        impact=_plain(entity.get("impactDescription")),
        tenants_label=label_tenants if event.rollup else "",
        tenants=tenants if event.rollup else [],
        tenant_total=total,
        tenant_summary=_tenant_summary(event),
        body_heading=heading,
        body=body,
        link=_link(admin_center, "servicehealth/:/alerts", issue_id),
        footer=_footer(event),
    )


def _message_message(event: WatchEvent, admin_center: str) -> _Message:
    data = event.data
    entity = _mapping(data.get("entity"))
    message_id = _plain(entity.get("id")) or _plain(event.subject)
    label_tenants, tenants, total, notes = _tenants(event)
    if event.type == EventType.MESSAGE_ACTION_DUE:
        days = data.get("thresholdDays")
        due = _when(data.get("dueDateTime") or entity.get("actionRequiredByDateTime"))
        if isinstance(days, int) and not isinstance(days, bool):
            label = f"Action due within {days} day{'s' if days != 1 else ''}"
        else:
            label = "Action due"
        if due:
            notes.insert(0, f"Action required by {due}.")
    elif event.type == EventType.MESSAGE_UPDATED:
        label = "Message Center post updated"
    elif event.type == EventType.MESSAGE_PUBLISHED:
        label = "New Message Center post"
    else:
        label = f"Message Center: {_plain(str(event.type))}"
    if data.get("baseline") is True:
        notes.insert(0, "Already published when watching began.")
    facts = [
        ("Services", _plain(entity.get("services"))),
        ("Category", _words(entity.get("category"))),
        ("Severity", _words(entity.get("severity"))),
        ("Tags", _plain(entity.get("tags"))),
        ("Major change", "yes" if entity.get("isMajorChange") is True else ""),
        ("Action required by", _when(entity.get("actionRequiredByDateTime"))),
        ("Published", _when(entity.get("startDateTime"))),
        ("Ends", _when(entity.get("endDateTime"))),
    ]
    tenant_fact = _tenant_fact(event, total, tenants)
    if tenant_fact:
        facts.append(tenant_fact)
    changes = _changes(data)
    if changes and event.type == EventType.MESSAGE_UPDATED:
        facts.append(("Changes", changes))
    body = _content_text(entity.get("body")) if entity.get("body") is not None else ""
    return _Message(
        label=label,
        headline=message_id,
        title=_plain(entity.get("title")),
        notes=notes,
        facts=[(k, v) for k, v in facts if v],
        tenants_label=label_tenants if event.rollup else "",
        tenants=tenants if event.rollup else [],
        tenant_total=total,
        tenant_summary=_tenant_summary(event),
        body_heading="Message" if body else "",
        body=body,
        link=_link(admin_center, "MessageCenter/:/messages", message_id),
        footer=_footer(event),
    )


def _service_message(event: WatchEvent, admin_center: str) -> _Message:
    data = event.data
    entity = _mapping(data.get("entity"))
    previous = _mapping(data.get("previous"))
    service = _plain(entity.get("service")) or _plain(entity.get("id")) or _plain(event.subject)
    status = _words(entity.get("status"))
    label_tenants, tenants, total, notes = _tenants(event)
    if data.get("baseline") is True:
        notes.insert(0, "Already in this state when watching began.")
    facts = [
        ("Service", service),
        ("Status", status),
        ("Before", _words(previous.get("status")) if previous else ""),
    ]
    tenant_fact = _tenant_fact(event, total, tenants)
    if tenant_fact:
        facts.append(tenant_fact)
    return _Message(
        label="Service status changed",
        headline=f"{service} {DASH} {status}" if status else service,
        title="",
        notes=notes,
        facts=[(k, v) for k, v in facts if v],
        tenants_label=label_tenants if event.rollup else "",
        tenants=tenants if event.rollup else [],
        tenant_total=total,
        tenant_summary=_tenant_summary(event),
        link=f"{admin_center}/#/servicehealth",
        link_label="View service health in the admin center",
        footer=_footer(event),
    )


def _tenant_message(event: WatchEvent, admin_center: str) -> _Message:
    data = event.data
    label_tenants, tenants, total, notes = _tenants(event)
    tenant = _plain(data.get("tenantId")) or _plain(event.tenant_id) or _plain(event.subject)
    if event.type == EventType.TENANT_FAILED:
        error = _mapping(data.get("error"))
        facts = [
            ("Error", _plain(error.get("type"))),
            ("HTTP status", _plain(error.get("status"))),
            ("Code", _plain(error.get("code"))),
            ("Last success", _when(data.get("lastSuccess")) or "never"),
        ]
        label = "Polling failed"
        body = _plain(error.get("message"))
        heading = "Error" if body else ""
    else:
        failures = data.get("failuresInARow")
        last = _mapping(data.get("lastError"))
        facts = [
            ("Failed polls", _plain(failures)),
            ("Last error", _plain(last.get("type"))),
            ("Last HTTP status", _plain(last.get("status"))),
        ]
        label = "Polling recovered"
        body = _plain(last.get("message"))
        heading = "Last error" if body else ""
    tenant_fact = _tenant_fact(event, total, tenants)
    if tenant_fact and event.rollup:
        facts.append(tenant_fact)
    return _Message(
        label=label,
        headline=f"{total} tenants" if event.rollup else tenant,
        title="",
        notes=notes,
        facts=[(k, v) for k, v in facts if v],
        tenants_label=label_tenants if event.rollup else "",
        tenants=tenants if event.rollup else [],
        tenant_total=total,
        tenant_summary=_tenant_summary(event),
        body_heading=heading,
        body=body,
        footer=_footer(event),
    )


def _generic_message(event: WatchEvent, admin_center: str) -> _Message:
    label_tenants, tenants, total, notes = _tenants(event)
    return _Message(
        label=f"Service health event {_plain(str(event.type))}",
        headline=_plain(event.subject),
        title="",
        notes=notes,
        facts=[("Changes", _changes(event.data))] if _changes(event.data) else [],
        tenants_label=label_tenants if event.rollup else "",
        tenants=tenants if event.rollup else [],
        tenant_total=total,
        tenant_summary=_tenant_summary(event),
        link=f"{admin_center}/#/servicehealth",
        footer=_footer(event),
    )


def _mapping(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


def _footer(event: WatchEvent) -> str:
    moment = event.time if event.time.tzinfo else event.time.replace(tzinfo=timezone.utc)
    seen = moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{_plain(str(event.type))} \u00b7 seen {seen} \u00b7 event {_plain(event.id)[:64]}"


_FAMILIES: dict[str, Callable[[WatchEvent, str], _Message]] = {
    "issue": _issue_message,
    "message": _message_message,
    "service": _service_message,
    "tenant": _tenant_message,
}


def _describe(event: WatchEvent, admin_center: str) -> _Message:
    family = str(event.type).split(".", 1)[0]
    return _FAMILIES.get(family, _generic_message)(event, _admin_center(admin_center))


def _tenant_list(message: _Message, shown: int, text: int) -> str:
    """Up to ``shown`` tenants, as many as fit in about ``4 * text`` characters, then "and N more"."""
    room = max(text * 4, 200)
    names: list[str] = []
    used = 0
    for tenant in message.tenants[: max(shown, 0)]:
        name = cut(tenant, 120)
        if names and used + len(name) + 2 > room:
            break
        names.append(name)
        used += len(name) + 2
    rest = max(message.tenant_total, len(message.tenants)) - len(names)
    listing = ", ".join(names)
    if rest > 0:
        listing = f"{listing}, and {rest} more" if listing else f"{rest} tenants"
    return listing


# -- Microsoft Teams -----------------------------------------------------------------------------------------

_MD_INLINE = re.compile(r"([\\`*_~\[\]<>{}])")
_MD_LINE = re.compile(r"^(\s*)([#>+\-=])", re.MULTILINE)
_MD_NUMBERED = re.compile(r"^(\s*\d+)([.)])", re.MULTILINE)


def _md(text: str) -> str:
    """``text`` for a TextBlock: every character the markdown subset reacts to backslash-escaped."""
    escaped = _MD_INLINE.sub(r"\\\1", text)
    escaped = _MD_LINE.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped)
    return _MD_NUMBERED.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped)


def _md_paragraphs(text: str) -> str:
    # TextBlock markdown needs a blank line for a line break.
    return "\n\n".join(_md(line) for line in text.split("\n") if line.strip())


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _teams_card(message: _Message, fit: _Fit) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _block(_md(cut(message.title_line, fit.text)), size="Medium", weight="Bolder"),
    ]
    if message.title:
        body.append(_block(_md(cut(message.title, fit.text)), weight="Bolder", spacing="None"))
    for note in message.notes:
        body.append(_block(_md(cut(note, fit.text)), isSubtle=True, spacing="Small"))
    if message.facts:
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": _md(cut(k, 60)), "value": _md(cut(v, fit.text))}
                    for k, v in message.facts
                ],
            }
        )
    if message.tenants_label and message.tenants:
        body.append(
            {
                "type": "Container",
                "items": [
                    _block(f"**{_md(message.tenants_label)}**", spacing="Small"),
                    _block(_md(_tenant_list(message, fit.tenants, fit.text)), spacing="None"),
                ],
            }
        )
    if message.impact:
        body.append(_block(_md(cut(message.impact, fit.text * 2)), spacing="Medium"))
    if message.body and fit.body > 0:
        text = cut(message.body, fit.body)
        items = [_block(f"**{_md(message.body_heading)}**")] if message.body_heading else []
        items.append(_block(_md_paragraphs(text), spacing="Small"))
        if text != message.body and message.link:
            items.append(
                _block("The full text is in the admin center.", isSubtle=True, spacing="Small")
            )
        body.append({"type": "Container", "separator": True, "items": items})
    body.append(_block(_md(message.footer), isSubtle=True, size="Small", spacing="Medium"))
    return _teams_envelope(body, message.link, message.link_label)


def _teams_envelope(body: list[dict[str, Any]], link: str, label: str) -> dict[str, Any]:
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": TEAMS_CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": label, "url": link}]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def teams_size(payload: Mapping[str, Any]) -> int:
    """The bytes ``payload`` takes as compact UTF-8 JSON (what the Workflows limit counts)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8"))


def _teams_fallback(message: _Message) -> dict[str, Any]:
    body = [
        _block(_md(cut(message.title_line, 200)), size="Medium", weight="Bolder"),
        _block(
            "The details are too long for a Teams message"
            + ("; they are in the admin center." if message.link else "."),
            isSubtle=True,
        ),
    ]
    if message.title:
        body.insert(1, _block(_md(cut(message.title, 200)), weight="Bolder"))
    return _teams_envelope(body, message.link, message.link_label)


def teams_message(event: WatchEvent, *, admin_center: str = ADMIN_CENTER) -> dict[str, Any]:
    """The Workflows webhook body for ``event``: an Adaptive Card 1.5 within :data:`TEAMS_MAX_BYTES`."""
    message = _describe(event, admin_center)
    return _fit(
        message,
        lambda fit: _teams_card(message, fit),
        teams_size,
        TEAMS_BUDGET,
        lambda: _teams_fallback(message),
        body_size=lambda text: len(json.dumps(_md_paragraphs(text), ensure_ascii=False).encode()),
    )


# -- the budget loop -----------------------------------------------------------------------------------------

MIN_BODY = 600  # characters of a post kept before tenants and other texts are shrunk
MIN_TEXT = 120
ROUNDS = 24


def _fit(
    message: _Message,
    render: Callable[[_Fit], dict[str, Any]],
    size: Callable[[dict[str, Any]], int],
    budget: int,
    fallback: Callable[[], dict[str, Any]],
    *,
    body_size: Callable[[str], int],
    body_limit: int | None = None,
) -> dict[str, Any]:
    """Render, measure, shrink, until the payload is within ``budget`` (by ``size``); the fallback
    when the smallest rendering still is not."""
    full_body = len(message.body)
    fit = _Fit(
        body=min(full_body, body_limit) if body_limit is not None else full_body,
        tenants=min(len(message.tenants), TENANTS_SHOWN),
        text=TEXT_LIMIT,
    )
    for _ in range(ROUNDS):
        payload = render(fit)
        over = size(payload) - budget
        if over <= 0:
            return payload
        if fit.body > MIN_BODY:
            shown = cut(message.body, fit.body)
            bytes_now = max(body_size(shown), 1)
            target = bytes_now - over - 64
            chars = int(len(shown) * target / bytes_now) if target > 0 else 0
            fit = replace(fit, body=max(MIN_BODY, min(chars, fit.body - 1)))
        elif fit.tenants > 3:
            fit = replace(fit, tenants=max(3, fit.tenants // 2))
        elif fit.text > MIN_TEXT:
            fit = replace(fit, text=max(MIN_TEXT, fit.text // 2))
        elif fit.body > 0:
            fit = replace(fit, body=fit.body // 2 if fit.body > 100 else 0)
        elif fit.tenants > 0:
            fit = replace(fit, tenants=0)
        else:
            break
    return fallback()


# -- Slack -------------------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> str:
    """``text`` for Slack mrkdwn: ``&``, ``<`` and ``>`` escaped, so no mention, channel ping or link
    can be formed from it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut_mrkdwn(text: str, limit: int) -> str:
    """``text`` escaped for mrkdwn and at most ``limit`` UTF-16 units after escaping (cut before
    escaping, so an entity is never split)."""
    room = limit
    while True:
        escaped = _mrkdwn(cut(text, room, measure=_utf16))
        over = _utf16(escaped) - limit
        if over <= 0:
            return escaped
        room = max(0, room - over)


def _plain_text(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, limit, measure=_utf16) or " ", "emoji": False}


def _slack_blocks(message: _Message, fit: _Fit) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain_text(message.title_line, SLACK_MAX_HEADER)}
    ]
    if message.title:
        blocks.append(
            {"type": "section", "text": _plain_text(message.title, min(fit.text, SLACK_BODY))}
        )
    if message.notes:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    _plain_text(note, min(fit.text, SLACK_FIELD))
                    for note in message.notes[:SLACK_MAX_CONTEXT_ELEMENTS]
                ],
            }
        )
    facts = message.facts[:SLACK_MAX_FIELDS]
    if facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _plain_text(f"{k}: {v}", min(fit.text, SLACK_FIELD, SLACK_MAX_FIELD))
                    for k, v in facts
                ],
            }
        )
    if message.tenants_label and message.tenants:
        listing = _tenant_list(message, fit.tenants, fit.text)
        blocks.append(
            {
                "type": "section",
                "text": _plain_text(f"{message.tenants_label}: {listing}", SLACK_BODY),
            }
        )
    if message.impact:
        blocks.append(
            {"type": "section", "text": _plain_text(message.impact, min(fit.text * 2, SLACK_BODY))}
        )
    if message.body and fit.body > 0:
        blocks.append({"type": "divider"})
        if message.body_heading:
            blocks.append(
                {"type": "context", "elements": [_plain_text(message.body_heading, SLACK_FIELD)]}
            )
        text = cut(message.body, min(fit.body, SLACK_BODY), measure=_utf16)
        blocks.append({"type": "section", "text": _plain_text(text, SLACK_MAX_SECTION)})
    if message.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": _plain_text(message.link_label, SLACK_MAX_BUTTON_TEXT),
                        "url": message.link[:SLACK_MAX_URL],
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _cut_mrkdwn(message.footer, SLACK_FIELD)}],
        }
    )
    return blocks[:SLACK_MAX_BLOCKS]


def _slack_text(message: _Message) -> str:
    parts = [message.title_line]
    if message.title:
        parts.append(message.title)
    if message.tenant_summary:
        parts.append(message.tenant_summary)
    return _cut_mrkdwn(" \u2014 ".join(parts), SLACK_TEXT_BUDGET)


def _slack_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload["blocks"], separators=(",", ":"), ensure_ascii=False))


def _slack_fallback(message: _Message) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain_text(message.title_line, SLACK_MAX_HEADER)}
    ]
    if message.title:
        blocks.append({"type": "section", "text": _plain_text(message.title, 500)})
    if message.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": _plain_text(message.link_label, SLACK_MAX_BUTTON_TEXT),
                        "url": message.link[:SLACK_MAX_URL],
                    }
                ],
            }
        )
    return {"text": _slack_text(message), "blocks": blocks}


def slack_message(event: WatchEvent, *, admin_center: str = ADMIN_CENTER) -> dict[str, Any]:
    """The incoming-webhook body for ``event``: ``text`` (the notification; mrkdwn, escaped) and Block
    Kit ``blocks`` within Slack's limits."""
    message = _describe(event, admin_center)
    text = _slack_text(message)
    return _fit(
        message,
        lambda fit: {"text": text, "blocks": _slack_blocks(message, fit)},
        _slack_size,
        SLACK_BLOCKS_BUDGET,
        lambda: _slack_fallback(message),
        body_size=lambda body: len(json.dumps(body, ensure_ascii=False)),
        body_limit=SLACK_BODY,
    )
