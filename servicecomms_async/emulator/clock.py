"""The emulator's clocks: what time it is in the emulated world.

Without a clock the emulator's world is frozen at ``EmulatorConfig.now`` (its static data). With a
clock, :attr:`Emulator.now <..app.Emulator.now>` is ``config.now`` plus the clock's elapsed time,
and the world's timeline (:mod:`.timeline`) moves with it:

* :class:`ManualClock`: time moves only when a test calls ``emulator.advance(timedelta)``;
* :class:`ScaledClock`: real time, sped up: elapsed = monotonic time since the emulator started
  serving, times ``speed`` (for demos: ``speed=60`` makes a minute an hour).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from aiohttp import web

__all__ = ["ITEMS_KEY", "REQUEST_TIME_KEY", "THROTTLE_KEY", "Clock", "ManualClock", "ScaledClock"]


def _request_key(name: str, kind: type) -> Any:
    # web.RequestKey is newer than the oldest aiohttp this package supports; a str key works too.
    factory = getattr(web, "RequestKey", None)
    return name if factory is None else factory(name, kind)


# Where the emulator puts a request's world time (epoch ms) on the aiohttp request, so every
# handler serves one instant.
REQUEST_TIME_KEY: Any = _request_key("servicecomms_async.emulator.now_ms", int)
# Where a handler puts how many items its response held (RecordedRequest.items).
ITEMS_KEY: Any = _request_key("servicecomms_async.emulator.items", int)
# Where the Graph routes put the (tenant, limits.Throttle) of a request Graph's limits refused.
THROTTLE_KEY: Any = _request_key("servicecomms_async.emulator.throttle", tuple)


class Clock:
    """The elapsed emulated time since the emulator's start (``config.now``)."""

    def elapsed_ms(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        """Called when the emulator starts serving (a scaled clock starts counting then)."""


class ManualClock(Clock):
    """A clock that moves only when told to (:meth:`advance`, or ``Emulator.advance``)."""

    def __init__(self) -> None:
        self._elapsed_ms = 0

    def elapsed_ms(self) -> int:
        return self._elapsed_ms

    def advance(self, delta: timedelta) -> None:
        """Move forward by ``delta`` (a non-negative :class:`~datetime.timedelta`)."""
        if not isinstance(delta, timedelta):
            raise TypeError(f"advance takes a datetime.timedelta, got {type(delta).__name__}")
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward: advance({delta!r}) is negative")
        self._elapsed_ms += delta // timedelta(milliseconds=1)

    def __repr__(self) -> str:
        return f"ManualClock(elapsed={timedelta(milliseconds=self._elapsed_ms)})"


class ScaledClock(Clock):
    """Real time times ``speed`` (> 0), counted from when the emulator starts serving."""

    def __init__(self, speed: float = 60.0) -> None:
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0:
            raise ValueError(f"speed must be a number > 0, got {speed!r}")
        if speed > 1_000_000:
            raise ValueError(f"speed must be at most 1,000,000, got {speed!r}")
        self.speed = float(speed)
        self._origin: float | None = None

    def start(self) -> None:
        if self._origin is None:
            self._origin = time.monotonic()

    def elapsed_ms(self) -> int:
        if self._origin is None:
            return 0
        return int((time.monotonic() - self._origin) * 1000 * self.speed)

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed:g})"
