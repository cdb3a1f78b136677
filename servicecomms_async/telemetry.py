"""Optional OpenTelemetry traces and metrics (``pip install servicecomms-async[otel]``).

When ``opentelemetry`` is not importable every hook here is a no-op: the hooks return one shared
null object and the library makes nothing else per call. When it is, the hooks use the **global**
tracer and meter providers (``opentelemetry.trace.get_tracer("servicecomms_async", __version__)``),
so whatever SDK and exporter the application configured applies; :func:`configure` can give other
providers instead (tests, or an application that keeps its own).

Spans::

    servicecomms.watch.cycle                    one Watcher.poll()
      servicecomms.scan                         one scan (a watch cycle runs one)
        servicecomms.watch.tenant               one tenant's poll
          servicecomms.list healthOverviews     one list call, from its first page to its end
            servicecomms.get_token              token acquisition (transport)
            GET                                 one HTTP attempt, CLIENT (transport)
            servicecomms.retry_wait             the wait before a retry (transport)

Privacy, always: no token, no header, no exception message (they name URLs and tenants) in a span or
a metric; ``url.full`` keeps the query's parameter names and replaces every value with ``REDACTED``.
Tenant ids are the attribute ``servicecomms.tenant.id``, replaced by the first 16 hex digits of their
SHA-256 (of the lower-cased id; in the legacy API's URL paths too) with
``SERVICECOMMS_OTEL_HASH_TENANT=1`` or ``configure(hash_tenant_ids=True)``. Metrics carry no tenant
id except the staleness gauge, which is per tenant by nature.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._version import __version__
from .errors import is_throttling

if TYPE_CHECKING:
    from yarl import URL

try:
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
    from opentelemetry.trace import SpanKind as _SpanKind
    from opentelemetry.trace import Status as _Status
    from opentelemetry.trace import StatusCode as _StatusCode
except ImportError:  # the [otel] extra is not installed: every hook is a no-op
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = [
    "AVAILABLE",
    "ENABLED",
    "attempt_span",
    "budget_waited",
    "configure",
    "log_failure",
    "new_client_request_id",
    "operation_span",
    "retry_wait_span",
    "tenant_attribute",
    "token_span",
]

NAME = "servicecomms_async"
HASH_TENANT_ENV = "SERVICECOMMS_OTEL_HASH_TENANT"
TENANT = "servicecomms.tenant.id"
REDACTED = "REDACTED"

ENABLED: bool = AVAILABLE
"""Whether the hooks record anything (OpenTelemetry importable, and not turned off by
:func:`configure`). Read it as ``telemetry.ENABLED``: :func:`configure` changes it."""

_hash_tenants = os.environ.get(HASH_TENANT_ENV, "").strip().lower() in ("1", "true", "yes", "on")
_tracer: Any = None
_instruments: _Instruments | None = None

T = TypeVar("T")


class SpanHandle(Protocol):
    """What a hook's ``with`` block gets: set the outcome the block learned."""

    def set(self, key: str, value: Any) -> None: ...

    def response(self, status: int, request_id: str | None = None) -> None: ...


class _Null:
    """The one object every hook returns while telemetry is off: a context manager and a handle
    that does nothing."""

    __slots__ = ()

    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, key: str, value: Any) -> None:
        return None

    def response(self, status: int, request_id: str | None = None) -> None:
        return None


NULL = _Null()


def configure(
    *,
    hash_tenant_ids: bool | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    enabled: bool | None = None,
) -> None:
    """Change how telemetry is recorded; arguments left at None keep their setting.

    ``hash_tenant_ids``: record tenant ids as a truncated SHA-256 (also
    ``SERVICECOMMS_OTEL_HASH_TENANT=1``). ``tracer_provider`` / ``meter_provider``: use these instead
    of the global providers. ``enabled=False`` turns every hook into a no-op (``True`` has no effect
    when OpenTelemetry is not installed).
    """
    global ENABLED, _hash_tenants, _tracer, _instruments
    if hash_tenant_ids is not None:
        _hash_tenants = bool(hash_tenant_ids)
        tenant_attribute.cache_clear()
    if enabled is not None:
        ENABLED = bool(enabled) and AVAILABLE
    if not AVAILABLE:
        return
    if tracer_provider is not None:
        _tracer = tracer_provider.get_tracer(NAME, __version__)
    if meter_provider is not None:
        _instruments = _Instruments(meter_provider.get_meter(NAME, __version__))


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        _tracer = _trace.get_tracer(NAME, __version__)
    return _tracer


def _get_instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        _instruments = _Instruments(_metrics.get_meter(NAME, __version__))
    return _instruments


@functools.lru_cache(maxsize=65536)
def tenant_attribute(tenant: str) -> str:
    """The tenant id as telemetry records it: itself, or its hash when hashing is on."""
    if not _hash_tenants:
        return tenant
    return hashlib.sha256(tenant.lower().encode()).hexdigest()[:16]


def new_client_request_id() -> str:
    """A GUID for Graph's ``client-request-id`` header (Graph echoes it and keeps it in Microsoft's
    activity logs, so a caller can find a request there)."""
    return str(uuid.uuid4())


def redact_url(url: URL, tenant: str | None = None) -> str:
    """``url`` for ``url.full``: without user info, every query value replaced by ``REDACTED``, and
    the tenant id in the path hashed when tenant ids are hashed."""
    base = f"{url.scheme}://{url.raw_host or ''}"
    if url.explicit_port is not None:
        base += f":{url.explicit_port}"
    path = url.raw_path
    if tenant and _hash_tenants and tenant in path:
        path = path.replace(tenant, tenant_attribute(tenant))
    query = url.raw_query_string
    if not query:
        return base + path
    names = [part.partition("=")[0] for part in query.split("&") if part]
    return base + path + "?" + "&".join(f"{name}={REDACTED}" for name in names)


def _error_type(error: BaseException) -> str:
    status = getattr(error, "status", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    return type(error).__name__


def _mark_failed(span: Any, error: BaseException) -> str | None:
    """Record ``error`` on ``span`` by its type only (messages name URLs and tenants); a
    cancellation or a closed generator is not a failure. Returns the ``error.type``."""
    if not isinstance(error, Exception):
        span.set_attribute("servicecomms.cancelled", True)
        return None
    kind = _error_type(error)
    span.set_attribute("error.type", kind)
    span.set_status(_Status(_StatusCode.ERROR, type(error).__name__))
    return kind


# -- spans ------------------------------------------------------------------------------------------


class _Span:
    """A span that is current inside its ``with`` block (one task: attach and detach in it)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Any) -> None:
        self._span = span
        self._token: Any = None

    def __enter__(self) -> _Span:
        self._token = _context.attach(_trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                _mark_failed(self._span, exc)
        finally:
            _context.detach(self._token)
            self._span.end()

    def set(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def response(self, status: int, request_id: str | None = None) -> None:
        self._span.set_attribute("http.response.status_code", status)


def _attributes(tenant: str | None, attributes: Mapping[str, Any]) -> dict[str, Any]:
    found = {k: v for k, v in attributes.items() if v is not None}
    if tenant is not None:
        found[TENANT] = tenant_attribute(tenant)
    return found


def operation_span(
    name: str, *, tenant: str | None = None, attributes: Mapping[str, Any] | None = None
) -> _Span | _Null:
    """A span for one logical operation (``servicecomms.watch.cycle``, ``servicecomms.watch.tenant``,
    ...), current inside the ``with`` block; ``attributes`` with None values are left out. An
    exception leaving the block marks it failed, by the exception's type only."""
    if not ENABLED:
        return NULL
    span = _get_tracer().start_span(name, attributes=_attributes(tenant, attributes or {}))
    return _Span(span)


def token_span(tenant: str) -> _Span | _Null:
    """``servicecomms.get_token``: the token for ``tenant`` (from the cache or the credential)."""
    if not ENABLED:
        return NULL
    span = _get_tracer().start_span("servicecomms.get_token", attributes=_attributes(tenant, {}))
    return _TokenSpan(span)


class _TokenSpan(_Span):
    __slots__ = ()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, Exception):
            _get_instruments().token_failures.add(1, {"error.type": type(exc).__name__})
        super().__exit__(exc_type, exc, tb)


def retry_wait_span(
    seconds: float,
    *,
    retry_after: float | None = None,
    error: BaseException | None = None,
    resend_count: int | None = None,
) -> _Span | _Null:
    """``servicecomms.retry_wait``: the wait of ``seconds`` before a retry (wrap the sleep), with the
    server's ``Retry-After`` when it sent one; records it in ``servicecomms.retry.wait``."""
    if not ENABLED:
        return NULL
    reason = "retry-after" if retry_after is not None else "backoff"
    attributes: dict[str, Any] = {
        "servicecomms.retry.wait": float(seconds),
        "servicecomms.retry.reason": reason,
    }
    if retry_after is not None:
        attributes["http.response.header.retry-after"] = (f"{retry_after:g}",)
    if error is not None:
        attributes["error.type"] = _error_type(error)
    if resend_count is not None:
        attributes["http.request.resend_count"] = resend_count
    metric = {"servicecomms.retry.reason": reason}
    if error is not None:
        metric["error.type"] = attributes["error.type"]
    _get_instruments().retry_wait.record(float(seconds), metric)
    return _Span(_get_tracer().start_span("servicecomms.retry_wait", attributes=attributes))


class _Attempt:
    """One HTTP attempt: a CLIENT span with the stable HTTP semantic conventions, and its metrics
    when it ends."""

    __slots__ = ("_metric", "_span", "_started", "_status", "_token")

    def __init__(self, span: Any, metric: dict[str, Any]) -> None:
        self._span = span
        self._metric = metric
        self._status: int | None = None
        self._started = 0.0
        self._token: Any = None

    def __enter__(self) -> _Attempt:
        self._token = _context.attach(_trace.set_span_in_context(self._span))
        self._started = time.perf_counter()
        return self

    def set(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)

    def response(self, status: int, request_id: str | None = None) -> None:
        """The answer's status (and Graph's ``request-id``), for an attempt that did not raise."""
        self._status = status
        self._span.set_attribute("http.response.status_code", status)
        if request_id:
            self._span.set_attribute("servicecomms.request_id", request_id)
        if status >= 400:
            self._span.set_attribute("error.type", str(status))
            self._span.set_status(_Status(_StatusCode.ERROR, str(status)))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._started
        span, metric = self._span, self._metric
        try:
            throttled = False
            if exc is not None:
                status = getattr(exc, "status", None)
                if isinstance(status, int) and not isinstance(status, bool):
                    self._status = status
                    span.set_attribute("http.response.status_code", status)
                    request_id = getattr(exc, "request_id", None)
                    if isinstance(request_id, str) and request_id:
                        span.set_attribute("servicecomms.request_id", request_id)
                    throttled = is_throttling(status, getattr(exc, "code", None))
                kind = _mark_failed(span, exc)
                if kind is not None:
                    metric["error.type"] = kind
            elif self._status is not None and self._status >= 400:
                metric["error.type"] = str(self._status)
                throttled = self._status == 429
            if self._status is not None:
                metric["http.response.status_code"] = self._status
            if "error.type" in metric or self._status is not None:
                instruments = _get_instruments()
                instruments.duration.record(elapsed, metric)
                instruments.requests.add(1, metric)
                if throttled:
                    instruments.throttled.add(1, metric)
        finally:
            _context.detach(self._token)
            span.end()


def attempt_span(
    method: str,
    url: URL,
    tenant: str,
    resend_count: int = 0,
    *,
    client_request_id: str | None = None,
) -> _Attempt | _Null:
    """One HTTP attempt (a CLIENT span named ``method``), current inside the ``with`` block. An
    exception leaving the block is its outcome (an ``APIStatusError`` gives its status code and
    request id); otherwise call ``.response(status, request_id)`` in the block. On exit it records
    ``http.client.request.duration``, ``servicecomms.requests`` and ``servicecomms.throttled``.
    ``resend_count``: attempts sent before this one for the same request (0 for the first)."""
    if not ENABLED:
        return NULL
    host = url.raw_host or ""
    port = url.port
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "server.address": host,
        "url.full": redact_url(url, tenant),
        TENANT: tenant_attribute(tenant),
    }
    if port is not None:
        attributes["server.port"] = port
    if resend_count > 0:
        attributes["http.request.resend_count"] = resend_count
    if client_request_id:
        attributes["servicecomms.client_request_id"] = client_request_id
    span = _get_tracer().start_span(method, kind=_SpanKind.CLIENT, attributes=attributes)
    metric: dict[str, Any] = {"http.request.method": method, "server.address": host}
    if port is not None:
        metric["server.port"] = port
    return _Attempt(span, metric)


def budget_waited(tenant: str, seconds: float) -> None:
    """A request waited ``seconds`` for room in the request budget (``BudgetLimiter.acquire``'s
    answer): recorded in ``servicecomms.budget.wait``, and as an event on the current span."""
    if not ENABLED or seconds <= 0:
        return
    _get_instruments().budget_wait.record(float(seconds))
    span = _trace.get_current_span()
    if span.is_recording():
        span.add_event("servicecomms.budget_wait", {"servicecomms.budget.wait": float(seconds)})


def log_failure(
    logger: logging.Logger,
    level: int,
    error: BaseException,
    *,
    tenant: str,
    url: str,
    client_request_id: str | None,
    attempts: int | None = None,
) -> None:
    """Log a request's failure with Graph's ``request-id`` and the ``client-request-id`` sent, in the
    message and as ``extra`` fields (``request_id``, ``client_request_id``, ``tenant_id``,
    ``error_type``, ``attempts``) for JSON log formatters. ``url`` must come redacted."""
    request_id = getattr(error, "request_id", None)
    logger.log(
        level,
        "request to %s (tenant %s) failed%s: %s; request-id %s, client-request-id %s",
        url,
        tenant,
        f" after {attempts} attempt(s)" if attempts is not None else "",
        _error_type(error),
        request_id or "-",
        client_request_id or "-",
        extra={
            "request_id": request_id,
            "client_request_id": client_request_id,
            "tenant_id": tenant,
            "error_type": _error_type(error),
            "attempts": attempts,
        },
    )


# -- list calls -------------------------------------------------------------------------------------

Operation = tuple[str, dict[str, Any]]
Step = tuple[Any, bool]  # a pager's (page or items, last)


def list_operation(path: str, tenant: str, api: str) -> Operation:
    """What a pager's span is called and carries: ``servicecomms.list issues`` for ``issues`` (the
    last segment of the path, so no message id is in a span name)."""
    leaf = path.rstrip("/").rsplit("/", 1)[-1]
    return f"servicecomms.list {leaf}", {
        TENANT: tenant_attribute(tenant),
        "servicecomms.api": api,
        "servicecomms.operation": f"list {leaf}",
    }


Fetch = Callable[["URL"], Awaitable[T]]


async def traced_stream(
    operation: Operation,
    fetch: Fetch[T],
    paginate: Callable[[Fetch[T]], AsyncGenerator[Step, None]],
) -> AsyncGenerator[Step, None]:
    """A pager's stream (``paginate(fetch)``) inside one span, from its first page to its end or
    close; the span is current around each fetch only (never across a ``yield``, which would hand
    it to the consumer's code)."""
    name, attributes = operation
    span = _get_tracer().start_span(name, attributes=attributes)
    parent = _trace.set_span_in_context(span)

    async def traced_fetch(url: URL) -> T:
        token = _context.attach(parent)
        try:
            return await fetch(url)
        finally:
            _context.detach(token)

    pages = items = 0
    try:
        async with aclosing(paginate(traced_fetch)) as stream:
            async for step in stream:
                pages += 1
                items += len(step[0])
                yield step
    except BaseException as exc:
        _mark_failed(span, exc)
        raise
    finally:
        span.set_attribute("servicecomms.pages", pages)
        span.set_attribute("servicecomms.items", items)
        span.end()


# -- scans ------------------------------------------------------------------------------------------


class ScanObserver:
    """One scan's span and metrics: made by :func:`scan_started` when telemetry is on."""

    __slots__ = ("_span", "_started")

    def __init__(self, tenants: int, concurrency: int) -> None:
        self._span = _get_tracer().start_span(
            "servicecomms.scan",
            attributes={
                "servicecomms.scan.tenants": tenants,
                "servicecomms.scan.concurrency": concurrency,
            },
        )
        self._started = time.perf_counter()

    def current(self) -> _Current:
        """The scan's span as the current one (for starting its workers, which inherit it)."""
        return _Current(self._span)

    def tenant_failed(self, error: BaseException) -> None:
        _get_instruments().tenants_failed.add(1, {"error.type": _error_type(error)})

    def finished(self, progress: Any, error: BaseException | None) -> None:
        """The scan ended (``progress``: its ScanProgress), with ``error`` when it raised."""
        span = self._span
        span.set_attribute("servicecomms.scan.succeeded", progress.tenants_succeeded)
        span.set_attribute("servicecomms.scan.failed", progress.tenants_failed)
        span.set_attribute("servicecomms.scan.items", progress.items)
        metric: dict[str, Any] = {}
        if error is not None:
            kind = _mark_failed(span, error)
            if kind is not None:
                metric["error.type"] = kind
        _get_instruments().scan_duration.record(time.perf_counter() - self._started, metric)
        span.end()


class _Current:
    __slots__ = ("_span", "_token")

    def __init__(self, span: Any) -> None:
        self._span = span
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = _context.attach(_trace.set_span_in_context(self._span))

    def __exit__(self, *exc: object) -> None:
        _context.detach(self._token)


def scan_started(tenants: int, concurrency: int) -> ScanObserver | None:
    """A scan began (None while telemetry is off)."""
    if not ENABLED:
        return None
    return ScanObserver(tenants, concurrency)


# -- the watcher and the outbox ---------------------------------------------------------------------


class StalenessSource(Protocol):
    def staleness(self) -> Iterable[tuple[str, float]]:
        """(tenant id, seconds since its last successful poll) per watched tenant."""
        ...


class DepthSource(Protocol):
    def depth(self) -> Iterable[tuple[str, int, float]]:
        """(sink name, pending deliveries, age in seconds of the oldest pending one) per sink."""
        ...


_watchers: weakref.WeakSet[Any] = weakref.WeakSet()
_outboxes: weakref.WeakSet[Any] = weakref.WeakSet()


def watch_source(watcher: StalenessSource) -> None:
    """Report ``watcher``'s tenants in the staleness gauge while it lives."""
    if ENABLED:
        _get_instruments()  # the gauge's callback is registered with the instruments
        _watchers.add(watcher)


def outbox_source(outbox: DepthSource) -> None:
    """Report ``outbox``'s sinks in the outbox gauges while it lives."""
    if ENABLED:
        _get_instruments()
        _outboxes.add(outbox)


def watch_events(types: Iterable[str]) -> None:
    """Count a cycle's events by type (``servicecomms.watch.events``)."""
    if not ENABLED:
        return
    counts: dict[str, int] = {}
    for kind in types:
        counts[kind] = counts.get(kind, 0) + 1
    counter = _get_instruments().watch_events
    for kind, count in counts.items():
        counter.add(count, {"servicecomms.event.type": kind})


def deliveries(sink: str, state: str, count: int) -> None:
    """Count deliveries by sink and state (delivered, failed, dead)."""
    if ENABLED and count:
        _get_instruments().deliveries.add(
            count, {"servicecomms.sink.name": sink, "servicecomms.delivery.state": state}
        )


def _observe_staleness(options: Any) -> Iterator[Any]:
    for watcher in list(_watchers):
        for tenant, seconds in watcher.staleness():
            yield _metrics.Observation(seconds, {TENANT: tenant_attribute(tenant)})


def _observe_depth(options: Any) -> Iterator[Any]:
    for outbox in list(_outboxes):
        for sink, pending, _ in outbox.depth():
            yield _metrics.Observation(pending, {"servicecomms.sink.name": sink})


def _observe_age(options: Any) -> Iterator[Any]:
    for outbox in list(_outboxes):
        for sink, _, age in outbox.depth():
            yield _metrics.Observation(age, {"servicecomms.sink.name": sink})


class _Instruments:
    """Every instrument, made once per meter."""

    def __init__(self, meter: Any) -> None:
        seconds = "s"
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            unit=seconds,
            description="Duration of HTTP client requests (one per attempt).",
        )
        self.requests = meter.create_counter(
            "servicecomms.requests",
            unit="{request}",
            description="HTTP attempts by status code or error type.",
        )
        self.throttled = meter.create_counter(
            "servicecomms.throttled",
            unit="{response}",
            description="Throttling answers: HTTP 429, and the Management API's 403 AF429.",
        )
        self.retry_wait = meter.create_histogram(
            "servicecomms.retry.wait",
            unit=seconds,
            description="Waits before retries (Retry-After or backoff).",
        )
        self.budget_wait = meter.create_histogram(
            "servicecomms.budget.wait",
            unit=seconds,
            description="Time requests waited for room in the request budget.",
        )
        self.token_failures = meter.create_counter(
            "servicecomms.token.failures",
            unit="{failure}",
            description="Token acquisitions that failed, by error type.",
        )
        self.scan_duration = meter.create_histogram(
            "servicecomms.scan.duration", unit=seconds, description="Duration of whole scans."
        )
        self.tenants_failed = meter.create_counter(
            "servicecomms.scan.tenants.failed",
            unit="{tenant}",
            description="Tenants whose part of a scan failed, by error type.",
        )
        self.watch_events = meter.create_counter(
            "servicecomms.watch.events",
            unit="{event}",
            description="Events the watcher made, by CloudEvents type.",
        )
        self.deliveries = meter.create_counter(
            "servicecomms.outbox.deliveries",
            unit="{delivery}",
            description="Outbox deliveries by sink and state (delivered, failed, dead).",
        )
        meter.create_observable_gauge(
            "servicecomms.watch.staleness",
            callbacks=[_observe_staleness],
            unit=seconds,
            description="Seconds since each tenant's last successful poll (since the watcher "
            "started, for a tenant never polled successfully).",
        )
        meter.create_observable_gauge(
            "servicecomms.outbox.pending",
            callbacks=[_observe_depth],
            unit="{delivery}",
            description="Deliveries pending per sink after the last delivery run.",
        )
        meter.create_observable_gauge(
            "servicecomms.outbox.oldest_pending_age",
            callbacks=[_observe_age],
            unit=seconds,
            description="Age of the oldest pending delivery per sink (0: none pending).",
        )


# -- Prometheus -------------------------------------------------------------------------------------

PROMETHEUS_EXTRA = "pip install 'servicecomms-async[otel]'"


class MetricsUnavailableError(RuntimeError):
    """The Prometheus endpoint needs the ``[otel]`` extra (the OpenTelemetry SDK and its
    Prometheus exporter)."""


def serve_prometheus(port: int, host: str = "127.0.0.1") -> Callable[[], None]:
    """Serve this library's metrics in Prometheus' text format at ``http://host:port/metrics``
    (from a thread; loopback unless ``host`` says otherwise), from a meter provider of its own.
    Returns the function that stops it. :class:`MetricsUnavailableError` without the ``[otel]``
    extra; ``OSError`` when the address cannot be listened on."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import REGISTRY, start_http_server
    except ImportError as exc:
        raise MetricsUnavailableError(
            f"the metrics endpoint needs OpenTelemetry's SDK and Prometheus exporter "
            f"({exc.name or exc} is not installed): {PROMETHEUS_EXTRA}"
        ) from None
    if not AVAILABLE:  # pragma: no cover - the SDK needs the API
        raise MetricsUnavailableError(f"OpenTelemetry is not importable: {PROMETHEUS_EXTRA}")
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        served = start_http_server(port, addr=host, registry=REGISTRY)
    except BaseException:
        provider.shutdown()
        raise
    configure(meter_provider=provider, enabled=True)

    def stop() -> None:
        if isinstance(served, tuple):
            server = served[0]
            server.shutdown()
            server.server_close()
        provider.shutdown()  # unregisters the reader's collector
        configure(meter_provider=_metrics.get_meter_provider())

    return stop
