"""OData query building and argument validation: ``$filter``, ``$select``, ``$top``, tenant ids.

Everything here runs before a request is sent, so bad input fails with a ``ValueError`` or ``TypeError``
naming the parameter, and a user string can never break out of its quotes or change the URL path.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timezone
from enum import Enum
from typing import TypeVar

from .convert import format_datetime
from .models import OpenStrEnum, wire_names

MAX_PAGE_SIZE = 100  # the service's documented maximum for $top

_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE | re.ASCII)
_GUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII
)


def validate_tenant_id(tenant: object) -> str:
    """Return the tenant id if it is a GUID or a DNS domain name, else raise ``ValueError``.

    Only ASCII letters, digits, hyphens and dots can pass, so a tenant id can never add a path
    segment, a query or a fragment to the URL (``../x``, ``a/b``, ``a?b``, ``%2e%2e`` all fail).
    """
    if not isinstance(tenant, str):
        raise TypeError(
            f"tenant must be a str (a GUID or a domain name), got {type(tenant).__name__}"
        )
    if _GUID.fullmatch(tenant):
        return str(uuid.UUID(tenant))
    labels = tenant.rstrip(".").split(".") if tenant else []
    if (
        len(tenant) <= 253
        and len(labels) >= 2
        and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    ):
        return tenant.rstrip(".").lower()
    raise ValueError(
        f"tenant must be a tenant GUID or a DNS domain name such as contoso.onmicrosoft.com, "
        f"got {tenant[:80]!r}"
    )


def quote_string(value: str) -> str:
    """An OData string literal: single quotes, with embedded quotes doubled (``O'Brien`` -> ``'O''Brien'``)."""
    return "'" + value.replace("'", "''") + "'"


def format_datetime_literal(value: datetime | date, *, parameter: str) -> str:
    """An OData DateTimeOffset literal in UTC; naive datetimes are refused as ambiguous."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{parameter} must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc)); "
                "a naive datetime is ambiguous"
            )
        return format_datetime(value)
    if isinstance(value, date):
        return format_datetime(datetime(value.year, value.month, value.day, tzinfo=timezone.utc))
    raise TypeError(f"{parameter} must be a datetime or a date, got {type(value).__name__}")


class FilterBuilder:
    """Collects ``$filter`` clauses; they combine with ``and``."""

    def __init__(self) -> None:
        self._clauses: list[str] = []

    def equals(self, field: str, value: str | Enum | None, *, parameter: str) -> FilterBuilder:
        """``field eq 'value'`` for a non-empty string (or a str enum); skipped when ``value`` is None."""
        if value is None:
            return self
        if isinstance(value, Enum):
            value = value.value
        self._clauses.append(f"{field} eq {quote_string(validate_text(value, parameter))}")
        return self

    def compare(
        self, field: str, op: str, value: datetime | date | None, *, parameter: str
    ) -> FilterBuilder:
        """``field op <datetime>``; skipped when ``value`` is None."""
        if value is not None:
            self._clauses.append(
                f"{field} {op} {format_datetime_literal(value, parameter=parameter)}"
            )
        return self

    def build(self) -> str | None:
        return " and ".join(self._clauses) if self._clauses else None


def build_select(select: Iterable[str] | str | None, model: type) -> str | None:
    """``$select`` from wire names or snake_case field names, checked against ``model``."""
    if select is None:
        return None
    if isinstance(select, str):
        select = [part.strip() for part in select.split(",")]
    names = wire_names(model)
    by_field = {field: aliases[0] for field, aliases in names.items()}
    by_wire = {alias: aliases[0] for aliases in names.values() for alias in aliases}
    chosen: list[str] = []
    for name in select:
        if not isinstance(name, str):
            raise TypeError(f"select entries must be str, got {type(name).__name__}")
        wire = by_field.get(name) or by_wire.get(name)
        if wire is None:
            allowed = ", ".join(sorted(by_field))
            raise ValueError(
                f"select: {name!r} is not a field of {model.__name__}; choose from: {allowed}"
            )
        if wire not in chosen:
            chosen.append(wire)
    if not chosen:
        raise ValueError("select must name at least one field")
    return ",".join(chosen)


def validate_text(value: object, parameter: str) -> str:
    """A user string for a filter or an id: non-empty, no surrounding spaces, no control characters."""
    if not isinstance(value, str):
        raise TypeError(f"{parameter} must be a str, got {type(value).__name__}")
    if not value or value != value.strip():
        raise ValueError(f"{parameter} must be a non-empty string without surrounding spaces")
    if any(ord(ch) < 32 for ch in value):
        raise ValueError(f"{parameter} must not contain control characters")
    return value


E = TypeVar("E", bound=OpenStrEnum)


def validate_enum(value: object, enum_cls: type[E], *, parameter: str) -> E:
    """A member of ``enum_cls`` from the member or its wire string; an unknown string is refused."""
    if isinstance(value, enum_cls):
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"{parameter} must be a {enum_cls.__name__} or str, got {type(value).__name__}"
        )
    member = enum_cls(value)
    if not member.is_known:
        allowed = ", ".join(str(m.value) for m in enum_cls)
        raise ValueError(f"{parameter} must be one of {allowed}, got {value!r}")
    return member


def validate_page_size(page_size: object, *, maximum: int = MAX_PAGE_SIZE) -> int:
    """A page size: an int from 1 to the service's ``maximum`` (100 for the legacy ``$top``)."""
    if not isinstance(page_size, int) or isinstance(page_size, bool):
        raise TypeError(f"page_size must be an int, got {type(page_size).__name__}")
    if not 1 <= page_size <= maximum:
        raise ValueError(
            f"page_size must be from 1 to {maximum} (the service's maximum), got {page_size}"
        )
    return page_size


def validate_max_items(max_items: object) -> int | None:
    if max_items is None:
        return None
    if not isinstance(max_items, int) or isinstance(max_items, bool):
        raise TypeError(f"max_items must be an int or None, got {type(max_items).__name__}")
    if max_items < 0:
        raise ValueError(f"max_items must be 0 or more, got {max_items}")
    return max_items
