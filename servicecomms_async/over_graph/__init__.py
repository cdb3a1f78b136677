"""The legacy Service Communications operations (``Services``, ``CurrentStatus``,
``HistoricalStatus``, ``Messages``) for live tenants, rebuilt from Microsoft Graph.

``ServiceCommsSession(credential, api="graph").tenant(t)`` is a :class:`LegacyOverGraphClient`;
:mod:`.mapping` holds the pure Graph -> legacy functions and the rules they follow.
"""

from __future__ import annotations

from .client import LegacyOverGraphClient, ObservedHistory
from .mapping import STATUS_DISPLAY, WorkloadNames, fallback_names, status_display

__all__ = [
    "STATUS_DISPLAY",
    "LegacyOverGraphClient",
    "ObservedHistory",
    "WorkloadNames",
    "fallback_names",
    "status_display",
]
