"""One copy of each argument check: tenant ids, text, enums, numbers, seconds, base URLs, path segments.

Every check runs before a request is sent and raises ``TypeError`` (wrong kind of value) or
``ValueError`` (right kind, wrong value) naming the parameter and what is allowed. The clients, the
session, the option objects and the command line's argparse types all call these; none has its own copy.
"""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
from typing import TypeVar

from yarl import URL

from ._modeling import OpenStrEnum

_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE | re.ASCII)
_GUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII
)

E = TypeVar("E", bound=OpenStrEnum)


def validate_tenant_id(tenant: object) -> str:
    """Return the tenant id if it is a GUID or a DNS domain name, else raise ``ValueError``.

    GUIDs come back in canonical form and domains in lower case. Only ASCII letters, digits, hyphens
    and dots can pass, so a tenant id can never add a path segment, a query or a fragment to the URL
    (``../x``, ``a/b``, ``a?b``, ``%2e%2e`` all fail).
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


def validate_text(value: object, parameter: str) -> str:
    """A user string for a filter or an id: non-empty, no surrounding spaces, no control characters."""
    if not isinstance(value, str):
        raise TypeError(f"{parameter} must be a str, got {type(value).__name__}")
    if not value or value != value.strip():
        raise ValueError(f"{parameter} must be a non-empty string without surrounding spaces")
    if any(ord(ch) < 32 for ch in value):
        raise ValueError(f"{parameter} must not contain control characters")
    return value


def validate_segment(value: object, parameter: str) -> str:
    """An id used as one URL path segment: it can never add a segment, a query or a fragment."""
    text = validate_text(value, parameter)
    if text in (".", "..") or any(ch in text for ch in "/\\?#%"):
        raise ValueError(f"{parameter} must be an id such as 'EX123456', got {text[:80]!r}")
    return text


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


def validate_bool(value: object, parameter: str) -> bool:
    """``True`` or ``False`` (not 1, not "yes")."""
    if not isinstance(value, bool):
        raise TypeError(f"{parameter} must be True or False, got {type(value).__name__}")
    return value


def validate_int(
    value: object, parameter: str, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """An int (not a bool) from ``minimum`` to ``maximum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{parameter} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise ValueError(f"{parameter} must be an int {bound}, got {value}")
    return value


def validate_page_size(page_size: object, *, maximum: int) -> int:
    """A page size: an int from 1 to the API's ``maximum`` (100 for the legacy ``$top``, 1000 on Graph)."""
    if not isinstance(page_size, int) or isinstance(page_size, bool):
        raise TypeError(f"page_size must be an int, got {type(page_size).__name__}")
    if not 1 <= page_size <= maximum:
        raise ValueError(
            f"page_size must be from 1 to {maximum} (the service's maximum), got {page_size}"
        )
    return page_size


def validate_max_items(max_items: object) -> int | None:
    """``None`` (no limit) or an int of 0 or more."""
    if max_items is None:
        return None
    if not isinstance(max_items, int) or isinstance(max_items, bool):
        raise TypeError(f"max_items must be an int or None, got {type(max_items).__name__}")
    if max_items < 0:
        raise ValueError(f"max_items must be 0 or more, got {max_items}")
    return max_items


def validate_seconds(
    value: object, parameter: str, *, allow_zero: bool = False, allow_none: bool = False
) -> float | None:
    """A number of seconds above 0 (or 0 with ``allow_zero``; ``None`` with ``allow_none``); never NaN."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a number of seconds" + (" or None" if allow_none else "")
        raise TypeError(f"{parameter} must be {what}, got {type(value).__name__}")
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "greater than 0"
        raise ValueError(f"{parameter} must be {bound} seconds, got {value!r}")
    return float(value)


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback address: the only hosts plain http is allowed for (the emulator)."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_base_url(base_url: object, parameter: str = "base_url") -> URL:
    """An absolute http(s) URL without query, fragment or user info; plain HTTP only for loopback
    hosts."""
    if not isinstance(base_url, (str, URL)):
        raise TypeError(f"{parameter} must be a str or a yarl.URL, got {type(base_url).__name__}")
    url = URL(str(base_url))
    if url.raw_user is not None or url.raw_password is not None:
        # Never echo the URL: its user info may be a password.
        raise ValueError(
            f"{parameter} must not hold user info (user:password@); the API authenticates with a "
            f"bearer token, got {str(url.with_user(None))!r}"
        )
    if url.scheme not in ("https", "http") or not url.host:
        raise ValueError(f"{parameter} must be an absolute https:// URL, got {str(base_url)!r}")
    if url.scheme == "http" and not is_loopback_host(url.host):
        raise ValueError(
            f"{parameter} must use https:// (plain http is allowed only for loopback hosts such as "
            f"the embedded emulator), got {str(base_url)!r}"
        )
    if url.query_string or url.fragment:
        raise ValueError(f"{parameter} must not have a query or fragment, got {str(base_url)!r}")
    return url.with_path(url.path.rstrip("/") or "/")
