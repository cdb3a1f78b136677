"""Old module path, kept for one release: the legacy client is ``servicecomms_async.legacy``."""

from __future__ import annotations

from .legacy.client import TenantClient

__all__ = ["TenantClient"]
