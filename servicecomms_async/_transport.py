"""HTTP: the only module that imports aiohttp.

:class:`Transport` owns one ``aiohttp.ClientSession`` (one connection pool for every tenant) and the
token provider, sends a request, attaches the bearer token only when the URL has the API's own origin, retries by the
:class:`~servicecomms_async.retry.RetryPolicy`, refreshes the token once on a 401, caps the body size,
decodes JSON with orjson, and turns every failure into the library's typed errors.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import ssl
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import aiohttp
import anyio
import attrs
import orjson
from yarl import URL

from . import _constants, telemetry
from ._config import Limits, Timeout
from .auth import Secret, TokenProvider
from .budget import BudgetLimiter
from .errors import (
    APIStatusError,
    ConnectError,
    RequestTimeoutError,
    ServiceCommsError,
    SessionClosedError,
    TLSError,
    UnexpectedResponseError,
    status_error_class,
)
from .retry import RetryPolicy, parse_retry_after

logger = logging.getLogger("servicecomms_async.transport")

DEFAULT_MAX_BODY_BYTES = _constants.MAX_BODY_BYTES
_DEADLINE_SLACK = 0.001  # seconds: a deadline that cuts an attempt by less keeps its own timeout


@attrs.frozen
class Response:
    """A decoded JSON response and what a caller may want to know about it."""

    data: Any
    status: int
    url: str
    request_id: str | None
    attempts: int
    date: datetime | None = None  # the server's clock (its ``Date`` header), UTC


def aiohttp_timeout(timeout: Timeout, *, remaining: float | None = None) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for ``timeout``, with ``total`` cut to ``remaining`` seconds when shorter."""
    total = timeout.total
    if remaining is not None and math.isfinite(remaining) and (total is None or remaining < total):
        total = max(remaining, 0.001)  # aiohttp reads a total of 0 as "no limit"
    return aiohttp.ClientTimeout(total=total, sock_connect=timeout.connect, sock_read=timeout.read)


def same_origin(url: URL, origin: URL) -> bool:
    return (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)


class Transport:
    """One connection pool, the token provider and the request loop. Open with :meth:`open` inside the
    running loop.

    The pool's size is decided here and only here: ``limits.max_connections``, raised by
    :meth:`resize_pool` (the session asks for what its running scans need). It is enforced by an
    ``anyio.CapacityLimiter`` around each attempt, which can be resized while requests run; aiohttp's
    connector itself is unbounded, so nothing reaches into its private fields.
    """

    def __init__(
        self,
        *,
        origin: URL,
        tokens: TokenProvider,
        timeout: Timeout,
        limits: Limits,
        retry: RetryPolicy,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
        budget: BudgetLimiter | None = None,
    ) -> None:
        self.origin = origin
        self.budget = budget
        self.tokens = tokens
        self.timeout = timeout
        self.limits = limits
        self.retry = retry
        self.max_body_bytes = max_body_bytes
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._slots: anyio.CapacityLimiter | None = (
            None  # made in open(): it needs the running loop
        )
        self._closed = False
        # The tasks with a request in progress (attempts and the waits between them), so that
        # closing the transport cancels them and they end with SessionClosedError instead of
        # hanging; and those aclose() cancelled. A set entry per request costs far less than a
        # cancel scope around it.
        self._in_progress: set[asyncio.Task[Any]] = set()
        self._cancelled_by_close: set[asyncio.Task[Any]] = set()
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}  # per Timeout, when not cut
        self.requests_sent = 0  # every HTTP attempt, for diagnostics and tests

    async def open(self) -> None:
        if self._closed:
            raise SessionClosedError("this session was closed; create a new ServiceCommsSession")
        if self._session is None:
            self._slots = anyio.CapacityLimiter(self.limits.max_connections)
            connector = aiohttp.TCPConnector(
                limit=0,  # the limiter bounds the pool
                limit_per_host=0,
                keepalive_timeout=self.limits.keepalive_timeout,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The client needs no cookies, and one jar for every tenant would send one tenant's
                # cookies with another's requests, or a next-link host's cookies to the API.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp_timeout(self.timeout),
                headers=self._headers,
                raise_for_status=False,
                auto_decompress=True,
            )

    async def aclose(self) -> None:
        """Close the pool and the token provider; requests still in progress end with
        SessionClosedError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        for task in list(self._in_progress):
            if task is not current and not task.done():
                self._cancelled_by_close.add(task)
                task.cancel()
        session, self._session = self._session, None
        try:
            if session is not None:
                await session.close()
        finally:
            await self.tokens.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    def resize_pool(self, size: int) -> None:
        """Set the pool to ``size`` connections, even while requests are in flight (a smaller pool
        takes effect as connections come back). The session asks for the sum of its running scans."""
        self.limits = attrs.evolve(self.limits, max_connections=size)
        if self._slots is not None:
            self._slots.total_tokens = size

    def connections_in_use(self) -> int:
        """Connections currently checked out of the pool (0 when every response was released)."""
        return 0 if self._slots is None else int(self._slots.borrowed_tokens)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise SessionClosedError("the session is closed")
            raise SessionClosedError(
                "the session is not open: use 'async with ServiceCommsSession(...)' or await open()"
            )
        return self._session

    async def request(
        self,
        method: str,
        url: URL,
        *,
        tenant: str,
        retry: RetryPolicy | None = None,
        timeouts: Timeout | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        raw: bool = False,
    ) -> Response:
        """Send ``method url`` (with ``json_body`` as JSON, if given) and return the decoded JSON body,
        or the body's bytes with ``raw=True``, retrying what the policy allows. Every request the
        library sends is idempotent (reads, and Graph's viewpoint actions), so each may be retried.

        Raises the last attempt's error when the policy stops, and SessionClosedError when the
        transport is closed meanwhile (even in the middle of an attempt or of a wait).
        """
        self._client()  # fail fast, before a token is fetched, when the session is not open
        task = asyncio.current_task()
        in_progress = self._in_progress
        tracked = task is not None and task not in in_progress
        if tracked:
            in_progress.add(task)  # type: ignore[arg-type]
        client_request_id = telemetry.new_client_request_id()
        try:
            return await self._request(
                _Call(method, url, headers, json_body, raw, client_request_id),
                tenant=tenant,
                policy=retry or self.retry,
                timeouts=timeouts or self.timeout,
            )
        except ServiceCommsError as exc:
            # Graph's request-id with our client-request-id: what Microsoft support asks for.
            telemetry.log_failure(
                logger,
                logging.INFO,
                exc,
                tenant=tenant,
                url=_redact(url),
                client_request_id=client_request_id,
            )
            raise
        except asyncio.CancelledError:
            # Only a cancellation that aclose() sent becomes SessionClosedError; any other
            # cancellation propagates.
            if task is None or task not in self._cancelled_by_close:
                raise
            self._cancelled_by_close.discard(task)
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+: the cancel is consumed
            if uncancel is not None:
                uncancel()
        finally:
            if tracked:
                in_progress.discard(task)
                if self._cancelled_by_close:
                    self._cancelled_by_close.discard(task)
        raise SessionClosedError(
            f"the session was closed while {_redact(url)} (tenant {tenant}) was in progress"
        )

    async def _request(
        self,
        call: _Call,
        *,
        tenant: str,
        policy: RetryPolicy,
        timeouts: Timeout,
    ) -> Response:
        url = call.url
        started = time.monotonic()
        attempt = 0
        refreshed_after_401 = False
        tokens = self.tokens
        sent = 0  # attempts sent for this request (the 401 refresh included)
        while True:
            attempt += 1
            remaining = policy.deadline - (time.monotonic() - started)
            # The token wait is part of the request: it gets what is left of the deadline.
            token = None
            if same_origin(url, self.origin):
                with telemetry.token_span(tenant):
                    token = await tokens.get_token(tenant, within=remaining)
            # Within the budget's windows, or not at all: a wait past the deadline fails now.
            budget = self.budget
            if budget is not None:
                waited = await budget.acquire(tenant, deadline=started + policy.deadline)
                if waited:
                    telemetry.budget_waited(tenant, waited)
                    remaining = policy.deadline - (time.monotonic() - started)
            resend_count, sent = sent, sent + 1
            try:
                try:
                    with telemetry.attempt_span(
                        call.method,
                        url,
                        tenant,
                        resend_count,
                        client_request_id=call.client_request_id,
                    ) as span:
                        answer = await self._attempt(
                            call, tenant=tenant, token=token, timeouts=timeouts, remaining=remaining
                        )
                        span.response(answer.status, answer.request_id)
                finally:
                    if budget is not None:
                        budget.answered(tenant)
            except APIStatusError as exc:
                if exc.status == 429 and exc.retry_after is not None and budget is not None:
                    budget.pause(tenant, exc.retry_after)  # this tenant's, not the others'
                if exc.status == 401 and token is not None and not refreshed_after_401:
                    # The token may have been revoked or expired early: drop it and try once more.
                    # That extra try is not one of the policy's attempts.
                    refreshed_after_401 = True
                    tokens.invalidate(tenant, token)
                    attempt -= 1
                    logger.debug(
                        "HTTP 401 from %s (tenant %s): fetching a new token and trying again at once",
                        _redact(url),
                        tenant,
                    )
                    continue
                if not RetryPolicy.is_retryable_status(exc.status, exc.code):
                    logger.debug(
                        "not retrying %s (tenant %s): %s is not retryable",
                        _redact(url),
                        tenant,
                        _reason(exc),
                    )
                    raise
                failure: ServiceCommsError = exc
                retry_after = exc.retry_after
            except (ConnectError, RequestTimeoutError) as exc:
                failure = exc
                retry_after = None
            else:
                try:
                    return answer.decode(url, tenant, attempt, raw=call.raw, token=token)
                except UnexpectedResponseError as exc:
                    failure = exc.with_traceback(None)  # decode's frame holds the body
                finally:
                    del answer  # a held error must not keep the body alive through this frame
                # aiohttp checks a body against its Content-Length and its chunked framing: a body
                # cut short in transit is a ConnectError, retried above. A body that arrived whole
                # and does not decode (too deep, a BOM, NaN, bad UTF-8, trailing bytes, empty, 204)
                # would decode no better a second time. Only JSON that stops mid-document is asked
                # for again: a proxy that cut the body and its length would look just like it.
                if not isinstance(failure, _UnfinishedJSONError):
                    logger.debug(
                        "not retrying %s (tenant %s): the body arrived whole and does not decode",
                        _redact(url),
                        tenant,
                    )
                    raise failure
                retry_after = None
            decision = policy.decide(
                attempt=attempt, elapsed=time.monotonic() - started, retry_after=retry_after
            )
            if not decision.retry:
                logger.debug(
                    "not retrying %s (tenant %s) after attempt %d: %s; last error: %s",
                    _redact(url),
                    tenant,
                    attempt,
                    decision.reason,
                    _reason(failure),
                )
                raise failure
            logger.debug(
                "retrying %s (tenant %s) in %.2fs (%s), attempt %d of %d: %s",
                _redact(url),
                tenant,
                decision.wait,
                decision.reason,
                attempt + 1,
                policy.attempts,
                _reason(failure),
            )
            with telemetry.retry_wait_span(
                decision.wait, retry_after=retry_after, error=failure, resend_count=sent
            ):
                await anyio.sleep(decision.wait)

    async def _attempt(
        self,
        call: _Call,
        *,
        tenant: str,
        token: Secret | None,
        timeouts: Timeout,
        remaining: float,
    ) -> _RawResponse:
        client = self._client()
        slots = self._slots
        assert slots is not None  # made with the client session in open()
        borrower = object()
        try:
            slots.acquire_on_behalf_of_nowait(borrower)
        except anyio.WouldBlock:
            await _wait_for_slot(slots, borrower, call.url, tenant, remaining)
        try:
            return await self._send(
                client, call, tenant=tenant, token=token, timeouts=timeouts, remaining=remaining
            )
        finally:
            slots.release_on_behalf_of(borrower)

    async def _send(
        self,
        client: aiohttp.ClientSession,
        call: _Call,
        *,
        tenant: str,
        token: Secret | None,
        timeouts: Timeout,
        remaining: float,
    ) -> _RawResponse:
        url = call.url
        headers: dict[str, str] = dict(call.headers or {})
        if call.client_request_id:
            headers["client-request-id"] = call.client_request_id
        if token is not None:
            # Shown as *** by every repr (the dict, aiohttp's header multidicts, traceback locals);
            # its text is only read when aiohttp writes the request line and headers.
            headers["Authorization"] = HiddenHeaderValue("Bearer " + token.reveal())
        data = None
        if call.json_body is not None:
            data = orjson.dumps(call.json_body)
            headers["Content-Type"] = "application/json"
        cut_by_deadline = math.isfinite(remaining) and (
            timeouts.total is None or remaining < timeouts.total
        )
        self.requests_sent += 1
        answer: _RawResponse | None = None
        failure: ServiceCommsError | None = None
        resp: aiohttp.ClientResponse | None = None
        body = b""
        try:
            # Leaving this block releases the connection: back to the pool when the body was read
            # whole, closed otherwise (an error, a timeout or a cancellation mid-body).
            async with client.request(
                call.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,  # a redirect must never carry the token anywhere
                timeout=self._timeout_for(timeouts, remaining, cut_by_deadline),
            ) as resp:
                body = await self._read_body(resp, url, tenant)
                request_id = resp.headers.get("X-Activity-Id") or resp.headers.get("request-id")
                if resp.status >= 300:
                    failure = _status_error(resp, body, url, tenant, request_id, token)
                else:
                    content_type = resp.headers.get("Content-Type", "")
                    answer = _RawResponse(
                        body, resp.status, request_id, content_type, resp.headers.get("Date")
                    )
        except ServiceCommsError as exc:
            failure = exc
        except asyncio.TimeoutError as exc:
            failure = RequestTimeoutError(
                f"{_timeout_phase(exc, timeouts, cut_by_deadline)} for {_redact(url)} (tenant {tenant})",
                url=_redact(url),
                tenant=tenant,
            )
        except aiohttp.ClientSSLError as exc:
            failure = TLSError(
                f"TLS failed for {_redact(url)} (tenant {tenant}): {type(exc).__name__}: {exc}",
                url=_redact(url),
                tenant=tenant,
            )
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            failure = ConnectError(
                f"connection failed for {_redact(url)} (tenant {tenant}): {type(exc).__name__}: {exc}",
                url=_redact(url),
                tenant=tenant,
            )
        except aiohttp.ClientResponseError as exc:
            # aiohttp's parser refused the response itself (e.g. a header over its 8 KiB limit).
            failure = UnexpectedResponseError(
                f"unreadable response from {_redact(url)} (tenant {tenant}): {exc.message}"[:500],
                url=_redact(url),
                tenant=tenant,
            )
        except aiohttp.ClientError as exc:
            failure = ConnectError(
                f"request failed for {_redact(url)} (tenant {tenant}): {type(exc).__name__}: {exc}",
                url=_redact(url),
                tenant=tenant,
            )
        except ValueError as exc:
            # aiohttp or yarl refused the URL itself (a NUL, user info, ...): sending it again
            # would fail the same way.
            failure = UnexpectedResponseError(
                f"the request to {_redact(url)} (tenant {tenant}) could not be sent: "
                f"{type(exc).__name__}: {exc}",
                url=_redact(url),
                tenant=tenant,
            )
        # Nothing in this frame may outlive the attempt through a held error's traceback: not the
        # headers (the token), not the body.
        del headers, data, resp, body
        if answer is not None:
            return answer
        assert failure is not None
        # Raised outside the except blocks so that no aiohttp exception rides along as __context__
        # (its RequestInfo holds the request headers), and without the frames below this one (they
        # hold the body).
        raise _scrubbed(failure, token).with_traceback(None)

    def _timeout_for(
        self, timeouts: Timeout, remaining: float, cut_by_deadline: bool
    ) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for one attempt: made once per Timeout unless the deadline cuts it
        (by more than the 1 ms an attempt may overrun a deadline that barely cuts it)."""
        if cut_by_deadline and not (
            timeouts.total is not None and timeouts.total - remaining < _DEADLINE_SLACK
        ):
            return aiohttp_timeout(timeouts, remaining=remaining)
        cached = self._timeouts.get(timeouts)
        if cached is None:
            if len(self._timeouts) >= 64:  # per-call timeouts: keep a few, not one per call
                self._timeouts.clear()
            cached = self._timeouts[timeouts] = aiohttp_timeout(timeouts)
        return cached

    async def _read_body(self, resp: aiohttp.ClientResponse, url: URL, tenant: str) -> bytes:
        limit = self.max_body_bytes
        length = resp.content_length
        if length is not None and length > limit:
            raise UnexpectedResponseError(
                f"the response from {_redact(url)} is {length} bytes, above the limit of {limit} "
                "(max_body_bytes)",
                url=_redact(url),
                tenant=tenant,
            )
        if length is not None and "Content-Encoding" not in resp.headers:
            return await resp.read()  # the size is known and within the limit
        # No length, or a compressed body whose decoded size is unknown: count while reading.
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise UnexpectedResponseError(
                    f"the response from {_redact(url)} exceeded the limit of {limit} bytes "
                    "(max_body_bytes)",
                    url=_redact(url),
                    tenant=tenant,
                )
            chunks.append(chunk)
        return b"".join(chunks)


async def _wait_for_slot(
    slots: anyio.CapacityLimiter, borrower: object, url: URL, tenant: str, remaining: float
) -> None:
    """Wait for a pool connection, no longer than what is left of the retry deadline."""
    if not math.isfinite(remaining):
        await slots.acquire_on_behalf_of(borrower)
        return
    with anyio.move_on_after(max(remaining, 0.0)):
        await slots.acquire_on_behalf_of(borrower)
        return
    raise RequestTimeoutError(
        f"no free connection for {_redact(url)} (tenant {tenant}) before the retry deadline: all "
        f"{int(slots.total_tokens)} connections of the pool (Limits.max_connections) were in use",
        url=_redact(url),
        tenant=tenant,
    )


@attrs.frozen
class _Call:
    """One request as the caller asked for it; each attempt sends it again."""

    method: str
    url: URL
    headers: Mapping[str, str] | None
    json_body: Any
    raw: bool
    client_request_id: str = ""  # sent as client-request-id: Graph echoes and logs it


@attrs.frozen
class _RawResponse:
    """A 2xx answer, read whole, whose body is not decoded yet."""

    body: bytes
    status: int
    request_id: str | None
    content_type: str
    date_header: str | None = None

    def decode(
        self, url: URL, tenant: str, attempt: int, *, raw: bool = False, token: Secret | None = None
    ) -> Response:
        date = server_date(self.date_header)
        if raw:
            return Response(self.body, self.status, str(url), self.request_id, attempt, date)
        if not self.body:
            raise UnexpectedResponseError(
                f"the response from {_redact(url)} is empty (HTTP {self.status}, Content-Type "
                f"{self.content_type!r}); expected JSON",
                url=_redact(url),
                tenant=tenant,
            )
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            start = _scrub_bytes(self.body, token, 80)
            # Every prefix of a JSON document fails at its very end; what fails before the end
            # (a BOM, NaN, bad UTF-8, trailing content, too deep) fails the same way every time.
            error = _UnfinishedJSONError if exc.pos >= len(self.body) else UnexpectedResponseError
            raise error(
                f"the response from {_redact(url)} is not valid JSON ({exc}; Content-Type "
                f"{self.content_type!r}, {len(self.body)} bytes, starting {start!r})",
                url=_redact(url),
                tenant=tenant,
            ) from None
        return Response(
            data=data,
            status=self.status,
            url=str(url),
            request_id=self.request_id,
            attempts=attempt,
            date=date,
        )


def server_date(header: str | None) -> datetime | None:
    """The ``Date`` header (RFC 9110 IMF-fixdate) as an aware UTC datetime; None when absent or bad.

    The header changes once a second, and parsing it costs more than the rest of handling a small
    response, so the last one parsed is kept."""
    if not header:
        return None
    last = _last_date
    if last[0] == header:
        return last[1]
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000": UTC by RFC 5322
        parsed = parsed.replace(tzinfo=timezone.utc)
    value = parsed.astimezone(timezone.utc)
    globals()["_last_date"] = (header, value)
    return value


_last_date: tuple[str, datetime | None] = ("", None)


class _UnfinishedJSONError(UnexpectedResponseError):
    """The body is JSON that stops mid-document: the only decode failure worth asking again for."""


# aiohttp 3.10 split its timeout error by phase; with 3.9 every timeout is reported by the total.
_CONNECT_TIMEOUT: type[BaseException] | None = getattr(aiohttp, "ConnectionTimeoutError", None)
_READ_TIMEOUT: type[BaseException] | None = getattr(aiohttp, "SocketTimeoutError", None)


def _timeout_phase(exc: BaseException, timeout: Timeout, cut_by_deadline: bool) -> str:
    if _CONNECT_TIMEOUT is not None and isinstance(exc, _CONNECT_TIMEOUT):
        return f"connect timeout ({timeout.connect:g}s) expired"
    if _READ_TIMEOUT is not None and isinstance(exc, _READ_TIMEOUT):
        return f"read timeout ({timeout.read:g}s without data) expired"
    if cut_by_deadline:
        return "the retry deadline (RetryPolicy.deadline) passed"
    if _READ_TIMEOUT is not None:  # aiohttp names the other phases, so this one is the total
        return f"total timeout ({timeout.total}s) expired"
    return f"timeout (total {timeout.total}s, read {timeout.read}s, connect {timeout.connect}s) expired"


def _status_error(
    resp: aiohttp.ClientResponse,
    body: bytes,
    url: URL,
    tenant: str,
    request_id: str | None,
    token: Secret | None,
) -> APIStatusError:
    """The typed error for an error answer; every text it keeps is capped (by the error classes)
    and free of the token this attempt sent (a server may echo the ``Authorization`` header)."""
    text = _scrub_bytes(body, token, _constants.ERROR_BODY_LIMIT).decode("utf-8", errors="replace")
    code: str | None = None
    message: str | None = None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        inner = error.get("innerError")
        if (
            request_id is None
            and isinstance(inner, dict)
            and isinstance(inner.get("request-id"), str)
        ):
            request_id = inner["request-id"]
    status = resp.status
    if 300 <= status < 400:
        text = f"unexpected redirect to {resp.headers.get('Location', '?')}; redirects are not followed"
    cls = status_error_class(status, code, text)
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    secret = _scrub_value(token)
    return cls(
        status=status,
        code=_scrub(code, secret),
        message=_scrub(message, secret),
        body_text=text,
        request_id=_scrub(request_id, secret),
        tenant=tenant,
        url=_redact(url),
        retry_after=retry_after,
    )


class HiddenHeaderValue(str):
    """A header value (the ``Authorization`` header) whose ``repr`` is ``'***'``.

    aiohttp keeps the object as given in its header multidicts and writes its text only when it
    serialises the request, so the token never shows in a repr: not in a dict, not in
    ``RequestInfo``, not in the locals a traceback formatter (rich, ``pytest -l``, Sentry) prints.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


_SCRUBBED = "***"
_MIN_SCRUB_LENGTH = 8  # a shorter "token" (a test's "x") would only mangle the text


def _scrub_value(token: Secret | None) -> str | None:
    if token is None:
        return None
    value = token.reveal()
    return value if len(value) >= _MIN_SCRUB_LENGTH else None


def _scrub(text: str | None, secret: str | None) -> str | None:
    if text is None or secret is None or secret not in text:
        return text
    return text.replace(secret, _SCRUBBED)


def _scrub_bytes(body: bytes, token: Secret | None, limit: int) -> bytes:
    """The first ``limit`` bytes of ``body`` with the token replaced (scrubbed before the cut, so
    that no token is left half in the text)."""
    secret = _scrub_value(token)
    if secret is None:
        return body[:limit]
    raw = secret.encode()
    return body[: limit + len(raw)].replace(raw, _SCRUBBED.encode())[:limit]


def _scrubbed(error: ServiceCommsError, token: Secret | None) -> ServiceCommsError:
    """``error`` with the token replaced in its message and in every text attribute."""
    secret = _scrub_value(token)
    if secret is None:
        return error
    error.args = tuple(_scrub(a, secret) if isinstance(a, str) else a for a in error.args)
    for name, value in list(vars(error).items()):
        if isinstance(value, str) and secret in value:
            setattr(error, name, value.replace(secret, _SCRUBBED))
    return error


def _redact(url: URL) -> str:
    """The URL without user info (a token never travels in the URL, but a caller's base URL might hold one)."""
    return str(url.with_user(None)) if url.user or url.password else str(url)


def _reason(exc: ServiceCommsError) -> str:
    """A failure in a few words for a log line (exception texts never hold a secret)."""
    if isinstance(exc, APIStatusError):
        parts = [f"HTTP {exc.status}", (exc.code or "")[:100]]
        if exc.retry_after is not None:
            parts.append(f"Retry-After {exc.retry_after:g}s")
        if exc.request_id:
            parts.append(f"request id {exc.request_id}")
        return " ".join(part for part in parts if part)
    text = str(exc)
    return f"{type(exc).__name__}: {text if len(text) <= 300 else text[:300] + '...'}"
