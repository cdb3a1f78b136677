"""What the emulator's servers share: an aiohttp application served on a loopback address.

:class:`LoopbackServer` owns the listening socket and nothing else: the host check, ``start``,
``stop``, ``async with``, the bound port and the origin URL, and the errors a caller can act on.
Subclasses supply the application (:meth:`LoopbackServer._build_app`) and, for HTTPS, a TLS context
(:meth:`LoopbackServer._setup`); :class:`~.app.Emulator` and :class:`~.identity.IdentityServer` are
the two.

Contract:

* ``host`` is ``localhost``, ``::1`` or an address in ``127.0.0.0/8``; anything else is a
  ``ValueError`` on construction (the emulator accepts any token, so it never listens beyond the
  machine). ``port`` is 0 (a free port is picked) to 65535.
* ``start`` on a started server, and ``port`` or ``origin`` before the first ``start``, are
  ``RuntimeError``; after ``stop`` they keep the last address (a test can see nothing answers there).
  A port that cannot be bound (in use, or not allowed) is a :class:`BindError` naming the address.
* ``stop`` is idempotent; ``async with`` starts and stops.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import ssl
from types import TracebackType
from typing import ClassVar, TypeVar

from aiohttp import web

__all__ = ["BindError", "LoopbackServer", "check_loopback_host"]

_SHUTDOWN_TIMEOUT = 2.0
_Server = TypeVar("_Server", bound="LoopbackServer")


class BindError(OSError):
    """The server could not listen on the address it was given; the message says where and why."""


def check_loopback_host(host: object) -> str:
    """``host`` when it names this machine's loopback interface, else a ``ValueError`` saying so."""
    if isinstance(host, str):
        if host.lower() == "localhost":
            return host
        try:
            if ipaddress.ip_address(host).is_loopback:
                return host
        except ValueError:
            pass
    raise ValueError(
        f"host must be a loopback address (127.0.0.1, ::1 or localhost), got {host!r}: "
        "the emulator is for tests and accepts any credentials, so it never listens beyond this machine"
    )


def check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(
            f"port must be an integer from 0 (pick a free port) to 65535, got {port!r}"
        )
    return port


class LoopbackServer:
    """An aiohttp application on a loopback address (see the module docstring for the contract)."""

    #: How errors name the server ("the emulator is not started").
    server_name: ClassVar[str] = "the server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = check_loopback_host(host)
        self._port = check_port(port)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._bound_port: int | None = None
        self._scheme = "http"

    # -- what subclasses supply --

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    def _setup(self) -> ssl.SSLContext | None:
        """Called first by :meth:`start`: the TLS context to serve HTTPS with, or ``None`` for HTTP."""
        return None

    def _teardown(self) -> None:
        """Called last by :meth:`stop` (also when not started), and when :meth:`start` fails after
        :meth:`_setup`."""

    def _connection_made(self) -> None:
        """Called for every accepted TCP connection."""

    # -- the server --

    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def port(self) -> int:
        """The bound TCP port (raises before :meth:`start`)."""
        if self._bound_port is None:
            raise RuntimeError(f"{self.server_name} is not started")
        return self._bound_port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` when served over TLS; IPv6 hosts in brackets)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self._scheme}://{host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{self.server_name} is already started")
        tls = self._setup()
        self._scheme = "http" if tls is None else "https"
        try:
            runner = web.AppRunner(
                self._build_app(),
                handle_signals=False,
                access_log=None,
                shutdown_timeout=_SHUTDOWN_TIMEOUT,
            )
            await runner.setup()
        except BaseException:
            self._teardown()
            raise
        handler = runner.server
        assert handler is not None

        # Wrapping the protocol factory is the one public hook that sees every accepted
        # connection (TCPSite would hide it), so keep-alive reuse can be measured.
        def factory() -> asyncio.BaseProtocol:
            self._connection_made()
            return handler()

        try:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(factory, self._host, self._port, ssl=tls)
        except BaseException as exc:
            await runner.cleanup()
            self._teardown()
            if isinstance(exc, OSError) and not isinstance(exc, BindError):
                raise self._bind_error(exc) from exc
            raise
        self._runner, self._server = runner, server
        self._bound_port = int(server.sockets[0].getsockname()[1])

    def _bind_error(self, exc: OSError) -> BindError:
        where = (
            f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
        )
        if exc.errno == errno.EADDRINUSE:
            why = "the port is in use (port 0 picks a free one)"
        elif exc.errno == errno.EACCES:
            why = "the port is not allowed for this user (port 0 picks a free one)"
        else:
            why = exc.strerror or str(exc)
        return BindError(exc.errno, f"{self.server_name} cannot listen on {where}: {why}")

    async def stop(self) -> None:
        server, runner = self._server, self._runner
        self._server = self._runner = None
        try:
            if server is not None:
                server.close()
            if runner is not None:
                await runner.cleanup()
            if server is not None:
                await server.wait_closed()
        finally:
            self._teardown()

    async def __aenter__(self: _Server) -> _Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
