"""Fault injection for the emulator: throttling, server errors, dropped connections, cut bodies, stalls.

::

    plan = FaultPlan(rate=0.2, seed=42)
    faults = fault_middleware(plan)
    async with Emulator(EmulatorConfig(seed=1), middlewares=[faults]) as emu:
        ...
    print(faults.injected)  # Counter({Fault.THROTTLE_429: 31, Fault.STALL: 27, ...})

Only API requests are touched (paths with a ``/ServiceComms/`` segment, or Microsoft Graph's
``/admin/serviceAnnouncement/``); anything else, such as a token endpoint, passes through. On Graph
paths the error bodies are Graph's (``{"error": {"code", "message", "innerError"}}``, and 429 for
``THROTTLE_AF429`` too, since Graph never throttles with 403); transport faults are the same.

Contract:

* **Deterministic.** Whether a request is faulted, which fault, its latency jitter and where a body is
  cut are drawn from an RNG seeded with ``(seed, tenant, path + query as sent, attempt)``, where
  ``attempt`` counts the requests for that tenant and URL since the injector was created (or
  :meth:`FaultInjector.reset`). The same seed and the same requests therefore give the same faults
  whatever the interleaving of concurrent tenants.
* **Independent draws.** Faults stay random: nothing stops the same URL from being faulted several
  times in a row. With ``rate`` r a URL fails ``n`` tries in a row with probability ``r ** n``
  (``0.2 ** 10`` is about 1e-7), so chaos tests use a policy with enough attempts to make running out
  negligible; with a fixed seed the outcome of a given run is fixed too.
* **No work for nothing.** A fault answered without data (throttling, 5xx, resets, permanent errors)
  never runs the handler; ``RESET_DURING_BODY`` and ``TRUNCATED_JSON`` run it to cut its real body,
  and ``STALL`` runs it only if the client is still connected when the stall ends.
* ``tenant_faults`` tenants always get their fault (checked before ``rate``); ids are compared in lower
  case. ``fail_first=n`` faults the first ``n`` requests of every URL.

``FaultInjector.injected`` counts the faults really injected, by kind; ``history`` lists them.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType

from aiohttp import web

from .errors import (
    AF429_BODY,
    AF10001_BODY,
    AF20002_BODY,
    AF50000_BODY,
    GRAPH_429_BODY,
    HTTPSYS_503_BODY,
    JSON_TYPE,
    NOT_FOUND_BODY,
    STACK_TRACE_BODY,
    graph_error,
    graph_throttled,
)
from .graph import APP_TOKEN_PREFIX, USER_TOKEN_PREFIX, is_graph_path
from .parsing import bearer_token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fault(enum.Enum):
    """One way a request can fail; the value is a short name for command lines (``Fault.parse``)."""

    THROTTLE_429 = "throttle-429"
    THROTTLE_AF429 = "throttle-af429"
    SERVER_ERROR = "server-500"
    SERVER_ERROR_TEXT = "server-500-text"
    UNAVAILABLE = "unavailable-503"
    RESET_BEFORE_BODY = "reset-before-body"
    RESET_DURING_BODY = "reset-during-body"
    TRUNCATED_JSON = "truncated-json"
    STALL = "stall"
    UNAUTHORIZED = "unauthorized-401"
    FORBIDDEN = "forbidden-403"
    NOT_FOUND = "not-found-404"
    BAD_REQUEST = "bad-request-400"

    @classmethod
    def parse(cls, name: str | Fault) -> Fault:
        """A fault from its value (``"throttle-429"``) or member name (``"THROTTLE_429"``)."""
        if isinstance(name, Fault):
            return name
        if isinstance(name, str):
            text = name.strip()
            for member in cls:
                if text.lower() == member.value or text.upper() == member.name:
                    return member
        allowed = ", ".join(member.value for member in cls)
        raise ValueError(f"unknown fault {name!r}; allowed: {allowed}")

    @property
    def is_transient(self) -> bool:
        """Whether a retry can succeed (the first nine); the others are permanent answers."""
        return self in TRANSIENT_FAULTS


TRANSIENT_FAULTS: tuple[Fault, ...] = tuple(Fault)[:9]
PERMANENT_FAULTS: tuple[Fault, ...] = tuple(Fault)[9:]


def _no_tenant_faults() -> Mapping[str, Fault]:
    return MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject and how often.

    ``rate``: probability (0 to 1) that an API request gets one of ``kinds`` (transient faults by
    default; any :class:`Fault` or its name is accepted). ``seed``: see the module's determinism
    contract. ``retry_after``: seconds sent in ``Retry-After`` on throttling answers (``None`` sends no
    header; whole numbers are sent as integers, others with their decimals). ``stall_seconds``: how long
    ``STALL`` keeps the client waiting before it answers (set it above the client's read timeout).
    ``latency`` (+ uniform ``±latency_jitter``, clamped at 0) seconds are added to every API request.
    ``tenant_faults``: tenants that always get the given fault. ``fail_first``: the first
    ``fail_first`` requests of every URL get a fault from ``kinds`` whatever ``rate`` says (for exact
    scenarios such as "every page is throttled once").
    """

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[Fault, ...] = TRANSIENT_FAULTS
    retry_after: float | None = 1.0
    stall_seconds: float = 30.0
    latency: float = 0.0
    latency_jitter: float = 0.0
    tenant_faults: Mapping[str, Fault] = dataclasses.field(default_factory=_no_tenant_faults)
    fail_first: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)):
            raise TypeError(f"FaultPlan.rate must be a number, got {type(self.rate).__name__}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultPlan.rate must be between 0 and 1, got {self.rate!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"FaultPlan.seed must be an int, got {type(self.seed).__name__}")
        kinds = tuple(Fault.parse(kind) for kind in _as_iterable(self.kinds, "kinds"))
        if not kinds:
            raise ValueError("FaultPlan.kinds must name at least one fault")
        if self.retry_after is not None and not _non_negative(self.retry_after):
            raise ValueError(
                f"FaultPlan.retry_after must be None or seconds >= 0, got {self.retry_after!r}"
            )
        if isinstance(self.fail_first, bool) or not isinstance(self.fail_first, int):
            raise TypeError(
                f"FaultPlan.fail_first must be an int, got {type(self.fail_first).__name__}"
            )
        if self.fail_first < 0:
            raise ValueError(f"FaultPlan.fail_first must be 0 or more, got {self.fail_first!r}")
        for name in ("stall_seconds", "latency", "latency_jitter"):
            if not _non_negative(getattr(self, name)):
                raise ValueError(
                    f"FaultPlan.{name} must be seconds >= 0, got {getattr(self, name)!r}"
                )
        if not isinstance(self.tenant_faults, Mapping):
            raise TypeError(
                "FaultPlan.tenant_faults must be a mapping of tenant id to Fault, got "
                f"{type(self.tenant_faults).__name__}"
            )
        tenant_faults = {
            str(tenant).lower(): Fault.parse(fault) for tenant, fault in self.tenant_faults.items()
        }
        # frozen dataclass: __post_init__ is the only place a normalised value can be set.
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "tenant_faults", MappingProxyType(tenant_faults))


@dataclasses.dataclass(frozen=True)
class InjectedFault:
    """One fault as injected: the tenant (lower case), the path and query as sent, the attempt number
    for that URL (1 for the first request) and the fault."""

    tenant: str
    url: str
    attempt: int
    fault: Fault


def fault_middleware(plan: FaultPlan | None = None) -> FaultInjector:
    """An aiohttp middleware that injects the faults of ``plan``; pass it to ``Emulator(middlewares=...)``."""
    return FaultInjector(plan if plan is not None else FaultPlan())


class FaultInjector:
    """The middleware itself (an async callable), with what it did: ``injected`` (a ``Counter`` by
    :class:`Fault`), ``history`` (:class:`InjectedFault` in the order they happened) and
    ``api_requests`` (API requests seen, faulted or not)."""

    # aiohttp treats a middleware without this marker as the deprecated old style.
    __middleware_version__ = 1

    def __init__(self, plan: FaultPlan) -> None:
        if not isinstance(plan, FaultPlan):
            raise TypeError(f"plan must be a FaultPlan, got {type(plan).__name__}")
        self.plan = plan
        self.injected: collections.Counter[Fault] = collections.Counter()
        self.history: list[InjectedFault] = []
        self.api_requests = 0
        self._attempts: collections.Counter[tuple[str, str]] = collections.Counter()

    def __repr__(self) -> str:
        injected = sum(self.injected.values())
        return f"FaultInjector(rate={self.plan.rate}, seed={self.plan.seed}, injected={injected})"

    def reset(self) -> None:
        """Forget the counts and the attempt numbers, so the same requests draw the same faults again."""
        self.injected.clear()
        self.history.clear()
        self.api_requests = 0
        self._attempts.clear()

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        tenant = api_tenant(request.path, request.headers.get("Authorization"))
        if tenant is None:
            return await handler(request)
        self.api_requests += 1
        url = request.raw_path
        key = (tenant, url)
        self._attempts[key] += 1
        attempt = self._attempts[key]
        plan = self.plan
        rng = random.Random(f"{plan.seed}|{tenant}|{url}|{attempt}")
        # Draw in a fixed order so that one choice never shifts another.
        fault: Fault | None = plan.tenant_faults.get(tenant)
        roll, pick = rng.random(), rng.choice(plan.kinds)
        if fault is None and (attempt <= plan.fail_first or roll < plan.rate):
            fault = pick
        jitter = rng.uniform(-plan.latency_jitter, plan.latency_jitter)
        delay = max(0.0, plan.latency + jitter)
        if delay:
            await asyncio.sleep(delay)
        if fault is None:
            return await handler(request)
        record = InjectedFault(tenant, url, attempt, fault)
        return await self._inject(record, request, handler, rng)

    async def _inject(
        self, record: InjectedFault, request: web.Request, handler: Handler, rng: random.Random
    ) -> web.StreamResponse:
        """The faulted response; a body fault that finds nothing to cut returns the real response
        (and counts nothing)."""
        fault = record.fault
        headers: dict[str, str] = {}  # the emulator adds X-Activity-Id to every API response
        if fault in (Fault.RESET_DURING_BODY, Fault.TRUNCATED_JSON):
            real = await handler(request)
            body = real.body if isinstance(real, web.Response) else None
            content = body.rstrip() if isinstance(body, bytes) else b""
            if real.status != 200 or len(content) < 2:
                return real  # nothing worth cutting (an error, or a body too short to cut)
            self._count(record)
            cut = rng.randint(1, len(content) - 1)
            headers["Content-Type"] = real.headers.get("Content-Type", "application/json")
            if fault is Fault.TRUNCATED_JSON:
                return web.Response(status=200, body=content[:cut], headers=headers)
            return await _reset_during_body(request, content, cut, headers)
        self._count(record)
        if fault is Fault.STALL:
            if await _stall(request, self.plan.stall_seconds):
                return await handler(request)
            return web.Response(status=204)  # the client left; aiohttp drops this quietly
        if fault is Fault.RESET_BEFORE_BODY:
            transport = request.transport
            if transport is not None:
                transport.abort()
            # Writing this fails with ConnectionError, which aiohttp takes as a client that left.
            return web.Response(status=204)
        status, content_type, body = _CANNED[fault]
        headers["Content-Type"] = content_type
        graph = _GRAPH_CANNED.get(fault) if is_graph_path(request.path) else None
        if graph is not None:
            # Graph answers in its own error shape, with a request id that matches its header.
            status, code, message = graph
            response = (
                graph_throttled(request)
                if status == 429
                else graph_error(status, code, message, request=request)
            )
            body = response.body if isinstance(response.body, bytes) else body
            headers.update(response.headers)
        if (
            fault in (Fault.THROTTLE_429, Fault.THROTTLE_AF429)
            and self.plan.retry_after is not None
        ):
            headers["Retry-After"] = _seconds_text(self.plan.retry_after)
        if fault is Fault.UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return web.Response(status=status, body=body, headers=headers)

    def _count(self, record: InjectedFault) -> None:
        self.injected[record.fault] += 1
        self.history.append(record)


def api_tenant(path: str, authorization: str | None = None) -> str | None:
    """The tenant (lower case) of an API request, or ``None`` when ``path`` is not an API request.

    Legacy paths carry the tenant; a Graph path does not (the token names the tenant), so for Graph it is
    the tenant of an emulator token (``emulator-app.<tenant>``) and ``""`` for any other token."""
    segments = path.split("/")
    lowered = [segment.lower() for segment in segments]
    if "servicecomms" in lowered:
        index = lowered.index("servicecomms")
        return lowered[index - 1] if index > 0 else ""
    if "/admin/serviceannouncement/" in path.lower() + "/":
        token = bearer_token(authorization) or ""
        for prefix in (APP_TOKEN_PREFIX, USER_TOKEN_PREFIX):
            if token.startswith(prefix):
                return token[len(prefix) :].lower()
        return ""
    return None


async def _stall(request: web.Request, seconds: float) -> bool:
    """Wait ``seconds``, or less if the client hangs up; whether the client is still there."""
    deadline = time.monotonic() + seconds
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        # Poll, so that a stall ends with the client's timeout instead of holding up the server's
        # shutdown for the whole stall.
        await asyncio.sleep(min(0.05, remaining))


async def _reset_during_body(
    request: web.Request, body: bytes, cut: int, headers: dict[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = len(body)  # promise the whole body, send part of it
    await response.prepare(request)
    await response.write(body[:cut])
    transport = request.transport
    if transport is not None:
        # close(), not abort(): the headers and the part already written must reach the client first.
        transport.close()
    return response


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _non_negative(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value >= 0
        and value != float("inf")
    )


def _as_iterable(value: object, name: str) -> Iterable[Fault | str]:
    if isinstance(value, (str, Fault)):
        return (value,)
    if not isinstance(value, Iterable):
        raise TypeError(f"FaultPlan.{name} must be a tuple of Fault, got {type(value).__name__}")
    return value


# Microsoft Graph paths: (status, code, message) in Graph's error shape. Graph throttles only with 429
# (the captured body, errors.GRAPH_429_BODY), so the legacy 403 AF429 fault becomes that too; the
# plain-text 500 stays text, as a gateway in front of any service can send.
_GRAPH_CANNED: Mapping[Fault, tuple[int, str, str]] = {
    Fault.THROTTLE_429: (429, "TooManyRequests", "Please retry again later."),
    Fault.THROTTLE_AF429: (429, "TooManyRequests", "Please retry again later."),
    Fault.SERVER_ERROR: (500, "generalException", "An unspecified error has occurred."),
    Fault.UNAVAILABLE: (503, "serviceNotAvailable", "The service is temporarily unavailable."),
    Fault.UNAUTHORIZED: (
        401,
        "InvalidAuthenticationToken",
        "Access token has expired or is not yet valid.",
    ),
    Fault.FORBIDDEN: (
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    ),
    Fault.NOT_FOUND: (404, "NotFound", "The requested resource does not exist."),
    Fault.BAD_REQUEST: (400, "BadRequest", "Invalid request."),
}
_CANNED: Mapping[Fault, tuple[int, str, bytes]] = {
    Fault.THROTTLE_429: (429, JSON_TYPE, GRAPH_429_BODY),
    Fault.THROTTLE_AF429: (403, JSON_TYPE, AF429_BODY),
    Fault.SERVER_ERROR: (500, JSON_TYPE, AF50000_BODY),
    Fault.SERVER_ERROR_TEXT: (500, "text/plain; charset=utf-8", STACK_TRACE_BODY),
    Fault.UNAVAILABLE: (503, "text/html; charset=us-ascii", HTTPSYS_503_BODY),
    Fault.UNAUTHORIZED: (401, JSON_TYPE, AF10001_BODY),
    Fault.FORBIDDEN: (403, JSON_TYPE, AF10001_BODY),
    Fault.NOT_FOUND: (404, JSON_TYPE, NOT_FOUND_BODY),
    Fault.BAD_REQUEST: (400, JSON_TYPE, AF20002_BODY),
}
