"""The aiohttp application, request handling, statistics and the :class:`Emulator`."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .cache import LRU
from .config import EmulatorConfig
from .data import OPERATIONS, DataStore, Json, Operation, TenantDataset, filter_fields, wire_keys
from .graph import (
    GRAPH_PREFIX,
    GraphApi,
    GraphDataset,
    GraphTokenValidator,
    graph_error,
    graph_http_error,
    graph_token,
    is_graph_path,
)
from .odata import ODataError, apply_select, parse_filter, parse_select
from .parsing import bearer_token, is_valid_tenant

__all__ = ["Emulator", "RecordedRequest", "TokenValidator", "run_forever"]

log = logging.getLogger(__name__)

TokenValidator = Callable[[str, str], Awaitable["web.StreamResponse | None"]]
"""``(tenant as in the URL, bearer token) -> None to accept, or a response to send``."""

API_PREFIX = "/api/v1.0"
_OPS_BY_LOWER = {op.lower(): op for op in OPERATIONS}
_UINT_RE = re.compile(r"[0-9]{1,9}")
_TEXT_FIELDS_RE = re.compile(r"title|impactdescription", re.I)
_BYTES_CACHE_LIMIT = 64 * 1024 * 1024


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


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(
        status=status,
        body=body,
        headers={"Content-Type": "application/json; charset=utf-8", **headers},
    )


# The documented contract names the filters as plain query parameters (``?Workload=Exchange``), while
# real clients sent ``$filter=Workload eq 'Exchange'``. The spec shape honours both; the real shape only
# ``$filter``. Each parameter becomes the comparison the documentation describes.
_SPEC_PARAMETERS: dict[Operation, tuple[tuple[str, str, bool], ...]] = {
    "Services": (),
    "CurrentStatus": (("Workload", "eq", True),),
    "HistoricalStatus": (("Workload", "eq", True), ("StatusTime", "ge", False)),
    "Messages": (
        ("Workload", "eq", True),
        ("StartTime", "ge", False),
        ("EndTime", "le", False),
        ("MessageType", "eq", True),
        ("Id", "eq", True),
    ),
}


def _spec_parameter_filter(op: Operation, query: Any) -> str | None:
    clauses = []
    for name, operator, quoted in _SPEC_PARAMETERS[op]:
        value = query.get(name)
        if value is None:
            continue
        literal = "'" + value.replace("'", "''") + "'" if quoted else value
        clauses.append(f"{name} {operator} {literal}")
    return " and ".join(clauses) or None


def _and(first: str | None, second: str | None) -> str | None:
    if first is None or second is None:
        return first if second is None else second
    return f"({first}) and ({second})"


def _metadata_level(accept: str | None) -> str:
    """The odata.metadata level asked for; absent means ``none`` (documented default)."""
    if not accept:
        return "none"
    m = re.search(r"odata\.metadata\s*=\s*(minimal|full|none)", accept, re.I)
    if m:
        return m.group(1).lower()
    # OData v3 spelling, e.g. odata=minimalmetadata / odata=nometadata.
    m = re.search(r"odata\s*=\s*(minimal|full|no)metadata", accept, re.I)
    if m:
        level = m.group(1).lower()
        return "none" if level == "no" else level
    return "none"


def _uint_param(query: Any, name: str, default: int, maximum: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if not _UINT_RE.fullmatch(raw) or (maximum is not None and int(raw) > maximum):
        bound = f"between 0 and {maximum}" if maximum is not None else "0 or greater"
        raise ODataError(
            f"Invalid value {raw[:32]!r} for query option {name}: expected an integer {bound}."
        )
    return int(raw)


class Emulator:
    """An embedded, deterministic Office 365 Service Communications API server.

    Contract:

    * Serves ``GET {base_url}/{tenant}/ServiceComms/{Services|CurrentStatus|
      HistoricalStatus|Messages}`` on loopback; data depends only on the config and the
      lowercased tenant id (GUID or domain), whether or not it is in :attr:`tenant_ids`.
    * Every request is appended to :attr:`requests` (unless ``record_requests=False``).
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
    """

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
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self._host = host
        self._port = port
        self._user_middlewares = tuple(middlewares)
        self._token_validator = token_validator
        self._record = record_requests
        self._store = DataStore(self.config)
        self._graph = GraphApi(
            self.config, self._store, lambda: self.graph_base_url, graph_token_validator
        )
        self._bytes: LRU[tuple[str, str, bool], bytes] = LRU(100_000, _BYTES_CACHE_LIMIT, weigh=len)
        self._jitter = random.Random(self.config.seed)
        self._tenant_ids: list[str] | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._bound_port: int | None = None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections_opened = 0

    # -- public API --

    @property
    def port(self) -> int:
        """The bound TCP port (raises before :meth:`start`)."""
        if self._bound_port is None:
            raise RuntimeError("the emulator is not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v1.0``; clients append ``/{tenant}/ServiceComms/Op``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}{API_PREFIX}"

    @property
    def graph_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1.0``; clients append ``/admin/serviceAnnouncement/...``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}{GRAPH_PREFIX}"

    graph_token = staticmethod(graph_token)

    @property
    def tenant_ids(self) -> list[str]:
        """``config.tenants`` deterministic GUIDs; ``degraded_ratio`` of them degraded."""
        if self._tenant_ids is None:
            self._tenant_ids = self._store.make_tenant_ids()
        return list(self._tenant_ids)

    def dataset(self, tenant: str) -> TenantDataset:
        """The wire dicts served for ``tenant`` (materialises every message: O(N))."""
        return self._store.dataset(tenant)

    def graph_dataset(self, tenant: str) -> GraphDataset:
        """The Graph wire dicts served for ``tenant`` (application view; O(N) like :meth:`dataset`)."""
        return self._graph.dataset(tenant)

    def reset_stats(self) -> None:
        """Forget recorded requests and counters (``max_in_flight`` restarts from now)."""
        self.requests.clear()
        self.max_in_flight = self.in_flight
        self.connections_opened = 0

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the emulator is already started")
        runner = web.AppRunner(
            self._build_app(), handle_signals=False, access_log=None, shutdown_timeout=2.0
        )
        await runner.setup()
        server = runner.server
        assert server is not None

        # Wrapping the protocol factory is the one public hook that sees every accepted
        # connection (TCPSite would hide it), so keep-alive reuse can be measured.
        def factory() -> asyncio.BaseProtocol:
            self.connections_opened += 1
            return server()

        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(factory, self._host, self._port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, runner = self._server, self._runner
        self._server = self._runner = None
        if server is not None:
            server.close()
        if runner is not None:
            await runner.cleanup()
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- application --

    def _build_app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self._record:
                self.requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.path,
                        query=dict(request.query),
                        headers=_Headers(request.headers),
                    )
                )
            return await handler(request)

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
                if exc.status == 404:
                    return _error(404, "NotFound", "No resource matches the request URI.")
                if exc.status == 405:
                    return _error(
                        405,
                        "MethodNotAllowed",
                        f"The HTTP method {request.method} is not supported; use GET.",
                        Allow="GET",
                    )
                return _error(exc.status, exc.reason.replace(" ", ""), exc.reason)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("emulator handler failed")
                if is_graph_path(request.path):
                    return graph_error(
                        500, "generalException", "An internal error occurred.", request=request
                    )
                return _error(500, "AF50000", "An internal error occurred.  Retry the request.")

        app = web.Application(middlewares=[record, stats, errors, *self._user_middlewares])
        app.router.add_route("GET", API_PREFIX + "/{tenant}/ServiceComms/{operation}", self._handle)
        self._graph.add_routes(app.router)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        op = _OPS_BY_LOWER.get(request.match_info["operation"].lower())
        if op is None:
            return _error(404, "NotFound", "No resource matches the request URI.")
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return _error(
                401,
                "Unauthorized",
                "Missing or malformed bearer token.",
                **{"WWW-Authenticate": "Bearer"},
            )
        tenant = request.match_info["tenant"]
        if self._token_validator is not None:
            rejected = await self._token_validator(tenant, token)
            if rejected is not None:
                return rejected
        if not is_valid_tenant(tenant):
            return _error(
                400,
                "AF20013",
                f"The tenant ID passed in the URL ({tenant[:100]}) is not a valid GUID or "
                "domain name.",
            )
        level = _metadata_level(request.headers.get("Accept"))
        try:
            body = self._body(op, tenant, request, level)
        except ODataError as exc:
            return _error(400, "AF20002", str(exc))
        return web.Response(
            body=body,
            headers={"Content-Type": f"application/json; odata.metadata={level}; charset=utf-8"},
        )

    def _body(self, op: Operation, tenant: str, request: web.Request, level: str) -> bytes:
        query = request.query
        context = (
            f"{self.base_url}/{tenant}/$metadata#{op}" if level in ("minimal", "full") else None
        )
        shape = self.config.shape
        filter_text = query.get("$filter")
        if shape == "spec":
            filter_text = _and(_spec_parameter_filter(op, query), filter_text)
        select_text = query.get("$select")
        fields, aliases = filter_fields(op, shape)
        predicate = parse_filter(filter_text, fields, aliases) if filter_text is not None else None
        selected = parse_select(select_text, wire_keys(op, shape)) if select_text else None
        if select_text is not None and not select_text.strip():
            raise ODataError("Invalid $select: empty property list.")

        doc: dict[str, Any] = {}
        if context is not None:
            doc["@odata.context"] = context
        if op == "Messages":
            top = _uint_param(query, "$top", 100, 100)
            skip = _uint_param(query, "$skip", 0, None)
            if predicate is not None and filter_text is not None:
                indices = self._store.filtered_indices(
                    tenant,
                    filter_text,
                    predicate,
                    needs_text=bool(_TEXT_FIELDS_RE.search(filter_text)),
                )
                total = len(indices)
                page: Sequence[int] = indices[skip : skip + top]
            else:
                total = self._store.message_count(tenant)
                page = range(min(skip, total), min(skip + top, total))
            items = self._store.messages(tenant, page)
            if self.config.paging == "nextlink" and top > 0 and skip + top < total:
                doc["@odata.nextLink"] = str(request.url.update_query({"$skip": str(skip + top)}))
            doc["value"] = items if selected is None else [apply_select(i, selected) for i in items]
            return orjson.dumps(doc)

        cache_key = (op, tenant, context is not None)
        cacheable = predicate is None and selected is None
        if cacheable:
            hit = self._bytes.get(cache_key)
            if hit is not None:
                return hit
        rows: list[Json] = self._store.status_list(op, tenant)
        if predicate is not None:
            typed = self._store.typed_status_rows(op, tenant)
            rows = [r for r, t in zip(rows, typed, strict=True) if predicate(t)]
        doc["value"] = rows if selected is None else [apply_select(r, selected) for r in rows]
        body = orjson.dumps(doc)
        if cacheable:
            self._bytes.put(cache_key, body)
        return body


async def run_forever(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    show_tenants: int = 5,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled (Ctrl-C under ``asyncio.run``), announcing the base URL.

    Requests are not recorded, so a long-running server does not grow without bound.
    ``announce`` receives each line to show (default: ``print`` with flush).
    """

    def _print(line: str) -> None:
        print(line, flush=True)

    say = announce or _print
    emulator = Emulator(config, host=host, port=port, record_requests=False)
    async with emulator:
        cfg = emulator.config
        say(f"Service Communications emulator listening on {emulator.base_url}")
        say(
            f"seed={cfg.seed} shape={cfg.shape} tenants={cfg.tenants} "
            f"messages_per_tenant={cfg.messages_per_tenant} paging={cfg.paging} "
            f"latency={cfg.latency}s"
        )
        for tenant in emulator.tenant_ids[:show_tenants]:
            say(f"  {emulator.base_url}/{tenant}/ServiceComms/CurrentStatus")
        say(
            f"Microsoft Graph routes on {emulator.graph_base_url}/admin/serviceAnnouncement/ "
            "(bearer token: emulator-app.<tenant> or emulator-user.<tenant>)"
        )
        say("Any non-empty bearer token is accepted. Press Ctrl-C to stop.")
        await asyncio.Event().wait()
