"""ServiceCommsSession: owns the connection pool and the token cache, hands out per-tenant clients.

::

    async with ServiceCommsSession(credential) as session:
        async for status in session.tenant("contoso.onmicrosoft.com").current_status():
            ...

The session creates its ``aiohttp.ClientSession`` inside the running loop when it is entered (or on
``await session.open()``) and closes exactly what it created; closing twice is harmless, and using a
closed session raises :class:`~servicecomms_async.errors.SessionClosedError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

from yarl import URL

from . import __version__
from .auth import (
    Credential,
    CredentialFactory,
    CredentialTokenProvider,
    StaticTokenProvider,
    TokenProvider,
)
from .clouds import PUBLIC, Cloud, get_cloud, is_loopback_host
from .convert import WireConverter, converter, strict_converter
from .errors import SessionClosedError
from .graph import GraphClient
from .paging import DEFAULT_MAX_PAGES
from .query import validate_tenant_id
from .retry import RetryPolicy
from .scan import DEFAULT_CONCURRENCY, Operation, Scan, ScanProgress
from .tenant import TenantClient
from .transport import DEFAULT_MAX_BODY_BYTES, Limits, Response, Timeout, Transport

DEFAULT_BASE_URL = PUBLIC.base_url
DEFAULT_SCOPE = PUBLIC.token_scope

T = TypeVar("T")
Api = Literal["legacy", "graph"]


def validate_base_url(base_url: str | URL) -> URL:
    """An absolute http(s) URL without query or fragment; plain HTTP only for loopback hosts."""
    url = URL(str(base_url))
    if url.scheme not in ("https", "http") or not url.host:
        raise ValueError(f"base_url must be an absolute https:// URL, got {str(base_url)!r}")
    if url.scheme == "http" and not is_loopback_host(url.host):
        raise ValueError(
            f"base_url must use https:// (plain http is allowed only for loopback hosts such as the "
            f"embedded emulator), got {str(base_url)!r}"
        )
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {str(base_url)!r}")
    return url.with_path(url.path.rstrip("/") or "/")


class ServiceCommsSession:
    """A connection pool, a token cache and settings shared by every tenant client.

    Authentication: pass ``credential`` (an azure-core ``AsyncTokenCredential`` such as
    ``azure.identity.aio.ClientSecretCredential``, or a callable ``tenant_id -> credential`` for partners
    whose token differs per customer tenant), or ``token`` (a static bearer token, e.g. for the emulator).
    Synchronous azure-core credentials (``azure.identity.DeviceCodeCredential``) run in a worker thread.
    With one credential and ``per_tenant_tokens=True`` the session asks
    ``credential.get_token(scope, tenant_id=tenant)`` for each tenant (a multi-tenant app).

    ``cloud`` (a :class:`~servicecomms_async.clouds.Cloud` or its name: ``"public"`` (default), ``"gcc"``,
    ``"gcc-high"``, ``"dod"``, ``"china"``) gives the default ``base_url`` and ``scope``; either can be
    overridden on its own. The session closes the credentials a factory made and never one passed in.

    Options: ``base_url`` and ``scope`` (the cloud's by default), ``timeout`` (:class:`Timeout`),
    ``limits`` (:class:`Limits`), ``retry`` (:class:`RetryPolicy`), ``strict`` (raise on a wrongly typed
    field instead of keeping it in ``extra``), ``max_body_bytes``, ``max_pages`` (per stream),
    ``ssl_context`` (e.g. to trust a private CA).
    """

    def __init__(
        self,
        credential: Credential | CredentialFactory | None = None,
        *,
        token: str | Callable[[str], str] | None = None,
        api: Api = "legacy",
        cloud: Cloud | str = PUBLIC,
        base_url: str | URL | None = None,
        scope: str | None = None,
        per_tenant_tokens: bool = False,
        timeout: Timeout | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        strict: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_pages: int = DEFAULT_MAX_PAGES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if (credential is None) == (token is None):
            raise TypeError("pass exactly one of credential= or token=")
        if token is not None and per_tenant_tokens:
            raise TypeError("per_tenant_tokens applies to credential=, not to a static token=")
        if api not in ("legacy", "graph"):
            raise ValueError(f"api must be 'legacy' or 'graph', got {api!r}")
        self.api: Api = api
        self.cloud = get_cloud(cloud)
        default_base_url, default_scope = self.cloud.api_root(api)
        base_url = default_base_url if base_url is None else base_url
        scope = default_scope if scope is None else scope
        self.base_url = validate_base_url(base_url)
        if not isinstance(scope, str) or not scope:
            raise ValueError(
                "scope must be a non-empty string such as https://manage.office.com/.default"
            )
        if not isinstance(max_pages, int) or max_pages < 1:
            raise ValueError(f"max_pages must be an int of 1 or more, got {max_pages!r}")
        if not isinstance(max_body_bytes, int) or max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be an int of 1 or more, got {max_body_bytes!r}")
        self.scope = scope
        self.tokens: TokenProvider = (
            StaticTokenProvider(token)
            if token is not None
            else CredentialTokenProvider(
                credential,  # type: ignore[arg-type]
                scope=scope,
                per_tenant=per_tenant_tokens,
            )
        )
        self.converter: WireConverter = strict_converter if strict else converter
        self.strict = strict
        self.max_pages = max_pages
        self._transport = Transport(
            origin=self.base_url.origin(),
            timeout=timeout or Timeout(),
            limits=limits or Limits(),
            retry=retry or RetryPolicy(),
            max_body_bytes=max_body_bytes,
            user_agent=f"servicecomms-async/{__version__}",
            ssl_context=ssl_context,
        )
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"ServiceCommsSession(api={self.api!r}, cloud={self.cloud.name!r}, "
            f"base_url={str(self.base_url)!r}, "
            f"tokens={self.tokens!r}, {state})"
        )

    async def open(self) -> ServiceCommsSession:
        """Create the connection pool (``async with`` does this for you)."""
        if self._closed:
            raise SessionClosedError("this session was closed; create a new ServiceCommsSession")
        await self._transport.open()
        return self

    async def aclose(self) -> None:
        """Close the pool and the credentials the session created; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._transport.aclose()
        finally:
            await self.tokens.aclose()

    async def __aenter__(self) -> ServiceCommsSession:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    def tenant(self, tenant_id: str) -> TenantClient:
        """A client for one tenant, by tenant GUID or domain name (validated here, before any request)."""
        if self._closed:
            raise SessionClosedError("the session is closed")
        if self.api != "legacy":
            raise TypeError(
                "this session speaks Microsoft Graph (api='graph'): use session.graph(tenant_id)"
            )
        return TenantClient(self, validate_tenant_id(tenant_id))

    def graph(self, tenant_id: str) -> GraphClient:
        """A Microsoft Graph service communications client for one tenant (needs ``api="graph"``).

        Graph finds the tenant in the token, not the URL: the tenant id chooses which token is used.
        """
        if self._closed:
            raise SessionClosedError("the session is closed")
        if self.api != "graph":
            raise TypeError(
                "this session speaks the legacy ServiceComms API: create it with "
                "ServiceCommsSession(..., api='graph') to use session.graph(tenant_id)"
            )
        return GraphClient(self, validate_tenant_id(tenant_id))

    def client(self, tenant_id: str) -> TenantClient | GraphClient:
        """The session's client for one tenant: :meth:`tenant` or :meth:`graph`, by ``api``."""
        return self.graph(tenant_id) if self.api == "graph" else self.tenant(tenant_id)

    def scan(
        self,
        tenant_ids: Iterable[str],
        operation: Operation[T],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        tenant_timeout: float | None = None,
        buffer_size: int | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
    ) -> Scan[T]:
        """Run ``operation`` (e.g. ``lambda t: t.current_status()``) for every tenant, ``concurrency`` at a
        time, and stream the results: ``async with session.scan(...) as results: async for r in results``.

        See :mod:`servicecomms_async.scan` for the contract. Arguments are checked here; the pool is
        grown to at least ``concurrency`` connections so that no worker waits for a connection.
        """
        if self._closed:
            raise SessionClosedError("the session is closed")
        scan = Scan(
            self,
            tenant_ids,
            operation,
            concurrency=concurrency,
            tenant_timeout=tenant_timeout,
            buffer_size=buffer_size,
            on_progress=on_progress,
        )
        # A request waiting for a free pool connection spends its total timeout waiting, so a scan's
        # pool must hold at least one connection per worker.
        self._transport.ensure_pool_size(concurrency)
        return scan

    def connections_in_use(self) -> int:
        """Pool connections currently checked out (0 once every stream is finished or closed)."""
        return self._transport.connections_in_use()

    @property
    def requests_sent(self) -> int:
        """HTTP attempts made so far, retries included."""
        return self._transport.requests_sent

    async def _request(
        self,
        method: str,
        url: URL,
        *,
        tenant: str,
        retry: RetryPolicy | None,
        timeout: Timeout | None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        raw: bool = False,
    ) -> Response:
        if self._closed:
            raise SessionClosedError("the session was closed while a stream was still open")
        return await self._transport.request(
            method,
            url,
            tenant=tenant,
            tokens=self.tokens,
            retry=retry,
            timeouts=timeout,
            headers=headers,
            json_body=json_body,
            raw=raw,
        )
