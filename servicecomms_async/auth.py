"""Token providers: turn azure-identity credentials (or a static token) into bearer tokens per tenant.

A :class:`TokenProvider` answers ``get_token(tenant)`` and forgets a token the API refused on
``invalidate(tenant, token)``. :class:`CredentialTokenProvider` is the one built on azure-core
credentials. Its contract:

* **Cache.** One token per (tenant, scope) (per scope only, when one token serves every tenant), reused
  until its refresh time: the credential's ``refresh_on`` when it gives one, else
  ``expires_on - min(300 s + uniform(0, 60 s), lifetime / 2)``. The jitter keeps a thousand tenants
  from refreshing in the same second.
* **Single flight.** However many requests wait, one credential call per key is in flight; its waiters
  share its result, and its failure: a bad secret costs one token request, not one per waiting request.
  If the caller leading a flight is cancelled, the next waiter leads a new one.
* **Refresh without failures.** A refresh that fails while the old token is still valid keeps the old
  token and tries again within 30 s.
* **Not the same token twice.** azure-identity keeps its own cache, so asking it again after a 401, or
  before its own refresh point, can return the very token being replaced. When that happens the provider
  asks once more with a claims challenge for a token issued now (the form Entra uses for continuous
  access evaluation, ``{"access_token": {"nbf": {"essential": true, "value": NOW}}}``), which
  azure-identity and MSAL always answer from the token endpoint. Credentials that cannot do that (Azure
  CLI, some custom ones) keep their token; the request is then retried once with it and fails with the
  API's own 401, never in a loop.
* **Bounded refreshes after 401.** ``invalidate`` drops a token once; a token that itself replaced a
  refused one within the last 30 s is not dropped again, so a token the API will never accept (wrong
  tenant, missing permission) costs at most one extra token request per 30 s per key, however many
  requests are refused.
* **Errors.** A credential failure becomes one :class:`~servicecomms_async.errors.CredentialError` that
  names the tenant, the scope and the credential class and carries the credential's message (the AADSTS
  code and text), never a token or a secret.
* **Bounded memory.** Expired tokens leave the cache (swept at most every ``TOKEN_PRUNE_INTERVAL``,
  60 s, and whenever the cache has doubled), so a cache holds only tokens that can still be used.
* **Ownership.** Credentials made by a ``tenant -> credential`` factory are the provider's: each is
  closed once no token was asked of it for ``credential_idle_timeout`` seconds (300), or when more
  than ``max_open_credentials`` (256) are open, the least recently used first (never one with a token
  request in progress, never one the factory also returned for a tenant still open), and the rest by
  :meth:`CredentialTokenProvider.aclose`. A tenant whose credential was closed gets a new one from the
  factory the next time it needs a token (its cached token is kept meanwhile). A credential passed in
  is the caller's and is never closed.
* **Sync credentials.** azure-core's synchronous credentials (``azure.identity.DeviceCodeCredential`` has
  no async form) are called in a worker thread; async ones (``azure.identity.aio``) on the loop. At most
  ``max_sync_threads`` (8) such calls run at once, counting calls that were given up on and still block
  their thread, so a credential that hangs costs a bounded number of threads, not one per tenant.
* **Timeout.** A credential has ``token_timeout`` seconds (30) to answer, or less when the caller passes
  ``get_token(tenant, within=...)`` (what is left of its request's deadline); then the call fails with
  :class:`~servicecomms_async.errors.CredentialError` "the credential did not answer within N s". Waiters
  on a flight wait no longer than their own timeout either.
* **Stray cancellations.** A credential that raises ``CancelledError`` when nothing cancelled its caller
  has failed, like any other exception: a ``CredentialError``, never a silent end of the caller's work.
* **Closing.** :meth:`CredentialTokenProvider.aclose` closes the credentials it made concurrently, each
  within ``CREDENTIAL_CLOSE_TIMEOUT`` (10 s): one whose ``close()`` hangs is logged and left behind, and
  the others are still closed.

Tokens are held in :class:`Secret` so that no repr, log line or exception shows them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import inspect
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast, runtime_checkable

import anyio
import anyio.to_thread

from . import _constants
from ._validate import validate_int, validate_seconds
from .errors import AuthenticationError, CredentialError

__all__ = [
    "REFRESH_JITTER",
    "REFRESH_MARGIN",
    "AsyncTokenCredential",
    "Credential",
    "CredentialFactory",
    "CredentialTokenProvider",
    "Secret",
    "StaticTokenProvider",
    "TokenCredential",
    "TokenProvider",
]

logger = logging.getLogger("servicecomms_async.auth")

REFRESH_MARGIN = _constants.TOKEN_REFRESH_MARGIN
REFRESH_JITTER = _constants.TOKEN_REFRESH_JITTER
RETRY_REFRESH_WITHIN = _constants.TOKEN_RETRY_REFRESH_WITHIN
REFUSED_AGAIN_WINDOW = _constants.TOKEN_REFUSED_AGAIN_WINDOW
_PRUNE_MIN_SIZE = 1024  # below this many tokens, expired ones are swept only by time


class Secret:
    """A string that never shows itself in ``repr`` or ``str``; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            other._value.encode(), self._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)


@runtime_checkable
class AsyncTokenCredential(Protocol):
    """What azure-core calls an ``AsyncTokenCredential``: ``await get_token(*scopes, **kwargs)``.

    Credentials that also have azure-core's ``get_token_info(*scopes, options=...)`` are asked through
    it, since it also reports ``refresh_on``.
    """

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


@runtime_checkable
class TokenCredential(Protocol):
    """azure-core's synchronous ``TokenCredential``. Some credentials exist only in this form (e.g.
    ``azure.identity.DeviceCodeCredential``); the provider calls them in a worker thread."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


Credential = AsyncTokenCredential | TokenCredential

StaticToken = str | Callable[[str], str] | Callable[[str], Awaitable[str]]
"""A bearer token for every tenant, or ``tenant_id -> token`` (a plain or an ``async`` callable)."""

CredentialFactory = Callable[[str], Credential]
"""``tenant_id -> credential``: a new credential per customer tenant (the session closes them)."""


class TokenProvider(Protocol):
    """Bearer tokens per tenant, as the transport asks for them."""

    @property
    def per_tenant(self) -> bool:
        """Whether each tenant gets a token of its own; if not, one token serves every tenant."""
        ...

    async def get_token(self, tenant: str, *, within: float | None = None) -> Secret:
        """A token for ``tenant`` (cached, or fetched once however many callers wait), within
        ``within`` seconds (what is left of the request's deadline) when given."""
        ...

    def invalidate(self, tenant: str, token: Secret) -> None:
        """The API refused ``token`` for ``tenant`` (HTTP 401): do not hand it out again, if possible."""
        ...

    async def aclose(self) -> None:
        """Release what the provider created (never what the caller passed in)."""
        ...


class StaticTokenProvider:
    """Bearer tokens the caller manages: one ``token`` for every tenant, or a ``tenant -> token`` callable
    (tests, the emulator, callers with their own token store). A 401 is final: nothing can refresh them.
    An ``async`` callable has ``token_timeout`` seconds to answer (no limit by default).

    ``tenant_check`` (the session sets it for Microsoft Graph, which reads the tenant from the token and
    not from the URL): when a token is a JWT whose ``tid`` claim names another tenant than the tenant
    GUID it is used for, :meth:`get_token` raises :class:`~servicecomms_async.errors.AuthenticationError`
    naming both tenants, before anything is sent; otherwise Graph would answer with the token's tenant's
    data under the other tenant's id. Only the payload is read (no signature check); tokens that are not
    JWTs and tenants named by domain are not checked.
    """

    def __init__(
        self, token: StaticToken, *, tenant_check: bool = False, token_timeout: float = math.inf
    ) -> None:
        if not isinstance(tenant_check, bool):
            raise TypeError(
                f"tenant_check must be True or False, got {type(tenant_check).__name__}"
            )
        self._tenant_check = tenant_check
        timeout = validate_seconds(token_timeout, "token_timeout")
        assert timeout is not None
        self.token_timeout = timeout  # for an async token callable
        if callable(token):
            self._per_tenant: Callable[[str], str | Awaitable[str]] | None = token
            self._token: Secret | None = None
        else:
            self._per_tenant = None
            self._token = Secret(_checked_token(token))

    @property
    def per_tenant(self) -> bool:
        """A ``tenant -> token`` callable gives each tenant its own token; a string serves all."""
        return self._per_tenant is not None

    async def get_token(self, tenant: str, *, within: float | None = None) -> Secret:
        if self._token is not None:
            secret = self._token
        else:
            assert self._per_tenant is not None
            token = self._per_tenant(tenant)
            if inspect.isawaitable(token):  # an async callable: ``async def token(tenant) -> str``
                limit = self.token_timeout if within is None else min(self.token_timeout, within)
                token = await _awaited_within(token, limit, tenant)
            source = f"the token callable for tenant {tenant}"
            secret = Secret(_checked_token(token, source=source))
        if self._tenant_check:
            _check_token_tenant(secret, tenant)
        return secret

    def invalidate(self, tenant: str, token: Secret) -> None:
        """A static token cannot be refreshed; the retry after a 401 will fail the same way."""

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=***)"


# Printable ASCII without spaces: what real tokens are made of (a JWT, an opaque token). A token of
# only these passes every check below, so it is accepted without walking it character by character
# (a token callable's answer is checked on every request).
_PLAIN_TOKEN = re.compile(r"[!-~]+")


def _checked_token(token: object, *, source: str = "token") -> str:
    if not isinstance(token, str):
        raise TypeError(f"{source} must give a str (the access token), got {type(token).__name__}")
    if _PLAIN_TOKEN.fullmatch(token) is not None:
        return token
    # Checked before stripping: a token read from a file with its newline, or one carrying a header
    # after CR LF, is refused rather than silently cut or sent into the Authorization header.
    if "\r" in token or "\n" in token:
        raise ValueError(
            f"{source} must give a token without a line break (CR or LF); strip the value you read "
            "(e.g. open(path).read().strip())"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in token):
        raise ValueError(f"{source} must give a token without control characters")
    if not token.strip():
        raise ValueError(f"{source} must give a non-empty string")
    token = token.strip()
    if token[:7].lower() == "bearer ":
        raise ValueError(
            f"{source} must give the access token itself, without the 'Bearer ' prefix"
        )
    if any(c.isspace() for c in token):
        raise ValueError(f"{source} must give a token without whitespace")
    return token


class _CachedToken:
    __slots__ = ("after_refusal", "expires_on", "fetched_at", "refresh_at", "token")

    def __init__(
        self,
        token: Secret,
        *,
        expires_on: float | None,
        refresh_at: float,
        fetched_at: float,
        after_refusal: bool,
    ) -> None:
        self.token = token
        self.expires_on = expires_on
        self.refresh_at = refresh_at
        self.fetched_at = fetched_at
        self.after_refusal = after_refusal  # fetched because the API refused the previous token

    def valid_at(self, now: float) -> bool:
        return self.expires_on is None or now < self.expires_on


class _Issued:
    """What a credential answered, without ever showing the token."""

    __slots__ = ("expires_on", "refresh_on", "token")

    def __init__(self, token: str, expires_on: float | None, refresh_on: float | None) -> None:
        self.token = token
        self.expires_on = expires_on
        self.refresh_on = refresh_on

    def __repr__(self) -> str:
        return f"_Issued(token=***, expires_on={self.expires_on}, refresh_on={self.refresh_on})"


class _Flight:
    """One credential call in progress; waiters read its outcome when ``done`` is set."""

    __slots__ = ("done", "failure", "token")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.token: Secret | None = None
        self.failure: str | None = None  # the credential's message, for each waiter's own error


Key = tuple[str, str]  # (tenant, or "*" when one token serves every tenant; scope)


class CredentialTokenProvider:
    """Tokens from an azure-core credential, or from a ``tenant -> credential`` factory, cached per
    (tenant, scope). See the module docstring for the caching, refresh and error contract.

    ``per_tenant``: with one credential, ask it for each tenant with ``get_token(scope, tenant_id=tenant)``
    (a multi-tenant app whose credential allows those tenants, e.g. ``additionally_allowed_tenants=["*"]``);
    otherwise one token serves every tenant (a tenant admin's own credential). A factory always gives one
    credential, and so one token, per tenant.

    ``token_timeout``: seconds a credential may take to answer (``math.inf`` for no limit, e.g. for a
    device code a person must enter); ``max_sync_threads``: synchronous credential calls running at once.
    """

    def __init__(
        self,
        credential: Credential | CredentialFactory,
        *,
        scope: str,
        per_tenant: bool = False,
        token_timeout: float = _constants.TOKEN_TIMEOUT,
        max_sync_threads: int = _constants.TOKEN_SYNC_THREADS,
        max_open_credentials: int = _constants.CREDENTIAL_MAX_OPEN,
        credential_idle_timeout: float = _constants.CREDENTIAL_IDLE_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if _is_credential(credential):
            self._credential: Credential | None = cast(Credential, credential)
            self._factory: CredentialFactory | None = None
        elif callable(credential) and not isinstance(credential, type):
            self._credential = None
            self._factory = credential
        else:
            raise TypeError(_not_a_credential(credential, "credential"))
        if not isinstance(scope, str) or not scope:
            raise ValueError(
                "scope must be a non-empty string such as https://manage.office.com/.default"
            )
        if not isinstance(per_tenant, bool):
            raise TypeError(f"per_tenant must be a bool, got {type(per_tenant).__name__}")
        timeout = validate_seconds(token_timeout, "token_timeout")
        assert timeout is not None
        self.token_timeout = timeout
        self._max_sync_threads = validate_int(max_sync_threads, "max_sync_threads")
        self._sync_running = 0  # sync credential calls whose thread has not returned, hung ones too
        self._sync_lock = threading.Lock()
        self._scope = scope
        self._per_tenant = per_tenant or self._factory is not None
        self._clock = clock
        self._max_open = validate_int(max_open_credentials, "max_open_credentials")
        idle = validate_seconds(credential_idle_timeout, "credential_idle_timeout")
        assert idle is not None
        self._idle_timeout = idle
        self._cache: dict[Key, _CachedToken] = {}
        self._flights: dict[Key, _Flight] = {}
        self._refused: dict[Key, Secret] = {}
        # Factory-made credentials, least recently used first, with when each was last asked and
        # how many tenants share each object (a factory may hand one credential to several).
        self._made: OrderedDict[str, Credential] = OrderedDict()
        self._used_at: dict[str, float] = {}
        self._sharing: dict[int, int] = {}
        self._closing: set[asyncio.Task[None]] = set()  # closes in progress, awaited by aclose()
        self._prune_at = clock() + _constants.TOKEN_PRUNE_INTERVAL
        self._prune_size = _PRUNE_MIN_SIZE
        self.fetches = 0  # calls made to credentials (their own cache may answer), for diagnostics

    @property
    def scope(self) -> str:
        return self._scope

    @property
    def per_tenant(self) -> bool:
        """Whether each tenant gets a token of its own (a factory, or ``per_tenant=True``)."""
        return self._per_tenant

    def _key(self, tenant: str, scope: str | None) -> Key:
        return (tenant if self._per_tenant else "*", scope or self._scope)

    async def get_token(
        self, tenant: str, *, scope: str | None = None, within: float | None = None
    ) -> Secret:
        """A token for ``tenant`` and ``scope`` (the provider's scope by default), within
        ``token_timeout`` seconds, or ``within`` seconds when that is shorter (what is left of a deadline)."""
        key = self._key(tenant, scope)
        limit = self.token_timeout if within is None else min(self.token_timeout, within)
        own_limit = limit >= self.token_timeout  # not cut short by this caller's deadline
        deadline = anyio.current_time() + max(limit, 0.0)
        while True:
            cached = self._cache.get(key)
            now = self._clock()
            if now >= self._prune_at:
                self._prune(now)
            if cached is not None and now < cached.refresh_at:
                return cached.token
            flight = self._flights.get(key)
            if flight is not None:
                with anyio.move_on_after(deadline - anyio.current_time()):
                    await flight.done.wait()
                if not flight.done.is_set():
                    raise CredentialError(
                        self._failure_message(tenant, key[1], _no_answer(limit)), tenant=tenant
                    )
                if flight.failure is not None:
                    raise CredentialError(
                        self._failure_message(tenant, key[1], flight.failure), tenant=tenant
                    )
                if flight.token is not None:
                    return flight.token
                continue  # the caller leading that flight was cancelled: lead a new one
            flight = self._flights[key] = _Flight()
            try:
                with anyio.move_on_after(deadline - anyio.current_time()) as timer:
                    entry = await self._fetch(tenant, key, cached)
                if timer.cancelled_caught:
                    if own_limit:  # the credential's own time is up: its waiters fail with it
                        flight.failure = _no_answer(limit)
                    # else only this caller ran out of time: the next waiter leads a new flight
                    raise CredentialError(
                        self._failure_message(tenant, key[1], _no_answer(limit)), tenant=tenant
                    )
                self._cache[key] = entry
                if len(self._cache) >= self._prune_size:
                    self._prune(self._clock())
                self._refused.pop(key, None)  # kept until now in case this flight failed
                flight.token = entry.token
                return entry.token
            except _CredentialFailed as failed:
                flight.failure = failed.detail
                raise CredentialError(
                    self._failure_message(tenant, key[1], failed.detail), tenant=tenant
                ) from None
            finally:
                del self._flights[key]
                flight.done.set()
                if self._factory is not None:
                    self._retire_credentials()

    def invalidate(self, tenant: str, token: Secret, *, scope: str | None = None) -> None:
        key = self._key(tenant, scope)
        cached = self._cache.get(key)
        if cached is None or cached.token != token:
            return  # already replaced, or being replaced by a flight in progress
        if cached.after_refusal and self._clock() - cached.fetched_at < REFUSED_AGAIN_WINDOW:
            logger.debug(
                "token for tenant %s refused again within %.0fs of replacing a refused one; "
                "not fetching another yet",
                tenant,
                REFUSED_AGAIN_WINDOW,
            )
            return
        del self._cache[key]
        self._refused[key] = token

    async def _fetch(self, tenant: str, key: Key, previous: _CachedToken | None) -> _CachedToken:
        credential = self._credential_for(tenant)
        try:
            return await self._fetch_from(credential, tenant, key, previous)
        except anyio.get_cancelled_exc_class() as exc:
            if cancellation_is_ours():
                raise
            # The credential raised CancelledError though nothing cancelled this task (e.g. it
            # cancelled a task of its own and let that escape): a failure like any other.
            raise _CredentialFailed(_describe_failure(credential, exc)) from None

    async def _fetch_from(
        self, credential: Credential, tenant: str, key: Key, previous: _CachedToken | None
    ) -> _CachedToken:
        scope = key[1]
        now = self._clock()
        refused = self._refused.get(key)
        still_valid = previous if previous is not None and previous.valid_at(now) else None
        replacing = refused or (still_valid.token if still_valid is not None else None)
        try:
            issued = await self._ask(credential, tenant, scope, claims=None)
        except Exception as exc:
            if still_valid is not None and refused is None:
                return self._keep(still_valid, now, tenant, exc)
            raise _CredentialFailed(_describe_failure(credential, exc)) from None
        if replacing is not None and _same(issued.token, replacing):
            # The credential answered from its own cache with the token being replaced.
            logger.debug(
                "the credential returned the token being replaced for tenant %s; asking for one "
                "issued now",
                tenant,
            )
            try:
                forced: _Issued | None = await self._ask(
                    credential, tenant, scope, claims=_claims_issued_after(now)
                )
            except Exception as exc:
                logger.debug(
                    "the credential could not issue a new token for tenant %s: %s",
                    tenant,
                    _describe_failure(credential, exc),
                )
                forced = None
            if forced is not None and not _same(forced.token, replacing):
                issued = forced
            elif still_valid is not None and refused is None:
                return self._keep(still_valid, now, tenant, None)
            # Else the API refused a token the credential cannot replace: the transport's one retry
            # with it will fail with the API's own 401, and invalidate() will not drop it again soon.
        entry = self._entry(issued, self._clock(), after_refusal=refused is not None)
        logger.debug(
            "token for tenant %s (scope %s) fetched; refresh in %.0fs",
            tenant,
            scope,
            entry.refresh_at - entry.fetched_at,
        )
        return entry

    async def _ask(
        self, credential: Credential, tenant: str, scope: str, *, claims: str | None
    ) -> _Issued:
        options: dict[str, Any] = {}
        if self._per_tenant and self._factory is None:
            options["tenant_id"] = tenant
        if claims is not None:
            options["claims"] = claims
        self.fetches += 1
        get_token_info = getattr(credential, "get_token_info", None)
        if callable(get_token_info):
            call = functools.partial(get_token_info, scope, options=options)
        else:
            call = functools.partial(credential.get_token, scope, **options)
        if inspect.iscoroutinefunction(call.func):
            answer = await call()
        else:
            answer = await self._in_thread(call)
            if inspect.isawaitable(answer):
                answer = await answer
        token = getattr(answer, "token", None)
        if not isinstance(token, str) or not token:
            raise ValueError(f"the credential returned {type(answer).__name__} without a token")
        return _Issued(token, _number(answer, "expires_on"), _number(answer, "refresh_on"))

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        """Run a synchronous credential call in a worker thread.

        A synchronous credential blocks on HTTP (or on a person, for a device code), so a cancelled or
        timed-out caller goes without waiting for it (``abandon_on_cancel``); anyio then frees its
        thread-limiter slot although the thread still runs. The provider's own count lasts until the
        thread returns, so hung calls cannot pile up one thread per tenant.
        """
        while True:
            with self._sync_lock:
                if self._sync_running < self._max_sync_threads:
                    self._sync_running += 1
                    break
            # Every thread is busy (maybe hung): wait for one to return, within the caller's timeout.
            await anyio.sleep(0.05)

        def counted() -> Any:
            try:
                return call()
            finally:
                with self._sync_lock:
                    self._sync_running -= 1

        return await anyio.to_thread.run_sync(counted, abandon_on_cancel=True)

    def _entry(self, issued: _Issued, now: float, *, after_refusal: bool) -> _CachedToken:
        expires_on, refresh_on = issued.expires_on, issued.refresh_on
        if expires_on is None:
            refresh_at = now + REFRESH_MARGIN
        elif refresh_on is not None and now < refresh_on < expires_on:
            refresh_at = refresh_on
        else:
            margin = min(REFRESH_MARGIN + random.uniform(0, REFRESH_JITTER), (expires_on - now) / 2)
            refresh_at = expires_on - margin
        return _CachedToken(
            Secret(issued.token),
            expires_on=expires_on,
            refresh_at=refresh_at,
            fetched_at=now,
            after_refusal=after_refusal,
        )

    def _keep(
        self, entry: _CachedToken, now: float, tenant: str, failure: Exception | None
    ) -> _CachedToken:
        """Keep a still-valid token whose refresh did not give a new one; try again soon."""
        remaining = entry.expires_on - now if entry.expires_on is not None else REFRESH_MARGIN
        retry_in = min(RETRY_REFRESH_WITHIN, max(remaining / 2, 0.1))
        if failure is not None:
            logger.debug(
                "refreshing the token for tenant %s failed (%s); keeping the current one, "
                "%.0fs left, next try in %.1fs",
                tenant,
                _first_line(failure),
                remaining,
                retry_in,
            )
        return _CachedToken(
            entry.token,
            expires_on=entry.expires_on,
            refresh_at=now + retry_in,
            fetched_at=entry.fetched_at,
            after_refusal=entry.after_refusal,
        )

    def _prune(self, now: float) -> None:
        """Drop the tokens that have expired (not one a flight is replacing right now)."""
        cache = self._cache
        expired = [
            key
            for key, entry in cache.items()
            if entry.expires_on is not None and entry.expires_on <= now and key not in self._flights
        ]
        for key in expired:
            del cache[key]
        if len(expired) > len(cache):  # a dict keeps its table when emptied: give it back
            self._cache = cache = dict(cache)
        self._prune_at = now + _constants.TOKEN_PRUNE_INTERVAL
        self._prune_size = max(_PRUNE_MIN_SIZE, 2 * len(cache))
        if self._made:
            self._retire_credentials()  # idle ones close even when no token is fetched

    def _retire_credentials(self) -> None:
        """Close the factory-made credentials idle too long, and the least recently used ones past
        ``max_open_credentials``; none with a token request in progress."""
        made, used_at = self._made, self._used_at
        now = self._clock()
        busy = {key[0] for key in self._flights}
        victims: list[str] = []
        for tenant in made:  # least recently used first: stop at the first one to keep
            if len(made) - len(victims) <= self._max_open and (
                now - used_at[tenant] < self._idle_timeout
            ):
                break
            if tenant not in busy:
                victims.append(tenant)
        for tenant in victims:
            credential = made.pop(tenant)
            del used_at[tenant]
            shared = self._sharing[id(credential)] - 1
            if shared:
                self._sharing[id(credential)] = shared
                continue  # another tenant still uses this very object
            del self._sharing[id(credential)]
            task = asyncio.get_running_loop().create_task(_close_credential(tenant, credential))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @property
    def open_credentials(self) -> int:
        """Factory-made credentials open now (they close when idle, past a bound, or on aclose)."""
        return len(self._sharing)

    def _credential_for(self, tenant: str) -> Credential:
        if self._factory is None:
            assert self._credential is not None
            return self._credential
        credential = self._made.get(tenant)
        if credential is not None:
            self._made.move_to_end(tenant)
            self._used_at[tenant] = self._clock()
        else:
            try:
                made = self._factory(tenant)
            except Exception as exc:
                raise _CredentialFailed(
                    f"the credential factory failed: {type(exc).__name__}: {_first_line(exc)}"
                ) from None
            if not _is_credential(made):
                name = made.__name__ if isinstance(made, type) else type(made).__name__
                what = "the class " if isinstance(made, type) else ""
                raise _CredentialFailed(
                    f"the credential factory returned {what}{name}, not a credential: it must "
                    "return an azure-core token credential instance (with get_token), e.g. "
                    "azure.identity.aio.ClientSecretCredential(tenant_id, ...)"
                )
            credential = self._made[tenant] = made
            self._used_at[tenant] = self._clock()
            self._sharing[id(made)] = self._sharing.get(id(made), 0) + 1
        return credential

    def _failure_message(self, tenant: str, scope: str, detail: str) -> str:
        return f"could not get a token for tenant {tenant} (scope {scope}): {detail}"

    async def aclose(self) -> None:
        """Close the credentials a factory made (each once); the caller's own credential stays open."""
        made, self._made = self._made, OrderedDict()
        self._used_at.clear()
        self._sharing.clear()
        self._cache.clear()
        self._refused.clear()
        unique: dict[int, tuple[str, Credential]] = {}
        for tenant, credential in made.items():
            unique.setdefault(id(credential), (tenant, credential))
        # Concurrently, each within a timeout: one close() that hangs must neither hang the session's
        # aclose() nor keep the credentials after it open.
        async with anyio.create_task_group() as task_group:
            for tenant, credential in unique.values():
                task_group.start_soon(_close_credential, tenant, credential)
        closing = list(self._closing)
        if closing:  # the idle ones retired meanwhile (each within its own timeout)
            await asyncio.gather(*closing, return_exceptions=True)

    def __repr__(self) -> str:
        source = (
            f"factory={getattr(self._factory, '__qualname__', type(self._factory).__name__)}"
            if self._factory is not None
            else f"credential={type(self._credential).__name__}"
        )
        return (
            f"CredentialTokenProvider({source}, scope={self._scope!r}, "
            f"per_tenant={self._per_tenant}, cached={len(self._cache)})"
        )


async def _close_credential(tenant: str, credential: Credential) -> None:
    close = getattr(credential, "close", None)
    if close is None:
        return
    timeout = _constants.CREDENTIAL_CLOSE_TIMEOUT
    try:
        with anyio.move_on_after(timeout) as timer:
            if inspect.iscoroutinefunction(close):
                await close()
            else:
                # A sync credential's close() can block (it closes its HTTP transport).
                result = await anyio.to_thread.run_sync(close, abandon_on_cancel=True)
                if inspect.isawaitable(result):
                    await result
    except Exception as exc:
        logger.warning(
            "closing the credential made for tenant %s failed: %s: %s",
            tenant,
            type(exc).__name__,
            _first_line(exc),
        )
        return
    if timer.cancelled_caught:
        logger.warning(
            "closing the credential made for tenant %s did not finish within %gs; left open",
            tenant,
            timeout,
        )


def cancellation_is_ours() -> bool:
    """Whether the ``CancelledError`` just caught comes from a cancellation of this task: a cancelled
    anyio cancel scope around it, or (asyncio) ``task.cancel()``. ``False`` means some code raised it
    on its own, which is a failure to report, not a cancellation to obey."""
    if anyio.current_effective_deadline() <= anyio.current_time():
        return True
    try:
        import asyncio

        task = asyncio.current_task()
    except RuntimeError:  # not running on asyncio: only cancel scopes cancel
        return False
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    if cancelling is None:
        # Python 3.10 cannot tell a task.cancel() (asyncio.wait_for) from a stray CancelledError:
        # obey it, since swallowing a real cancellation is worse than reporting a stray one late.
        return True
    return bool(cancelling())


async def _awaited_within(awaitable: Awaitable[str], within: float | None, tenant: str) -> str:
    """An async token callable's answer, within the caller's ``within`` seconds (what is left of its deadline)."""
    if within is None or not math.isfinite(within):
        return await awaitable
    with anyio.move_on_after(max(within, 0.0)):
        return await awaitable
    raise CredentialError(
        f"could not get a token for tenant {tenant}: the token callable did not answer within "
        f"{within:.3g} s",
        tenant=tenant,
    )


def _no_answer(limit: float) -> str:
    return f"the credential did not answer within {limit:.3g} s"


def _jwt_tenant(token: str) -> str | None:
    """The ``tid`` claim of a JWT (payload read, signature not checked), or ``None``."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].startswith("eyJ"):
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    tid = claims.get("tid") if isinstance(claims, dict) else None
    if not isinstance(tid, str):
        return None
    try:
        return str(uuid.UUID(tid))
    except ValueError:
        return None


def _check_token_tenant(token: Secret, tenant: str) -> None:
    """Refuse a JWT issued for another tenant than the tenant GUID it is about to be used for."""
    try:
        wanted = str(uuid.UUID(tenant))
    except ValueError:
        return  # a domain: which tenant it names is the directory's to say
    issued_for = _jwt_tenant(token.reveal())
    if issued_for is not None and issued_for != wanted:
        raise AuthenticationError(
            f"the token for tenant {wanted} was issued for tenant {issued_for} (its tid claim): "
            "Microsoft Graph would answer with that tenant's data; pass that tenant's own token "
            "(or a tenant -> token callable)"
        )


def _is_credential(obj: object) -> bool:
    if isinstance(obj, type):
        return False
    return callable(getattr(obj, "get_token", None)) or callable(
        getattr(obj, "get_token_info", None)
    )


def _not_a_credential(obj: object, what: str) -> str:
    name = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    hint = (
        "pass an instance, not the class"
        if isinstance(obj, type)
        else "expected e.g. azure.identity.aio.ClientSecretCredential"
    )
    return (
        f"{what} must be an azure-core token credential (with get_token) or a callable "
        f"tenant_id -> credential, got {name}: {hint}"
    )


def _same(token: str, secret: Secret) -> bool:
    return hmac.compare_digest(token.encode(), secret.reveal().encode())


def _number(answer: object, name: str) -> float | None:
    value = getattr(answer, name, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _claims_issued_after(now: float) -> str:
    return json.dumps(
        {"access_token": {"nbf": {"essential": True, "value": str(int(now))}}},
        separators=(",", ":"),
    )


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_FORM_SECRET = re.compile(
    r"(?i)\b(client_secret|client_assertion|access_token|refresh_token|assertion|password)"
    r"(\s*[=:]\s*)[^&\s,;'\"]+"
)


def _scrub(text: str) -> str:
    """Belt and braces: credential messages carry no secrets, but never let one through."""
    return _FORM_SECRET.sub(r"\1\2***", _JWT.sub("***", text))


# A chained credential (DefaultAzureCredential) lists each credential's reason on a line of its own.
_CHAINED_REASON = re.compile(r"^\s*\w+Credential: ")
_MAX_CHAINED_REASONS = 12


def _first_line(exc: BaseException, limit: int = 500) -> str:
    """The credential's reason: its first line, which carries the AADSTS code and description (later
    lines hold trace ids and timestamps), plus, for a chained credential, each credential's own line."""
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) and message.strip() else str(exc)
    text = text.strip()
    if not text:
        return "(no message)"
    lines = text.splitlines()
    reasons = [
        line.strip()[:limit]
        for line in lines[1 : 1 + _MAX_CHAINED_REASONS]
        if _CHAINED_REASON.match(line)
    ]
    return _scrub("\n".join([lines[0][:limit], *reasons]))


def _describe_failure(credential: object, exc: BaseException) -> str:
    return f"{type(credential).__name__} failed: {type(exc).__name__}: {_first_line(exc)}"


class _CredentialFailed(Exception):
    """Internal: a flight's failure, turned into one CredentialError per waiting tenant."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
