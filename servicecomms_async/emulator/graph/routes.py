"""The Graph routes: :class:`GraphApi` adds them to the emulator's router (see the package
docstring for the contract)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence

import orjson
from aiohttp import web
from yarl import URL

from ..clock import ITEMS_KEY, REQUEST_TIME_KEY, THROTTLE_KEY
from ..data import Json
from ..errors import (
    GraphError,
    bad_request,
    client_request_id,
    graph_error,
    graph_throttled,
    not_found,
)
from ..limits import GraphLimiter
from ..odata import ODataError, apply_select, parse_filter
from ..world import DataStore
from .callers import (
    SERVICE_HEALTH_READ,
    SERVICE_MESSAGE_READ,
    SERVICE_MESSAGE_VIEWPOINT_WRITE,
    Answered,
    GraphCaller,
    GraphTokenValidator,
    identify,
)
from .convert import ISSUE_KEYS, MESSAGE_KEYS
from .files import (
    Attachment,
    attachments_archive,
    attachments_for,
    has_incident_report,
    incident_report,
)
from .paging import Pager
from .query import HEALTH_FIELDS, QUERY_OPTIONS, expand_option, query_options, select_option
from .store import Entry, GraphDataset, GraphStore

__all__ = ["ANNOUNCEMENT_PREFIX", "GRAPH_PREFIX", "MAX_ACTION_IDS", "GraphApi", "is_graph_path"]

GRAPH_PREFIX = "/v1.0"
ANNOUNCEMENT_PREFIX = GRAPH_PREFIX + "/admin/serviceAnnouncement"
MAX_ACTION_IDS = 100

_JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
_BYTES_TYPE = "application/octet-stream"


def is_graph_path(path: str) -> bool:
    """Whether ``path`` is one of the Graph routes' (``/v1.0/...``)."""
    return path == GRAPH_PREFIX or path.startswith(GRAPH_PREFIX + "/")


_ACTIONS: Mapping[str, tuple[int, bool]] = {
    "markRead": (0, True),
    "markUnread": (0, False),
    "archive": (1, True),
    "unarchive": (1, False),
    "favorite": (2, True),
    "unfavorite": (2, False),
}

Handler = Callable[[web.Request, GraphCaller], Awaitable[web.StreamResponse]]


class GraphApi:
    """The Graph routes over an emulator's data.

    ``base_url`` is called for the public ``http://127.0.0.1:PORT/v1.0`` when a response needs an
    absolute URL (``@odata.context``, ``@odata.nextLink``). With a ``limiter`` every request whose
    caller is known is counted against Graph's limits first, and one past them is answered 429
    (:mod:`..limits`); the request then carries ``(tenant, Throttle)`` under ``THROTTLE_KEY``.
    """

    def __init__(
        self,
        store: DataStore,
        base_url: Callable[[], str],
        validator: GraphTokenValidator | None = None,
        limiter: GraphLimiter | None = None,
    ) -> None:
        self._items = GraphStore(store)
        self._pager = Pager(store.config)
        self._base_url = base_url
        self._validator = validator
        self._limiter = limiter

    def dataset(self, tenant: str, t: int | None = None) -> GraphDataset:
        """Deep copies of what the Graph routes serve for ``tenant`` (application view) at the
        world's time ``t`` (None: the static world)."""
        return self._items.dataset(tenant, t)

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
                caller = await identify(request, permission, self._validator)
                if self._limiter is not None:
                    throttle = self._limiter.admit(caller.app, caller.tenant)
                    if throttle is not None:
                        request[THROTTLE_KEY] = (caller.tenant, throttle)
                        refused = graph_throttled(request)
                        refused.headers["Retry-After"] = str(throttle.retry_after)
                        return refused
                response = await handler(request, caller)
            except Answered as answered:
                response = answered.response
            except GraphError as error:
                return error.response(request)
            except ODataError as error:
                return graph_error(400, "BadRequest", str(error), request=request)
            if "request-id" not in response.headers:
                response.headers["request-id"] = str(uuid.uuid4())
            if "client-request-id" not in response.headers:
                response.headers["client-request-id"] = client_request_id(request)
            return response

        return route

    # -- handlers: health --

    async def _health_overviews(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = query_options(request, allowed=("$filter", "$select", "$expand"))
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        expand = expand_option(query, ("issues",))
        selected, names = select_option(query, list(HEALTH_FIELDS))
        rows: Sequence[int] = range(len(data.health))
        filter_text = query.get("$filter")
        if filter_text is not None:
            predicate = parse_filter(filter_text, HEALTH_FIELDS)
            rows = [n for n in rows if predicate(data.health_rows[n])]
        issues = self._items.all_entries(data, data.issues) if "issues" in expand else None
        items = [self._health_item(data.health[n], selected, issues) for n in rows]
        request[ITEMS_KEY] = len(items)
        context = self._context("healthOverviews", names, expand)
        return _json({"@odata.context": context, "value": items})

    async def _health_overview(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = query_options(request, allowed=("$select", "$expand"))
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        wanted = request.match_info["service"].lower()
        found = next(
            (h for h in data.health if wanted in (h["id"].lower(), h["service"].lower())), None
        )
        if found is None:
            raise not_found(
                f"No service named {request.match_info['service'][:64]!r} was found for this "
                "tenant; use a service id such as 'Exchange' or its name such as "
                "'Exchange Online'."
            )
        expand = expand_option(query, ("issues",))
        selected, names = select_option(query, list(HEALTH_FIELDS))
        issues = self._items.all_entries(data, data.issues) if "issues" in expand else None
        item = self._health_item(found, selected, issues)
        request[ITEMS_KEY] = 1
        context = self._context("healthOverviews", names, expand) + "/$entity"
        return _json({"@odata.context": context, **item})

    @staticmethod
    def _health_item(
        item: Json, selected: frozenset[str] | None, issues: list[Entry] | None
    ) -> Json:
        out = dict(item) if selected is None else apply_select(item, selected)
        if issues is not None:
            out["issues"] = [e.item for e in issues if e.item["service"] == item["service"]]
        return out

    # -- handlers: issues --

    async def _issues(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = query_options(request, allowed=("$filter", "$select", "$top", "$skiptoken"))
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        selected, names = select_option(query, list(ISSUE_KEYS))
        filter_text = query.get("$filter")
        positions = self._items.matching(data, data.issues, filter_text)
        page, doc, headers = self._page_of(request, query, "issues", positions, filter_text)
        items = [e.item for e in self._items.entries(data, data.issues, page)]
        doc["@odata.context"] = self._context("issues", names, set())
        doc["value"] = items if selected is None else [apply_select(i, selected) for i in items]
        request[ITEMS_KEY] = len(items)
        return _json(_context_first(doc), headers)

    async def _issue(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = query_options(request, allowed=("$select",))
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        issue = self._items.one(data, data.issues, request.match_info["id"]).item
        selected, names = select_option(query, list(ISSUE_KEYS))
        item = issue if selected is None else apply_select(issue, selected)
        request[ITEMS_KEY] = 1
        context = self._context("issues", names, set()) + "/$entity"
        return _json({"@odata.context": context, **item})

    async def _incident_report(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query_options(request, allowed=())
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        issue = self._items.one(data, data.issues, request.match_info["id"]).item
        if not has_incident_report(issue):
            raise not_found(
                f"No incident report is available for issue {issue['id']}: reports are published "
                "for post-incident reviews and resolved incidents only."
            )
        return web.Response(body=incident_report(issue), headers={"Content-Type": _BYTES_TYPE})

    # -- handlers: messages --

    async def _messages(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = query_options(request, allowed=QUERY_OPTIONS)
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        expand = expand_option(query, ("attachments",))
        selected, names = select_option(query, list(MESSAGE_KEYS))
        filter_text = query.get("$filter")
        positions = self._items.matching(data, data.messages, filter_text)
        page, doc, headers = self._page_of(request, query, "messages", positions, filter_text)
        doc["@odata.context"] = self._context("messages", names, expand)
        doc["value"] = [
            self._message_item(caller, e, selected, expand)
            for e in self._items.entries(data, data.messages, page)
        ]
        request[ITEMS_KEY] = len(doc["value"])
        return _json(_context_first(doc), headers)

    async def _message(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query = query_options(request, allowed=("$select", "$expand"))
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        entry = self._items.one(data, data.messages, request.match_info["id"])
        expand = expand_option(query, ("attachments",))
        selected, names = select_option(query, list(MESSAGE_KEYS))
        item = self._message_item(caller, entry, selected, expand)
        request[ITEMS_KEY] = 1
        context = self._context("messages", names, expand) + "/$entity"
        return _json({"@odata.context": context, **item})

    def _message_item(
        self,
        caller: GraphCaller,
        entry: Entry,
        selected: frozenset[str] | None,
        expand: set[str],
    ) -> Json:
        viewed = self._items.viewed(caller, entry)
        out = dict(viewed) if selected is None else apply_select(viewed, selected)
        if "attachments" in expand:
            out["attachments"] = [a.resource for a in attachments_for(entry.item)]
        return out

    def _message_of(self, caller: GraphCaller, request: web.Request) -> Json:
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        return self._items.one(data, data.messages, request.match_info["id"]).item

    async def _attachments(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query_options(request, allowed=())
        message = self._message_of(caller, request)
        context = self._attachments_context(str(message["id"]))
        resources = [a.resource for a in attachments_for(message)]
        return _json({"@odata.context": context, "value": resources})

    def _attachments_context(self, message_id: str) -> str:
        return (
            f"{self._base_url()}/$metadata#admin/serviceAnnouncement/messages"
            f"('{message_id}')/attachments"
        )

    def _attachment_of(self, caller: GraphCaller, request: web.Request) -> Attachment:
        message = self._message_of(caller, request)
        wanted = request.match_info["aid"].lower()
        for attachment in attachments_for(message):
            if attachment.id == wanted:
                return attachment
        raise not_found(
            f"Message {message['id']} has no attachment with id {request.match_info['aid'][:64]!r}."
        )

    async def _attachment(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query_options(request, allowed=())
        attachment = self._attachment_of(caller, request)
        context = self._attachments_context(request.match_info["id"]) + "/$entity"
        return _json({"@odata.context": context, **attachment.resource})

    async def _attachment_content(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query_options(request, allowed=())
        attachment = self._attachment_of(caller, request)
        return web.Response(body=attachment.content, headers={"Content-Type": _BYTES_TYPE})

    async def _attachments_archive(self, request: web.Request, caller: GraphCaller) -> web.Response:
        query_options(request, allowed=())
        message = self._message_of(caller, request)
        attachments = attachments_for(message)
        if not attachments:
            raise not_found(f"Message {message['id']} has no attachments.")
        body = attachments_archive(attachments, str(message["lastModifiedDateTime"]))
        return web.Response(body=body, headers={"Content-Type": _BYTES_TYPE})

    async def _action(self, request: web.Request, caller: GraphCaller) -> web.Response:
        action = request.match_info["action"]
        if not caller.delegated:
            raise GraphError(
                403,
                "Forbidden",
                f"The {action} action requires delegated permissions "
                f"({SERVICE_MESSAGE_VIEWPOINT_WRITE}): it changes a signed-in user's view of "
                "messages, which an application token does not have.",
            )
        ids = _message_ids(await request.read())
        data = self._items.data_at(caller.tenant, request.get(REQUEST_TIME_KEY))
        positions = [data.messages.position(i) for i in ids]
        unknown = [i for i, p in zip(ids, positions, strict=True) if p is None]
        if unknown:
            shown = ", ".join(repr(i[:64]) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise bad_request(
                f"messageIds lists ids that are not messages of this tenant: {shown}{more}. "
                "Nothing was changed."
            )
        field, value = _ACTIONS[action]
        known = [p for p in positions if p is not None]
        self._items.set_viewpoints(caller, data, known, field, value)
        return _json({"@odata.context": f"{self._base_url()}/$metadata#Edm.Boolean", "value": True})

    # -- documents --

    def _page_of(
        self,
        request: web.Request,
        query: Mapping[str, str],
        collection: str,
        positions: Sequence[int],
        filter_text: str | None,
    ) -> tuple[Sequence[int], Json, dict[str, str]]:
        url = URL(self._base_url() + request.path.removeprefix(GRAPH_PREFIX))
        return self._pager.page(request, query, collection, positions, filter_text, url=url)

    def _context(self, collection: str, selected_names: list[str] | None, expand: set[str]) -> str:
        parts = list(selected_names or [])
        parts += [f"{name}()" for name in sorted(expand)]
        suffix = f"({','.join(parts)})" if parts else ""
        return f"{self._base_url()}/$metadata#admin/serviceAnnouncement/{collection}{suffix}"


def _json(doc: Json, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc), headers={"Content-Type": _JSON_TYPE, **(headers or {})}
    )


def _context_first(doc: Json) -> Json:
    """``@odata.context``, ``@odata.nextLink``, then ``value``: the order Graph writes them in."""
    order = ("@odata.context", "@odata.nextLink", "value")
    return {key: doc[key] for key in order if key in doc}


def _message_ids(body: bytes) -> list[str]:
    """The ``messageIds`` of an action's JSON body; a 400 naming what is wrong otherwise."""
    expected = 'The body must be JSON like {"messageIds": ["MC123456"]}'
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise bad_request(f"{expected}; it is not valid JSON.") from None
    if not isinstance(doc, dict) or "messageIds" not in doc:
        raise bad_request(f"{expected}; messageIds is missing.")
    ids = doc["messageIds"]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise bad_request(f"{expected}; messageIds must be a list of non-empty strings.")
    if not 1 <= len(ids) <= MAX_ACTION_IDS:
        raise bad_request(
            f"messageIds must list 1 to {MAX_ACTION_IDS} ids, got {len(ids)}; split larger batches."
        )
    return ids
