"""Authentication end to end with the real azure-identity library.

azure.identity.aio credentials -> the local Entra stand-in (HTTPS on loopback, a throwaway CA) -> the
client -> the emulator, whose token validator checks every bearer token. Counts are the identity
server's: token requests it received, tokens it issued, API requests it refused and why.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from azure.identity import ClientSecretCredential as SyncClientSecretCredential
from azure.identity.aio import CertificateCredential, ClientSecretCredential

from servicecomms_async import (
    Cloud,
    CredentialError,
    ServiceCommsSession,
    UnauthorizedError,
)
from servicecomms_async.auth import CredentialTokenProvider, StaticTokenProvider
from servicecomms_async.clouds import CHINA, CLOUDS, DOD, GCC, GCC_HIGH, PUBLIC
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.identity import (
    IdentityServer,
    RegisteredApp,
    generate_client_certificate,
)

pytestmark = pytest.mark.anyio

SECRET = "app-secret-value-never-logged"
WRONG_SECRET = "wrong-secret-value-never-logged"
MANAGE_SCOPE = "https://manage.office.com/.default"


@pytest.fixture
async def idp() -> AsyncIterator[IdentityServer]:
    async with IdentityServer() as server:
        yield server


@pytest.fixture
async def emu(idp: IdentityServer) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(seed=11, tenants=50, messages_per_tenant=250)
    async with Emulator(config, token_validator=idp.token_validator) as emulator:
        idp.add_tenants(emulator.tenant_ids)
        yield emulator


@pytest.fixture
def app(idp: IdentityServer) -> RegisteredApp:
    return idp.register_app(secret=SECRET)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    return caplog


def credential(
    idp: IdentityServer, tenant: str, app: RegisteredApp, secret: str = SECRET, **kwargs: Any
) -> ClientSecretCredential:
    return ClientSecretCredential(
        tenant,
        app.client_id,
        secret,
        authority=idp.authority,
        connection_verify=idp.ca_path,
        **kwargs,
    )


class TrackedCredential(ClientSecretCredential):
    """The real credential, remembering whether someone closed it."""

    closed = False

    async def close(self) -> None:
        self.closed = True
        await super().close()


def api_calls(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests if "/ServiceComms/" in r.path]


def bearer_tokens(emu: Emulator) -> set[str]:
    return {r.headers["Authorization"].removeprefix("Bearer ") for r in emu.requests}


def everything_shown(logs: pytest.LogCaptureFixture, *errors: BaseException) -> str:
    """Every log line (with tracebacks) and every error as a user could print it."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    shown = [formatter.format(record) for record in logs.records]
    for error in errors:
        shown += [str(error), repr(error), "".join(traceback.format_exception(error))]
    return "\n".join(shown)


# -- the happy paths --


async def test_partner_factory_reads_several_tenants_with_one_token_each(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    tenants = emu.tenant_ids[:3]
    made: list[TrackedCredential] = []

    def per_tenant(tenant: str) -> TrackedCredential:
        made.append(
            TrackedCredential(
                tenant,
                app.client_id,
                SECRET,
                authority=idp.authority,
                connection_verify=idp.ca_path,
            )
        )
        return made[-1]

    async with ServiceCommsSession(per_tenant, base_url=emu.base_url) as session:
        for tenant in tenants:
            client = session.tenant(tenant)
            services = await client.services().collect()
            status = await client.current_status().collect()
            messages = await client.messages().collect()
            wire = emu.dataset(tenant)
            assert [s.id for s in services] == [w["Id"] for w in wire.services]
            assert [s.id for s in status] == [w["Id"] for w in wire.current_status]
            assert [m.id for m in messages] == [w["Id"] for w in wire.messages]
        assert session.connections_in_use() == 0

    assert idp.token_requests == {tenant: 1 for tenant in tenants}
    assert idp.rejections == {}
    # Each request carried the token of its own tenant.
    for request in emu.requests:
        claims = idp.decode(request.headers["Authorization"].removeprefix("Bearer "))
        assert request.path.split("/")[3] == claims["tid"]
    # The session closed the credentials its factory made.
    assert [c.closed for c in made] == [True, True, True]


async def test_tenant_admin_credential_works_with_a_domain_in_the_url(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    tenant = emu.tenant_ids[0]
    idp.add_tenant(tenant, domains=["contoso.onmicrosoft.com"])
    async with credential(idp, tenant, app) as cred:
        async with ServiceCommsSession(cred, base_url=emu.base_url) as session:
            status = await session.tenant("contoso.onmicrosoft.com").current_status().collect()
        assert [s.id for s in status] == [
            w["Id"] for w in emu.dataset("contoso.onmicrosoft.com").current_status
        ]
        # The session left the caller's credential open: it still gets tokens.
        assert (await cred.get_token(MANAGE_SCOPE)).token
    assert api_calls(emu) == ["/api/v1.0/contoso.onmicrosoft.com/ServiceComms/CurrentStatus"]
    assert idp.token_requests == {tenant: 1}
    assert idp.accepted == 1


async def test_certificate_credential_authenticates(idp: IdentityServer, emu: Emulator) -> None:
    pem = generate_client_certificate()
    cert_app = idp.register_app(certificate=pem)
    tenant = emu.tenant_ids[1]
    async with (
        CertificateCredential(
            tenant,
            cert_app.client_id,
            certificate_data=pem,
            authority=idp.authority,
            connection_verify=idp.ca_path,
        ) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):
        services = await session.tenant(tenant).services().collect()
    assert [s.id for s in services] == [w["Id"] for w in emu.dataset(tenant).services]
    assert idp.token_requests == {tenant: 1}
    (token,) = bearer_tokens(emu)
    assert idp.decode(token)["appidacr"] == "2"  # authenticated with the certificate


async def test_custom_cloud_points_everything_somewhere_else(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    local = Cloud(
        name="local",
        base_url=emu.base_url,
        token_scope=MANAGE_SCOPE,
        authority=idp.authority,
    )
    tenant = emu.tenant_ids[2]
    async with (
        ClientSecretCredential(
            tenant, app.client_id, SECRET, authority=local.authority, connection_verify=idp.ca_path
        ) as cred,
        ServiceCommsSession(cred, cloud=local) as session,
    ):
        assert str(session.base_url) == emu.base_url
        assert len(await session.tenant(tenant).current_status().collect()) > 0
    assert idp.token_requests == {tenant: 1}


# -- one token request per key, however many requests --


async def test_200_concurrent_requests_for_one_tenant_make_one_token_request(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    tenant = emu.tenant_ids[0]
    results: list[int] = []
    async with (
        credential(idp, tenant, app) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):
        client = session.tenant(tenant)

        async def one() -> None:
            results.append(len(await client.current_status().collect()))

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(one)
        assert session.requests_sent == 200
    assert len(results) == 200
    assert all(n > 0 for n in results)
    assert idp.token_requests == {tenant: 1}
    assert idp.accepted == 200


@pytest.mark.parametrize("mode", ["factory", "one credential, any tenant"])
async def test_50_tenants_make_exactly_50_token_requests(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp, mode: str
) -> None:
    tenants = emu.tenant_ids
    assert len(tenants) == 50
    home = tenants[0]

    async def scan(session: ServiceCommsSession) -> None:
        async def one(tenant: str) -> None:
            await session.tenant(tenant).current_status().collect()

        async with anyio.create_task_group() as tg:
            for _ in range(3):  # three concurrent requests per tenant
                for tenant in tenants:
                    tg.start_soon(one, tenant)

    if mode == "factory":
        async with ServiceCommsSession(
            lambda t: credential(idp, t, app), base_url=emu.base_url
        ) as session:
            await scan(session)
    else:
        async with (
            credential(idp, home, app, additionally_allowed_tenants=["*"]) as cred,
            ServiceCommsSession(cred, base_url=emu.base_url, per_tenant_tokens=True) as session,
        ):
            await scan(session)

    assert sum(idp.token_requests.values()) == 50
    assert idp.token_requests == {tenant: 1 for tenant in tenants}
    assert idp.accepted == 150
    assert idp.rejections == {}


# -- refresh --


async def test_short_lived_tokens_are_refreshed_before_any_request_fails(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    idp.token_lifetime = 2  # seconds: the client sees expiry within the test
    tenant = emu.tenant_ids[0]
    calls = 0
    async with (
        credential(idp, tenant, app) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):
        client = session.tenant(tenant)
        # A long-running poll: keep reading until three tokens have been used (bounded).
        with anyio.fail_after(20):
            while idp.tokens_issued(tenant) < 3:
                await client.current_status().collect()
                calls += 1
                await anyio.sleep(0.05)
        await client.current_status().collect()
        calls += 1
        sent = session.requests_sent
    assert idp.rejections == {}  # no request ever reached the API with an expired token
    assert sent == calls  # and none had to be retried
    assert idp.accepted == calls
    assert len(bearer_tokens(emu)) == idp.tokens_issued(tenant) >= 3


async def test_token_revoked_mid_stream_costs_one_refresh_and_one_retry(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    tenant = emu.tenant_ids[0]
    ids: list[str] = []
    async with (
        credential(idp, tenant, app) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):
        async for message in session.tenant(tenant).messages():
            ids.append(message.id)
            if len(ids) == 1:
                # An admin revokes the app's sessions while the stream is on its first page.
                assert idp.revoke(tenant=tenant) == 1
        sent = session.requests_sent
    assert ids == [w["Id"] for w in emu.dataset(tenant).messages]  # 250 messages, none lost
    assert idp.token_requests == {tenant: 2}  # exactly one refresh
    assert idp.rejections == {"revoked": 1}
    assert sent == 3 + 1  # three pages and one retry
    # azure-identity's own cache answered with the revoked token; the claims challenge got a new one.
    assert len(idp.claims_requests) == 1


async def test_a_credential_that_cannot_refresh_fails_once_without_looping(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    tenant = emu.tenant_ids[0]

    class StuckCredential:
        """Hands out the first token it got, whatever it is asked (claims included)."""

        def __init__(self, inner: ClientSecretCredential) -> None:
            self.inner = inner
            self.token: Any = None
            self.calls = 0

        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            self.calls += 1
            if self.token is None:
                self.token = await self.inner.get_token(*scopes)
            return self.token

    async with credential(idp, tenant, app) as inner:
        stuck = StuckCredential(inner)
        async with ServiceCommsSession(stuck, base_url=emu.base_url) as session:
            await session.tenant(tenant).services().collect()
            idp.revoke(tenant=tenant)
            with pytest.raises(UnauthorizedError) as caught:
                await session.tenant(tenant).services().collect()
            sent = session.requests_sent
    assert caught.value.tenant == tenant
    assert caught.value.code == "InvalidAuthenticationToken"
    assert sent == 1 + 2  # the first call, then one request and one retry
    assert stuck.calls == 3  # first token; after the 401: asked again, then asked for a new one
    assert idp.token_requests == {tenant: 1}


# -- failures: typed, bounded, and never showing a secret --


async def test_wrong_secret_is_one_credential_error_and_one_token_request(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp, debug_logs: pytest.LogCaptureFixture
) -> None:
    tenant = emu.tenant_ids[0]
    errors: list[BaseException] = []
    async with (
        credential(idp, tenant, app, secret=WRONG_SECRET) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):
        client = session.tenant(tenant)

        async def one() -> None:
            try:
                await client.current_status().collect()
            except CredentialError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        sent = session.requests_sent
    assert len(errors) == 20
    assert idp.token_requests == {tenant: 1}  # the 20 waiters shared one failed attempt
    assert sent == 0
    assert api_calls(emu) == []
    error = errors[0]
    assert isinstance(error, CredentialError)
    assert error.tenant == tenant
    assert "AADSTS7000215" in str(error)
    assert tenant in str(error)
    assert "ClientSecretCredential" in str(error)
    shown = everything_shown(debug_logs, *errors)
    assert "AADSTS7000215" in shown  # the logs were captured...
    assert WRONG_SECRET not in shown
    assert SECRET not in shown


async def test_unknown_app_and_bad_scope_are_credential_errors(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    tenant = emu.tenant_ids[0]
    stranger = RegisteredApp(client_id="00000000-0000-0000-0000-00000000abcd", secret=SECRET)
    async with (
        credential(idp, tenant, stranger) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):
        with pytest.raises(CredentialError, match="AADSTS700016") as unknown:
            await session.tenant(tenant).services().collect()
    async with (
        credential(idp, tenant, app) as cred,
        ServiceCommsSession(
            cred,
            base_url=emu.base_url,
            scope="https://manage.office.com/ServiceHealth.Read/.default",
        ) as session,
    ):
        with pytest.raises(CredentialError, match="AADSTS500011") as bad_scope:
            await session.tenant(tenant).services().collect()
    assert unknown.value.tenant == bad_scope.value.tenant == tenant
    assert api_calls(emu) == []


async def test_missing_role_refreshes_once_then_stops_refreshing(
    idp: IdentityServer, emu: Emulator, debug_logs: pytest.LogCaptureFixture
) -> None:
    reader = idp.register_app(secret=SECRET, roles=["ActivityFeed.Read"])
    tenant = emu.tenant_ids[0]
    errors: list[UnauthorizedError] = []
    async with (
        credential(idp, tenant, reader) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):
        for _ in range(3):  # a poller that keeps trying
            with pytest.raises(UnauthorizedError) as caught:
                await session.tenant(tenant).current_status().collect()
            errors.append(caught.value)
        sent = session.requests_sent
    assert [e.code for e in errors] == ["AF10001"] * 3
    assert errors[0].status == 401
    assert errors[0].tenant == tenant
    assert "ActivityFeed.Read" in str(errors[0])
    # One fresh token after the first 401 (the role might just have been granted), then no more.
    assert idp.token_requests == {tenant: 2}
    assert sent == 3 * 2
    assert idp.rejections == {"missing_role": 6}
    shown = everything_shown(debug_logs, *errors)
    assert SECRET not in shown
    assert not any(token in shown for token in bearer_tokens(emu))


async def test_tenant_mismatch_is_an_af20010_error_and_no_token_storm(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp, debug_logs: pytest.LogCaptureFixture
) -> None:
    home, *customers = emu.tenant_ids[:11]
    errors: list[UnauthorizedError] = []
    # A partner's mistake: one credential for its own tenant, used for customers without per_tenant_tokens.
    async with (
        credential(idp, home, app) as cred,
        ServiceCommsSession(cred, base_url=emu.base_url) as session,
    ):

        async def one(tenant: str) -> None:
            with pytest.raises(UnauthorizedError) as caught:
                await session.tenant(tenant).services().collect()
            errors.append(caught.value)

        async with anyio.create_task_group() as tg:
            for tenant in customers:
                tg.start_soon(one, tenant)
        sent = session.requests_sent
    assert sorted(e.tenant or "" for e in errors) == sorted(customers)
    assert {e.code for e in errors} == {"AF20010"}
    assert f"({customers[0]})" in str(next(e for e in errors if e.tenant == customers[0]))
    assert idp.token_requests == {home: 2}  # the first token and one refresh, for 10 tenants
    assert sent == 10 * 2
    shown = everything_shown(debug_logs, *errors)
    assert SECRET not in shown
    assert not any(token in shown for token in bearer_tokens(emu))


async def test_cancelling_the_request_that_fetches_a_token_does_not_fail_the_others(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    tenant = emu.tenant_ids[0]
    first_fetch_started = anyio.Event()

    class SlowCredential:
        def __init__(self, inner: ClientSecretCredential) -> None:
            self.inner = inner
            self.calls = 0

        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                first_fetch_started.set()
                await anyio.sleep_forever()  # the first fetch hangs until its caller is cancelled
            return await self.inner.get_token(*scopes, **kwargs)

    async with credential(idp, tenant, app) as inner:
        slow = SlowCredential(inner)
        provider = CredentialTokenProvider(slow, scope=MANAGE_SCOPE)
        tokens: list[str] = []
        leader_scope = anyio.CancelScope()

        async def leader() -> None:
            with leader_scope:
                await provider.get_token(tenant)

        async def follower() -> None:
            tokens.append((await provider.get_token(tenant)).reveal())

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await first_fetch_started.wait()
            tg.start_soon(follower)
            tg.start_soon(follower)
            await anyio.lowlevel.checkpoint()  # both wait for the leader's flight
            leader_scope.cancel()
    assert len(tokens) == 2
    assert tokens[0] == tokens[1]
    assert slow.calls == 2  # the cancelled fetch, then one more for both waiters
    assert idp.token_requests == {tenant: 1}


# -- arguments and reprs --


async def test_a_synchronous_credential_works_from_a_worker_thread(
    idp: IdentityServer, emu: Emulator, app: RegisteredApp
) -> None:
    # Some credentials exist only in sync form (DeviceCodeCredential); the sync ClientSecretCredential
    # stands in for them here. It goes through MSAL, which also reads the discovery document.
    tenant = emu.tenant_ids[0]
    sync = SyncClientSecretCredential(
        tenant,
        app.client_id,
        SECRET,
        authority=idp.authority,
        connection_verify=idp.ca_path,
        disable_instance_discovery=True,
    )
    try:
        async with ServiceCommsSession(sync, base_url=emu.base_url) as session:
            await session.tenant(tenant).services().collect()
            idp.revoke(tenant=tenant)
            await session.tenant(tenant).services().collect()
    finally:
        sync.close()
    assert idp.token_requests == {tenant: 2}  # MSAL's cache was bypassed after the revocation
    assert idp.rejections == {"revoked": 1}


async def test_a_credential_class_or_other_object_is_refused() -> None:
    with pytest.raises(TypeError, match="instance, not the class"):
        ServiceCommsSession(ClientSecretCredential)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="credential must be an azure-core token credential"):
        ServiceCommsSession("client-secret-string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exactly one of credential= or token="):
        ServiceCommsSession()


async def test_static_token_is_never_shown() -> None:
    session = ServiceCommsSession(token="static-token-value")
    assert "static-token-value" not in repr(session)
    assert "static-token-value" not in repr(session.tokens)
    with pytest.raises(ValueError, match="without the 'Bearer ' prefix"):
        StaticTokenProvider("Bearer static-token-value")
    with pytest.raises(TypeError, match="per_tenant_tokens"):
        ServiceCommsSession(token="x", per_tenant_tokens=True)


async def test_session_repr_shows_no_secret(idp: IdentityServer, app: RegisteredApp) -> None:
    async with credential(idp, "contoso.com", app) as cred:
        session = ServiceCommsSession(cred)
        assert SECRET not in repr(session)
        assert "ClientSecretCredential" in repr(session)
        assert SECRET not in repr(app)


# -- clouds --


EXPECTED_CLOUDS = {
    "public": (PUBLIC, "https://manage.office.com", "https://login.microsoftonline.com"),
    "gcc": (GCC, "https://manage-gcc.office.com", "https://login.microsoftonline.com"),
    "gcc-high": (GCC_HIGH, "https://manage.office365.us", "https://login.microsoftonline.us"),
    "dod": (DOD, "https://manage.protection.apps.mil", "https://login.microsoftonline.us"),
    "china": (CHINA, "https://manage.office365.cn", "https://login.chinacloudapi.cn"),
}


class RecordingCredential:
    def __init__(self) -> None:
        self.asked: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.asked.append((scopes, kwargs))

        class Token:
            token = "recorded-token"
            expires_on = 4_000_000_000

        return Token()


@pytest.mark.parametrize("name", sorted(EXPECTED_CLOUDS))
async def test_every_cloud_preset_builds_its_urls_and_scope(name: str) -> None:
    preset, host, authority = EXPECTED_CLOUDS[name]
    assert CLOUDS[name] is preset
    recorder = RecordingCredential()
    session = ServiceCommsSession(recorder, cloud=name.upper().replace("-", "_"))
    assert session.cloud is preset
    assert str(session.base_url) == f"{host}/api/v1.0"
    assert session.scope == f"{host}/.default" == preset.token_scope
    assert preset.authority == authority
    assert preset.token_endpoint("contoso.com") == f"{authority}/contoso.com/oauth2/v2.0/token"
    pager = session.tenant("contoso.com").current_status()
    assert pager.first_url == f"{host}/api/v1.0/contoso.com/ServiceComms/CurrentStatus"
    await session.tokens.get_token("contoso.com")
    assert recorder.asked == [((f"{host}/.default",), {})]


async def test_cloud_values_can_be_overridden_one_by_one() -> None:
    session = ServiceCommsSession(
        token="x", cloud=GCC_HIGH, base_url="https://proxy.example.net/o365/api/v1.0"
    )
    assert str(session.base_url) == "https://proxy.example.net/o365/api/v1.0"
    assert session.scope == GCC_HIGH.token_scope
    session = ServiceCommsSession(token="x", cloud="gcc", scope=PUBLIC.token_scope)
    assert str(session.base_url) == GCC.base_url
    assert session.scope == PUBLIC.token_scope
    with pytest.raises(ValueError, match=r"cloud must be a Cloud or one of \['china', 'dod'"):
        ServiceCommsSession(token="x", cloud="azure-germany")
    with pytest.raises(ValueError, match="token_scope"):
        Cloud(
            name="x", base_url=PUBLIC.base_url, token_scope="https://x", authority=PUBLIC.authority
        )
    with pytest.raises(ValueError, match="authority"):
        Cloud(
            name="x", base_url=PUBLIC.base_url, token_scope=MANAGE_SCOPE, authority="http://x.com"
        )


async def test_a_chained_credentials_reasons_each_reach_the_error() -> None:
    # DefaultAzureCredential explains itself one credential a line; only the first line was kept.
    from azure.core.exceptions import ClientAuthenticationError

    class Chained:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
                "Attempted credentials:\n"
                "\tEnvironmentCredential: EnvironmentCredential authentication unavailable.\n"
                "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable.\n"
                "\tAzureCliCredential: Azure CLI not found on path\n"
                "To mitigate this issue, please refer to the troubleshooting guidelines here at "
                "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
            )

        async def close(self) -> None:
            return None

    provider = CredentialTokenProvider(Chained(), scope="https://graph.microsoft.com/.default")
    with pytest.raises(CredentialError) as info:
        await provider.get_token("contoso.com")
    text = str(info.value)
    for name in ("EnvironmentCredential:", "ManagedIdentityCredential:", "AzureCliCredential:"):
        assert name in text
    assert "troubleshooting guidelines" not in text
