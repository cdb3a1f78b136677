"""The engine layer as a caller sees it: options checked on construction, per-client options, token
callables, the pool bound, a broken scan operation, and the session's types following its API."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from servicecomms_async import (
    GraphClient,
    Limits,
    RequestTimeoutError,
    RetryPolicy,
    Scan,
    ServerError,
    ServiceCommsSession,
    TenantClient,
    TenantDone,
    TenantFailed,
    ThrottledError,
    Timeout,
)
from servicecomms_async.emulator import Emulator, EmulatorConfig
from servicecomms_async.emulator.faults import Fault, FaultPlan, fault_middleware

from .conftest import TOKEN

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


def api_requests(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests if "/ServiceComms/" in r.path]


async def drain(scan: Scan[Any], seen: list[object] | None = None) -> None:
    """Iterate a scan inside its ``async with``, keeping what it delivers in ``seen``."""
    async with scan as results:
        async for result in results:
            if seen is not None:
                seen.append(result)


# -- options are checked when they are given ---------------------------------------------------------


def test_a_number_of_seconds_is_a_timeout() -> None:
    session = ServiceCommsSession(token=TOKEN, timeout=5)
    assert session._transport.timeout == Timeout(total=5)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"retry": 3}, TypeError, r"retry must be a RetryPolicy such as RetryPolicy\(attempts=3\)"),
        ({"retry": True}, TypeError, "retry must be a RetryPolicy"),
        ({"timeout": "5"}, TypeError, "timeout must be a Timeout"),
        ({"timeout": -1}, ValueError, "timeout must be greater than 0 seconds"),
        (
            {"limits": 10},
            TypeError,
            r"limits must be a Limits \(e.g. Limits\(max_connections=200\)\)",
        ),
        ({"max_pages": "10"}, TypeError, "max_pages must be an int"),
        ({"max_body_bytes": 0}, ValueError, "max_body_bytes must be an int 1 or more"),
        ({"strict": "yes"}, TypeError, "strict must be True or False"),
        ({"ssl_context": "ca.pem"}, TypeError, "ssl_context must be an ssl.SSLContext"),
        ({"api": "rest"}, ValueError, "api must be 'legacy' or 'graph'"),
    ],
)
def test_bad_session_options_fail_on_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ServiceCommsSession(token=TOKEN, **options)


async def test_bad_call_options_fail_before_any_request(
    emulator: Emulator, session: ServiceCommsSession
) -> None:
    client = session.tenant(emulator.tenant_ids[0])
    with pytest.raises(TypeError, match="retry must be a RetryPolicy"):
        client.services(retry=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout must be a Timeout"):
        client.with_options(timeout="slow")  # type: ignore[arg-type]
    assert api_requests(emulator) == []


async def test_with_options_applies_to_every_call_of_the_copy() -> None:
    # Every tenant's first request fails once with a 503: the session's policy rides through it, a
    # copy made with RetryPolicy.never() does not, and the original client is unchanged.
    config = EmulatorConfig(seed=3, tenants=2, messages_per_tenant=5)
    faults = fault_middleware(FaultPlan(fail_first=2, kinds=(Fault.UNAVAILABLE,), retry_after=0))
    async with (
        Emulator(config, middlewares=[faults]) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        client = session.tenant(emu.tenant_ids[0])
        impatient = client.with_options(retry=RetryPolicy.never(), timeout=5)
        assert impatient.tenant_id == client.tenant_id
        with pytest.raises(ServerError):
            await impatient.services().collect()
        with pytest.raises(ServerError):
            await impatient.current_status().collect()
        assert await client.services().collect()  # the default policy still retries


async def test_with_options_reaches_the_graph_viewpoint_actions() -> None:
    config = EmulatorConfig(seed=3, tenants=1, messages_per_tenant=5)
    async with Emulator(config) as clean:
        tenant = clean.tenant_ids[0]
    faults = fault_middleware(FaultPlan(fail_first=1, kinds=(Fault.THROTTLE_429,), retry_after=0))
    async with (
        Emulator(config, middlewares=[faults]) as emu,
        ServiceCommsSession(
            token=lambda t: Emulator.graph_token(t, delegated=True),
            api="graph",
            base_url=emu.graph_base_url,
        ) as session,
    ):
        graph = session.graph(tenant).with_options(retry=RetryPolicy.never())
        with pytest.raises(ThrottledError):
            await graph.mark_read(["MC000001"])
        assert isinstance(graph, GraphClient)


# -- tokens ----------------------------------------------------------------------------------------------


async def test_an_async_token_callable_is_awaited(emulator: Emulator) -> None:
    asked: list[str] = []

    async def token_for(tenant: str) -> str:
        asked.append(tenant)
        await anyio.lowlevel.checkpoint()
        return TOKEN

    async with ServiceCommsSession(token=token_for, base_url=emulator.base_url) as session:
        assert await session.tenant(emulator.tenant_ids[0]).services().collect()
    assert asked == [emulator.tenant_ids[0]]


async def test_a_token_callable_that_gives_no_string_is_named(emulator: Emulator) -> None:
    async with ServiceCommsSession(token=lambda t: None, base_url=emulator.base_url) as session:  # type: ignore[arg-type,return-value]
        with pytest.raises(TypeError, match=r"the token callable for tenant .* must give a str"):
            await session.tenant(emulator.tenant_ids[0]).services().collect()
    assert api_requests(emulator) == []


# -- the pool ------------------------------------------------------------------------------------------------


async def test_waiting_for_a_free_connection_ends_at_the_retry_deadline() -> None:
    config = EmulatorConfig(seed=3, tenants=2, messages_per_tenant=0)
    tenants = Emulator(config).tenant_ids
    stall = fault_middleware(FaultPlan(tenant_faults={tenants[0]: Fault.STALL}, stall_seconds=30))
    async with (
        Emulator(config, middlewares=[stall]) as emu,
        ServiceCommsSession(
            token=TOKEN, base_url=emu.base_url, limits=Limits(max_connections=1)
        ) as session,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.tenant(tenants[0]).services().collect)
            with anyio.fail_after(5):
                while session.connections_in_use() < 1:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            waiting = session.tenant(tenants[1]).with_options(retry=RetryPolicy(deadline=0.3))
            with (
                anyio.fail_after(5),
                pytest.raises(RequestTimeoutError, match="no free connection"),
            ):
                await waiting.services().collect()
            tg.cancel_scope.cancel()
        assert session.connections_in_use() == 0
        assert tenants[1] not in " ".join(api_requests(emu))


# -- a scan whose operation is broken ------------------------------------------------------------------


async def test_a_broken_operation_stops_the_scan_with_its_error() -> None:
    config = EmulatorConfig(seed=3, tenants=40, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        seen: list[object] = []
        scan = session.scan(
            emu.tenant_ids,
            lambda t: t.issues(),  # type: ignore[attr-defined]
            concurrency=10,
        )
        with pytest.raises(AttributeError, match="issues"):
            await drain(scan, seen)
        assert seen == []  # one error, not forty failed tenants
        assert api_requests(emu) == []
        assert session.connections_in_use() == 0


async def test_bad_arguments_in_the_operation_stop_the_scan() -> None:
    config = EmulatorConfig(seed=3, tenants=5, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        scan = session.scan(emu.tenant_ids, lambda t: t.messages(page_size=500))
        with pytest.raises(ValueError, match="page_size must be from 1 to 100"):
            await drain(scan)


async def test_an_error_for_some_tenants_only_stays_their_result() -> None:
    config = EmulatorConfig(seed=3, tenants=6, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        odd = set(emu.tenant_ids[::2])

        def operation(client: TenantClient) -> Any:
            if client.tenant_id in odd:
                raise TypeError("no plan for this tenant")
            return client.services()

        async with session.scan(emu.tenant_ids, operation, concurrency=1) as results:
            finals = [r async for r in results if r.final]
    failed = {r.tenant_id for r in finals if isinstance(r, TenantFailed)}
    done = {r.tenant_id for r in finals if isinstance(r, TenantDone)}
    assert failed == odd
    assert done == set(emu.tenant_ids) - odd
    assert all(isinstance(r.error, TypeError) for r in finals if isinstance(r, TenantFailed))


async def test_invalid_tenant_ids_do_not_hide_a_broken_operation() -> None:
    config = EmulatorConfig(seed=3, tenants=4, messages_per_tenant=0)
    async with (
        Emulator(config) as emu,
        ServiceCommsSession(token=TOKEN, base_url=emu.base_url) as session,
    ):
        tenants = ["not a tenant", *emu.tenant_ids]
        scan = session.scan(tenants, lambda t: t.overview())  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            await drain(scan)


# -- the session's types follow its API ---------------------------------------------------------------


MYPY_CASES = {
    "legacy_method_on_graph": (
        'async def f(s: "ServiceCommsSession[GraphClient]") -> None:\n'
        "    s.scan(['contoso.com'], lambda g: g.current_status())\n",
        '"GraphClient" has no attribute "current_status"',
    ),
    "typo": (
        "async def f() -> None:\n"
        "    s = ServiceCommsSession(token='t', api='graph')\n"
        "    s.scan(['contoso.com'], lambda g: g.isues())\n",
        '"GraphClient" has no attribute "isues"',
    ),
    "graph_method_on_legacy": (
        "async def f() -> None:\n"
        "    s = ServiceCommsSession(token='t')\n"
        "    s.client('contoso.com').issues()\n",
        '"TenantClient" has no attribute "issues"',
    ),
    "right": (
        "async def f() -> None:\n"
        "    g = ServiceCommsSession(token='t', api='graph')\n"
        "    reveal_type(g.client('contoso.com'))\n"
        "    g.scan(['contoso.com'], lambda c: c.issues(is_resolved=False))\n"
        "    s = ServiceCommsSession(token='t')\n"
        "    s.scan(['contoso.com'], lambda t: t.current_status())\n",
        'Revealed type is "servicecomms_async.graph.client.GraphClient"',
    ),
}


def test_mypy_checks_a_scan_against_the_sessions_api(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    header = "from servicecomms_async import GraphClient, ServiceCommsSession\n\n"
    for name, (body, _) in MYPY_CASES.items():
        (tmp_path / f"case_{name}.py").write_text(header + textwrap.dedent(body))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *(str(tmp_path / f"case_{name}.py") for name in MYPY_CASES),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    found = {
        name: "\n".join(line for line in run.stdout.splitlines() if f"case_{name}.py" in line)
        for name in MYPY_CASES
    }
    for name, (_, expected) in MYPY_CASES.items():
        assert expected in found[name], (name, found[name])
    errors_in_right = [line for line in found["right"].splitlines() if ": error:" in line]
    assert errors_in_right == []


def test_the_package_version_is_pyprojects() -> None:
    import re

    import servicecomms_async

    # tomllib is 3.11+, and the suite runs on 3.10 too.
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE)
    assert declared is not None and servicecomms_async.__version__ == declared.group(1)


def test_the_old_module_paths_still_give_the_same_objects() -> None:
    # Kept for one release, so that callers' imports keep working while they move.
    from servicecomms_async import (
        _config,
        _transport,
        _validate,
        _wire,
        convert,
        graph,
        graph_models,
        legacy,
        models,
        query,
        tenant,
        transport,
    )

    assert models.Message is legacy.Message and graph_models.ServiceHealth is graph.ServiceHealth
    assert tenant.TenantClient is legacy.TenantClient
    assert transport.Timeout is _config.Timeout and transport.Transport is _transport.Transport
    assert query.validate_tenant_id is _validate.validate_tenant_id
    assert convert.converter is _wire.converter


async def test_a_graph_scan_of_several_tenants_needs_a_token_per_tenant() -> None:
    config = EmulatorConfig(seed=3, tenants=3, messages_per_tenant=5)
    async with Emulator(config) as emu:
        tenants = emu.tenant_ids
        one_token = Emulator.graph_token(tenants[0])
        async with ServiceCommsSession(
            token=one_token, api="graph", base_url=emu.graph_base_url
        ) as session:
            with pytest.raises(ValueError, match="needs a token per tenant"):
                session.scan(tenants, lambda g: g.issues())
            # One tenant with its own token is fine.
            await drain(session.scan(tenants[:1], lambda g: g.issues()))
        async with ServiceCommsSession(
            token=Emulator.graph_token, api="graph", base_url=emu.graph_base_url
        ) as session:
            seen: list[object] = []
            await drain(session.scan(tenants, lambda g: g.issues()), seen)
            assert {r.tenant_id for r in seen if isinstance(r, TenantDone)} == set(tenants)


@pytest.mark.parametrize("year", [1, 999, 1000, 2024, 9999])
def test_datetimes_of_any_year_are_written_so_they_read_back(year: int) -> None:
    # Issue 12, item 14: years before 1000 were written unpadded ("1-01-01T00:00:00Z").
    from datetime import datetime, timezone

    from servicecomms_async._odata import format_datetime_literal
    from servicecomms_async._wire import format_datetime, parse_datetime

    when = datetime(year, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc)
    text = format_datetime(when)
    assert text == f"{year:04d}-01-02T03:04:05.6Z"
    assert parse_datetime(text) == when
    assert format_datetime_literal(when, parameter="since") == text


@pytest.mark.parametrize("raw", ["²", "9" * 5000, "+-5", "١٢"])
def test_a_bad_integer_string_keeps_the_item_in_a_lenient_stream(raw: str) -> None:
    # Issue 12, item 13: these raised a raw ValueError and aborted the whole stream.
    from servicecomms_async import InvalidFieldError, Message
    from servicecomms_async._wire import converter, strict_converter

    message = converter.structure({"Id": "MC1", "AffectedUserCount": raw}, Message)
    assert message.id == "MC1"
    assert message.affected_user_count is None and message.extra["AffectedUserCount"] == raw
    with pytest.raises(InvalidFieldError, match="AffectedUserCount"):
        strict_converter.structure({"Id": "MC1", "AffectedUserCount": raw}, Message)
    assert (
        converter.structure(
            {"Id": "MC1", "AffectedUserCount": " -12 "}, Message
        ).affected_user_count
        == -12
    )


@pytest.mark.parametrize("weaken", ["no_hostname_check", "no_verification"])
def test_an_ssl_context_that_does_not_verify_is_refused(weaken: str) -> None:
    # Issue 12, item 10: SECURITY.md says verification cannot be turned off, but such a context passed.
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    if weaken == "no_verification":
        context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="ssl_context must verify the server"):
        ServiceCommsSession(token=TOKEN, ssl_context=context)
    assert (
        ServiceCommsSession(token=TOKEN, ssl_context=ssl.create_default_context()).api == "legacy"
    )
