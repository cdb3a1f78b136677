"""The :class:`Emulator`: the legacy and Graph routes over one data store, on a loopback server,
with request recording, statistics, latency and error mapping around them."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import email.utils
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .clock import ITEMS_KEY, REQUEST_TIME_KEY, THROTTLE_KEY, Clock, ManualClock, ScaledClock
from .config import EmulatorConfig
from .data import TenantDataset
from .errors import graph_error, graph_http_error, legacy_http_error, odata_error
from .graph import (
    GRAPH_PREFIX,
    GraphApi,
    GraphDataset,
    GraphTokenValidator,
    graph_token,
    is_graph_path,
)
from .graph.convert import graph_status
from .legacy import API_PREFIX, LegacyApi, TokenValidator
from .limits import GraphLimiter, GraphLimits, Throttle, Window
from .server import LoopbackServer
from .timeline import Change, Timeline
from .world import DataStore

__all__ = ["Emulator", "RecordedRequest", "TokenValidator", "run_forever"]

log = logging.getLogger(__name__)


class _Headers(dict[str, str]):
    """A plain dict whose lookups also match keys case-insensitively (like HTTP)."""

    def _find(self, key: object) -> str | None:
        if isinstance(key, str):
            lower = key.lower()
            for k in self:
                if k.lower() == lower:
                    return k
        return None

    def __getitem__(self, key: str) -> str:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        found = self._find(key)
        if found is None:
            raise KeyError(key)
        return dict.__getitem__(self, found)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or self._find(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it.

    ``query`` holds decoded values (the last one wins for a repeated name); ``headers``
    is a dict with case-insensitive lookup, including ``Authorization``: it never leaves
    the process, it is there so tests can check what the client sent.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    items: int = 0
    """How many items the response held (a list's ``value`` entries, 1 for a single entity, 0 for
    errors and bytes), set once the response is made; a test can prove a poll moved only changes."""
    throttled: bool = False
    """Whether Graph's request limits refused it (429; ``Emulator(graph_limits=...)``)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _ms(when: datetime) -> int:
    if not isinstance(when, datetime):
        raise TypeError(f"expected a datetime, got {type(when).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH) // timedelta(milliseconds=1)


class Emulator(LoopbackServer):
    """An embedded, deterministic Office 365 Service Communications API server.

    Contract:

    * Serves ``GET {base_url}/{tenant}/ServiceComms/{Services|CurrentStatus|
      HistoricalStatus|Messages}`` on loopback; data depends only on the config and the
      lowercased tenant id (GUID or domain), whether or not it is in :attr:`tenant_ids`.
    * ``host`` is a loopback address and ``port`` 0 (a free one) to 65535; ``start``, ``stop``,
      ``async with``, :attr:`port` and the errors are :class:`~.server.LoopbackServer`'s. The
      legacy routes are :mod:`.legacy`'s.
    * Every request is appended to :attr:`requests` (unless ``record_requests=False``), with
      the number of items its response held once it is answered.
    * ``clock`` (:class:`~.clock.ManualClock` or :class:`~.clock.ScaledClock`) makes the world move
      (:mod:`.timeline`): :attr:`now` starts at ``config.now``; :meth:`advance` moves a manual
      clock; :meth:`changes` lists what changed; every response's ``Date`` header is :attr:`now`
      (IMF-fixdate), and each request is served as of one instant. Without a clock the world is
      the static data and ``Date`` is the wall clock, as a plain aiohttp server sends.
    * :attr:`in_flight` / :attr:`max_in_flight` count API requests (paths under
      ``/api/``) while their handler runs, including the configured latency sleep.
    * :attr:`connections_opened` counts accepted TCP connections.
    * ``middlewares`` run inside the built-in ones (after recording, statistics, latency
      and error mapping) and before authentication, so they can inject faults.
    * ``token_validator`` is awaited for every API request that carries a non-empty
      bearer token, before the tenant id is validated; a returned response is sent as is.
    * Microsoft Graph's service communications routes are served under
      :attr:`graph_base_url` from the same data (see :mod:`.graph`); the tenant comes from
      the token: :meth:`graph_token`, or ``graph_token_validator`` (awaited as
      ``(token, permission)``) when given. Graph requests count in the statistics too.
    * ``graph_limits`` (:class:`~.limits.GraphLimits`; default None: no limits) enforces Graph's
      documented request limits on ``/admin/serviceAnnouncement/``: sliding windows per (app,
      tenant) and per app, measured on the clock (else the monotonic clock), answered 429 with
      ``Retry-After`` and Graph's ``TooManyRequests`` body (see :mod:`.limits`).
      :attr:`throttled` counts the refused requests by tenant, :attr:`throttled_windows` by
      (scope, window) exceeded, and their :class:`RecordedRequest` says ``throttled=True``.
    """

    server_name = "the emulator"

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        middlewares: Sequence[Middleware] = (),
        token_validator: TokenValidator | None = None,
        graph_token_validator: GraphTokenValidator | None = None,
        record_requests: bool = True,
        clock: Clock | None = None,
        graph_limits: GraphLimits | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.config = config if config is not None else EmulatorConfig()
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(
                f"clock must be a ManualClock or a ScaledClock, got {type(clock).__name__}"
            )
        self._user_middlewares = tuple(middlewares)
        self._record = record_requests
        self._clock = clock
        self._origin_ms = int(self.config.now_utc.timestamp() * 1000)
        self._store = DataStore(self.config)
        self._timeline = None
        if clock is not None:
            self._timeline = Timeline(self.config, self._store.gen.base_num)
            self._store.timeline = self._timeline
        if graph_limits is not None and not isinstance(graph_limits, GraphLimits):
            raise TypeError(
                f"graph_limits must be a GraphLimits or None, got {type(graph_limits).__name__}"
            )
        self.graph_limits = graph_limits
        self._limiter = (
            GraphLimiter(graph_limits, self._limit_ms) if graph_limits is not None else None
        )
        self._legacy = LegacyApi(self._store, lambda: self.base_url, token_validator)
        self._graph = GraphApi(
            self._store, lambda: self.graph_base_url, graph_token_validator, self._limiter
        )
        self._jitter = random.Random(self.config.seed)
        self._tenant_ids: list[str] | None = None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections_opened = 0
        self.throttled: collections.Counter[str] = collections.Counter()
        self.throttled_windows: collections.Counter[tuple[str, Window]] = collections.Counter()

    # -- public API --

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1.0``; clients append ``/{tenant}/ServiceComms/Op``."""
        return self.origin + API_PREFIX

    @property
    def graph_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1.0``; clients append ``/admin/serviceAnnouncement/...``."""
        return self.origin + GRAPH_PREFIX

    graph_token = staticmethod(graph_token)

    @property
    def tenant_ids(self) -> list[str]:
        """``config.tenants`` deterministic GUIDs; ``degraded_ratio`` of them degraded."""
        if self._tenant_ids is None:
            self._tenant_ids = self._store.make_tenant_ids()
        return list(self._tenant_ids)

    def dataset(self, tenant: str) -> TenantDataset:
        """The wire dicts served for ``tenant`` now (materialises every message: O(N))."""
        return self._store.dataset(tenant, self._now_ms())

    def graph_dataset(self, tenant: str) -> GraphDataset:
        """The Graph wire dicts served for ``tenant`` now (application view; O(N) like
        :meth:`dataset`)."""
        return self._graph.dataset(tenant, self._now_ms())

    # -- time --

    @property
    def clock(self) -> Clock | None:
        return self._clock

    @property
    def now(self) -> datetime:
        """The world's current time (aware UTC): ``config.now`` plus the clock's elapsed time."""
        return _datetime(self._origin_ms + (self._clock.elapsed_ms() if self._clock else 0))

    def advance(self, delta: timedelta) -> datetime:
        """Move a :class:`~.clock.ManualClock` forward by ``delta`` (>= 0); returns :attr:`now`."""
        if not isinstance(self._clock, ManualClock):
            what = "no clock" if self._clock is None else repr(self._clock)
            raise RuntimeError(
                f"advance needs an emulator with a ManualClock (Emulator(config, "
                f"clock=ManualClock())); this one has {what}"
            )
        self._clock.advance(delta)
        return self.now

    def _limit_ms(self) -> int:
        """The time Graph's limits are measured on: the clock's, else the monotonic clock (ms)."""
        if self._clock is not None:
            return self._clock.elapsed_ms()
        return int(time.monotonic() * 1000)

    def reset_limits(self) -> None:
        """Empty Graph's request-limit windows (``graph_limits``), as if no request had been made."""
        if self._limiter is not None:
            self._limiter.reset()

    def _now_ms(self) -> int | None:
        """The world's time in epoch ms, or None for the static world (no clock)."""
        if self._clock is None:
            return None
        return self._origin_ms + self._clock.elapsed_ms()

    def changes(
        self,
        tenant_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Change]:
        """Every change the timeline made to ``tenant_id``'s world in (``since``, ``until``], in
        time order (default: from ``config.now`` to :attr:`now`); see :class:`~.timeline.Change`.
        Empty without a clock (the static world never changes)."""
        if self._timeline is None:
            return []
        low = _ms(since) if since is not None else self._origin_ms
        now = self._now_ms()
        assert now is not None
        high = _ms(until) if until is not None else now
        model = self._store.model(tenant_id)
        found = list(self._timeline.entity_changes(model, low, high))
        times = self._timeline.issue_times(model, low, high)
        if times:
            before = self._service_statuses(tenant_id, low)
            for at in times:
                after = self._service_statuses(tenant_id, at)
                for service, status in after.items():
                    if before.get(service) != status:
                        found.append(
                            Change(
                                _datetime(at),
                                model.tenant,
                                "service",
                                service,
                                "service.status_changed",
                                ("status",),
                                False,
                            )
                        )
                before = after
        order = {"issue": 0, "message": 1, "service": 2}
        found.sort(key=lambda c: (c.time, order[c.kind], c.entity_id))
        return found

    def _service_statuses(self, tenant: str, t: int) -> dict[str, str]:
        """Each service's Graph health status (by id) at ``t``, as the routes serve it."""
        rows = self._store.status_list("CurrentStatus", tenant, t)
        return {str(r["Workload"]): graph_status(str(r["Status"])) for r in rows}

    def reset_stats(self) -> None:
        """Forget recorded requests and counters (``max_in_flight`` restarts from now); Graph's
        request-limit windows stay (:meth:`reset_limits` empties them)."""
        self.requests.clear()
        self.max_in_flight = self.in_flight
        self.connections_opened = 0
        self.throttled.clear()
        self.throttled_windows.clear()

    # -- application --

    def _set_outcome(self, recorded: RecordedRequest, items: int, throttled: bool) -> None:
        # The record was appended when the request arrived; replace it in place (unless the
        # requests were reset meanwhile) so the list keeps arrival order.
        for n in range(len(self.requests) - 1, -1, -1):
            if self.requests[n] is recorded:
                self.requests[n] = dataclasses.replace(recorded, items=items, throttled=throttled)
                return

    def _count_throttle(self, tenant: str, throttle: Throttle) -> None:
        self.throttled[tenant] += 1
        for exceeded in throttle.exceeded:
            self.throttled_windows[exceeded] += 1

    def _connection_made(self) -> None:
        self.connections_opened += 1

    async def start(self) -> None:
        if self._clock is not None:
            self._clock.start()
        await super().start()

    def _build_app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            recorded = None
            if self._record:
                recorded = RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=_Headers(request.headers),
                )
                self.requests.append(recorded)
            now = self._now_ms()
            date = None
            if now is not None:
                request[REQUEST_TIME_KEY] = now
                date = email.utils.format_datetime(_datetime(now - now % 1000), usegmt=True)
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if date is not None:
                    exc.headers["Date"] = date
                raise
            finally:
                items = request.get(ITEMS_KEY, 0)
                refused = request.get(THROTTLE_KEY)
                if refused is not None:
                    self._count_throttle(*refused)
                if recorded is not None and (items or refused is not None):
                    self._set_outcome(recorded, items, refused is not None)
            if date is not None and not response.prepared:
                response.headers["Date"] = date
            return response

        @web.middleware
        async def stats(request: web.Request, handler: Handler) -> web.StreamResponse:
            graph = is_graph_path(request.path)
            if not (graph or request.path.startswith("/api/")):
                return await handler(request)
            started = time.perf_counter()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                delay = self.config.latency
                if self.config.latency_jitter:
                    jitter = self.config.latency_jitter
                    delay = max(0.0, delay + self._jitter.uniform(-jitter, jitter))
                if delay > 0:
                    await asyncio.sleep(delay)
                response = await handler(request)
            finally:
                self.in_flight -= 1
            response.headers["OData-Version"] = "4.0"
            if graph:  # Graph's request id is its own header (and in its error bodies)
                response.headers.setdefault("request-id", str(uuid.uuid4()))
            else:
                response.headers["X-Activity-Id"] = str(uuid.uuid4())
            response.headers["X-Time-Taken"] = str(round((time.perf_counter() - started) * 1000))
            return response

        @web.middleware
        async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                if is_graph_path(request.path):
                    return graph_http_error(request, exc)
                return legacy_http_error(request, exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("emulator handler failed")
                if is_graph_path(request.path):
                    return graph_error(
                        500, "generalException", "An internal error occurred.", request=request
                    )
                return odata_error(
                    500, "AF50000", "An internal error occurred.  Retry the request."
                )

        app = web.Application(middlewares=[record, stats, errors, *self._user_middlewares])
        self._legacy.add_routes(app.router)
        self._graph.add_routes(app.router)
        return app


async def run_forever(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    tenants_file: str | None = None,
    show_tenants: int = 5,
    announce: Callable[[str], None] | None = None,
    clock: Clock | None = None,
    graph_limits: GraphLimits | None = None,
) -> None:
    """Serve until cancelled (Ctrl-C under ``asyncio.run``), announcing the base URLs.

    Requests are not recorded, so a long-running server does not grow without bound. With
    ``tenants_file`` every tenant id is written there, one a line, once the server listens.
    ``announce`` receives each line to show (default: ``print`` with flush).
    """

    def _print(line: str) -> None:
        print(line, flush=True)

    say = announce or _print
    emulator = Emulator(
        config,
        host=host,
        port=port,
        record_requests=False,
        clock=clock,
        graph_limits=graph_limits,
    )
    async with emulator:
        cfg = emulator.config
        tenants = emulator.tenant_ids
        if tenants_file is not None:
            await anyio.Path(tenants_file).write_text(
                "".join(f"{t}\n" for t in tenants), encoding="utf-8"
            )
        say(f"Service Communications emulator listening on {emulator.base_url}")
        say(
            f"seed={cfg.seed} shape={cfg.shape} tenants={cfg.tenants} "
            f"messages_per_tenant={cfg.messages_per_tenant} paging={cfg.paging} "
            f"latency={cfg.latency}s"
        )
        for tenant in tenants[:show_tenants]:
            say(f"  {emulator.base_url}/{tenant}/ServiceComms/CurrentStatus")
        say(
            f"Microsoft Graph routes on {emulator.graph_base_url}/admin/serviceAnnouncement/ "
            "(bearer token: emulator-app.<tenant> or emulator-user.<tenant>)"
        )
        if graph_limits is not None:
            say(
                f"Graph's request limits are on: {graph_limits} (requests/seconds); past them "
                "429 with Retry-After."
            )
        if tenants_file is not None:
            say(f"All {len(tenants)} tenant ids are in {tenants_file}.")
        if isinstance(clock, ScaledClock):
            line = cfg.timeline
            say(
                f"The world moves {clock.speed:g}x real time from {emulator.now.isoformat()}: "
                f"{line.global_incidents_per_day:g} global and {line.tenant_incidents_per_day:g} "
                f"per-tenant incidents and {line.messages_per_day:g} Message Center posts a day."
            )
        say("Any non-empty bearer token is accepted on the legacy routes. Press Ctrl-C to stop.")
        await asyncio.Event().wait()
