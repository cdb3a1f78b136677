"""Graph's query options: which are allowed where, ``$select``, ``$expand``, and the typed rows
``$filter`` is evaluated on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aiohttp import web

from ..data import Json
from ..errors import bad_request
from ..odata import FieldKind, parse_datetime_us, select_names

__all__ = [
    "HEALTH_FIELDS",
    "ISSUE_FIELDS",
    "MESSAGE_FIELDS",
    "QUERY_OPTIONS",
    "expand_option",
    "query_options",
    "select_option",
    "typed",
]

QUERY_OPTIONS = ("$filter", "$select", "$top", "$skiptoken", "$expand")

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
    "services": "collection",
    "tags": "collection",
}
HEALTH_FIELDS: Mapping[str, FieldKind] = {"id": "string", "service": "string", "status": "string"}


def typed(item: Json, fields: Mapping[str, FieldKind]) -> dict[str, object]:
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


def query_options(request: web.Request, *, allowed: Iterable[str]) -> dict[str, str]:
    """The request's query (last value wins); a ``$`` option not in ``allowed`` is a 400."""
    allowed = tuple(allowed)
    query: dict[str, str] = {}
    for name, value in request.query.items():
        if name.startswith("$") and name not in allowed:
            if name == "$skip":
                raise bad_request(
                    "$skip is not supported: follow @odata.nextLink, whose $skiptoken is opaque."
                )
            supported = ", ".join(allowed) or "none"
            raise bad_request(
                f"The query option {name[:40]!r} is not supported here. Supported: {supported}."
            )
        query[name] = value
    return query


def select_option(
    query: Mapping[str, str], keys: Sequence[str]
) -> tuple[frozenset[str] | None, list[str] | None]:
    """(selected keys or None for all, the names in request order for ``@odata.context``)."""
    text = query.get("$select")
    names = None if text is None else select_names(text, keys)
    if names is None:
        return None, None
    return frozenset(names), names


def expand_option(query: Mapping[str, str], allowed: Sequence[str]) -> set[str]:
    text = query.get("$expand")
    if text is None:
        return set()
    out: set[str] = set()
    for raw in text.split(","):
        name = raw.strip()
        match = next((a for a in allowed if a.lower() == name.lower()), None)
        if match is None:
            raise bad_request(
                f"Invalid $expand: {name[:64]!r} cannot be expanded here. "
                f"Expandable: {', '.join(allowed)}."
            )
        out.add(match)
    return out
