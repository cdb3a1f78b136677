"""The emulator's timeline: a world that moves with a clock, deterministically for a seed.

One mechanism: every timeline entity (an incident, a Message Center post) is a **script**, a tuple
of timed **steps** derived from the seed alone; its state at time *t* is the fold of its steps up to
*t* (its *version* is how many), and everything served is rendered from (entity, version), so caches
keyed by ``(scope, id, version)`` never serve anything stale. The static data of
:mod:`.data` is the background, unchanged; timeline entities are born after ``config.now`` (so at
the start the world is exactly the static one) and are served before the static items (they are
newer).

Streams of births (Poisson counts per bucket, from the seed):

* global incidents (``global_incidents_per_day``, hourly buckets): each on a workload, seen with
  the same id and content by every tenant subscribed to it;
* tenant incidents (``tenant_incidents_per_day``, daily buckets): seen by one tenant only;
* Message Center posts (``messages_per_day``, hourly buckets): seen by tenants subscribed to the
  post's first service.

An incident opens (investigating, serviceDegradation or serviceInterruption; origin ``microsoft``,
sometimes ``thirdParty`` or ``customer``), gets 1 to 4 updates 15 minutes to 2 hours apart (a new
post, regular, quick or strategic, html or text, and/or a status change through
serviceDegradation, serviceInterruption, investigationSuspended, restoringService,
extendedRecovery, verifyingService; sometimes a classification flip, a new title, impact
description or feature), resolves (serviceRestored, or falsePositive; ``isResolved`` true,
``endDateTime`` set), is sometimes reopened and resolved again, and often gets a post-incident
review days later (postIncidentReviewPublished). A Message Center post is published with a
``startDateTime`` back-dated hours to weeks before its publication, then sometimes updated:
"(Updated) " title, the "Updated message" tag, a body starting "Updated <Month D, YYYY>:",
sometimes a new action-by date, expiry, service or severity. A ``silent_ratio`` of the later steps
leave ``lastModifiedDateTime`` where it was.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from .cache import LRU
from .catalogue import (
    CATALOGUE,
    CURRENT_STATUS_TEXTS,
    FINAL_STATUS_FALSE_POSITIVE,
    FINAL_STATUS_RESTORED,
    INCIDENT_TEMPLATES,
    MC_TEMPLATES,
)
from .config import EmulatorConfig
from .data import (
    _GOLD,
    _MONTHS,
    Json,
    TenantModel,
    _incident_parts,
    _mc_parts,
    _mix,
    human_time,
    iso_ms,
    stable_key,
)
from .messagecenter import legacy_severity, link_odds

__all__ = ["Change", "EntityState", "Event", "Script", "Step", "TenantView", "Timeline"]

_MIN = 60_000
_HOUR = 3_600_000
_DAY = 86_400_000
_CAP = 16  # births per bucket at most (ids leave room for 16)

Kind = Literal["issue", "message", "service"]
Event = Literal[
    "issue.opened",
    "issue.updated",
    "issue.resolved",
    "issue.reopened",
    "message.published",
    "message.updated",
    "service.status_changed",
]

# Graph status -> the legacy display string (graph.convert maps them back letter for letter).
LEGACY_STATUS = {
    "investigating": "Investigating",
    "serviceDegradation": "Service degradation",
    "serviceInterruption": "Service interruption",
    "restoringService": "Restoring service",
    "extendedRecovery": "Extended recovery",
    "verifyingService": "Verifying service",
    "investigationSuspended": "Investigation suspended",
    "serviceRestored": "Service restored",
    "falsePositive": "False positive",
    "postIncidentReviewPublished": "Post-incident report published",
}
_OPEN_STATUSES = ("investigating",) * 6 + ("serviceDegradation",) * 3 + ("serviceInterruption",)
_MID_STATUSES = (
    ("serviceDegradation", "serviceDegradation", "serviceInterruption", "investigationSuspended"),
    ("restoringService", "restoringService", "serviceDegradation"),
    ("extendedRecovery", "verifyingService"),
    ("verifyingService", "extendedRecovery", "restoringService"),
)
_POST_TYPES = ("regular",) * 13 + ("quick",) * 5 + ("strategic",) * 2
_UPDATE_REASONS = (
    "We have updated the timeline. Thank you for your patience.",
    "We have updated the rollout timeline below.",
    "We have added more details about what you need to do to prepare.",
    "We have updated the content for clarity.",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One timed change of an entity: ``patch`` sets fields of its state (``post`` appends)."""

    time: int  # epoch ms
    silent: bool
    patch: tuple[tuple[str, Any], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Script:
    """An entity's whole life, known in advance from the seed."""

    kind: Literal["issue", "message"]
    id: str
    scope: str  # "" for an entity every subscribed tenant sees, else the one tenant's id
    widx: int  # the workload (an incident's service; a post's first service)
    times: tuple[int, ...]
    steps: tuple[Step, ...]

    @property
    def born(self) -> int:
        return self.times[0]

    def version(self, t: int) -> int:
        """How many of its steps have happened at ``t`` (0: it does not exist yet)."""
        return bisect.bisect_right(self.times, t)


@dataclasses.dataclass(frozen=True, slots=True)
class EntityState:
    """An entity at one version, as both APIs serve it."""

    script: Script
    version: int
    legacy: Json  # the legacy Messages item (real shape)
    graph: Json  # the Graph issue or message (application view)
    last: int  # lastModifiedDateTime, epoch ms
    resolved: bool
    start: int
    end: int | None
    fidx: int
    impact: str  # CurrentStatus impact while unresolved: ServiceDegradation | ServiceInterruption


@dataclasses.dataclass(frozen=True)
class TenantView:
    """A tenant's timeline entities at one instant, in served order (newest change first)."""

    tenant: str
    t: int
    issues: tuple[EntityState, ...]
    messages: tuple[EntityState, ...]
    version: int  # the sum of the entities' versions: it moves whenever anything changes

    @property
    def legacy_messages(self) -> list[Json]:
        """The legacy Messages items (incidents and posts together, newest change first)."""
        both = sorted(self.issues + self.messages, key=_served_order)
        return [s.legacy for s in both]


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One change the timeline made to a tenant's world (ground truth for tests).

    ``event`` is what a correct watcher polling after every change must emit for it; ``fields``
    the Graph field names that changed (``lastModifiedDateTime`` is never listed); ``silent`` that
    ``lastModifiedDateTime`` did not move.
    """

    time: datetime
    tenant: str
    kind: Kind
    entity_id: str
    event: Event
    fields: tuple[str, ...]
    silent: bool


def _served_order(state: EntityState) -> tuple[int, str]:
    return (-state.last, state.script.id)


def _unit(h: int) -> float:
    return (_mix(h) >> 11) / float(1 << 53)


def _poisson(mean: float, u: float) -> int:
    """The Poisson(``mean``) count whose CDF first reaches ``u`` (at most :data:`_CAP`)."""
    if mean <= 0:
        return 0
    p = math.exp(-mean)
    total, k = p, 0
    while u > total and k < _CAP:
        k += 1
        p *= mean / k
        total += p
    return k


def _day_text(ms: int) -> str:
    t = time.gmtime(ms // 1000)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year}"


class _Stream:
    """Births of one kind in fixed buckets; extended lazily, kept sorted by birth time."""

    def __init__(self, origin: int, bucket_ms: int, per_bucket: float, key: int) -> None:
        self.origin, self.bucket_ms, self.per_bucket, self.key = origin, bucket_ms, per_bucket, key
        self.done = 0  # buckets generated
        self.births: list[tuple[int, int, int]] = []  # (born ms, bucket, k)

    def up_to(self, t: int) -> list[tuple[int, int, int]]:
        if t <= self.origin or self.per_bucket <= 0:
            return []
        last_bucket = (t - self.origin) // self.bucket_ms
        while self.done <= last_bucket:
            b = self.done
            bucket_key = self.key ^ ((b + 1) * _GOLD)
            count = _poisson(self.per_bucket, _unit(bucket_key))
            found = [
                (
                    self.origin
                    + b * self.bucket_ms
                    + 1
                    + _mix(bucket_key + k + 1) % (self.bucket_ms - 1),
                    b,
                    k,
                )
                for k in range(count)
            ]
            self.births.extend(sorted(found))
            self.done += 1
        end = bisect.bisect_right(self.births, (t, 1 << 62, 0))
        return self.births[:end]


class _Draws:
    """A script's random draws, in order: the n-th draw is a function of (key, n) alone."""

    def __init__(self, key: int) -> None:
        self.key, self.n = key, 0

    def next(self) -> int:
        self.n += 1
        return _mix(self.key ^ (self.n * _GOLD))

    def below(self, n: int) -> int:
        return self.next() % n

    def chance(self, p: float) -> bool:
        return _unit(self.next()) < p


class Timeline:
    """Every timeline entity of one emulator configuration, and their states at any time.

    Memory: scripts, states and views sit in bounded LRU caches (anything evicted is recomputed
    from the seed); the streams' birth lists grow with emulated time (a few dozen entries a day).
    """

    def __init__(self, config: EmulatorConfig, base_num: int) -> None:
        self.config = config
        self.settings = config.timeline
        self.origin = int(config.now_utc.timestamp() * 1000)
        self.base_num = base_num
        seed = config.seed
        s = self.settings
        self._global = _Stream(
            self.origin, _HOUR, s.global_incidents_per_day / 24, stable_key("tl-global", seed)
        )
        self._mc = _Stream(self.origin, _HOUR, s.messages_per_day / 24, stable_key("tl-mc", seed))
        self._tenant_streams: LRU[str, _Stream] = LRU(16_384)
        self._scripts: LRU[tuple[str, str, int, int], Script] = LRU(200_000)
        self._states: LRU[tuple[str, str, int], EntityState] = LRU(50_000)
        self._views: LRU[tuple[str, int], TenantView] = LRU(8_192)
        self._shared_at: tuple[int, list[Script], list[Script]] | None = None

    # -- which entities a tenant has --

    def _shared(self, t: int) -> tuple[list[Script], list[Script]]:
        """(global incidents, posts) born by ``t`` (the last instant asked is cached)."""
        cached = self._shared_at
        if cached is not None and cached[0] == t:
            return cached[1], cached[2]
        issues = [self._script("global", "", *birth) for birth in self._global.up_to(t)]
        posts = [self._script("mc", "", *birth) for birth in self._mc.up_to(t)]
        self._shared_at = (t, issues, posts)
        return issues, posts

    def scripts(self, model: TenantModel, t: int) -> list[Script]:
        """Every timeline entity ``model``'s tenant has seen by ``t``."""
        subscribed = set(model.workloads)
        issues, posts = self._shared(t)
        out = [s for s in issues if s.widx in subscribed]
        if self.settings.tenant_incidents_per_day > 0:
            stream = self._tenant_streams.get_or_create(
                model.tenant,
                lambda: _Stream(
                    self.origin,
                    _DAY,
                    self.settings.tenant_incidents_per_day,
                    stable_key("tl-tenant", self.config.seed, model.tenant),
                ),
            )
            out += [
                self._script("tenant", model.tenant, *birth, workloads=model.workloads)
                for birth in stream.up_to(t)
            ]
        out += [s for s in posts if s.widx in subscribed]
        return out

    def _script(
        self, stream: str, scope: str, born: int, b: int, k: int, workloads: Sequence[int] = ()
    ) -> Script:
        key = (stream, scope, b, k)
        hit = self._scripts.get(key)
        if hit is not None:
            return hit
        seed = self.config.seed
        if stream == "mc":
            script = self._message_script(f"MC{self.base_num + 1_000_000 + b * _CAP + k}", born)
        elif stream == "global":
            widx = _mix(stable_key("tl-global-workload", seed, b, k)) % len(CATALOGUE)
            number = self.base_num + 1_000_000 + b * _CAP + k
            script = self._issue_script(f"{CATALOGUE[widx].prefix}{number}", "", widx, born)
        else:
            tkey = stable_key("tl-tenant-id", seed, scope)
            widx = workloads[_mix(tkey + b * _CAP + k) % len(workloads)]
            # Eight digits: the tenant's own number range, then its own sequence.
            number = 20_000_000 + (tkey % 8_000) * 10_000 + (b * _CAP + k) % 10_000
            script = self._issue_script(f"{CATALOGUE[widx].prefix}{number}", scope, widx, born)
        self._scripts.put(key, script)
        return script

    # -- scripts --

    def _silent(self, key: int, n: int) -> bool:
        ratio = self.settings.silent_ratio
        return ratio > 0 and _unit(key ^ 0x5117E27 ^ (n * _GOLD)) < ratio

    def _issue_script(self, entity_id: str, scope: str, widx: int, born: int) -> Script:
        key = stable_key("tl-issue", self.config.seed, scope, entity_id)
        d = _Draws(key)
        wl = CATALOGUE[widx]
        n_features = len(wl.features)
        tpl = d.below(len(INCIDENT_TEMPLATES))
        fidx = d.below(n_features)
        status = _OPEN_STATUSES[d.below(len(_OPEN_STATUSES))]
        cls = "Incident" if status == "serviceInterruption" or d.chance(0.35) else "Advisory"
        u = _unit(d.next())
        origin = "thirdParty" if u < 0.04 else "customer" if u < 0.07 else "microsoft"
        title, impact, *_ = _incident_parts(tpl, widx, fidx)
        steps: list[Step] = []
        t = born

        def texts() -> tuple[str, str, str, str, str]:
            _, _, _, more, scope_text, root, next_steps = _incident_parts(tpl, widx, fidx)
            return f"Title: {title}\n\nUser Impact: {impact}", more, scope_text, root, next_steps

        def post(kind: str, text: str) -> tuple[str, Any]:
            content_type = "text" if d.chance(0.15) else "html"
            return ("post", (t, kind, content_type, text))

        def add(patch: list[tuple[str, Any]]) -> None:
            steps.append(Step(t, bool(steps) and self._silent(key, len(steps)), tuple(patch)))

        head, _more, scope_text, root, _next_steps = texts()
        add(
            [
                ("start", born),
                ("title", title),
                ("impact", impact),
                ("classification", cls),
                ("origin", origin),
                ("status", status),
                ("fidx", fidx),
                ("end", None),
                post("regular", f"{head}\n\nCurrent status: {CURRENT_STATUS_TEXTS[0]}{scope_text}"),
            ]
        )

        def updates(count: int, first_stage: int) -> None:
            nonlocal t, status, cls, title, impact, fidx
            for i in range(count):
                t += (15 + d.below(105)) * _MIN + d.below(_MIN)
                patch: list[tuple[str, Any]] = []
                if d.chance(0.7):
                    choices = _MID_STATUSES[min(first_stage + i, len(_MID_STATUSES) - 1)]
                    new = choices[d.below(len(choices))]
                    if new != status:
                        status = new
                        patch.append(("status", status))
                if d.chance(0.15):
                    cls = "Advisory" if cls == "Incident" else "Incident"
                    patch.append(("classification", cls))
                other = (tpl + 1 + d.below(len(INCIDENT_TEMPLATES) - 1)) % len(INCIDENT_TEMPLATES)
                if d.chance(0.08):
                    title = _incident_parts(other, widx, fidx)[0]
                    patch.append(("title", title))
                if d.chance(0.08):
                    impact = _incident_parts(other, widx, fidx)[1]
                    patch.append(("impact", impact))
                if n_features > 1 and d.chance(0.06):
                    fidx = (fidx + 1 + d.below(n_features - 1)) % n_features
                    patch.append(("fidx", fidx))
                if not patch or d.chance(0.85):
                    head, more, scope_text, root, _ = texts()
                    stage = CURRENT_STATUS_TEXTS[min(i + 1, len(CURRENT_STATUS_TEXTS) - 1)]
                    nxt = t + 90 * _MIN
                    nxt -= nxt % (30 * _MIN)
                    text = (
                        f"{head}{more}\n\nCurrent status: {stage}{scope_text}"
                        f"{root if i >= 1 else ''}\n\nNext update by: {human_time(nxt)}"
                    )
                    patch.append(post(_POST_TYPES[d.below(len(_POST_TYPES))], text))
                add(patch)

        def resolve(final: str) -> None:
            nonlocal t, status
            t += (20 + d.below(160)) * _MIN + d.below(_MIN)
            status = final
            head, more, scope_text, root, next_steps = texts()
            outcome = (
                FINAL_STATUS_FALSE_POSITIVE if final == "falsePositive" else FINAL_STATUS_RESTORED
            )
            text = (
                f"{head}{more}\n\nFinal status: {outcome}{scope_text}"
                f"\n\nStart time: {human_time(born)}\n\nEnd time: {human_time(t)}{root}{next_steps}"
            )
            add([("status", final), ("end", t), post("regular", text)])

        updates(1 + d.below(4), 0)
        resolve("falsePositive" if d.chance(0.1) else "serviceRestored")
        if d.chance(0.15):  # reopened: the issue came back
            t += (60 + d.below(11 * 60)) * _MIN + d.below(_MIN)
            status = ("investigating", "serviceDegradation")[d.below(2)]
            head, _, scope_text, _, _ = texts()
            text = (
                f"{head}\n\nCurrent status: We've received reports that the issue has recurred, "
                f"and we're investigating.{scope_text}"
            )
            add([("status", status), ("end", None), post("quick", text)])
            updates(1 + d.below(2), 1)
            resolve("serviceRestored")
        if (cls == "Incident" and d.chance(0.6)) or d.chance(0.1):  # a post-incident review
            t += d.below(4 * _DAY) + _DAY
            head, _, _, root, _ = texts()
            text = (
                f"{head}\n\nFinal status: A post-incident report has been published; it has the "
                f"details of the root cause and the steps we are taking.{root}"
            )
            add([("status", "postIncidentReviewPublished"), post("strategic", text)])
        return Script("issue", entity_id, scope, widx, tuple(s.time for s in steps), tuple(steps))

    def _message_script(self, entity_id: str, born: int) -> Script:
        key = stable_key("tl-message", self.config.seed, entity_id)
        d = _Draws(key)
        tpl = d.below(len(MC_TEMPLATES))
        widx = d.below(len(CATALOGUE))
        services: tuple[int, ...] = (widx,)
        if d.chance(0.1):
            services += ((widx + 1 + d.below(len(CATALOGUE) - 1)) % len(CATALOGUE),)
        title, html = _mc_parts(tpl, widx)
        _, _, _, _, tags, category = MC_TEMPLATES[tpl]
        severity = legacy_severity(d.next())
        start = born - (60 + d.below(40 * 24 * 60)) * _MIN - d.below(_MIN)  # back-dated
        start -= start % 1000
        action_by = (born // _DAY + 30 + d.below(31)) * _DAY if d.chance(0.3) else None
        end = (born // _DAY + 30 + d.below(150)) * _DAY + 7 * _HOUR
        external_on, blog_on, help_on = link_odds(d.next())
        lower = entity_id.lower()
        t = born
        steps = [
            Step(
                t,
                False,
                (
                    ("start", start),
                    ("title", title),
                    ("body", html),
                    ("tags", tuple(tags)),
                    ("category", category),
                    ("severity", severity),
                    ("major", d.chance(0.3)),
                    ("action_by", action_by),
                    ("end", end),
                    ("services", services),
                    ("external", f"https://aka.ms/{lower}" if external_on else ""),
                    ("blog", f"https://techcommunity.microsoft.com/{lower}" if blog_on else ""),
                    (
                        "help",
                        f"https://learn.microsoft.com/microsoft-365/{lower}" if help_on else "",
                    ),
                ),
            )
        ]
        reason = d.below(len(_UPDATE_REASONS))
        u = _unit(d.next())
        for n in range(0 if u < 0.45 else 1 if u < 0.75 else 2 if u < 0.9 else 3):
            t += 2 * _HOUR + d.below(10 * _DAY)
            reason = (reason + 1 + d.below(len(_UPDATE_REASONS) - 1)) % len(_UPDATE_REASONS)
            updated_tags = ("Updated message", *(x for x in tags if x != "Updated message"))
            patch: list[tuple[str, Any]] = [
                ("title", f"(Updated) {title}"),
                ("tags", updated_tags),
                ("body", f"<p>Updated {_day_text(t)}: {_UPDATE_REASONS[reason]}</p>{html}"),
            ]
            if d.chance(0.3):
                action_by = (max(action_by or 0, t) // _DAY + 7 + d.below(24)) * _DAY
                patch.append(("action_by", action_by))
            if d.chance(0.3):
                end += 30 * _DAY
                patch.append(("end", end))
            if d.chance(0.1) and len(services) < 3:
                extra = (services[-1] + 1 + d.below(len(CATALOGUE) - 1)) % len(CATALOGUE)
                if extra not in services:
                    services += (extra,)
                    patch.append(("services", services))
            if severity == "Normal" and d.chance(0.03):
                severity = "High"
                patch.append(("severity", severity))
            steps.append(Step(t, self._silent(key, n + 1), tuple(patch)))
        return Script("message", entity_id, "", widx, tuple(s.time for s in steps), tuple(steps))

    # -- states --

    def state(self, script: Script, version: int) -> EntityState:
        """``script``'s entity after its first ``version`` (>= 1) steps."""
        key = (script.scope, script.id, version)
        hit = self._states.get(key)
        if hit is None:
            hit = self._render(script, version)
            self._states.put(key, hit)
        return hit

    def _render(self, script: Script, version: int) -> EntityState:
        fields: dict[str, Any] = {}
        posts: list[tuple[int, str, str, str]] = []
        last = script.born
        for step in script.steps[:version]:
            if not step.silent:
                last = step.time
            for name, value in step.patch:
                if name == "post":
                    posts.append(value)
                else:
                    fields[name] = value
        if script.kind == "issue":
            legacy, graph = _render_issue(script, fields, posts, last)
            impact = (
                "ServiceInterruption"
                if fields["status"] == "serviceInterruption"
                else "ServiceDegradation"
            )
            return EntityState(
                script, version, legacy, graph, last, fields["end"] is not None,
                fields["start"], fields["end"], fields["fidx"], impact,
            )  # fmt: skip
        legacy, graph = _render_message(script, fields, last)
        return EntityState(
            script, version, legacy, graph, last, False, fields["start"], fields["end"], 0, ""
        )

    def view(self, model: TenantModel, t: int) -> TenantView:
        """``model``'s tenant's timeline entities at ``t`` (cached per tenant and instant)."""
        key = (model.tenant, t)
        hit = self._views.get(key)
        if hit is not None:
            return hit
        issues: list[EntityState] = []
        messages: list[EntityState] = []
        total = 0
        for script in self.scripts(model, t):
            version = script.version(t)
            if version:
                total += version
                (issues if script.kind == "issue" else messages).append(self.state(script, version))
        issues.sort(key=_served_order)
        messages.sort(key=_served_order)
        view = TenantView(model.tenant, t, tuple(issues), tuple(messages), total)
        self._views.put(key, view)
        return view

    # -- ground truth --

    def entity_changes(self, model: TenantModel, since: int, until: int) -> Iterator[Change]:
        """The issue and message changes in (``since``, ``until``], in no particular order."""
        for script in self.scripts(model, until):
            for version in range(1, len(script.times) + 1):
                at = script.times[version - 1]
                if not since < at <= until:
                    continue
                after = self.state(script, version)
                before = self.state(script, version - 1) if version > 1 else None
                yield Change(
                    _datetime(at),
                    model.tenant,
                    script.kind,
                    script.id,
                    _event(script.kind, before, after),
                    _changed(before, after),
                    script.steps[version - 1].silent,
                )

    def issue_times(self, model: TenantModel, since: int, until: int) -> list[int]:
        """When any of the tenant's timeline incidents changed in (``since``, ``until``]."""
        times = {
            at
            for script in self.scripts(model, until)
            if script.kind == "issue"
            for at in script.times
            if since < at <= until
        }
        return sorted(times)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _event(kind: str, before: EntityState | None, after: EntityState) -> Event:
    if kind == "message":
        return "message.published" if before is None else "message.updated"
    if before is None:
        return "issue.opened"
    if after.resolved and not before.resolved:
        return "issue.resolved"
    if before.resolved and not after.resolved:
        return "issue.reopened"
    return "issue.updated"


def _changed(before: EntityState | None, after: EntityState) -> tuple[str, ...]:
    if before is None:
        return tuple(k for k in after.graph if k != "lastModifiedDateTime")
    return tuple(
        k
        for k, v in after.graph.items()
        if k != "lastModifiedDateTime" and before.graph.get(k) != v
    )


def _render_issue(
    script: Script, f: dict[str, Any], posts: Sequence[tuple[int, str, str, str]], last: int
) -> tuple[Json, Json]:
    from .graph.convert import issue_from_legacy

    wl = CATALOGUE[script.widx]
    feature = wl.features[f["fidx"]]
    end = f["end"]
    legacy: Json = {
        "AffectedWorkloadDisplayNames": [],
        "AffectedWorkloadNames": [],
        "Status": LEGACY_STATUS[f["status"]],
        "Workload": wl.id,
        "WorkloadDisplayName": wl.display_name,
        "ActionType": None,
        "AdditionalDetails": [],
        "AffectedTenantCount": 0,
        "AffectedUserCount": None,
        "Classification": f["classification"],
        "EndTime": None if end is None else iso_ms(end),
        "Feature": feature.name,
        "FeatureDisplayName": feature.display_name,
        "UserFunctionalImpact": "",
        "Id": script.id,
        "ImpactDescription": f["impact"],
        "LastUpdatedTime": iso_ms(last),
        "MessageType": "Incident",
        "Messages": [
            {"MessageText": text, "PublishedTime": iso_ms(at)} for at, _, _, text in posts
        ],
        "PostIncidentDocumentUrl": None,
        "Severity": "Sev1" if f["classification"] == "Incident" else "Sev2",
        "StartTime": iso_ms(f["start"]),
        "TenantParams": [],
        "Title": f["title"],
    }
    graph = issue_from_legacy(legacy)
    graph["origin"] = f["origin"]
    graph["posts"] = [
        {
            "createdDateTime": iso_ms(at),
            "postType": kind,
            "description": {"contentType": content_type, "content": text},
        }
        for at, kind, content_type, text in posts
    ]
    return legacy, graph


def _render_message(script: Script, f: dict[str, Any], last: int) -> tuple[Json, Json]:
    from .graph.convert import message_from_legacy

    services = [CATALOGUE[w] for w in f["services"]]
    action_by = f["action_by"]
    legacy: Json = {
        "AffectedWorkloadDisplayNames": [w.display_name for w in services],
        "AffectedWorkloadNames": [w.id for w in services],
        "Status": "",
        "Workload": None,
        "WorkloadDisplayName": None,
        "ActionType": "Awareness",
        "AdditionalDetails": [],
        "AffectedTenantCount": 0,
        "AffectedUserCount": None,
        "Classification": "Advisory",
        "EndTime": iso_ms(f["end"]),
        "Feature": None,
        "FeatureDisplayName": None,
        "UserFunctionalImpact": None,
        "Id": script.id,
        "ImpactDescription": None,
        "LastUpdatedTime": iso_ms(last),
        "MessageType": "MessageCenter",
        "Messages": [{"MessageText": f["body"], "PublishedTime": iso_ms(f["start"])}],
        "PostIncidentDocumentUrl": None,
        "Severity": f["severity"],
        "StartTime": iso_ms(f["start"]),
        "TenantParams": [],
        "Title": f["title"],
        "ActionRequiredByDate": None if action_by is None else iso_ms(action_by),
        "AnnouncementId": 0,
        "Category": f["category"],
        "MessageTagNames": list(f["tags"]),
        "ExternalLink": f["external"],
        "IsDismissed": False,
        "IsRead": False,
        "IsMajorChange": f["major"],
        "PreviewDuration": None,
        "AppliesTo": None,
        "MilestoneDate": iso_ms(f["start"] + 1000),
        "Milestone": "",
        "BlogLink": f["blog"],
        "HelpLink": f["help"],
        "FlightName": None,
        "FeatureName": None,
    }
    return legacy, message_from_legacy(legacy)


def spec_message(item: Json) -> Json:
    """A real-shape legacy message in the documented (spec) shape, as :mod:`.data` renders it."""
    spec: Json = {
        "Id": item["Id"],
        "Name": item["Id"],
        "Title": item["Title"],
        "StartTime": item["StartTime"],
        "EndTime": item["EndTime"],
        "Status": item["Status"],
        "Messages": [
            {"PublishedTime": m["PublishedTime"], "MessageText": m["MessageText"]}
            for m in item["Messages"]
        ],
        "LastUpdatedTime": item["LastUpdatedTime"],
        "Workload": item["Workload"],
        "WorkloadDisplayName": item["WorkloadDisplayName"],
        "Feature": item["Feature"],
        "FeatureDisplayName": item["FeatureDisplayName"],
        "MessageType": item["MessageType"],
    }
    return {k: v for k, v in spec.items() if v is not None or k == "Title"}
