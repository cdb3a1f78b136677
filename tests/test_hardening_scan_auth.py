"""Issue 12 (hardening), the scan and auth items: stray cancellations, hanging credentials, pools for
concurrent scans, raw Graph filters, tokens and dates that cannot be sent, and a static JWT used for a
tenant it was not issued for. Everything talks to the emulator over loopback; credentials that hang or
misbehave are small classes with the azure-core ``get_token`` shape."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from servicecomms_async import (
    AuthenticationError,
    CredentialError,
    Limits,
    RetryPolicy,
    ScanResult,
    ServiceCommsSession,
    TenantDone,
    TenantFailed,
    Timeout,
    _constants,
)
from servicecomms_async._odata import Filter, format_datetime_literal
from servicecomms_async.auth import CredentialTokenProvider, StaticTokenProvider
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.identity import IdentityServer

pytestmark = pytest.mark.anyio

TOKEN = "hardening-token-never-logged"
SCOPE = "https://manage.office.com/.default"


async def collect(scan: Any) -> list[ScanResult[Any]]:
    async with scan as results:
        return [result async for result in results]


def finals(results: list[ScanResult[Any]]) -> dict[str, TenantDone | TenantFailed]:
    """Each tenant's final result; fails if a tenant has two."""
    found: dict[str, TenantDone | TenantFailed] = {}
    for result in results:
        assert result.tenant_id not in found, f"{result.tenant_id} got a result after its last"
        if isinstance(result, (TenantDone, TenantFailed)):
            found[result.tenant_id] = result
    return found


class _Answer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.expires_on = int(time.time()) + 3600


# -- 6: a stray CancelledError is the tenant's failure, not the end of the scan --


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Python 3.10 cannot tell a stray CancelledError from task.cancel(); it is obeyed there",
)
async def test_an_operation_raising_cancelled_error_fails_only_its_tenant() -> None:
    config = EmulatorConfig(seed=1, tenants=20, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        tenants = emu.tenant_ids
        stray = {tenants[2], tenants[9], tenants[15]}

        async def operation(client: Any) -> AsyncIterator[Any]:
            async for status in client.current_status():
                yield status
            if client.tenant_id in stray:
                raise asyncio.CancelledError  # e.g. a library cancelling its own inner task

        results = await collect(session.scan(tenants, operation, concurrency=5))
    found = finals(results)
    assert sorted(found) == sorted(tenants)  # before: 17 of 20, the scan just stopped
    failed = {t for t, r in found.items() if isinstance(r, TenantFailed)}
    assert failed == stray
    for tenant in stray:
        error = found[tenant].error
        assert isinstance(error, RuntimeError)
        assert "CancelledError" in str(error)


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Python 3.10 cannot tell a stray CancelledError from task.cancel(); it is obeyed there",
)
async def test_a_credential_raising_cancelled_error_is_a_credential_error() -> None:
    class CancellingCredential:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise asyncio.CancelledError

    config = EmulatorConfig(seed=2, tenants=10, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(lambda t: CancellingCredential(), base_url=emu.base_url) as session,
    ):
        results = await collect(session.scan(emu.tenant_ids, lambda t: t.services()))
        assert not emu.requests
    found = finals(results)
    assert sorted(found) == sorted(emu.tenant_ids)  # before: 0 of 10
    for result in found.values():
        assert isinstance(result, TenantFailed)
        assert isinstance(result.error, CredentialError)
        assert "CancelledError" in str(result.error)


async def test_asyncio_wait_for_still_cancels_a_token_fetch() -> None:
    # task.cancel() (what asyncio.wait_for does) is a real cancellation, on every Python version.
    class Hanging:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            await asyncio.sleep(30)

        async def close(self) -> None:
            return None

    config = EmulatorConfig(seed=2, tenants=1, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(Hanging(), base_url=emu.base_url) as session,
    ):
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(session.tenant(emu.tenant_ids[0]).services().collect(), 0.2)
        assert time.monotonic() - started < 5


async def test_cancelling_a_scan_still_cancels_it() -> None:
    # The stray-cancellation rule must not swallow the real thing.
    config = EmulatorConfig(seed=3, tenants=10, messages_per_tenant=0, latency=5)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        seen: list[object] = []
        with anyio.move_on_after(0.3) as scope:
            async with session.scan(emu.tenant_ids, lambda t: t.services()) as results:
                async for result in results:
                    seen.append(result)
        assert scope.cancelled_caught
        assert seen == []
        assert session.connections_in_use() == 0


async def test_an_on_progress_callback_that_raises_is_logged_and_the_scan_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def on_progress(progress: Any) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("dashboard is down")

    config = EmulatorConfig(seed=4, tenants=101, messages_per_tenant=0)
    async with (
        Emulator(config, record_requests=False) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        scan = session.scan(emu.tenant_ids, lambda t: t.services(), on_progress=on_progress)
        results = await collect(scan)  # before: an ExceptionGroup after 5 of 101 tenants
    found = finals(results)
    assert sorted(found) == sorted(emu.tenant_ids)
    assert all(isinstance(r, TenantDone) for r in found.values())
    assert calls == 101
    assert scan.progress.tenants_succeeded == 101
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "on_progress" in r.message
    ]
    assert len(warnings) == 1  # once per scan, with the traceback; later ones at debug level
    assert warnings[0].exc_info is not None


# -- 7: a credential that hangs --


class HangingCredential:
    def __init__(self) -> None:
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.calls += 1
        await anyio.sleep_forever()


async def test_a_hanging_credential_fails_within_the_token_timeout() -> None:
    config = EmulatorConfig(seed=5, tenants=1, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(
            HangingCredential(), base_url=emu.base_url, timeout=Timeout(total=2), token_timeout=0.3
        ) as session,
    ):
        started = time.monotonic()
        with anyio.fail_after(5):  # before: forever
            with pytest.raises(CredentialError, match=r"did not answer within 0\.3 ?s"):
                await session.tenant(emu.tenant_ids[0]).services().collect()
        assert time.monotonic() - started < 2
        assert not emu.requests


async def test_the_token_timeout_is_bounded_by_the_retry_deadline() -> None:
    config = EmulatorConfig(seed=5, tenants=1, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(
            HangingCredential(), base_url=emu.base_url, retry=RetryPolicy(deadline=0.4)
        ) as session,
    ):
        with anyio.fail_after(5):
            with pytest.raises(CredentialError, match=r"did not answer within 0\.4 ?s"):
                await session.tenant(emu.tenant_ids[0]).services().collect()


async def test_a_caller_passes_the_time_left_to_the_provider() -> None:
    provider = CredentialTokenProvider(HangingCredential(), scope=SCOPE)
    with anyio.fail_after(5):
        with pytest.raises(CredentialError, match=r"did not answer within 0\.2 ?s"):
            await provider.get_token("contoso.com", within=0.2)


async def test_waiters_on_a_hanging_flight_time_out_too() -> None:
    credential = HangingCredential()
    provider = CredentialTokenProvider(credential, scope=SCOPE, token_timeout=0.3)
    errors: list[BaseException] = []

    async def ask() -> None:
        try:
            await provider.get_token("contoso.com")
        except CredentialError as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(ask)
    assert len(errors) == 20
    assert credential.calls == 1  # still a single flight


async def test_hung_synchronous_credentials_use_a_bounded_number_of_threads() -> None:
    release = threading.Event()
    running = 0
    most = 0
    lock = threading.Lock()

    class HungSyncCredential:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            try:
                release.wait(10)
                return _Answer("late-token")
            finally:
                with lock:
                    running -= 1

    config = EmulatorConfig(seed=6, tenants=60, messages_per_tenant=0)
    try:
        async with (
            Emulator(config, record_requests=False) as emu,
            ServiceCommsSession(
                lambda t: HungSyncCredential(), base_url=emu.base_url, token_timeout=0.3
            ) as session,
        ):
            with anyio.fail_after(10):
                results = await collect(
                    session.scan(emu.tenant_ids, lambda t: t.services(), concurrency=60)
                )
    finally:
        release.set()
    found = finals(results)
    assert len(found) == 60
    assert all(isinstance(r, TenantFailed) for r in found.values())
    assert all(isinstance(r.error, CredentialError) for r in found.values())
    assert most <= _constants.TOKEN_SYNC_THREADS  # before: 60, one per tenant


async def test_a_credential_whose_close_hangs_does_not_hang_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_constants, "CREDENTIAL_CLOSE_TIMEOUT", 0.3)
    closed: list[str] = []

    class Closable:
        def __init__(self, tenant: str) -> None:
            self.tenant = tenant

        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return _Answer(f"tok-{self.tenant}")

        async def close(self) -> None:
            if self.tenant == first:
                await anyio.sleep_forever()
            closed.append(self.tenant)

    config = EmulatorConfig(seed=7, tenants=5, messages_per_tenant=0)
    async with Emulator(config) as emu:
        first = emu.tenant_ids[0]
        session = ServiceCommsSession(lambda t: Closable(t), base_url=emu.base_url)
        async with session:
            for tenant in emu.tenant_ids:
                await session.tenant(tenant).services().collect()
            started = time.monotonic()
            with anyio.fail_after(5):  # before: forever
                await session.aclose()
            assert time.monotonic() - started < 2
    assert sorted(closed) == sorted(emu.tenant_ids[1:])  # before: none after the hung one


# -- 8: concurrent scans on one session --


async def test_concurrent_scans_get_a_pool_for_all_of_them() -> None:
    config = EmulatorConfig(seed=8, tenants=40, messages_per_tenant=0, latency=0.3)
    async with (
        Emulator(config, record_requests=False) as emu,
        ServiceCommsSession(
            token=TOKEN,
            base_url=emu.base_url,
            limits=Limits(max_connections=10),
            retry=RetryPolicy(attempts=1, deadline=0.5),
        ) as session,
    ):
        tenants = emu.tenant_ids
        batches = [tenants[i : i + 10] for i in range(0, 40, 10)]
        outcomes: list[list[ScanResult[Any]]] = []

        async def one(batch: list[str]) -> None:
            outcomes.append(
                await collect(session.scan(batch, lambda t: t.services(), concurrency=10))
            )

        async with anyio.create_task_group() as tg:
            for batch in batches:
                tg.start_soon(one, batch)
        assert emu.max_in_flight == 40
        assert session.connections_in_use() == 0
    found = {t: r for results in outcomes for t, r in finals(results).items()}
    failed = Counter(type(r.error).__name__ for r in found.values() if isinstance(r, TenantFailed))
    assert not failed  # before: 20 of 40 waited out their deadline for a connection
    assert len(found) == 40


async def test_a_scan_counts_for_the_pool_only_while_it_runs() -> None:
    config = EmulatorConfig(seed=9, tenants=3, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(
            token=TOKEN, base_url=emu.base_url, limits=Limits(max_connections=2)
        ) as session,
    ):
        scan = session.scan(emu.tenant_ids, lambda t: t.services(), concurrency=30)
        assert session._scan_demand == 0  # made, not entered
        async with scan as results:
            assert session._scan_demand == 30
            assert session._transport.limits.max_connections >= 30
            async for _ in results:
                pass
        assert session._scan_demand == 0
        assert session._transport.limits.max_connections == 2  # given back when the scan ended


# -- 11: a raw filter cannot break out of its parentheses --


@pytest.mark.parametrize(
    "text",
    [
        "isResolved eq true) or (true",
        "isResolved eq true)",
        "(isResolved eq true",
        "title eq 'unclosed",
        "title eq 'a''",  # '' is a quote inside the literal, which never closes
        ")(",
    ],
)
def test_an_unbalanced_raw_filter_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="filter"):
        Filter().equals("service", "No Such Service", parameter="service").raw(text)


@pytest.mark.parametrize(
    "text",
    [
        "isResolved eq true",
        "(isResolved eq true) or (status eq 'serviceDegradation')",
        "title eq 'a ) or ( b'",
        "title eq 'O''Brien (x'",
        "title eq 'a'') or (''b'",  # one literal: a') or ('b
        "services/any(s:s eq 'Exchange Online')",
    ],
)
def test_a_balanced_raw_filter_is_kept(text: str) -> None:
    built = Filter().equals("service", "x", parameter="service").raw(text).build()
    assert built == f"service eq 'x' and ({text})"


async def test_a_raw_filter_escape_through_the_graph_client_sends_nothing() -> None:
    config = EmulatorConfig(seed=10, tenants=1, messages_per_tenant=50)
    async with Emulator(config) as emu:
        tenant = emu.tenant_ids[0]
        async with ServiceCommsSession(
            token=Emulator.graph_token(tenant), api="graph", base_url=emu.graph_base_url
        ) as session:
            client = session.graph(tenant)
            assert await client.issues(service="No Such Service").collect() == []
            with pytest.raises(ValueError, match="filter"):  # before: every issue matched
                client.issues(service="No Such Service", filter="isResolved eq true) or (true")
        assert len(emu.requests) == 1


# -- 12: tokens, dates and factories that cannot work --


@pytest.mark.parametrize(
    "token", ["abc\r\nX-Injected: 1", "abc\n", "abc\r", "\nabc", "ab\x00c", "abc\x7f"]
)
async def test_a_token_with_a_line_break_or_control_character_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match=r"line break|control character") as raised:
        StaticTokenProvider(token)
    assert "abc" not in str(raised.value)
    provider = StaticTokenProvider(lambda tenant: token)
    with pytest.raises(ValueError, match=r"token callable for tenant contoso\.com"):
        await provider.get_token("contoso.com")


async def test_a_token_with_a_line_break_from_a_session_sends_nothing() -> None:
    config = EmulatorConfig(seed=11, tenants=1, messages_per_tenant=0)
    async with Emulator(config) as emu:
        with pytest.raises(ValueError, match="line break"):
            ServiceCommsSession(token="abc\r\n", base_url=emu.base_url)

        async def token(tenant: str) -> str:
            return "abc\n"

        async with ServiceCommsSession(token=token, base_url=emu.base_url) as session:
            with pytest.raises(ValueError, match="line break"):
                await session.tenant(emu.tenant_ids[0]).services().collect()
        assert not emu.requests


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
async def test_a_date_that_overflows_in_utc_names_its_parameter(value: datetime) -> None:
    with pytest.raises(ValueError, match="since") as raised:
        format_datetime_literal(value, parameter="since")
    assert not isinstance(raised.value, OverflowError)
    config = EmulatorConfig(seed=12, tenants=1, messages_per_tenant=0)
    async with Emulator(config) as emu:
        tenant = emu.tenant_ids[0]
        async with ServiceCommsSession(
            token=Emulator.graph_token(tenant), api="graph", base_url=emu.graph_base_url
        ) as session:
            with pytest.raises(ValueError, match="since"):
                session.graph(tenant).issues(since=value)
        assert not emu.requests


async def test_a_factory_returning_a_non_credential_is_a_credential_error() -> None:
    config = EmulatorConfig(seed=13, tenants=3, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(lambda t: "not-a-credential", base_url=emu.base_url) as session,
    ):
        with pytest.raises(CredentialError, match="factory returned str") as raised:
            await session.tenant(emu.tenant_ids[0]).services().collect()
        assert emu.tenant_ids[0] in str(raised.value)
        results = await collect(session.scan(emu.tenant_ids, lambda t: t.services()))
        assert not emu.requests
    found = finals(results)  # before: a TypeError, which stopped the scan as a "broken operation"
    assert len(found) == 3
    assert all(isinstance(r.error, CredentialError) for r in found.values())


# -- 20: a static JWT used for another tenant --


async def test_a_static_jwt_for_another_tenant_is_refused_before_sending() -> None:
    config = EmulatorConfig(seed=14, tenants=2, messages_per_tenant=20)
    async with IdentityServer() as idp:
        async with Emulator(config, graph_token_validator=idp.graph_token_validator) as emu:
            idp.add_tenants(emu.tenant_ids)
            mine, other = emu.tenant_ids
            token = idp.issue_graph_token(other)
            async with ServiceCommsSession(
                token=token, api="graph", base_url=emu.graph_base_url
            ) as session:
                with pytest.raises(AuthenticationError) as raised:
                    await session.graph(mine).issues().collect()
                assert not emu.requests  # before: other's issues, labelled as mine
                shown = str(raised.value)
                assert mine in shown and other in shown
                assert token not in shown and token not in repr(raised.value)
                assert await session.graph(other).issues().collect()  # its own tenant works
                assert len(emu.requests) >= 1
                # An upper-case GUID is the same tenant.
                assert await session.graph(other.upper()).issues(max_items=1).collect()

            # A callable giving the wrong tenant's token is refused the same way.
            async with ServiceCommsSession(
                token=lambda t: token, api="graph", base_url=emu.graph_base_url
            ) as session:
                with pytest.raises(AuthenticationError, match=mine):
                    await session.graph(mine).issues().collect()


async def test_tokens_that_are_not_jwts_or_tenants_by_domain_are_not_checked() -> None:
    provider = StaticTokenProvider("emulator-app.contoso.com", tenant_check=True)
    assert (await provider.get_token("00000000-0000-0000-0000-000000000001")).reveal()
    # A domain cannot be compared with a tid: the check is skipped.
    jwt = "eyJhbGciOiJub25lIn0.eyJ0aWQiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDIifQ.c2ln"
    provider = StaticTokenProvider(jwt, tenant_check=True)
    assert (await provider.get_token("contoso.com")).reveal() == jwt
    with pytest.raises(AuthenticationError, match="00000000-0000-0000-0000-000000000002"):
        await provider.get_token("00000000-0000-0000-0000-000000000001")
    # Without the check (the legacy API, whose URL names the tenant and whose service refuses a
    # mismatch itself) the token is passed through.
    assert await StaticTokenProvider(jwt).get_token("00000000-0000-0000-0000-000000000001")


async def test_a_calls_own_deadline_bounds_its_token_wait() -> None:
    # The session's token timeout is 30 s; a call with a 0.3 s retry deadline waited all of it.
    class Hanging:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            await asyncio.sleep(30)

        async def close(self) -> None:
            return None

    config = EmulatorConfig(seed=2, tenants=1, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(Hanging(), base_url=emu.base_url) as session,
    ):
        hurried = session.tenant(emu.tenant_ids[0]).with_options(retry=RetryPolicy(deadline=0.3))
        started = time.monotonic()
        with anyio.fail_after(10), pytest.raises(CredentialError, match="did not answer within"):
            await hurried.services().collect()
        assert time.monotonic() - started < 3
        assert not emu.requests
