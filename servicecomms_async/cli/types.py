"""argparse ``type=`` functions: each converts the text and hands the value to the library's own
check, turning its ``ValueError``/``TypeError`` into an argparse error. None is a second copy of a
check the library makes."""

from __future__ import annotations

import argparse
import math
import re
import string
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from .._constants import GRAPH_MAX_PAGE_SIZE
from .._modeling import OpenStrEnum
from .._odata import format_datetime_literal
from .._validate import (
    validate_base_url,
    validate_enum,
    validate_int,
    validate_max_items,
    validate_page_size,
    validate_seconds,
    validate_segment,
    validate_tenant_id,
    validate_text,
)
from .._wire import InvalidValue, parse_datetime

T = TypeVar("T")
U = TypeVar("U")

# "page_size must be ...", "RetryPolicy.attempts must ...", "--service must ...": argparse already
# names the flag, so the library's own name for the parameter goes. A plain word ("tenant must be a
# tenant GUID ...") reads as English and stays.
_PARAMETER = re.compile(r"^(?:--[\w-]+|\w+[._][\w.]*) (?=must )")


def _reworded(error: Exception) -> str:
    return _PARAMETER.sub("", str(error), count=1)


def checked(
    convert: Callable[[str], T], check: Callable[[T], U], *, expected: str
) -> Callable[[str], U]:
    """An argparse type: ``convert`` the text (failing with "expected ..."), then the library's
    ``check``, whose return value (it may normalise) is the option's value."""

    def parse(text: str) -> U:
        try:
            value = convert(text)
        except (ValueError, TypeError, InvalidValue):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        try:
            return check(value)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(_reworded(exc)) from None

    parse.__name__ = expected  # argparse names the type in some messages
    return parse


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def _when(text: str) -> datetime:
    return parse_datetime(text.strip())


def tenant_id() -> Callable[[str], str]:
    return checked(str, validate_tenant_id, expected="a tenant GUID or domain name")


def when(flag: str) -> Callable[[str], datetime]:
    """An ISO 8601 date or date-time; without an offset it is taken as UTC."""

    def check(value: datetime) -> datetime:
        format_datetime_literal(value, parameter=flag)
        return value

    return checked(
        _when, check, expected="an ISO 8601 date or date-time such as 2024-05-01 or "
        "2024-05-01T08:00:00Z",
    )  # fmt: skip


def text(flag: str) -> Callable[[str], str]:
    """A filter value or an id: non-empty, no surrounding spaces, no control characters."""
    return checked(str, lambda value: validate_text(value, flag), expected="text")


def enum(enum_cls: type[OpenStrEnum], flag: str) -> Callable[[str], OpenStrEnum]:
    """One of an enum's wire values (Graph's are matched ignoring case, by the enum itself)."""
    return checked(
        str.strip,
        lambda value: validate_enum(value, enum_cls, parameter=flag),
        expected=f"a {enum_cls.__name__}",
    )


def graph_page_size() -> Callable[[str], int]:
    return checked(
        int,
        lambda n: validate_page_size(n, maximum=GRAPH_MAX_PAGE_SIZE),
        expected=f"a whole number from 1 to {GRAPH_MAX_PAGE_SIZE}",
    )


def max_items() -> Callable[[str], int | None]:
    return checked(int, validate_max_items, expected="a whole number")


def count(flag: str) -> Callable[[str], int]:
    """A whole number of 1 or more (``--attempts``, ``--concurrency``)."""
    return checked(int, lambda n: validate_int(n, flag), expected="a whole number")


def seconds(flag: str) -> Callable[[str], float]:
    """Seconds above 0 (a request's timeout, a scan's tenant timeout)."""

    def check(value: float) -> float:
        checked_value = validate_seconds(value, flag)
        assert checked_value is not None
        return checked_value

    return checked(_finite, check, expected="a number of seconds")


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def _duration(text: str) -> float:
    """``300``, ``90s``, ``5m``, ``1h30m``: seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not text.strip() or not any(match.groups()):
        raise ValueError(text)
    hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def duration(flag: str) -> Callable[[str], float]:
    """A time span above 0: seconds, or with units (``90s``, ``5m``, ``1h30m``)."""

    def check(value: float) -> float:
        checked_value = validate_seconds(value, flag)
        assert checked_value is not None
        return checked_value

    return checked(_duration, check, expected="a duration such as 300, 90s, 5m or 1h")


def windows(flag: str) -> Callable[[str], tuple[tuple[int, float], ...]]:
    """Request-budget windows: ``240/60,800/3600``."""
    from ..budget import parse_windows

    return checked(str, parse_windows, expected="windows such as 240/60,800/3600")


def segment(flag: str) -> Callable[[str], str]:
    """An id that goes into a URL path as one segment (an issue id such as EX123456)."""
    return checked(str, lambda value: validate_segment(value, flag), expected="an id")


def whole_number() -> Callable[[str], int]:
    """An int whose range the option's own object checks later (e.g. the demo's ``EmulatorConfig``)."""
    return checked(int, lambda n: n, expected="a whole number")


def base_url() -> Callable[[str], str]:
    def check(value: str) -> str:
        validate_base_url(value)
        return value

    return checked(str, check, expected="a URL")


def token_template(value: str) -> str:
    """A per-tenant token pattern with ``{tenant}``. Errors never quote it: it may hold a secret."""
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(value)
            if name is not None
        ]
    except ValueError:
        raise argparse.ArgumentTypeError(
            "is not a valid template: write {tenant} where the tenant id goes, and {{ or }} for a "
            "literal brace"
        ) from None
    if not fields or any(f != ("tenant", "", None) for f in fields):
        raise argparse.ArgumentTypeError(
            "must contain {tenant} and no other {...} field, e.g. emulator-app.{tenant}"
        )
    return value


def odata(value: str) -> str:
    """A raw ``$filter`` expression (the library parenthesises it); only emptiness is refused."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected an OData expression, got an empty one")
    return value
