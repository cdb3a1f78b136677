"""Token providers: turn azure-identity credentials (or a static token) into bearer tokens per tenant.

A :class:`TokenProvider` answers ``get_token(tenant)`` and forgets a token on ``invalidate``. The
credential provider caches one token per (tenant, scope), refreshes it shortly before it expires (at
``refresh_on`` when the credential gives one, else five minutes early minus up to a minute of jitter, so
a thousand tenants do not refresh in the same second), and lets one fetch per key be in flight however
many requests wait for it. Locks are made lazily inside the running loop.

Tokens are held in :class:`Secret` so that no repr, log line or exception shows them.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .errors import CredentialError

REFRESH_MARGIN = 300.0  # seconds before expiry at which a cached token is refreshed
REFRESH_JITTER = 60.0


class Secret:
    """A string that never shows itself in ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@runtime_checkable
class AsyncTokenCredential(Protocol):
    """What azure-core calls an ``AsyncTokenCredential``: ``await get_token(*scopes, **kwargs)``."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


CredentialFactory = Callable[[str], AsyncTokenCredential]


class TokenProvider(Protocol):
    async def get_token(self, tenant: str) -> Secret: ...

    def invalidate(self, tenant: str, token: Secret) -> None: ...

    async def aclose(self) -> None: ...


class StaticTokenProvider:
    """The same bearer token for every tenant (tests, the emulator, callers that manage tokens)."""

    def __init__(self, token: str) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token must be a non-empty string")
        self._token = Secret(token.strip())

    async def get_token(self, tenant: str) -> Secret:
        return self._token

    def invalidate(self, tenant: str, token: Secret) -> None:
        """A static token cannot be refreshed; the retry after a 401 will fail the same way."""

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=***)"


class _CachedToken:
    __slots__ = ("refresh_at", "token")

    def __init__(self, token: Secret, refresh_at: float) -> None:
        self.token = token
        self.refresh_at = refresh_at


class CredentialTokenProvider:
    """Tokens from an azure-core credential, or from a ``tenant -> credential`` factory, cached per tenant.

    ``per_tenant``: with one credential, ask it with ``get_token(scope, tenant_id=tenant)`` (a multi-tenant
    app whose credential allows those tenants); otherwise one token serves every tenant. A factory always
    gives one credential per tenant. Credentials made by a factory are closed by :meth:`aclose`; a
    credential passed in is the caller's and is not.
    """

    def __init__(
        self,
        credential: AsyncTokenCredential | CredentialFactory,
        *,
        scope: str,
        per_tenant: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(credential, AsyncTokenCredential):
            self._credential: AsyncTokenCredential | None = credential
            self._factory: CredentialFactory | None = None
        elif callable(credential):
            self._credential = None
            self._factory = credential
        else:
            raise TypeError(
                "credential must be an azure-core AsyncTokenCredential (e.g. "
                "azure.identity.aio.ClientSecretCredential) or a callable tenant_id -> credential, "
                f"got {type(credential).__name__}"
            )
        self._scope = scope
        self._per_tenant = per_tenant or self._factory is not None
        self._clock = clock
        self._cache: dict[str, _CachedToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._made: dict[str, AsyncTokenCredential] = {}
        self.fetches = 0  # tokens requested from credentials, for tests and diagnostics

    def _key(self, tenant: str) -> str:
        return tenant if self._per_tenant else "*"

    async def get_token(self, tenant: str) -> Secret:
        key = self._key(tenant)
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.token
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            cached = self._cache.get(key)  # another waiter may have fetched it meanwhile
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.token
            cached = await self._fetch(tenant)
            self._cache[key] = cached
            return cached.token

    def invalidate(self, tenant: str, token: Secret) -> None:
        key = self._key(tenant)
        cached = self._cache.get(key)
        if cached is not None and cached.token == token:
            del self._cache[key]

    async def _fetch(self, tenant: str) -> _CachedToken:
        credential = self._credential_for(tenant)
        kwargs: dict[str, Any] = {}
        if self._per_tenant and self._factory is None:
            kwargs["tenant_id"] = tenant
        self.fetches += 1
        try:
            access_token = await credential.get_token(self._scope, **kwargs)
        except Exception as exc:
            raise CredentialError(
                f"could not get a token for tenant {tenant} (scope {self._scope}): "
                f"{type(exc).__name__}: {_credential_message(exc)}",
                tenant=tenant,
            ) from None
        token = getattr(access_token, "token", None)
        expires_on = getattr(access_token, "expires_on", None)
        if not isinstance(token, str) or not token:
            raise CredentialError(
                f"the credential returned no token for tenant {tenant}", tenant=tenant
            )
        now = self._clock()
        refresh_on = getattr(access_token, "refresh_on", None)
        if isinstance(refresh_on, (int, float)) and refresh_on > now:
            refresh_at = float(refresh_on)
        elif isinstance(expires_on, (int, float)):
            margin = min(REFRESH_MARGIN + random.uniform(0, REFRESH_JITTER), (expires_on - now) / 2)
            refresh_at = expires_on - margin
        else:
            refresh_at = now + REFRESH_MARGIN
        return _CachedToken(Secret(token), refresh_at)

    def _credential_for(self, tenant: str) -> AsyncTokenCredential:
        if self._factory is None:
            assert self._credential is not None
            return self._credential
        credential = self._made.get(tenant)
        if credential is None:
            credential = self._factory(tenant)
            if not isinstance(credential, AsyncTokenCredential):
                raise TypeError(
                    f"the credential factory returned {type(credential).__name__} for tenant {tenant}, "
                    "not an AsyncTokenCredential"
                )
            self._made[tenant] = credential
        return credential

    async def aclose(self) -> None:
        made, self._made = self._made, {}
        for credential in made.values():
            close = getattr(credential, "close", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result

    def __repr__(self) -> str:
        return f"CredentialTokenProvider(scope={self._scope!r}, cached_tenants={len(self._cache)})"


def _credential_message(exc: BaseException) -> str:
    # azure-identity messages carry the AADSTS code and description but never the secret; keep the
    # first line only, since later lines can hold request details.
    message = getattr(exc, "message", None) or str(exc)
    return message.strip().splitlines()[0][:500] if message.strip() else "(no message)"
