"""The exception tree.

Every error the library raises on purpose derives from :class:`ServiceCommsError`::

    ServiceCommsError
    ├── SessionClosedError           the session was closed (or never opened) when a request was made
    ├── TransportError               no usable HTTP response arrived
    │   ├── ConnectError             the connection could not be made or was dropped (retried)
    │   ├── RequestTimeoutError      a connect, read or total timeout expired (retried)
    │   └── TLSError                 the TLS handshake or certificate check failed (not retried)
    ├── ResponseError                a response arrived but is not what the API promises
    │   ├── UnexpectedResponseError  not JSON, wrong shape, too large
    │   ├── InvalidFieldError        strict mode: a known field held a value of the wrong type
    │   └── PagingError              the server sent the same next link twice, or too many pages
    ├── AuthenticationError          no valid token: the credential failed, or the API said 401
    │   └── CredentialError          the credential could not produce a token (bad secret, unknown app)
    └── APIStatusError               the API answered with an error status (status, code, message, request id)
        ├── BadRequestError          400
        ├── UnauthorizedError        401 (also an AuthenticationError)
        ├── ForbiddenError           403 other than throttling
        │   ├── EndpointRetiredError 403 "Please use MSGraph to access this resource"
        │   └── DelegatedPermissionRequiredError  Graph refused an app-only token for a user's action
        ├── NotFoundError            404
        ├── ThrottledError           429, and 403 with code AF429 (the Management API's throttling answer)
        └── ServerError              5xx

Invalid arguments raise :class:`ValueError` or :class:`TypeError` naming the parameter, before anything is
sent. No exception text ever contains a token, a client secret or an ``Authorization`` header.

Every text an error keeps is capped, so that a hostile or broken server cannot make a held error large:
``body_text`` at ``ERROR_BODY_LIMIT`` (64 KiB) characters, the message and every other text (``code``,
``message``, ``url``, ``request_id``) at ``ERROR_TEXT_LIMIT`` (4 KiB) characters; a cut text ends in
``...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._constants import ERROR_BODY_LIMIT, ERROR_TEXT_LIMIT, THROTTLE_CODE


def cap_text(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (ending in ``...`` when cut)."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _cap_optional(text: str | None, limit: int = ERROR_TEXT_LIMIT) -> str | None:
    return None if text is None else cap_text(text, limit)


class ServiceCommsError(Exception):
    """Base class of every error this library raises on purpose."""


class SessionClosedError(ServiceCommsError):
    """The session is closed, or was used before ``async with`` / ``open()``."""


class TransportError(ServiceCommsError):
    """No usable HTTP response arrived: the request failed below HTTP."""

    def __init__(self, message: str, *, url: str | None = None, tenant: str | None = None) -> None:
        super().__init__(cap_text(message))
        self.url = _cap_optional(url)
        self.tenant = tenant


class ConnectError(TransportError):
    """The connection could not be made, or it was dropped before the response was complete."""


class RequestTimeoutError(TransportError):
    """A connect, read or total timeout expired."""


class TLSError(TransportError):
    """The TLS handshake or the certificate check failed; asking again would fail the same way."""


class ResponseError(ServiceCommsError):
    """A response arrived, but it is not what the API promises."""

    def __init__(self, message: str, *, url: str | None = None, tenant: str | None = None) -> None:
        super().__init__(cap_text(message))
        self.url = _cap_optional(url)
        self.tenant = tenant


class UnexpectedResponseError(ResponseError):
    """The body is not JSON, has the wrong shape, or exceeds the size limit."""


class InvalidFieldError(ResponseError):
    """Strict mode: a known field held a value that cannot become the field's type.

    ``model`` is the class name, ``field`` the attribute, ``wire_name`` the JSON key, ``value`` what was sent
    and ``item_id`` the item's ``Id`` when it had one.
    """

    def __init__(
        self, *, model: str, field: str, wire_name: str, value: Any, item_id: Any, reason: str
    ) -> None:
        where = f"{model} {item_id!r}" if item_id is not None else model
        super().__init__(
            f"{where}: field {field!r} (wire name {wire_name!r}) has an invalid value "
            f"{_short_repr(value)}: {reason}"
        )
        self.model = model
        self.field = field
        self.wire_name = wire_name
        self.value = cap_text(value) if isinstance(value, str) else value
        self.item_id = cap_text(item_id) if isinstance(item_id, str) else item_id


class PagingError(ResponseError):
    """Paging cannot go on safely: a repeated next link, or more pages than allowed."""


class AuthenticationError(ServiceCommsError):
    """No valid token: the credential failed to produce one, or the API refused it with 401."""


class CredentialError(AuthenticationError):
    """The credential could not produce a token for a tenant (bad secret, unknown app, bad scope)."""

    def __init__(self, message: str, *, tenant: str | None = None) -> None:
        super().__init__(cap_text(message))
        self.tenant = tenant


class APIStatusError(ServiceCommsError):
    """The API answered with an error status.

    Attributes: ``status`` (HTTP status), ``code`` and ``message`` (from the OData error body
    ``{"error": {"code", "message"}}`` when it is JSON, else ``None``), ``body_text`` (the body as text,
    kept whole when it is not JSON, e.g. the plain-text stack trace the real service once sent),
    ``request_id`` (``X-Activity-Id`` or ``request-id``), ``tenant``, ``url`` (no secrets in it),
    ``retry_after`` (seconds, when the server said so).
    """

    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        message: str | None,
        body_text: str,
        request_id: str | None,
        tenant: str | None,
        url: str,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = _cap_optional(code)
        self.message = _cap_optional(message)
        self.body_text = cap_text(body_text, ERROR_BODY_LIMIT)
        self.request_id = _cap_optional(request_id)
        self.tenant = tenant
        self.url = cap_text(url)
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        detail = (
            f"{self.code}: {self.message}"
            if self.code or self.message
            else _first_line(self.body_text)
        )
        parts = [f"HTTP {self.status}"]
        if detail:
            parts.append(detail)
        if self.tenant:
            parts.append(f"tenant {self.tenant}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        parts.append(f"url {self.url}")
        return " | ".join(parts)


class BadRequestError(APIStatusError):
    """400: the API did not accept a parameter."""


class UnauthorizedError(APIStatusError, AuthenticationError):
    """401: the token was missing, invalid, expired, or lacks the permission (AF10001)."""


class ForbiddenError(APIStatusError):
    """403 other than throttling: the app or user may not do this."""


class EndpointRetiredError(ForbiddenError):
    """403 "Please use MSGraph to access this resource": Microsoft retired the legacy endpoint."""


class DelegatedPermissionRequiredError(ForbiddenError):
    """Graph refused an app-only token for an action on a user's own view (mark read, archive, ...)."""

    @classmethod
    def from_error(
        cls, error: APIStatusError, explanation: str
    ) -> DelegatedPermissionRequiredError:
        made = cls(
            status=error.status,
            code=error.code,
            message=error.message,
            body_text=error.body_text,
            request_id=error.request_id,
            tenant=error.tenant,
            url=error.url,
            retry_after=error.retry_after,
        )
        made.args = (f"{explanation}: {made.args[0]}",)
        return made


class NotFoundError(APIStatusError):
    """404: no such resource."""


class ThrottledError(APIStatusError):
    """Throttled: HTTP 429, or HTTP 403 with code AF429. ``retry_after`` holds the server's wait."""


class ServerError(APIStatusError):
    """5xx: the service failed (AF50000 asks to retry)."""


RETIRED_MARKER = "please use msgraph"


def is_throttling(status: int, code: str | None) -> bool:
    """Whether an error answer means "slow down": HTTP 429, or the Management API's 403 with code
    AF429. The one place this is decided; the error classes and the retry policy both ask here."""
    return status == 429 or (status == 403 and code is not None and code.upper() == THROTTLE_CODE)


def status_error_class(status: int, code: str | None, text: str) -> type[APIStatusError]:
    """The most specific error class for an error response."""
    if is_throttling(status, code):
        return ThrottledError
    if status >= 500:
        return ServerError
    by_status: Mapping[int, type[APIStatusError]] = {
        400: BadRequestError,
        401: UnauthorizedError,
        404: NotFoundError,
    }
    if status == 403:
        return EndpointRetiredError if RETIRED_MARKER in text.lower() else ForbiddenError
    return by_status.get(status, APIStatusError)


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
