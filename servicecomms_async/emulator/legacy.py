"""The legacy Office 365 Service Communications API's routes:
``GET /api/v1.0/{tenant}/ServiceComms/{Services|CurrentStatus|HistoricalStatus|Messages}``.

Contract (the data is :mod:`.data`'s; error bodies are :mod:`.errors`'):

* A bearer token is required (401 otherwise); ``token_validator``, when given, is awaited with
  ``(tenant as in the URL, token)`` before the tenant id is checked, and a response it returns is
  sent as is. A tenant id that is neither a GUID nor a domain name is 400 ``AF20013``.
* ``$filter`` (and, in the spec shape, the documented plain parameters such as ``?Workload=``),
  ``$select``; on Messages ``$top`` (at most 100) and ``$skip``, with ``@odata.nextLink`` when the
  config pages by next link. A bad query option is 400 ``AF20002`` naming it.
* ``Accept``'s ``odata.metadata`` level (``none`` by default) decides whether ``@odata.context``
  is sent.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from .cache import LRU
from .clock import ITEMS_KEY, REQUEST_TIME_KEY
from .data import OPERATIONS, Json, Operation, filter_fields, wire_keys
from .errors import odata_error
from .odata import ODataError, apply_select, parse_filter, parse_select
from .parsing import bearer_token, is_valid_tenant
from .world import DataStore

__all__ = ["API_PREFIX", "LegacyApi", "TokenValidator"]

TokenValidator = Callable[[str, str], Awaitable["web.StreamResponse | None"]]
"""``(tenant as in the URL, bearer token) -> None to accept, or a response to send``."""

API_PREFIX = "/api/v1.0"
_OPS_BY_LOWER = {op.lower(): op for op in OPERATIONS}
_UINT_RE = re.compile(r"[0-9]{1,9}")
_TEXT_FIELDS_RE = re.compile(r"title|impactdescription", re.I)
_BYTES_CACHE_LIMIT = 64 * 1024 * 1024


# The documented contract names the filters as plain query parameters (``?Workload=Exchange``), while
# real clients sent ``$filter=Workload eq 'Exchange'``. The spec shape honours both; the real shape only
# ``$filter``. Each parameter becomes the comparison the documentation describes.
_SPEC_PARAMETERS: dict[Operation, tuple[tuple[str, str, bool], ...]] = {
    "Services": (),
    "CurrentStatus": (("Workload", "eq", True),),
    "HistoricalStatus": (("Workload", "eq", True), ("StatusTime", "ge", False)),
    "Messages": (
        ("Workload", "eq", True),
        ("StartTime", "ge", False),
        ("EndTime", "le", False),
        ("MessageType", "eq", True),
        ("Id", "eq", True),
    ),
}


def _spec_parameter_filter(op: Operation, query: Any) -> str | None:
    clauses = []
    for name, operator, quoted in _SPEC_PARAMETERS[op]:
        value = query.get(name)
        if value is None:
            continue
        literal = "'" + value.replace("'", "''") + "'" if quoted else value
        clauses.append(f"{name} {operator} {literal}")
    return " and ".join(clauses) or None


def _and(first: str | None, second: str | None) -> str | None:
    if first is None or second is None:
        return first if second is None else second
    return f"({first}) and ({second})"


def _metadata_level(accept: str | None) -> str:
    """The odata.metadata level asked for; absent means ``none`` (documented default)."""
    if not accept:
        return "none"
    m = re.search(r"odata\.metadata\s*=\s*(minimal|full|none)", accept, re.I)
    if m:
        return m.group(1).lower()
    # OData v3 spelling, e.g. odata=minimalmetadata / odata=nometadata.
    m = re.search(r"odata\s*=\s*(minimal|full|no)metadata", accept, re.I)
    if m:
        level = m.group(1).lower()
        return "none" if level == "no" else level
    return "none"


def _uint_param(query: Any, name: str, default: int, maximum: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if not _UINT_RE.fullmatch(raw) or (maximum is not None and int(raw) > maximum):
        bound = f"between 0 and {maximum}" if maximum is not None else "0 or greater"
        raise ODataError(
            f"Invalid value {raw[:32]!r} for query option {name}: expected an integer {bound}."
        )
    return int(raw)


class LegacyApi:
    """The legacy routes over an emulator's data.

    ``base_url`` is called for the public ``http://127.0.0.1:PORT/api/v1.0`` when a response
    needs an absolute URL (``@odata.context``).
    """

    def __init__(
        self,
        store: DataStore,
        base_url: Callable[[], str],
        token_validator: TokenValidator | None = None,
    ) -> None:
        self.config = store.config
        self._store = store
        self._base_url = base_url
        self._token_validator = token_validator
        self._bytes: LRU[tuple[str, str, bool], tuple[bytes, int]] = LRU(
            100_000, _BYTES_CACHE_LIMIT, weigh=lambda hit: len(hit[0])
        )

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("GET", API_PREFIX + "/{tenant}/ServiceComms/{operation}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        op = _OPS_BY_LOWER.get(request.match_info["operation"].lower())
        if op is None:
            return odata_error(404, "NotFound", "No resource matches the request URI.")
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return odata_error(
                401,
                "Unauthorized",
                "Missing or malformed bearer token.",
                **{"WWW-Authenticate": "Bearer"},
            )
        tenant = request.match_info["tenant"]
        if self._token_validator is not None:
            rejected = await self._token_validator(tenant, token)
            if rejected is not None:
                return rejected
        if not is_valid_tenant(tenant):
            return odata_error(
                400,
                "AF20013",
                f"The tenant ID passed in the URL ({tenant[:100]}) is not a valid GUID or "
                "domain name.",
            )
        level = _metadata_level(request.headers.get("Accept"))
        try:
            body, count = self._body(op, tenant, request, level)
        except ODataError as exc:
            return odata_error(400, "AF20002", str(exc))
        request[ITEMS_KEY] = count
        return web.Response(
            body=body,
            headers={"Content-Type": f"application/json; odata.metadata={level}; charset=utf-8"},
        )

    def _body(
        self, op: Operation, tenant: str, request: web.Request, level: str
    ) -> tuple[bytes, int]:
        """The response body and how many items it holds."""
        query = request.query
        t: int | None = request.get(REQUEST_TIME_KEY)
        context = (
            f"{self._base_url()}/{tenant}/$metadata#{op}" if level in ("minimal", "full") else None
        )
        shape = self.config.shape
        filter_text = query.get("$filter")
        if shape == "spec":
            filter_text = _and(_spec_parameter_filter(op, query), filter_text)
        select_text = query.get("$select")
        fields, aliases = filter_fields(op, shape)
        predicate = parse_filter(filter_text, fields, aliases) if filter_text is not None else None
        selected = (
            parse_select(select_text, wire_keys(op, shape)) if select_text is not None else None
        )

        doc: dict[str, Any] = {}
        if context is not None:
            doc["@odata.context"] = context
        if op == "Messages":
            top = _uint_param(query, "$top", 100, 100)
            skip = _uint_param(query, "$skip", 0, None)
            if predicate is not None and filter_text is not None:
                indices = self._store.filtered_indices(
                    tenant,
                    filter_text,
                    predicate,
                    needs_text=bool(_TEXT_FIELDS_RE.search(filter_text)),
                    t=t,
                )
                total = len(indices)
                page: Sequence[int] = indices[skip : skip + top]
            else:
                total = self._store.message_count(tenant, t)
                page = range(min(skip, total), min(skip + top, total))
            items = self._store.messages(tenant, page, t)
            if self.config.paging == "nextlink" and top > 0 and skip + top < total:
                doc["@odata.nextLink"] = str(request.url.update_query({"$skip": str(skip + top)}))
            doc["value"] = items if selected is None else [apply_select(i, selected) for i in items]
            return orjson.dumps(doc), len(items)

        # Status rows change with the timeline: the cached bytes are the static world's only.
        moving = t is not None and op != "Services" and self._store.timeline is not None
        cache_key = (op, tenant, context is not None)
        cacheable = predicate is None and selected is None and not moving
        if cacheable:
            hit = self._bytes.get(cache_key)
            if hit is not None:
                return hit
        rows: list[Json] = self._store.status_list(op, tenant, t)
        if predicate is not None:
            typed = self._store.typed_status_rows(op, tenant, t)
            rows = [r for r, row in zip(rows, typed, strict=True) if predicate(row)]
        doc["value"] = rows if selected is None else [apply_select(r, selected) for r in rows]
        result = orjson.dumps(doc), len(rows)
        if cacheable:
            self._bytes.put(cache_key, result)
        return result
