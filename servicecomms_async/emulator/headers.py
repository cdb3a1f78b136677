"""Request header parsing shared by the emulator's legacy and Graph routes."""

from __future__ import annotations


def bearer_token(header: str | None) -> str | None:
    """The bearer token of an ``Authorization`` header, or None when it is missing, not Bearer, or empty."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
