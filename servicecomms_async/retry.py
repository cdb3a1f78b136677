"""RetryPolicy: which failures are retried, how long to wait, when to stop.

Defaults, as a formula: up to ``attempts=5`` tries within ``deadline=60`` s in all; before try *n*
(counting from 1 for the first retry) wait ``Retry-After`` when the server sent one (but a wait above
``retry_after_cap=60`` s raises the throttling error at once, with ``retry_after`` on it), else a
full-jitter backoff ``uniform(0, min(backoff_max=30, backoff_initial=0.5 * 2 ** (n - 1)))``.

Retried: connection errors, timeouts, HTTP 408, 429, 500, 502, 503, 504, and HTTP 403 with code AF429
(the Management API's throttling answer). A plain 403 is not retried.

:func:`set_testing` removes every wait (the attempts are still counted), like ``stamina.set_testing``.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import attrs

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
THROTTLE_CODE = "AF429"

_testing = False


def set_testing(testing: bool) -> None:
    """Turn every retry wait into zero (for test suites); attempts are still counted."""
    global _testing
    _testing = testing


def is_testing() -> bool:
    return _testing


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a request is retried. Pass one to the session, or per call where an operation takes ``retry=``."""

    attempts: int = attrs.field(default=5)
    deadline: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    backoff_initial: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    backoff_max: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    retry_after_cap: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))

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
        if status in RETRY_STATUSES:
            return True
        return status == 403 and code is not None and code.upper() == THROTTLE_CODE

    def backoff(self, retry_number: int) -> float:
        """The full-jitter wait before retry ``retry_number`` (1 for the first retry)."""
        if _testing:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** (retry_number - 1))
        return random.uniform(0, ceiling)

    def wait(self, retry_number: int, retry_after: float | None) -> float:
        """Seconds to wait before the retry: the server's ``Retry-After`` if given, else backoff."""
        if _testing:
            return 0.0
        if retry_after is not None:
            return retry_after
        return self.backoff(retry_number)


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
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)
