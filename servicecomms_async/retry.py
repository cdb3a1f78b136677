"""RetryPolicy: which failures are retried, how long to wait, when to stop.

Defaults, as a formula: up to ``attempts=5`` tries within ``deadline=60`` s in all; before retry *n*
(1 for the first retry) wait the server's ``Retry-After`` when it sent one (but a ``Retry-After`` above
``retry_after_cap=60`` s raises the error at once, with ``retry_after`` on it), else a full-jitter
backoff ``uniform(0, min(backoff_max=30, backoff_initial=0.5 * 2 ** (n - 1)))``. No retry starts
whose wait would end past the deadline, and an attempt in flight is cut off when the deadline passes.

Retried: connection errors (refused, reset, dropped mid-body), timeouts, HTTP 408, 429, 500, 502,
503, 504, HTTP 403 with code AF429 (the Management API's throttling answer), and a 2xx answer whose
Content-Type says JSON (or is absent) but whose body does not parse (a body cut off in transit; a GET
is safe to repeat). A plain 403, every other 4xx, and a 2xx of another type (a proxy's HTML page) are
not retried. A 401 is not a retry either: the transport fetches a new token once and
tries again, outside the count of attempts.

:func:`set_testing` removes every wait (attempts, the cap and the deadline still apply), like
``stamina.set_testing``. Every retry decision is logged at DEBUG by the transport, with the reason and
the wait, never with a token.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

from . import _constants
from .errors import is_throttling

RETRY_STATUSES = _constants.RETRY_STATUSES
THROTTLE_CODE = _constants.THROTTLE_CODE

_testing = False


def set_testing(testing: bool) -> None:
    """Turn every retry wait into zero (for test suites); attempts are still counted and bounded."""
    global _testing
    _testing = bool(testing)


def is_testing() -> bool:
    return _testing


def _seconds(minimum_exclusive: bool = False) -> Any:
    """A validator: a real number of seconds, >= 0 (or > 0), naming the field when it is not."""

    def check(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
        name = f"{type(instance).__name__}.{attribute.name}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
        if math.isnan(value) or value < 0 or (minimum_exclusive and value == 0):
            bound = "greater than 0" if minimum_exclusive else "0 or more"
            raise ValueError(f"{name} must be {bound} seconds, got {value!r}")

    return check


@attrs.frozen
class RetryDecision:
    """What to do after a failed attempt: ``retry`` after ``wait`` seconds, or stop (``reason`` says why)."""

    retry: bool
    wait: float
    reason: str


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a request is retried. Pass one to the session (``retry=``), or per call: every operation
    takes ``retry=``. ``deadline`` may be ``math.inf``; ``RetryPolicy.never()`` makes one attempt."""

    attempts: int = attrs.field(default=_constants.RETRY_ATTEMPTS)
    deadline: float = attrs.field(
        default=_constants.RETRY_DEADLINE, validator=_seconds(minimum_exclusive=True)
    )
    backoff_initial: float = attrs.field(default=_constants.BACKOFF_INITIAL, validator=_seconds())
    backoff_max: float = attrs.field(default=_constants.BACKOFF_MAX, validator=_seconds())
    retry_after_cap: float = attrs.field(default=_constants.RETRY_AFTER_CAP, validator=_seconds())

    @attempts.validator
    def _check_attempts(self, _: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"RetryPolicy.attempts must be an int of 1 or more, got {value!r}")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retries."""
        return cls(attempts=1)

    @staticmethod
    def is_retryable_status(status: int, code: str | None) -> bool:
        return status in RETRY_STATUSES or is_throttling(status, code)

    def backoff(self, retry_number: int) -> float:
        """The full-jitter wait before retry ``retry_number`` (1 for the first retry)."""
        if _testing:
            return 0.0
        # Cap the exponent: 2 ** 1100 overflows a float long before any policy has that many attempts.
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(retry_number - 1, 64))
        return random.uniform(0, ceiling)

    def wait(self, retry_number: int, retry_after: float | None) -> float:
        """Seconds to wait before the retry: the server's ``Retry-After`` if given, else backoff."""
        if _testing:
            return 0.0
        if retry_after is not None:
            return retry_after
        return self.backoff(retry_number)

    def decide(self, *, attempt: int, elapsed: float, retry_after: float | None) -> RetryDecision:
        """After attempt number ``attempt`` (1 for the first) failed with a retryable error,
        ``elapsed`` seconds after the first began: retry, and after how long, or stop, and why."""
        if retry_after is not None and retry_after > self.retry_after_cap:
            return RetryDecision(
                False,
                0.0,
                f"Retry-After {retry_after:g}s is above retry_after_cap {self.retry_after_cap:g}s",
            )
        if attempt >= self.attempts:
            return RetryDecision(False, 0.0, f"all {self.attempts} attempts used")
        wait = self.wait(attempt, retry_after)
        if elapsed + wait >= self.deadline:
            return RetryDecision(
                False,
                wait,
                f"waiting {wait:.2f}s would pass the {self.deadline:g}s deadline "
                f"({elapsed:.2f}s elapsed)",
            )
        return RetryDecision(True, wait, "Retry-After" if retry_after is not None else "backoff")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` when absent or unparseable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)
