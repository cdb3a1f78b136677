"""The emulator's data as its routes read it: the generator's static world, the timeline's moving one
over it (when the emulator has a clock), and bounded caches.

The generator (:mod:`.data`) and the timeline (:mod:`.timeline`) are pure functions of the
configuration, the tenant and the time; this is the one place that composes them, so neither needs the
other's module.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
from collections.abc import Iterable, Iterator

from .cache import LRU
from .config import EmulatorConfig
from .data import (
    Generator,
    Json,
    Operation,
    TenantDataset,
    TenantModel,
    filter_fields,
    json_copy,
    status_row_typed,
)
from .odata import Predicate, parse_datetime_us
from .timeline import TenantView, Timeline, spec_message

__all__ = ["DataStore"]


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building acyclic data.

    Rendering a page allocates thousands of dicts and lists that never form cycles; left
    on, the collector repeatedly walks the whole heap and doubles the cost of serving
    large message sets.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class DataStore:
    """Generator plus bounded caches; the single entry point the HTTP layer uses.

    With a ``timeline`` (the emulator has a clock), the ``*_at``-style methods take the world's
    time ``t`` (epoch ms; None means the static world): the timeline's entities come first in the
    Messages order (they are the newest), and the status rows follow the incidents active at ``t``.
    """

    def __init__(self, config: EmulatorConfig, timeline: Timeline | None = None) -> None:
        self.config = config
        self.gen = Generator(config)
        self.timeline = timeline
        self._models: LRU[str, TenantModel] = LRU(16_384)
        self._lists: LRU[tuple[str, str], list[Json]] = LRU(2_048)
        self._typed: LRU[tuple[str, str], list[dict[str, object]]] = LRU(512)
        self._filtered: LRU[tuple[str, str], list[int]] = LRU(64)
        self._rendered: LRU[str, Json] = LRU(20_000)
        self._lists_at: LRU[tuple[str, str, int], list[Json]] = LRU(4_096)
        self._typed_at: LRU[tuple[str, str, int], list[dict[str, object]]] = LRU(512)
        self._heads: LRU[tuple[str, int], tuple[list[Json], list[dict[str, object]]]] = LRU(4_096)
        # Sharing only pays when tenants draw from a pool the cache can hold; with huge
        # per-tenant lists every lookup would miss and only add overhead.
        self._share_rendered = config.messages_per_tenant <= 2_000

    def model(self, tenant: str) -> TenantModel:
        t = tenant.lower()
        return self._models.get_or_create(t, lambda: self.gen.tenant_model(t))

    def view(self, tenant: str, t: int | None) -> TenantView | None:
        """The tenant's timeline entities at ``t`` (None without a timeline or time)."""
        if self.timeline is None or t is None:
            return None
        return self.timeline.view(self.model(tenant), t)

    def status_list(self, op: Operation, tenant: str, t: int | None = None) -> list[Json]:
        """Services/CurrentStatus/HistoricalStatus wire dicts for ``tenant`` (cached)."""
        model = self.model(tenant)
        view = self.view(tenant, t) if op != "Services" else None
        if view is not None:
            return self._lists_at.get_or_create(
                (op, model.tenant, view.t), lambda: self._status_at(op, model, view)
            )
        if op == "Services":
            build = self.gen.services
        elif op == "CurrentStatus":
            build = self.gen.current_status
        elif op == "HistoricalStatus":
            build = self.gen.historical_status
        else:
            raise ValueError(op)
        return self._lists.get_or_create((op, model.tenant), lambda: build(model))

    def _status_at(self, op: Operation, model: TenantModel, view: TenantView) -> list[Json]:
        if op == "CurrentStatus":
            active = [
                (s.script.widx, s.fidx, s.script.id, s.impact)
                for s in view.issues
                if not s.resolved
            ]
            return self.gen.current_status(model, active, self.gen.status_time(model, view.t))
        if op == "HistoricalStatus":
            incidents = [
                (s.script.widx, s.fidx, s.script.id, s.start, s.end, s.impact) for s in view.issues
            ]
            return self.gen.historical_status(model, view.t, incidents)
        raise ValueError(op)

    def typed_status_rows(
        self, op: Operation, tenant: str, t: int | None = None
    ) -> list[dict[str, object]]:
        low = tenant.lower()
        if self.view(low, t) is not None and op != "Services":
            assert t is not None
            return self._typed_at.get_or_create(
                (op, low, t), lambda: [status_row_typed(r) for r in self.status_list(op, low, t)]
            )
        return self._typed.get_or_create(
            (op, low), lambda: [status_row_typed(r) for r in self.status_list(op, low)]
        )

    def head(self, tenant: str, t: int | None) -> tuple[list[Json], list[dict[str, object]]]:
        """The timeline's Messages items at ``t`` (configured shape) and their ``$filter`` rows;
        empty without a timeline. They come before the static items in the served order."""
        view = self.view(tenant, t)
        if view is None:
            return [], []
        return self._heads.get_or_create((view.tenant, view.t), lambda: self._head(view))

    def _head(self, view: TenantView) -> tuple[list[Json], list[dict[str, object]]]:

        items = view.legacy_messages
        if not self.real_shape:
            items = [spec_message(i) for i in items]
        fields, _ = filter_fields("Messages", self.config.shape)
        rows = []
        for item in items:
            row: dict[str, object] = {}
            for name, kind in fields.items():
                value = item.get(name)
                row[name] = parse_datetime_us(value) if kind == "datetime" and value else value
            rows.append(row)
        return items, rows

    @property
    def real_shape(self) -> bool:
        return self.config.shape == "real"

    def message_count(self, tenant: str, t: int | None = None) -> int:
        return self.model(tenant).message_count + len(self.head(tenant, t)[0])

    def messages(self, tenant: str, indices: Iterable[int], t: int | None = None) -> list[Json]:
        """Wire dicts of the messages at ``indices`` of the served order.

        The dicts are shared with a cache (an Id names the same content in every tenant,
        so multi-tenant scans render each incident once): treat them as read-only.
        """
        head = self.head(tenant, t)[0] if t is not None else None
        if head:
            k = len(head)
            indices = list(indices)
            static = iter(self._static_messages(tenant, [i - k for i in indices if i >= k]))
            return [head[i] if i < k else next(static) for i in indices]
        return self._static_messages(tenant, indices)

    def _static_messages(self, tenant: str, indices: Iterable[int]) -> list[Json]:
        model = self.model(tenant)
        gen = self.gen
        cache = self._rendered
        with _no_gc():
            if not self._share_rendered:
                return [gen.render_message(gen.core_at(model, i)) for i in indices]
            out: list[Json] = []
            for i in indices:
                core = gen.core_at(model, i)
                item = cache.get(core.msg_id)
                if item is None:
                    item = gen.render_message(core)
                    cache.put(core.msg_id, item)
                out.append(item)
            return out

    def filtered_indices(
        self,
        tenant: str,
        filter_key: str,
        predicate: Predicate,
        needs_text: bool,
        t: int | None = None,
    ) -> list[int]:
        """Indices (served order) of the tenant's messages matching ``predicate``.

        Cached per (tenant, ``filter_key``) so paging through a filtered result set
        scans the tenant's messages once, not once per page.
        """
        model = self.model(tenant)
        cache_key = (model.tenant, filter_key)
        hit = self._filtered.get(cache_key)
        if hit is None:
            gen = self.gen
            with _no_gc():
                hit = [
                    i
                    for i, core in enumerate(gen.iter_cores(model))
                    if predicate(gen.message_row(core, needs_text))
                ]
            self._filtered.put(cache_key, hit)
        head_rows = self.head(tenant, t)[1] if t is not None else []
        if not head_rows:
            return hit
        k = len(head_rows)
        return [n for n, row in enumerate(head_rows) if predicate(row)] + [k + i for i in hit]

    def dataset(self, tenant: str, t: int | None = None) -> TenantDataset:
        """Deep copies of everything served for ``tenant`` (callers may mutate them)."""
        return TenantDataset(
            services=json_copy(self.status_list("Services", tenant)),
            current_status=json_copy(self.status_list("CurrentStatus", tenant, t)),
            historical_status=json_copy(self.status_list("HistoricalStatus", tenant, t)),
            messages=json_copy(self.messages(tenant, range(self.message_count(tenant, t)), t)),
        )

    def make_tenant_ids(self) -> list[str]:
        """``config.tenants`` GUIDs; exactly round(ratio * n) of them are degraded."""
        n = self.config.tenants
        # With zero messages no tenant can hold an active incident, so none is degraded.
        want_degraded = round(self.config.degraded_ratio * n) if self.gen.n_slots else 0
        want_healthy = n - want_degraded
        out: list[str] = []
        counter = 0
        while len(out) < n:
            raw = bytearray(
                hashlib.blake2b(
                    f"tenant-id\x1f{self.config.seed}\x1f{counter}".encode(), digest_size=16
                ).digest()
            )
            counter += 1
            raw[6] = (raw[6] & 0x0F) | 0x40  # RFC 4122 version 4
            raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
            h = raw.hex()
            guid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            degraded = self.model(guid).degraded
            if degraded and want_degraded > 0:
                want_degraded -= 1
                out.append(guid)
            elif not degraded and want_healthy > 0:
                want_healthy -= 1
                out.append(guid)
        return out
