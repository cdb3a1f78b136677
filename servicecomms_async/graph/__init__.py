"""Microsoft Graph's service communications API (``/admin/serviceAnnouncement``): its client and models."""

from __future__ import annotations

from .client import MAX_PAGE_SIZE, GraphClient, GraphFilter

__all__ = ["MAX_PAGE_SIZE", "GraphClient", "GraphFilter"]
