"""Microsoft Graph service communications (``/v1.0/admin/serviceAnnouncement/...``) in the emulator.

Microsoft retired the legacy endpoint in favour of Graph; this module serves the same tenants' data
through Graph's routes, derived from the legacy data (:mod:`.data`), so one incident is seen through
both APIs with the same id.

Routes (under :data:`ANNOUNCEMENT_PREFIX`; GET unless noted)::

    healthOverviews[?$expand=issues]        healthOverviews/{id or service name}
    issues                                  issues/{id}        issues/{id}/incidentReport (bytes)
    messages[?$expand=attachments]          messages/{id}      messages/{id}/attachments
    messages/{id}/attachments/{attachmentId}[/content (bytes)]  messages/{id}/attachmentsArchive (zip)
    POST messages/markRead|markUnread|archive|unarchive|favorite|unfavorite  {"messageIds": [...]}

Contract:

* **Who is calling.** Graph has no tenant in the URL: the bearer token names it. Without a
  ``graph_token_validator`` the routes accept the opaque tokens of :func:`graph_token`:
  ``emulator-app.<tenant>`` (application permissions: ``viewPoint`` is null, the viewpoint actions
  answer 403) and ``emulator-user.<tenant>`` (delegated: ``viewPoint`` is an object and the actions
  change it, per tenant and user token). With a validator (``IdentityServer.graph_token_validator``
  for real JWTs), it alone decides: it is awaited as ``validator(token, permission)`` where
  ``permission`` is :data:`SERVICE_HEALTH_READ` (healthOverviews, issues), :data:`SERVICE_MESSAGE_READ`
  (messages, attachments) or :data:`SERVICE_MESSAGE_VIEWPOINT_WRITE` (the actions), and returns a
  :class:`GraphCaller` (or a plain ``(tenant, delegated)`` tuple) to accept, or a response to send.
  No token: 401 ``InvalidAuthenticationToken`` "Access token is empty."; an unknown token: 401
  ``InvalidAuthenticationToken``.
* **Data.** Legacy ``Incident`` messages become issues (same id and order: ``lastModifiedDateTime``
  newest first); legacy ``MessageCenter`` messages become messages; legacy CurrentStatus rows become
  health overviews. Legacy ``PlannedMaintenance`` messages are left out: Graph has no such type
  (Microsoft announces maintenance in Message Center now), and calling them issues would invent an
  advisory the service never posted. A message's ``severity`` is the legacy one (always ``Normal``
  in the emulator's data) raised to ``high`` for ``preventOrFixIssue`` posts and to ``critical``
  for those that are also major changes. About one message in four has attachments (CSV files).
  Enums are camelCase (the wire form); timestamps are the legacy ones (0 to 3 fraction digits),
  attachment times carry 7.
* **Paging** (issues and messages): 100 items a page by default; ``Prefer: odata.maxpagesize=N``
  (1 to 1000; answered with ``Preference-Applied``) or ``$top=N`` (1 to 1000; it wins over the
  preference) sets the page size. A non-final page carries an absolute ``@odata.nextLink`` with the
  request's query and an opaque, signed ``$skiptoken`` bound to the collection and the ``$filter``;
  a token that was altered, minted by another emulator configuration, or used with another filter
  is answered 400. ``$skip`` is refused (follow the next link). On ``/issues`` a request with
  ``$top`` gets no next link: the real service's quirk.
* **Query options:** ``$filter`` (see :data:`ISSUE_FIELDS`, :data:`MESSAGE_FIELDS`,
  :data:`HEALTH_FIELDS`; enum and string comparisons ignore case; ``services/any(s:s eq '...')`` and
  ``tags/any(...)``), ``$select``, ``$expand`` (``issues`` on health overviews, ``attachments`` on
  messages). Any other ``$`` option, an unknown property or a malformed value: 400 ``BadRequest``
  naming it.
* **Actions:** the body must be ``{"messageIds": [1 to 100 ids]}``; ids are matched ignoring case;
  if any id is not one of the tenant's messages the answer is 400 ``BadRequest`` naming them and no
  state changes (all or nothing, so a client never has to guess which ids were applied). Success is
  200 ``{"@odata.context": ".../$metadata#Edm.Boolean", "value": true}``.
* **Cost.** A tenant's first Graph request walks its legacy message list without rendering text;
  pages render only their own items (shared across tenants by id, like the legacy routes). A
  ``$filter`` or ``$expand=issues`` converts the tenant's whole collection once, then is cached.
* **Errors** are Graph's shape, ``{"error": {"code", "message", "innerError": {"date",
  "request-id", "client-request-id"}}}``, with the same ``request-id`` in a response header; every
  Graph response carries ``request-id`` and ``client-request-id`` (the client's, echoed, when sent).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import re
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

import orjson
from aiohttp import web
from yarl import URL

from .cache import LRU
from .config import EmulatorConfig
from .data import INCIDENT, MESSAGE_CENTER, DataStore, Json
from .odata import FieldKind, ODataError, Predicate, apply_select, parse_datetime_us, parse_filter
from .parsing import GUID_RE, b64url_decode, b64url_encode, bearer_token, is_valid_tenant

__all__ = [
    "ANNOUNCEMENT_PREFIX",
    "GRAPH_AUDIENCES",
    "GRAPH_PREFIX",
    "SERVICE_HEALTH_READ",
    "SERVICE_MESSAGE_READ",
    "SERVICE_MESSAGE_VIEWPOINT_WRITE",
    "GraphApi",
    "GraphCaller",
    "GraphDataset",
    "GraphTokenValidator",
    "graph_error",
    "graph_http_error",
    "graph_token",
    "is_graph_path",
]

GRAPH_PREFIX = "/v1.0"
ANNOUNCEMENT_PREFIX = GRAPH_PREFIX + "/admin/serviceAnnouncement"
# Graph's resource as a URI and as its application id; tokens carry whichever was requested.
GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
SERVICE_HEALTH_READ = "ServiceHealth.Read.All"
SERVICE_MESSAGE_READ = "ServiceMessage.Read.All"
SERVICE_MESSAGE_VIEWPOINT_WRITE = "ServiceMessageViewpoint.Write"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_ACTION_IDS = 100

APP_TOKEN_PREFIX = "emulator-app."
USER_TOKEN_PREFIX = "emulator-user."

_JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
_BYTES_TYPE = "application/octet-stream"
_PAGE_SIZE_RE = re.compile(r"[0-9]{1,9}")
_MAXPAGESIZE_RE = re.compile(r"(?:^|[,;\s])odata\.maxpagesize\s*=\s*\"?([^\",;\s]*)", re.I)


class GraphCaller(NamedTuple):
    """Who a Graph request is from: the tenant (lower case), whether the token is delegated, and
    the user whose viewpoint state it sees (``None``: keyed by the token itself)."""

    tenant: str
    delegated: bool
    user: str | None = None


GraphTokenValidator = Callable[
    [str, str], Awaitable["GraphCaller | tuple[str, bool] | web.StreamResponse"]
]
"""``(bearer token, permission needed) -> GraphCaller | (tenant, delegated)`` to accept, or a
response to send."""


def graph_token(tenant: str, *, delegated: bool = False) -> str:
    """The emulator's opaque Graph token for ``tenant`` (a GUID or a domain): ``emulator-app.<tenant>``
    acts with application permissions, ``emulator-user.<tenant>`` (``delegated=True``) with delegated
    ones. Deterministic, so two processes agree on it."""
    if not isinstance(tenant, str) or not is_valid_tenant(tenant):
        raise ValueError(f"tenant must be a tenant GUID or domain name, got {tenant!r}")
    prefix = USER_TOKEN_PREFIX if delegated else APP_TOKEN_PREFIX
    return prefix + tenant.lower()


def is_graph_path(path: str) -> bool:
    """Whether ``path`` is one of the Graph routes' (``/v1.0/...``)."""
    return path == GRAPH_PREFIX or path.startswith(GRAPH_PREFIX + "/")


# --- errors ----------------------------------------------------------------------------------


def graph_error(
    status: int,
    code: str,
    message: str,
    *,
    request: web.Request | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A Graph error response; ``request`` supplies the ``client-request-id`` to echo."""
    request_id = str(uuid.uuid4())
    client_request_id = _client_request_id(request)
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "request-id": request_id,
            "client-request-id": client_request_id,
            **(headers or {}),
        },
    )


def graph_http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    """Graph's answer for an aiohttp routing error (no such route, wrong method) on a Graph path."""
    if exc.status == 404:
        return graph_error(
            404, "NotFound", f"No resource matches {request.path[:200]!r}.", request=request
        )
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "GET")
        return graph_error(
            405,
            "BadRequest",
            f"The HTTP method {request.method} is not allowed here; use {allowed}.",
            request=request,
            headers={"Allow": allowed},
        )
    return graph_error(exc.status, exc.reason.replace(" ", ""), exc.reason, request=request)


def _client_request_id(request: web.Request | None) -> str:
    sent = request.headers.get("client-request-id") if request is not None else None
    if sent and GUID_RE.fullmatch(sent.strip()):
        return sent.strip()
    return str(uuid.uuid4())


class _GraphError(Exception):
    """Raised by handlers; turned into :func:`graph_error` by the route wrapper."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class _Answered(Exception):
    """Not an error: carries the response a token validator chose to send."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("answered by the token validator")
        self.response = response


def _bad_request(message: str) -> _GraphError:
    return _GraphError(400, "BadRequest", message)


def _not_found(message: str) -> _GraphError:
    return _GraphError(404, "NotFound", message)


# --- legacy -> Graph ---------------------------------------------------------------------------

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


def _severity(legacy: str | None, category: str | None, major: bool) -> str:
    level = _SEVERITIES.index(legacy.lower()) if legacy and legacy.lower() in _SEVERITIES else 0
    if category == "preventOrFixIssue":
        level = max(level, 2 if major else 1)
    return _SEVERITIES[level]


def issue_from_legacy(message: Json) -> Json:
    """A Graph ``serviceHealthIssue`` from a legacy ``Incident`` message (real shape)."""
    return {
        "startDateTime": message["StartTime"],
        "endDateTime": message["EndTime"],
        "lastModifiedDateTime": message["LastUpdatedTime"],
        "title": message["Title"],
        "id": message["Id"],
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
    ``viewPoint`` null (the application view)."""
    category = _category(message.get("Category"))
    major = bool(message.get("IsMajorChange"))
    details = [
        {"name": name, "value": message[name]}
        for name in ("ExternalLink", "BlogLink", "HelpLink")
        if message.get(name)
    ]
    posts = message.get("Messages") or []
    return {
        "startDateTime": message["StartTime"],
        "endDateTime": message["EndTime"],
        "lastModifiedDateTime": message["LastUpdatedTime"],
        "title": message["Title"],
        "id": message["Id"],
        "category": category,
        "severity": _severity(message.get("Severity"), category, major),
        "tags": list(message.get("MessageTagNames") or ()),
        "isMajorChange": major,
        "actionRequiredByDateTime": message.get("ActionRequiredByDate"),
        "services": list(message.get("AffectedWorkloadDisplayNames") or ()),
        "expiryDateTime": message["EndTime"],
        "hasAttachments": bool(_attachment_count(message["Id"])),
        "details": details,
        "body": {"contentType": "html", "content": posts[-1]["MessageText"] if posts else ""},
        "viewPoint": None,
    }


def health_from_legacy(row: Json) -> Json:
    """A Graph ``serviceHealth`` from a legacy CurrentStatus row (real shape)."""
    return {
        "service": row["WorkloadDisplayName"],
        "status": graph_status(row["Status"]),
        "id": row["Workload"],
    }


# --- attachments and reports -------------------------------------------------------------------


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


def _attachment_count(message_id: str) -> int:
    """0 for about three messages in four, else 1 or 2; a function of the id alone."""
    h = int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=4).digest(), "little")
    return 0 if h % 4 else 1 + (h >> 8) % 2


def attachments_for(message: Json) -> list[Attachment]:
    """The attachments of a Graph message (deterministic CSV files)."""
    out: list[Attachment] = []
    msg_id = str(message["id"])
    modified = _seven_digits(str(message["lastModifiedDateTime"]))
    for index in range(_attachment_count(msg_id)):
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


# --- filters -----------------------------------------------------------------------------------

ISSUE_FIELDS: Mapping[str, FieldKind] = {
    "id": "string",
    "title": "string",
    "impactDescription": "string",
    "classification": "string",
    "origin": "string",
    "status": "string",
    "service": "string",
    "feature": "string",
    "featureGroup": "string",
    "isResolved": "bool",
    "startDateTime": "datetime",
    "endDateTime": "datetime",
    "lastModifiedDateTime": "datetime",
}
MESSAGE_FIELDS: Mapping[str, FieldKind] = {
    "id": "string",
    "title": "string",
    "category": "string",
    "severity": "string",
    "isMajorChange": "bool",
    "hasAttachments": "bool",
    "startDateTime": "datetime",
    "endDateTime": "datetime",
    "lastModifiedDateTime": "datetime",
    "actionRequiredByDateTime": "datetime",
    "expiryDateTime": "datetime",
    "services": "collection",
    "tags": "collection",
}
HEALTH_FIELDS: Mapping[str, FieldKind] = {"id": "string", "service": "string", "status": "string"}


def _typed(item: Json, fields: Mapping[str, FieldKind]) -> dict[str, object]:
    row: dict[str, object] = {}
    for name, kind in fields.items():
        value = item.get(name)
        if kind == "datetime" and isinstance(value, str):
            row[name] = parse_datetime_us(value)
        elif kind == "collection":
            row[name] = tuple(value or ())
        else:
            row[name] = value
    return row


# --- per-tenant data ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GraphDataset:
    """What the Graph routes serve for one tenant (application view: ``viewPoint`` null)."""

    health_overviews: list[Json]
    issues: list[Json]
    messages: list[Json]


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One converted item, its typed ``$filter`` row, and (messages) the legacy read/dismissed
    state a user's viewpoint starts from."""

    item: Json
    row: dict[str, object]
    viewpoint: tuple[bool, bool, bool]  # (read, archived, favorited)


@dataclasses.dataclass(frozen=True)
class _Collection:
    """A tenant's issues or messages, by id only: items are converted when a page needs them."""

    name: str  # "issues" or "messages"
    ids: list[str]
    legacy: list[int]  # each item's position in the tenant's legacy Messages order
    index: dict[str, int]  # lower-case id -> position

    def position(self, item_id: str) -> int | None:
        return self.index.get(item_id.lower())


@dataclasses.dataclass(frozen=True)
class _TenantData:
    tenant: str
    health: list[Json]
    health_rows: list[dict[str, object]]
    issues: _Collection
    messages: _Collection


_ACTIONS: Mapping[str, tuple[int, bool]] = {
    "markRead": (0, True),
    "markUnread": (0, False),
    "archive": (1, True),
    "unarchive": (1, False),
    "favorite": (2, True),
    "unfavorite": (2, False),
}
_QUERY_OPTIONS = ("$filter", "$select", "$top", "$skiptoken", "$expand")

Handler = Callable[[web.Request, GraphCaller], Awaitable[web.StreamResponse]]


class GraphApi:
    """The Graph routes over an emulator's data (see the module docstring for the contract).

    ``base_url`` is called for the public ``http://127.0.0.1:PORT/v1.0`` when a response needs an
    absolute URL (``@odata.context``, ``@odata.nextLink``).
    """

    def __init__(
        self,
        config: EmulatorConfig,
        store: DataStore,
        base_url: Callable[[], str],
        validator: GraphTokenValidator | None = None,
    ) -> None:
        # Graph is derived from the real shape whatever shape the legacy routes serve.
        self._store = store if config.shape == "real" else DataStore(_real(config))
        self._base_url = base_url
        self._validator = validator
        self._tenants: LRU[str, _TenantData] = LRU(1024)
        self._converted: LRU[str, _Entry] = LRU(20_000)
        self._filtered: LRU[tuple[str, str, str], list[int]] = LRU(256)
        # (tenant, user) -> message id (lower case) -> (read, archived, favorited)
        self._viewpoints: dict[tuple[str, str], dict[str, tuple[bool, bool, bool]]] = {}
        self._skiptoken_key = hashlib.blake2b(
            f"skiptoken\x1f{config.seed}\x1f{config.now_utc.isoformat()}\x1f"
            f"{config.messages_per_tenant}".encode(),
            digest_size=32,
        ).digest()

    # -- routes --

    def add_routes(self, router: web.UrlDispatcher) -> None:
        base = ANNOUNCEMENT_PREFIX
        health, messages = SERVICE_HEALTH_READ, SERVICE_MESSAGE_READ
        routes: list[tuple[str, str, Handler, str]] = [
            ("GET", "/healthOverviews", self._health_overviews, health),
            ("GET", "/healthOverviews/{service}", self._health_overview, health),
            ("GET", "/issues", self._issues, health),
            ("GET", "/issues/{id}", self._issue, health),
            ("GET", "/issues/{id}/incidentReport", self._incident_report, health),
            ("GET", "/messages", self._messages, messages),
            ("GET", "/messages/{id}", self._message, messages),
            ("GET", "/messages/{id}/attachments", self._attachments, messages),
            ("GET", "/messages/{id}/attachments/{aid}", self._attachment, messages),
            ("GET", "/messages/{id}/attachments/{aid}/content", self._attachment_content, messages),
            ("GET", "/messages/{id}/attachmentsArchive", self._attachments_archive, messages),
        ]
        for method, path, handler, permission in routes:
            router.add_route(method, base + path, self._wrap(handler, permission))
        actions = "|".join(_ACTIONS)
        router.add_route(
            "POST",
            base + "/messages/{action:" + actions + "}",
            self._wrap(self._action, SERVICE_MESSAGE_VIEWPOINT_WRITE),
        )

    def _wrap(
        self, handler: Handler, permission: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            try:
                caller = await self._caller(request, permission)
                response = await handler(request, caller)
            except _Answered as answered:
                response = answered.response
            except _GraphError as error:
                return graph_error(
                    error.status, error.code, error.message, request=request, headers=error.headers
                )
            except ODataError as error:
                return graph_error(400, "BadRequest", str(error), request=request)
            if "request-id" not in response.headers:
                response.headers["request-id"] = str(uuid.uuid4())
            if "client-request-id" not in response.headers:
                response.headers["client-request-id"] = _client_request_id(request)
            return response

        return route

    async def _caller(self, request: web.Request, permission: str) -> GraphCaller:
        token = bearer_token(request.headers.get("Authorization"))
        challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
        if token is None:
            raise _GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty.", challenge
            )
        if self._validator is not None:
            result = await self._validator(token, permission)
            if isinstance(result, web.StreamResponse):
                raise _Answered(result)
            tenant, delegated, *rest = result
            user = rest[0] if rest and rest[0] is not None else _token_key(token)
            return GraphCaller(str(tenant).lower(), bool(delegated), user)
        for prefix, delegated in ((APP_TOKEN_PREFIX, False), (USER_TOKEN_PREFIX, True)):
            if token.startswith(prefix):
                tenant = token.removeprefix(prefix)
                if is_valid_tenant(tenant):
                    return GraphCaller(tenant.lower(), delegated, _token_key(token))
        raise _GraphError(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. The token is not one this emulator issued "
            "(use Emulator.graph_token(tenant) or an identity server's graph_token_validator).",
            challenge,
        )

    # -- data --

    def dataset(self, tenant: str) -> GraphDataset:
        """Deep copies of what the Graph routes serve for ``tenant`` (application view)."""
        data = self._data(tenant)

        def copy(items: list[Json]) -> list[Json]:
            result: list[Json] = orjson.loads(orjson.dumps(items))
            return result

        return GraphDataset(
            copy(data.health),
            copy([e.item for e in self._all(data, data.issues)]),
            copy([e.item for e in self._all(data, data.messages)]),
        )

    def _data(self, tenant: str) -> _TenantData:
        key = tenant.lower()
        return self._tenants.get_or_create(key, lambda: self._build(key))

    def _build(self, tenant: str) -> _TenantData:
        """The tenant's ids, from the legacy message cores: no text is rendered here, so a scan
        of many tenants pays only for the pages it reads."""
        store = self._store
        issues: tuple[list[str], list[int]] = ([], [])
        messages: tuple[list[str], list[int]] = ([], [])
        for position, core in enumerate(store.gen.iter_cores(store.model(tenant))):
            target = (
                issues
                if core.kind == INCIDENT
                else messages
                if core.kind == MESSAGE_CENTER
                else None
            )
            if target is not None:
                target[0].append(core.msg_id)
                target[1].append(position)
        health = [health_from_legacy(r) for r in store.status_list("CurrentStatus", tenant)]
        return _TenantData(
            tenant=tenant,
            health=health,
            health_rows=[_typed(h, HEALTH_FIELDS) for h in health],
            issues=_collection("issues", *issues),
            messages=_collection("messages", *messages),
        )

    def _entries(
        self, data: _TenantData, collection: _Collection, positions: Sequence[int]
    ) -> list[_Entry]:
        """The converted items at ``positions``; only those not cached are rendered."""
        entries: list[_Entry | None] = [self._converted.get(collection.ids[p]) for p in positions]
        missing = [n for n, entry in enumerate(entries) if entry is None]
        if missing:
            legacy_positions = [collection.legacy[positions[n]] for n in missing]
            rendered = self._store.messages(data.tenant, legacy_positions)
            issues = collection.name == "issues"
            for n, legacy in zip(missing, rendered, strict=True):
                # A legacy id names the same content in every tenant, so entries are shared.
                item = issue_from_legacy(legacy) if issues else message_from_legacy(legacy)
                entry = _Entry(
                    item,
                    _typed(item, ISSUE_FIELDS if issues else MESSAGE_FIELDS),
                    (bool(legacy.get("IsRead")), bool(legacy.get("IsDismissed")), False),
                )
                self._converted.put(str(legacy["Id"]), entry)
                entries[n] = entry
        return [entry for entry in entries if entry is not None]

    def _all(self, data: _TenantData, collection: _Collection) -> list[_Entry]:
        return self._entries(data, collection, range(len(collection.ids)))

    def _matching(
        self, data: _TenantData, collection: _Collection, filter_text: str | None
    ) -> Sequence[int]:
        """Positions in ``collection`` that ``filter_text`` keeps (all without a filter)."""
        if filter_text is None:
            return range(len(collection.ids))
        key = (data.tenant, collection.name, filter_text)
        hit = self._filtered.get(key)
        if hit is None:
            fields = ISSUE_FIELDS if collection.name == "issues" else MESSAGE_FIELDS
            predicate: Predicate = parse_filter(filter_text, fields)
            hit = [n for n, e in enumerate(self._all(data, collection)) if predicate(e.row)]
            self._filtered.put(key, hit)
        return hit

    def _one(self, data: _TenantData, collection: _Collection, item_id: str) -> _Entry:
        position = collection.position(item_id)
        if position is None:
            kind = "issue" if collection.name == "issues" else "message"
            raise _not_found(f"No {kind} with id {item_id[:64]!r} was found.")
        return self._entries(data, collection, [position])[0]

    def _viewed(self, caller: GraphCaller, entry: _Entry) -> Json:
        """A message as ``caller`` sees it: delegated callers get their viewPoint."""
        if not caller.delegated:
            return entry.item
        key = str(entry.item["id"]).lower()
        state = self._viewpoints.get((caller.tenant, caller.user or ""), {}).get(key)
        read, archived, favorited = state or entry.viewpoint
        view = {"isRead": read, "isArchived": archived, "isFavorited": favorited}
        return {**entry.item, "viewPoint": view}

    # -- handlers: health --

    async def _health_overviews(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = _query(request, allowed=("$filter", "$select", "$expand"))
        data = self._data(caller.tenant)
        expand = _expand(query, ("issues",))
        selected, names = _select(query, list(HEALTH_FIELDS))
        rows: Sequence[int] = range(len(data.health))
        filter_text = query.get("$filter")
        if filter_text is not None:
            predicate = parse_filter(filter_text, HEALTH_FIELDS)
            rows = [n for n in rows if predicate(data.health_rows[n])]
        issues = self._all(data, data.issues) if "issues" in expand else None
        items = [self._health_item(data.health[n], selected, issues) for n in rows]
        context = self._context("healthOverviews", names, expand)
        return _json({"@odata.context": context, "value": items})

    async def _health_overview(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = _query(request, allowed=("$select", "$expand"))
        data = self._data(caller.tenant)
        wanted = request.match_info["service"].lower()
        found = next(
            (h for h in data.health if wanted in (h["id"].lower(), h["service"].lower())), None
        )
        if found is None:
            raise _not_found(
                f"No service named {request.match_info['service'][:64]!r} was found for this "
                "tenant; use a service id such as 'Exchange' or its name such as "
                "'Exchange Online'."
            )
        expand = _expand(query, ("issues",))
        selected, names = _select(query, list(HEALTH_FIELDS))
        issues = self._all(data, data.issues) if "issues" in expand else None
        item = self._health_item(found, selected, issues)
        context = self._context("healthOverviews", names, expand) + "/$entity"
        return _json({"@odata.context": context, **item})

    @staticmethod
    def _health_item(
        item: Json, selected: frozenset[str] | None, issues: list[_Entry] | None
    ) -> Json:
        out = dict(item) if selected is None else apply_select(item, selected)
        if issues is not None:
            out["issues"] = [e.item for e in issues if e.item["service"] == item["service"]]
        return out

    # -- handlers: issues --

    async def _issues(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = _query(request, allowed=("$filter", "$select", "$top", "$skiptoken"))
        data = self._data(caller.tenant)
        selected, names = _select(query, list(_ISSUE_KEYS))
        filter_text = query.get("$filter")
        positions = self._matching(data, data.issues, filter_text)
        page, doc, headers = self._page(request, query, "issues", positions, filter_text)
        items = [e.item for e in self._entries(data, data.issues, page)]
        doc["@odata.context"] = self._context("issues", names, set())
        doc["value"] = items if selected is None else [apply_select(i, selected) for i in items]
        return _json(_context_first(doc), headers)

    async def _issue(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = _query(request, allowed=("$select",))
        data = self._data(caller.tenant)
        issue = self._one(data, data.issues, request.match_info["id"]).item
        selected, names = _select(query, list(_ISSUE_KEYS))
        item = issue if selected is None else apply_select(issue, selected)
        context = self._context("issues", names, set()) + "/$entity"
        return _json({"@odata.context": context, **item})

    async def _incident_report(self, request: web.Request, caller: GraphCaller) -> web.Response:
        _query(request, allowed=())
        data = self._data(caller.tenant)
        issue = self._one(data, data.issues, request.match_info["id"]).item
        if not has_incident_report(issue):
            raise _not_found(
                f"No incident report is available for issue {issue['id']}: reports are published "
                "for post-incident reviews and resolved incidents only."
            )
        return web.Response(body=incident_report(issue), headers={"Content-Type": _BYTES_TYPE})

    # -- handlers: messages --

    async def _messages(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = _query(request, allowed=_QUERY_OPTIONS)
        data = self._data(caller.tenant)
        expand = _expand(query, ("attachments",))
        selected, names = _select(query, list(_MESSAGE_KEYS))
        filter_text = query.get("$filter")
        positions = self._matching(data, data.messages, filter_text)
        page, doc, headers = self._page(request, query, "messages", positions, filter_text)
        doc["@odata.context"] = self._context("messages", names, expand)
        doc["value"] = [
            self._message_item(caller, e, selected, expand)
            for e in self._entries(data, data.messages, page)
        ]
        return _json(_context_first(doc), headers)

    async def _message(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = _query(request, allowed=("$select", "$expand"))
        data = self._data(caller.tenant)
        entry = self._one(data, data.messages, request.match_info["id"])
        expand = _expand(query, ("attachments",))
        selected, names = _select(query, list(_MESSAGE_KEYS))
        item = self._message_item(caller, entry, selected, expand)
        context = self._context("messages", names, expand) + "/$entity"
        return _json({"@odata.context": context, **item})

    def _message_item(
        self,
        caller: GraphCaller,
        entry: _Entry,
        selected: frozenset[str] | None,
        expand: set[str],
    ) -> Json:
        viewed = self._viewed(caller, entry)
        out = dict(viewed) if selected is None else apply_select(viewed, selected)
        if "attachments" in expand:
            out["attachments"] = [a.resource for a in attachments_for(entry.item)]
        return out

    def _message_of(self, caller: GraphCaller, request: web.Request) -> Json:
        data = self._data(caller.tenant)
        return self._one(data, data.messages, request.match_info["id"]).item

    async def _attachments(self, request: web.Request, caller: GraphCaller) -> web.Response:
        _query(request, allowed=())
        message = self._message_of(caller, request)
        context = (
            f"{self._base_url()}/$metadata#admin/serviceAnnouncement/messages"
            f"('{message['id']}')/attachments"
        )
        resources = [a.resource for a in attachments_for(message)]
        return _json({"@odata.context": context, "value": resources})

    def _attachment_of(self, caller: GraphCaller, request: web.Request) -> Attachment:
        message = self._message_of(caller, request)
        wanted = request.match_info["aid"].lower()
        for attachment in attachments_for(message):
            if attachment.id == wanted:
                return attachment
        raise _not_found(
            f"Message {message['id']} has no attachment with id {request.match_info['aid'][:64]!r}."
        )

    async def _attachment(self, request: web.Request, caller: GraphCaller) -> web.Response:
        _query(request, allowed=())
        attachment = self._attachment_of(caller, request)
        context = (
            f"{self._base_url()}/$metadata#admin/serviceAnnouncement/messages"
            f"('{request.match_info['id']}')/attachments/$entity"
        )
        return _json({"@odata.context": context, **attachment.resource})

    async def _attachment_content(self, request: web.Request, caller: GraphCaller) -> web.Response:
        _query(request, allowed=())
        attachment = self._attachment_of(caller, request)
        return web.Response(body=attachment.content, headers={"Content-Type": _BYTES_TYPE})

    async def _attachments_archive(self, request: web.Request, caller: GraphCaller) -> web.Response:
        _query(request, allowed=())
        message = self._message_of(caller, request)
        attachments = attachments_for(message)
        if not attachments:
            raise _not_found(f"Message {message['id']} has no attachments.")
        body = attachments_archive(attachments, str(message["lastModifiedDateTime"]))
        return web.Response(body=body, headers={"Content-Type": _BYTES_TYPE})

    async def _action(self, request: web.Request, caller: GraphCaller) -> web.Response:
        action = request.match_info["action"]
        if not caller.delegated:
            raise _GraphError(
                403,
                "Forbidden",
                f"The {action} action requires delegated permissions "
                f"({SERVICE_MESSAGE_VIEWPOINT_WRITE}): it changes a signed-in user's view of "
                "messages, which an application token does not have.",
            )
        ids = _message_ids(await request.read())
        data = self._data(caller.tenant)
        positions = [data.messages.position(i) for i in ids]
        unknown = [i for i, p in zip(ids, positions, strict=True) if p is None]
        if unknown:
            shown = ", ".join(repr(i[:64]) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise _bad_request(
                f"messageIds lists ids that are not messages of this tenant: {shown}{more}. "
                "Nothing was changed."
            )
        field, value = _ACTIONS[action]
        states = self._viewpoints.setdefault((caller.tenant, caller.user or ""), {})
        known = [p for p in positions if p is not None]
        for entry in self._entries(data, data.messages, known):
            key = str(entry.item["id"]).lower()
            state = list(states.get(key) or entry.viewpoint)
            state[field] = value
            states[key] = (state[0], state[1], state[2])
        return _json({"@odata.context": f"{self._base_url()}/$metadata#Edm.Boolean", "value": True})

    # -- paging --

    def _page(
        self,
        request: web.Request,
        query: Mapping[str, str],
        collection: str,
        indices: Sequence[int],
        filter_text: str | None,
    ) -> tuple[Sequence[int], Json, dict[str, str]]:
        """(indices of this page, a document holding the next link if any, response headers)."""
        top = _page_size(query.get("$top"), "$top")
        preferred = _preferred_page_size(request.headers.getall("Prefer", []))
        offset, token_size = 0, None
        token = query.get("$skiptoken")
        if token is not None:
            offset, token_size = self._read_skiptoken(token, collection, filter_text)
        size = top or preferred or token_size or DEFAULT_PAGE_SIZE
        headers: dict[str, str] = {}
        if preferred is not None and top is None:
            headers["Preference-Applied"] = f"odata.maxpagesize={preferred}"
        doc: Json = {}
        end = offset + size
        # The real /issues drops the next link when $top is given (api-facts.md section 10).
        if end < len(indices) and not (collection == "issues" and top is not None):
            skiptoken = self._skiptoken(collection, filter_text, end, size)
            params = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            params["$skiptoken"] = skiptoken
            url = URL(self._base_url() + request.path.removeprefix(GRAPH_PREFIX))
            doc["@odata.nextLink"] = str(url.with_query(params))
        return indices[offset:end], doc, headers

    def _skiptoken(self, collection: str, filter_text: str | None, offset: int, size: int) -> str:
        payload = orjson.dumps([collection, offset, size, _fingerprint(filter_text)])
        mac = hmac.new(self._skiptoken_key, payload, "sha256").digest()[:16]
        return b64url_encode(payload + mac)

    def _read_skiptoken(
        self, token: str, collection: str, filter_text: str | None
    ) -> tuple[int, int]:
        invalid = _bad_request(
            "The $skiptoken is not valid or has expired: follow the @odata.nextLink of the "
            "previous page as it is, or start again from the first page."
        )
        try:
            raw = b64url_decode(token)
        except ValueError:
            raise invalid from None
        payload, mac = raw[:-16], raw[-16:]
        expected = hmac.new(self._skiptoken_key, payload, "sha256").digest()[:16]
        if len(raw) <= 16 or not hmac.compare_digest(mac, expected):
            raise invalid
        kind, offset, size, fingerprint = orjson.loads(payload)
        if kind != collection or fingerprint != _fingerprint(filter_text):
            raise _bad_request(
                "The $skiptoken belongs to another query: keep the $filter of the request that "
                "returned it."
            )
        return int(offset), int(size)

    def _context(self, collection: str, selected_names: list[str] | None, expand: set[str]) -> str:
        parts = list(selected_names or [])
        parts += [f"{name}()" for name in sorted(expand)]
        suffix = f"({','.join(parts)})" if parts else ""
        return f"{self._base_url()}/$metadata#admin/serviceAnnouncement/{collection}{suffix}"


_ISSUE_KEYS = (
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
_MESSAGE_KEYS = (
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
    "expiryDateTime",
    "hasAttachments",
    "details",
    "body",
    "viewPoint",
)


def _collection(name: str, ids: list[str], legacy: list[int]) -> _Collection:
    return _Collection(name, ids, legacy, {item_id.lower(): n for n, item_id in enumerate(ids)})


def _real(config: EmulatorConfig) -> EmulatorConfig:
    return dataclasses.replace(config, shape="real")


def _token_key(token: str) -> str:
    # Viewpoint state is keyed by a digest, so the token itself is kept nowhere.
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _fingerprint(filter_text: str | None) -> str:
    if filter_text is None:
        return ""
    return hashlib.sha256(filter_text.encode()).hexdigest()[:16]


def _json(doc: Json, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc), headers={"Content-Type": _JSON_TYPE, **(headers or {})}
    )


def _context_first(doc: Json) -> Json:
    """``@odata.context``, ``@odata.nextLink``, then ``value``: the order Graph writes them in."""
    order = ("@odata.context", "@odata.nextLink", "value")
    return {key: doc[key] for key in order if key in doc}


def _query(request: web.Request, *, allowed: Iterable[str]) -> dict[str, str]:
    """The request's query (last value wins); a ``$`` option not in ``allowed`` is a 400."""
    allowed = tuple(allowed)
    query: dict[str, str] = {}
    for name, value in request.query.items():
        if name.startswith("$") and name not in allowed:
            if name == "$skip":
                raise _bad_request(
                    "$skip is not supported: follow @odata.nextLink, whose $skiptoken is opaque."
                )
            supported = ", ".join(allowed) or "none"
            raise _bad_request(
                f"The query option {name[:40]!r} is not supported here. Supported: {supported}."
            )
        query[name] = value
    return query


def _select(
    query: Mapping[str, str], keys: Sequence[str]
) -> tuple[frozenset[str] | None, list[str] | None]:
    """(selected keys or None for all, the names in request order for ``@odata.context``)."""
    text = query.get("$select")
    if text is None:
        return None, None
    by_lower = {key.lower(): key for key in keys}
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if name == "*":
            return None, None
        canonical = by_lower.get(name.lower())
        if canonical is None:
            shown = repr(name[:64]) if name else "an empty name"
            raise _bad_request(
                f"Invalid $select: {shown} is not a property of this resource. "
                f"Valid properties: {', '.join(keys)}."
            )
        if canonical not in names:
            names.append(canonical)
    return frozenset(names), names


def _expand(query: Mapping[str, str], allowed: Sequence[str]) -> set[str]:
    text = query.get("$expand")
    if text is None:
        return set()
    out: set[str] = set()
    for raw in text.split(","):
        name = raw.strip()
        match = next((a for a in allowed if a.lower() == name.lower()), None)
        if match is None:
            raise _bad_request(
                f"Invalid $expand: {name[:64]!r} cannot be expanded here. "
                f"Expandable: {', '.join(allowed)}."
            )
        out.add(match)
    return out


def _page_size(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    text = raw.strip()
    if not _PAGE_SIZE_RE.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise _bad_request(
            f"Invalid value {raw[:32]!r} for {name}: expected an integer from 1 to {MAX_PAGE_SIZE}."
        )
    return int(text)


def _preferred_page_size(prefer_headers: Iterable[str]) -> int | None:
    for header in prefer_headers:
        match = _MAXPAGESIZE_RE.search(header)
        if match is not None:
            return _page_size(match.group(1), "the Prefer header's odata.maxpagesize")
    return None


def _message_ids(body: bytes) -> list[str]:
    """The ``messageIds`` of an action's JSON body; a 400 naming what is wrong otherwise."""
    expected = 'The body must be JSON like {"messageIds": ["MC123456"]}'
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise _bad_request(f"{expected}; it is not valid JSON.") from None
    if not isinstance(doc, dict) or "messageIds" not in doc:
        raise _bad_request(f"{expected}; messageIds is missing.")
    ids = doc["messageIds"]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise _bad_request(f"{expected}; messageIds must be a list of non-empty strings.")
    if not 1 <= len(ids) <= MAX_ACTION_IDS:
        raise _bad_request(
            f"messageIds must list 1 to {MAX_ACTION_IDS} ids, got {len(ids)}; split larger batches."
        )
    return ids
