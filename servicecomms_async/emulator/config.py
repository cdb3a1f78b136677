"""Configuration of the Service Communications emulator."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Literal

Shape = Literal["real", "spec"]
Paging = Literal["skip", "nextlink"]

_SHAPES = ("real", "spec")
_PAGINGS = ("skip", "nextlink")


_MAX_RATE = 1_000.0


@dataclasses.dataclass(frozen=True)
class TimelineConfig:
    """How fast the world moves under a clock (see :mod:`.timeline`); ignored without one.

    * ``global_incidents_per_day``: new incidents across the catalogue's workloads; each is seen by
      every tenant subscribed to its workload (same id everywhere, like real incidents).
    * ``tenant_incidents_per_day``: new incidents per tenant seen by that tenant alone.
    * ``messages_per_day``: new Message Center posts; a tenant sees those for its workloads.
    * ``silent_ratio``: the share of later changes (not the first appearance) whose
      ``lastModifiedDateTime`` does not move, so only a full resync sees them (default 0).

    Rates are Poisson means, 0 to 1,000 a day; 0 turns that stream off.
    """

    global_incidents_per_day: float = 6.0
    tenant_incidents_per_day: float = 0.25
    messages_per_day: float = 4.0
    silent_ratio: float = 0.0

    def __post_init__(self) -> None:
        for name in ("global_incidents_per_day", "tenant_incidents_per_day", "messages_per_day"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not 0.0 <= value <= _MAX_RATE:
                raise ValueError(f"{name} must be between 0 and {_MAX_RATE:g}, got {value!r}")
        if not 0.0 <= self.silent_ratio <= 1.0:
            raise ValueError(f"silent_ratio must be between 0 and 1, got {self.silent_ratio!r}")


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything that determines what an :class:`Emulator` serves.

    Contract:

    * Given equal field values (including ``now``), two emulators serve byte-identical
      ``value`` arrays for every request. ``now`` defaults to the wall-clock time at
      construction, rounded down to the minute, so pass ``now`` explicitly when two
      instances must agree.
    * ``now`` is stored as an aware UTC datetime; a naive datetime is taken to be UTC.
    * ``shape`` selects the wire shape: ``"real"`` (what the live service sent) or
      ``"spec"`` (the documented shape).
    * ``paging="nextlink"`` adds ``@odata.nextLink`` to non-final Messages pages; the
      real service never sent one (``"skip"``).
    * ``latency`` seconds (plus a uniform ``±latency_jitter``, clamped at 0) are slept
      inside every API request.
    * ``degraded_ratio`` is the fraction of tenants with at least one active incident.
      It is exact over :attr:`Emulator.tenant_ids` (rounded to the nearest tenant) and
      a per-tenant probability for any other tenant id.
    * ``timeline`` sets how fast the world changes when the emulator has a clock.
    """

    seed: int = 1
    tenants: int = 50
    shape: Shape = "real"
    messages_per_tenant: int = 250
    history_days: int = 7
    paging: Paging = "skip"
    latency: float = 0.0
    latency_jitter: float = 0.0
    degraded_ratio: float = 0.2
    now: datetime | None = None
    timeline: TimelineConfig = dataclasses.field(default_factory=TimelineConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.timeline, TimelineConfig):
            raise ValueError(f"timeline must be a TimelineConfig, got {self.timeline!r}")
        if self.shape not in _SHAPES:
            raise ValueError(f"shape must be one of {_SHAPES}, not {self.shape!r}")
        if self.paging not in _PAGINGS:
            raise ValueError(f"paging must be one of {_PAGINGS}, not {self.paging!r}")
        if self.tenants < 0:
            raise ValueError("tenants must be >= 0")
        if self.messages_per_tenant < 0:
            raise ValueError("messages_per_tenant must be >= 0")
        if not 1 <= self.history_days <= 7:
            # The data window is the last 7 days; more rows would fall outside it.
            raise ValueError("history_days must be between 1 and 7")
        if self.latency < 0 or self.latency_jitter < 0:
            raise ValueError("latency and latency_jitter must be >= 0")
        if not 0.0 <= self.degraded_ratio <= 1.0:
            raise ValueError("degraded_ratio must be between 0 and 1")
        now = self.now
        if now is None:
            now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        else:
            now = now.astimezone(timezone.utc)
        # frozen dataclass: __post_init__ is the only place a normalised value can be set.
        object.__setattr__(self, "now", now)

    @property
    def now_utc(self) -> datetime:
        """``now`` as an aware UTC datetime (never None after construction)."""
        assert self.now is not None
        return self.now
