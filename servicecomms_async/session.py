"""ServiceCommsSession: the composition root. It wires a transport (one connection pool and the token
provider), the converter, the engine and an API's dialect, and hands out per-tenant clients and scans.

::

    async with ServiceCommsSession(credential, api="graph") as session:
        async for issue in session.client("contoso.onmicrosoft.com").issues(is_resolved=False):
            ...

The session's type follows its API: ``ServiceCommsSession(..., api="graph")`` is a
``ServiceCommsSession[GraphClient]``, so ``session.client(t)`` is a :class:`GraphClient` and a scan's
operation is checked against it (``mypy`` refuses ``lambda g: g.current_status()`` there).

The session creates its ``aiohttp.ClientSession`` inside the running loop when it is entered (or on
``await session.open()``) and closes exactly what it created; closing twice is harmless, and using a
closed session raises :class:`~servicecomms_async.errors.SessionClosedError`.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypedDict, TypeVar, overload

from yarl import URL

from . import _constants
from ._config import Limits, Timeout, as_limits, as_retry, as_timeout
from ._engine import Engine
from ._transport import Transport
from ._validate import (
    validate_base_url,
    validate_bool,
    validate_int,
    validate_seconds,
    validate_tenant_id,
)
from ._version import __version__
from ._wire import converter as lenient_converter
from ._wire import strict_converter
from .auth import (
    Credential,
    CredentialFactory,
    CredentialTokenProvider,
    StaticToken,
    StaticTokenProvider,
    TokenProvider,
)
from .budget import GRAPH_BUDGET, BudgetLimiter, RequestBudget
from .clouds import PUBLIC, Cloud, get_cloud
from .dialects import GRAPH, Api, Dialect, get_dialect
from .errors import SessionClosedError
from .graph import GraphClient
from .legacy import TenantClient
from .over_graph import LegacyOverGraphClient, ObservedHistory
from .retry import RetryPolicy
from .scan import DEFAULT_CONCURRENCY, Scan, ScanProgress

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Api", "ServiceCommsSession", "validate_base_url"]

T = TypeVar("T")


class _Default(enum.Enum):
    DEFAULT = "the API's default"


DEFAULT = _Default.DEFAULT  # budget=: Graph's documented limits on Graph, none on the legacy API
Client = TypeVar("Client", bound="TenantClient | GraphClient", covariant=True)

DEFAULT_BASE_URL = PUBLIC.base_url
DEFAULT_SCOPE = PUBLIC.token_scope


class SessionOptions(TypedDict, total=False):
    """The session's keyword options besides ``credential`` and ``api`` (see the class docstring)."""

    token: StaticToken
    cloud: Cloud | str
    base_url: str | URL
    scope: str
    per_tenant_tokens: bool
    timeout: Timeout | float
    limits: Limits
    retry: RetryPolicy
    token_timeout: float
    strict: bool
    max_body_bytes: int
    max_pages: int
    max_items_per_page: int
    ssl_context: ssl.SSLContext
    budget: RequestBudget | None


class ServiceCommsSession(Generic[Client]):
    """A connection pool, a token cache and settings shared by every tenant client.

    Authentication: pass ``credential`` (an azure-core ``AsyncTokenCredential`` such as
    ``azure.identity.aio.ClientSecretCredential``, or a callable ``tenant_id -> credential`` for partners
    whose token differs per customer tenant), or ``token`` (a static bearer token, or a plain or
    ``async`` callable ``tenant_id -> token``, e.g. for the emulator). Synchronous azure-core
    credentials (``azure.identity.DeviceCodeCredential``) run in a worker thread. With one credential
    and ``per_tenant_tokens=True`` the session asks ``credential.get_token(scope, tenant_id=tenant)``
    for each tenant (a multi-tenant app).

    ``api``: ``"legacy"`` (default; the Office 365 Service Communications API, retired in Microsoft's
    public cloud) or ``"graph"`` (Microsoft Graph's ``/admin/serviceAnnouncement``, where live tenants
    answer). ``cloud`` (a :class:`~servicecomms_async.clouds.Cloud` or its name: ``"public"``
    (default), ``"gcc"``, ``"gcc-high"``, ``"dod"``, ``"china"``) gives the API's default ``base_url``
    and ``scope``; either can be overridden on its own. The session closes the credentials a factory
    made and never one passed in.

    Options, each checked here before any request: ``timeout`` (:class:`Timeout`, or a number of
    seconds for a whole attempt), ``limits`` (:class:`Limits`), ``retry`` (:class:`RetryPolicy`),
    ``token_timeout`` (seconds a credential or an ``async`` token callable may take to answer, 30 by
    default and never more than ``retry.deadline``; then :class:`~servicecomms_async.CredentialError`),
    ``strict`` (raise on a wrongly typed field instead of keeping it in ``extra``),
    ``max_body_bytes``, ``max_pages`` (per stream), ``max_items_per_page`` (10,000 by default; a
    longer page, or one longer than its ``page_size``, is an ``UnexpectedResponseError``),
    ``ssl_context`` (e.g. to trust a private CA), ``budget`` (a
    :class:`~servicecomms_async.budget.RequestBudget`: requests wait for room in its windows instead of
    being throttled; Graph's documented 240 per minute and 800 per hour per tenant, and 130,000 per
    10 s for the app, by default on Graph; ``None`` for none, the legacy API's default).
    """

    @overload
    def __init__(
        self: ServiceCommsSession[TenantClient],
        credential: Credential | CredentialFactory | None = None,
        *,
        api: Literal["legacy"] = "legacy",
        **options: Unpack[SessionOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: ServiceCommsSession[GraphClient],
        credential: Credential | CredentialFactory | None = None,
        *,
        api: Literal["graph"],
        **options: Unpack[SessionOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: ServiceCommsSession[TenantClient | GraphClient],
        credential: Credential | CredentialFactory | None = None,
        *,
        api: Api,
        **options: Unpack[SessionOptions],
    ) -> None: ...

    def __init__(
        self,
        credential: Credential | CredentialFactory | None = None,
        *,
        token: StaticToken | None = None,
        api: Api = "legacy",
        cloud: Cloud | str = PUBLIC,
        base_url: str | URL | None = None,
        scope: str | None = None,
        per_tenant_tokens: bool = False,
        timeout: Timeout | float | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        token_timeout: float = _constants.TOKEN_TIMEOUT,
        strict: bool = False,
        max_body_bytes: int = _constants.MAX_BODY_BYTES,
        max_pages: int = _constants.MAX_PAGES,
        max_items_per_page: int = _constants.MAX_ITEMS_PER_PAGE,
        ssl_context: ssl.SSLContext | None = None,
        budget: RequestBudget | _Default | None = DEFAULT,
    ) -> None:
        if (credential is None) == (token is None):
            raise TypeError("pass exactly one of credential= or token=")
        if token is not None and per_tenant_tokens:
            raise TypeError("per_tenant_tokens applies to credential=, not to a static token=")
        self.dialect: Dialect = get_dialect(api)
        self.api: Api = self.dialect.name
        self.cloud = get_cloud(cloud)
        default_base_url, default_scope = self.dialect.endpoint(self.cloud)
        self.base_url = validate_base_url(default_base_url if base_url is None else base_url)
        scope = default_scope if scope is None else scope
        if not isinstance(scope, str) or not scope:
            raise ValueError(
                "scope must be a non-empty string such as https://manage.office.com/.default"
            )
        self.scope = scope
        validate_bool(per_tenant_tokens, "per_tenant_tokens")
        self.strict = validate_bool(strict, "strict")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(
                f"ssl_context must be an ssl.SSLContext or None, got {type(ssl_context).__name__}"
            )
        if ssl_context is not None and (
            ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname
        ):
            # A context that does not verify would send every tenant's token to whoever answers.
            raise ValueError(
                "ssl_context must verify the server (verify_mode=ssl.CERT_REQUIRED and "
                "check_hostname=True): to trust a private CA, use "
                "ssl.create_default_context(cafile=...) instead of turning verification off"
            )
        retry_policy = as_retry(retry) or RetryPolicy()
        # Token acquisition has its own timeout, inside the request's deadline: a credential that
        # never answers must not hold a request past Timeout and RetryPolicy.deadline.
        token_limit = validate_seconds(token_timeout, "token_timeout")
        assert token_limit is not None
        token_limit = min(token_limit, retry_policy.deadline)
        tokens: TokenProvider = (
            # Graph reads the tenant from the token: a JWT for another tenant is refused before sending.
            StaticTokenProvider(
                token, tenant_check=self.dialect is GRAPH, token_timeout=token_limit
            )
            if token is not None
            else CredentialTokenProvider(
                credential,  # type: ignore[arg-type]
                scope=scope,
                per_tenant=per_tenant_tokens,
                token_timeout=token_limit,
            )
        )
        if budget is DEFAULT:
            # Graph documents its limits for these resources; the legacy API documents none.
            budget = GRAPH_BUDGET if self.dialect is GRAPH else None
        if budget is not None and not isinstance(budget, RequestBudget):
            raise TypeError(f"budget must be a RequestBudget or None, got {type(budget).__name__}")
        self.budget: RequestBudget | None = budget
        pool = as_limits(limits) or Limits()
        self._pool_base = pool.max_connections  # the pool when no scan runs
        self._scan_demand = 0  # the concurrency of every scan entered and not yet left
        self._transport = Transport(
            origin=self.base_url.origin(),
            tokens=tokens,
            timeout=as_timeout(timeout) or Timeout(),
            limits=pool,
            retry=retry_policy,
            max_body_bytes=validate_int(max_body_bytes, "max_body_bytes"),
            user_agent=f"servicecomms-async/{__version__}",
            ssl_context=ssl_context,
            budget=BudgetLimiter(budget) if budget is not None else None,
        )
        self._engine = Engine(
            self._transport,
            strict_converter if strict else lenient_converter,
            max_pages=validate_int(max_pages, "max_pages"),
            max_items_per_page=validate_int(max_items_per_page, "max_items_per_page"),
        )
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"ServiceCommsSession(api={self.api!r}, cloud={self.cloud.name!r}, "
            f"base_url={str(self.base_url)!r}, "
            f"tokens={self.tokens!r}, {state})"
        )

    @property
    def tokens(self) -> TokenProvider:
        """The token provider (it never shows a token in its repr)."""
        return self._transport.tokens

    async def open(self) -> ServiceCommsSession[Client]:
        """Create the connection pool (``async with`` does this for you)."""
        if self._closed:
            raise SessionClosedError("this session was closed; create a new ServiceCommsSession")
        await self._transport.open()
        return self

    async def aclose(self) -> None:
        """Close the pool and the credentials the session created; safe to call more than once."""
        self._closed = True
        await self._transport.aclose()

    async def __aenter__(self) -> ServiceCommsSession[Client]:
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

    def client(self, tenant_id: str) -> Client:
        """The client for one tenant in the session's API: a :class:`TenantClient` (legacy) or a
        :class:`GraphClient`. By tenant GUID or domain name, validated here, before any request."""
        if self._closed:
            raise SessionClosedError("the session is closed")
        return self._client_for(validate_tenant_id(tenant_id))

    @overload
    def tenant(self: ServiceCommsSession[TenantClient], tenant_id: str) -> TenantClient: ...

    @overload
    def tenant(
        self: ServiceCommsSession[GraphClient],
        tenant_id: str,
        *,
        history: ObservedHistory | None = None,
    ) -> LegacyOverGraphClient: ...

    @overload
    def tenant(
        self: ServiceCommsSession[TenantClient | GraphClient],
        tenant_id: str,
        *,
        history: ObservedHistory | None = None,
    ) -> TenantClient | LegacyOverGraphClient: ...

    def tenant(
        self, tenant_id: str, *, history: ObservedHistory | None = None
    ) -> TenantClient | LegacyOverGraphClient:
        """The four legacy operations (``services``, ``current_status``, ``historical_status``,
        ``messages``) for one tenant.

        On a legacy session: a :class:`TenantClient` calling the legacy endpoint. On a Graph session
        (``api="graph"``): a :class:`~servicecomms_async.LegacyOverGraphClient` with the same methods
        and models, rebuilt from Microsoft Graph (see the README's "Legacy operations over Graph");
        ``history`` (e.g. the watcher's state store) supplies the daily statuses it observed, which
        ``historical_status`` prefers to its reconstruction.
        """
        client = self.client(tenant_id)
        if isinstance(client, GraphClient):
            return LegacyOverGraphClient(client, history=history)
        if history is not None:
            raise TypeError(
                "history= applies to a Microsoft Graph session (api='graph'): the legacy API "
                "answers HistoricalStatus itself"
            )
        assert isinstance(client, TenantClient)
        return client

    def graph(self, tenant_id: str) -> GraphClient:
        """A Microsoft Graph service communications client for one tenant (needs ``api="graph"``).

        Graph finds the tenant in the token, not the URL: the tenant id chooses which token is used.
        """
        if self.dialect is not GRAPH:
            raise TypeError(
                "this session speaks the legacy ServiceComms API: create it with "
                "ServiceCommsSession(..., api='graph') to use session.graph(tenant_id)"
            )
        client = self.client(tenant_id)
        assert isinstance(client, GraphClient)
        return client

    def _client_for(self, tenant_id: str) -> Client:
        """The client for an already validated tenant id (the scan validates its list once)."""
        cls: Any = GraphClient if self.dialect is GRAPH else TenantClient
        client: Client = cls(self._engine, tenant_id, base_url=self.base_url)
        return client

    def scan(
        self,
        tenant_ids: Iterable[str],
        operation: Callable[[Client], AsyncIterable[T]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        tenant_timeout: float | None = None,
        buffer_size: int | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
    ) -> Scan[T]:
        """Run ``operation`` (e.g. ``lambda t: t.current_status()``) for every tenant's client,
        ``concurrency`` at a time, and stream the results:
        ``async with session.scan(...) as results: async for r in results``.

        See :mod:`servicecomms_async.scan` for the contract. Arguments are checked here. While the
        scan runs (entered, not yet left) the pool holds at least the sum of the concurrency of every
        scan running on this session, so that no worker waits for a connection.
        """
        if self._closed:
            raise SessionClosedError("the session is closed")
        scan = Scan(
            self._client_for,
            tenant_ids,
            operation,
            concurrency=concurrency,
            tenant_timeout=tenant_timeout,
            buffer_size=buffer_size,
            on_progress=on_progress,
            reserve_connections=self._reserve_connections,
        )
        if self.dialect is GRAPH and not self.tokens.per_tenant and len(scan.tenant_ids) > 1:
            # Graph reads the tenant from the token: one token for all would answer every tenant
            # with its own tenant's data, under the other tenants' ids.
            raise ValueError(
                "a Microsoft Graph scan of several tenants needs a token per tenant (Graph finds the "
                "tenant in the token, so one token would return one tenant's data for all of them): "
                "pass credential=<tenant -> credential factory>, per_tenant_tokens=True, or "
                "token=<tenant -> token callable>"
            )
        return scan

    @contextmanager
    def _reserve_connections(self, count: int) -> Iterator[None]:
        """Hold ``count`` pool connections for a running scan (the scan enters this while it runs).

        A request waiting for a free pool connection spends its deadline waiting, so the pool must hold
        one connection per worker of every scan running at once, not only of the latest one.
        """
        self._scan_demand += count
        try:
            self._size_pool()
            yield
        finally:
            self._scan_demand -= count
            self._size_pool()

    def _size_pool(self) -> None:
        # Never below the caller's Limits.max_connections; back down to it when the scans end.
        self._transport.resize_pool(max(self._pool_base, self._scan_demand))

    def connections_in_use(self) -> int:
        """Pool connections currently checked out (0 once every stream is finished or closed)."""
        return self._transport.connections_in_use()

    @property
    def requests_sent(self) -> int:
        """HTTP attempts made so far, retries included."""
        return self._transport.requests_sent
