"""Shared fixtures: the embedded emulator over loopback HTTP and sessions pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web

from servicecomms_async import ServiceCommsSession, retry
from servicecomms_async.emulator import Emulator, EmulatorConfig

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "test-token-never-logged"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_retry_waits() -> Iterator[None]:
    """Retries are counted but never slept on in tests (a test that measures waits turns this off)."""
    retry.set_testing(True)
    yield
    retry.set_testing(False)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(seed=7, tenants=3, messages_per_tenant=250)) as emu:
        yield emu


@pytest.fixture
async def session(emulator: Emulator) -> AsyncIterator[ServiceCommsSession]:
    async with ServiceCommsSession(token=TOKEN, base_url=emulator.base_url) as session:
        yield session
        # Every test leaves the pool as it found it: nothing checked out.
        assert session.connections_in_use() == 0


CannedResponse = tuple[int, bytes, Mapping[str, str]]


def canned_middleware(responses: Mapping[str, CannedResponse]) -> Callable[..., object]:
    """An emulator middleware that answers requests for the given tenants with fixed responses."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[..., object]
    ) -> web.StreamResponse:
        parts = request.path.split("/")
        tenant = parts[3] if len(parts) > 3 else ""
        if tenant in responses:
            status, body, headers = responses[tenant]
            return web.Response(status=status, body=body, headers=dict(headers))
        return await handler(request)  # type: ignore[no-any-return,operator]

    return middleware


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
