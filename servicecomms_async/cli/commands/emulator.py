"""``emulator``: serve the embedded emulator of both APIs until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
from typing import TYPE_CHECKING, TextIO

import anyio

from ...emulator.server import BindError
from ..errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from ...emulator import EmulatorConfig


def run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from ...emulator import EmulatorConfig

    try:
        config = EmulatorConfig(
            seed=args.seed,
            tenants=args.tenants,
            shape=args.shape,
            messages_per_tenant=args.messages_per_tenant,
            history_days=args.history_days,
            paging=args.paging,
            latency=args.latency,
            latency_jitter=args.latency_jitter,
            degraded_ratio=args.degraded_ratio,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"emulator: {exc}") from None
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops: exit 0
        asyncio.run(_serve(config, args.host, args.port, args.tenants_file, stdout))
    return EXIT_OK


def _listen_error(host: str, port: int, exc: OSError) -> UsageError:
    if exc.errno == errno.EADDRINUSE:
        return UsageError(
            f"--port: cannot listen on {host}:{port}: the port is in use (--port 0 picks a free one)"
        )
    # The emulator's own BindError says where and why in one line.
    return UsageError(str(exc) if isinstance(exc, BindError) else f"cannot listen: {exc}")


async def _serve(
    config: EmulatorConfig, host: str, port: int, tenants_file: str | None, stdout: TextIO
) -> None:
    from ...emulator import Emulator

    emulator = Emulator(config, host=host, port=port, record_requests=False)
    try:
        await emulator.start()
    except OSError as exc:
        raise _listen_error(host, port, exc) from None
    try:
        tenants = emulator.tenant_ids
        if tenants_file is not None:
            try:
                await anyio.Path(tenants_file).write_text(
                    "".join(f"{t}\n" for t in tenants), encoding="utf-8"
                )
            except OSError as exc:
                raise UsageError(
                    f"--tenants-file: cannot write {tenants_file}: {exc.strerror or exc}"
                ) from None

        def say(line: str) -> None:
            stdout.write(line + "\n")
            stdout.flush()

        say(f"Service Communications emulator listening on {emulator.base_url}")
        say(
            f"seed={config.seed} shape={config.shape} tenants={config.tenants} "
            f"messages_per_tenant={config.messages_per_tenant} paging={config.paging} "
            f"latency={config.latency}s"
        )
        for tenant in tenants[:5]:
            say(f"  {emulator.base_url}/{tenant}/ServiceComms/CurrentStatus")
        say(
            f"Microsoft Graph routes on {emulator.graph_base_url}/admin/serviceAnnouncement/ "
            "(bearer token: emulator-app.<tenant> or emulator-user.<tenant>)"
        )
        if tenants_file is not None:
            say(f"All {len(tenants)} tenant ids are in {tenants_file}.")
        say("Any non-empty bearer token is accepted on the legacy routes. Press Ctrl-C to stop.")
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
