"""The legacy Office 365 Service Communications API: its client and its models."""

from __future__ import annotations

from .client import TenantClient

__all__ = ["TenantClient"]
