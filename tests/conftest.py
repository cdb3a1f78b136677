"""Shared fixtures: the embedded emulator over loopback HTTP and sessions pointed at it."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

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


# Values that must never appear in a log record: the static test token, anything shaped like a JWT (the
# local token endpoint's tokens), and secrets tests register in SECRETS.
SECRETS: set[str] = {TOKEN}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def leaks(text: str) -> bool:
    return bool(_JWT.search(text)) or any(secret in text for secret in SECRETS)


def traceback_locals_leaks(error: BaseException) -> list[str]:
    """Each local of each traceback frame (of ``error`` and the errors chained to it) whose repr
    shows a secret, as "function.name": what ``rich``'s ``tracebacks_show_locals``, ``pytest -l``,
    better_exceptions and Sentry's frame capture would print."""
    found: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for name, value in list(frame.f_locals.items()):
                try:
                    shown = repr(value)
                except Exception:  # a repr that fails shows nothing
                    continue
                if leaks(shown):
                    found.append(f"{frame.f_code.co_name}.{name}")
            tb = tb.tb_next
    return found


class _RecordEverything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
            # A handler may print the traceback with its frames' locals (rich's RichHandler with
            # tracebacks_show_locals=True, Sentry): they must not show a secret either.
            text += "".join(
                f" [traceback local {where} shows a secret]"
                for where in traceback_locals_leaks(record.exc_info[1])
            )
        self.lines.append(text)


@pytest.fixture(autouse=True)
def no_secret_in_any_log_record() -> Iterator[None]:
    """Every test runs with DEBUG logging on, and fails if a token or secret reached a log record."""
    handler = _RecordEverything()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    leaked = [line for line in handler.lines if leaks(line) or "shows a secret]" in line]
    assert not leaked, f"a secret reached the logs: {leaked[:3]}"


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


class ThreadedEmulator:
    """The emulator on its own event loop in a thread, for synchronous callers (schemathesis, hypothesis)."""

    def __init__(self, config: EmulatorConfig, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.emulator = Emulator(config, **options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Emulator:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.emulator.start(), self.loop).result()
        return self.emulator

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
