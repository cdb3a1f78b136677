"""Option objects, checked when they are made: :class:`Timeout`, :class:`Limits`, and the per-call
:class:`RequestOptions` that carry a caller's ``retry=`` and ``timeout=``.

A wrong value fails here, naming the parameter, before any request: ``timeout=5`` is taken as five
seconds for a whole attempt (``Timeout(total=5)``); ``retry=3`` is refused with a ``TypeError`` that
shows how to write it (``RetryPolicy(attempts=3)``), since "3" could mean attempts or retries.
"""

from __future__ import annotations

from typing import Any

import attrs

from . import _constants
from ._validate import validate_int, validate_seconds
from .retry import RetryPolicy


def _optional_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    name = f"{type(instance).__name__}.{attribute.name}"
    if value is None:
        return
    try:
        validate_seconds(value, name)
    except TypeError:
        raise TypeError(
            f"{name} must be seconds (a number) or None, got {type(value).__name__}"
        ) from None
    except ValueError:
        raise ValueError(
            f"{name} must be greater than 0 seconds, or None for no limit, got {value!r}"
        ) from None


@attrs.frozen(kw_only=True)
class Timeout:
    """Per-phase timeouts in seconds (``None`` = no limit): ``connect`` (opening the TCP/TLS
    connection; waiting for a free pool connection is not part of it), ``read`` (the longest gap between
    two reads of the response), ``total`` (one attempt, from sending the request to the last body
    byte; waiting for a free pool connection is bounded by the retry deadline instead). Pass one to the session, or per call: every operation takes ``timeout=``, which
    replaces the session's for that call. A plain number means ``Timeout(total=number)``. Retries have
    their own ``deadline`` in RetryPolicy, and an attempt never runs past it."""

    connect: float | None = attrs.field(
        default=_constants.CONNECT_TIMEOUT, validator=_optional_seconds
    )
    read: float | None = attrs.field(default=_constants.READ_TIMEOUT, validator=_optional_seconds)
    total: float | None = attrs.field(default=_constants.TOTAL_TIMEOUT, validator=_optional_seconds)


@attrs.frozen(kw_only=True)
class Limits:
    """Connection pool size: ``max_connections`` in all (while scans run, the pool holds at least the
    sum of their concurrencies, so that a worker never waits for a connection), ``keepalive_timeout`` seconds an idle
    connection is kept."""

    max_connections: int = attrs.field(default=_constants.MAX_CONNECTIONS)
    keepalive_timeout: float = attrs.field(default=_constants.KEEPALIVE_TIMEOUT)

    @max_connections.validator
    def _check_max_connections(self, _: attrs.Attribute[int], value: int) -> None:
        try:
            validate_int(value, "Limits.max_connections")
        except (TypeError, ValueError):
            raise ValueError(
                f"Limits.max_connections must be an int of 1 or more, got {value!r}"
            ) from None

    @keepalive_timeout.validator
    def _check_keepalive(self, _: attrs.Attribute[float], value: float) -> None:
        try:
            validate_seconds(value, "Limits.keepalive_timeout", allow_zero=True)
        except (TypeError, ValueError):
            raise ValueError(
                f"Limits.keepalive_timeout must be 0 or more seconds, got {value!r}"
            ) from None


def as_timeout(value: object, parameter: str = "timeout") -> Timeout | None:
    """``None``, a :class:`Timeout`, or a number of seconds for the whole attempt."""
    if value is None or isinstance(value, Timeout):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Timeout(total=validate_seconds(value, parameter))
    raise TypeError(
        f"{parameter} must be a Timeout (e.g. Timeout(total=30)), a number of seconds or None, "
        f"got {type(value).__name__}"
    )


def as_retry(value: object, parameter: str = "retry") -> RetryPolicy | None:
    """``None`` or a :class:`RetryPolicy`; anything else is refused with the way to write it."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    hint = ""
    if isinstance(value, int) and not isinstance(value, bool):
        hint = f" such as RetryPolicy(attempts={value})"
    raise TypeError(
        f"{parameter} must be a RetryPolicy{hint} or None (RetryPolicy.never() for no retries), "
        f"got {type(value).__name__}"
    )


def as_limits(value: object, parameter: str = "limits") -> Limits | None:
    """``None`` or a :class:`Limits`."""
    if value is None or isinstance(value, Limits):
        return value
    raise TypeError(
        f"{parameter} must be a Limits (e.g. Limits(max_connections=200)) or None, "
        f"got {type(value).__name__}"
    )


@attrs.frozen
class RequestOptions:
    """A client's ``retry=`` and ``timeout=`` for its calls; ``None`` means the session's."""

    retry: RetryPolicy | None = None
    timeout: Timeout | None = None

    def merged(self, retry: object, timeout: object) -> RequestOptions:
        """These options with one call's ``retry=`` and ``timeout=`` (checked here) taking precedence."""
        if retry is None and timeout is None:
            return self
        return RequestOptions(
            as_retry(retry) if retry is not None else self.retry,
            as_timeout(timeout) if timeout is not None else self.timeout,
        )


NO_OPTIONS = RequestOptions()
