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
  advisory the service never posted. Messages look like today's real traffic
  (:mod:`..messagecenter`): the 15 keys in the real order, no ``expiryDateTime`` (``endDateTime`` is
  the expiry), ``severity`` the legacy one (overwhelmingly ``normal``), ``details`` mostly
  ``Summary``, ``RoadmapIds``, ``Platforms``, ``FeatureStatusJson``; about one message in 32 has
  attachments (CSV files).
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

One concern a module: :mod:`.routes` (the routes and handlers), :mod:`.callers` (tokens and who is
calling), :mod:`.store` (per-tenant data and viewpoints), :mod:`.convert` (legacy to Graph),
:mod:`.query` (query options and ``$filter`` rows), :mod:`.paging` (page sizes and skiptokens) and
:mod:`.files` (attachments and incident reports); error bodies are :mod:`..errors`'.
* **Errors** are Graph's shape, ``{"error": {"code", "message", "innerError": {"date",
  "request-id", "client-request-id"}}}``, with the same ``request-id`` in a response header; every
  Graph response carries ``request-id`` and ``client-request-id`` (the client's, echoed, when sent).
"""

from ..errors import graph_error, graph_http_error
from .callers import (
    APP_TOKEN_PREFIX,
    GRAPH_AUDIENCES,
    SERVICE_HEALTH_READ,
    SERVICE_MESSAGE_READ,
    SERVICE_MESSAGE_VIEWPOINT_WRITE,
    USER_TOKEN_PREFIX,
    GraphCaller,
    GraphTokenValidator,
    graph_token,
)
from .convert import graph_status, health_from_legacy, issue_from_legacy, message_from_legacy
from .files import (
    Attachment,
    attachments_archive,
    attachments_for,
    has_incident_report,
    incident_report,
)
from .paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from .query import HEALTH_FIELDS, ISSUE_FIELDS, MESSAGE_FIELDS
from .routes import ANNOUNCEMENT_PREFIX, GRAPH_PREFIX, MAX_ACTION_IDS, GraphApi, is_graph_path
from .store import GraphDataset

__all__ = [
    "ANNOUNCEMENT_PREFIX",
    "APP_TOKEN_PREFIX",
    "DEFAULT_PAGE_SIZE",
    "GRAPH_AUDIENCES",
    "GRAPH_PREFIX",
    "HEALTH_FIELDS",
    "ISSUE_FIELDS",
    "MAX_ACTION_IDS",
    "MAX_PAGE_SIZE",
    "MESSAGE_FIELDS",
    "SERVICE_HEALTH_READ",
    "SERVICE_MESSAGE_READ",
    "SERVICE_MESSAGE_VIEWPOINT_WRITE",
    "USER_TOKEN_PREFIX",
    "Attachment",
    "GraphApi",
    "GraphCaller",
    "GraphDataset",
    "GraphTokenValidator",
    "attachments_archive",
    "attachments_for",
    "graph_error",
    "graph_http_error",
    "graph_status",
    "graph_token",
    "has_incident_report",
    "health_from_legacy",
    "incident_report",
    "is_graph_path",
    "issue_from_legacy",
    "message_from_legacy",
]
