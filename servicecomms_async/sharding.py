"""Sharding: a stable share of the tenants for each of ``N`` workers, so that a scan or a watch of
thousands of tenants runs on several machines with the engine you already have.

::

    shard = Shard.parse("1/4")                 # shard 1 of 4 (0-based: 0, 1, 2, 3)
    shard = Shard.from_environment(4)          # index from $JOB_COMPLETION_INDEX (Kubernetes)
    mine = shard.select(tenant_ids)            # this shard's tenants, normalised, input order kept
    shard_of("contoso.com", 4)                 # -> 0..3

    summary = run_watch_shard(tenants, "auto/4", "/state/watch-{shard}.db",
                              session=lambda: ServiceCommsSession(credential_for, api="graph"),
                              sinks=[JsonlSink("/out/events.jsonl")])   # Celery: a plain call

Contract:

* **Indices are 0-based**: ``I/N`` with ``I`` in ``0..N-1``, as Kubernetes numbers an Indexed Job's
  pods (``JOB_COMPLETION_INDEX``) and a StatefulSet its replicas. ``auto/N`` takes ``I`` from
  ``$JOB_COMPLETION_INDEX``. Anything else is a ``ValueError`` naming what was expected.
* **Rendezvous (highest-random-weight) hashing on the normalised tenant id.** The id is normalised as
  every request normalises it (:func:`~servicecomms_async._validate.validate_tenant_id`: GUIDs in
  canonical lower-case form, domains in lower case, a trailing dot dropped), so ``CONTOSO.com`` and
  ``contoso.com.`` land on the same shard. Each shard ``s`` weighs a tenant ``t`` as the first 8 bytes,
  big-endian, of ``blake2b(f"{s}:{t}".encode(), digest_size=8)``; the tenant belongs to the shard of
  the highest weight (the lowest index on a tie). The hash is fixed here and never Python's
  ``hash()``, so every process, machine and Python version (whatever ``PYTHONHASHSEED``) agrees.
* **Stable when the count changes.** Going from ``N`` to ``N + 1`` shards, a tenant moves only when the
  new shard outweighs the shard it had, so only the new shard's share (``1/(N+1)`` of the tenants,
  about) moves, all of it to the new shard; the others stay where they were, with their state.
* **Balanced as chance allows.** Each tenant is placed on its own, so a shard's size is binomial:
  ``T/N`` give or take ``sqrt(T/N * (1 - 1/N))`` (10,000 tenants over 4 shards: 2,500 +- 43; over 16:
  625 +- 24). Only an assignment that depends on the whole list could be tighter, and it would move
  tenants, with their state, whenever the list changed.
* **Cost.** ``N`` hashes per tenant: 10,000 tenants over 16 shards take well under a second.

:func:`watch_shard` (a coroutine: Prefect, Temporal, Airflow, Ray) and :func:`run_watch_shard` (its
synchronous form, ``asyncio.run`` per call: Celery, Dask, a thread) run one watch cycle for a shard's
tenants, with the same :class:`~servicecomms_async.watch.Watcher` and
:class:`~servicecomms_async.watch.outbox.Outbox` as ``servicecomms watch --once``, and return a
JSON-able summary. The engine's scheduler repeats them; each shard keeps its own state file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import _constants
from ._validate import validate_tenant_id

if TYPE_CHECKING:
    from .graph import GraphClient
    from .session import ServiceCommsSession
    from .watch.diff import Baseline
    from .watch.outbox import DeliveryPolicy
    from .watch.sinks import Sink

__all__ = [
    "INDEX_ENV",
    "MAX_SHARDS",
    "SHARD_PLACEHOLDER",
    "Shard",
    "check_shard_spec",
    "run_watch_shard",
    "shard_of",
    "watch_shard",
]

INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Where ``auto/N`` reads the shard index: what Kubernetes sets in each pod of an Indexed Job."""

MAX_SHARDS = 100_000
"""The most shards (Kubernetes' own limit on an Indexed Job's completions)."""

SHARD_PLACEHOLDER = "{shard}"
"""Replaced by the shard's index in a state path: ``watch-{shard}.db`` -> ``watch-0.db``."""

_SPEC_HELP = "I/N with I in 0..N-1 (0-based, as $JOB_COMPLETION_INDEX), e.g. 0/4, or auto/N"


def _weight(index: int, tenant: str) -> int:
    digest = hashlib.blake2b(f"{index}:{tenant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _owner(tenant: str, count: int) -> int:
    """The shard of an already normalised tenant id."""
    best, best_weight = 0, -1
    for index in range(count):
        weight = _weight(index, tenant)
        if weight > best_weight:  # strictly: a tie keeps the lower index
            best, best_weight = index, weight
    return best


def _count(count: object) -> int:
    if not isinstance(count, int) or isinstance(count, bool):
        raise TypeError(f"shard count must be an int, got {type(count).__name__}")
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shard count must be 1 to {MAX_SHARDS:,}, got {count}")
    return count


def shard_of(tenant_id: str, count: int) -> int:
    """The shard (``0..count-1``) that ``tenant_id`` belongs to, out of ``count`` shards.

    The id is normalised first (a ``ValueError`` or ``TypeError`` if it is not a tenant GUID or a
    domain name); see the module's contract for the hash.
    """
    return _owner(validate_tenant_id(tenant_id), _count(count))


def _number(text: str, what: str) -> int:
    # ASCII digits only: int() would also take " 3", "+3", "3_0" and other scripts' digits.
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(
            f"shard {what} must be a whole number, got {text!r} (expected {_SPEC_HELP})"
        )
    return int(text)


def _split(spec: object) -> tuple[str, int]:
    """``(index text, count)`` of an ``I/N`` spec, the count checked."""
    if not isinstance(spec, str):
        raise TypeError(f"shard must be a str such as '0/4', got {type(spec).__name__}")
    parts = spec.split("/")
    if len(parts) != 2:
        raise ValueError(f"shard must be {_SPEC_HELP}; got {spec[:40]!r}")
    index_text, count_text = parts
    count = _number(count_text, "count")
    if count < 1:
        raise ValueError(f"shard count must be at least 1, got {spec!r}")
    if count > MAX_SHARDS:
        raise ValueError(f"shard count must be at most {MAX_SHARDS:,}, got {spec!r}")
    if index_text != "auto":
        _index(_number(index_text, "index"), count, spec)
    return index_text, count


def _index(index: int, count: int, spec: str) -> int:
    if index >= count:
        raise ValueError(
            f"shard index must be 0 to {count - 1} (0-based: {count} shards are "
            f"0/{count} ... {count - 1}/{count}), got {spec!r}"
        )
    return index


def check_shard_spec(spec: str) -> str:
    """Check the syntax of an ``I/N`` or ``auto/N`` spec without reading the environment; return it."""
    _split(spec)
    return spec


@attrs.frozen
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``). ``str(shard)`` is ``"index/count"``."""

    index: int
    count: int

    def __attrs_post_init__(self) -> None:
        _count(self.count)
        if not isinstance(self.index, int) or isinstance(self.index, bool):
            raise TypeError(f"shard index must be an int, got {type(self.index).__name__}")
        if self.index < 0:
            raise ValueError(f"shard index must be 0 or more, got {self.index}")
        _index(self.index, self.count, f"{self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, spec: str, *, environ: Mapping[str, str] | None = None) -> Shard:
        """``"I/N"`` (``I`` in ``0..N-1``), or ``"auto/N"``: ``I`` from ``$JOB_COMPLETION_INDEX`` in
        ``environ`` (``os.environ`` by default)."""
        index_text, count = _split(spec)
        if index_text == "auto":
            return cls.from_environment(count, environ=environ)
        return cls(int(index_text), count)

    @classmethod
    def from_environment(
        cls, count: int, *, environ: Mapping[str, str] | None = None, variable: str = INDEX_ENV
    ) -> Shard:
        """Shard ``$JOB_COMPLETION_INDEX`` (or ``variable``) of ``count``: the index Kubernetes gives
        each pod of an Indexed Job (``completionMode: Indexed``, ``completions: count``)."""
        count = _count(count)
        env = os.environ if environ is None else environ
        value = env.get(variable)
        if value is None:
            raise ValueError(
                f"shard auto/{count} reads its index from ${variable}, which is not set (Kubernetes "
                f"sets it in the pods of an Indexed Job); give the index instead: I/{count}"
            )
        try:
            index = _number(value.strip(), "index")
        except ValueError:
            raise ValueError(
                f"${variable} must be a shard index 0 to {count - 1}, got {value[:40]!r}"
            ) from None
        if index >= count:
            raise ValueError(
                f"${variable} is {index}, but there are {count} shards (0 to {count - 1}): "
                f"is the job's completions {count}?"
            )
        return cls(index, count)

    def owns(self, tenant_id: str) -> bool:
        """Whether ``tenant_id`` (normalised first) belongs to this shard."""
        return _owner(validate_tenant_id(tenant_id), self.count) == self.index

    def select(self, tenant_ids: Iterable[str]) -> list[str]:
        """This shard's tenants among ``tenant_ids``: normalised, repeats dropped, input order kept.

        A ``ValueError`` names the first id that is not a tenant GUID or a domain name: every shard
        must see the same list, so none may drop an id quietly.
        """
        if isinstance(tenant_ids, (str, bytes)):
            raise TypeError("tenant_ids must be an iterable of tenant ids (e.g. a list), not a str")
        mine: list[str] = []
        seen: set[str] = set()
        for raw in tenant_ids:
            try:
                tenant = validate_tenant_id(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"tenant_ids: {exc}") from None
            if tenant in seen:
                continue
            seen.add(tenant)
            if _owner(tenant, self.count) == self.index:
                mine.append(tenant)
        return mine

    def state_path(self, template: str | os.PathLike[str]) -> str:
        """``template`` with ``{shard}`` replaced by this shard's index (``watch-{shard}.db`` ->
        ``watch-2.db``). The index alone, not the count: a shard keeps its file (and its tenants'
        state) when the count grows. A template without ``{shard}`` is a ``ValueError``: shards
        sharing one file would wait for each other's lock, or mix their state."""
        text = os.fspath(template)
        if SHARD_PLACEHOLDER not in text:
            raise ValueError(
                f"a sharded state path must contain {SHARD_PLACEHOLDER} (e.g. watch-{{shard}}.db, "
                f"which shard {self} writes as watch-{self.index}.db) so that each shard has its own "
                f"state file; got {text[:200]!r}"
            )
        return text.replace(SHARD_PLACEHOLDER, str(self.index))

    def describe(self, selected: int, total: int) -> str:
        """``shard 1 of 4: 2,506 of 10,000 tenants``."""
        return f"shard {self.index} of {self.count}: {selected:,} of {total:,} tenants"


def _as_shard(shard: Shard | str) -> Shard:
    return shard if isinstance(shard, Shard) else Shard.parse(shard)


async def watch_shard(
    tenant_ids: Iterable[str],
    shard: Shard | str,
    state: str | os.PathLike[str],
    *,
    session: ServiceCommsSession[GraphClient] | Callable[[], ServiceCommsSession[GraphClient]],
    sinks: Sequence[Sink] = (),
    policy: DeliveryPolicy | None = None,
    baseline: Baseline = "active",
    concurrency: int | None = None,
    tenant_timeout: float | None = None,
    delivery_timeout: float = _constants.DELIVERY_TIMEOUT,
) -> dict[str, Any]:
    """One watch cycle for this shard's tenants (what ``servicecomms watch --once --shard`` does):
    deliver what earlier runs left pending, poll every tenant of the shard, roll up, deliver; return
    a JSON-able summary.

    ``tenant_ids`` is the whole list (every shard is given the same one); ``shard`` a :class:`Shard`
    or a spec (``"2/8"``, ``"auto/8"``). ``state`` is the SQLite state path, containing ``{shard}``
    (``/state/watch-{shard}.db``: see :meth:`Shard.state_path`). ``session`` is an open Graph session, used and left open, or a callable that makes one,
    which is entered and closed here (what a synchronous caller needs: a session belongs to one event
    loop). ``sinks`` are closed at the end. A shard without tenants returns at once, touching nothing.

    The summary: ``shard``, ``tenants`` (this shard's), ``tenants_total``, ``succeeded``, ``failed``
    (tenant ids), ``events``, ``rollups``, ``delivered`` (backlog included), ``pending``, ``dead``,
    ``requests``, ``seconds`` and ``state`` (this shard's state file).
    """
    from contextlib import AsyncExitStack

    from .session import ServiceCommsSession
    from .watch import SQLiteStateStore, Watcher
    from .watch.outbox import Outbox

    started = time.monotonic()
    chosen = _as_shard(shard)
    everyone = list(tenant_ids)
    mine = chosen.select(everyone)
    total = len(set(map(validate_tenant_id, everyone)))
    path = chosen.state_path(state)
    summary: dict[str, Any] = {
        "shard": str(chosen),
        "tenants": len(mine),
        "tenants_total": total,
        "succeeded": 0,
        "failed": [],
        "events": 0,
        "rollups": 0,
        "delivered": 0,
        "pending": 0,
        "dead": 0,
        "requests": 0,
        "seconds": 0.0,
        "state": path,
    }
    if not mine:
        await _close_sinks(sinks)
        return summary
    store = SQLiteStateStore(path)
    outbox = Outbox(store, sinks, policy)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(outbox.aclose)
        if isinstance(session, ServiceCommsSession):
            graph = session
        else:
            graph = await stack.enter_async_context(session())
        await stack.enter_async_context(store)
        watcher = Watcher(
            graph,
            mine,
            store,
            baseline=baseline,
            concurrency=_constants.SCAN_CONCURRENCY if concurrency is None else concurrency,
            tenant_timeout=tenant_timeout,
        )
        await outbox.open()
        backlog = await outbox.deliver(within=delivery_timeout)
        rollups, report = await outbox.cycle(watcher, within=delivery_timeout)
    cycle = watcher.last_cycle
    assert cycle is not None
    summary.update(
        succeeded=cycle.succeeded,
        failed=list(cycle.failed),
        events=cycle.events,
        rollups=len(rollups),
        delivered=backlog.total_delivered + report.total_delivered,
        pending=sum(report.pending.values()),
        dead=sum(report.dead.values()),
        requests=cycle.requests,
        seconds=round(time.monotonic() - started, 3),
    )
    return summary


async def _close_sinks(sinks: Sequence[Sink]) -> None:
    for sink in sinks:
        await sink.aclose()


def run_watch_shard(
    tenant_ids: Iterable[str],
    shard: Shard | str,
    state: str | os.PathLike[str],
    *,
    session: Callable[[], ServiceCommsSession[GraphClient]],
    sinks: Sequence[Sink] | Callable[[], Sequence[Sink]] = (),
    **options: Any,
) -> dict[str, Any]:
    """:func:`watch_shard` for synchronous callers (a Celery task, a Dask or thread-pool worker):
    ``asyncio.run`` on a new event loop per call. ``session`` must be a callable that makes the
    session (it is made, used and closed inside that loop); ``sinks`` a sequence or a callable that
    makes them. Raises ``RuntimeError`` when called from a running event loop: await
    :func:`watch_shard` there instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_watch_shard() was called from a running event loop: await watch_shard() instead"
        )
    made = sinks() if callable(sinks) else sinks

    async def one_cycle() -> dict[str, Any]:
        return await watch_shard(tenant_ids, shard, state, session=session, sinks=made, **options)

    return asyncio.run(one_cycle())
