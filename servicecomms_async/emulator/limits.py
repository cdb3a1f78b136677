"""Microsoft Graph's request limits for ``/admin/serviceAnnouncement/``, enforced by the emulator.

Graph documents (``concepts/throttling-limits.md``, "Service Communications service limits") that any
request under ``/admin/serviceAnnouncement/`` is limited to **240 requests per 60 s and 800 per hour,
per app per tenant**; its global limit is **130,000 requests per 10 s per app** across all tenants.
Past a limit Graph answers ``429 Too Many Requests`` with ``Retry-After`` (seconds) and the body
``{"error": {"code": "TooManyRequests", ...}}``. :class:`GraphLimits` turns that on in the emulator, so
a client's request budgets can be proven against it::

    emu = Emulator(config, clock=ManualClock(), graph_limits=GraphLimits())   # Graph's own limits
    emu = Emulator(config, graph_limits=GraphLimits(per_tenant=[(5, 60)], per_app=[(8, 10)]))

Contract:

* **Off by default**: ``Emulator(graph_limits=None)`` limits nothing.
* **What is limited**: the Graph routes under ``/v1.0/admin/serviceAnnouncement/``, once the caller is
  known (a request refused 401/403 by the token check is nobody's and counts nowhere; a path that
  matches no route is not limited). The legacy routes and the identity server's token endpoint are
  never limited.
* **Who**: the tenant and the app of the Graph caller. A JWT's app is its ``appid`` (``azp`` for v2
  tokens), as :meth:`IdentityServer.graph_token_validator <.identity.IdentityServer.graph_token_validator>`
  reports it in :attr:`GraphCaller.app <.graph.GraphCaller.app>`; the emulator's own
  ``emulator-app.{tenant}`` / ``emulator-user.{tenant}`` tokens, and a validator that names no app, are
  all the one app :data:`DEFAULT_APP`. ``per_tenant`` windows are kept per (app, tenant),
  ``per_app`` windows per app across its tenants.
* **Sliding windows**: a request at ``t`` is in a window of ``S`` seconds until ``t + S`` (exclusive). A
  request is admitted when every window it belongs to holds fewer than its ``N`` requests; then it is
  counted in all of them at once.
* **Attempts count** (``count_throttled=True``, the default): Graph says "all requests accrue against
  your usage limits", so a throttled request is counted in every window too, and a client that
  hammers while throttled stays throttled longer. ``count_throttled=False`` counts admitted requests
  only. Either way a throttled request never reaches the handler (it is not a served request: no data,
  ``RecordedRequest.items`` 0, ``RecordedRequest.throttled`` true).
* **Retry-After** is whole seconds, rounded up, at least 1, until a retry with no other traffic would be
  admitted: for each exceeded window, until enough of its oldest requests (the throttled attempt
  included, when attempts count) have left it for it to hold fewer than ``N``; the largest of those.
  Advancing a :class:`~.clock.ManualClock` by it makes the retry pass (unless other requests filled the
  window meanwhile).
* **Time** is the emulator's clock when it has one (``ManualClock``: windows move only with
  ``emu.advance``; ``ScaledClock``: emulated seconds, so ``Retry-After`` is in the world's seconds too),
  else the monotonic clock.
* **Counters**: ``Emulator.throttled`` (a ``Counter`` by tenant, lower case) and
  ``Emulator.throttled_windows`` (by :class:`Window` and scope ``"tenant"``/``"app"``), cleared by
  ``reset_stats``; the windows' state is not (it is the server's, like Graph's).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, NamedTuple

__all__ = [
    "DEFAULT_APP",
    "GRAPH_APP_WINDOWS",
    "GRAPH_TENANT_WINDOWS",
    "MAX_WINDOW_REQUESTS",
    "MAX_WINDOW_SECONDS",
    "GraphLimiter",
    "GraphLimits",
    "Throttle",
    "Window",
    "parse_windows",
]

DEFAULT_APP = "emulator-app"
"""The app of the emulator's own opaque tokens, and of a caller whose validator names no app."""

MAX_WINDOW_REQUESTS = 10_000_000
MAX_WINDOW_SECONDS = 7 * 24 * 3600

Scope = Literal["tenant", "app"]


class Window(NamedTuple):
    """At most ``requests`` requests in any ``seconds`` seconds."""

    requests: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}"


GRAPH_TENANT_WINDOWS: tuple[Window, ...] = (Window(240, 60), Window(800, 3600))
"""Graph's documented service communications limits, per app per tenant."""
GRAPH_APP_WINDOWS: tuple[Window, ...] = (Window(130_000, 10),)
"""Graph's documented global limit, per app across all tenants."""


def _window(value: object, where: str) -> Window:
    if isinstance(value, str):
        return _parse_window(value, where)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{where}: a window is (requests, seconds), got {value!r}")
    requests, seconds = value
    if isinstance(requests, bool) or not isinstance(requests, int):
        raise TypeError(f"{where}: requests must be an int, got {requests!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{where}: seconds must be a number, got {seconds!r}")
    if not 1 <= requests <= MAX_WINDOW_REQUESTS:
        raise ValueError(
            f"{where}: requests must be from 1 to {MAX_WINDOW_REQUESTS:,}, got {requests!r}"
        )
    if not (math.isfinite(seconds) and 0.001 <= seconds <= MAX_WINDOW_SECONDS):
        raise ValueError(
            f"{where}: seconds must be from 0.001 to {MAX_WINDOW_SECONDS:,} (a week), "
            f"got {seconds!r}"
        )
    return Window(requests, float(seconds))


_WINDOW_RE = re.compile(r"\s*(\d[\d_]*)\s*/\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:s)?\s*", re.IGNORECASE)


def _parse_window(text: str, where: str) -> Window:
    match = _WINDOW_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{where}: expected REQUESTS/SECONDS such as 240/60, got {text.strip()!r}")
    return _window((int(match[1]), float(match[2])), where)


def parse_windows(text: str, where: str = "limits") -> tuple[Window, ...]:
    """``"240/60,800/3600"`` as windows; ``ValueError`` naming the bad part (``where`` first).
    An empty string is no windows."""
    if not isinstance(text, str):
        raise TypeError(f"{where}: expected text such as 240/60,800/3600, got {text!r}")
    if not text.strip():
        return ()
    return tuple(_parse_window(part, where) for part in text.split(","))


def _windows(value: object, where: str) -> tuple[Window, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_windows(value, where)
    if not isinstance(value, Iterable):
        raise TypeError(f"{where}: expected windows such as [(240, 60)], got {value!r}")
    return tuple(_window(item, where) for item in value)


@dataclasses.dataclass(frozen=True)
class GraphLimits:
    """The limits the emulator enforces on ``/admin/serviceAnnouncement/`` (see the module).

    ``per_tenant``: windows per (app, tenant); default Graph's 240/60 s and 800/3,600 s.
    ``per_app``: windows per app across its tenants; default Graph's 130,000/10 s; ``()`` for none.
    Windows are ``(requests, seconds)`` pairs or ``"N/SECONDS"`` texts. ``count_throttled``: whether a
    throttled attempt counts in the windows (Graph: it does).
    """

    per_tenant: Sequence[tuple[int, float]] | str = GRAPH_TENANT_WINDOWS
    """Stored as a tuple of :class:`Window` whatever was passed."""
    per_app: Sequence[tuple[int, float]] | str = GRAPH_APP_WINDOWS
    """Stored as a tuple of :class:`Window` whatever was passed."""
    count_throttled: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_tenant", _windows(self.per_tenant, "GraphLimits.per_tenant"))
        object.__setattr__(self, "per_app", _windows(self.per_app, "GraphLimits.per_app"))
        if not isinstance(self.count_throttled, bool):
            raise TypeError(
                f"GraphLimits.count_throttled must be a bool, got {self.count_throttled!r}"
            )

    def __str__(self) -> str:
        tenant = ",".join(map(str, self.tenant_windows)) or "none"
        app = ",".join(map(str, self.app_windows)) or "none"
        return f"per (app, tenant) {tenant}; per app {app}"

    @property
    def tenant_windows(self) -> tuple[Window, ...]:
        """``per_tenant`` as :class:`Window` s (typed)."""
        return _windows(self.per_tenant, "GraphLimits.per_tenant")

    @property
    def app_windows(self) -> tuple[Window, ...]:
        """``per_app`` as :class:`Window` s (typed)."""
        return _windows(self.per_app, "GraphLimits.per_app")


class Throttle(NamedTuple):
    """Why a request was refused: ``retry_after`` whole seconds, and the windows it exceeded."""

    retry_after: int
    exceeded: tuple[tuple[Scope, Window], ...]


class _Windows:
    """The request times (ms) in each of a key's windows, oldest first."""

    __slots__ = ("times",)

    def __init__(self, count: int) -> None:
        self.times: list[collections.deque[int]] = [collections.deque() for _ in range(count)]


class GraphLimiter:
    """The sliding windows' state for one emulator. ``now_ms`` is its clock (integer ms, never going
    backwards). Not thread-safe: the emulator calls :meth:`admit` from its event loop, with no await
    between the check and the count, so concurrent requests cannot slip past a window together."""

    def __init__(self, limits: GraphLimits, now_ms: Callable[[], int]) -> None:
        if not isinstance(limits, GraphLimits):
            raise TypeError(f"graph_limits must be a GraphLimits, got {type(limits).__name__}")
        self.limits = limits
        self._now_ms = now_ms
        self._tenant_windows = limits.tenant_windows
        self._app_windows = limits.app_windows
        self._tenant_ms = [round(w.seconds * 1000) for w in self._tenant_windows]
        self._app_ms = [round(w.seconds * 1000) for w in self._app_windows]
        self._tenants: dict[tuple[str, str], _Windows] = {}
        self._apps: dict[str, _Windows] = {}

    def admit(self, app: str | None, tenant: str) -> Throttle | None:
        """Count a request from ``app`` (None: :data:`DEFAULT_APP`) for ``tenant``; ``None`` when it
        may be served, else the :class:`Throttle` to answer with."""
        app = app or DEFAULT_APP
        now = self._now_ms()
        groups: list[tuple[Scope, tuple[Window, ...], list[int], _Windows]] = []
        if self._tenant_windows:
            key = (app, tenant)
            found = self._tenants.get(key)
            if found is None:
                found = self._tenants[key] = _Windows(len(self._tenant_windows))
            groups.append(("tenant", self._tenant_windows, self._tenant_ms, found))
        if self._app_windows:
            found_app = self._apps.get(app)
            if found_app is None:
                found_app = self._apps[app] = _Windows(len(self._app_windows))
            groups.append(("app", self._app_windows, self._app_ms, found_app))
        exceeded: list[tuple[Scope, Window, collections.deque[int], int]] = []
        for scope, windows, spans, state in groups:
            for window, span, times in zip(windows, spans, state.times, strict=True):
                while times and now - times[0] >= span:
                    times.popleft()
                if len(times) >= window.requests:
                    exceeded.append((scope, window, times, span))
        if exceeded and not self.limits.count_throttled:
            return self._throttle(exceeded, now)
        for _, _, _, state in groups:
            for times in state.times:
                times.append(now)
        return self._throttle(exceeded, now) if exceeded else None

    @staticmethod
    def _throttle(
        exceeded: list[tuple[Scope, Window, collections.deque[int], int]], now: int
    ) -> Throttle:
        wait_ms = 0
        for _, window, times, span in exceeded:
            # The window admits a retry once it holds fewer than N: the (len - N)th oldest has left.
            leaves = times[len(times) - window.requests] + span
            wait_ms = max(wait_ms, leaves - now)
        retry_after = max(1, -(-wait_ms // 1000))
        return Throttle(retry_after, tuple((scope, window) for scope, window, _, _ in exceeded))

    def reset(self) -> None:
        """Forget every window (as if no request had been made)."""
        self._tenants.clear()
        self._apps.clear()
