"""OData query text: ``$filter`` clauses, ``$select`` lists and query-string encoding, escaped by construction.

A user string can never break out of its quotes or change the URL path; every value is checked by
:mod:`servicecomms_async._validate` first, so bad input fails before a request is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from enum import Enum
from urllib.parse import quote

from ._modeling import OpenStrEnum, wire_names
from ._validate import validate_bool, validate_enum, validate_text
from ._wire import format_datetime

_QUERY_SAFE = "$',:()/"


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
        try:
            return format_datetime(value)
        except OverflowError:
            # datetime(1, 1, 1, tzinfo=+05:00) is a year-0 instant in UTC, which datetime cannot hold.
            raise ValueError(
                f"{parameter} is out of range once moved to UTC ({value.isoformat()}); "
                "use a date from year 1 to 9999 in UTC"
            ) from None
    if isinstance(value, date):
        return format_datetime(datetime(value.year, value.month, value.day, tzinfo=timezone.utc))
    raise TypeError(f"{parameter} must be a datetime or a date, got {type(value).__name__}")


class Filter:
    """Collects ``$filter`` clauses over the API's own property names; they combine with ``and``.

    Each method skips its clause when the value is ``None``, so a client method passes its optional
    parameters straight through.
    """

    def __init__(self) -> None:
        self._clauses: list[str] = []

    def equals(self, field: str, value: str | Enum | None, *, parameter: str) -> Filter:
        """``field eq 'value'`` for a non-empty string (or a str enum's value)."""
        if value is not None:
            if isinstance(value, Enum):
                value = value.value
            self._clauses.append(f"{field} eq {quote_string(validate_text(value, parameter))}")
        return self

    def enum(
        self,
        field: str,
        value: str | OpenStrEnum | None,
        enum_cls: type[OpenStrEnum],
        *,
        parameter: str,
    ) -> Filter:
        """``field eq 'member'`` for a member of ``enum_cls`` or its wire string (unknown ones refused)."""
        if value is not None:
            member = validate_enum(value, enum_cls, parameter=parameter).value
            self._clauses.append(f"{field} eq {quote_string(member)}")
        return self

    def boolean(self, field: str, value: bool | None, *, parameter: str) -> Filter:
        """``field eq true`` or ``false``."""
        if value is not None:
            value = validate_bool(value, parameter)
            self._clauses.append(f"{field} eq {'true' if value else 'false'}")
        return self

    def compare(
        self, field: str, op: str, value: datetime | date | None, *, parameter: str
    ) -> Filter:
        """``field op <datetime>`` (``ge``, ``le``, ...)."""
        if value is not None:
            self._clauses.append(
                f"{field} {op} {format_datetime_literal(value, parameter=parameter)}"
            )
        return self

    def since(self, field: str, value: datetime | date | None, *, parameter: str) -> Filter:
        """``field ge <datetime>``."""
        return self.compare(field, "ge", value, parameter=parameter)

    def any_of(self, field: str, values: Iterable[str] | str | None, *, parameter: str) -> Filter:
        """``field/any(x:x eq 'a' or x eq 'b')``: the collection holds at least one of ``values``."""
        if values is None:
            return self
        if isinstance(values, str):
            values = [values]
        items = [validate_text(v, parameter) for v in values]
        if not items:
            raise ValueError(f"{parameter} must name at least one value")
        either = " or ".join(f"x eq {quote_string(v)}" for v in items)
        self._clauses.append(f"{field}/any(x:{either})")
        return self

    def raw(self, text: str | None) -> Filter:
        """The caller's own OData, parenthesised so that it cannot change the other clauses' meaning.

        Parenthesising holds only if the text cannot close the parenthesis itself: its parentheses
        must balance outside string literals (never closing one that is not open) and its string
        literals must close (``''`` is a quote inside one), else ``ValueError``. ``"x) or (true"``
        would otherwise turn ``service eq 'A' and (x) or (true)`` into "everything".
        """
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise ValueError("filter must be a non-empty OData expression")
            _check_raw_filter(text)
            self._clauses.append(f"({text})")
        return self

    def build(self) -> str | None:
        return " and ".join(self._clauses) if self._clauses else None


def _check_raw_filter(text: str) -> None:
    depth = 0
    in_string = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "'":
                if text[i + 1 : i + 2] == "'":  # '' is an escaped quote
                    i += 1
                else:
                    in_string = False
        elif ch == "'":
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(
                    f"filter closes a parenthesis it did not open at position {i} "
                    f"({text[:80]!r}); a raw filter must be one balanced OData expression"
                )
        i += 1
    if in_string:
        raise ValueError(
            f"filter has a string literal that does not close ({text[:80]!r}); write a quote "
            "inside a string as ''"
        )
    if depth:
        raise ValueError(
            f"filter leaves {depth} parenthesis(es) open ({text[:80]!r}); a raw filter must be one "
            "balanced OData expression"
        )


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


def encode_query(params: Mapping[str, str | int]) -> str:
    """Percent-encode OData query options, keeping ``$``, quotes and colons readable (spaces as %20)."""
    return "&".join(
        f"{quote(k, safe='$')}={quote(str(v), safe=_QUERY_SAFE)}" for k, v in params.items()
    )
