"""Parsing shared by the emulator's legacy routes, Graph routes, identity server and fault injection:
bearer tokens, tenant ids and unpadded base64url."""

from __future__ import annotations

import base64
import re

GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.I)
_TLD_RE = re.compile(r"[a-z][a-z0-9-]{0,62}(?<!-)", re.I)


def bearer_token(header: str | None) -> str | None:
    """The bearer token of an ``Authorization`` header, or None when it is missing, not Bearer, or empty."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def is_domain_name(name: str) -> bool:
    """A DNS domain name with at least two labels, the last one not numeric, 253 characters at most."""
    if len(name) > 253:
        return False
    labels = name.split(".")
    if len(labels) < 2:
        return False
    return all(_LABEL_RE.fullmatch(label) for label in labels[:-1]) and bool(
        _TLD_RE.fullmatch(labels[-1])
    )


def is_valid_tenant(tenant: str) -> bool:
    """True for a GUID or a DNS domain name with at least two labels."""
    return bool(GUID_RE.fullmatch(tenant)) or is_domain_name(tenant)


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as JWTs and the emulator's skiptokens use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url; ``ValueError`` when ``text`` is not base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
