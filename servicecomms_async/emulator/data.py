"""Deterministic generation of everything the emulator serves.

Design (why it looks like this):

* Every value is a pure function of ``(config, tenant id lowercased, index)``, computed
  with a 64-bit integer mixer rather than ``random.Random`` per item, because serving
  200,000 messages must cost microseconds per message.
* Messages are ordered by ``LastUpdatedTime`` descending. Message *i* of a tenant has a
  strictly decreasing timestamp in *i*, so the served order is index order and a page
  ``$skip``/``$top`` is produced by generating just those indices.
* A tenant's list is ``active incidents`` (newest, EndTime null) followed by "slots"
  ``j = 0 .. N-1-k``. Slot *j* is global: its time, and whether it is a Message Center
  post, depend only on ``(seed, j)``; an incident/maintenance slot's content depends on
  ``(seed, workload, j)``. Tenants that pick the same workload for a slot therefore share
  the same incident (same Id, same text), like the real service's global incidents.
* Active incidents come from a small global pool (two per workload); degraded tenants
  take one to three of them for their workloads, healthy tenants none. CurrentStatus
  and HistoricalStatus are derived from the tenant's incidents, so they agree.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .catalogue import (
    CATALOGUE,
    CURRENT_STATUS_TEXTS,
    FINAL_STATUS_FALSE_POSITIVE,
    FINAL_STATUS_RESTORED,
    INCIDENT_TEMPLATES,
    MC_TEMPLATES,
    MIN_WORKLOADS_PER_TENANT,
    Workload,
)
from .config import EmulatorConfig
from .messagecenter import legacy_severity, link_odds
from .odata import FieldKind, parse_datetime_us

Json = dict[str, Any]
Operation = Literal["Services", "CurrentStatus", "HistoricalStatus", "Messages"]
OPERATIONS: tuple[Operation, ...] = ("Services", "CurrentStatus", "HistoricalStatus", "Messages")

_M64 = (1 << 64) - 1
_GOLD = 0x9E3779B97F4A7C15
_MIN = 60_000
_HOUR = 3_600_000
_DAY = 86_400_000

INCIDENT, MAINTENANCE, MESSAGE_CENTER = 0, 1, 2
_MC_PERCENT = 20
_PM_PERCENT = 10
_HISTORY_IDS_CAP = 100  # bounds a HistoricalStatus row's IncidentIds on huge data sets
# Posts per resolved incident: 1-4, mean 2. Real incidents carry 3-13 posts, but payload
# size dominates the cost of paging 200,000 messages, so the emulator stays lighter.
_POSTS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4)  # fmt: skip

_ACTIVE_STATUSES = (
    "Investigating",
    "Service degradation",
    "Service interruption",
    "Restoring service",
    "Extended recovery",
)
_STATUS_DISPLAY = {
    "ServiceOperational": "Normal service",
    "ServiceDegradation": "Service degradation",
    "ServiceInterruption": "Service interruption",
    "ServiceRestored": "Service restored",
}
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _mix(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-distributed 64-bit hash of ``x``."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def stable_key(*parts: object) -> int:
    """A 64-bit key from ``parts`` that is stable across processes (unlike ``hash``)."""
    raw = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


# --- timestamp formatting --------------------------------------------------------------


# Lookup tables: formatting is the hot path when serving 200,000 messages.
_HMS = [f"{h:02d}:{m:02d}:{x:02d}" for h in range(24) for m in range(60) for x in range(60)]
_FRAC = [""] + [f".{f'{x:03d}'.rstrip('0')}" for x in range(1, 1000)]
_DATE_CACHE: dict[int, str] = {}


def _date(day: int) -> str:
    """``YYYY-MM-DD`` of a day number since the epoch (memoised: few distinct days)."""
    t = time.gmtime(day * 86400)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    if len(_DATE_CACHE) > 100_000:
        _DATE_CACHE.clear()
    _DATE_CACHE[day] = text
    return text


def iso_ms(ms: int) -> str:
    """``2020-08-21T18:59:16.387Z``: 0-3 fraction digits, trailing zeros dropped."""
    sec, frac = divmod(ms, 1000)
    day, sod = divmod(sec, 86400)
    return (_DATE_CACHE.get(day) or _date(day)) + "T" + _HMS[sod] + _FRAC[frac] + "Z"


def iso_ticks(ticks: int) -> str:
    """``2020-09-18T13:15:36.6847769Z``: 100 ns ticks since the epoch, always 7 digits."""
    sec, frac = divmod(ticks, 10_000_000)
    t = time.gmtime(sec)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:07d}Z"
    )


_HUMAN_CACHE: dict[int, str] = {}


def human_time(ms: int) -> str:
    """``Tuesday, August 11, 2020, at 6:08 AM UTC`` as used inside incident texts."""
    minute = ms // _MIN
    text = _HUMAN_CACHE.get(minute)
    if text is None:
        t = time.gmtime(minute * 60)
        hour12 = t.tm_hour % 12 or 12
        half = "AM" if t.tm_hour < 12 else "PM"
        text = (
            f"{_DAYS[t.tm_wday]}, {_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year}, "
            f"at {hour12}:{t.tm_min:02d} {half} UTC"
        )
        if len(_HUMAN_CACHE) > 100_000:
            _HUMAN_CACHE.clear()
        _HUMAN_CACHE[minute] = text
    return text


# --- wire field schemas ----------------------------------------------------------------

REAL_INCIDENT_KEYS: tuple[str, ...] = (
    "AffectedWorkloadDisplayNames",
    "AffectedWorkloadNames",
    "Status",
    "Workload",
    "WorkloadDisplayName",
    "ActionType",
    "AdditionalDetails",
    "AffectedTenantCount",
    "AffectedUserCount",
    "Classification",
    "EndTime",
    "Feature",
    "FeatureDisplayName",
    "UserFunctionalImpact",
    "Id",
    "ImpactDescription",
    "LastUpdatedTime",
    "MessageType",
    "Messages",
    "PostIncidentDocumentUrl",
    "Severity",
    "StartTime",
    "TenantParams",
    "Title",
)
REAL_MC_EXTRA_KEYS: tuple[str, ...] = (
    "ActionRequiredByDate",
    "AnnouncementId",
    "Category",
    "MessageTagNames",
    "ExternalLink",
    "IsDismissed",
    "IsRead",
    "IsMajorChange",
    "PreviewDuration",
    "AppliesTo",
    "MilestoneDate",
    "Milestone",
    "BlogLink",
    "HelpLink",
    "FlightName",
    "FeatureName",
)
SPEC_MESSAGE_KEYS: tuple[str, ...] = (
    "Id",
    "Name",
    "Title",
    "StartTime",
    "EndTime",
    "Status",
    "Messages",
    "LastUpdatedTime",
    "Workload",
    "WorkloadDisplayName",
    "Feature",
    "FeatureDisplayName",
    "MessageType",
)
REAL_STATUS_KEYS: tuple[str, ...] = (
    "FeatureStatus",
    "Id",
    "IncidentIds",
    "Status",
    "StatusDisplayName",
    "StatusTime",
    "Workload",
    "WorkloadDisplayName",
)
SPEC_STATUS_KEYS: tuple[str, ...] = (
    "Id",
    "Workload",
    "StatusDate",
    "WorkloadDisplayName",
    "Status",
    "IncidentIds",
    "FeatureGroupStatusCollection",
)
REAL_SERVICE_KEYS: tuple[str, ...] = ("Id", "DisplayName", "Features")
SPEC_SERVICE_KEYS: tuple[str, ...] = ("Id", "DisplayName", "FeatureNames")

_DT_FIELDS = frozenset(
    {"StartTime", "EndTime", "LastUpdatedTime", "ActionRequiredByDate", "MilestoneDate"}
)
_INT_FIELDS = frozenset({"AffectedTenantCount", "AffectedUserCount", "AnnouncementId"})
_BOOL_FIELDS = frozenset({"IsDismissed", "IsRead", "IsMajorChange"})
_NON_SCALAR = frozenset(
    {
        "AffectedWorkloadDisplayNames",
        "AffectedWorkloadNames",
        "AdditionalDetails",
        "Messages",
        "TenantParams",
        "MessageTagNames",
        "Features",
        "FeatureNames",
        "FeatureStatus",
        "FeatureGroupStatusCollection",
        "IncidentIds",
    }
)


def _kind(name: str) -> FieldKind:
    if name in _DT_FIELDS or name in ("StatusTime", "StatusDate"):
        return "datetime"
    if name in _INT_FIELDS:
        return "int"
    if name in _BOOL_FIELDS:
        return "bool"
    return "string"


def wire_keys(op: Operation, shape: str) -> tuple[str, ...]:
    """All keys an item of ``op`` can carry in ``shape`` (the ``$select`` vocabulary)."""
    real = shape == "real"
    if op == "Services":
        return REAL_SERVICE_KEYS if real else SPEC_SERVICE_KEYS
    if op == "Messages":
        return REAL_INCIDENT_KEYS + REAL_MC_EXTRA_KEYS if real else SPEC_MESSAGE_KEYS
    return REAL_STATUS_KEYS if real else SPEC_STATUS_KEYS


def filter_fields(op: Operation, shape: str) -> tuple[dict[str, FieldKind], dict[str, str]]:
    """(filterable top-level scalar fields with kinds, accepted aliases) for ``op``."""
    fields = {k: _kind(k) for k in wire_keys(op, shape) if k not in _NON_SCALAR}
    aliases: dict[str, str] = {}
    if op in ("CurrentStatus", "HistoricalStatus") and shape == "spec":
        # The documented filter is StatusTime, but the documented key is StatusDate.
        aliases["StatusTime"] = "StatusDate"
    return fields, aliases


# --- cores -----------------------------------------------------------------------------


class Core:
    """The scalar facts of one message; text and wire dicts are derived on demand."""

    __slots__ = (
        "classification",
        "end",
        "fidx",
        "h",
        "kind",
        "last",
        "msg_id",
        "n_posts",
        "severity",
        "start",
        "status",
        "widx",
    )

    def __init__(
        self,
        kind: int,
        widx: int,
        fidx: int,
        msg_id: str,
        h: int,
        start: int,
        end: int | None,
        last: int,
        status: str,
        severity: str,
        classification: str,
        n_posts: int,
    ) -> None:
        self.kind = kind
        self.widx = widx
        self.fidx = fidx
        self.msg_id = msg_id
        self.h = h
        self.start = start
        self.end = end
        self.last = last
        self.status = status
        self.severity = severity
        self.classification = classification
        self.n_posts = n_posts

    @property
    def impact(self) -> str:
        """CurrentStatus enum an active incident puts its workload/feature in."""
        if self.status == "Service interruption":
            return "ServiceInterruption"
        return "ServiceDegradation"


@dataclass(frozen=True, slots=True)
class TenantModel:
    """Small per-tenant facts from which all of the tenant's data derives."""

    tenant: str
    key: int
    workloads: tuple[int, ...]
    degraded: bool
    active: tuple[Core, ...]
    message_count: int
    status_time: str


def json_copy(items: list[Json]) -> list[Json]:
    """A deep copy of JSON items that a caller may change without changing what is served."""
    result: list[Json] = orjson.loads(orjson.dumps(items))
    return result


@dataclass(frozen=True, slots=True)
class TenantDataset:
    """The wire dicts (configured shape) served for one tenant, in served order."""

    services: list[Json]
    current_status: list[Json]
    historical_status: list[Json]
    messages: list[Json]


class Generator:
    """Pure functions from (config, tenant, index) to data; no caching here."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.real = config.shape == "real"
        now = config.now_utc
        self.now_ms = int(now.timestamp() * 1000)
        self.seed_key = stable_key("seed", config.seed)
        self.kind_key = stable_key("slots", config.seed)
        self.mc_key = stable_key("mc", config.seed)
        self.wkeys = [stable_key("workload", config.seed, w.id) for w in CATALOGUE]
        self.n_slots = config.messages_per_tenant
        # Resolved items' LastUpdatedTime runs from now-1h back over ~6 days, leaving room
        # for StartTime before it while everything stays inside now-7d.
        self.top_ms = self.now_ms - _HOUR
        self.floor_ms = self.now_ms - 7 * _DAY + _MIN
        self.floor_ms -= self.floor_ms % _MIN
        self.floor_ms += _MIN
        span = 6 * _DAY - 2 * _HOUR
        self.slot_ms = max(1, span // max(1, self.n_slots))
        # Ids grow with recency, like real ones; the offset makes seeds look different.
        self.base_num = 100_000 + self.seed_key % 100_000
        self.active_pool = [[self._active(w, a) for a in range(2)] for w in range(len(CATALOGUE))]

    # -- tenants --

    def degraded_score(self, tenant: str) -> float:
        """Uniform in [0, 1); the tenant is degraded when below ``degraded_ratio``."""
        return (_mix(stable_key("degraded", self.config.seed, tenant)) >> 11) / float(1 << 53)

    def tenant_model(self, tenant: str) -> TenantModel:
        tenant = tenant.lower()
        key = stable_key("tenant", self.config.seed, tenant)
        n = len(CATALOGUE)
        h = _mix(key)
        count = MIN_WORKLOADS_PER_TENANT + h % (n - MIN_WORKLOADS_PER_TENANT + 1)
        order = sorted(range(n), key=lambda w: _mix(key ^ ((w + 1) * _GOLD)))
        workloads = tuple(sorted(order[:count]))
        degraded = self.degraded_score(tenant) < self.config.degraded_ratio
        active: tuple[Core, ...] = ()
        if degraded and self.n_slots > 0:
            h2 = _mix(h + 1)
            k = 1 + (h2 % 10 >= 7) + (h2 % 10 >= 9)
            candidates = [self.active_pool[w][a] for w in workloads for a in range(2)]
            candidates.sort(key=lambda c: _mix(key ^ stable_key(c.msg_id)))
            chosen = candidates[: min(k, self.n_slots)]
            active = tuple(sorted(chosen, key=lambda c: (-c.last, c.msg_id)))
        ticks = self.now_ms * 10_000 - (_mix(h + 2) % (60 * 10_000_000))
        return TenantModel(
            tenant=tenant,
            key=key,
            workloads=workloads,
            degraded=bool(active),
            active=active,
            message_count=self.n_slots,
            status_time=iso_ticks(ticks),
        )

    # -- cores --

    def _active(self, widx: int, a: int) -> Core:
        wl = CATALOGUE[widx]
        h = _mix(stable_key("active", self.config.seed, widx, a))
        last = self.now_ms - (1 + h % 50) * _MIN - (h >> 8) % _MIN
        start = last - (10 + (h >> 16) % (36 * 60)) * _MIN
        start = max(start - start % _MIN, self.floor_ms)
        status = _ACTIVE_STATUSES[(h >> 28) % len(_ACTIVE_STATUSES)]
        sev1 = status == "Service interruption" or (h >> 32) % 4 == 0
        cls = "Incident" if sev1 or (h >> 36) & 1 else "Advisory"
        num = self.base_num + self.n_slots + widx * 2 + a
        return Core(
            INCIDENT,
            widx,
            (h >> 40) % len(wl.features),
            f"{wl.prefix}{num}",
            h,
            start,
            None,
            last,
            status,
            "Sev1" if sev1 else "Sev2",
            cls,
            1 + (h >> 48) % 3,
        )

    def core_at(self, model: TenantModel, index: int) -> Core:
        """The core of message ``index`` in the tenant's served order."""
        k = len(model.active)
        if index < k:
            return model.active[index]
        return self.slot_core(model, index - k)

    def slot_core(self, model: TenantModel, j: int) -> Core:
        hk = _mix(self.kind_key ^ (j * _GOLD))
        last = self.top_ms - j * self.slot_ms - (hk >> 20) % self.slot_ms
        num = self.base_num + (self.n_slots - 1 - j)
        if hk % 100 < _MC_PERCENT:
            h = _mix(self.mc_key ^ (j * _GOLD))
            start = last - 5000 - (h >> 8) % 15000
            start = max(start - start % _MIN, self.floor_ms)
            end = start + (30 + (h >> 16) % 60) * _DAY  # MC expiry: in the future, as real
            return Core(
                MESSAGE_CENTER,
                h % len(CATALOGUE),
                0,
                f"MC{num}",
                h,
                start,
                end,
                last,
                "",
                legacy_severity(h),
                "Advisory",
                1,
            )
        widx = model.workloads[_mix(model.key ^ (j * _GOLD)) % len(model.workloads)]
        wl = CATALOGUE[widx]
        h = _mix(self.wkeys[widx] ^ (j * _GOLD))
        h2 = _mix(h + 1)
        fidx = (h >> 8) % len(wl.features)
        msg_id = f"{wl.prefix}{num}"
        if h % 100 < _PM_PERCENT:
            # No real PlannedMaintenance item was ever captured; this mirrors the incident
            # keys with Status "Planned maintenance" and an EndTime that may be in the future.
            start = last - h2 % (3 * _HOUR)
            start = max(start - start % _HOUR, self.floor_ms)
            end = start + (2 + (h2 >> 8) % 7) * _HOUR
            return Core(
                MAINTENANCE, widx, fidx, msg_id, h, start, end, last,
                "Planned maintenance", "Sev2", "Advisory", 1,
            )  # fmt: skip
        end = last - (5 + h2 % 86) * _MIN
        end -= end % _MIN
        start = end - (20 + (h2 >> 8) % (18 * 60)) * _MIN
        start -= start % (_MIN if (h2 >> 20) & 1 else 1000)
        start = max(start, self.floor_ms)
        r = (h2 >> 24) % 100
        status = (
            "Service restored" if r < 80 else "False positive" if r < 88
            else "Post-incident report published"
        )  # fmt: skip
        sev1 = (h2 >> 32) % 100 < 15
        cls = "Incident" if sev1 or (h2 >> 40) & 1 else "Advisory"
        return Core(
            INCIDENT, widx, fidx, msg_id, h, start, end, last, status,
            "Sev1" if sev1 else "Sev2", cls, _POSTS[(h2 >> 44) % 10],
        )  # fmt: skip

    def iter_cores(self, model: TenantModel) -> Iterator[Core]:
        yield from model.active
        for j in range(model.message_count - len(model.active)):
            yield self.slot_core(model, j)

    # -- messages --

    def _texts(self, core: Core) -> tuple[str, str, list[tuple[int, str]]]:
        """(title, impact description, posts as (published ms, text))."""
        if core.kind == MESSAGE_CENTER:
            title, html = _mc_parts((core.h >> 24) % len(MC_TEMPLATES), core.widx)
            return title, "", [(core.start, html)]
        tpl = (core.h >> 48) % len(INCIDENT_TEMPLATES)
        title, impact, head, more, scope, root, steps = _incident_parts(tpl, core.widx, core.fidx)
        if core.kind == MAINTENANCE:
            assert core.end is not None
            title, text = _maintenance_parts(core.widx, core.fidx)
            text = text.format(start=human_time(core.start), end=human_time(core.end))
            return title, impact, [(core.last, text)]
        n = core.n_posts
        last = core.last
        if n == 1:
            times = [last]
        else:
            first = core.start + min((2 + core.h % 19) * _MIN, (last - core.start) // 2)
            first += (core.h >> 12) % 1000
            gap = (last - first) // (n - 1)
            times = [
                first + i * gap - ((core.h >> (i * 5)) % 997 if i else 0) for i in range(n - 1)
            ]
            times.append(last)
        posts: list[tuple[int, str]] = []
        end = core.end
        for i, published in enumerate(times):
            if end is not None and i == n - 1:
                final = (
                    FINAL_STATUS_FALSE_POSITIVE
                    if core.status == "False positive"
                    else FINAL_STATUS_RESTORED
                )
                text = (
                    f"{head}{more}\n\nFinal status: {final}{scope}"
                    f"\n\nStart time: {human_time(core.start)}"
                    f"\n\nEnd time: {human_time(end)}{root}{steps}"
                )
            elif i == 0:
                text = f"{head}\n\nCurrent status: {CURRENT_STATUS_TEXTS[0]}{scope}"
            else:
                stage = CURRENT_STATUS_TEXTS[min(i, len(CURRENT_STATUS_TEXTS) - 1)]
                nxt = published + 90 * _MIN
                nxt -= nxt % (30 * _MIN)
                text = (
                    f"{head}{more}\n\nCurrent status: {stage}{scope}"
                    f"{root if i >= 2 else ''}\n\nNext update by: {human_time(nxt)}"
                )
            posts.append((published, text))
        return title, impact, posts

    def render_message(self, core: Core) -> Json:
        """The wire dict of one message in the configured shape."""
        wl = CATALOGUE[core.widx]
        feat = wl.features[core.fidx]
        title, impact, posts = self._texts(core)
        mtype = ("Incident", "PlannedMaintenance", "MessageCenter")[core.kind]
        end = None if core.end is None else iso_ms(core.end)
        mc = core.kind == MESSAGE_CENTER
        if not self.real:
            # The spec declares no field nullable but Title, so the spec shape leaves a field out
            # where the real service sent null (an ongoing incident's EndTime, a Message Center
            # post's Workload).
            spec_item: Json = {
                "Id": core.msg_id,
                "Name": core.msg_id,
                "Title": title,
                "StartTime": iso_ms(core.start),
                "EndTime": end,
                "Status": core.status,
                "Messages": [{"PublishedTime": iso_ms(t), "MessageText": x} for t, x in posts],
                "LastUpdatedTime": iso_ms(core.last),
                "Workload": None if mc else wl.id,
                "WorkloadDisplayName": None if mc else wl.display_name,
                "Feature": None if mc else feat.name,
                "FeatureDisplayName": None if mc else feat.display_name,
                "MessageType": mtype,
            }
            return {k: v for k, v in spec_item.items() if v is not None or k == "Title"}
        item: Json = {
            "AffectedWorkloadDisplayNames": [wl.display_name] if mc else [],
            "AffectedWorkloadNames": [wl.id] if mc else [],
            "Status": core.status,
            "Workload": None if mc else wl.id,
            "WorkloadDisplayName": None if mc else wl.display_name,
            "ActionType": "Awareness" if mc else None,
            "AdditionalDetails": (
                [{"Name": "NotifyInApp", "Value": "True"}] if not mc and core.h % 3 == 0 else []
            ),
            "AffectedTenantCount": 0,
            "AffectedUserCount": None,
            "Classification": core.classification,
            "EndTime": end,
            "Feature": None if mc else feat.name,
            "FeatureDisplayName": None if mc else feat.display_name,
            "UserFunctionalImpact": None if mc else "",
            "Id": core.msg_id,
            "ImpactDescription": None if mc else impact,
            "LastUpdatedTime": iso_ms(core.last),
            "MessageType": mtype,
            "Messages": [{"MessageText": x, "PublishedTime": iso_ms(t)} for t, x in posts],
            "PostIncidentDocumentUrl": None,
            "Severity": core.severity,
            "StartTime": iso_ms(core.start),
            "TenantParams": [],
            "Title": title,
        }
        if mc:
            _, _, _, _, tags, category = MC_TEMPLATES[(core.h >> 24) % len(MC_TEMPLATES)]
            action_by, external_link, blog_link, help_link = self.mc_links(core)
            item.update(
                {
                    "ActionRequiredByDate": None if action_by is None else iso_ms(action_by),
                    "AnnouncementId": 0,
                    "Category": category,
                    "MessageTagNames": list(tags),
                    "ExternalLink": external_link,
                    "IsDismissed": False,
                    "IsRead": False,
                    "IsMajorChange": (core.h >> 40) % 4 == 0,
                    "PreviewDuration": None,
                    "AppliesTo": None,
                    "MilestoneDate": iso_ms(core.start + 1000),
                    "Milestone": "",
                    "BlogLink": blog_link,
                    "HelpLink": help_link,
                    "FlightName": None,
                    "FeatureName": None,
                }
            )
        return item

    @staticmethod
    def mc_links(core: Core) -> tuple[int | None, str, str, str]:
        """A Message Center post's action-by date (epoch ms, midnight UTC, 30 to 60 days after it
        starts; a third of the posts) and its external, blog and help links, which are rare, as in
        today's real traffic (:func:`.messagecenter.link_odds`; "" when absent, as the real service
        sent). They become Graph's ``actionRequiredByDateTime`` and link ``details``."""
        h = core.h
        day_ms = 86_400_000
        action_by = None
        if (h >> 44) % 3 == 0:
            action_by = (core.start // day_ms + 30 + (h >> 46) % 31) * day_ms
        external_on, blog_on, help_on = link_odds(h)
        external = (
            f"https://go.microsoft.com/fwlink/?linkid={2_000_000 + (h >> 20) % 100_000}"
            if external_on
            else ""
        )
        blog = (
            f"https://techcommunity.microsoft.com/t5/microsoft-365-blog/{core.msg_id.lower()}"
            if blog_on
            else ""
        )
        help_ = (
            f"https://learn.microsoft.com/microsoft-365/admin/{core.msg_id.lower()}"
            if help_on
            else ""
        )
        return action_by, external, blog, help_

    def message_row(self, core: Core, with_text: bool = True) -> dict[str, object]:
        """Typed scalar row (datetimes as epoch microseconds) for ``$filter``.

        Holds every filterable key of both shapes; keys a given item does not carry on the
        wire (Message Center keys on incidents) are absent, which filters as null. With
        ``with_text=False`` Title and ImpactDescription are "" (rendering them dominates
        the cost, and most filters never look at them).
        """
        wl = CATALOGUE[core.widx]
        feat = wl.features[core.fidx]
        mc = core.kind == MESSAGE_CENTER
        title, impact, _ = self._texts(core) if with_text else ("", "", [])
        row: dict[str, object] = {
            "Id": core.msg_id,
            "Name": core.msg_id,
            "Title": title,
            "Status": core.status,
            "Workload": None if mc else wl.id,
            "WorkloadDisplayName": None if mc else wl.display_name,
            "ActionType": "Awareness" if mc else None,
            "AffectedTenantCount": 0,
            "AffectedUserCount": None,
            "Classification": core.classification,
            "EndTime": None if core.end is None else core.end * 1000,
            "Feature": None if mc else feat.name,
            "FeatureDisplayName": None if mc else feat.display_name,
            "UserFunctionalImpact": None if mc else "",
            "ImpactDescription": None if mc else impact,
            "LastUpdatedTime": core.last * 1000,
            "MessageType": ("Incident", "PlannedMaintenance", "MessageCenter")[core.kind],
            "PostIncidentDocumentUrl": None,
            "Severity": core.severity,
            "StartTime": core.start * 1000,
        }
        if mc and self.real:
            _, _, _, _, _, category = MC_TEMPLATES[(core.h >> 24) % len(MC_TEMPLATES)]
            action_by, external_link, blog_link, help_link = self.mc_links(core)
            row.update(
                {
                    "ActionRequiredByDate": None if action_by is None else action_by * 1000,
                    "AnnouncementId": 0,
                    "Category": category,
                    "ExternalLink": external_link,
                    "IsDismissed": False,
                    "IsRead": False,
                    "IsMajorChange": (core.h >> 40) % 4 == 0,
                    "PreviewDuration": None,
                    "AppliesTo": None,
                    "MilestoneDate": (core.start + 1000) * 1000,
                    "Milestone": "",
                    "BlogLink": blog_link,
                    "HelpLink": help_link,
                    "FlightName": None,
                    "FeatureName": None,
                }
            )
        return row

    # -- services and status --

    def services(self, model: TenantModel) -> list[Json]:
        out: list[Json] = []
        for widx in model.workloads:
            wl = CATALOGUE[widx]
            if self.real:
                feats: Json = {
                    "Features": [
                        {"DisplayName": f.display_name, "Name": f.name} for f in wl.features
                    ]
                }
            else:
                feats = {"FeatureNames": [f.display_name for f in wl.features]}
            out.append({"Id": wl.id, "DisplayName": wl.display_name, **feats})
        return out

    def _status_row(
        self,
        wl: Workload,
        when: str,
        status: str,
        incident_ids: list[str],
        feature_status: list[str],
    ) -> Json:
        if self.real:
            return {
                "FeatureStatus": [
                    {
                        "FeatureDisplayName": f.display_name,
                        "FeatureName": f.name,
                        "FeatureServiceStatus": fs,
                        "FeatureServiceStatusDisplayName": _STATUS_DISPLAY[fs],
                    }
                    for f, fs in zip(wl.features, feature_status, strict=True)
                ],
                "Id": wl.id,
                "IncidentIds": incident_ids,
                "Status": status,
                "StatusDisplayName": _STATUS_DISPLAY[status],
                "StatusTime": when,
                "Workload": wl.id,
                "WorkloadDisplayName": wl.display_name,
            }
        return {
            "Id": wl.id,
            "Workload": wl.id,
            "StatusDate": when,
            "WorkloadDisplayName": wl.display_name,
            "Status": status,
            "IncidentIds": incident_ids,
            "FeatureGroupStatusCollection": [
                {"Feature": f.name, "FeatureGroupDisplayName": f.display_name, "FeatureStatus": fs}
                for f, fs in zip(wl.features, feature_status, strict=True)
            ],
        }

    def current_status(
        self,
        model: TenantModel,
        extra: Sequence[tuple[int, int, str, str]] = (),
        status_time: str | None = None,
    ) -> list[Json]:
        """CurrentStatus rows; ``extra`` adds active incidents as ``(workload, feature, id,
        impact)`` (the timeline's, listed before the static ones: they are newer)."""
        out: list[Json] = []
        active = [(c.widx, c.fidx, c.msg_id, c.impact) for c in model.active]
        for widx in model.workloads:
            wl = CATALOGUE[widx]
            mine = [a for a in extra if a[0] == widx] + [a for a in active if a[0] == widx]
            status = _worst(a[3] for a in mine)
            fstat = [_worst(a[3] for a in mine if a[1] == fi) for fi in range(len(wl.features))]
            ids = [a[2] for a in mine]
            out.append(self._status_row(wl, status_time or model.status_time, status, ids, fstat))
        return out

    def status_time(self, model: TenantModel, now_ms: int) -> str:
        """The tenant's CurrentStatus ``StatusTime`` when the world's time is ``now_ms``."""
        return iso_ticks(now_ms * 10_000 - (_mix(_mix(model.key) + 2) % (60 * 10_000_000)))

    def historical_status(
        self,
        model: TenantModel,
        now_ms: int | None = None,
        extra: Sequence[tuple[int, int, str, int, int | None, str]] = (),
    ) -> list[Json]:
        """HistoricalStatus rows for the days up to ``now_ms`` (default ``config.now``); ``extra``
        adds incidents as ``(workload, feature, id, start, end or None, impact)``."""
        now = self.now_ms if now_ms is None else now_ms
        days = self.config.history_days
        midnight = now - now % _DAY
        # (workload, day) -> [ids], and feature-level worst status per (workload, day, feature)
        ids: dict[tuple[int, int], list[str]] = {}
        wstat: dict[tuple[int, int], str] = {}
        fstat: dict[tuple[int, int, int], str] = {}
        subscribed = set(model.workloads)
        incidents = itertools.chain(
            extra,
            (
                (c.widx, c.fidx, c.msg_id, c.start, c.end, c.impact)
                for c in self.iter_cores(model)
                if c.kind == INCIDENT
            ),
        )
        for widx, fidx, msg_id, start, end_or_none, impact in incidents:
            if widx not in subscribed:
                continue
            active = end_or_none is None
            end = now if end_or_none is None else end_or_none
            d_lo = max(0, (midnight - (end - end % _DAY)) // _DAY)
            d_hi = min(days - 1, (midnight - (start - start % _DAY)) // _DAY)
            state = impact if active else "ServiceRestored"
            for d in range(d_lo, d_hi + 1):
                key = (widx, d)
                bucket = ids.setdefault(key, [])
                if len(bucket) < _HISTORY_IDS_CAP:
                    bucket.append(msg_id)
                wstat[key] = _worst((wstat.get(key, "ServiceOperational"), state))
                fkey = (widx, d, fidx)
                fstat[fkey] = _worst((fstat.get(fkey, "ServiceOperational"), state))
        out: list[Json] = []
        for widx in model.workloads:
            wl = CATALOGUE[widx]
            for d in range(days):
                when = iso_ms(midnight - d * _DAY)
                out.append(
                    self._status_row(
                        wl,
                        when,
                        wstat.get((widx, d), "ServiceOperational"),
                        ids.get((widx, d), []),
                        [
                            fstat.get((widx, d, fi), "ServiceOperational")
                            for fi in range(len(wl.features))
                        ],
                    )
                )
        return out


@functools.lru_cache(maxsize=4096)
def _incident_parts(tpl_idx: int, widx: int, fidx: int) -> tuple[str, str, str, str, str, str, str]:
    """(title, impact, head, more-info, scope, root cause, next steps) text sections.

    The leading ``\\n\\n`` separators are baked in so posts are plain concatenations.
    """
    tpl = INCIDENT_TEMPLATES[tpl_idx]
    wl = CATALOGUE[widx]
    fmt = {"service": wl.display_name, "feature": wl.features[fidx].display_name}
    title = tpl.title.format(**fmt)
    impact = tpl.impact.format(**fmt)
    more = f"\n\nMore info: {tpl.more_info.format(**fmt)}" if tpl.more_info else ""
    return (
        title,
        impact,
        f"Title: {title}\n\nUser Impact: {impact}",
        more,
        f"\n\nScope of impact: {tpl.scope.format(**fmt)}",
        f"\n\nRoot cause: {tpl.root_cause.format(**fmt)}",
        f"\n\nNext steps:\n- {tpl.next_step.format(**fmt)}"
        "\n\nThis is the final update for the event.",
    )


@functools.lru_cache(maxsize=1024)
def _maintenance_parts(widx: int, fidx: int) -> tuple[str, str]:
    """(title, text with ``{start}``/``{end}`` placeholders) of a planned maintenance."""
    wl = CATALOGUE[widx]
    feature = wl.features[fidx].display_name
    title = f"Planned maintenance for {feature} in {wl.display_name}"
    text = (
        f"Title: {title}\n\nUser Impact: Users may experience brief interruptions to "
        f"{feature} while maintenance is performed.\n\nMore info: The maintenance is "
        "scheduled to take place between {start} and {end}.\n\nCurrent status: Maintenance "
        "is scheduled and no action is required."
    )
    return title, text


@functools.lru_cache(maxsize=1024)
def _mc_parts(tpl_idx: int, widx: int) -> tuple[str, str]:
    """(title, HTML text) of a Message Center post."""
    title, intro, affect, prepare, _, _ = MC_TEMPLATES[tpl_idx]
    wl = CATALOGUE[widx]
    fmt = {"service": wl.display_name, "feature": wl.features[0].display_name}
    html = (
        f"<p>{intro.format(**fmt)}</p><p>[How does this affect me?]</p>"
        f"<p>{affect.format(**fmt)}</p>"
        "<p>[What do I need to do to prepare for this change?]</p>"
        f"<p>{prepare.format(**fmt)}</p>"
    )
    return title.format(**fmt), html


_RANK = {
    "ServiceOperational": 0,
    "ServiceRestored": 1,
    "ServiceDegradation": 2,
    "ServiceInterruption": 3,
}


def _worst(states: Iterable[str]) -> str:
    best = "ServiceOperational"
    for s in states:
        if _RANK[s] > _RANK[best]:
            best = s
    return best


def status_row_typed(row: Json) -> dict[str, object]:
    """Typed scalar view of a Services/CurrentStatus/HistoricalStatus wire dict."""
    typed: dict[str, object] = {}
    for k, v in row.items():
        if k in _NON_SCALAR:
            continue
        if k in ("StatusTime", "StatusDate") and isinstance(v, str):
            typed[k] = parse_datetime_us(v)
        else:
            typed[k] = v
    return typed
