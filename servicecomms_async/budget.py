"""Request budgets: stay inside Microsoft Graph's limits instead of bouncing off them.

Graph limits any request under ``/admin/serviceAnnouncement/`` to **240 per 60 seconds and 800 per hour,
per app per tenant**, and an app to 130,000 requests per 10 seconds across tenants. A session with a
budget counts every attempt it sends (retries included) in sliding windows, per tenant and for the
whole app, and a request that would exceed one **waits** until the window has room instead of being
sent to fail; a wait that would end after the request's deadline fails at once with
:class:`BudgetExhaustedError` (a :class:`~servicecomms_async.errors.RequestTimeoutError`). A 429 with
``Retry-After`` pauses that tenant's budget for that long, not the others'.

::

    ServiceCommsSession(..., api="graph")                                   # Graph's limits (default)
    ServiceCommsSession(..., api="graph", budget=RequestBudget(per_tenant=[(120, 60)]))
    ServiceCommsSession(..., api="graph", budget=None)                      # none

The legacy API has no documented limits: its sessions have no budget unless given one.

**Sizing a watch**: a poll costs a tenant 3 requests (more pages only when over 1,000 items changed)
and a full resync 3 more every ``full_resync``, so in a window of ``W`` seconds a tenant spends
``3 * ceil(W / interval) + 3 * ceil(W / full_resync)`` requests, which must stay within the window's
count (``Watcher.check_interval`` checks it). With Graph's limits the shortest interval is 14 seconds;
at the default 5 minutes and 6 hours a tenant spends 39 requests an hour.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Callable, Iterable, Sequence

import attrs

from .errors import RequestTimeoutError

__all__ = [
    "GRAPH_BUDGET",
    "BudgetExhaustedError",
    "BudgetLimiter",
    "RequestBudget",
    "parse_windows",
]

Window = tuple[int, float]  # (requests, seconds)
_MARGIN = 0.01  # seconds
_ANSWER_POLL = 0.02  # how often a request waiting for an answer to make room looks again


class BudgetExhaustedError(RequestTimeoutError):
    """The request budget would let a request go only after its deadline: it was not sent."""


def _windows(value: Iterable[Sequence[float]] | None) -> tuple[Window, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        raise TypeError("windows are (requests, seconds) pairs, such as [(240, 60), (800, 3600)]")
    windows: list[Window] = []
    for pair in value:
        try:
            requests, seconds = pair
        except (TypeError, ValueError):
            raise TypeError(f"a window is a (requests, seconds) pair, got {pair!r}") from None
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
            raise ValueError(f"a window's requests must be an int of 1 or more, got {requests!r}")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValueError(f"a window's seconds must be a number above 0, got {seconds!r}")
        windows.append((requests, float(seconds)))
    return tuple(sorted(windows, key=lambda w: w[1]))


def parse_windows(text: str) -> tuple[Window, ...]:
    """``"240/60,800/3600"`` as windows (``ValueError`` naming the part that is wrong)."""
    windows: list[tuple[int, float]] = []
    for part in text.split(","):
        requests, sep, seconds = part.strip().partition("/")
        try:
            if not sep:
                raise ValueError
            windows.append((int(requests), float(seconds)))
        except ValueError:
            raise ValueError(
                f"a budget is REQUESTS/SECONDS[,REQUESTS/SECONDS...] such as 240/60,800/3600, "
                f"got {part.strip()!r}"
            ) from None
    return _windows(windows)


@attrs.frozen
class RequestBudget:
    """Sliding windows of (requests, seconds): ``per_tenant`` for each tenant, ``per_app`` for all
    of the session's requests together."""

    per_tenant: tuple[Window, ...] = attrs.field(
        default=((240, 60.0), (800, 3600.0)), converter=_windows
    )
    per_app: tuple[Window, ...] = attrs.field(default=((130_000, 10.0),), converter=_windows)

    def __attrs_post_init__(self) -> None:
        if not self.per_tenant and not self.per_app:
            raise ValueError("a RequestBudget needs a window; for none, pass budget=None")


GRAPH_BUDGET = RequestBudget()
"""Graph's documented limits for ``/admin/serviceAnnouncement/``."""


class _Log:
    """The requests of one tenant (or of the app) that may still be in a window.

    The server counts a request when it arrives, somewhere between its sending and its answer, so a
    request is held in the windows from when it is sent until ``window`` seconds after its answer:
    ``in_flight`` counts those not answered yet, ``answered`` holds the answer times, sorted. However
    the network delays or bunches the requests, the server then never sees more than a window holds.
    """

    __slots__ = ("answered", "in_flight", "paused_until")

    def __init__(self) -> None:
        self.answered: list[float] = []
        self.in_flight = 0
        self.paused_until = 0.0

    def free_at(self, windows: tuple[Window, ...], now: float) -> float | None:
        """When a request may go so that no window holds more than its count; None when only an
        answer to a request in flight can make room."""
        answered = self.answered
        longest = windows[-1][1] if windows else 0.0
        gone = bisect.bisect_right(answered, now - longest)
        if gone:
            del answered[:gone]
        at = max(now, self.paused_until)
        for requests, seconds in windows:
            start = bisect.bisect_right(answered, now - seconds)
            held = self.in_flight + len(answered) - start
            if held < requests:
                continue
            if self.in_flight >= requests:
                return None
            # Enough of the oldest answers must leave the window: the (held - requests + 1)th.
            leaving = answered[start + held - requests]
            at = max(at, leaving + seconds + _MARGIN)
        return at

    def answer(self, at: float) -> None:
        self.in_flight -= 1
        if not self.answered or at >= self.answered[-1]:
            self.answered.append(at)
        else:
            bisect.insort(self.answered, at)

    def idle(self, windows: tuple[Window, ...], now: float) -> bool:
        longest = windows[-1][1] if windows else 0.0
        return (
            self.in_flight == 0
            and self.paused_until <= now
            and (not self.answered or self.answered[-1] <= now - longest)
        )


class BudgetLimiter:
    """Applies a :class:`RequestBudget` to the requests of one session (see the module's rules).

    Every :meth:`acquire` is followed by one :meth:`answered` when the request's answer came (or it
    failed). Memory: one timestamp per request still inside a tenant's longest window (at most its
    count, 800 with Graph's limits), dropped with the tenant once it is idle.
    """

    def __init__(
        self,
        budget: RequestBudget,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.budget = budget
        self._clock = clock
        self._sleep = sleep or asyncio.sleep
        self._tenants: dict[str, _Log] = {}
        self._app = _Log()
        self._since_sweep = 0
        self.waited = 0.0  # seconds spent waiting for the budget, in all
        self.waits = 0

    def __repr__(self) -> str:
        return f"BudgetLimiter(per_tenant={self.budget.per_tenant}, per_app={self.budget.per_app})"

    def _log(self, tenant: str) -> _Log:
        log = self._tenants.get(tenant)
        if log is None:
            log = self._tenants[tenant] = _Log()
        return log

    def delay(self, tenant: str) -> float | None:
        """How long a request for ``tenant`` would wait now (0: it may go; None: until an answer to
        a request in flight makes room)."""
        now = self._clock()
        mine = self._log(tenant).free_at(self.budget.per_tenant, now)
        app = self._app.free_at(self.budget.per_app, now)
        if mine is None or app is None:
            return None
        return max(mine, app) - now

    async def acquire(self, tenant: str, *, deadline: float | None = None) -> float:
        """Wait until a request for ``tenant`` fits every window, then count it; returns the
        seconds waited. ``deadline`` is on the limiter's clock (``time.monotonic`` by default): a
        wait past it raises :class:`BudgetExhaustedError` at once, without waiting."""
        waited = 0.0
        while True:
            wait = self.delay(tenant)
            if wait is None:  # every slot is a request in flight: the next answer frees one
                wait = _ANSWER_POLL
            elif wait <= 0:
                break
            if deadline is not None and self._clock() + wait > deadline:
                raise BudgetExhaustedError(
                    f"the request budget for tenant {tenant} has room in {wait:.1f} s, after the "
                    "request's deadline: not sent (Graph allows 240 requests a minute and 800 an hour "
                    "per app and tenant; see RequestBudget)",
                    tenant=tenant,
                )
            result = self._sleep(wait)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
            waited += wait
        now = self._clock()
        self._log(tenant).in_flight += 1
        self._app.in_flight += 1
        if waited:
            self.waited += waited
            self.waits += 1
        self._sweep(now)
        return waited

    def answered(self, tenant: str) -> None:
        """The request :meth:`acquire` let go for ``tenant`` has its answer (or failed): call it
        exactly once per acquire."""
        now = self._clock()
        self._log(tenant).answer(now)
        self._app.answer(now)

    def pause(self, tenant: str, seconds: float) -> None:
        """The server asked ``tenant``'s requests to wait ``seconds`` (a 429's ``Retry-After``)."""
        if seconds > 0 and math.isfinite(seconds):
            log = self._log(tenant)
            log.paused_until = max(log.paused_until, self._clock() + seconds)

    def _sweep(self, now: float) -> None:
        self._since_sweep += 1
        if self._since_sweep < 1024:
            return
        self._since_sweep = 0
        windows = self.budget.per_tenant
        for tenant in [t for t, log in self._tenants.items() if log.idle(windows, now)]:
            del self._tenants[tenant]

    def tenants_tracked(self) -> int:
        """Tenants with requests still inside a window (for tests and memory checks)."""
        return len(self._tenants)
