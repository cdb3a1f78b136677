"""What the Graph routes serve per tenant, derived lazily from the legacy data.

A tenant's first Graph request walks its legacy message list without rendering text; pages render
only their own items, shared across tenants by id (a legacy id names the same content in every
tenant). A ``$filter`` converts the tenant's whole collection once, then is cached. Delegated
callers' viewpoint state (read, archived, favorited) is kept per tenant and user.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..cache import LRU
from ..config import EmulatorConfig
from ..data import INCIDENT, MESSAGE_CENTER, DataStore, Json, json_copy
from ..errors import not_found
from ..odata import Predicate, parse_filter
from .callers import GraphCaller
from .convert import health_from_legacy, issue_from_legacy, message_from_legacy
from .query import HEALTH_FIELDS, ISSUE_FIELDS, MESSAGE_FIELDS, typed

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
    """A tenant's issues or messages, by id only: items are converted when a page needs them."""

    name: str  # "issues" or "messages"
    ids: list[str]
    legacy: list[int]  # each item's position in the tenant's legacy Messages order
    index: dict[str, int]  # lower-case id -> position

    def position(self, item_id: str) -> int | None:
        return self.index.get(item_id.lower())


@dataclasses.dataclass(frozen=True)
class TenantData:
    tenant: str
    health: list[Json]
    health_rows: list[dict[str, object]]
    issues: Collection
    messages: Collection


class GraphStore:
    """The Graph items of every tenant, over an emulator's legacy :class:`~..data.DataStore`."""

    def __init__(self, store: DataStore) -> None:
        # Graph is derived from the real shape whatever shape the legacy routes serve.
        config = store.config
        self._store = store if config.shape == "real" else DataStore(_real(config))
        self._tenants: LRU[str, TenantData] = LRU(1024)
        self._converted: LRU[str, Entry] = LRU(20_000)
        self._filtered: LRU[tuple[str, str, str], list[int]] = LRU(256)
        # (tenant, user) -> message id (lower case) -> (read, archived, favorited)
        self._viewpoints: dict[tuple[str, str], dict[str, Viewpoint]] = {}

    def dataset(self, tenant: str) -> GraphDataset:
        """Deep copies of what the Graph routes serve for ``tenant`` (application view)."""
        data = self.data(tenant)

        return GraphDataset(
            json_copy(data.health),
            json_copy([e.item for e in self.all_entries(data, data.issues)]),
            json_copy([e.item for e in self.all_entries(data, data.messages)]),
        )

    def data(self, tenant: str) -> TenantData:
        key = tenant.lower()
        return self._tenants.get_or_create(key, lambda: self._build(key))

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
        return self.entries(data, collection, range(len(collection.ids)))

    def matching(
        self, data: TenantData, collection: Collection, filter_text: str | None
    ) -> Sequence[int]:
        """Positions in ``collection`` that ``filter_text`` keeps (all without a filter)."""
        if filter_text is None:
            return range(len(collection.ids))
        key = (data.tenant, collection.name, filter_text)
        hit = self._filtered.get(key)
        if hit is None:
            fields = ISSUE_FIELDS if collection.name == "issues" else MESSAGE_FIELDS
            predicate: Predicate = parse_filter(filter_text, fields)
            hit = [n for n, e in enumerate(self.all_entries(data, collection)) if predicate(e.row)]
            self._filtered.put(key, hit)
        return hit

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


def _collection(name: str, ids: list[str], legacy: list[int]) -> Collection:
    return Collection(name, ids, legacy, {item_id.lower(): n for n, item_id in enumerate(ids)})


def _real(config: EmulatorConfig) -> EmulatorConfig:
    return dataclasses.replace(config, shape="real")
