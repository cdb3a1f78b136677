"""Token memory is bounded: expired tokens leave the cache, factory-made credentials close when idle
or past ``max_open_credentials``. Real azure-identity credentials against the loopback identity
server; the provider's clock is moved forward instead of waiting an hour."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from azure.identity.aio import ClientSecretCredential

from servicecomms_async.auth import CredentialTokenProvider
from servicecomms_async.emulator.identity import IdentityServer, RegisteredApp

pytestmark = pytest.mark.anyio

SECRET = "app-secret-value-never-logged"
SCOPE = "https://manage.office.com/.default"
TENANTS = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(1, 21)]


class TrackedCredential(ClientSecretCredential):
    closed = False

    async def close(self) -> None:
        self.closed = True
        await super().close()


class Clock:
    """Real time, moved forward at will."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def idp() -> AsyncIterator[IdentityServer]:
    async with IdentityServer() as server:
        server.add_tenants(TENANTS)
        yield server


@pytest.fixture
def app(idp: IdentityServer) -> RegisteredApp:
    return idp.register_app(secret=SECRET)


def factory(
    idp: IdentityServer, app: RegisteredApp, made: list[TrackedCredential]
) -> Callable[[str], TrackedCredential]:
    def make(tenant: str) -> TrackedCredential:
        credential = TrackedCredential(
            tenant, app.client_id, SECRET, authority=idp.authority, connection_verify=idp.ca_path
        )
        made.append(credential)
        return credential

    return make


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - the closes run in tasks of their own
            await anyio.sleep(0.01)


async def test_expired_tokens_leave_the_cache(idp: IdentityServer, app: RegisteredApp) -> None:
    made: list[TrackedCredential] = []
    clock = Clock()
    provider = CredentialTokenProvider(factory(idp, app, made), scope=SCOPE, clock=clock)
    try:
        for tenant in TENANTS[:-1]:
            await provider.get_token(tenant)
        assert "cached=19" in repr(provider)

        clock.offset = idp.token_lifetime + 120.0  # every token has expired
        await provider.get_token(TENANTS[-1])
        assert "cached=1" in repr(provider)  # only the token that can still be used

        again = await provider.get_token(TENANTS[0])  # an expired tenant simply asks again
        assert again.reveal()
    finally:
        await provider.aclose()


async def test_factory_credentials_close_past_the_bound_and_when_idle(
    idp: IdentityServer, app: RegisteredApp
) -> None:
    made: list[TrackedCredential] = []
    clock = Clock()
    provider = CredentialTokenProvider(
        factory(idp, app, made), scope=SCOPE, clock=clock, max_open_credentials=5
    )
    try:
        tokens = {tenant: await provider.get_token(tenant) for tenant in TENANTS}
        # Never more than the bound open; the least recently used were closed.
        assert provider.open_credentials == 5
        await until(lambda: sum(c.closed for c in made) == 15)
        assert [c.closed for c in made] == [True] * 15 + [False] * 5

        # Their tokens are still served from the cache, without a credential.
        assert await provider.get_token(TENANTS[0]) == tokens[TENANTS[0]]
        assert len(made) == 20

        # Idle for longer than credential_idle_timeout: the rest close too.
        clock.offset = 301.0
        await provider.get_token(TENANTS[-1])
        await until(lambda: all(c.closed for c in made))
        assert provider.open_credentials == 0

        # A tenant whose credential was closed gets a new one when its token must be renewed.
        clock.offset = idp.token_lifetime + 120.0
        renewed = await provider.get_token(TENANTS[0])
        assert renewed != tokens[TENANTS[0]]
        assert len(made) == 21 and not made[-1].closed
    finally:
        await provider.aclose()
    assert all(c.closed for c in made)


async def test_a_credential_the_factory_shares_stays_open_while_a_tenant_uses_it(
    idp: IdentityServer, app: RegisteredApp
) -> None:
    shared = TrackedCredential(
        TENANTS[0], app.client_id, SECRET, authority=idp.authority, connection_verify=idp.ca_path
    )
    calls: list[Any] = []

    def make(tenant: str) -> TrackedCredential:
        calls.append(tenant)
        return shared

    provider = CredentialTokenProvider(make, scope=SCOPE, max_open_credentials=2)
    try:
        for tenant in TENANTS[:5]:
            await provider.get_token(tenant)
        await anyio.sleep(0.05)
        assert not shared.closed  # two tenants still hold it
        assert provider.open_credentials == 1
    finally:
        await provider.aclose()
    assert shared.closed
