"""``python -m servicecomms_async.emulator``: serve the emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from .app import run_forever
from .config import EmulatorConfig
from .server import BindError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m servicecomms_async.emulator",
        description=(
            "Serve a deterministic Office 365 Service Communications API emulator "
            "(the legacy routes and Microsoft Graph's /admin/serviceAnnouncement)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    parser.add_argument("--tenants", type=int, default=50, help="tenant ids to list")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shape", choices=("real", "spec"), default="real")
    parser.add_argument("--messages-per-tenant", type=int, default=250)
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--paging", choices=("skip", "nextlink"), default="skip")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--latency-jitter", type=float, default=0.0)
    parser.add_argument("--degraded-ratio", type=float, default=0.2)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), serve until Ctrl-C; return an exit code."""
    args = build_parser().parse_args(argv)
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
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_forever(config, args.host, args.port))
    except (ValueError, BindError) as exc:  # a host that is not loopback, a port in use
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
