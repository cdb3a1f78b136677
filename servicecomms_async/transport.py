"""HTTP: the only module that imports aiohttp.

:class:`Transport` owns one ``aiohttp.ClientSession`` (one connection pool for every tenant), sends a GET,
attaches the bearer token only when the URL has the API's own origin, retries by the
:class:`~servicecomms_async.retry.RetryPolicy`, refreshes the token once on a 401, caps the body size,
decodes JSON with orjson, and turns every failure into the library's typed errors.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import attrs
import orjson
from yarl import URL

from .auth import Secret, TokenProvider
from .errors import (
    APIStatusError,
    ConnectError,
    RequestTimeoutError,
    ServiceCommsError,
    SessionClosedError,
    UnexpectedResponseError,
    status_error_class,
)
from .retry import RetryPolicy, parse_retry_after

logger = logging.getLogger("servicecomms_async.transport")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_ERROR_BODY_LIMIT = 64 * 1024  # how much of an error body is kept on the exception
_QUERY_SAFE = "$',:()/"


@attrs.frozen(kw_only=True)
class Timeout:
    """Per-phase timeouts in seconds (``None`` = no limit): ``connect``, ``read`` (between bytes), ``total``
    (one attempt, from sending to the last body byte). Retries have their own deadline in RetryPolicy."""

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = 60.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, sock_connect=self.connect, sock_read=self.read
        )


@attrs.frozen(kw_only=True)
class Limits:
    """Connection pool size: ``max_connections`` in all (the session raises it to a scan's concurrency),
    ``keepalive_timeout`` seconds an idle connection is kept."""

    max_connections: int = 100
    keepalive_timeout: float = 30.0


@attrs.frozen
class Response:
    """A decoded JSON response and what a caller may want to know about it."""

    data: Any
    status: int
    url: str
    request_id: str | None
    attempts: int


def encode_query(params: Mapping[str, str | int]) -> str:
    """Percent-encode OData query options, keeping ``$``, quotes and colons readable (spaces as %20)."""
    return "&".join(
        f"{quote(k, safe='$')}={quote(str(v), safe=_QUERY_SAFE)}" for k, v in params.items()
    )


def same_origin(url: URL, origin: URL) -> bool:
    return (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)


class Transport:
    """One connection pool and the request loop. Create with :meth:`open` inside the running loop."""

    def __init__(
        self,
        *,
        origin: URL,
        timeout: Timeout,
        limits: Limits,
        retry: RetryPolicy,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = origin
        self.timeout = timeout
        self.limits = limits
        self.retry = retry
        self.max_body_bytes = max_body_bytes
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.requests_sent = 0  # every HTTP attempt, for diagnostics and tests

    async def open(self) -> None:
        if self._closed:
            raise SessionClosedError("this session was closed; create a new ServiceCommsSession")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections,
                limit_per_host=0,
                keepalive_timeout=self.limits.keepalive_timeout,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout.to_aiohttp(),
                headers=self._headers,
                raise_for_status=False,
                auto_decompress=True,
            )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def connections_in_use(self) -> int:
        """Connections currently checked out of the pool (0 when every response was released)."""
        if self._session is None:
            return 0
        connector = self._session.connector
        acquired = getattr(connector, "_acquired", ())
        return len(acquired)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise SessionClosedError("the session is closed")
            raise SessionClosedError(
                "the session is not open: use 'async with ServiceCommsSession(...)' or await open()"
            )
        return self._session

    async def get_json(
        self,
        url: URL,
        *,
        tenant: str,
        tokens: TokenProvider,
        retry: RetryPolicy | None = None,
        timeouts: Timeout | None = None,
    ) -> Response:
        """GET ``url`` and decode its JSON body, retrying what the policy allows."""
        policy = retry or self.retry
        started = time.monotonic()
        attempt = 0
        refreshed_after_401 = False
        while True:
            attempt += 1
            token = await tokens.get_token(tenant) if same_origin(url, self.origin) else None
            try:
                return await self._attempt(
                    url, tenant=tenant, token=token, timeouts=timeouts, attempt=attempt
                )
            except APIStatusError as exc:
                if exc.status == 401 and token is not None and not refreshed_after_401:
                    # The token may have been revoked or expired early: drop it and try once more.
                    # That extra try is not a retry of the policy's.
                    refreshed_after_401 = True
                    tokens.invalidate(tenant, token)
                    attempt -= 1
                    logger.debug("401 for tenant %s: token dropped, fetching a new one", tenant)
                    continue
                if not RetryPolicy.is_retryable_status(exc.status, exc.code):
                    raise
                failure: ServiceCommsError = exc
                retry_after = exc.retry_after
            except (ConnectError, RequestTimeoutError) as exc:
                failure = exc
                retry_after = None
            if retry_after is not None and retry_after > policy.retry_after_cap:
                logger.debug(
                    "not retrying %s for tenant %s: Retry-After %.1fs is above the cap %.1fs",
                    _redact(url),
                    tenant,
                    retry_after,
                    policy.retry_after_cap,
                )
                raise failure
            wait = policy.wait(attempt, retry_after)
            elapsed = time.monotonic() - started
            if attempt >= policy.attempts or elapsed + wait > policy.deadline:
                logger.debug(
                    "giving up on %s for tenant %s after %d attempts in %.1fs: %s",
                    _redact(url),
                    tenant,
                    attempt,
                    elapsed,
                    type(failure).__name__,
                )
                raise failure
            logger.debug(
                "retrying %s for tenant %s in %.2fs (attempt %d of %d): %s",
                _redact(url),
                tenant,
                wait,
                attempt + 1,
                policy.attempts,
                _reason(failure),
            )
            await anyio.sleep(wait)

    async def _attempt(
        self, url: URL, *, tenant: str, token: Secret | None, timeouts: Timeout | None, attempt: int
    ) -> Response:
        client = self._client()
        headers = {"Authorization": "Bearer " + token.reveal()} if token is not None else None
        self.requests_sent += 1
        try:
            async with client.get(
                url,
                headers=headers,
                allow_redirects=False,  # a redirect must never carry the token anywhere
                timeout=timeouts.to_aiohttp() if timeouts is not None else aiohttp.helpers.sentinel,
            ) as resp:
                body = await self._read_body(resp, url, tenant)
                status = resp.status
                request_id = resp.headers.get("X-Activity-Id") or resp.headers.get("request-id")
                if status >= 400 or 300 <= status < 400:
                    raise _status_error(resp, body, url, tenant, request_id)
                content_type = resp.headers.get("Content-Type", "")
        except ServiceCommsError:
            raise
        except asyncio.TimeoutError:
            raise RequestTimeoutError(
                f"timed out waiting for {_redact(url)} (tenant {tenant})",
                url=_redact(url),
                tenant=tenant,
            ) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ConnectError(
                f"connection failed for {_redact(url)} (tenant {tenant}): {type(exc).__name__}: {exc}",
                url=_redact(url),
                tenant=tenant,
            ) from None
        except aiohttp.ClientError as exc:
            raise ConnectError(
                f"request failed for {_redact(url)} (tenant {tenant}): {type(exc).__name__}: {exc}",
                url=_redact(url),
                tenant=tenant,
            ) from None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UnexpectedResponseError(
                f"the response from {_redact(url)} is not valid JSON ({exc}; Content-Type "
                f"{content_type!r}, {len(body)} bytes, starting {body[:80]!r})",
                url=_redact(url),
                tenant=tenant,
            ) from None
        return Response(
            data=data, status=status, url=str(url), request_id=request_id, attempts=attempt
        )

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
        if length is not None:
            return await resp.read()
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


def _status_error(
    resp: aiohttp.ClientResponse, body: bytes, url: URL, tenant: str, request_id: str | None
) -> APIStatusError:
    text = body[:_ERROR_BODY_LIMIT].decode("utf-8", errors="replace")
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
    return cls(
        status=status,
        code=code,
        message=message,
        body_text=text,
        request_id=request_id,
        tenant=tenant,
        url=_redact(url),
        retry_after=retry_after,
    )


def _redact(url: URL) -> str:
    """The URL without user info (a token never travels in the URL, but a caller's base URL might hold one)."""
    return str(url.with_user(None)) if url.user or url.password else str(url)


def _reason(exc: ServiceCommsError) -> str:
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status} {exc.code or ''}".strip()
    return type(exc).__name__
