"""What the Graph routes serve per tenant, derived lazily from the legacy data.

A tenant's first Graph request walks its legacy message list without rendering text; pages render
only their own items, shared across tenants by id (a legacy id names the same content in every
tenant). A ``$filter`` converts the tenant's whole collection once, then is cached. Delegated
callers' viewpoint state (read, archived, favorited) is kept per tenant and user.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..cache import LRU
from ..config import EmulatorConfig
from ..data import INCIDENT, MESSAGE_CENTER, Json, json_copy
from ..errors import not_found
from ..odata import FieldKind, Predicate, parse_datetime_us, parse_filter
from ..world import DataStore
from .callers import GraphCaller
from .convert import health_from_legacy, issue_from_legacy, message_from_legacy
from .query import HEALTH_FIELDS, ISSUE_FIELDS, MESSAGE_FIELDS, typed

if TYPE_CHECKING:
    from ..timeline import EntityState

__all__ = ["Collection", "Entry", "GraphDataset", "GraphStore", "TenantData"]

Viewpoint = tuple[bool, bool, bool]  # (read, archived, favorited)


@dataclasses.dataclass(frozen=True)
class GraphDataset:
    """What the Graph routes serve for one tenant (application view: ``viewPoint`` null)."""

    health_overviews: list[Json]
    issues: list[Json]
    messages: list[Json]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One converted item, its typed ``$filter`` row, and (messages) the legacy read/dismissed
    state a user's viewpoint starts from."""

    item: Json
    row: dict[str, object]
    viewpoint: tuple[bool, bool, bool]  # (read, archived, favorited)


@dataclasses.dataclass(frozen=True)
class Collection:
    """A tenant's issues or messages, by id only: items are converted when a page needs them.

    Positions ``0 .. len(head) - 1`` are the timeline's entries at one instant (already converted,
    newest first); the static items follow them, in their own order.
    """

    name: str  # "issues" or "messages"
    ids: list[str]  # the static items'
    legacy: list[int]  # each static item's position in the tenant's static legacy Messages order
    index: dict[str, int]  # lower-case id -> static position
    head: tuple[Entry, ...] = ()

    def __len__(self) -> int:
        return len(self.head) + len(self.ids)

    def position(self, item_id: str) -> int | None:
        wanted = item_id.lower()
        for n, entry in enumerate(self.head):
            if str(entry.item["id"]).lower() == wanted:
                return n
        found = self.index.get(wanted)
        return None if found is None else len(self.head) + found

    def with_head(self, head: tuple[Entry, ...]) -> Collection:
        return dataclasses.replace(self, head=head)


@dataclasses.dataclass(frozen=True)
class TenantData:
    tenant: str
    health: list[Json]
    health_rows: list[dict[str, object]]
    issues: Collection
    messages: Collection


class GraphStore:
    """The Graph items of every tenant, over an emulator's legacy :class:`~..world.DataStore`."""

    def __init__(self, store: DataStore) -> None:
        # Graph is derived from the real shape whatever shape the legacy routes serve.
        config = store.config
        self._store = store if config.shape == "real" else DataStore(_real(config), store.timeline)
        # Sized for a 2,000-tenant poll cycle (about 20 KB a tenant at 250 messages): a smaller
        # cache would rebuild every tenant on every cycle.
        self._tenants: LRU[str, TenantData] = LRU(4096)
        self._at: LRU[tuple[str, int], TenantData] = LRU(4096)
        self._timeline_entries: LRU[tuple[str, str, int], Entry] = LRU(50_000)
        self._predicates: LRU[tuple[str, str], Predicate] = LRU(256)
        self._converted: LRU[str, Entry] = LRU(20_000)
        self._filtered: LRU[tuple[str, str, str], list[int]] = LRU(256)
        # (tenant, user) -> message id (lower case) -> (read, archived, favorited)
        self._viewpoints: dict[tuple[str, str], dict[str, Viewpoint]] = {}

    def dataset(self, tenant: str, t: int | None = None) -> GraphDataset:
        """Deep copies of what the Graph routes serve for ``tenant`` (application view)."""
        data = self.data_at(tenant, t)

        return GraphDataset(
            json_copy(data.health),
            json_copy([e.item for e in self.all_entries(data, data.issues)]),
            json_copy([e.item for e in self.all_entries(data, data.messages)]),
        )

    def data(self, tenant: str) -> TenantData:
        key = tenant.lower()
        return self._tenants.get_or_create(key, lambda: self._build(key))

    def data_at(self, tenant: str, t: int | None) -> TenantData:
        """The tenant's data at the world's time ``t`` (the static data when there is no
        timeline or ``t`` is None): the timeline's entries first, health at ``t``."""
        static = self.data(tenant)
        view = self._store.view(tenant, t)
        if view is None:
            return static
        key = (static.tenant, view.t)
        hit = self._at.get(key)
        if hit is not None:
            return hit
        health = [
            health_from_legacy(r) for r in self._store.status_list("CurrentStatus", tenant, t)
        ]
        data = TenantData(
            tenant=static.tenant,
            health=health,
            health_rows=[typed(h, HEALTH_FIELDS) for h in health],
            issues=static.issues.with_head(
                tuple(self._entry(s, ISSUE_FIELDS) for s in view.issues)
            ),
            messages=static.messages.with_head(
                tuple(self._entry(s, MESSAGE_FIELDS) for s in view.messages)
            ),
        )
        self._at.put(key, data)
        return data

    def _entry(self, state: EntityState, fields: Mapping[str, FieldKind]) -> Entry:
        key = (state.script.scope, state.script.id, state.version)
        hit = self._timeline_entries.get(key)
        if hit is None:
            hit = Entry(state.graph, typed(state.graph, fields), (False, False, False))
            self._timeline_entries.put(key, hit)
        return hit

    def _build(self, tenant: str) -> TenantData:
        """The tenant's ids, from the legacy message cores: no text is rendered here, so a scan
        of many tenants pays only for the pages it reads."""
        store = self._store
        issues: tuple[list[str], list[int]] = ([], [])
        messages: tuple[list[str], list[int]] = ([], [])
        for position, core in enumerate(store.gen.iter_cores(store.model(tenant))):
            target = (
                issues
                if core.kind == INCIDENT
                else messages
                if core.kind == MESSAGE_CENTER
                else None
            )
            if target is not None:
                target[0].append(core.msg_id)
                target[1].append(position)
        health = [health_from_legacy(r) for r in store.status_list("CurrentStatus", tenant)]
        return TenantData(
            tenant=tenant,
            health=health,
            health_rows=[typed(h, HEALTH_FIELDS) for h in health],
            issues=_collection("issues", *issues),
            messages=_collection("messages", *messages),
        )

    def entries(
        self, data: TenantData, collection: Collection, positions: Sequence[int]
    ) -> list[Entry]:
        """The converted items at ``positions``; only those not cached are rendered."""
        head = collection.head
        if not head:
            return self._static_entries(data, collection, positions)
        k = len(head)
        static = iter(self._static_entries(data, collection, [p - k for p in positions if p >= k]))
        return [head[p] if p < k else next(static) for p in positions]

    def _static_entries(
        self, data: TenantData, collection: Collection, positions: Sequence[int]
    ) -> list[Entry]:
        entries: list[Entry | None] = [self._converted.get(collection.ids[p]) for p in positions]
        missing = [n for n, entry in enumerate(entries) if entry is None]
        if missing:
            legacy_positions = [collection.legacy[positions[n]] for n in missing]
            rendered = self._store.messages(data.tenant, legacy_positions)
            issues = collection.name == "issues"
            for n, legacy in zip(missing, rendered, strict=True):
                # A legacy id names the same content in every tenant, so entries are shared.
                item = issue_from_legacy(legacy) if issues else message_from_legacy(legacy)
                entry = Entry(
                    item,
                    typed(item, ISSUE_FIELDS if issues else MESSAGE_FIELDS),
                    (bool(legacy.get("IsRead")), bool(legacy.get("IsDismissed")), False),
                )
                self._converted.put(str(legacy["Id"]), entry)
                entries[n] = entry
        return [entry for entry in entries if entry is not None]

    def all_entries(self, data: TenantData, collection: Collection) -> list[Entry]:
        return self.entries(data, collection, range(len(collection)))

    def matching(
        self, data: TenantData, collection: Collection, filter_text: str | None
    ) -> Sequence[int]:
        """Positions in ``collection`` that ``filter_text`` keeps (all without a filter)."""
        if filter_text is None:
            return range(len(collection))
        fields = ISSUE_FIELDS if collection.name == "issues" else MESSAGE_FIELDS
        predicate = self._predicates.get_or_create(
            (collection.name, filter_text), lambda: parse_filter(filter_text, fields)
        )
        key = (data.tenant, collection.name, filter_text)
        hit = self._filtered.get(key)
        if hit is None:
            hit = self._static_matching(data, collection, filter_text, predicate)
            self._filtered.put(key, hit)
        head = collection.head
        if not head:
            return hit
        k = len(head)
        return [n for n, e in enumerate(head) if predicate(e.row)] + [k + p for p in hit]

    def _static_matching(
        self, data: TenantData, collection: Collection, filter_text: str, predicate: Predicate
    ) -> list[int]:
        if not collection.ids:
            return []
        # A watcher's poll asks for what changed since its cursor; the static items are ordered
        # newest first (see .data), so when the newest is older than the bound nothing matches,
        # and a poll cycle over thousands of tenants need not convert their static items.
        bound = _last_modified_bound(filter_text)
        if bound is not None:
            newest = self._static_entries(data, collection, [0])[0].row["lastModifiedDateTime"]
            strict, value = bound
            if isinstance(newest, int) and (newest <= value if strict else newest < value):
                return []
        static = self._static_entries(data, collection, range(len(collection.ids)))
        return [n for n, e in enumerate(static) if predicate(e.row)]

    def one(self, data: TenantData, collection: Collection, item_id: str) -> Entry:
        position = collection.position(item_id)
        if position is None:
            kind = "issue" if collection.name == "issues" else "message"
            raise not_found(f"No {kind} with id {item_id[:64]!r} was found.")
        return self.entries(data, collection, [position])[0]

    def viewed(self, caller: GraphCaller, entry: Entry) -> Json:
        """A message as ``caller`` sees it: delegated callers get their viewPoint."""
        if not caller.delegated:
            return entry.item
        key = str(entry.item["id"]).lower()
        state = self._viewpoints.get((caller.tenant, caller.user or ""), {}).get(key)
        read, archived, favorited = state or entry.viewpoint
        view = {"isRead": read, "isArchived": archived, "isFavorited": favorited}
        return {**entry.item, "viewPoint": view}

    def set_viewpoints(
        self,
        caller: GraphCaller,
        data: TenantData,
        positions: Sequence[int],
        field: int,
        value: bool,
    ) -> None:
        """Set one viewpoint field (0 read, 1 archived, 2 favorited) of messages, for ``caller``."""
        states = self._viewpoints.setdefault((caller.tenant, caller.user or ""), {})
        for entry in self.entries(data, data.messages, positions):
            key = str(entry.item["id"]).lower()
            state = list(states.get(key) or entry.viewpoint)
            state[field] = value
            states[key] = (state[0], state[1], state[2])


_LAST_MODIFIED_BOUND = re.compile(
    r"\s*lastModifiedDateTime\s+(ge|gt)\s+'?([0-9T:.+Z-]+)'?\s*", re.I
)


def _last_modified_bound(filter_text: str) -> tuple[bool, int] | None:
    """(strict, microseconds) when the filter is exactly ``lastModifiedDateTime ge|gt <time>``."""
    match = _LAST_MODIFIED_BOUND.fullmatch(filter_text)
    if match is None:
        return None
    value = parse_datetime_us(match.group(2))
    return None if value is None else (match.group(1).lower() == "gt", value)


def _collection(name: str, ids: list[str], legacy: list[int]) -> Collection:
    return Collection(name, ids, legacy, {item_id.lower(): n for n, item_id in enumerate(ids)})


def _real(config: EmulatorConfig) -> EmulatorConfig:
    return dataclasses.replace(config, shape="real")
